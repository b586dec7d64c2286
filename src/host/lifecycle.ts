/**
 * Which generation of shard workers runs, and whether the engine closed. A recovery starts a new
 * generation; callbacks and results that belong to an older one (a worker that exited, a compute
 * result for a replaced shard, a watchdog tick) are ignored.
 */
export class Lifecycle {
  generation = 0;
  closed = false;

  /** Is `generation` the running one, and the engine not closed? */
  isCurrent(generation: number): boolean {
    return generation === this.generation && !this.closed;
  }
}
