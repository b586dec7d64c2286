/**
 * Main's resend log toward one shard: the frames of host messages main sent it, kept until their
 * epoch commits. After a recovery the shard restarts from the last committed snapshot, and the
 * messages that snapshot does not hold are sent again from here, in their original order.
 *
 * Keeping whole frames (as the outbound queue cuts them), not one object per message, keeps the
 * log off the per-message path and out of the GC; their bytes live in {@link LogSlabs}.
 */
import { Kind } from '../contract/envelope.js';
import type { LogSlabs } from '../internal/log-slabs.js';
import { decodeBatch } from '../transport/framing.js';

/**
 * A frame of host messages kept until their epoch commits. `start`/`end`: the epoch tag of its
 * first record and of the record after its last (a record's tag is the epoch of the next barrier
 * on its ring; BARRIER(e) records inside the frame advance it to e + 1).
 */
interface LoggedFrame {
  frame: Uint8Array;
  start: number;
  end: number;
  msgs: number;
}

export class ResendLog {
  readonly #shard: number;
  readonly #slabs: LogSlabs;
  /** Frames of host messages not yet committed, oldest first. */
  #frames: LoggedFrame[] = [];
  /** The epoch tag of the next record cut into a frame. */
  #epoch: number;

  /** @param epoch the epoch open on the shard's ring (the committed one + 1) */
  constructor(shard: number, slabs: LogSlabs, epoch: number) {
    this.#shard = shard;
    this.#slabs = slabs;
    this.#epoch = epoch;
  }

  /** Keeps a frame just cut toward the shard if it holds host messages (the outbound's onCut). */
  keep(frame: Uint8Array, records: readonly unknown[]): void {
    const start = this.#epoch;
    let msgs = 0;
    for (const rec of records) {
      const kind = (rec as unknown[])[0];
      if (kind === Kind.Msg) msgs++;
      else if (kind === Kind.Barrier) this.#epoch = ((rec as unknown[])[1] as number) + 1;
    }
    if (msgs > 0) this.#frames.push({ frame: this.#slabs.keep(this.#shard, frame), start, end: this.#epoch, msgs });
  }

  /** COMMITTED(epoch): a frame whose every message is tagged <= epoch is in the committed snapshot. */
  committed(epoch: number): void {
    const log = this.#frames;
    let h = 0;
    while (h < log.length && log[h]!.end <= epoch) h++;
    if (h > 0) for (const f of log.splice(0, h)) this.#slabs.release(this.#shard, f.frame);
  }

  /** Host messages logged and not yet committed. */
  get messages(): number {
    let n = 0;
    for (const f of this.#frames) n += f.msgs;
    return n;
  }

  /**
   * Empties the log for a recovery: calls `resend` with each host message tagged after
   * `committed` (not in its snapshot), oldest first, then with those of `uncut` (the records not
   * yet cut into a frame). From here on records are tagged with `openEpoch`, so the re-sent
   * messages, logged again as the new generation's outbound cuts them, start a new log.
   */
  drain(committed: number, openEpoch: number, uncut: readonly unknown[], resend: (record: unknown[]) => void): void {
    const logged = this.#frames;
    this.#frames = [];
    let tag = logged[0]?.start ?? this.#epoch;
    this.#epoch = openEpoch;
    for (const f of logged) {
      tag = f.start;
      for (const rec of decodeBatch(f.frame) as unknown as unknown[][]) tag = resendTagged(rec, tag, committed, resend);
      this.#slabs.release(this.#shard, f.frame);
    }
    for (const rec of uncut) tag = resendTagged(rec as unknown[], tag, committed, resend);
  }
}

/** Re-sends `rec` if it is a host message tagged after `committed`; returns the tag of the next record. */
function resendTagged(rec: unknown[], tag: number, committed: number, resend: (record: unknown[]) => void): number {
  if (rec[0] === Kind.Barrier) return (rec[1] as number) + 1;
  if (rec[0] === Kind.Msg && tag > committed) resend(rec);
  return tag;
}
