/**
 * Main's resend log toward one shard: the frames of host messages main sent it, kept until their
 * epoch commits. After a recovery the shard restarts from the last committed snapshot, and the
 * messages that snapshot does not hold are sent again from here, in their original order.
 *
 * Keeping whole frames (as the outbound queue cuts them), not one object per message, keeps the
 * log off the per-message path and out of the GC; their bytes live in {@link LogSlabs}, and what
 * the log knows of each frame is a few slots of one queue ({@link SLOTS}), not an object: under
 * request load main cuts a frame per flush, tens of thousands a second, each kept until its
 * epoch commits, so objects per frame would be copied by main's scavenges (issue 13).
 */
import { Kind } from '../contract/envelope.js';
import type { LogSlabs } from '../internal/log-slabs.js';
import { decodeBatch } from '../transport/framing.js';
import { Fifo } from '../internal/fifo.js';

/**
 * Slots per frame of host messages kept until their epoch commits: the array holding its copy
 * (a slab, see LogSlabs.keepAt), its offset and length there, `start`/`end` (the epoch tag of its
 * first record and of the record after its last: a record's tag is the epoch of the next barrier
 * on its ring; BARRIER(e) records inside the frame advance it to e + 1), and its host messages.
 */
const SLOTS = 6;
const F_SLAB = 0;
const F_OFFSET = 1;
const F_LENGTH = 2;
const F_START = 3;
const F_END = 4;
const F_MSGS = 5;

/**
 * The log's array is not given back while it has up to this many slots (16,384 frames of
 * {@link SLOTS}; V8's storage behind such an array is up to ~0.9 MiB per shard). The log fills
 * for a checkpoint interval and each commit releases nearly all of it, so a queue that gave its
 * array back at each low would grow a new one to each high (see Fifo's `keep`). The array grows to
 * up to about twice the most frames the log held at once, so this covers logs that peak at about
 * 8,000 frames a checkpoint (a frame per request: 160k req/s per shard with checkpoints every 50
 * ms); a larger array is given back at a low as before.
 */
export const LOG_KEEP_SLOTS = 16_384 * SLOTS;

export class ResendLog {
  readonly #shard: number;
  readonly #slabs: LogSlabs;
  /** Frames of host messages not yet committed, oldest first, {@link SLOTS} slots each. */
  #frames = new Fifo<unknown>(LOG_KEEP_SLOTS);
  /** The epoch tag of the next record cut into a frame. */
  #epoch: number;

  /** @param epoch the epoch open on the shard's ring (the committed one + 1) */
  constructor(shard: number, slabs: LogSlabs, epoch: number) {
    this.#shard = shard;
    this.#slabs = slabs;
    this.#epoch = epoch;
  }

  /** Keeps a frame just cut toward the shard if it holds host messages (the outbound's onCut). */
  keep(frame: Uint8Array, records: readonly unknown[], count: number): void {
    const start = this.#epoch;
    let msgs = 0;
    for (let i = 0; i < count; i++) {
      const kind = (records[i] as unknown[])[0];
      if (kind === Kind.Msg) msgs++;
      else if (kind === Kind.Barrier) this.#epoch = ((records[i] as unknown[])[1] as number) + 1;
    }
    if (msgs === 0) return;
    const slabs = this.#slabs;
    const log = this.#frames;
    log.push(slabs.keepAt(this.#shard, frame));
    log.push(slabs.lastOffset);
    log.push(frame.byteLength);
    log.push(start);
    log.push(this.#epoch);
    log.push(msgs);
  }

  /** Frames kept (for tests). */
  get frames(): number {
    return this.#frames.size / SLOTS;
  }

  /** Slots of the log's array, in use or not (for tests). */
  get capacity(): number {
    return this.#frames.capacity;
  }

  /** COMMITTED(epoch): a frame whose every message is tagged <= epoch is in the committed snapshot. */
  committed(epoch: number): void {
    const log = this.#frames;
    while (log.size > 0 && (log.at(F_END) as number) <= epoch) this.#releaseHead();
  }

  /** Drops the oldest frame of `log` (its copy is released). */
  #releaseHead(log: Fifo<unknown> = this.#frames): void {
    const slab = log.shift() as Uint8Array;
    for (let i = 1; i < SLOTS; i++) log.shift();
    this.#slabs.release(this.#shard, slab);
  }

  /** Host messages logged and not yet committed. */
  get messages(): number {
    const log = this.#frames;
    let n = 0;
    for (let at = F_MSGS; at < log.size; at += SLOTS) n += log.at(at) as number;
    return n;
  }

  /**
   * Empties the log for a recovery: calls `resend` with each host message tagged after
   * `committed` (not in its snapshot), oldest first, then with those of `uncut` (the records not
   * yet cut into a frame). From here on records are tagged with `openEpoch`, so the re-sent
   * messages, logged again as the new generation's outbound cuts them, start a new log.
   */
  drain(committed: number, openEpoch: number, uncut: readonly unknown[], resend: (record: unknown[]) => void): void {
    // The re-sent messages are logged again as they are cut (into a new log): never read them here.
    const log = this.#frames;
    this.#frames = new Fifo<unknown>(LOG_KEEP_SLOTS);
    let tag = log.size > 0 ? (log.at(F_START) as number) : this.#epoch;
    this.#epoch = openEpoch;
    while (log.size > 0) {
      const slab = log.at(F_SLAB) as Uint8Array;
      const offset = log.at(F_OFFSET) as number;
      tag = log.at(F_START) as number;
      const frame = slab.subarray(offset, offset + (log.at(F_LENGTH) as number));
      for (const rec of decodeBatch(frame) as unknown as unknown[][]) tag = resendTagged(rec, tag, committed, resend);
      this.#releaseHead(log);
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
