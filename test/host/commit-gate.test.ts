/**
 * The commit gate (src/host/commit-gate.ts) and the resend log (src/host/resend-log.ts) without
 * worker threads: the test plays the shards' reports (acks, barriers, egress records, replies)
 * and the coordinator's commits.
 */
import { describe, expect, it } from 'vitest';
import { Kind, envelope } from '../../src/contract/envelope.js';
import { CommitGate } from '../../src/host/commit-gate.js';
import type { EgressChannel } from '../../src/host/egress.js';
import type { Requests } from '../../src/host/requests.js';
import { LOG_KEEP_SLOTS } from '../../src/host/resend-log.js';
import { ShardLink, type AckGroup } from '../../src/host/shard-link.js';
import { quietDeferred } from '../../src/internal/deferred.js';
import { LogSlabs } from '../../src/internal/log-slabs.js';
import { encodeBatch } from '../../src/transport/framing.js';

type Committed = Array<[epoch: number, seq: number, typename: string, payload: Uint8Array]>;

function setup(shards = 2) {
  const slabs = new LogSlabs(shards);
  const links = Array.from({ length: shards }, (_, s) => new ShardLink(s, slabs, 1));
  const released: Array<[number, string]> = [];
  const requests = { releaseDurable: (id: number, typename: string) => void released.push([id, typename]) } as unknown as Requests;
  const egress = new Map<string, Committed>();
  const deadLetters: string[] = [];
  const wanted = { count: 0 };
  const gate = new CommitGate(links, requests, {
    channel: (name) => ({ committed: (list: Committed) => egress.set(name, [...(egress.get(name) ?? []), ...list]) }) as unknown as EgressChannel,
    deadLetterCommitted: (typename) => void deadLetters.push(typename),
    wanted: () => void wanted.count++,
  });
  return { gate, links, released, egress, deadLetters, wanted };
}

/** An ack group of host messages `first`..`last`, as the router opens them. */
function group(link: ShardLink, first: number, last: number): AckGroup & { settled: () => string } {
  let state = 'pending';
  const g = { first, hseq: last, ...quietDeferred() };
  g.promise.then(
    () => (state = 'resolved'),
    (err: Error) => (state = `rejected: ${err.message}`),
  );
  link.ackGroups.push(g);
  return Object.assign(g, { settled: () => state });
}

const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
const bytes = (n: number): Uint8Array => new Uint8Array([n]);

