/**
 * Memory for main's resend log: copies of the frames main sent to each shard, kept until their
 * epoch commits. Frames are copied back to back into slabs of {@link SLAB_BYTES}, one current
 * slab per shard, and each shard releases its frames in the order it kept them; a slab returns to
 * a small pool when its last frame is released.
 *
 * Why not one `slice()` per frame: a fresh ArrayBuffer per frame (over a thousand a second at
 * full speed, each 10-20 KiB) is external memory that makes V8 collect more often than the heap
 * alone would; and a pooled buffer per frame wastes most of itself, frames being far smaller
 * than the largest one.
 */
export const SLAB_BYTES = 256 * 1024;
/** Slabs kept for reuse (4 MiB). */
const POOL_MAX = 16;

export class LogSlabs {
  readonly #current: Array<Uint8Array | undefined>;
  readonly #used: number[];
  /** Frames not yet released, per slab. */
  readonly #refs = new Map<ArrayBufferLike, number>();
  readonly #pool: Uint8Array[] = [];

  constructor(shards: number) {
    this.#current = new Array<Uint8Array | undefined>(shards).fill(undefined);
    this.#used = new Array<number>(shards).fill(0);
  }

  /** Where {@link keepAt} put the last frame in the slab it returned. */
  lastOffset = 0;

  /** A copy of `frame` (for `shard`'s log) that stays valid until {@link release}d. */
  keep(shard: number, frame: Uint8Array): Uint8Array {
    const slab = this.keepAt(shard, frame);
    return slab.subarray(this.lastOffset, this.lastOffset + frame.byteLength);
  }

  /**
   * Copies `frame` for `shard`'s log and returns the array holding the copy, at
   * {@link lastOffset}: no view object per frame (a log that keeps tens of thousands of frames
   * a second until their commit would have main's scavenges copy them). Release it with
   * {@link release}(shard, the returned array).
   */
  keepAt(shard: number, frame: Uint8Array): Uint8Array {
    const n = frame.byteLength;
    // A frame bigger than a quarter slab gets a copy of its own (it would waste the rest).
    if (n > SLAB_BYTES / 4) {
      this.lastOffset = 0;
      return frame.slice();
    }
    let slab = this.#current[shard];
    let used = this.#used[shard] as number;
    if (slab === undefined || used + n > slab.byteLength) {
      if (slab !== undefined && this.#refs.get(slab.buffer) === 0) this.#free(slab);
      slab = this.#pool.pop() ?? new Uint8Array(SLAB_BYTES);
      this.#current[shard] = slab;
      this.#refs.set(slab.buffer, 0);
      used = 0;
    }
    slab.set(frame, used);
    this.#used[shard] = used + n;
    this.#refs.set(slab.buffer, (this.#refs.get(slab.buffer) as number) + 1);
    this.lastOffset = used;
    return slab;
  }

  /** `frame` (a result of {@link keep} or {@link keepAt} for `shard`) is no longer needed. */
  release(shard: number, frame: Uint8Array): void {
    const refs = this.#refs.get(frame.buffer);
    if (refs === undefined) return; // a copy of its own
    this.#refs.set(frame.buffer, refs - 1);
    if (refs > 1) return;
    const current = this.#current[shard];
    if (current !== undefined && current.buffer === frame.buffer) {
      // Nothing refers to the current slab any more: fill it again from the start.
      this.#used[shard] = 0;
    } else {
      this.#free(new Uint8Array(frame.buffer));
    }
  }

  /** Slabs holding kept frames or ready for reuse (for tests and metrics). */
  get slabs(): number {
    return this.#refs.size + this.#pool.length;
  }

  #free(slab: Uint8Array): void {
    this.#refs.delete(slab.buffer);
    if (this.#pool.length < POOL_MAX) this.#pool.push(slab);
  }
}
