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
  it('host sends wait while a shard holds more dirty instances than its cache, and go on after the next checkpoint', async () => {
    // Periodic checkpoints on, but an hour apart: the test takes them itself, when it wants them.
    const { weft, cleanup } = await startEngine({ module: fixture('bank'), shards: 2, cacheSize: 16, checkpointIntervalMs: 3_600_000 });
    try {
      const acct = (i: number) => ({ type: 'bank/account', id: `dirty-${i}` });
      const first = Array.from({ length: 2000 }, (_, i) => weft.send(acct(i), { op: 'deposit', amount: 1 }));
      // No checkpoint yet: each shard holds far more dirty instances than its cache of 16. (Frames
      // are published as they are cut, so the shards may already be over it while the loop above
      // runs, and the rest of the first batch waits too: no idle() here, it would wait for the
      // next checkpoint. A shard publishes its metrics after each turn: wait for them, boundedly.)
      const until = Date.now() + 10_000;
      while (!weft.metrics().shards.every((s) => s.dirtyInstances > 16) && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
      expect(weft.metrics().shards.map((s) => s.dirtyInstances > 16)).toEqual([true, true]);
      const second = Array.from({ length: 2000 }, (_, i) => weft.send(acct(2000 + i), { op: 'deposit', amount: 2 }));
      // Main reads the shards' dirty counts at every flush and every 64 sends.
      expect(weft.metrics().ingressWaiting).toBeGreaterThanOrEqual(2000 - 64);
      // A checkpoint takes the dirty instances: waiting sends go, a slice per macrotask, until
      // the shards are over their cache again; the next checkpoint lets the next ones go.
      for (let i = 0; weft.metrics().ingressWaiting > 0; i++) {
        if (i >= 500) throw new Error(`${weft.metrics().ingressWaiting} sends still wait after 500 checkpoints`);
        await within(weft.checkpoint(), 30_000, `checkpoint ${i + 1}`);
      }
      await within(weft.idle(), 30_000, 'second batch processed');
      expect(weft.metrics().ingressWaiting).toBe(0);
      await within(weft.checkpoint(), 30_000, 'second checkpoint');
      await within(Promise.all([...first, ...second]), 30_000, 'every send committed');
      const m = weft.metrics();
      expect(m.ingressWaiting).toBe(0);
      expect(m.shards.reduce((a, s) => a + s.invocations, 0)).toBe(4000);
      for (let i = 0; i < 4000; i += 99) expect(await weft.query(acct(i))).toEqual({ balance: i < 2000 ? 1 : 2 });
    } finally {
      await cleanup();
    }
  }, 120_000);

  it('without periodic checkpoints, dirty instances never hold sends back (nothing would release them)', async () => {
    const { weft, cleanup } = await startEngine({ module: fixture('bank'), shards: 2, cacheSize: 16, checkpointIntervalMs: 0 });
    try {
      const acct = (i: number) => ({ type: 'bank/account', id: `off-${i}` });
      const sends = Array.from({ length: 2000 }, (_, i) => weft.send(acct(i), { op: 'deposit', amount: 1 }));
      await within(weft.idle(), 30_000, 'first batch processed');
      for (let i = 2000; i < 4000; i++) sends.push(weft.send(acct(i), { op: 'deposit', amount: 1 }));
      expect(weft.metrics().ingressWaiting).toBe(0);
      await within(weft.idle(), 30_000, 'second batch processed');
      await weft.checkpoint();
      await within(Promise.all(sends), 30_000, 'sends committed by the explicit checkpoint');
      expect(await weft.query(acct(3999))).toEqual({ balance: 1 });
    } finally {
      await cleanup();
    }
  }, 120_000);
  it('async invocations that complete after the last barrier still get checkpointed while sends wait on their dirty state', async () => {
    // 100 async invocations start before a barrier and change their state ~450 ms later, after
    // it: a shard then holds 100 dirty instances (cache 16) with nothing else happening. Host
    // sends wait for a checkpoint; the periodic one must not be skipped as "nothing happened".
    const { weft, cleanup } = await startEngine({ module: fixture('bank'), shards: 1, cacheSize: 16, checkpointIntervalMs: 100 });
    try {
      const slow = Array.from({ length: 100 }, (_, i) => weft.send({ type: 'test/slow', id: `late-${i}` }, { tag: 'a', waitMs: 450 }));
      await within(weft.idle(), 30_000, 'slow invocations done');
      await within(Promise.all(slow), 30_000, 'their sends committed by a periodic checkpoint');
      await within(weft.send({ type: 'bank/account', id: 'after' }, { op: 'deposit', amount: 1 }), 30_000, 'a later send');
      expect(await weft.query({ type: 'test/slow', id: 'late-7' })).toEqual({ log: ['a'] });
    } finally {
      await cleanup();
    }
  }, 120_000);
});
