/**
 * A small SharedArrayBuffer every thread maps: the engine-wide count of live messages (for
 * `weft.idle()`) and each shard's metrics, which shards overwrite once per loop turn and main
 * reads on demand (no messages needed to observe the engine).
 *
 *   Int32 view                             Float64 view
 *   ┌────────────┬──────── ... ─┐          ┌──────────────────────────┬──────────────────┬─ ...
 *   │ ALIVE (i0) │ padding to 64│          │ shard 0: METRIC_* slots  │ shard 0: histo   │ shard 1 ...
 *   └────────────┴──────── ... ─┘          └──────────────────────────┴──────────────────┴─ ...
 *   bytes 0..63                            bytes 64.. (SHARD_STRIDE doubles per shard)
 */

/**
 * Messages alive in the engine: accepted host messages + messages sent by functions + fired
 * timers, minus those whose invocation completed. Invariant that makes `idle()` safe: a thread
 * adds the count of messages it created BEFORE it publishes them to any other thread, and
 * subtracts completions no earlier than it adds their children, so the count is never 0 while a
 * message exists. Pending delayed messages are not counted (`idle()` excepts them).
 */
export const ALIVE_I32 = 0;
/**
 * 1 while main waits for idleness (`weft.idle()`, `close()`): a shard whose completions bring
 * {@link ALIVE_I32} to 0 rings main only then. Main sets it BEFORE it reads the count and a shard
 * reads it AFTER it changed the count (both sequentially consistent), so one of the two sees the
 * other: either main finds the count at 0, or the shard finds the flag and rings. A ring finds
 * main awake when main is between two sleeps; main's sleep re-check then reads the count again
 * (Weft's #sleep), after announcing its sleep, as it does for frames.
 */
export const IDLE_WATCH_I32 = 1;

const HEADER_BYTES = 64;

/** Per-shard metric slots (Float64). Order is internal; names are what metrics() reports. */
export const METRICS = [
  'invocations',
  'failures',
  'retries',
  'deadLetters',
  'localSends',
  'remoteSends',
  'egress',
  'replies',
  'timersFired',
  'mailboxBacklog',
  'parkedInvocations',
  'pendingTimers',
  'cacheInstances',
  'cacheHits',
  'cacheMisses',
  'cacheEvictions',
  'dirtyInstances',
  'ringSpilledFrames',
  'ringSpillDepth',
  'inboundRingFill',
  'checkpoints',
  'lastCheckpointMs',
  'lastCheckpointBytes',
  'checkpointBytesTotal',
  'hostMessagesPending',
  'turns',
  'remoteRetries',
  'remotePaused',
  /** Host messages not applied: their idempotency key was applied within the window. */
  'idempotentDuplicates',
  /** Sum of the invocation latencies counted in the histogram, µs (the histogram's `_sum`). */
  'latencySumMicros',
  // Pauses of the shard's thread (shard/pauses.ts): garbage-collector pauses, and gaps between
  // two turns of the shard loop while it had work (not while it slept on its doorbell).
  /** GC pauses of the shard's thread (every kind: scavenge, mark-compact, incremental step, weak callbacks). */
  'gcPauses',
  /** GC pauses longer than 2 ms. */
  'gcPausesOver2Ms',
  /** Sum of the GC pauses, ms. */
  'gcPauseTotalMs',
  /** The longest GC pause since the shard started, ms. */
  'gcPauseMaxMs',
  /** Gaps between two loop turns longer than 2 ms (a message arriving then waited that long to be read). */
  'loopGapsOver2Ms',
  /** Gaps between two loop turns longer than 50 ms. */
  'loopGapsOver50Ms',
  /** The longest gap between two loop turns since the shard started, ms. */
  'loopGapMaxMs',
] as const;

export type MetricName = (typeof METRICS)[number];

export const METRIC_INDEX: Readonly<Record<MetricName, number>> = Object.freeze(
  Object.fromEntries(METRICS.map((m, i) => [m, i])) as Record<MetricName, number>,
);

/** Invocation latency histogram: bucket b counts latencies in [2^(b-1), 2^b) µs; bucket 0 is < 1 µs. */
export const HISTOGRAM_BUCKETS = 32;
const METRIC_SLOTS = 48;
export const SHARD_STRIDE = METRIC_SLOTS + HISTOGRAM_BUCKETS;
if (METRICS.length > METRIC_SLOTS) throw new Error(`control block: ${METRICS.length} metrics do not fit in ${METRIC_SLOTS} slots`);

