/**
 * Main's side of one shard: what main keeps for it across worker generations. The outbound queue
 * toward its ring (replaced at each generation), the resend log, the acknowledgement groups of the
 * host sends routed to it, and what the shard reported since its last barrier (its ack watermark,
 * the host messages it parked, egress records, durable replies), which the commit gate
 * (commit-gate.ts) files by epoch. Plain fields: the router touches them per message.
 */
import type { Outbound } from '../contract/outbound.js';
import type { LogSlabs } from '../internal/log-slabs.js';
import { ResendLog } from './resend-log.js';

/**
 * Host sends routed to one shard between two flushes: they resolve together, when the committed
 * acknowledgement watermark of their shard passes `hseq`.
 */
export interface AckGroup {
  /** lowest hseq in the group */
  first: number;
  /** highest hseq in the group: the group resolves when the committed watermark passes it */
  hseq: number;
  promise: Promise<void>;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** An egress record as a shard reports it. */
export type EgressRecord_ = [name: string, typename: string, payload: Uint8Array];
/** A reply to a durable request, held until the replying invocation's epoch commits. */
export type HeldReply = [requestId: number, typename: string, payload: Uint8Array];

export class ShardLink {
  readonly shard: number;
  /** Toward the shard's ring; set by each generation (see Weft's #startPool). */
  out!: Outbound;
  readonly log: ResendLog;
  /** The group host sends join until the next flush, or null. */
  openAck: AckGroup | null = null;
  /** Groups not yet resolved, oldest first. */
  readonly ackGroups: AckGroup[] = [];
  /** The shard's acknowledgement watermark as last reported, and as of the last commit. */
  lastAck = 0;
  committedAck = 0;
  /**
   * hseqs below the ack watermark still pending (messages of a paused remote address, see
   * HostAcks), as last reported, and as of the last commit.
   */
  lastPending: number[] = [];
  committedPending: number[] = [];
  /** Reported since the shard's last barrier: they belong to the epoch that barrier closes. */
  egressSince: EgressRecord_[] = [];
  replySince: HeldReply[] = [];
  /** The watchdog's last heartbeat seen, and when it changed (see Supervisor). */
  beat = 0;
  beatSeenAt = 0;

  constructor(shard: number, slabs: LogSlabs, openEpoch: number) {
    this.shard = shard;
    this.log = new ResendLog(shard, slabs, openEpoch);
  }

  /**
   * Host messages `first`..`last` of this shard are all below its committed acknowledgement watermark, and
   * some of them wait for a paused remote address in the committed checkpoint.
   */
  keptAtCommit(first: number, last: number): boolean {
    const pending = this.committedPending;
    return pending.length > 0 && last < this.committedAck && pending.some((h) => h >= first && h <= last);
  }

  /** COMMITTED: resolves the groups below the committed watermark (except those kept by a remote pause). */
  resolveCommitted(): void {
    const wm = this.committedAck;
    const groups = this.ackGroups;
    const pending = this.committedPending;
    if (pending.length === 0) {
      let i = 0;
      while (i < groups.length && groups[i]!.hseq < wm && groups[i] !== this.openAck) groups[i++]!.resolve();
      if (i > 0) groups.splice(0, i);
    } else {
      // Some messages below the watermark wait out a remote pause: their groups stay, the
      // others resolve.
      let i = 0;
      let kept = 0;
      for (; i < groups.length && groups[i]!.hseq < wm && groups[i] !== this.openAck; i++) {
        const g = groups[i]!;
        if (pending.some((h) => h >= g.first && h <= g.hseq)) groups[kept++] = g;
        else g.resolve();
      }
      if (i > kept) groups.splice(kept, i - kept);
    }
  }

  /** A recovery voids what the shard reported after the last commit: it will report it again. */
  rollBack(): void {
    this.egressSince = [];
    this.replySince = [];
    this.lastAck = this.committedAck;
    this.lastPending = this.committedPending;
    this.openAck = null;
  }
}
