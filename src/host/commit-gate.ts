/**
 * The commit gate: what the host may observe only once a checkpoint commits. Send
 * acknowledgements, egress records and replies to durable requests arrive from the shards before
 * their invocation is committed; the gate files each under the epoch of the next barrier on its
 * shard's ring (what a shard reports before BARRIER(e) belongs to epoch e), and releases an epoch's
 * when COMMITTED(epoch) is durable:
 * - acks: the shard's watermark at BARRIER(e) becomes its committed watermark, and the send
 *   groups below it resolve (except those holding messages parked for a paused remote address);
 * - egress records: taken into the commit's transaction ({@link takeForCommit}), then handed to
 *   their egresses;
 * - durable replies: resolve their requests.
 * A recovery voids what was filed for epochs after the committed one ({@link rollBack}).
 */
import type { EgressChannel } from './egress.js';
import { DEAD_LETTER_EGRESS } from '../module/runtime.js';
import type { Requests } from './requests.js';
import type { EgressRecord_, HeldReply, ShardLink } from './shard-link.js';

export interface CommitGateHooks {
  /** The channel of egress `name`. */
  channel(name: string): EgressChannel;
  /** A dead letter is committed (before it is handed to its egress). */
  deadLetterCommitted(typename: string, payload: Uint8Array): void;
  /** The host now waits for the next commit: an egress record or a durable reply was reported. */
  wanted(): void;
}

export class CommitGate {
  readonly #links: readonly ShardLink[];
  readonly #requests: Requests;
  readonly #hooks: CommitGateHooks;
  /** Per epoch: each shard's ack watermark at its barrier. */
  readonly #ackAtBarrier = new Map<number, number[]>();
  /** Per epoch: each shard's pending hseqs (see ShardLink.lastPending) at its barrier. */
  readonly #pendingAtBarrier = new Map<number, number[][]>();
  readonly #egressByEpoch = new Map<number, EgressRecord_[]>();
  readonly #durableReplies = new Map<number, HeldReply[]>();
  /** The records of the epoch being committed, numbered (their seq is the index). */
  #egressCommitting: EgressRecord_[] = [];
  /** Changes with every report that a checkpoint must capture (the coordinator's quiescence test). */
  activity = 0;

  constructor(links: readonly ShardLink[], requests: Requests, hooks: CommitGateHooks) {
    this.#links = links;
    this.#requests = requests;
    this.#hooks = hooks;
  }

  /** A shard wrote an egress record. */
  onEgress(link: ShardLink, name: string, typename: string, payload: Uint8Array): void {
    this.activity++;
    link.egressSince.push([name, typename, payload]);
    this.#hooks.wanted();
  }

  /** A reply to a durable request: held until the epoch holding the replying invocation commits. */
  holdReply(link: ShardLink, requestId: number, typename: string, payload: Uint8Array): void {
    // Activity, for the same reason as an ack.
    link.replySince.push([requestId, typename, payload]);
    this.activity++;
    this.#hooks.wanted();
  }

  /** A shard's acknowledgement watermark `wm` and the host messages below it it still holds (`reported`). */
  onAck(link: ShardLink, wm: number, reported: number[] | undefined): void {
    const last = link.lastPending;
    let pending = reported ?? [];
    if (last.length > 0) {
      // A pending message the shard's watermark has not passed (again) is still pending: a
      // shard restarted by a recovery replays parked messages as ordinary ones.
      const carried = last.filter((h) => h >= wm && !pending.includes(h));
      if (carried.length > 0) pending = [...pending, ...carried];
    }
    if (pending.length > 0 || last.length > 0) {
      // Parked messages completed (or were parked): their sends wait for the next commit.
      link.lastPending = pending;
      this.activity++;
    }
    if (wm > link.lastAck) {
      link.lastAck = wm;
      // Host sends wait for the checkpoint that holds this ack: it is activity, whatever
      // else happened. An invocation counts as activity when it starts; one that completes
      // after the last barrier without changing state (an async function, a remote call
      // that outlasts the checkpoint interval) acks its message after that barrier, and the
      // periodic checkpoint would otherwise find the engine quiescent and leave the send
      // waiting for unrelated traffic.
      this.activity++;
    }
  }

  /**
   * The host waits for the next commit: a send's acknowledgement, an egress record or a durable
   * reply reported since the last barrier, or a send group not resolved yet.
   */
  hostWaits(): boolean {
    for (const link of this.#links) {
      if (link.ackGroups.length > 0 || link.egressSince.length > 0 || link.replySince.length > 0) return true;
    }
    return false;
  }

