/**
 * Small statistics for the benchmark suite: medians of repeated runs and nearest-rank
 * percentiles of latency samples. Nothing here allocates per sample except the sort.
 */

/** The median of `xs` (the lower middle for an even count, so it is always a measured value). */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[(s.length - 1) >> 1] as number;
}

/**
 * Nearest-rank percentile of an ascending array: the smallest sample with at least `q` of all
 * samples at or below it. With n samples, p999 is meaningful only when n >= 1000 — callers report n.
 */
export function percentile(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  if (n === 0) return Number.NaN;
  return sorted[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))] as number;
}

/** Relative spread of repeated runs: (max - min) / median. */
export function spread(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  return (Math.max(...xs) - Math.min(...xs)) / median(xs);
}

/** Repeated throughput samples, in messages per second. */
export interface RateSamples {
  /** Every measured run, in run order. */
  runs: number[];
  median: number;
  /** (max - min) / median of the runs. */
  spread: number;
}

export function rateSamples(runs: number[]): RateSamples {
  return { runs, median: median(runs), spread: spread(runs) };
}

/** Monotonic milliseconds. */
export const now = (): number => performance.now();

/** Resolves on the next turn of the event loop (after I/O callbacks): lets other work run. */
export function yieldToLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * CPU time the whole process (every thread) spent since `since`, per message, in ns. On a
 * machine shared with other work this moves much less than wall-clock rates do.
 */
export function cpuNsPerMessage(since: NodeJS.CpuUsage, messages: number): number {
  const d = process.cpuUsage(since);
  return ((d.user + d.system) * 1000) / messages;
}
