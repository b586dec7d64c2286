/**
 * The router's host side (src/host/router.ts) without worker threads: real rings, doorbells,
 * outbound queues and a control block in this thread; the test plays the shards (it drains their
 * rings and writes their dirty counts).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ControlBlock, METRIC_INDEX } from '../../src/contract/control-block.js';
import { E_HSEQ, E_REPLY_TO, Kind, resolveNames, wireEncoder } from '../../src/contract/envelope.js';
import { Outbound } from '../../src/contract/outbound.js';
import { Partitioner } from '../../src/contract/partitioner.js';
import type { EgressChannel } from '../../src/host/egress.js';
import { Router, type RouterSettings } from '../../src/host/router.js';
import { WeftError } from '../../src/core/errors.js';
import { ShardLink } from '../../src/host/shard-link.js';
import { LogSlabs } from '../../src/internal/log-slabs.js';
import { Doorbell } from '../../src/transport/doorbell.js';
import { decodeBatch } from '../../src/transport/framing.js';
import { NameTable } from '../../src/transport/names.js';
import { Ring } from '../../src/transport/ring.js';

const SETTINGS: RouterSettings = { cacheSize: 100, checkpointIntervalMs: 1000, egressFullWaitMs: 60_000, egressMaxBacklog: 10 };
const TYPE = 'test/counter';

interface Setup {
  router: Router;
  links: ShardLink[];
  rings: Ring[];
  control: ControlBlock;
  partitioner: Partitioner;
  names: NameTable;
  allReleased: () => number;
}

const routers: Router[] = [];
afterEach(() => {
  // Ends what a test left waiting (an egress wait timer is unref-ed, but close() clears it).
  for (const r of routers.splice(0)) r.close();
});

function setup(opts: { shards?: number; ringBytes?: number; settings?: Partial<RouterSettings> } = {}): Setup {
  const shards = opts.shards ?? 2;
  const names = new NameTable([TYPE]);
  const wire = wireEncoder(names);
  const bells = Doorbell.create(shards + 1);
  const control = ControlBlock.create(shards);
  const slabs = new LogSlabs(shards);
  const rings = Array.from({ length: shards }, () => Ring.create(opts.ringBytes ?? 1 << 20));
  const links = rings.map((ring, s) => {
    const link = new ShardLink(s, slabs, 1);
    link.out = new Outbound(ring, 1 + s, bells, wire);
    link.out.onCut = (frame, records, count) => link.log.keep(frame, records, count);
    return link;
  });
  const partitioner = new Partitioner(shards, 64);
  let released = 0;
  const router = new Router(partitioner, links, { ...SETTINGS, ...opts.settings }, () => released++);
  router.connect(control);
  routers.push(router);
  return { router, links, rings, control, partitioner, names, allReleased: () => released };
}

/** The records a shard's ring holds (what the shard would read), names resolved. */
function drainRecords(ring: Ring, names: NameTable): unknown[][] {
  const out: unknown[][] = [];
  ring.drain((frame) => {
    for (const rec of decodeBatch(frame)) out.push(rec[0] === Kind.Msg ? resolveNames(rec, names) : rec);
  });
  return out;
}

/** An id whose address the partitioner routes to `shard`. */
function idOn(partitioner: Partitioner, shard: number, from = 0): string {
  for (let i = from; i < from + 10_000; i++) {
    if (partitioner.shardOf(partitioner.keyGroup(TYPE, `id${i}`)) === shard) return `id${i}`;
  }
  throw new Error(`no id routed to shard ${shard} among 10000`);
}

function setDirty(control: ControlBlock, shard: number, dirty: number): void {
  control.f64[control.metricsBase(shard) + METRIC_INDEX.dirtyInstances] = dirty;
}

/** Shard `shard` reports `dirty` instances, main flushes: is the send that waited (`released()`) released? */
async function releasedAfterFlush(s: Setup, shard: number, dirty: number, released: () => boolean): Promise<boolean> {
  setDirty(s.control, shard, dirty);
  s.router.flush();
  await turn();
  return released();
}

