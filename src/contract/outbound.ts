/**
 * Outbound batching toward one consumer thread (another shard, or main).
 *
 * Records are gathered per destination and cut into frames of bounded size; a flush stages the
 * frames and publishes them with one index store and at most one doorbell ring. When the ring is
 * full the frames SPILL into an ordered local queue, retried before anything newer, so internal
 * traffic is never refused (refusing it could deadlock a cycle of functions across shards, the
 * ABBA problem Seastar warns of) and never reordered. A checkpoint barrier is just another record
 * in this order, so messages spilled before it still reach the consumer before it.
 */
import type { Doorbell } from '../transport/doorbell.js';
import { encodeBatch, type FrameEncoder, type FrameRecord } from '../transport/framing.js';
import type { Ring } from '../transport/ring.js';
import { Fifo } from '../internal/fifo.js';

/**
 * Frames are cut at about this many bytes (or a quarter of the ring, if smaller), so one frame
 * never hogs a ring. A frame may overshoot the target by one message, and messages are at most a
 * quarter of the ring (options.ts enforces ringBytes >= 4 × maxMessageBytes), so a frame always fits.
 */
const FRAME_TARGET_BYTES = 64 * 1024;
/** ...or this many records, which keeps decode batches cache-friendly. */
const FRAME_MAX_RECORDS = 1024;

export class Outbound {
  readonly ring: Ring;
  /** Doorbell index of the consumer thread. */
  readonly thread: number;
  readonly #bells: Doorbell;
  /**
   * Records not yet cut, `#batch[0..#count)`. One array for the outbound's life, its slots cleared
   * at each cut: a fresh array per frame grew its storage again for every frame, and under
   * request load a frame holds one or two records.
   */
  readonly #batch: unknown[] = [];
  #count = 0;
  #weight = 0;
  /** Encoded frames that did not fit, oldest first. */
  readonly #spill = new Fifo<Uint8Array>();
  #staged = false;
  /** A record that needs its consumer woken was pushed and is not yet published with a ring (see {@link push}). */
  #loud = false;
  #retired = false;
  readonly #frameTarget: number;
  readonly #encode: (records: readonly unknown[], count: number) => Uint8Array;
  /** Frames that ever had to spill (metrics). */
  spilled = 0;
  /** Records sent (metrics). */
  records = 0;
  /**
   * Sees every frame as it is cut, with the records it holds, `records[0..count)` (main keeps the
   * frames of host messages until their epoch commits, to re-send them after a recovery). The
   * frame is the encoder's buffer, and the array is reused: copy what must be kept.
   */
  onCut: ((frame: Uint8Array, records: readonly unknown[], count: number) => void) | null = null;

  /**
   * @param encoder this thread's frame encoder (with its wire names); the thread's default one
   * (`encodeBatch`) when omitted. Frames are written (or copied) right after encoding, so one
   * encoder serves every outbound of a thread.
   */
  constructor(ring: Ring, thread: number, bells: Doorbell, encoder?: FrameEncoder) {
    this.ring = ring;
    this.#encode = encoder === undefined ? encodeBatch : (records, count) => encoder.encode(records, undefined, count);
    this.thread = thread;
    this.#bells = bells;
    this.#frameTarget = Math.min(FRAME_TARGET_BYTES, ring.maxFrameBytes >> 2);
  }

  /**
   * Queues a record; `weight` approximates its encoded size. Returns true when it completed a
   * frame (cut, and staged or spilled): a producer that does not wait for its next flush may
   * {@link pump} then.
   *
   * A `quiet` record does not need its consumer woken: it is read at the consumer's next wake,
   * which a later record on the same ring is known to cause (a shard's barrier to main, which its
   * DONE follows), or which the producer makes sure of with {@link nudge} (main's periodic
   * COMMITTED to the shards). The flush that publishes only quiet records rings nobody, unless it
   * leaves the ring over half full (a consumer left asleep must not let the ring fill).
   */
  push(record: unknown, weight = 32, quiet = false): boolean {
    this.#batch[this.#count++] = record;
    this.#weight += weight;
    this.records++;
    if (!quiet) this.#loud = true;
    if (this.#weight >= this.#frameTarget || this.#count >= FRAME_MAX_RECORDS) {
      this.#cut();
      return true;
    }
    return false;
  }

