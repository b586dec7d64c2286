/**
 * How long the shard's thread was held while it had work: its garbage collector's pauses (a
 * PerformanceObserver for 'gc' entries) and the gaps between two turns of the shard loop. Both go
 * straight into the shard's metric slots of the control block (contract/control-block.ts), so
 * `weft.metrics()` and the benchmark read them like every other figure.
 *
 * A loop gap runs from the moment the loop was ready for a turn to the start of that turn: from
 * the start of the previous turn when the loop stayed awake (so the previous turn's own work
 * counts: a message arriving during it waited for it), or from the wake-up when it slept on its
 * doorbell (sleeping is not a gap). What fills a gap: the turn's own invocations, a GC pause,
 * snapshot and fold work, functions' async continuations and LMDB callbacks, and the thread
 * waiting for a core. Costs per turn: one `performance.now()` and two comparisons, no allocation.
 *
 * Each engine generation (a start, a recovery) has a fresh control block, so these start from 0
 * with the shard, as its other counters do.
 */
import { PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';
import { METRIC_INDEX, type ControlBlock } from '../contract/control-block.js';

/** Pauses and gaps longer than this are counted (`gcPausesOver2Ms`, `loopGapsOver2Ms`): the latency goal's bound. */
export const PAUSE_BOUND_MS = 2;
/** Gaps longer than this are counted too (`loopGapsOver50Ms`): something held the thread for a long time. */
export const LONG_GAP_MS = 50;

export class PauseMeter {
  readonly #f64: Float64Array;
  readonly #base: number;
  #readyAt = performance.now();
  #gapMax = 0;
  #gcMax = 0;
  #observer: PerformanceObserver | undefined;

  constructor(control: ControlBlock, shard: number) {
    this.#f64 = control.f64;
    this.#base = control.metricsBase(shard);
  }

  /** Starts observing the thread's GC pauses (until {@link stop}). */
  start(): void {
    this.#observer = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) this.#gc(e);
    });
    this.#observer.observe({ entryTypes: ['gc'] });
  }

  stop(): void {
    this.#observer?.disconnect();
    this.#observer = undefined;
  }

  /** A turn starts: closes the gap since the loop was ready for it. */
  turn(): void {
    const t = performance.now();
    const gap = t - this.#readyAt;
    this.#readyAt = t;
    if (gap > this.#gapMax) {
      this.#gapMax = gap;
      this.#f64[this.#base + METRIC_INDEX.loopGapMaxMs] = gap;
    }
    if (gap > PAUSE_BOUND_MS) this.#longGap(gap);
  }

  /** The loop woke from sleep: it is ready for a turn from now on. */
  woke(): void {
    this.#readyAt = performance.now();
  }

  #longGap(gap: number): void {
    const f = this.#f64;
    const b = this.#base;
    f[b + METRIC_INDEX.loopGapsOver2Ms]! += 1;
    if (gap > LONG_GAP_MS) f[b + METRIC_INDEX.loopGapsOver50Ms]! += 1;
  }

  #gc(e: PerformanceEntry): void {
    const f = this.#f64;
    const b = this.#base;
    const ms = e.duration;
    f[b + METRIC_INDEX.gcPauses]! += 1;
    f[b + METRIC_INDEX.gcPauseTotalMs]! += ms;
    if (ms > PAUSE_BOUND_MS) f[b + METRIC_INDEX.gcPausesOver2Ms]! += 1;
    if (ms > this.#gcMax) {
      this.#gcMax = ms;
      f[b + METRIC_INDEX.gcPauseMaxMs] = ms;
    }
  }
}
