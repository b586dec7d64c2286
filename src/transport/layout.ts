/**
 * Shared-memory layout of weft's transport: every offset that two threads agree on lives here,
 * named, with the invariant it protects. Nothing else in `src/transport/` computes a raw offset.
 *
 * ## Ring buffer (one SharedArrayBuffer per producer→consumer pair)
 *
 * ```
 *  byte 0   ┌──────────────────────── line 0: control, immutable after Ring.create ─────────────┐
 *           │ RING_MAGIC (i32) │ RING_VERSION (i32) │ capacity (i32) │ unused                     │
 *  byte 64  ├──────────────────────── line 1: HEAD, written only by the producer ────────────────┤
 *           │ head (i32, free-running byte index, published with Atomics.store) │ unused          │
 *  byte 128 ├──────────────────────── line 2: TAIL, written only by the consumer ────────────────┤
 *           │ tail (i32, free-running byte index, stored once per drain) │ unused                 │
 *  byte 192 ├──────────────────────── line 3: WAITING_FOR_ROOM flag ─────────────────────────────┤
 *           │ flag (i32: 1 = producer found the ring full and wants its doorbell rung) │ unused   │
 *  byte 256 ├──────────────────────── data: `capacity` bytes (a power of two) ───────────────────┤
 *           │ frame │ frame │ ... │ fra- ║                                     (wraps) ║ -me │ ...  │
 *           └─────────────────────────────────────────────────────────────────────────────────────┘
 *
 *  One frame, starting at an 8-byte-aligned data offset:
 *           ┌──────────────┬──────────────┬──────────── length bytes ─────────┬── pad to 8 ──┐
 *           │ length (i32) │ check (i32)  │ payload (may wrap to data[0])     │ (not read)   │
 *           └──────────────┴──────────────┴───────────────────────────────────┴──────────────┘
 * ```
 *
 * Head and tail are free-running unsigned 32-bit byte counters (they wrap at 2^32, not at the
 * capacity); the data offset of index `i` is `i & (capacity - 1)`, and the bytes in flight are
 * `(head - tail) >>> 0`. With `capacity <= 2^30` that difference is never ambiguous.
 *
 * ## Doorbell (one SharedArrayBuffer for all threads)
 *
 * ```
 *  byte 0        ┌ line 0: DOORBELL_MAGIC (i32) │ bell count (i32) │ unused ┐
 *  byte 64       ├ line 1: bell 0 (i32: AWAKE | SLEEPING) │ unused           ┤
 *  byte 128      ├ line 2: bell 1                                          ┤
 *  ...           ├ ...                                                     ┤
 *  byte 64(n+1)  └─────────────────────────────────────────────────────────┘
 * ```
 */

/**
 * Size of a cache line on the x86-64 and ARM64 cores Node runs on. Every word that one thread
 * writes while another thread writes a neighbouring word gets its own line, so the two cores do
 * not steal the line from each other on every store (false sharing).
 */
export const CACHE_LINE_BYTES = 64;

/** Int32 elements per cache line (for indexing an Int32Array over a layout). */
export const CACHE_LINE_I32 = CACHE_LINE_BYTES / 4;

// ---------------------------------------------------------------------------------------------
// Ring control block
// ---------------------------------------------------------------------------------------------

/**
 * 'WFTR' as a little-endian i32 at byte 0. `Ring.attach` refuses a buffer without it, so a
 * doorbell buffer or a zeroed buffer is never mistaken for a ring.
 */
export const RING_MAGIC = 0x52544657;

/**
 * Layout version at byte 4. Bumped whenever anything in this file changes meaning, so threads
 * compiled from different weft builds never exchange frames they would misread.
 */
export const RING_VERSION = 1;

/** Int32 index of the magic word (line 0, immutable after create). */
export const RING_MAGIC_I32 = 0;

/** Int32 index of the layout version (line 0, immutable after create). */
export const RING_VERSION_I32 = 1;

/**
 * Int32 index of the data capacity in bytes (line 0, immutable after create). Both sides derive
 * the index mask from it, so they must read the same value: it is written before the buffer is
 * handed to any other thread and never again.
 */
export const RING_CAPACITY_I32 = 2;

/**
 * Int32 index of HEAD, alone on line 1. Only the producer stores it, with ONE `Atomics.store`
 * per published batch; that store is the release that makes every frame byte written before it
 * visible to a consumer whose `Atomics.load` of HEAD observes it.
 */
export const RING_HEAD_I32 = CACHE_LINE_I32 * 1;

/**
 * Int32 index of TAIL, alone on line 2. Only the consumer stores it, once per drain; that store
 * tells the producer the bytes before it may be overwritten. The consumer must have finished
 * reading those bytes before the store (the frame views it lends out die with the callback).
 */
export const RING_TAIL_I32 = CACHE_LINE_I32 * 2;

