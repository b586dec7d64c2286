/**
 * A single-producer / single-consumer byte ring on a SharedArrayBuffer: the pipe between two
 * threads. The producer stages length-prefixed frames and makes a whole batch visible with one
 * index store ({@link Ring.publish}); the consumer drains up to N frames and frees their space
 * with one index store ({@link Ring.drain}). See `layout.ts` for the memory map.
 *
 * ## Memory ordering
 * JavaScript's `Atomics` operations are sequentially consistent, and an `Atomics.store` followed
 * (in the other thread) by an `Atomics.load` that observes it creates a happens-before edge. That
 * is all the ring relies on:
 * - The producer writes frame bytes and headers with plain stores, then `Atomics.store(HEAD)`.
 *   The consumer `Atomics.load(HEAD)`s once per drain and only then reads frames below that
 *   head, so it sees complete frames.
 * - The consumer reads frames, then `Atomics.store(TAIL)`. The producer overwrites a byte only
 *   after an `Atomics.load(TAIL)` showed it free, so it never overwrites a frame still being read.
 * Each index has exactly one writer, so no read-modify-write is needed on the hot path.
 *
 * ## Wrap-around
 * Frames start on 8-byte boundaries and the capacity is a power of two, so a frame header never
 * straddles the end of the data area; a payload may, continuing at data byte 0. Splitting (instead
 * of a skip marker) means any frame up to `capacity - 8` bytes fits once the ring is empty, so a
 * producer that waits for room always makes progress. The consumer hands a split frame to its
 * callback as a copy in a private scratch buffer; an unsplit one as a view of shared memory.
 *
 * ## Corruption
 * Every header carries a check word derived from the frame length and its position
 * ({@link frameCheck}); the consumer also bounds the length by the frame limit and by the bytes
 * actually published. A header failing any of these throws `ERR_WEFT_CORRUPT_FRAME` instead of
 * being misread, and the ring stays stuck at that frame (every later drain throws the same way):
 * the caller must treat the ring as dead.
 */
import { WeftError, describe } from '../core/errors.js';
import {
  FRAME_CHECK_I32,
  FRAME_HEADER_BYTES,
  FRAME_LENGTH_I32,
  MAX_RING_CAPACITY,
  MIN_RING_CAPACITY,
  RING_CAPACITY_I32,
  RING_DATA_OFFSET,
  RING_HEAD_I32,
  RING_MAGIC,
  RING_MAGIC_I32,
  RING_TAIL_I32,
  RING_VERSION,
  RING_VERSION_I32,
  RING_WAITING_I32,
  frameCheck,
  frameFootprint,
  ringByteLength,
} from './layout.js';

/**
 * Receives one frame during {@link Ring.drain}. `frame` is valid ONLY until the callback returns:
 * it is usually a view of the shared ring memory, which the producer reuses as soon as the drain
 * ends. Copy what you keep. (Also: do not hand it to msgpackr's `unpack` directly — its native
 * decoder rejects SharedArrayBuffer views; `decodeBatch` in framing.ts reads small frames in place
 * and gives msgpackr a private copy of the others.)
 */
export type FrameHandler = (frame: Uint8Array) => void;

/**
 * Receives one frame during {@link Ring.drainAt}: the frame is `bytes[start, end)`, where `bytes`
 * is usually the ring's own memory (no view is made per frame). Valid ONLY until the callback
 * returns, as for {@link FrameHandler}; `FrameDecoder.decodeAt` in framing.ts reads it in place.
 */
export type FrameAtHandler = (bytes: Uint8Array, start: number, end: number) => void;

const hex = (n: number): string => `0x${(n >>> 0).toString(16).padStart(8, '0')}`;

function isValidCapacity(capacity: unknown): capacity is number {
  return (
    typeof capacity === 'number' &&
    Number.isInteger(capacity) &&
    capacity >= MIN_RING_CAPACITY &&
    capacity <= MAX_RING_CAPACITY &&
    (capacity & (capacity - 1)) === 0
  );
}