/**
 * Per shard, after the metrics, 32 bytes: the shard's heartbeat and the invocation running now.
 *
 *   Int32 [0] heartbeat: bumped by the shard at every invocation, every loop turn, from a timer,
 *             and every few thousand records of the engine's own long loops (snapshot encode,
 *             fold, recovery), so a value that stops changing means the shard's event loop is
 *             blocked (main's watchdog, host/supervisor.ts);
 *   Int32 [1] what the recorded invocation is doing (written last when entering):
 *             {@link RUN_NONE}, {@link RUN_SYNC} (a function runs synchronously), or
 *             {@link RUN_AWAITING} (careful mode only: its synchronous part returned, it awaits
 *             a promise, and stays recorded so that a stall or death in its continuation names
 *             it; other code, such as a timer left behind, may be what runs);
 *   Int32 [2] hash of the message's address, [3] its payload's length, [4] a hash of its payload,
 *             typename and caller address (0 for host messages: their sequence number names
 *             them), Float64 at byte 24 its host sequence number.
 *
 * It is written on every invocation (a few stores; for messages not from the host, a hash of the
 * payload, typename and caller), so that when a shard dies or stalls inside a function, main can
 * tell which message did it: see {@link ControlBlock.current} and `messageFingerprint` (the same
 * string, made by the dispatcher).
 */
export const CURRENT_BYTES = 32;

/** Int32 [1] of a shard's CURRENT_BYTES: no invocation recorded. */
export const RUN_NONE = 0;
/** A function runs synchronously (called, not yet returned). */
export const RUN_SYNC = 1;
/** Careful mode: an async invocation awaits its promise (see CURRENT_BYTES). */
export const RUN_AWAITING = 2;

/** The invocation a shard recorded (see {@link ControlBlock.current}). */
export interface Running {
  readonly fingerprint: string;
  /** True: its function was running synchronously ({@link RUN_SYNC}); false: awaiting ({@link RUN_AWAITING}). */
  readonly synchronous: boolean;
}

export class ControlBlock {
  readonly buffer: SharedArrayBuffer;
  readonly i32: Int32Array;
  readonly f64: Float64Array;
  readonly shards: number;
  readonly #currentI32: Int32Array;
  readonly #currentF64: Float64Array;

  constructor(buffer: SharedArrayBuffer, shards: number) {
    this.buffer = buffer;
    this.shards = shards;
    this.i32 = new Int32Array(buffer, 0, HEADER_BYTES / 4);
    this.f64 = new Float64Array(buffer, HEADER_BYTES, shards * SHARD_STRIDE);
    const at = HEADER_BYTES + shards * SHARD_STRIDE * 8;
    this.#currentI32 = new Int32Array(buffer, at, (shards * CURRENT_BYTES) / 4);
    this.#currentF64 = new Float64Array(buffer, at, (shards * CURRENT_BYTES) / 8);
  }

  static create(shards: number): ControlBlock {
    return new ControlBlock(new SharedArrayBuffer(HEADER_BYTES + shards * SHARD_STRIDE * 8 + shards * CURRENT_BYTES), shards);
  }

  /** Records the message a shard is about to run a function for (see CURRENT_BYTES). */
  /**
   * Records the message a shard is about to run a function for (see CURRENT_BYTES); `origin` is
   * {@link originHash} of its typename and caller (not read for host messages).
   */
  enter(shard: number, keyHash: number, hseq: number, payload: Uint8Array, origin: number): void {
    const i32 = this.#currentI32;
    const i = shard << 3;
    i32[i + 2] = keyHash;
    i32[i + 3] = payload.length;
    i32[i + 4] = hseq > 0 ? 0 : payloadHash(payload, origin);
    this.#currentF64[(shard << 2) + 3] = hseq;
    i32[i + 1] = RUN_SYNC;
    i32[i] = (i32[i]! + 1) | 0;
  }

  /** Careful mode: the function called by {@link enter} returned a promise it now awaits. */
  awaiting(shard: number): void {
    this.#currentI32[(shard << 3) + 1] = RUN_AWAITING;
  }

  /** The invocation recorded by {@link enter} ended (returned, threw, or settled). */
  leave(shard: number): void {
    this.#currentI32[(shard << 3) + 1] = RUN_NONE;
  }

