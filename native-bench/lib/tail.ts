/**
 * The tail probe's arithmetic (tail-probe.ts): where the slowest requests' time went, and which
 * stalls of main's event loop a garbage collection explains. Pure functions over the probe's
 * timestamps, so they are tested on their own.
 *
 * All times are milliseconds on the process's monotonic clock ({@link monotonicMs}), which every
 * thread reads alike (`performance.timeOrigin` is per thread in newer Nodes, so
 * `timeOrigin + now()` is not a clock to compare across threads).
 */

/** Milliseconds on the process's monotonic clock (`process.hrtime`), the same in every thread. */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/**
 * The offset that turns this thread's `performance.now()` times (PerformanceEntry.startTime, for
 * one) into {@link monotonicMs} times: add it. Both clocks are read several times and the
 * closest-bracketed reading kept: a first call of either can take a millisecond (compilation),
 * which a single reading would put into the offset.
 */
export function performanceToMonotonic(): number {
  let best = Number.POSITIVE_INFINITY;
  let offset = 0;
  for (let k = 0; k < 16; k++) {
    const before = performance.now();
    const mono = monotonicMs();
    const after = performance.now();
    if (after - before < best) {
      best = after - before;
      offset = mono - (before + after) / 2;
    }
  }
  return offset;
}

/** The requests' four moments, one column each (index i: request i). */
export interface RequestTimes {
  /** When the open-loop schedule said it was due. */
  readonly due: ArrayLike<number>;
  /** When the generator issued it (`weft.request` called). */
  readonly issued: ArrayLike<number>;
  /** When the shard invoked its function (the reply carries it). */
  readonly invoked: ArrayLike<number>;
  /** When main resolved its promise. */
  readonly done: ArrayLike<number>;
}

/** Mean parts of the latency (from due) of a set of requests, ms. */
export interface LatencySplit {
  requests: number;
  /** due → issued: the generator (main) late for them. */
  lagMs: number;
  /**
   * issued → invoked: main's publish, the shard's wake-up, its queue and its turn up to this
   * invocation.
   */
  toShardMs: number;
  /**
   * invoked → done: the rest of the shard's turn (replies leave at its end), the way back, and
   * main picking the reply up.
   */
  backMs: number;
  /** Requests of the set over `overMs` both to the shard and back. */
  slowBothWays: number;
}

/**
 * The slowest `fraction` of `t`'s `count` requests (at least one when there are any), with how
 * their latency splits; `overMs` is the bound for {@link LatencySplit.slowBothWays}.
 * @throws RangeError for a fraction outside (0, 1] or a negative bound.
 */
export function splitSlowest(t: RequestTimes, count: number, fraction: number, overMs: number): LatencySplit {
  if (!(fraction > 0 && fraction <= 1)) throw new RangeError(`fraction must be in (0, 1] (got ${String(fraction)})`);
  if (!(overMs >= 0)) throw new RangeError(`overMs must be >= 0 (got ${String(overMs)})`);
  const latency = (i: number): number => (t.done[i] as number) - (t.due[i] as number);
  const order = Array.from({ length: count }, (_, i) => i).sort((a, b) => latency(a) - latency(b));
  const k = count === 0 ? 0 : Math.max(1, Math.floor(count * fraction));
  let lag = 0;
  let toShard = 0;
  let back = 0;
  let both = 0;
  for (let j = count - k; j < count; j++) {
    const i = order[j] as number;
    const issued = t.issued[i] as number;
    const invoked = t.invoked[i] as number;
    lag += issued - (t.due[i] as number);
    toShard += invoked - issued;
    back += (t.done[i] as number) - invoked;
    if (invoked - issued > overMs && (t.done[i] as number) - invoked > overMs) both++;
  }
  const n = Math.max(1, k);
  return { requests: k, lagMs: lag / n, toShardMs: toShard / n, backMs: back / n, slowBothWays: both };
}

/**
 * The least time any of `count` requests took to the shard and back, ms: below 0 only when the
 * shard's clock and main's disagree (they read one clock, so this checks the probe itself).
 */
export function leastParts(t: RequestTimes, count: number): { toShardMs: number; backMs: number } {
  let toShard = Number.POSITIVE_INFINITY;
  let back = Number.POSITIVE_INFINITY;
  for (let i = 0; i < count; i++) {
    toShard = Math.min(toShard, (t.invoked[i] as number) - (t.issued[i] as number));
    back = Math.min(back, (t.done[i] as number) - (t.invoked[i] as number));
  }
  return { toShardMs: toShard, backMs: back };
}

/** A span of time, ms. */
export type Span = readonly [start: number, end: number];

export interface GapClasses {
  /** Gaps GC pauses cover at least `share` of. */
  withGc: { gaps: number; ms: number };
  /** The others, and the longest of them (descending, at most 5). */
  without: { gaps: number; ms: number; longestMs: number[] };
}

/**
 * Sorts main's loop gaps into those a GC explains (GC pauses cover at least `share` of the gap)
 * and the others.
 */
export function classifyGaps(gaps: readonly Span[], gcs: readonly Span[], share: number): GapClasses {
  if (!(share > 0 && share <= 1)) throw new RangeError(`share must be in (0, 1] (got ${String(share)})`);
  const out: GapClasses = { withGc: { gaps: 0, ms: 0 }, without: { gaps: 0, ms: 0, longestMs: [] } };
  const others: number[] = [];
  for (const [a, b] of gaps) {
    let covered = 0;
    for (const [x, y] of gcs) covered += Math.max(0, Math.min(b, y) - Math.max(a, x));
    if (covered >= share * (b - a)) {
      out.withGc.gaps++;
      out.withGc.ms += b - a;
    } else {
      out.without.gaps++;
      out.without.ms += b - a;
      others.push(b - a);
    }
  }
  out.without.longestMs = others.sort((p, q) => q - p).slice(0, 5);
  return out;
}

/** The GC pauses of `spans` that start within [from, to]. */
export function within(spans: readonly Span[], from: number, to: number): Span[] {
  return spans.filter(([a]) => a >= from && a <= to);
}
