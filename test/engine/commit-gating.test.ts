import { describe, expect, it } from 'vitest';
import { fixture, startEngine, within, takeValues } from './helpers.js';

/**
 * With periodic checkpoints off, nothing the host can observe as committed may happen until
 * weft.checkpoint() commits: send() acknowledgements, egress records, durable replies.
 */
describe('what the host sees waits for the commit', () => {
  it('send(), egress and durable replies are released by the checkpoint that holds them', async () => {
    const { weft, cleanup } = await startEngine({ module: fixture('bank'), shards: 2, checkpointIntervalMs: 0 });
    try {
      let acked = false;
      const sent = weft.send({ type: 'bank/account', id: 'g-src' }, { op: 'transfer', amount: 3, to: 'g-dst' }).then(() => {
        acked = true;
      });
      let durable: unknown;
      const durableReply = weft.request({ type: 'bank/account', id: 'g-d' }, { op: 'deposit', amount: 2 }, { durable: true }).then((v) => {
        durable = v;
      });
      // A plain request is answered at once, before any commit.
      await expect(weft.request({ type: 'bank/account', id: 'g-d' }, { op: 'get' })).resolves.toBe(2);
      await weft.idle();
      // Processed (state visible to queries), but not committed: nothing released yet.
      expect(await weft.query({ type: 'bank/account', id: 'g-dst' })).toEqual({ balance: 3 });
      const audit = weft.egress('bank/audit');
      let egressSeen = false;
      const first = audit.next().then((r) => {
        egressSeen = true;
        return r.value?.value;
      });
      await new Promise((r) => setImmediate(r));
      expect(acked).toBe(false);
      expect(durable).toBeUndefined();
      expect(egressSeen).toBe(false);
      const epoch = await weft.checkpoint();
      expect(epoch).toBeGreaterThan(0);
      await within(Promise.all([sent, durableReply]), 10_000, 'release');
      expect(acked).toBe(true);
      expect(durable).toBe(2);
      expect(await within(first, 10_000, 'egress')).toEqual({ from: 'g-src', to: 'g-dst', amount: 3 });
      expect(egressSeen).toBe(true);
    } finally {
      await cleanup();
    }
  });

  it('checkpoint() epochs increase and an idle engine still commits a forced checkpoint', async () => {
    const { weft, cleanup } = await startEngine({ module: fixture('bank'), shards: 2, checkpointIntervalMs: 0 });
    try {
      const a = await weft.checkpoint();
      const b = await weft.checkpoint();
      expect(b).toBeGreaterThan(a);
      const [c, d] = await Promise.all([weft.checkpoint(), weft.checkpoint()]);
      expect(d).toBeGreaterThanOrEqual(c!);
      expect(weft.metrics().committedEpoch).toBe(Math.max(c!, d!));
    } finally {
      await cleanup();
    }
  });

  it('delivers each egress record to one iterator once', async () => {
    const { weft, cleanup } = await startEngine({ module: fixture('bank'), shards: 2 });
    try {
      const a = weft.egress('bank/audit');
      const b = weft.egress('bank/audit');
      await Promise.all(Array.from({ length: 20 }, (_, i) => weft.send({ type: 'bank/account', id: `e-${i}` }, { op: 'transfer', amount: 1, to: 'sink' })));
      const got = [...(await takeValues(a, 10)), ...(await takeValues(b, 10))] as Array<{ from: string }>;
      expect(new Set(got.map((r) => r.from)).size).toBe(20);
    } finally {
      await cleanup();
    }
  });
});

describe('egress backlog and failed requests', () => {
  it('a consumer that falls behind egressMaxBacklog makes host sends wait until it acknowledges; nothing is dropped', async () => {
    const { weft, cleanup } = await startEngine({ module: fixture('bank'), shards: 2, egressMaxBacklog: 10 });
    try {
      await Promise.all(Array.from({ length: 10 }, (_, i) => weft.send({ type: 'bank/account', id: `b-${i}` }, { op: 'transfer', amount: 1, to: 'sink' })));
      // Committed before the acks resolved: the egress is at its bound now.
      expect(weft.metrics()).toMatchObject({ egressBuffered: 10, egressFull: 1, egressDropped: 0 });
      let acked = false;
      const blocked = weft.send({ type: 'bank/account', id: 'b-10' }, { op: 'transfer', amount: 1, to: 'sink' }).then(() => {
        acked = true;
      });
      // Bounded wait for what would let it through if there were no backpressure: two commits.
      await weft.checkpoint();
      await weft.checkpoint();
      expect(acked).toBe(false);
      expect(weft.metrics().ingressWaiting).toBe(1);
      const audit = weft.egress('bank/audit');
      const first = await takeValues(audit, 2); // acknowledges the first
      expect(first).toHaveLength(2);
      await within(blocked, 10_000, 'the waiting send once the consumer acknowledged');
      const rest = await takeValues(audit, 9);
      const froms = [...first, ...rest].map((r) => (r as { from: string }).from).sort();
      expect(froms).toEqual(Array.from({ length: 11 }, (_, i) => `b-${i}`).sort());
      expect(weft.metrics().egressDropped).toBe(0);
    } finally {
      await cleanup();
    }
  });

  it('rejects a request with the function error once its message is dead-lettered', async () => {
    const { weft, cleanup } = await startEngine({ module: fixture('bank'), shards: 1, retryBackoffMs: 1 });
    try {
      const err = await within(weft.request({ type: 'bank/account', id: 'x' }, { op: 'boom' }, { timeoutMs: 60_000 }).catch((e: unknown) => e), 10_000, 'request');
      expect((err as Error).message).toBe('boom at x');
    } finally {
      await cleanup();
    }
  });
});
