/**
 * A host loop that calls `weft.send()` without ever yielding to its event loop: every message is
 * applied once and in order per address, the sends that wait for room share one promise per batch
 * (no closure or promise each), and close() still settles every one of them. Real worker threads
 * and LMDB; every wait bounded.
 */
import { describe, expect, it } from 'vitest';
import type { Weft } from '../../src/index.js';
import { expectWeftRejection } from '../helpers/index.js';
import { fixture, startEngine, take, within } from './helpers.js';

const seq = (id: string) => ({ type: 'order/seq', id });

interface Figures {
  last: number;
  count: number;
  disorder: number;
}

/** `n` sends to `addresses` addresses in one synchronous loop; address k gets seq 1, 2, ... */
function tightLoop(weft: Weft, n: number, addresses: number, prefix: string): Array<Promise<void>> {
  const sends: Array<Promise<void>> = [];
  for (let i = 0; i < n; i++) sends.push(weft.send(seq(`${prefix}${i % addresses}`), { seq: Math.floor(i / addresses) + 1 }));
  return sends;
}

async function figures(weft: Weft, id: string): Promise<Figures> {
  return (await within(weft.request(seq(id), { get: true }), 10_000, `get ${id}`)) as Figures;
}

/** Fills the `order/out` egress to its backlog bound (host sends wait for it from then on). */
async function fillEgress(weft: Weft, records: number): Promise<void> {
  for (let i = 0; i < records; i++) await within(weft.send(seq(`emit${i}`), { emit: true }), 10_000, `emit ${i}`);
  expect(weft.metrics().egressFull).toBe(1);
}

describe('a host send loop that never yields', () => {
  it('applies every message once, in order per address, through full rings', async () => {
    const { weft, cleanup } = await startEngine({ module: fixture('ordered'), shards: 2, ringBytes: 64 * 1024, maxMessageBytes: 16 * 1024, checkpointIntervalMs: 20 });
    try {
      const n = 300_000;
      const addresses = 100;
      const sends = tightLoop(weft, n, addresses, 't');
      // Far fewer promises than sends: the ones that waited for room share one per batch.
      expect(new Set(sends).size).toBeLessThan(n / 100);
      await within(Promise.all(sends), 60_000, `${n} sends of a tight loop`);
      for (let k = 0; k < addresses; k++) expect(await figures(weft, `t${k}`)).toEqual({ last: n / addresses, count: n / addresses, disorder: 0 });
      expect(weft.metrics().ingressWaiting).toBe(0);
    } finally {
      await cleanup();
    }
  });

  it('keeps the sends that wait for a full egress as batches sharing one promise, and applies them in order once it drains', async () => {
    const { weft, cleanup } = await startEngine({ module: fixture('ordered'), shards: 2, egressMaxBacklog: 2, egressFullWaitMs: 600_000, checkpointIntervalMs: 20, closeTimeoutMs: 5000 });
    try {
      await fillEgress(weft, 2);
      const n = 50_000;
      const addresses = 50;
      const sends = tightLoop(weft, n, addresses, 'e');
      // Every one waits (the egress is full): 1024 sends per batch, one promise per batch.
      expect(weft.metrics().ingressWaiting).toBe(n);
      expect(new Set(sends).size).toBe(Math.ceil(n / 1024));
      const records = await take(weft.egress('order/out'), 2, 10_000);
      await records[1]!.ack();
      await within(Promise.all(sends), 60_000, `${n} sends released by the drained egress`);
      for (let k = 0; k < addresses; k++) expect(await figures(weft, `e${k}`)).toEqual({ last: n / addresses, count: n / addresses, disorder: 0 });
    } finally {
      await cleanup();
    }
  });

  it('close() refuses every waiting send (ERR_WEFT_CLOSED), none of them applied', async () => {
    const { weft, cleanup, dir } = await startEngine({ module: fixture('ordered'), shards: 2, egressMaxBacklog: 2, egressFullWaitMs: 600_000, checkpointIntervalMs: 20, closeTimeoutMs: 5000 });
    let closed = false;
    try {
      await fillEgress(weft, 2);
      const sends = tightLoop(weft, 3000, 10, 'c');
      expect(weft.metrics().ingressWaiting).toBe(3000);
      const refused = [...new Set(sends)].map((p) => expectWeftRejection(p, 'ERR_WEFT_CLOSED', /waited for room .* not accepted/));
      expect(refused).toHaveLength(3);
      await within(weft.close(), 10_000, 'close() with 3000 sends waiting');
      closed = true;
      await Promise.all(refused);
      const { weft: again, cleanup: cleanup2 } = await startEngine({ module: fixture('ordered'), shards: 2, dataDir: dir });
      try {
        for (let k = 0; k < 10; k++) expect(await figures(again, `c${k}`)).toEqual({ last: 0, count: 0, disorder: 0 });
      } finally {
        await cleanup2();
      }
    } finally {
      if (!closed) await cleanup();
    }
  });
});