/**
 * One end (or both ends) of an SPSC ring. Create the shared memory once with
 * {@link Ring.create}, pass `ring.buffer` to the other thread, and {@link Ring.attach} it there.
 *
 * Exactly one thread produces (tryWrite / publish / hasRoomFor / requestRoom / overHalf / unread) and exactly one
 * thread consumes (drain / hasData / takeRoomRequest) on a given buffer; each keeps private
 * cursors in its own `Ring` object. One object may play both roles (as tests do), but two objects
 * must never play the same role on the same buffer.
 *
 * @example
 * ```ts
 * // main thread
 * const ring = Ring.create(1 << 20);
 * worker.postMessage({ ring: ring.buffer });
 * ring.tryWrite(frame1);
 * ring.tryWrite(frame2);
 * if (ring.publish()) doorbell.ring(workerIndex);
 *
 * // worker
 * const ring = Ring.attach(workerData.ring);
 * ring.drain((frame) => handle(decodeBatch(frame)), 64);
 * ```
 */
export class Ring {
  /** The ring's shared memory: post it to the other thread (it is shared, not copied), attach there. */
  readonly buffer: SharedArrayBuffer;
  /** Data capacity in bytes (a power of two). */
  readonly capacity: number;
  /**
   * The largest frame payload this ring can ever carry: `capacity - 8` (the header). A frame this
   * large fits exactly when the ring is empty.
   */
  readonly maxFrameBytes: number;

  readonly #ctl: Int32Array;
  readonly #words: Int32Array;
  readonly #data: Uint8Array;
  readonly #mask: number;

  // Producer cursors (private to the producing thread).
  /** Index after the last staged frame; runs ahead of HEAD until publish(). */
  #head: number;
  /** The HEAD value last stored, so publish() can skip a store that would change nothing. */
  #published: number;
  /** Last TAIL seen; re-read only when it says there is no room (saves cross-core traffic). */
  #tailCache: number;

  // Consumer cursor (private to the consuming thread).
  /** Index of the next frame to read; stored to TAIL once per drain. */
  #tail: number;
  /** Private copy target for frames split by the wrap-around; grown on demand. */
  #scratch: Uint8Array = new Uint8Array(0);

  /**
   * Allocates and initialises the shared memory of a ring with `capacity` data bytes.
   * @param capacity a power of two from 64 to 2^30 bytes.
   * @throws WeftError `ERR_WEFT_INVALID_ARG` when the capacity is not such a number.
   */
  static create(capacity: number): Ring {
    if (!isValidCapacity(capacity)) {
      throw new WeftError(
        'ERR_WEFT_INVALID_ARG',
        `ring capacity must be a power of two from ${MIN_RING_CAPACITY} to ${MAX_RING_CAPACITY} bytes (got ${describe(capacity)})`,
      );
    }
    const sab = new SharedArrayBuffer(ringByteLength(capacity));
    const ctl = new Int32Array(sab, 0, RING_DATA_OFFSET / 4);
    // Written before the buffer reaches any other thread (postMessage of the buffer happens
    // after), and never again: the attaching side may read these with plain loads.
    ctl[RING_MAGIC_I32] = RING_MAGIC;
    ctl[RING_VERSION_I32] = RING_VERSION;
    ctl[RING_CAPACITY_I32] = capacity;
    return new Ring(sab);
  }

