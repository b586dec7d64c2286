/**
 * The tail probe's arithmetic (tail-probe.ts): where the slowest requests' time went, and which
 * stalls of main's event loop a garbage collection explains. Pure functions over the probe's
 * timestamps, so they are tested on their own.
 *
 * All times are milliseconds on one clock shared by the threads (`performance.timeOrigin +
 * performance.now()`, which is the monotonic clock in every thread of a process).
 */

/** One request's four moments. */
export interface RequestTimes {
  /** When the open-loop schedule said it was due. */
  due: number;
  /** When the generator issued it (`weft.request` called). */
  issued: number;
  /** When the shard invoked its function (the reply carries it). */
  invoked: number;
  /** When main resolved its promise. */
  done: number;
}

/** Mean parts of the latency (from due) of a set of requests, ms. */
export interface LatencySplit {
  requests: number;
  /** due → issued: the generator (main) late for them. */
  lagMs: number;
  /** issued → invoked: main's publish, the shard's wake-up, queue and turn. */
  toShardMs: number;
  /** invoked → done: the reply's way back and main picking it up. */
  backMs: number;
  /** Requests of the set over `overMs` both to the shard and back. */
  slowBothWays: number;
}

/** Latency from due of request `i`. */
function latency(t: RequestTimes): number {
  return t.done - t.due;
}

/**
 * The slowest `fraction` of `times` (at least one request when there are any), with how their
 * latency splits; `overMs` is the bound for {@link LatencySplit.slowBothWays}.
 * @throws RangeError for a fraction outside (0, 1] or a negative bound.
 */
export function splitSlowest(times: readonly RequestTimes[], fraction: number, overMs: number): LatencySplit {
  if (!(fraction > 0 && fraction <= 1)) throw new RangeError(`fraction must be in (0, 1] (got ${String(fraction)})`);
  if (!(overMs >= 0)) throw new RangeError(`overMs must be >= 0 (got ${String(overMs)})`);
  const order = times.map((_, i) => i).sort((a, b) => latency(times[a] as RequestTimes) - latency(times[b] as RequestTimes));
  const k = times.length === 0 ? 0 : Math.max(1, Math.floor(times.length * fraction));
  const slowest = order.slice(order.length - k);
  let lag = 0;
  let toShard = 0;
  let back = 0;
  let both = 0;
  for (const i of slowest) {
    const t = times[i] as RequestTimes;
    lag += t.issued - t.due;
    toShard += t.invoked - t.issued;
    back += t.done - t.invoked;
    if (t.invoked - t.issued > overMs && t.done - t.invoked > overMs) both++;
  }
  const n = Math.max(1, k);
  return { requests: k, lagMs: lag / n, toShardMs: toShard / n, backMs: back / n, slowBothWays: both };
}

/** A span of time, ms. */
export type Span = readonly [start: number, end: number];

export interface GapClasses {
  /** Gaps a GC covers at least `share` of. */
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
