/**
 * A first-in-first-out queue over one array of slots: items wait in `slots[head..tail)`, oldest
 * first. Every queue of the engine's message path is one of these (mailboxes, the runnable
 * addresses, host acknowledgements, parked invocations, spilled frames, an egress window), so it
 * is written for the hot path: no allocation per item once the array has grown, no closure or
 * iterator, one class (so its property and element accesses stay monomorphic whatever it holds).
 *
 * - A taken slot is cleared, so the queue never keeps an item alive for the garbage collector.
 * - Emptied, the queue rewinds to slot 0 and keeps its array when it is small (dropping it, or
 *   `length = 0`, frees the backing store, and the next item would allocate it again: a mailbox
 *   that gets one message per turn would make garbage for every message); an array grown past
 *   {@link KEEP_SLOTS} by a burst is dropped, so an idle queue holds little memory.
 * - A queue that never empties moves its items back to slot 0 (in place) instead of growing its
 *   array, when the taken slots are at least {@link COMPACT_FROM} and at least as many as the
 *   waiting items: so pushing stays O(1) amortised, and a queue drained in one go (the runnable
 *   addresses of a turn) never moves anything.
 * - A queue that never empties but has drained a burst (over {@link SHRINK_FROM} slots, under a
 *   quarter of them waiting) moves its items to a new array at that point instead, so it does not
 *   keep the burst's array while traffic goes on.
 * - A queue made with `keep` slots keeps an array of up to that many in both cases (a queue that
 *   fills and drains in cycles, see the constructor).
 */

/** An emptied queue keeps an array of up to this many slots for its next items. */
export const KEEP_SLOTS = 64;
/** Taken slots before a full queue that is not empty moves its items back to the front. */
export const COMPACT_FROM = 64;
/**
 * A full queue whose array has more slots than this, and over four times as many as items wait,
 * moves them to a new array instead of to the front of the old one (a burst's array is let go).
 */
export const SHRINK_FROM = 16 * KEEP_SLOTS;

/** A new slots array whose elements kind is the generic one from the start (see {@link Fifo}). */
function newSlots<T>(): Array<T | undefined> {
  // Arrays of small integers start with a specialised elements kind and change kind at the first
  // `undefined` a take stores: starting generic keeps one kind for every queue, whatever it holds.
  const slots: Array<T | undefined> = [undefined];
  slots.length = 0;
  return slots;
}

export class Fifo<T> {
  #slots: Array<T | undefined> = newSlots<T>();
  #head = 0;
  #tail = 0;
  /** An array of up to this many slots is not given back, however few items wait (0: the defaults). */
  readonly #keep: number;

  /**
   * @param keep an array of up to this many slots is not given back however few items wait, also
   * when the queue empties (without it, an emptied queue keeps up to {@link KEEP_SLOTS} and one
   * that never empties up to {@link SHRINK_FROM}). Nothing is allocated up front: the array grows
   * as items come, as always. For a queue that fills and drains in cycles: main's resend log fills
   * for a checkpoint interval, then the commit releases nearly all of it; with the defaults it
   * gave its array back at each low and grew a new one, slot by slot, to the next high, arrays
   * that lived until a commit, so main's scavenges copied and promoted them (issue 13).
   */
  constructor(keep = 0) {
    if (!Number.isInteger(keep) || keep < 0) throw new RangeError(`Fifo keep must be a non-negative integer (got ${String(keep)})`);
    this.#keep = keep;
  }

  /** Items waiting. */
  get size(): number {
    return this.#tail - this.#head;
  }

  /** Slots of the array (waiting, taken-not-yet-reused and free): for tests and memory checks. */
  get capacity(): number {
    return this.#slots.length;
  }

  push(item: T): void {
    const slots = this.#slots;
    const tail = this.#tail;
    if (tail < slots.length) {
      slots[tail] = item;
      this.#tail = tail + 1;
      return;
    }
    const head = this.#head;
    const size = tail - head;
    if (head >= COMPACT_FROM && head >= size) {
      if (slots.length > SHRINK_FROM && slots.length > this.#keep && size * 4 < slots.length) {
        // A burst grew the array and few items wait now: move them to a new array, so a queue
        // that never empties does not keep the burst's array.
        const fresh = newSlots<T>();
        for (let i = head; i < tail; i++) fresh.push(slots[i]);
        fresh.push(item);
        this.#slots = fresh;
        this.#head = 0;
        this.#tail = size + 1;
        return;
      }
      slots.copyWithin(0, head, tail);
      slots.fill(undefined, size, tail);
      slots[size] = item;
      this.#head = 0;
      this.#tail = size + 1;
      return;
    }
    slots.push(item);
    this.#tail = tail + 1;
  }

  /** The oldest item, or undefined when empty. */
  peek(): T | undefined {
    return this.#head < this.#tail ? this.#slots[this.#head] : undefined;
  }

  /** The `i`-th oldest item (0 is {@link peek}'s), or undefined past the last. */
  at(i: number): T | undefined {
    const at = this.#head + i;
    return i >= 0 && at < this.#tail ? this.#slots[at] : undefined;
  }

  /** Takes the oldest item, or undefined when empty. */
  shift(): T | undefined {
    const head = this.#head;
    const tail = this.#tail;
    if (head >= tail) return undefined;
    const slots = this.#slots;
    const item = slots[head];
    slots[head] = undefined;
    if (head + 1 === tail) this.#rewind();
    else this.#head = head + 1;
    return item;
  }

  /** Whether `item` is waiting (===). */
  includes(item: T): boolean {
    const slots = this.#slots;
    for (let i = this.#head; i < this.#tail; i++) if (slots[i] === item) return true;
    return false;
  }

  /** The waiting items, oldest first, as a new array (the queue is unchanged). */
  toArray(): T[] {
    return this.#slots.slice(this.#head, this.#tail) as T[];
  }

  /** Drops every waiting item. */
  clear(): void {
    this.#slots.fill(undefined, this.#head, this.#tail);
    this.#rewind();
  }

  /** Keeps only the waiting items `accept` accepts, in order (not for hot paths: it takes a callback). */
  retain(accept: (item: T) => boolean): void {
    const slots = this.#slots;
    let to = this.#head;
    for (let i = this.#head; i < this.#tail; i++) {
      const item = slots[i] as T;
      if (accept(item)) slots[to++] = item;
    }
    slots.fill(undefined, to, this.#tail);
    this.#tail = to;
    if (to === this.#head) this.#rewind();
  }

  #rewind(): void {
    const length = this.#slots.length;
    if (length > KEEP_SLOTS && length > this.#keep) this.#slots = newSlots<T>();
    this.#head = 0;
    this.#tail = 0;
  }
}