/** `n` sends waiting for room (shard 0 is over its cache); returns how many were released so far. */
function waitingSends(router: Router, control: ControlBlock, n: number): () => number {
  setDirty(control, 0, SETTINGS.cacheSize + 1);
  router.flush();
  let released = 0;
  for (let i = 0; i < n; i++) void router.waitForRoom().then(() => released++);
  expect(router.waiting).toBe(n);
  return () => released;
}

/** Resolves on the next macrotask: every microtask queued before it (released waits, scheduled flushes) has run. */
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

const payload = (n: number): Uint8Array => new Uint8Array(n).fill(7);

describe('Router: routing', () => {
  it('routes each host message to the shard of its address, in acceptance order, numbered by hseq', () => {
    const { router, rings, partitioner, names } = setup({ shards: 3 });
    const sent: Array<{ shard: number; id: string; hseq: number }> = [];
    for (let i = 0; i < 30; i++) {
      const id = `user-${i}`;
      const shard = router.shardOf(TYPE, id);
      expect(shard).toBe(partitioner.shardOf(partitioner.keyGroup(TYPE, id)));
      const group = router.accept({ type: TYPE, id }, TYPE, payload(8), i % 2 === 0 ? 0 : 100 + i, undefined);
      sent.push({ shard, id, hseq: group.hseq });
    }
    expect(sent.map((m) => m.hseq)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    expect(router.hseq).toBe(30);
    router.flush();
    for (let s = 0; s < 3; s++) {
      const got = drainRecords(rings[s]!, names);
      const expected = sent.filter((m) => m.shard === s);
      expect(got.map((r) => [r[0], r[1], r[2], r[E_HSEQ]])).toEqual(expected.map((m) => [Kind.Msg, TYPE, m.id, m.hseq]));
      expect(got.map((r) => r[E_REPLY_TO])).toEqual(expected.map((m) => (m.hseq % 2 === 1 ? 0 : 100 + m.hseq - 1)));
    }
  });

  it('groups the sends to one shard between two flushes into one acknowledgement group', () => {
    const { router, links, partitioner } = setup();
    const a0 = router.accept({ type: TYPE, id: idOn(partitioner, 0) }, TYPE, payload(4), 0, undefined);
    const b0 = router.accept({ type: TYPE, id: idOn(partitioner, 1) }, TYPE, payload(4), 0, undefined);
    const a1 = router.accept({ type: TYPE, id: idOn(partitioner, 0, 1000) }, TYPE, payload(4), 0, undefined);
    expect(a1).toBe(a0);
    expect(b0).not.toBe(a0);
    expect([a0.first, a0.hseq, b0.first, b0.hseq]).toEqual([1, 3, 2, 2]);
    expect(links[0]!.ackGroups).toEqual([a0]);
    expect(links[1]!.ackGroups).toEqual([b0]);
    router.flush();
    expect(links.map((l) => l.openAck)).toEqual([null, null]);
    const a2 = router.accept({ type: TYPE, id: idOn(partitioner, 0) }, TYPE, payload(4), 0, undefined);
    expect(a2).not.toBe(a0);
    expect([a2.first, a2.hseq]).toEqual([4, 4]);
    expect(links[0]!.ackGroups).toEqual([a0, a2]);
  });

  it('routes a request that is not durable without an acknowledgement group (nobody waits for its ack)', () => {
    const { router, links, rings, partitioner, names } = setup();
    const id = idOn(partitioner, 0);
    const a0 = router.accept({ type: TYPE, id }, TYPE, payload(4), 0, undefined);
    expect(router.acceptRequest({ type: TYPE, id }, TYPE, payload(4), 7, undefined)).toBe(2);
    const a2 = router.accept({ type: TYPE, id }, TYPE, payload(4), 0, undefined);
    expect(a2).toBe(a0);
    expect(links[0]!.ackGroups).toEqual([a0]);
    router.flush();
    expect(router.acceptRequest({ type: TYPE, id }, TYPE, payload(4), 8, undefined)).toBe(4);
    expect(links[0]!.ackGroups).toEqual([a0]);
    expect(links[0]!.openAck).toBe(null);
    router.flush();
    expect(drainRecords(rings[0]!, names).map((r) => [r[E_HSEQ], r[E_REPLY_TO]])).toEqual([
      [1, 0],
      [2, 7],
      [3, 0],
      [4, 8],
    ]);
  });

  it('counts accepted messages alive in the control block when they are published, not before', async () => {
    const { router, control, partitioner } = setup();
    for (let i = 0; i < 5; i++) router.accept({ type: TYPE, id: idOn(partitioner, i % 2) }, TYPE, payload(4), 0, undefined);
    expect(router.unpublished).toBe(5);
    expect(control.alive()).toBe(0);
    // accept() scheduled a flush.
    await turn();
    expect(router.unpublished).toBe(0);
    expect(control.alive()).toBe(5);
  });

  it('writes nothing while paused (a recovery rolls back), and everything in order once resumed', () => {
    const { router, rings, partitioner, names } = setup();
    const id = idOn(partitioner, 0);
    router.paused = true;
    router.accept({ type: TYPE, id }, TYPE, payload(4), 0, undefined);
    router.pushAll([Kind.Barrier, 1], 16);
    router.accept({ type: TYPE, id }, TYPE, payload(4), 0, undefined);
    router.flush();
    expect(rings[0]!.isEmpty()).toBe(true);
    router.paused = false;
    router.flush();
    expect(drainRecords(rings[0]!, names).map((r) => (r[0] === Kind.Msg ? `msg ${String(r[E_HSEQ])}` : `barrier ${String(r[1])}`))).toEqual(['msg 1', 'barrier 1', 'msg 2']);
    expect(drainRecords(rings[1]!, names).map((r) => r[0])).toEqual([Kind.Barrier]);
  });
});

describe('Router: ingress backpressure', () => {
  it('a released batch whose accepting fails partway says which sends were accepted (they will be applied), not a plain failure', async () => {
    const { router, control, links, partitioner } = setup();
    const outcome = async (failAt: number): Promise<WeftError> => {
      setDirty(control, 0, SETTINGS.cacheSize + 1);
      router.flush();
      const ids = [0, 1, 2].map((k) => idOn(partitioner, 0, k * 10_000));
      const promises = ids.map((id) => router.wait(TYPE, id, TYPE, payload(4), undefined));
      expect(new Set(promises).size).toBe(1);
      // The failure of an internal step (not a refusal), at the failAt-th send released.
      const out = links[0]!.out;
      const push = out.push.bind(out);
      let pushes = 0;
      out.push = (record: unknown, weight?: number): boolean => {
        if (++pushes === failAt) throw new Error('the outbound broke');
        return push(record, weight);
      };
      setDirty(control, 0, 0);
      router.flush();
      await turn();
      out.push = push;
      for (const g of links[0]!.ackGroups.splice(0)) g.resolve();
      return promises[0]!.then(
        () => {
          throw new Error('the batch resolved');
        },
        (err: WeftError) => err,
      );
    };
    // The first send fails: nothing of the batch was accepted, the failure as it is.
    const none = await outcome(1);
    expect(none.message).toBe('the outbound broke');
    // The third fails: two were accepted before it and will be applied.
    const some = await outcome(3);
    expect(some).toBeInstanceOf(WeftError);
    expect(some.code).toBe('ERR_WEFT_INTERNAL');
    expect(some.message).toBe(
      'the outbound broke (this send waited for room together with others and shares their outcome: 2 of the 3 were accepted before the failure and will be applied, the others were not; resend only with an idempotency key)',
    );
    expect((some.cause as Error).message).toBe('the outbound broke');
  });

  it('throttles sends while a shard holds more dirty instances than its cache, and releases them below 3/4 of it', async () => {
    const s = setup();
    const { router, control } = s;
    expect(router.throttled()).toBe(false);
    setDirty(control, 1, SETTINGS.cacheSize + 1);
    // Read at every flush (and every 64 sends).
    router.flush();
    expect(router.throttled()).toBe(true);
    let released = false;
    void router.waitForRoom().then(() => (released = true));
    expect(router.waiting).toBe(1);
    // Still above 3/4 of the cache: the wait goes on.
    expect(await releasedAfterFlush(s, 1, 80, () => released)).toBe(false);
    expect(await releasedAfterFlush(s, 1, 75, () => released)).toBe(true);
    expect(router.waiting).toBe(0);
    expect(router.throttled()).toBe(false);
  });

  it('notices dirty counts between flushes every 64 sends', () => {
    const { router, control } = setup();
    router.flush();
    setDirty(control, 0, SETTINGS.cacheSize + 1);
    const results: boolean[] = [];
    for (let i = 0; i < 64; i++) results.push(router.throttled());
    expect(results.slice(0, 63).every((t) => !t)).toBe(true);
    expect(results[63]).toBe(true);
  });

  it('does not hold sends back for dirty instances without periodic checkpoints (nothing would take them)', () => {
    const { router, control } = setup({ settings: { checkpointIntervalMs: 0 } });
    setDirty(control, 0, 10 * SETTINGS.cacheSize);
    router.flush();
    expect(router.dirtyOver(0)).toBe(false);
    expect(router.throttled()).toBe(false);
  });

  it('throttles sends once more than 32 frames wait for room in full rings, and releases them as the shard drains', async () => {
    const { router, rings, partitioner, names } = setup({ ringBytes: 4096 });
    const id = idOn(partitioner, 0);
    let accepted = 0;
    while (!router.throttled()) {
      if (accepted > 10_000) throw new Error('never throttled after 10000 sends into a 4 KiB ring');
      router.accept({ type: TYPE, id }, TYPE, payload(600), 0, undefined);
      router.flush();
      accepted++;
    }
    expect(router.spillDepth()).toBeGreaterThan(32);
    let released = false;
    void router.waitForRoom().then(() => (released = true));
    // The shard reads its ring and main flushes again, until every message got through.
    const hseqs: number[] = [];
    for (let round = 0; hseqs.length < accepted; round++) {
      if (round > 10_000) throw new Error(`only ${hseqs.length} of ${accepted} messages arrived`);
      for (const r of drainRecords(rings[0]!, names)) hseqs.push(r[E_HSEQ] as number);
      router.flush();
    }
    await turn();
    expect(released).toBe(true);
    expect(router.spillDepth()).toBe(0);
    // Nothing lost, nothing reordered.
    expect(hseqs).toEqual(Array.from({ length: accepted }, (_, i) => i + 1));
  });

  it('releases waiting sends a slice of 2048 per macrotask (the host event loop runs in between)', async () => {
    const { router, control } = setup();
    const released = waitingSends(router, control, 5000);
    setDirty(control, 0, 0);
    router.flush();
    expect(router.waiting).toBe(5000 - 2048);
    // Not in a microtask: the next slice waits for the next macrotask.
    await Promise.resolve();
    expect(router.waiting).toBe(5000 - 2048);
    // The rest on the flushes this one scheduled, one slice per macrotask.
    await turn();
    expect(router.waiting).toBe(5000 - 4096);
    await turn();
    expect(router.waiting).toBe(0);
    expect(released()).toBe(5000);
  });

  it('holds sends back while an egress is full, until it has room again', async () => {
    const { router } = setup();
    const egress = { name: 'test/out' } as EgressChannel;
    router.egressFullChanged(true, egress);
    expect(router.egressFull).toBe(1);
    expect(router.throttled()).toBe(true);
    let released = false;
    void router.waitForRoom().then(() => (released = true));
    router.flush();
    await turn();
    expect(released).toBe(false);
    router.egressFullChanged(false, egress);
    expect(router.egressFull).toBe(0);
    await turn();
    expect(released).toBe(true);
    expect(router.egressOverBacklog).toBe(0);
  });

  it('lets sends go on after waiting egressFullWaitMs for a full egress, and counts it', async () => {
    const { router } = setup({ settings: { egressFullWaitMs: 20 } });
    const egress = { name: 'test/out' } as EgressChannel;
    const warnings: string[] = [];
    const onWarning = (w: Error): void => void warnings.push(w.message);
    process.on('warning', onWarning);
    try {
      router.egressFullChanged(true, egress);
      // The wait is bounded by the router's timer; this bound only makes a broken timer fail clearly.
      const outcome = await Promise.race([router.waitForRoom().then(() => 'released'), new Promise((resolve) => setTimeout(resolve, 5000, 'still waiting after 5 s').unref())]);
      expect(outcome).toBe('released');
      expect(router.egressOverBacklog).toBe(1);
      // The egress stays full but no longer holds sends back.
      expect(router.egressFull).toBe(1);
      expect(router.throttled()).toBe(false);
      await turn();
      expect(warnings.filter((w) => w.includes('egressFullWaitMs'))).toHaveLength(1);
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('never waits for egresses with egressFullWaitMs 0', () => {
    const { router } = setup({ settings: { egressFullWaitMs: 0 } });
    router.egressFullChanged(true, { name: 'test/out' } as EgressChannel);
    expect(router.egressFull).toBe(1);
    expect(router.throttled()).toBe(false);
  });

  it('at close, stops waiting for egresses and tells when released sends published nothing', async () => {
    const s = setup();
    const { router, control, allReleased } = s;
    router.egressFullChanged(true, { name: 'test/out' } as EgressChannel);
    setDirty(control, 0, SETTINGS.cacheSize + 1);
    router.flush();
    let released = false;
    void router.waitForRoom().then(() => (released = true));
    router.close();
    // Full egresses no longer hold anything back after close(); an egress getting full neither.
    router.egressFullChanged(true, { name: 'test/other' } as EgressChannel);
    await turn();
    expect(released).toBe(false);
    expect(await releasedAfterFlush(s, 0, 0, () => released)).toBe(true);
    expect(allReleased()).toBe(1);
  });

  it('releaseAll wakes every waiting send at once (the engine closed or failed)', async () => {
    const { router, control } = setup();
    const released = waitingSends(router, control, 5000);
    router.releaseAll();
    expect(router.waiting).toBe(0);
    await Promise.resolve();
    expect(released()).toBe(5000);
  });
});

describe('Router: waiting sends (no closure or promise per send)', () => {
  /** Acknowledges every host message of `link` up to `hseq` as committed (what the commit gate does at COMMITTED). */
  function commitUpTo(link: ShardLink, hseq: number): void {
    link.committedAck = hseq + 1;
    link.resolveCommitted();
  }

  it('queues waiting sends in batches of 1024 sharing one promise, accepts them in order, and settles each batch with its acknowledgements', async () => {
    const { router, control, links, rings, partitioner, names } = setup();
    setDirty(control, 0, SETTINGS.cacheSize + 1);
    router.flush();
    expect(router.throttled()).toBe(true);
    const ids = [idOn(partitioner, 0), idOn(partitioner, 1)];
    const promises: Array<Promise<void>> = [];
    for (let i = 0; i < 2500; i++) promises.push(router.wait(TYPE, ids[i % 2]!, TYPE, payload(4), undefined));
    expect(router.waiting).toBe(2500);
    expect(new Set(promises).size).toBe(3);
    expect(router.hseq).toBe(0);
    let settled = 0;
    for (const p of new Set(promises)) void p.then(() => settled++);
    setDirty(control, 0, 0);
    router.flush();
    // Two batches per macrotask: the third on the next.
    expect(router.waiting).toBe(452);
    expect(router.hseq).toBe(2048);
    await turn();
    expect(router.waiting).toBe(0);
    expect(router.hseq).toBe(2500);
    router.flush();
    // In acceptance order on each ring: hseq i + 1 went to ids[i % 2].
    const seen = [drainRecords(rings[0]!, names), drainRecords(rings[1]!, names)].map((recs) => recs.map((r) => r[E_HSEQ] as number));
    expect(seen[0]).toEqual(Array.from({ length: 1250 }, (_, i) => 2 * i + 1));
    expect(seen[1]).toEqual(Array.from({ length: 1250 }, (_, i) => 2 * i + 2));
    // Released in one flush, the first two batches joined one acknowledgement group per shard
    // (hseqs up to 2048), the third one the groups of the next flush: a batch resolves once both
    // shards' groups holding its sends are committed, not before.
    commitUpTo(links[0]!, 2499);
    await turn();
    expect(settled).toBe(0);
    commitUpTo(links[1]!, 2048);
    await turn();
    expect(settled).toBe(2);
    commitUpTo(links[1]!, 2500);
    await turn();
    expect(settled).toBe(3);
  });

  it('a batch sent to two shards whose groups end differently says so: one committed and one lost is neither success nor a plain failure', async () => {
    const { router, control, links, partitioner } = setup();
    const outcome = async (endings: Array<'commit' | 'lost' | 'deferred'>): Promise<unknown> => {
      setDirty(control, 0, SETTINGS.cacheSize + 1);
      router.flush();
      const p = router.wait(TYPE, idOn(partitioner, 0), TYPE, payload(4), undefined);
      void router.wait(TYPE, idOn(partitioner, 1), TYPE, payload(4), undefined);
      setDirty(control, 0, 0);
      router.flush();
      await turn();
      endings.forEach((e, s) => {
        const g = links[s]!.ackGroups.shift()!;
        if (e === 'commit') g.resolve();
        else if (e === 'lost') g.reject(new WeftError('ERR_WEFT_CLOSED', 'weft closed'));
        else g.reject(new WeftError('ERR_WEFT_DEFERRED', 'kept for the next start'));
      });
      return p.then(
        () => 'resolved',
        (err: WeftError) => err,
      );
    };
    expect(await outcome(['commit', 'commit'])).toBe('resolved');
    expect(((await outcome(['lost', 'lost'])) as WeftError).message).toBe('weft closed');
    expect(((await outcome(['commit', 'deferred'])) as WeftError).code).toBe('ERR_WEFT_DEFERRED');
    const mixed = (await outcome(['commit', 'lost'])) as WeftError;
    expect(mixed.code).toBe('ERR_WEFT_CLOSED');
    expect(mixed.message).toMatch(/^weft closed \(.*some of them were committed, some not.*idempotency key\)$/);
    const mixedDeferred = (await outcome(['deferred', 'lost'])) as WeftError;
    expect(mixedDeferred.message).toMatch(/some of them were committed, some not/);
  });

  it('releases one slice of waiting sends per macrotask, also when the released sends schedule flushes of their own', async () => {
    const { router, control, partitioner } = setup();
    setDirty(control, 0, SETTINGS.cacheSize + 1);
    router.flush();
    const ids = [idOn(partitioner, 0), idOn(partitioner, 1)];
    for (let i = 0; i < 10_000; i++) void router.wait(TYPE, ids[i % 2]!, TYPE, payload(4), undefined);
    setDirty(control, 0, 0);
    router.flush();
    expect(router.waiting).toBe(10_000 - 2048);
    // Each accepted send scheduled a flush (a microtask): they run, and release nothing more.
    for (let i = 0; i < 10; i++) await Promise.resolve();
    expect(router.waiting).toBe(10_000 - 2048);
    await turn();
    expect(router.waiting).toBe(10_000 - 2 * 2048);
  });

  it('a batch whose last send goes to another shard than the ones before it still waits for every shard it sent to', async () => {
    const { router, control, links, partitioner } = setup();
    setDirty(control, 0, SETTINGS.cacheSize + 1);
    router.flush();
    const a = idOn(partitioner, 0);
    const b = idOn(partitioner, 1);
    const promises: Array<Promise<void>> = [];
    for (let i = 0; i < 10; i++) promises.push(router.wait(TYPE, a, TYPE, payload(4), undefined));
    promises.push(router.wait(TYPE, b, TYPE, payload(4), undefined));
    expect(new Set(promises).size).toBe(1);
    let settled = false;
    void promises[0]!.then(() => (settled = true));
    setDirty(control, 0, 0);
    router.flush();
    expect(router.hseq).toBe(11);
    await turn();
    // Shard 1's send (hseq 11) is committed; shard 0's ten are not: the batch must not resolve.
    commitUpTo(links[1]!, 11);
    await turn();
    expect(settled).toBe(false);
    commitUpTo(links[0]!, 10);
    await turn();
    expect(settled).toBe(true);
  });

  it('refuses a released batch as a whole when the engine closed or failed meanwhile, and lets waiting requests go on in order', async () => {
    const shards = 2;
    const names = new NameTable([TYPE]);
    const bells = Doorbell.create(shards + 1);
    const control = ControlBlock.create(shards);
    const slabs = new LogSlabs(shards);
    const links = Array.from({ length: shards }, (_, s) => {
      const link = new ShardLink(s, slabs, 1);
      link.out = new Outbound(Ring.create(1 << 20), 1 + s, bells, wireEncoder(names));
      return link;
    });
    let refusal: Error | undefined;
    const router = new Router(new Partitioner(shards, 64), links, SETTINGS, () => {}, () => refusal);
    routers.push(router);
    router.connect(control);
    setDirty(control, 0, SETTINGS.cacheSize + 1);
    router.flush();
    const order: string[] = [];
    const first = router.wait(TYPE, 'a', TYPE, payload(4), undefined);
    router.waitThen((what: string) => order.push(what), 'request');
    const second = router.wait(TYPE, 'b', TYPE, payload(4), undefined);
    expect(second).toBe(first);
    refusal = new Error('closed');
    router.releaseAll();
    expect(order).toEqual(['request']);
    expect(router.waiting).toBe(0);
    expect(router.hseq).toBe(0);
    await expect(first).rejects.toThrow('closed');
  });

  it('in a loop that never yields, moves spilled frames into the rings and releases waiting sends as the shard reads (no flush runs)', async () => {
    const { router, rings, partitioner, names } = setup({ ringBytes: 64 * 1024 });
    const id = idOn(partitioner, 0);
    // No flush and no turn of the event loop from here on: only accept() and wait() run.
    const hseqs: number[] = [];
    const read = (): void => {
      for (const r of drainRecords(rings[0]!, names)) if (r[0] === Kind.Msg) hseqs.push(r[E_HSEQ] as number);
    };
    let sends = 0;
    while (!router.throttled()) {
      if (sends > 100_000) throw new Error('never throttled after 100000 sends into a 64 KiB ring');
      router.accept({ type: TYPE, id }, TYPE, payload(200), 0, undefined);
      sends++;
    }
    // Frames were published as they were cut: the shard can read while the loop goes on.
    read();
    expect(hseqs.length).toBeGreaterThan(0);
    let maxWaiting = 0;
    for (let i = 0; i < 200_000; i++) {
      void router.wait(TYPE, id, TYPE, payload(200), undefined);
      sends++;
      maxWaiting = Math.max(maxWaiting, router.waiting);
      if (i % 256 === 255) read();
    }
    // The shard kept reading and the waiting sends kept moving: far fewer than sent ever waited.
    expect(maxWaiting).toBeLessThan(20_000);
    // The loop ends: flushes, and one slice of waiting sends per macrotask.
    router.flush();
    for (let round = 0; hseqs.length < sends; round++) {
      if (round > 100_000) throw new Error(`only ${hseqs.length} of ${sends} messages arrived`);
      read();
      router.flush();
      if (router.waiting > 0) await turn();
    }
    expect(hseqs).toEqual(Array.from({ length: sends }, (_, i) => i + 1));
  });
});
