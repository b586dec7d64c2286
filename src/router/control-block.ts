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
] as const;

export type MetricName = (typeof METRICS)[number];

export const METRIC_INDEX: Readonly<Record<MetricName, number>> = Object.freeze(
  Object.fromEntries(METRICS.map((m, i) => [m, i])) as Record<MetricName, number>,
);

/** Invocation latency histogram: bucket b counts latencies in [2^(b-1), 2^b) µs; bucket 0 is < 1 µs. */
export const HISTOGRAM_BUCKETS = 32;
const METRIC_SLOTS = 32;
export const SHARD_STRIDE = METRIC_SLOTS + HISTOGRAM_BUCKETS;

/**
 * Per shard, after the metrics: the shard's heartbeat and the invocation running right now.
 *
 *   Int32 [0] heartbeat: bumped by the shard at every invocation, every loop turn and from a
 *             timer, so a value that
 *             stops changing means the shard's event loop is blocked (main's watchdog, weft.ts);
 *   Int32 [1] byte length of the running invocation's address (0: no function is running
 *             synchronously); written LAST when entering and cleared when the function returns;
 *   Int32 [2] the message payload's length, Int32 [3] its FNV-1a hash; Float64 at byte 16 its
 *             host sequence number; from byte 24 the UTF-8 address `type \0 id`.
 *
 * It is written on every invocation (a few stores and a hash of the payload), so that when a
 * shard dies or stalls inside a function, main can tell which message did it: see
 * {@link ControlBlock.current} and `messageFingerprint` (the same string, made by the dispatcher).
 */
export const CURRENT_BYTES = 2048;
const CURRENT_KEY_AT = 24;

export class ControlBlock {
  readonly buffer: SharedArrayBuffer;
  readonly i32: Int32Array;
  readonly f64: Float64Array;
  readonly shards: number;
  readonly #current: Uint8Array;
  readonly #currentI32: Int32Array;
  readonly #currentF64: Float64Array;

  constructor(buffer: SharedArrayBuffer, shards: number) {
    this.buffer = buffer;
    this.shards = shards;
    this.i32 = new Int32Array(buffer, 0, HEADER_BYTES / 4);
    this.f64 = new Float64Array(buffer, HEADER_BYTES, shards * SHARD_STRIDE);
    const at = HEADER_BYTES + shards * SHARD_STRIDE * 8;
    this.#current = new Uint8Array(buffer, at, shards * CURRENT_BYTES);
    this.#currentI32 = new Int32Array(buffer, at, (shards * CURRENT_BYTES) / 4);
    this.#currentF64 = new Float64Array(buffer, at, (shards * CURRENT_BYTES) / 8);
  }

  static create(shards: number): ControlBlock {
    return new ControlBlock(new SharedArrayBuffer(HEADER_BYTES + shards * SHARD_STRIDE * 8 + shards * CURRENT_BYTES), shards);
  }

  /**
   * Records the message a shard is about to run a function for: its address as UTF-8 bytes
   * (`type \0 id`), its host sequence number, and its payload's length and hash.
   */
  enter(shard: number, key: Uint8Array, hseq: number, payloadLength: number, payloadHash: number): void {
    const i = shard * (CURRENT_BYTES / 4);
    const n = Math.min(key.length, CURRENT_BYTES - CURRENT_KEY_AT);
    this.#current.set(n === key.length ? key : key.subarray(0, n), shard * CURRENT_BYTES + CURRENT_KEY_AT);
    this.#currentI32[i + 2] = payloadLength;
    this.#currentI32[i + 3] = payloadHash;
    this.#currentF64[shard * (CURRENT_BYTES / 8) + 2] = hseq;
    this.#currentI32[i + 1] = n;
    this.#currentI32[i] = (this.#currentI32[i]! + 1) | 0;
  }

  /** The function called by {@link enter} returned (or threw). */
  leave(shard: number): void {
    this.#currentI32[shard * (CURRENT_BYTES / 4) + 1] = 0;
  }

  /**
   * The fingerprint of the message whose function was running when the shard stopped (see
   * `messageFingerprint`), or undefined. Read only when the shard is dead or stuck, so the
   * fields cannot change under the read.
   */
  current(shard: number): string | undefined {
    const i = shard * (CURRENT_BYTES / 4);
    const n = this.#currentI32[i + 1]!;
    if (n <= 0 || n > CURRENT_BYTES - CURRENT_KEY_AT) return undefined;
    const at = shard * CURRENT_BYTES + CURRENT_KEY_AT;
    const key = new TextDecoder().decode(this.#current.slice(at, at + n));
    const hseq = this.#currentF64[shard * (CURRENT_BYTES / 8) + 2]!;
    return fingerprintOf(key, hseq, this.#currentI32[i + 2]!, this.#currentI32[i + 3]!);
  }

  /** Bumps the shard's heartbeat (see CURRENT_BYTES). */
  beat(shard: number): void {
    const i = shard * (CURRENT_BYTES / 4);
    this.#currentI32[i] = (this.#currentI32[i]! + 1) | 0;
  }

  heartbeat(shard: number): number {
    return Atomics.load(this.#currentI32, shard * (CURRENT_BYTES / 4));
  }

  /** Adds `delta` to the live-message count; returns the new count. */
  addAlive(delta: number): number {
    return Atomics.add(this.i32, ALIVE_I32, delta) + delta;
  }

  alive(): number {
    return Atomics.load(this.i32, ALIVE_I32);
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
 * Names one message across recoveries (it is replayed or re-sent as the same bytes): its address,
 * host sequence number, and the length and FNV-1a hash of its payload. Two messages with the same
 * fingerprint carry the same bytes to the same address.
 */
export function fingerprintOf(key: string, hseq: number, payloadLength: number, payloadHash: number): string {
  return `${key}\u0000${hseq}:${payloadLength}:${(payloadHash >>> 0).toString(16)}`;
}

/** FNV-1a over the payload, as a signed 32-bit integer. */
export function payloadHash(p: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < p.length; i++) h = Math.imul(h ^ (p[i] as number), 0x01000193);
  return h | 0;
}