  /**
   * The message whose invocation was recorded when the shard stopped (see `messageFingerprint`),
   * and whether its function was running synchronously, or undefined. Read when the shard is
   * dead or stuck (and compared again after it exited: see host/supervisor.ts, Supervisor.judge).
   */
  current(shard: number): Running | undefined {
    const i32 = this.#currentI32;
    const i = shard << 3;
    const state = Atomics.load(i32, i + 1);
    if (state === RUN_NONE) return undefined;
    return { fingerprint: fingerprintOf(i32[i + 2]!, this.#currentF64[(shard << 2) + 3]!, i32[i + 3]!, i32[i + 4]!), synchronous: state === RUN_SYNC };
  }

  /** Bumps the shard's heartbeat (see CURRENT_BYTES). */
  beat(shard: number): void {
    const i = shard << 3;
    this.#currentI32[i] = (this.#currentI32[i]! + 1) | 0;
  }

  heartbeat(shard: number): number {
    return Atomics.load(this.#currentI32, shard << 3);
  }

  /** Adds `delta` to the live-message count; returns the new count. */
  addAlive(delta: number): number {
    return Atomics.add(this.i32, ALIVE_I32, delta) + delta;
  }

  alive(): number {
    return Atomics.load(this.i32, ALIVE_I32);
  }

  /** Main waits (or stops waiting) for the live-message count to reach 0 (see {@link IDLE_WATCH_I32}). */
  watchIdle(on: boolean): void {
    Atomics.store(this.i32, IDLE_WATCH_I32, on ? 1 : 0);
  }

  /** Whether main waits for the live-message count to reach 0. */
  idleWatched(): boolean {
    return Atomics.load(this.i32, IDLE_WATCH_I32) === 1;
  }

  metricsBase(shard: number): number {
    return shard * SHARD_STRIDE;
  }

  histogramBase(shard: number): number {
    return shard * SHARD_STRIDE + METRIC_SLOTS;
  }

  readShard(shard: number): { metrics: Record<MetricName, number>; histogram: number[] } {
    const base = this.metricsBase(shard);
    const metrics = {} as Record<MetricName, number>;
    METRICS.forEach((name, i) => {
      metrics[name] = this.f64[base + i] ?? 0;
    });
    const h = this.histogramBase(shard);
    return { metrics, histogram: Array.from(this.f64.subarray(h, h + HISTOGRAM_BUCKETS)) };
  }
}

/** Bucket index for a latency in µs. */
export function latencyBucket(micros: number): number {
  if (micros < 1) return 0;
  const b = 32 - Math.clz32(Math.floor(micros));
  return b >= HISTOGRAM_BUCKETS ? HISTOGRAM_BUCKETS - 1 : b;
}

/**
 * Names one message across recoveries (it is replayed or re-sent as the same bytes): the hash of
 * its address, its host sequence number (unique per host message), and its payload's length and
 * a hash of its payload, typename and caller address (what tells apart messages between
 * functions, whose sequence number is 0). Two messages from the same caller to the same address
 * with the same typename and bytes are the same message to it.
 */
export function fingerprintOf(keyHash: number, hseq: number, payloadLength: number, payloadHash: number): string {
  return `${keyHash >>> 0}:${hseq}:${payloadLength}:${payloadHash >>> 0}`;
}

/**
 * A 32-bit hash of the payload, four bytes per multiply (about twice as fast as byte-wise FNV-1a,
 * measured: ~40 ns for 24 bytes): it runs on every invocation of a message between functions.
 * `seed` is {@link originHash} of the message's typename and caller.
 */
export function payloadHash(p: Uint8Array, seed = -2128831035): number {
  const n = p.length;
  let h = Math.imul(seed ^ n, 16777619);
  let i = 0;
  for (; i + 3 < n; i += 4) {
    h = Math.imul(h ^ ((p[i] as number) | ((p[i + 1] as number) << 8) | ((p[i + 2] as number) << 16) | ((p[i + 3] as number) << 24)), 16777619);
    h ^= h >>> 15;
  }
  for (; i < n; i++) h = Math.imul(h ^ (p[i] as number), 16777619);
  return h | 0;
}

/**
 * FNV-1a over a message's typename and caller address (type, then id), the seed of its
 * {@link payloadHash}: made per invocation of a message between functions (not for host
 * messages), a multiply per character.
 */
export function originHash(typename: string, callerType: string | null, callerId: string | null): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < typename.length; i++) h = Math.imul(h ^ typename.charCodeAt(i), 0x01000193);
  h = Math.imul(h ^ 0x2f, 0x01000193);
  if (callerType !== null) for (let i = 0; i < callerType.length; i++) h = Math.imul(h ^ callerType.charCodeAt(i), 0x01000193);
  h = Math.imul(h ^ 0x2f, 0x01000193);
  if (callerId !== null) for (let i = 0; i < callerId.length; i++) h = Math.imul(h ^ callerId.charCodeAt(i), 0x01000193);
  return h | 0;
}

/** FNV-1a over a string's UTF-16 code units (an address key, once per mailbox), never 0. */
export function keyHash(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  // Never 0: a mailbox's 0 means "not hashed yet".
  return h | 0 || 1;
}