  /**
   * Makes a ring that no thread uses any more empty again, for a new producer/consumer pair:
   * HEAD, TAIL and the WAITING_FOR_ROOM flag are reset. The data bytes are left as they are: a
   * consumer reads only between TAIL and HEAD, and every frame there was written by the new
   * producer (each header's check word also binds it to its position). Spares memory: a fresh
   * ring costs `capacity` bytes of zeroed memory, which the allocator may not give back to the
   * system when the old one is freed (host/spare-rings.ts).
   *
   * (A stall of test/engine/remote.test.ts once blamed on reused rings was a lost room request
   * in Outbound, with fresh rings too; see Outbound.flush and Outbound.roomOrRequest.)
   *
   * The caller guarantees that no Ring object of the old pair will be used again (their threads
   * ended, their main-thread users retired).
   * @throws WeftError `ERR_WEFT_INVALID_ARG` when `buffer` is not an initialised ring.
   */
  static recycle(buffer: SharedArrayBuffer): Ring {
    const ring = new Ring(buffer);
    Atomics.store(ring.#ctl, RING_HEAD_I32, 0);
    Atomics.store(ring.#ctl, RING_TAIL_I32, 0);
    Atomics.store(ring.#ctl, RING_WAITING_I32, 0);
    return new Ring(buffer);
  }

  /** Attaches to a ring created by {@link Ring.create} (usually in another thread). */
  static attach(buffer: SharedArrayBuffer): Ring {
    return new Ring(buffer);
  }

  /**
   * Attaches to an existing ring; same as {@link Ring.attach}.
   * @throws WeftError `ERR_WEFT_INVALID_ARG` when `buffer` is not an initialised ring.
   */
  constructor(buffer: SharedArrayBuffer) {
    if (!(buffer instanceof SharedArrayBuffer)) {
      throw new WeftError('ERR_WEFT_INVALID_ARG', `ring buffer must be a SharedArrayBuffer (got ${describe(buffer)})`);
    }
    if (buffer.byteLength < ringByteLength(MIN_RING_CAPACITY)) {
      throw new WeftError(
        'ERR_WEFT_INVALID_ARG',
        `ring buffer must be at least ${ringByteLength(MIN_RING_CAPACITY)} bytes (got ${buffer.byteLength})`,
      );
    }
    const ctl = new Int32Array(buffer, 0, RING_DATA_OFFSET / 4);
    const magic = ctl[RING_MAGIC_I32] ?? 0;
    if (magic !== RING_MAGIC) {
      throw new WeftError(
        'ERR_WEFT_INVALID_ARG',
        `ring buffer has no ring header (magic ${hex(magic)}, expected ${hex(RING_MAGIC)}); create it with Ring.create`,
      );
    }
    const version = ctl[RING_VERSION_I32] ?? 0;
    if (version !== RING_VERSION) {
      throw new WeftError('ERR_WEFT_INVALID_ARG', `ring layout version ${version} is not supported (expected ${RING_VERSION})`);
    }
    const capacity = ctl[RING_CAPACITY_I32] ?? 0;
    if (!isValidCapacity(capacity) || buffer.byteLength !== ringByteLength(capacity)) {
      throw new WeftError(
        'ERR_WEFT_INVALID_ARG',
        `ring header says capacity ${capacity}, which does not match a buffer of ${buffer.byteLength} bytes`,
      );
    }
    this.buffer = buffer;
    this.capacity = capacity;
    this.maxFrameBytes = capacity - FRAME_HEADER_BYTES;
    this.#ctl = ctl;
    this.#words = new Int32Array(buffer, RING_DATA_OFFSET, capacity / 4);
    this.#data = new Uint8Array(buffer, RING_DATA_OFFSET, capacity);
    this.#mask = capacity - 1;
    const head = Atomics.load(ctl, RING_HEAD_I32) >>> 0;
    const tail = Atomics.load(ctl, RING_TAIL_I32) >>> 0;
    this.#head = head;
    this.#published = head;
    this.#tailCache = tail;
    this.#tail = tail;
  }

  // -------------------------------------------------------------------------------------------
  // Producer side
  // -------------------------------------------------------------------------------------------

  /**
   * Stages one frame: the bytes `source[start..end)` (the whole array by default; a region lets a
   * caller write straight from a larger encode buffer without slicing it). Staged frames become
   * visible to the consumer at the next {@link publish}.
   *
   * @returns `true` when staged; `false` when the ring has no room now, in which case nothing was
   *   written and the caller keeps the frame (in its own ordered queue) to retry later. To wait
   *   for room: publish (and ring the consumer), then {@link requestRoom}.
   * @throws WeftError `ERR_WEFT_FRAME_TOO_LARGE` when the frame exceeds {@link maxFrameBytes}
   *   (it could never fit); `ERR_WEFT_INVALID_ARG` when `start`/`end` are not a range of `source`.
   */
  tryWrite(source: Uint8Array, start = 0, end: number = source.length): boolean {
    const length = end - start;
    if (!(start >= 0 && length >= 0 && end <= source.length)) throw badRange(source, start, end);
    if (length > this.maxFrameBytes) throw this.#tooLarge(length);
    const need = frameFootprint(length);
    const head = this.#head;
    if (need > this.capacity - ((head - this.#tailCache) >>> 0)) {
      this.#tailCache = this.#loadTail();
      if (need > this.capacity - ((head - this.#tailCache) >>> 0)) return false;
    }
    const pos = head & this.#mask;
    // Plain stores: they are published by the Atomics.store of HEAD in publish().
    this.#words[(pos >> 2) + FRAME_LENGTH_I32] = length;
    this.#words[(pos >> 2) + FRAME_CHECK_I32] = frameCheck(length, head);
    const payload = (pos + FRAME_HEADER_BYTES) & this.#mask;
    const data = this.#data;
    const first = this.capacity - payload;
    if (length <= first) {
      if (start === 0 && end === source.length) data.set(source, payload);
      else data.set(source.subarray(start, end), payload);
    } else {
      data.set(source.subarray(start, start + first), payload);
      data.set(source.subarray(start + first, end), 0);
    }
    this.#head = (head + need) >>> 0;
    return true;
  }

  /**
   * Makes every staged frame visible to the consumer with ONE `Atomics.store` of HEAD.
   * @returns `true` when something new was published (ring the consumer's doorbell then), `false`
   *   when nothing was staged since the last publish.
   */
  publish(): boolean {
    const head = this.#head;
    if (head === this.#published) return false;
    this.#published = head;
    Atomics.store(this.#ctl, RING_HEAD_I32, head | 0);
    return true;
  }

  /** Producer: whether the published frames the consumer has not read take more than half the ring (reads its TAIL). */
  overHalf(): boolean {
    this.#tailCache = this.#loadTail();
    return (this.#published - this.#tailCache) >>> 0 > this.capacity >>> 1;
  }

  /** Producer: whether the consumer has not read everything published yet (reads its TAIL). */
  unread(): boolean {
    this.#tailCache = this.#loadTail();
    return this.#published !== this.#tailCache;
  }

  /** Bytes (headers and padding included) staged by the producer but not yet published. */
  get stagedBytes(): number {
    return (this.#head - this.#published) >>> 0;
  }

  /**
   * Producer: whether a frame of `byteLength` payload bytes fits now. Always reads the consumer's
   * TAIL, so it sees space freed since the last failed write.
   * @throws WeftError `ERR_WEFT_FRAME_TOO_LARGE` as {@link tryWrite} does.
   */
  hasRoomFor(byteLength: number): boolean {
    if (byteLength > this.maxFrameBytes) throw this.#tooLarge(byteLength);
    this.#tailCache = this.#loadTail();
    return frameFootprint(byteLength) <= this.capacity - ((this.#head - this.#tailCache) >>> 0);
  }

  /**
   * Producer: call after {@link tryWrite} returned `false`, before waiting. Raises the
   * WAITING_FOR_ROOM flag, then checks the room again.
   *
   * Precondition: nothing staged. Publish first, and ring the consumer's doorbell if
   * {@link publish} returned `true`: the consumer cannot free space it cannot see, and a sleeping
   * consumer sees nothing until rung — skipping either step can leave both threads asleep.
   *
   * Why this order closes the race: the consumer stores TAIL and *then* reads the flag; we store
   * the flag and *then* read TAIL. Atomics are sequentially consistent, so either the consumer
   * sees our flag (and will ring our doorbell after freeing space), or its TAIL store came first
   * and our re-check below sees the space. A wake-up can be spurious, never lost — provided the
   * producer is asleep when rung. The consumer takes the request after any drain (also one that
   * freed less than the frame needs), and a ring that comes while the producer's bell still says
   * AWAKE wakes nobody. So a producer about to sleep on its doorbell calls `requestRoom` AGAIN
   * after `prepareSleep` (not just {@link hasRoomFor}): `true`, stay up; `false`, the flag is
   * raised after the announcement and the next ring finds the bell SLEEPING.
   *
   * @returns `true` when a frame of `byteLength` bytes fits now (retry at once; the flag is
   *   lowered again); `false` when the consumer will ring the producer's doorbell once it has
   *   freed space (see {@link takeRoomRequest}).
   * @throws WeftError `ERR_WEFT_INTERNAL` when frames are staged; `ERR_WEFT_FRAME_TOO_LARGE` as
   *   {@link tryWrite} does.
   */
  requestRoom(byteLength: number): boolean {
    if (this.#head !== this.#published) {
      throw new WeftError(
        'ERR_WEFT_INTERNAL',
        `requestRoom() with ${this.stagedBytes} staged bytes: publish() them and ring the consumer first`,
      );
    }
    Atomics.store(this.#ctl, RING_WAITING_I32, 1);
    if (this.hasRoomFor(byteLength)) {
      Atomics.store(this.#ctl, RING_WAITING_I32, 0);
      return true;
    }
    return false;
  }

  // -------------------------------------------------------------------------------------------
  // Consumer side
  // -------------------------------------------------------------------------------------------

  /**
   * Delivers up to `maxFrames` published frames, in order, to `onFrame`, then frees their space
   * with ONE `Atomics.store` of TAIL. Frames published while the drain runs wait for the next one.
   *
   * `onFrame` receives a view that is valid only until it returns (see {@link FrameHandler}).
   * If `onFrame` throws, that frame and all before it count as consumed, the space is freed, and
   * the error propagates. Do not call `drain` on the same ring from inside `onFrame`.
   *
   * After a drain that consumed frames, call {@link takeRoomRequest} to learn whether the producer
   * is waiting for room.
   *
   * @param maxFrames the most frames to deliver in this pass (a turn budget); 0 delivers nothing.
   * @returns the number of frames delivered.
   * @throws WeftError `ERR_WEFT_CORRUPT_FRAME` when a header fails its check or bounds; frames
   *   before it are delivered and consumed, the corrupt one is not.
   */
  drain(onFrame: FrameHandler, maxFrames: number = Number.POSITIVE_INFINITY): number {
    return this.drainAt((bytes, start, end) => onFrame(bytes.subarray(start, end)), maxFrames);
  }

  /**
   * {@link drain}, handing each frame over as the bytes that hold it and its bounds
   * ({@link FrameAtHandler}) instead of a view: the consumer's hot path allocates nothing per frame.
   */
  drainAt(onFrame: FrameAtHandler, maxFrames: number = Number.POSITIVE_INFINITY): number {
    const head = Atomics.load(this.#ctl, RING_HEAD_I32) >>> 0;
    let tail = this.#tail;
    if (head === tail) return 0;
    const capacity = this.capacity;
    if (((head - tail) >>> 0) > capacity) throw this.#corruptHead(head, tail);
    const mask = this.#mask;
    const words = this.#words;
    const data = this.#data;
    const maxFrameBytes = this.maxFrameBytes;
    let delivered = 0;
    try {
      while (tail !== head && delivered < maxFrames) {
        const pos = tail & mask;
        const length = words[(pos >> 2) + FRAME_LENGTH_I32] ?? 0;
        const check = words[(pos >> 2) + FRAME_CHECK_I32] ?? 0;
        if (
          check !== frameCheck(length, tail) ||
          length < 0 ||
          length > maxFrameBytes ||
          frameFootprint(length) > ((head - tail) >>> 0)
        ) {
          throw this.#corruptFrame(tail, length, check, (head - tail) >>> 0);
        }
        const payload = (pos + FRAME_HEADER_BYTES) & mask;
        // Advance before the callback: a frame whose handler throws counts as consumed, so it is
        // neither redelivered nor able to wedge the ring.
        tail = (tail + frameFootprint(length)) >>> 0;
        delivered++;
        if (payload + length <= capacity) {
          onFrame(data, payload, payload + length);
        } else {
          const first = capacity - payload;
          if (this.#scratch.length < length) this.#scratch = new Uint8Array(nextPowerOfTwo(length));
          const scratch = this.#scratch;
          scratch.set(data.subarray(payload, capacity), 0);
          scratch.set(data.subarray(0, length - first), first);
          onFrame(scratch, 0, length);
        }
      }
    } finally {
      if (delivered > 0) {
        this.#tail = tail;
        // The release of everything read above: after this store the producer may overwrite it.
        Atomics.store(this.#ctl, RING_TAIL_I32, tail | 0);
      }
    }
    return delivered;
  }

  /** Consumer: whether published frames are waiting. One `Atomics.load` of HEAD. */
  hasData(): boolean {
    return Atomics.load(this.#ctl, RING_HEAD_I32) >>> 0 !== this.#tail;
  }

  /** Consumer: `!hasData()`. */
  isEmpty(): boolean {
    return Atomics.load(this.#ctl, RING_HEAD_I32) >>> 0 === this.#tail;
  }

  /**
   * Consumer: call after a {@link drain} that consumed frames. Returns `true` (and lowers the
   * flag) when the producer found the ring full and asked to be woken; the caller must then ring
   * the producer thread's doorbell. Reading the flag *after* the TAIL store is what makes
   * {@link requestRoom}'s race argument hold.
   */
  takeRoomRequest(): boolean {
    return (
      Atomics.load(this.#ctl, RING_WAITING_I32) !== 0 && Atomics.exchange(this.#ctl, RING_WAITING_I32, 0) !== 0
    );
  }

  // -------------------------------------------------------------------------------------------
  // Any thread (metrics)
  // -------------------------------------------------------------------------------------------

  /** Published bytes not yet consumed (headers and padding included); a snapshot, for metrics. */
  usedBytes(): number {
    const tail = Atomics.load(this.#ctl, RING_TAIL_I32);
    const head = Atomics.load(this.#ctl, RING_HEAD_I32);
    return Math.min((head - tail) >>> 0, this.capacity);
  }

  /** {@link usedBytes} as a fraction of the capacity, from 0 to 1; for metrics. */
  fillRatio(): number {
    return this.usedBytes() / this.capacity;
  }

  // -------------------------------------------------------------------------------------------

  #loadTail(): number {
    const tail = Atomics.load(this.#ctl, RING_TAIL_I32) >>> 0;
    // TAIL only moves forward from where we last saw it, and never past what we published;
    // anything else means the control block was overwritten.
    const last = this.#tailCache;
    if (((tail - last) >>> 0) > ((this.#published - last) >>> 0)) {
      throw new WeftError(
        'ERR_WEFT_CORRUPT_FRAME',
        `corrupt ring tail index ${tail}: outside the range from ${last} (last seen) to ${this.#published} (published)`,
      );
    }
    return tail;
  }

  #tooLarge(length: number): WeftError {
    return new WeftError(
      'ERR_WEFT_FRAME_TOO_LARGE',
      `frame of ${length} bytes does not fit a ring of capacity ${this.capacity} bytes (at most ${this.maxFrameBytes} bytes per frame)`,
    );
  }

  #corruptFrame(index: number, length: number, check: number, available: number): WeftError {
    return new WeftError(
      'ERR_WEFT_CORRUPT_FRAME',
      `corrupt frame header at ring index ${index} (data offset ${index & this.#mask}): length ${length}, ` +
        `check ${hex(check)} (expected ${hex(frameCheck(length, index))}), ${available} bytes published from there, ` +
        `at most ${this.maxFrameBytes} bytes per frame`,
    );
  }

  #corruptHead(head: number, tail: number): WeftError {
    return new WeftError(
      'ERR_WEFT_CORRUPT_FRAME',
      `corrupt ring head index ${head}: ${(head - tail) >>> 0} bytes ahead of tail ${tail} in a ring of capacity ${this.capacity}`,
    );
  }
}

function badRange(source: Uint8Array, start: number, end: number): WeftError {
  return new WeftError(
    'ERR_WEFT_INVALID_ARG',
    `frame range [${describe(start)}, ${describe(end)}) is not inside a source of ${describe(source)}`,
  );
}

function nextPowerOfTwo(n: number): number {
  return n <= 1 ? 1 : 2 ** Math.ceil(Math.log2(n));
}