  /** BARRIER(epoch) from a shard: what it reported since its previous barrier belongs to `epoch`. */
  onBarrier(link: ShardLink, epoch: number): void {
    const shards = this.#links.length;
    const s = link.shard;
    let acks = this.#ackAtBarrier.get(epoch);
    if (acks === undefined) {
      acks = new Array<number>(shards).fill(0);
      this.#ackAtBarrier.set(epoch, acks);
    }
    acks[s] = link.lastAck;
    let pending = this.#pendingAtBarrier.get(epoch);
    if (pending === undefined) {
      pending = Array.from({ length: shards }, () => []);
      this.#pendingAtBarrier.set(epoch, pending);
    }
    pending[s] = link.lastPending;
    const since = link.egressSince;
    if (since.length > 0) {
      const bucket = this.#egressByEpoch.get(epoch);
      if (bucket === undefined) this.#egressByEpoch.set(epoch, since);
      else bucket.push(...since);
      link.egressSince = [];
    }
    const replies = link.replySince;
    if (replies.length > 0) {
      let list = this.#durableReplies.get(epoch);
      if (list === undefined) this.#durableReplies.set(epoch, (list = []));
      list.push(...replies);
      link.replySince = [];
    }
  }

  /**
   * The egress records of the epochs up to `epoch` (the one committing), to be written in its
   * commit's transaction; they are handed to their egresses at {@link committed}.
   */
  takeForCommit(epoch: number): EgressRecord_[] {
    let out: EgressRecord_[] = [];
    for (const [e, records] of this.#egressByEpoch) {
      if (e > epoch) continue;
      this.#egressByEpoch.delete(e);
      out = out.length === 0 ? records : out.concat(records);
    }
    this.#egressCommitting = out;
    return out;
  }

  /** COMMITTED(epoch) is durable: resolves sends, frees their resend log, hands over egress records and durable replies. */
  committed(epoch: number): void {
    const acks = this.#ackAtBarrier.get(epoch);
    for (const [e] of this.#ackAtBarrier) if (e <= epoch) this.#ackAtBarrier.delete(e);
    const pendingAt = this.#pendingAtBarrier.get(epoch);
    for (const [e] of this.#pendingAtBarrier) if (e <= epoch) this.#pendingAtBarrier.delete(e);
    for (const link of this.#links) {
      const s = link.shard;
      if (acks !== undefined && acks[s]! > link.committedAck) link.committedAck = acks[s]!;
      if (pendingAt !== undefined) link.committedPending = pendingAt[s]!;
      link.resolveCommitted();
      link.log.committed(epoch);
    }
    const records = this.#egressCommitting;
    this.#egressCommitting = [];
    if (records.length > 0) this.#releaseEgress(epoch, records);
    for (const [e, replies] of this.#durableReplies) {
      if (e > epoch) continue;
      this.#durableReplies.delete(e);
      for (const [requestId, typename, payload] of replies) this.#requests.releaseDurable(requestId, typename, payload);
    }
  }

  /** The records of committed `epoch` are durable: hand them to their egresses. */
  #releaseEgress(epoch: number, records: readonly EgressRecord_[]): void {
    const byName = new Map<string, Array<[number, number, string, Uint8Array]>>();
    for (let seq = 0; seq < records.length; seq++) {
      const [name, typename, payload] = records[seq]!;
      let list = byName.get(name);
      if (list === undefined) byName.set(name, (list = []));
      list.push([epoch, seq, typename, payload]);
      if (name === DEAD_LETTER_EGRESS) this.#hooks.deadLetterCommitted(typename, payload);
    }
    for (const [name, list] of byName) this.#hooks.channel(name).committed(list);
  }

  /** A recovery rolls back to `committed`: what was reported after it is void (it will be reported again). */
  rollBack(committed: number): void {
    for (const [e] of this.#egressByEpoch) if (e > committed) this.#egressByEpoch.delete(e);
    for (const [e] of this.#durableReplies) if (e > committed) this.#durableReplies.delete(e);
    for (const [e] of this.#ackAtBarrier) if (e > committed) this.#ackAtBarrier.delete(e);
    for (const [e] of this.#pendingAtBarrier) if (e > committed) this.#pendingAtBarrier.delete(e);
    for (const link of this.#links) link.rollBack();
  }

  /** Host messages accepted and not yet committed (logged, or not yet cut into a frame). */
  uncommitted(): number {
    let n = 0;
    for (const link of this.#links) n += link.log.messages + link.out.pendingRecords;
    return n;
  }

  /**
   * Rejects every unresolved send with `err`, except those of messages the last commit holds
   * back for a paused remote address (see HostAcks): they are in the committed checkpoint and
   * applied at the next start, so they get ERR_WEFT_DEFERRED from `deferred`.
   */
  rejectSends(err: Error, deferred: () => Error): void {
    for (const link of this.#links) {
      for (const g of link.ackGroups) g.reject(link.keptAtCommit(g.first, g.hseq) ? deferred() : err);
      link.ackGroups.length = 0;
    }
  }

  /** A host message (`hseq`) is committed and waits for a paused remote address (see {@link rejectSends}). */
  keptAtCommit(hseq: number): boolean {
    return this.#links.some((link) => link.keptAtCommit(hseq, hseq));
  }
}
