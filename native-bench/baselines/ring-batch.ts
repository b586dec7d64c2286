/**
 * Producer side of the raw-ring baseline: records gathered per destination, cut into frames of
 * at most {@link FRAME_RECORDS} records by weft's FrameEncoder (`encodeBatch`), staged into the
 * destination's SPSC ring and published with one index store and at most one doorbell ring —
 * what weft's Outbound does, minus its weight accounting and the engine's idle counter. A full
 * ring spills frames into an ordered queue (copied out of the encoder's reused buffer).
 */
import type { Doorbell } from '../../src/transport/doorbell.js';
import { encodeBatch } from '../../src/transport/framing.js';
import type { Ring } from '../../src/transport/ring.js';

/** weft's Outbound cuts at 1024 records (or 64 KiB): the same here. */
export const FRAME_RECORDS = 1024;

export class RingBatch {
  readonly ring: Ring;
  readonly #consumer: number;
  readonly #bells: Doorbell;
  #batch: unknown[][] = [];
  #spill: Uint8Array[] = [];
  #staged = false;

  constructor(ring: Ring, consumer: number, bells: Doorbell) {
    this.ring = ring;
    this.#consumer = consumer;
    this.#bells = bells;
  }

  push(record: unknown[]): void {
    this.#batch.push(record);
    if (this.#batch.length >= FRAME_RECORDS) this.#cut();
  }

  get spilled(): number {
    return this.#spill.length;
  }

  #cut(): void {
    if (this.#batch.length === 0) return;
    const frame = encodeBatch(this.#batch);
    this.#batch = [];
    if (this.#spill.length === 0 && this.ring.tryWrite(frame)) this.#staged = true;
    else this.#spill.push(frame.slice());
  }

  /** Writes what fits and publishes it; returns true when frames still wait for room. */
  flush(): boolean {
    while (this.#spill.length > 0 && this.ring.tryWrite(this.#spill[0] as Uint8Array)) {
      this.#spill.shift();
      this.#staged = true;
    }
    this.#cut();
    if (this.#staged) {
      this.#staged = false;
      if (this.ring.publish()) this.#bells.ring(this.#consumer);
    }
    return this.#spill.length > 0;
  }

  /**
   * After a flush that left frames waiting: whether to retry at once (true), or sleep until the
   * consumer rings (false; it will, see Ring.requestRoom).
   */
  requestRoom(): boolean {
    const next = this.#spill[0];
    return next === undefined || this.ring.requestRoom(next.byteLength);
  }
}
