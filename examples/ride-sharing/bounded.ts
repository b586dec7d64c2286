/**
 * Small tools for driving an engine from host code without piling up promises: a window of
 * operations in flight, a bounded parallel map, and latency percentiles.
 */

/**
 * At most `limit` operations in flight. `run` waits for a free slot before it starts the next
 * operation, so a producer that awaits `run` slows down to the pace the engine accepts: this is
 * how the simulation respects backpressure (a `weft.send` resolves only once committed).
 */
export class Window {
  readonly #limit: number;
  #inFlight = 0;
  #waiters: Array<() => void> = [];
  #drained: Array<() => void> = [];
  #failure: unknown;

  constructor(limit: number) {
    this.#limit = limit;
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  /**
   * Starts `op` once a slot is free; resolves when it has STARTED (not finished). The first
   * failure of any operation is rethrown by the next `run` or `drain`.
   */
  async run(op: () => Promise<unknown>): Promise<void> {
    while (this.#inFlight >= this.#limit) await new Promise<void>((resolve) => this.#waiters.push(resolve));
    if (this.#failure !== undefined) throw this.#failure;
    this.#inFlight++;
    op().then(
      () => this.#release(),
      (err: unknown) => {
        this.#failure ??= err;
        this.#release();
      },
    );
  }

  /** Resolves when nothing is in flight. */
  async drain(): Promise<void> {
    while (this.#inFlight > 0) await new Promise<void>((resolve) => this.#drained.push(resolve));
    if (this.#failure !== undefined) throw this.#failure;
  }

  #release(): void {
    this.#inFlight--;
    this.#waiters.shift()?.();
    if (this.#inFlight === 0) for (const d of this.#drained.splice(0)) d();
  }
}

/** `fn` over `items` with at most `limit` calls in flight; results in input order. */
export async function mapBounded<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** The `q`-quantile (0..1) of ascending `sorted`, nearest rank; NaN when empty. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}
