import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WeftError, type DeadLetter, type Weft } from '../../src/index.js';
import { fixture, startEngine, within, takeValues } from './helpers.js';

const acct = (id: string) => ({ type: 'bank/account', id });

for (const shards of [1, 2, 4]) {
  describe(`engine with ${shards} shard(s)`, () => {
    let weft: Weft;
    let cleanup: () => Promise<void>;

    beforeAll(async () => {
      ({ weft, cleanup } = await startEngine({ module: fixture('bank'), shards, checkpointIntervalMs: 20, retryBackoffMs: 1 }));
    });
    afterAll(async () => {
      await cleanup();
    });

    it('keeps per-address order and state', async () => {
      const sends: Array<Promise<void>> = [];
      for (let i = 0; i < 200; i++) sends.push(weft.send(acct('order'), { op: 'deposit', amount: 1, seq: i }));
      await within(Promise.all(sends), 20_000, 'sends');
      const state = await weft.query(acct('order'));
      expect(state).toEqual({ balance: 200, seen: Array.from({ length: 200 }, (_, i) => i) });
    });

    it('answers requests, and rejects at once a request whose invocation does not reply', async () => {
      await expect(weft.request(acct('req'), { op: 'deposit', amount: 5 })).resolves.toBe(5);
      await expect(weft.request(acct('req'), { op: 'get' })).resolves.toBe(5);
      // A function that does not reply: the request is rejected when its invocation ends, not at
      // its (default, 30 s) timeout.
      const err = await within(weft.request(acct('req'), { op: 'cancel', token: 'none' }).catch((e: unknown) => e), 10_000, 'no-reply request');
      expect(err).toBeInstanceOf(WeftError);
      expect((err as WeftError).code).toBe('ERR_WEFT_NO_REPLY');
      expect((err as WeftError).message).toBe('the invocation of bank/account/req ended without calling ctx.reply');
      // The engine is fine afterwards.
      await expect(weft.request(acct('req'), { op: 'get' })).resolves.toBe(5);
    });

    it('runs cross-shard cycles and delivers egress after commit', async () => {
      const audit = weft.egress('bank/audit');
      await weft.send({ type: 'test/pingpong', id: `a-cycle-${shards}` }, 101);
      await within(weft.idle(), 10_000, 'idle');
      const hitsA = await weft.query({ type: 'test/pingpong', id: `a-cycle-${shards}` });
      const hitsB = await weft.query({ type: 'test/pingpong', id: `b-cycle-${shards}` });
      expect(hitsA).toEqual({ hits: 51 });
      expect(hitsB).toEqual({ hits: 51 });
      const [rec] = await takeValues(audit, 1);
      expect(rec).toEqual({ done: `b-cycle-${shards}` });
    });

    it('transfers money across shards and conserves it', async () => {
      await weft.send(acct('t-src'), { op: 'deposit', amount: 1000 });
      const sends = [];
      for (let i = 0; i < 100; i++) sends.push(weft.send(acct('t-src'), { op: 'transfer', amount: 1, to: `t-dst-${i % 10}` }));
      await within(Promise.all(sends), 20_000, 'transfers');
      await weft.idle();
      let total = (await weft.query(acct('t-src')))?.balance as number;
      for (let i = 0; i < 10; i++) total += ((await weft.query(acct(`t-dst-${i}`)))?.balance as number) ?? 0;
      expect(total).toBe(1000);
      expect((await weft.query(acct('t-src')))?.balance).toBe(900);
    });

    it('lets other addresses progress while an async function awaits', async () => {
      const slow = weft.request({ type: 'test/slow', id: 's' }, { tag: 'slow', waitMs: 300 });
      const fast = weft.request({ type: 'test/slow', id: 's' }, { tag: 'second', waitMs: 0 });
      // Another address completes while `s` is parked.
      await expect(weft.request(acct('meanwhile'), { op: 'deposit', amount: 1 })).resolves.toBe(1);
      let slowDone = false;
      void slow.then(() => {
        slowDone = true;
      });
      expect(slowDone).toBe(false);
      await expect(slow).resolves.toEqual(['slow']);
      // Same address: strictly after, in arrival order.
      await expect(fast).resolves.toEqual(['slow', 'second']);
    });

    it('applies nothing of a throwing invocation and dead-letters it after its retries', async () => {
      const dead = weft.egress('weft/dead-letters');
      await weft.send(acct('bomb'), { op: 'deposit', amount: 7 });
      await weft.send(acct('bomb'), { op: 'boom' });
      const [letter] = (await takeValues(dead, 1)) as DeadLetter[];
      expect(letter!.target).toEqual(acct('bomb'));
      expect(letter!.attempts).toBe(3);
      expect(letter!.error.message).toBe('boom at bomb');
      expect(letter!.value).toEqual({ op: 'boom' });
      expect(await weft.query(acct('bomb'))).toEqual({ balance: 7 });
      expect(await weft.query(acct('victim'))).toBeUndefined();
      // The next valid message works.
      await expect(weft.request(acct('bomb'), { op: 'deposit', amount: 1 })).resolves.toBe(8);
    });

    it('fires delayed messages in order and cancels them', async () => {
      const id = `timers-${shards}`;
      await weft.send(acct(id), {
        op: 'scheduleMany',
        items: [
          { delayMs: 60, amount: 1, seq: 2 },
          { delayMs: 20, amount: 1, seq: 1 },
          { delayMs: 60_000, amount: 100, seq: 99, token: 'tok' },
          { delayMs: 80, amount: 1, seq: 3 },
        ],
      });
      // A cancellation in a later invocation, long before the cancelled one falls due.
      await weft.send(acct(id), { op: 'cancel', token: 'tok' });
      const deadline = Date.now() + 10_000;
      let state = await weft.query(acct(id));
      while ((state?.seen as number[] | undefined)?.length !== 3 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
        state = await weft.query(acct(id));
      }
      expect(state).toEqual({ balance: 3, seen: [1, 2, 3] });
      expect(weft.metrics().shards.reduce((a, s) => a + s.pendingTimers, 0)).toBe(0);
      // The token is free again: reusing it is accepted.
      await weft.send(acct(id), { op: 'schedule', delayMs: 1, amount: 1, seq: 4, token: 'tok' });
    });

    it('expires state after write and after call', async () => {
      // TTLs are 1000 ms. Each "still alive" check keeps >= 400 ms of margin; "expired" checks
      // only get more certain when the machine is slow.
      const to = { type: 'test/ttl', id: `ttl-${shards}` };
      await expect(weft.request(to, { set: true })).resolves.toEqual({ w: 'written', c: 'called' });
      await new Promise((r) => setTimeout(r, 500));
      await expect(weft.request(to, {})).resolves.toEqual({ w: 'written', c: 'called' });
      await new Promise((r) => setTimeout(r, 600));
      // `w` was written 1100+ ms ago; `c` was last called ~600 ms ago.
      await expect(weft.request(to, {})).resolves.toEqual({ w: null, c: 'called' });
      await new Promise((r) => setTimeout(r, 1100));
      await expect(weft.request(to, {})).resolves.toEqual({ w: null, c: null });
      expect(await weft.query(to)).toBeUndefined();
    });

    it('reports metrics and commits checkpoints', async () => {
      const epoch = await weft.checkpoint();
      expect(epoch).toBeGreaterThan(0);
      const m = weft.metrics();
      expect(m.shards).toHaveLength(shards);
      expect(m.committedEpoch).toBeGreaterThanOrEqual(epoch);
      expect(m.shards.reduce((a, s) => a + s.invocations, 0)).toBeGreaterThan(0);
      expect(weft.metrics('prometheus')).toContain('weft_shard_invocations_total{shard="0"}');
    });
  });
}