  /**
   * Writes the spilled frames that fit now and publishes what is staged, without cutting the
   * current batch or asking the consumer for room: main calls it as frames are cut and while host
   * sends wait, so a host loop that does not yield keeps the shards busy (a flush only runs when
   * it yields). Returns true when frames are still spilled.
   */
  pump(beforePublish: () => void): boolean {
    if (this.#retired) return false;
    this.#drainSpill();
    this.#publish(beforePublish);
    return this.spillDepth > 0;
  }

  /**
   * Rings the consumer when it has not read everything published (quiet records it slept
   * through): for a producer whose quiet records no loud one may follow soon.
   */
  nudge(): void {
    if (!this.#retired && this.ring.unread()) this.#bells.ring(this.thread);
  }

  /** Takes the records not yet cut into a frame (a recovery moves them to a new generation). */
  takeBatch(): unknown[] {
    const batch = this.#batch.slice(0, this.#count);
    this.#clearBatch();
    return batch;
  }

  get pendingRecords(): number {
    return this.#count;
  }

  /** Frames waiting for room in the ring. */
  get spillDepth(): number {
    return this.#spill.size;
  }

  /**
   * The sleep re-check of a thread that flushed this outbound: call it after
   * `Doorbell.prepareSleep`. Returns true when a flush would make progress now (spilled frames
   * fit, or frames are staged): stay up. Otherwise it raises the room request again and returns
   * false: sleep, the consumer will ring once it frees space.
   *
   * Raising it again is what makes the sleep safe. The consumer takes a request after any drain,
   * also one that freed less than the oldest spilled frame needs, and its ring is lost while
   * this thread is still awake (the bell is not SLEEPING yet); only checking for room here would
   * then sleep with no request raised and nobody left to ring. Raised after the announcement,
   * either the consumer sees the flag and finds the bell SLEEPING, or its TAIL store came first
   * and requestRoom sees the room (Ring.requestRoom).
   */
  roomOrRequest(): boolean {
    if (this.#retired) return false;
    if (this.ring.stagedBytes > 0) return true;
    const next = this.#spill.peek();
    return next !== undefined && this.ring.requestRoom(next.byteLength);
  }

  /**
   * Stops using the ring for good (its consumer is gone and the ring may serve another pair):
   * frames are still cut and shown to {@link onCut}, then dropped; flushes do nothing.
   */
  retire(): void {
    this.#retired = true;
    this.#spill.clear();
    this.#staged = false;
  }

  /** Encodes the current batch into a frame and stages (or spills) it. */
  #cut(): void {
    const count = this.#count;
    if (count === 0) return;
    const frame = this.#encode(this.#batch as FrameRecord[], count);
    this.onCut?.(frame, this.#batch, count);
    this.#clearBatch();
    if (this.#retired) return;
    if (this.spillDepth === 0 && this.ring.tryWrite(frame)) {
      this.#staged = true;
      return;
    }
    // The encoder reuses its buffer: a frame that must wait is copied out.
    this.#spill.push(frame.slice());
    this.spilled++;
  }

  /**
   * Writes what fits (spilled frames first, then the current batch) and publishes it.
   * `beforePublish` runs right before the index store makes anything visible (the idle counter
   * must count new messages before another thread can consume them).
   * @returns true when the ring still holds back frames (the producer asked to be woken for room).
   */
  flush(beforePublish: () => void): boolean {
    if (this.#retired) return false;
    this.#drainSpill();
    this.#cut();
    this.#publish(beforePublish);
    // Full: ask the consumer to ring us when it frees space (see Ring.requestRoom). When the
    // consumer freed room meanwhile, requestRoom lowers the flag again and we write what fits; if
    // frames are still left over after that, ask again. Returning with spilled frames and no
    // request raised leaves nobody to wake this thread for room: main slept with 18 frames of a
    // 34 MB backlog spilled and its shard asleep on an empty ring (test/engine/remote.test.ts).
    // Each pass writes at least the frame requestRoom found room for, so the loop ends.
    while (this.spillDepth > 0) {
      const next = this.#spill.peek() as Uint8Array;
      if (!this.ring.requestRoom(next.byteLength)) return true;
      this.#drainSpill();
      this.#publish(beforePublish);
    }
    return false;
  }

  /** Publishes what is staged (and rings the consumer when that made anything new visible). */
  #publish(beforePublish: () => void): void {
    if (!this.#staged) return;
    beforePublish();
    this.#staged = false;
    if (this.ring.publish() && (this.#loud || this.ring.overHalf())) {
      // Loud records still held back (spilled, or not cut yet: pump() publishes without cutting)
      // must ring again when they are published: the consumer may read this publish, re-check
      // and sleep before they are.
      if (this.#count === 0 && this.#spill.size === 0) this.#loud = false;
      this.#bells.ring(this.thread);
    }
  }

  /** Forgets the records not yet cut (their slots cleared, the array kept). */
  #clearBatch(): void {
    const batch = this.#batch;
    for (let i = 0; i < this.#count; i++) batch[i] = undefined;
    this.#count = 0;
    this.#weight = 0;
  }

  #drainSpill(): void {
    for (let frame = this.#spill.peek(); frame !== undefined && this.ring.tryWrite(frame); frame = this.#spill.peek()) {
      this.#spill.shift();
      this.#staged = true;
    }
  }
}
