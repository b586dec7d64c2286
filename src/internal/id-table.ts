/**
 * Values keyed by integer ids that mostly arrive in increasing order and mostly leave soon after
 * (main's pending requests): set, get and delete in O(1) without a hash table.
 *
 * Why not a `Map`: when a `Map`'s table fills with deleted entries, or grows, or shrinks, V8 builds
 * a new table and links the obsolete one to it (for live iterators). A request table churns tables
 * at the request rate, and once one obsolete table has been promoted to the old generation, its
 * link keeps every younger table alive through the next scavenge, which then promotes them too:
 * main's scavenges copied and promoted ~0.5 MB of dead tables each at 60k requests/s (issue 13).
 *
 * The ids in use lie in a window `[base, end)` kept in a ring of slots (`slots[id & mask]`); an id
 * below the window, or pushed out of it, lives in a small `Map` of stragglers. The window grows by
 * doubling up to `maxSlots`. Past that it doubles only while at least half its slots are in use
 * (a backlog: requests sent faster than their replies come, every one of them waiting); otherwise
 * the oldest entry (one still waiting after that many later ids) moves to the stragglers. It
 * halves again, down to `maxSlots`, once the ids in use span a quarter of it. So the window is at
 * most `maxSlots` slots or four per entry it held when it last grew, plus one entry per straggler.
 *
 * (A window that stopped at `maxSlots` under a backlog sent every request past it to the `Map`:
 * a cold engine given 150k requests/s kept 218k there, and 300k requests sent at once took
 * 0.94-1.02 s to be answered against 0.82-0.88 s with the window let grow, issue 13.)
 */
export class IdTable<T> {
  #slots: Array<T | undefined>;
  #mask: number;
  readonly #maxSlots: number;
  /** The lowest id the window may hold: every id below it is a straggler or absent. */
  #base = 0;
  /** One past the highest id the window holds. */
  #end = 0;
  /** Entries in the window. */
  #count = 0;
  /** Entries below the window, by id (iterated in the order they left it or were set below it). */
  readonly #stragglers = new Map<number, T>();

  /**
   * @param initialSlots the window's first size (a power of two)
   * @param maxSlots the window's largest size while fewer than half its slots are in use (a power
   *   of two, at least `initialSlots`), and the least it shrinks back to
   */
  constructor(initialSlots = 64, maxSlots = 65_536) {
    if (!isPowerOfTwo(initialSlots) || !isPowerOfTwo(maxSlots) || maxSlots < initialSlots) {
      throw new RangeError(`IdTable sizes must be powers of two with initialSlots <= maxSlots (got ${initialSlots}, ${maxSlots})`);
    }
    this.#slots = new Array<T | undefined>(initialSlots).fill(undefined);
    this.#mask = initialSlots - 1;
    this.#maxSlots = maxSlots;
  }

  get size(): number {
    return this.#count + this.#stragglers.size;
  }

  /** Slots of the window (for tests). */
  get capacity(): number {
    return this.#slots.length;
  }

  /** Entries kept outside the window (for tests). */
  get stragglers(): number {
    return this.#stragglers.size;
  }

  /** Sets `id` (a non-negative safe integer) to `value` (not undefined). */
  set(id: number, value: T): void {
    if (!Number.isSafeInteger(id) || id < 0) throw new RangeError(`IdTable ids are non-negative safe integers (got ${id})`);
    if (this.#count === 0 && id > this.#base) {
      // An empty window starts again at the id. Never below its base: the stragglers are the ids
      // below it, and one set again below would be held twice.
      this.#base = id;
      this.#end = id;
    }
    if (id < this.#base) {
      this.#stragglers.set(id, value);
      return;
    }
    while (id - this.#base >= this.#slots.length) {
      if (this.#count === 0) {
        // Every entry left as a straggler: the window starts again at the id.
        this.#base = id;
        this.#end = id;
      } else if (this.#slots.length < this.#maxSlots || this.#count >= this.#slots.length >>> 1) this.#grow();
      else this.#evictBase();
    }
    const at = id & this.#mask;
    if (this.#slots[at] === undefined) this.#count++;
    this.#slots[at] = value;
    if (id >= this.#end) this.#end = id + 1;
  }

  /** The value of `id`; undefined for an id not set, or one that is not an integer (a reply's id is the engine's input). */
  get(id: number): T | undefined {
    if (!Number.isInteger(id)) return undefined;
    if (id >= this.#base && id < this.#end) return this.#slots[id & this.#mask];
    return this.#stragglers.size === 0 ? undefined : this.#stragglers.get(id);
  }

  /** Removes `id`; returns whether it was there. */
  delete(id: number): boolean {
    if (!Number.isInteger(id)) return false;
    if (id >= this.#base && id < this.#end) {
      const at = id & this.#mask;
      if (this.#slots[at] === undefined) return false;
      this.#slots[at] = undefined;
      this.#count--;
      if (id === this.#base) this.#advance();
      return true;
    }
    return this.#stragglers.size !== 0 && this.#stragglers.delete(id);
  }

  /** Every entry, stragglers first, then the window's in id order. */
  *entries(): IterableIterator<[number, T]> {
    for (const entry of this.#stragglers) yield entry;
    for (let id = this.#base; id < this.#end; id++) {
      const v = this.#slots[id & this.#mask];
      if (v !== undefined) yield [id, v];
    }
  }

  clear(): void {
    this.#slots.fill(undefined);
    if (this.#slots.length > this.#maxSlots) {
      this.#slots = new Array<T | undefined>(this.#maxSlots).fill(undefined);
      this.#mask = this.#maxSlots - 1;
    }
    this.#count = 0;
    this.#base = 0;
    this.#end = 0;
    this.#stragglers.clear();
  }

  /**
   * Moves `base` past the ids no longer held (the window's count says when none is left), and
   * shrinks a window grown past `maxSlots` once the ids in use span a quarter of it.
   */
  #advance(): void {
    if (this.#count === 0) this.#base = this.#end;
    else {
      const slots = this.#slots;
      const mask = this.#mask;
      while (slots[this.#base & mask] === undefined) this.#base++;
    }
    let size = this.#slots.length;
    const span = this.#end - this.#base;
    while (size > this.#maxSlots && span <= size >>> 2) size >>>= 1;
    if (size !== this.#slots.length) this.#resize(size);
  }

  /** Doubles the window. */
  #grow(): void {
    this.#resize(this.#slots.length * 2);
  }

  /** A window of `size` slots (a power of two holding `[base, end)`), each entry to its slot in it. */
  #resize(size: number): void {
    const old = this.#slots;
    const oldMask = this.#mask;
    const slots = new Array<T | undefined>(size).fill(undefined);
    const mask = size - 1;
    for (let id = this.#base; id < this.#end; id++) slots[id & mask] = old[id & oldMask];
    // The old array may already be in the old generation: emptied, it keeps no entry alive.
    old.fill(undefined);
    this.#slots = slots;
    this.#mask = mask;
  }

  /** The window is at its largest for the entries it holds: its oldest entry becomes a straggler and the window moves on. */
  #evictBase(): void {
    const at = this.#base & this.#mask;
    const v = this.#slots[at];
    if (v !== undefined) {
      this.#stragglers.set(this.#base, v);
      this.#slots[at] = undefined;
      this.#count--;
    }
    this.#base++;
    this.#advance();
  }
}

function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}