describe('CommitGate', () => {
  it('resolves sends when the epoch whose barrier their ack preceded commits, not before', async () => {
    const { gate, links } = setup();
    const [l0, l1] = links as [ShardLink, ShardLink];
    const a = group(l0, 1, 3);
    const b = group(l0, 4, 5);
    const c = group(l1, 6, 6);
    // Shard 0 finished hseq < 4 before BARRIER(1), the rest after it.
    gate.onAck(l0, 4, undefined);
    gate.onBarrier(l0, 1);
    gate.onAck(l0, 6, undefined);
    gate.onAck(l1, 7, undefined);
    gate.onBarrier(l1, 1);
    await settle();
    expect([a.settled(), b.settled(), c.settled()]).toEqual(['pending', 'pending', 'pending']);
    gate.committed(1);
    await settle();
    expect([a.settled(), b.settled(), c.settled()]).toEqual(['resolved', 'pending', 'resolved']);
    expect(l0.ackGroups).toEqual([b]);
    gate.onBarrier(l0, 2);
    gate.onBarrier(l1, 2);
    gate.committed(2);
    await settle();
    expect(b.settled()).toBe('resolved');
    expect(links.map((l) => l.ackGroups.length)).toEqual([0, 0]);
  });

  it('keeps the sends of messages parked for a paused remote address, and rejects them as deferred', async () => {
    const { gate, links } = setup(1);
    const l0 = links[0]!;
    const a = group(l0, 1, 2);
    const b = group(l0, 3, 4);
    gate.onAck(l0, 5, [3]);
    gate.onBarrier(l0, 1);
    gate.committed(1);
    await settle();
    expect([a.settled(), b.settled()]).toEqual(['resolved', 'pending']);
    expect(gate.keptAtCommit(3)).toBe(true);
    expect(gate.keptAtCommit(4)).toBe(false);
    // The shard's next ack no longer lists it, but its watermark has not passed it again: still pending.
    gate.onAck(l0, 5, []);
    expect(l0.lastPending).toEqual([]);
    gate.rejectSends(new Error('closed'), () => new Error('deferred'));
    await settle();
    expect(b.settled()).toBe('rejected: deferred');
  });

  it('files egress records and durable replies under the barrier that follows them, and hands them over at its commit', () => {
    const { gate, links, released, egress, deadLetters, wanted } = setup();
    const [l0, l1] = links as [ShardLink, ShardLink];
    expect(gate.hostWaits()).toBe(false);
    gate.onEgress(l0, 'out', 't', bytes(1));
    gate.onEgress(l1, 'weft/dead-letters', 'dl', bytes(2));
    gate.holdReply(l1, 7, 'r', bytes(3));
    // The host waits for the next commit now: a checkpoint held for a reply must start.
    expect(wanted.count).toBe(3);
    expect(gate.hostWaits()).toBe(true);
    gate.onBarrier(l0, 1);
    gate.onBarrier(l1, 1);
    gate.onEgress(l0, 'out', 't', bytes(4));
    gate.holdReply(l0, 8, 'r2', bytes(5));
    gate.onBarrier(l0, 2);
    const activity = gate.activity;
    expect(activity).toBeGreaterThan(0);
    const records = gate.takeForCommit(1);
    expect(records.map((r) => r[2][0])).toEqual([1, 2]);
    gate.committed(1);
    expect(egress.get('out')?.map(([e, seq, , p]) => [e, seq, p[0]])).toEqual([[1, 0, 1]]);
    expect(egress.get('weft/dead-letters')?.map(([e, seq, , p]) => [e, seq, p[0]])).toEqual([[1, 1, 2]]);
    expect(deadLetters).toEqual(['dl']);
    expect(released).toEqual([[7, 'r']]);
    gate.onBarrier(l1, 2);
    expect(gate.takeForCommit(2).map((r) => r[2][0])).toEqual([4]);
    gate.committed(2);
    expect(released).toEqual([
      [7, 'r'],
      [8, 'r2'],
    ]);
    // Everything reported went into a barrier's epoch: nothing waits for a later commit.
    expect(gate.hostWaits()).toBe(false);
  });

  it('voids at a rollback what the shards reported after the committed epoch', () => {
    const { gate, links, released, egress } = setup(1);
    const l0 = links[0]!;
    gate.onAck(l0, 3, undefined);
    gate.onBarrier(l0, 1);
    gate.committed(1);
    gate.onAck(l0, 9, [5]);
    gate.onEgress(l0, 'out', 't', bytes(1));
    gate.holdReply(l0, 7, 'r', bytes(2));
    gate.onBarrier(l0, 2);
    gate.onEgress(l0, 'out', 't', bytes(3));
    gate.rollBack(1);
    expect([l0.lastAck, l0.lastPending, l0.egressSince, l0.replySince]).toEqual([3, [], [], []]);
    expect(gate.takeForCommit(2)).toEqual([]);
    gate.onBarrier(l0, 2);
    gate.committed(2);
    expect(egress.size).toBe(0);
    expect(released).toEqual([]);
  });
});

describe('ResendLog', () => {
  const msg = (hseq: number): unknown[] => envelope('t/f', `id${hseq}`, null, null, 't', bytes(hseq), 0, hseq, undefined);
  const hseqs = (sent: unknown[][]): number[] => sent.map((r) => r[8] as number);

  it('keeps frames of host messages until their epoch commits, and re-sends those after the committed one in order', () => {
    const link = new ShardLink(0, new LogSlabs(1), 1);
    const frames = [
      [msg(1), msg(2)],
      [[Kind.Barrier, 1], msg(3)],
      [[Kind.Committed, 1], [Kind.Barrier, 2], msg(4)],
      [[Kind.Barrier, 3]],
    ];
    for (const records of frames) link.log.keep(encodeBatch(records), records, records.length);
    // The last frame holds no host message: not kept.
    expect(link.log.messages).toBe(4);
    link.log.committed(1);
    // The first frame's messages are tagged 1: in snapshot 1. The second one holds BARRIER(1)
    // then a message tagged 2: kept.
    expect(link.log.messages).toBe(2);
    const sent: unknown[][] = [];
    link.log.drain(1, 4, [msg(5), [Kind.Barrier, 4], msg(6)], (rec) => void sent.push(rec));
    // msg 3 is tagged 2 (after BARRIER(1)), msg 4 tagged 3; uncut records follow the last tag.
    expect(hseqs(sent)).toEqual([3, 4, 5, 6]);
    expect(link.log.messages).toBe(0);
  });

  it('re-sends only what the committed snapshot does not hold', () => {
    const link = new ShardLink(0, new LogSlabs(1), 1);
    const records = [msg(1), [Kind.Barrier, 1], msg(2), [Kind.Barrier, 2], msg(3)];
    link.log.keep(encodeBatch(records), records, records.length);
    const sent: unknown[][] = [];
    link.log.drain(2, 3, [], (rec) => void sent.push(rec));
    expect(hseqs(sent)).toEqual([3]);
    // New frames are tagged from the epoch now open.
    const next = [msg(4)];
    link.log.keep(encodeBatch(next), next, next.length);
    link.log.committed(2);
    expect(link.log.messages).toBe(1);
    link.log.committed(3);
    expect(link.log.messages).toBe(0);
  });
});

