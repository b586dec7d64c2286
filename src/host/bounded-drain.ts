/**
 * Main reads the shard→main rings in slices: at most {@link DRAIN_BUDGET_MS} per macrotask, then
 * it lets the host's event loop run (timers, I/O, the host's own work) and reads on in a later
 * one. Replies and their promise reactions, acknowledgements and commit reports then never hold
 * the host's loop for long, however much piled up while it was busy (issue 13: weft's own work
 * on the main thread holds the host's loop well under 1 ms).
 *
 * The budget is checked between frames (a frame is read whole). The ring read first takes turns,
 * and a ring the budget skipped is read first at the next slice: a shard that keeps its ring full
 * cannot starve the others.
 */
import type { FrameAtHandler, Ring } from '../transport/ring.js';

/** How long one slice reads, ms. */
export const DRAIN_BUDGET_MS = 0.25;

export class BoundedDrain {
  readonly #budgetMs: number;
  readonly #now: () => number;
  /** The ring the next slice reads first. */
  #from = 0;

  /** @param now the clock (performance.now; tests pass their own) */
  constructor(budgetMs = DRAIN_BUDGET_MS, now: () => number = () => performance.now()) {
    this.#budgetMs = budgetMs;
    this.#now = now;
  }

  /**
   * Reads `rings` (ring s with `onFrame(s)`) for one slice; `roomRequested(s)` when ring s's
   * producer asked for room and got it. Returns true when a ring still holds frames.
   */
  slice(rings: readonly Ring[], onFrame: (shard: number) => FrameAtHandler, roomRequested: (shard: number) => void): boolean {
    const count = rings.length;
    const t0 = this.#now();
    const first = this.#from;
    // The next slice starts with the first ring this one skipped with frames in it, else with
    // the ring after this one's first: every ring gets its turn, however busy the others are.
    let skipped = -1;
    let more = false;
    for (let k = 0, s = first; k < count; k++, s = s + 1 === count ? 0 : s + 1) {
      const ring = rings[s]!;
      if (k > 0 && this.#now() - t0 >= this.#budgetMs) {
        if (ring.hasData()) {
          if (skipped < 0) skipped = s;
          more = true;
        }
        continue;
      }
      const handler = onFrame(s);
      let n: number;
      do {
        n = ring.drainAt(handler, 1);
        if (n > 0 && ring.takeRoomRequest()) roomRequested(s);
      } while (n === 1 && this.#now() - t0 < this.#budgetMs);
      if (n === 1 && ring.hasData()) more = true;
    }
    this.#from = skipped >= 0 ? skipped : first + 1 >= count ? 0 : first + 1;
    return more;
  }
}
