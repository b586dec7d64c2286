/**
 * Egress backpressure (`egressMaxBacklog`) never deadlocks and never hangs: records an iterator
 * holds do not count toward `full` (a `for await` consumer that awaits a host send per record
 * makes progress), and host sends wait at most `egressFullWaitMs` for a full egress, after which
 * they go on (counted in metrics `egressOverBacklog`, one warning) and the backlog may grow past
 * the bound: no record is ever lost. `idle()` and `close()` cannot hang on a full egress.
 * Real worker threads and LMDB; every wait bounded, closeTimeoutMs small where a failure would
 * otherwise cost its 30 s default.
 */
import { describe, expect, it } from 'vitest';
import { expectWeftRejection } from '../helpers/index.js';
import { fixture, startEngine, take, within } from './helpers.js';

const account = (id: string) => ({ type: 'bank/account', id });

/** Three transfers: three `bank/audit` records, the egress is at an `egressMaxBacklog` of 3. */
async function fill(weft: { send(to: { type: string; id: string }, v: unknown): Promise<void> }, prefix: string): Promise<void> {
  for (let i = 0; i < 3; i++) await within(weft.send(account(`${prefix}${i}`), { op: 'transfer', amount: 1, to: `${prefix}to${i}` }), 10_000, `transfer ${prefix}${i}`);
}

function captureWarnings(): { warnings: string[]; stop(): void } {
  const warnings: string[] = [];
  const onWarning = (w: Error): void => {
    warnings.push(w.message);
  };
  process.on('warning', onWarning);
  return { warnings, stop: () => process.off('warning', onWarning) };
}

describe('egress backpressure: a consumer that sends', () => {
  it('a for-await consumer (autoAck) that awaits weft.send and weft.request per record makes progress at egressMaxBacklog', async () => {
    // egressFullWaitMs far beyond the bounds below: progress must come from the held record not
    // counting, not from the bounded wait.
    const { weft, cleanup } = await startEngine({ module: fixture('bank'), shards: 2, egressMaxBacklog: 3, egressFullWaitMs: 600_000, checkpointIntervalMs: 20, closeTimeoutMs: 2000 });
    try {
      await fill(weft, 'a');
      expect(weft.metrics().egressFull).toBe(1);
      let forwarded = 0;
      const consume = (async () => {
        for await (const rec of weft.egress('bank/audit')) {
          const v = rec.value as { to: string; amount: number };
          await weft.send(account(`mirror-${v.to}`), { op: 'deposit', amount: v.amount });
          expect(await weft.request(account(`mirror-${v.to}`), { op: 'get' })).toBe(v.amount);
          if (++forwarded === 3) {
            await rec.ack();
            break;
          }
        }
      })();
      await within(consume, 8_000, `forwarding 3 records (forwarded ${forwarded}; metrics egressFull=${weft.metrics().egressFull})`);
      expect(forwarded).toBe(3);
      await within(weft.idle(), 8_000, 'idle after forwarding');
      expect(weft.metrics()).toMatchObject({ egressBuffered: 0, egressFull: 0, egressOverBacklog: 0 });
    } finally {
      await cleanup();
    }
  });

  it('a consumer whose sends produce egress records of the same egress keeps going', async () => {
    // Each forwarded record is a transfer, which writes one more bank/audit record: the egress
    // refills while its consumer works; acknowledging as it asks for the next is room enough.
    const { weft, cleanup } = await startEngine({ module: fixture('bank'), shards: 2, egressMaxBacklog: 3, egressFullWaitMs: 600_000, checkpointIntervalMs: 20, closeTimeoutMs: 2000 });
    try {
      await fill(weft, 'c');
      let forwarded = 0;
      const consume = (async () => {
        for await (const rec of weft.egress('bank/audit')) {
          const v = rec.value as { to: string };
          await weft.send(account(v.to), { op: 'transfer', amount: 1, to: `next-${forwarded}` });
          if (++forwarded === 8) break;
        }
      })();
      await within(consume, 10_000, `forwarding 8 records (forwarded ${forwarded}; metrics egressFull=${weft.metrics().egressFull})`);
      expect(weft.metrics().egressOverBacklog).toBe(0);
    } finally {
      await cleanup();
    }
  });

  it('the ack-before-send pattern (autoAck: false, await record.ack() first) makes progress', async () => {
    const { weft, cleanup } = await startEngine({ module: fixture('bank'), shards: 2, egressMaxBacklog: 3, egressFullWaitMs: 600_000, checkpointIntervalMs: 20, closeTimeoutMs: 2000 });
    try {
      await fill(weft, 'b');
      let forwarded = 0;
      const consume = (async () => {
        for await (const rec of weft.egress('bank/audit', { autoAck: false })) {
          const v = rec.value as { to: string; amount: number };
          await rec.ack();
          await weft.send(account(`mirror-${v.to}`), { op: 'deposit', amount: v.amount });
          if (++forwarded === 3) break;
        }
      })();
      await within(consume, 8_000, `forwarding 3 records (forwarded ${forwarded})`);
      expect(forwarded).toBe(3);
    } finally {
      await cleanup();
    }
  });
});

