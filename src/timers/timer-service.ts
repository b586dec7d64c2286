/**
 * Durable delayed messages. Timers live in the SENDER's shard (as in StateFun): a min-heap in
 * memory ordered by (due, seq), and in the shard's partition through the checkpoint delta, so they
 * survive restarts. A timer fires late rather than never: timers that fell due while the engine was
 * down fire right after start, in due-time order (ties in sending order, by `seq`).
 *
 * Cancellation tokens are scoped to the sending address: `(sender, token)` names at most one pending
 * timer. Cancelled timers are removed from the token index at once and skipped lazily by the heap.
 */
import { WeftError, describe } from '../core/errors.js';
import type { Envelope } from '../contract/envelope.js';

export interface Timer {
  readonly due: number;
  readonly seq: number;
  /** Key group of the sender: timers move with their sender's key group when rescaling. */
  readonly kg: number;
  readonly env: Envelope;
  readonly senderKey: string;
  readonly token: string | null;
  cancelled: boolean;
}

/** Timer changes since the last snapshot: the timer part of a checkpoint delta. */
export interface TimerDelta {
  readonly puts: Timer[];
  readonly deletes: Array<[kg: number, due: number, seq: number]>;
}

/** Where "now" comes from: the wall clock in shards, a virtual clock in the test harness. */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

function before(a: Timer, b: Timer): boolean {
  return a.due < b.due || (a.due === b.due && a.seq < b.seq);
}

export class TimerService {
  #heap: Timer[] = [];
  #tokens = new Map<string, Timer>();
  #live = 0;
  #seq: number;
  #added = new Set<Timer>();
  #deleted: Array<[number, number, number]> = [];

  constructor(firstSeq = 1) {
    this.#seq = firstSeq;
  }

  /** Pending (not fired, not cancelled) timers. */
  get size(): number {
    return this.#live;
  }

  /** The next sequence number: persisted with each snapshot so sequence numbers never repeat. */
  get nextSeq(): number {
    return this.#seq;
  }

  static tokenKey(senderKey: string, token: string): string {
    return `${senderKey}\u0000${token}`;
  }

  hasToken(senderKey: string, token: string): boolean {
    return this.#tokens.has(TimerService.tokenKey(senderKey, token));
  }

  /** Schedules a new timer; the caller has checked the token is free ({@link hasToken}). */
  schedule(due: number, kg: number, env: Envelope, senderKey: string, token: string | null): Timer {
    if (token !== null && this.hasToken(senderKey, token)) {
      throw new WeftError('ERR_WEFT_DUPLICATE_TOKEN', `cancellation token ${describe(token)} is already used by a pending delayed message`);
    }
    const timer: Timer = { due, seq: this.#seq++, kg, env, senderKey, token, cancelled: false };
    this.#insert(timer);
    this.#added.add(timer);
    return timer;
  }

  /** Continues numbering after `seq` (restored from a snapshot), never reusing a number. */
  restoreSeq(seq: number): void {
    if (seq > this.#seq) this.#seq = seq;
  }

  /** Restores a timer read back from a snapshot (not part of the next delta). */
  restore(timer: Omit<Timer, 'cancelled'>): void {
    const t: Timer = { ...timer, cancelled: false };
    if (t.seq >= this.#seq) this.#seq = t.seq + 1;
    this.#insert(t);
  }

  /** Cancels the pending timer of `(senderKey, token)`; false (a no-op) when none is pending. */
  cancel(senderKey: string, token: string): boolean {
    const key = TimerService.tokenKey(senderKey, token);
    const timer = this.#tokens.get(key);
    if (timer === undefined) return false;
    this.#tokens.delete(key);
    timer.cancelled = true;
    this.#live--;
    this.#forget(timer);
    return true;
  }

  /** Due time of the earliest pending timer, or undefined. */
  nextDue(): number | undefined {
    this.#dropCancelledTop();
    return this.#heap[0]?.due;
  }

  /** Removes and returns the timers due at `now`, in (due, seq) order, at most `max` of them. */
  popDue(now: number, max = Number.POSITIVE_INFINITY): Timer[] {
    const out: Timer[] = [];
    while (out.length < max) {
      this.#dropCancelledTop();
      const top = this.#heap[0];
      if (top === undefined || top.due > now) break;
      this.#pop();
      if (top.token !== null) this.#tokens.delete(TimerService.tokenKey(top.senderKey, top.token));
      this.#live--;
      this.#forget(top);
      out.push(top);
    }
    return out;
  }

  /** Timer changes since the previous call; resets the change set (the snapshot owns them now). */
  takeDelta(): TimerDelta {
    const delta: TimerDelta = { puts: [...this.#added], deletes: this.#deleted };
    this.#added = new Set();
    this.#deleted = [];
    return delta;
  }

  /** All pending timers, in no particular order (for rescaling and inspection). */
  pending(): Timer[] {
    return this.#heap.filter((t) => !t.cancelled);
  }

  #forget(timer: Timer): void {
    // A timer added and removed within one checkpoint interval never reaches the partition.
    if (!this.#added.delete(timer)) this.#deleted.push([timer.kg, timer.due, timer.seq]);
  }

  #insert(timer: Timer): void {
    if (timer.token !== null) this.#tokens.set(TimerService.tokenKey(timer.senderKey, timer.token), timer);
    this.#live++;
    const h = this.#heap;
    let i = h.length;
    h.push(timer);
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parent = h[p] as Timer;
      if (!before(timer, parent)) break;
      h[i] = parent;
      i = p;
    }
    h[i] = timer;
  }

  #dropCancelledTop(): void {
    while (this.#heap.length > 0 && (this.#heap[0] as Timer).cancelled) this.#pop();
  }

  #pop(): void {
    const h = this.#heap;
    const last = h.pop() as Timer;
    if (h.length === 0) return;
    let i = 0;
    const n = h.length;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && before(h[r] as Timer, h[l] as Timer) ? r : l;
      const child = h[c] as Timer;
      if (!before(child, last)) break;
      h[i] = child;
      i = c;
    }
    h[i] = last;
  }
}
