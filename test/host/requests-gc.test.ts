import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

/**
 * Main's pending-request table under request churn must not make main's scavenges promote what
 * it throws away (issue 13). A `Map` does: each table it outgrows or compacts links to the next,
 * and once one of them has been promoted, the link keeps every later table alive through the
 * next scavenge, which promotes it in turn. The child churns 200,000 requests through the real
 * `Requests` (256 in flight, each refused after 256 newer ones) with a minor GC every 2,000, and
 * V8 reports what each scavenge promoted (`--trace-gc-nvp`). Bytes, not time.
 */
describe('Requests under churn', () => {
  it("does not have main's scavenges promote its discarded tables", () => {
    const requests = new URL('../../dist/src/host/requests.js', import.meta.url).href;
    const script = `
      const { Requests, PendingRequest } = await import(${JSON.stringify(requests)});
      const r = new Requests(undefined);
      const to = { type: 'counter', id: 'a' };
      const payload = new Uint8Array(1);
      const err = new Error('refused');
      const inFlight = [];
      const add = () => {
        const p = new PendingRequest(r.nextId(), false, to, 'counter', payload, undefined, 60_000);
        r.add(p).catch(() => {});
        inFlight.push(p);
      };
      for (let i = 0; i < 256; i++) add();
      // The table as it is now survives two scavenges: it is promoted.
      globalThis.gc({ type: 'minor' });
      globalThis.gc({ type: 'minor' });
      console.log('CHURN START');
      for (let i = 0; i < 200_000; i++) {
        add();
        r.refuse(inFlight.shift(), err);
        if (i % 2000 === 1999) {
          await null; // the rejections' reactions run
          globalThis.gc({ type: 'minor' });
        }
      }
      console.log('CHURN END');
      for (const p of inFlight) r.refuse(p, err);
    `;
    const res = spawnSync(process.execPath, ['--expose-gc', '--trace-gc-nvp', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
    expect(res.status, res.stderr).toBe(0);
    const out = res.stdout;
    const churn = out.slice(out.indexOf('CHURN START'), out.indexOf('CHURN END'));
    const scavenges = [...churn.matchAll(/gc=s .*?promoted=(\d+)/g)].map((m) => Number(m[1]));
    // 100 forced scavenges at least (V8 may add its own).
    expect(scavenges.length).toBeGreaterThanOrEqual(100);
    const promoted = scavenges.reduce((a, b) => a + b, 0);
    // With a Map: ~72 MB. What a scavenge legitimately promotes here is a few in-flight
    // requests that lived across two of them.
    expect(promoted).toBeLessThan(1_000_000);
  });
});