describe('egress backpressure: the wait is bounded', () => {
  it('sends wait at most egressFullWaitMs for an egress nobody reads, then go on: counted, one warning, nothing lost; backpressure returns once it drains', async () => {
    const w = captureWarnings();
    const { weft, cleanup } = await startEngine({ module: fixture('bank'), shards: 2, egressMaxBacklog: 3, egressFullWaitMs: 200, checkpointIntervalMs: 20, closeTimeoutMs: 2000 });
    try {
      await fill(weft, 'd');
      const sends = Array.from({ length: 5 }, (_, i) => weft.send(account(`d-more${i}`), { op: 'transfer', amount: 1, to: `d-moreto${i}` }));
      expect(weft.metrics().ingressWaiting).toBe(5); // backpressure: they wait
      await within(Promise.all(sends), 10_000, 'sends waiting on a full egress nobody reads');
      await within(weft.idle(), 10_000, 'idle with the egress past its bound');
      // Past the bound, nothing dropped: 3 + 5 records wait for their consumer.
      expect(weft.metrics()).toMatchObject({ egressBuffered: 8, egressFull: 1, egressOverBacklog: 1, egressDropped: 0 });
      // Once past, the egress no longer holds sends back (until it drops below the bound).
      await within(weft.send(account('d-after'), { op: 'transfer', amount: 1, to: 'd-afterto' }), 10_000, 'a send with the egress already past its bound');
      const records = await take(weft.egress('bank/audit'), 9, 10_000);
      expect(new Set(records.map((r) => (r.value as { from: string }).from)).size).toBe(9);
      await records[8]!.ack();
      expect(weft.metrics()).toMatchObject({ egressBuffered: 0, egressFull: 0 });

      // Drained: the bound holds sends back again, and expires again.
      await fill(weft, 'e');
      const again = weft.send(account('e-more'), { op: 'deposit', amount: 1 });
      expect(weft.metrics().ingressWaiting).toBe(1);
      await within(again, 10_000, 'a send waiting on the refilled egress');
      expect(weft.metrics().egressOverBacklog).toBe(2);
      await new Promise((r) => setImmediate(r));
      expect(w.warnings.filter((m) => m.includes('bank/audit') && m.includes('egressFullWaitMs'))).toHaveLength(1);
    } finally {
      w.stop();
      await cleanup();
    }
  });

  it('a request that times out while it waits for room is never sent: its target does not see it when the others go on', async () => {
    const { weft, cleanup } = await startEngine({ module: fixture('bank'), shards: 2, egressMaxBacklog: 3, egressFullWaitMs: 1_000, checkpointIntervalMs: 20, closeTimeoutMs: 2000 });
    try {
      await fill(weft, 'g');
      const late = weft.request(account('g-late'), { op: 'deposit', amount: 5 }, { timeoutMs: 50 });
      const send = weft.send(account('g-sent'), { op: 'deposit', amount: 7 });
      expect(weft.metrics().ingressWaiting).toBe(2);
      await expectWeftRejection(late, 'ERR_WEFT_TIMEOUT', 'weft.request to bank/account/g-late got no reply within 50 ms');
      // egressFullWaitMs later the waiters go on: the send is applied, the timed-out request is not.
      await within(send, 10_000, 'the send waiting with the timed-out request');
      await within(weft.idle(), 10_000, 'idle');
      expect(await within(weft.request(account('g-sent'), { op: 'get' }), 10_000, 'get g-sent')).toBe(7);
      expect(await within(weft.request(account('g-late'), { op: 'get' }), 10_000, 'get g-late')).toBe(0);
      expect(weft.metrics().ingressWaiting).toBe(0);
    } finally {
      await cleanup();
    }
  });

  it('idle() resolves when the only waiter was a request that timed out (released, it publishes nothing)', async () => {
    const { weft, cleanup } = await startEngine({ module: fixture('bank'), shards: 2, egressMaxBacklog: 3, egressFullWaitMs: 500, checkpointIntervalMs: 20, closeTimeoutMs: 2000 });
    try {
      await fill(weft, 'h');
      const late = weft.request(account('h-late'), { op: 'deposit', amount: 5 }, { timeoutMs: 50 });
      expect(weft.metrics().ingressWaiting).toBe(1);
      await expectWeftRejection(late, 'ERR_WEFT_TIMEOUT', 'weft.request to bank/account/h-late got no reply within 50 ms');
      // Called while the timed-out request still waits; egressFullWaitMs later it is released.
      await within(weft.idle(), 10_000, 'idle() after the only waiter, a timed-out request, was released');
      expect(weft.metrics().ingressWaiting).toBe(0);
      expect(await within(weft.request(account('h-late'), { op: 'get' }), 10_000, 'get h-late')).toBe(0);
    } finally {
      await cleanup();
    }
  });

  it('close() with sends waiting on a full egress does not wait for egressFullWaitMs or closeTimeoutMs: the waiting sends are refused (never accepted)', async () => {
    const { weft, cleanup, dir } = await startEngine({ module: fixture('bank'), shards: 2, egressMaxBacklog: 3, egressFullWaitMs: 600_000, checkpointIntervalMs: 20, closeTimeoutMs: 600_000 });
    let closed = false;
    try {
      await fill(weft, 'f');
      const waiting = weft.send(account('f-more'), { op: 'deposit', amount: 1 });
      expect(weft.metrics().ingressWaiting).toBe(1);
      const refused = expectWeftRejection(waiting, 'ERR_WEFT_CLOSED', /waited for room .* not accepted/);
      await within(weft.close(), 10_000, 'close() with a send waiting on a full egress');
      closed = true;
      await refused;
      // The final checkpoint ran: the three records are there at the next start, f-more was never applied.
      const { weft: again, cleanup: cleanup2 } = await startEngine({ module: fixture('bank'), shards: 2, dataDir: dir });
      try {
        expect(again.metrics().egressBuffered).toBe(3);
        expect(await within(again.request(account('f-more'), { op: 'get' }), 10_000, 'get')).toBe(0);
      } finally {
        await cleanup2();
      }
    } finally {
      if (!closed) await cleanup();
    }
  });
});
