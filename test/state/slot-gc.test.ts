import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

/**
 * A slot's write time is a double written at every state change: it must be written in place.
 * Declared without a value (an ES2022 class field is `undefined` until the constructor runs), V8
 * gave the field the tagged representation, and each write allocated a heap number that lived as
 * long as the slot's value: the shards' scavenges copied one per changed instance (issue 13).
 * The child writes 2,000,000 distinct timestamps into 10,000 slots read back from records (as a
 * shard has them) and counts the scavenges meanwhile: 8 with the field tagged, 0 in place.
 */
describe('Slot.writtenAt', () => {
  it('takes timestamps without allocating', () => {
    const instance = new URL('../../dist/src/state/instance.js', import.meta.url).href;
    const script = `
      const { Instance, Slot, encodeInstance, decodeInstanceInto } = await import(${JSON.stringify(instance)});
      const { PerformanceObserver, constants } = await import('node:perf_hooks');
      const enc = (v) => new Uint8Array([v & 0x7f]);
      const slots = [];
      for (let i = 0; i < 10_000; i++) {
        const a = new Instance('k' + i, 't', 'i' + i, 0);
        a.slots.set('count', new Slot(null, Date.now(), i, true, null, enc));
        const b = decodeInstanceInto(new Instance('k' + i, 't', 'i' + i, 0), encodeInstance(a));
        const s = b.slots.get('count');
        s.settle(i, enc);
        slots.push(s);
      }
      globalThis.gc();
      let scavenges = 0;
      new PerformanceObserver((l) => { for (const e of l.getEntries()) if (e.detail?.kind === constants.NODE_PERFORMANCE_GC_MINOR) scavenges++; }).observe({ entryTypes: ['gc'] });
      const base = Date.now();
      for (let r = 0; r < 200; r++) for (let i = 0; i < 10_000; i++) slots[i].setImmutable(i, base + r * 10_000 + i, enc);
      setTimeout(() => console.log(JSON.stringify({ scavenges, last: slots[9_999].writtenAt - base })), 10);
    `;
    // Optimizing on the main thread: the loop is optimized as soon as it is hot, whatever the
    // machine's load (a compile that lagged on a busy background thread left the loop
    // unoptimized, allocating a number per write whether the field was tagged or not).
    const res = spawnSync(process.execPath, ['--expose-gc', '--no-concurrent-recompilation', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
    expect(res.status, res.stderr).toBe(0);
    const out = JSON.parse(res.stdout.trim()) as { scavenges: number; last: number };
    // The writes happened (the last one is there).
    expect(out.last).toBe(199 * 10_000 + 9_999);
    // 16 bytes a write would be ~32 MB: several scavenges. Allowed: the few the loop's first,
    // unoptimized iterations may cause.
    expect(out.scavenges).toBeLessThanOrEqual(2);
  });
});
