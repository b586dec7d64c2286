import { describe, expect, it } from 'vitest';
import { fixture, startEngine, within } from './helpers.js';

describe('scale and backpressure', () => {
  it('holds 100k instances across 4 shards with a small cache (evicting and reloading from LMDB)', async () => {
    const { weft, cleanup } = await startEngine({ module: fixture('bank'), shards: 4, cacheSize: 5000 });
    try {
      const N = 100_000;
      const window = 5000;
      for (let base = 0; base < N; base += window) {
        const sends = [];
        for (let i = base; i < base + window; i++) sends.push(weft.send({ type: 'bank/account', id: `n-${i}` }, { op: 'deposit', amount: i % 1000 }));
        await within(Promise.all(sends), 60_000, `sends ${base}`);
      }
      await weft.idle();
      const m = weft.metrics();
      expect(m.shards.reduce((a, s) => a + s.cacheEvictions, 0)).toBeGreaterThan(0);
      expect(m.shards.every((s) => s.cacheInstances <= 5000 + 5000)).toBe(true);
      // Every shard owns some of them.
      expect(m.shards.every((s) => s.invocations > N / 8)).toBe(true);
      for (let i = 0; i < N; i += 997) {
        expect(await weft.query({ type: 'bank/account', id: `n-${i}` })).toEqual(i % 1000 === 0 ? { balance: 0 } : { balance: i % 1000 });
      }
      // A second round updates evicted instances on top of their stored state.
      await within(Promise.all(Array.from({ length: 2000 }, (_, k) => weft.send({ type: 'bank/account', id: `n-${k * 50}` }, { op: 'deposit', amount: 1 }))), 60_000, 'second round');
      for (let k = 0; k < 2000; k += 37) expect((await weft.query({ type: 'bank/account', id: `n-${k * 50}` }))?.balance).toBe(((k * 50) % 1000) + 1);
    } finally {
      await cleanup();
    }
  }, 180_000);

  it('runs cycles across shards through full rings without deadlock (internal traffic spills in order)', async () => {
    // Rings of 64 KiB and 4 KiB payloads: a ring holds about fifteen messages, so 400 concurrent
    // ping-pong chains of 300 hops keep every ring full in both directions.
    const { weft, cleanup } = await startEngine({ module: fixture('bank'), shards: 3, ringBytes: 64 * 1024, maxMessageBytes: 16 * 1024 });
    try {
      const pairs = 400;
      const hops = 300;
      const audit = weft.egress('bank/audit');
      await within(Promise.all(Array.from({ length: pairs }, (_, p) => weft.send({ type: 'test/pingpong', id: `a-full-${p}` }, { n: hops, pad: 'x'.repeat(4096) }))), 120_000, 'starts');
      await within(weft.idle(), 120_000, 'idle');
      for (let p = 0; p < pairs; p += 13) {
        expect(await weft.query({ type: 'test/pingpong', id: `a-full-${p}` })).toEqual({ hits: hops / 2 + 1 });
        expect(await weft.query({ type: 'test/pingpong', id: `b-full-${p}` })).toEqual({ hits: hops / 2 });
      }
      const spilled = weft.metrics().shards.reduce((a, s) => a + s.ringSpilledFrames, 0);
      expect(spilled).toBeGreaterThan(0);
      let done = 0;
      for (;;) {
        const r = await within(audit.next(), 10_000, 'audit');
        if (r.done === true) break;
        done++;
        if (done === pairs) break;
      }
      expect(done).toBe(pairs);
    } finally {
      await cleanup();
    }
  }, 180_000);
});
