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
  'remoteRetries',
  'remotePaused',
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
 * Per shard, after the metrics: the address of the invocation running right now, written only
 * while the shard runs "careful" (after a recovery), so that when a shard dies again main can
 * tell which invocation took it down. Layout: Int32 byte length, then UTF-8 `type \0 id`.
 */
export const CURRENT_BYTES = 2048;

export class ControlBlock {
  readonly buffer: SharedArrayBuffer;
  readonly i32: Int32Array;
  readonly f64: Float64Array;
  readonly shards: number;
  readonly #current: Uint8Array;
  readonly #encoder = new TextEncoder();

  constructor(buffer: SharedArrayBuffer, shards: number) {
    this.buffer = buffer;
    this.shards = shards;
    this.i32 = new Int32Array(buffer, 0, HEADER_BYTES / 4);
    this.f64 = new Float64Array(buffer, HEADER_BYTES, shards * SHARD_STRIDE);
    this.#current = new Uint8Array(buffer, HEADER_BYTES + shards * SHARD_STRIDE * 8, shards * CURRENT_BYTES);
  }

  static create(shards: number): ControlBlock {
    return new ControlBlock(new SharedArrayBuffer(HEADER_BYTES + shards * SHARD_STRIDE * 8 + shards * CURRENT_BYTES), shards);
  }

  /** Records the address a careful shard is about to invoke (see CURRENT_BYTES). */
  setCurrent(shard: number, key: string): void {
    const at = shard * CURRENT_BYTES;
    const { written } = this.#encoder.encodeInto(key, this.#current.subarray(at + 4, at + CURRENT_BYTES));
    new DataView(this.#current.buffer, this.#current.byteOffset + at, 4).setInt32(0, written);
  }

  clearCurrent(shard: number): void {
    new DataView(this.#current.buffer, this.#current.byteOffset + shard * CURRENT_BYTES, 4).setInt32(0, 0);
  }

  /** The address a careful shard was invoking when it stopped, or undefined. */
  current(shard: number): string | undefined {
    const at = shard * CURRENT_BYTES;
    const n = new DataView(this.#current.buffer, this.#current.byteOffset + at, 4).getInt32(0);
    if (n <= 0 || n > CURRENT_BYTES - 4) return undefined;
    return new TextDecoder().decode(this.#current.slice(at + 4, at + 4 + n));
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