/**
 * Int32 index of the WAITING_FOR_ROOM flag, alone on line 3. The producer sets it (then re-checks
 * TAIL) after a write did not fit; the consumer reads it after each TAIL store and, if set,
 * clears it and rings the producer's doorbell. Keeping it off the HEAD and TAIL lines means
 * neither hot index line is written by the "wrong" thread.
 */
export const RING_WAITING_I32 = CACHE_LINE_I32 * 3;

/** Byte offset of the first data byte: the control block is four cache lines. */
export const RING_DATA_OFFSET = CACHE_LINE_BYTES * 4;

/**
 * Bytes of a frame header: `length` then `check`, two i32 words. Frames start on
 * {@link FRAME_ALIGN}-byte boundaries and the capacity is a multiple of it, so a header is never
 * split by the wrap-around (only a payload can be).
 */
export const FRAME_HEADER_BYTES = 8;

/** Frame start alignment in bytes; each frame occupies `8 + roundUp(length, 8)` data bytes. */
export const FRAME_ALIGN = 8;

/** Int32 offset of `length` inside a frame header. */
export const FRAME_LENGTH_I32 = 0;

/** Int32 offset of `check` inside a frame header. */
export const FRAME_CHECK_I32 = 1;

/** Smallest ring capacity in bytes: room for one header plus a few payload words. */
export const MIN_RING_CAPACITY = 64;

/**
 * Largest ring capacity in bytes (1 GiB). Head and tail are 32-bit counters; keeping the
 * capacity at or under 2^30 keeps `(head - tail) >>> 0` (at most the capacity) far from 2^32, so
 * "in flight" is never confused with a wrapped counter, and keeps the i32 stores of the capacity
 * positive.
 */
export const MAX_RING_CAPACITY = 2 ** 30;

/**
 * Salt mixed into every frame check word, so that a header of zeros (never written) never passes
 * the check at any frame-aligned index (see {@link frameCheck}).
 */
export const FRAME_CHECK_SALT = 0x5746_4654;

/**
 * The check word of a frame of `length` bytes whose header starts at free-running byte index
 * `index`. Mixing in the index means a header left over from an earlier lap of the ring (the same
 * offset, an index `capacity` smaller) fails the check instead of being read as new. Both
 * multipliers are odd, so each term is a bijection of its input: changing either input alone
 * always changes the result.
 *
 * An all-zero header (never written) never passes: it would need
 * `imul(SALT, A) === imul(index, B)`; the left side is 4 mod 8 (SALT is 4 mod 8, A is odd), so
 * `index` would have to be 4 mod 8 — but frames start only on 8-byte-aligned indices.
 */
export function frameCheck(length: number, index: number): number {
  return Math.imul(length ^ FRAME_CHECK_SALT, 0x9e3779b1) ^ Math.imul(index, 0x85ebca6b);
}

/** Bytes a frame with `length` payload bytes occupies in the data area (header + padded payload). */
export function frameFootprint(length: number): number {
  return FRAME_HEADER_BYTES + ((length + FRAME_ALIGN - 1) & ~(FRAME_ALIGN - 1));
}

/** Total SharedArrayBuffer size for a ring of `capacity` data bytes. */
export function ringByteLength(capacity: number): number {
  return RING_DATA_OFFSET + capacity;
}

// ---------------------------------------------------------------------------------------------
// Doorbell block
// ---------------------------------------------------------------------------------------------

/** 'WFTD' as a little-endian i32 at byte 0 of a doorbell buffer (see {@link RING_MAGIC}). */
export const DOORBELL_MAGIC = 0x44544657;

/** Int32 index of the doorbell magic word (line 0, immutable after create). */
export const DOORBELL_MAGIC_I32 = 0;

/** Int32 index of the number of bells (line 0, immutable after create). */
export const DOORBELL_COUNT_I32 = 1;

/**
 * Int32 index of bell `i`: line `i + 1`. Each bell has its own line because every producer
 * writing to thread `i` compare-exchanges bell `i`; bells of different threads must not share a
 * line, or waking one thread would slow down ringing another.
 */
export function bellIndexI32(i: number): number {
  return CACHE_LINE_I32 * (i + 1);
}

/** Total SharedArrayBuffer size for `count` bells. */
export function doorbellByteLength(count: number): number {
  return CACHE_LINE_BYTES * (count + 1);
}

/**
 * Bell value while its thread is running (or about to check its rings). Producers do nothing
 * when they see it: the thread will look at its rings before it sleeps.
 */
export const BELL_AWAKE = 0;

/**
 * Bell value from the moment a thread announces it is going to sleep. A producer that turns it
 * back into {@link BELL_AWAKE} (compare-exchange) owns the one `Atomics.notify` for that sleep.
 */
export const BELL_SLEEPING = 1;

/** Largest number of bells a doorbell holds (threads of one process; far above any real use). */
export const MAX_BELLS = 4096;