describe('ResendLog: frames without an object each', () => {
  const msg = (hseq: number, pad = 0): unknown[] => envelope('t/f', `id${hseq}`, null, null, 't', new Uint8Array(1 + pad).fill(hseq & 0xff), 0, hseq, undefined);

  it('keeps thousands of frames across slabs, re-sends them byte for byte in order, and gives every slab back as epochs commit', () => {
    const slabs = new LogSlabs(1);
    const link = new ShardLink(0, slabs, 1);
    let hseq = 0;
    // 3000 frames of 1-3 messages (about 200 bytes each: several slabs), a barrier every 500 frames.
    for (let f = 0; f < 3000; f++) {
      const records: unknown[][] = [];
      if (f > 0 && f % 500 === 0) records.push([Kind.Barrier, f / 500]);
      for (let m = 0; m < 1 + (f % 3); m++) records.push(msg(++hseq, 60));
      link.log.keep(encodeBatch(records), records, records.length);
    }
    expect(link.log.frames).toBe(3000);
    expect(link.log.messages).toBe(hseq);
    expect(slabs.slabs).toBeGreaterThan(1);
    // Epochs 1 and 2 commit: the frames of the first 1000 are released (their messages are tagged 1 and 2).
    link.log.committed(2);
    expect(link.log.frames).toBe(2000);
    const sent: unknown[][] = [];
    link.log.drain(2, 7, [], (rec) => void sent.push(rec));
    const first = 1 + [...Array(1000).keys()].reduce((n, f) => n + 1 + (f % 3), 0);
    expect(sent.map((r) => r[8])).toEqual(Array.from({ length: hseq - first + 1 }, (_, i) => first + i));
    expect(sent.every((r) => (r[6] as Uint8Array).every((b) => b === ((r[8] as number) & 0xff)))).toBe(true);
    expect(link.log.frames).toBe(0);
    // Everything released: only the current slab and the pool remain.
    expect(slabs.slabs).toBeLessThanOrEqual(17);
  });

  it('keeps its array from one checkpoint to the next instead of growing a new one after each commit', () => {
    // Each commit releases nearly every frame; a log that gave its array back at that low grew a
    // new one, slot by slot, to the next high: arrays living until a commit, copied by main's
    // scavenges (issue 13).
    const link = new ShardLink(0, new LogSlabs(1), 1);
    let hseq = 0;
    const keep = (records: unknown[][]): void => link.log.keep(encodeBatch(records), records, records.length);
    let low = Number.POSITIVE_INFINITY;
    let high = 0;
    for (let epoch = 1; epoch <= 12; epoch++) {
      // BARRIER(epoch), then the first frames of the epoch after it.
      keep([[Kind.Barrier, epoch], msg(++hseq)]);
      for (let f = 1; f < 20; f++) keep([msg(++hseq)]);
      // The epoch before commits: all but those 20 frames go.
      link.log.committed(epoch);
      expect(link.log.frames).toBe(20);
      for (let f = 20; f < 2000; f++) {
        keep([msg(++hseq)]);
        if (epoch > 2) {
          low = Math.min(low, link.log.capacity);
          high = Math.max(high, link.log.capacity);
        }
      }
    }
    expect(low).toBe(high);
    expect(low).toBeGreaterThanOrEqual(2000 * 6);
  });

  it('gives back an array a burst grew past what it keeps, once the burst commits', () => {
    const link = new ShardLink(0, new LogSlabs(1), 1);
    let hseq = 0;
    const keep = (records: unknown[][]): void => link.log.keep(encodeBatch(records), records, records.length);
    const frames = LOG_KEEP_SLOTS / 6 + 1000;
    for (let f = 0; f < frames; f++) keep([msg(++hseq)]);
    expect(link.log.capacity).toBeGreaterThan(LOG_KEEP_SLOTS);
    keep([[Kind.Barrier, 1], msg(++hseq)]);
    link.log.committed(1);
    expect(link.log.frames).toBe(1);
    keep([msg(++hseq)]);
    expect(link.log.capacity).toBeLessThan(LOG_KEEP_SLOTS);
    expect(link.log.messages).toBe(2);
  });

  it('logs the re-sent messages again as they are cut during a drain, without reading them back', () => {
    const link = new ShardLink(0, new LogSlabs(1), 1);
    for (let h = 1; h <= 6; h += 2) {
      const records = [msg(h), msg(h + 1)];
      link.log.keep(encodeBatch(records), records, records.length);
    }
    // What a recovery does: each re-sent message goes into the new outbound, whose cuts (here,
    // one per message) are logged again while the drain still runs.
    const sent: unknown[][] = [];
    link.log.drain(0, 2, [], (rec) => {
      sent.push(rec);
      link.log.keep(encodeBatch([rec]), [rec], 1);
    });
    expect(sent.map((r) => r[8])).toEqual([1, 2, 3, 4, 5, 6]);
    expect(link.log.frames).toBe(6);
    expect(link.log.messages).toBe(6);
  });
});
