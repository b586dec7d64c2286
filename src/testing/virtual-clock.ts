/**
 * The harness's clock: time moves only when the test says so (`advance`), so delays, retries and
 * TTLs are exact to the millisecond and a test never waits for the wall clock.
 */
import type { Clock } from '../timers/timer-service.js';

export class VirtualClock implements Clock {
  #now: number;

  constructor(start: number) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  /** Moves time forward to `t`; never backwards (timers and TTLs assume time does not go back). */
  set(t: number): void {
    if (t > this.#now) this.#now = t;
  }
}
