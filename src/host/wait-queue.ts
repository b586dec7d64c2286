/**
 * Host sends waiting for room (ingress backpressure, see router.ts), without a closure or a
 * promise per send: a host loop that does not yield can leave millions of them waiting.
 *
 * Waiters are kept in order in batches of {@link WAIT_BATCH}. A batch is one array of slots,
 * {@link SLOTS} per waiter: a send's target type and id, typename, payload and idempotency key; a
 * waiter that is not a send (a request, which has its own promise, or a caller of
 * `Router.waitForRoom`) is one function in the first slot and its argument in the second. The sends of a batch share one promise,
 * made when the first of them joins it. A batch is released as a whole (its sends accepted in
 * order, or all refused), so that shared promise means the same for each of them; drained
 * batches are kept for reuse (a few), so a steady backlog allocates nothing per send.
 */
import { Fifo } from '../internal/fifo.js';

/** Waiters per batch (sends of one batch share one promise). */
export const WAIT_BATCH = 1024;
/** Slots per waiter. */
export const SLOTS = 5;
/** Drained batches kept for reuse. */
const POOL = 4;

export class WaitingBatch {
  /** Waiters in this batch. */
  size = 0;
  /** SLOTS per waiter: type | function, id, typename, payload, idempotency key. */
  readonly slots: unknown[] = new Array<unknown>(WAIT_BATCH * SLOTS);
  /** The promise its sends share; null until a send joins. */
  promise: Promise<void> | null = null;
  resolve: (value: void | PromiseLike<void>) => void = noop;
  reject: (err: unknown) => void = noop;

  /** The promise of its sends (made by the first one). */
  shared(): Promise<void> {
    if (this.promise !== null) return this.promise;
    const p = new Promise<void>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    // Fire-and-forget sends are normal: a refusal nobody awaits must not become an unhandled
    // rejection (awaiting callers still get it).
    p.catch(noop);
    this.promise = p;
    return p;
  }

  get full(): boolean {
    return this.size === WAIT_BATCH;
  }

  /** Clears the slots (nothing kept alive) for reuse. */
  reset(): void {
    this.slots.fill(undefined, 0, this.size * SLOTS);
    this.size = 0;
    this.promise = null;
    this.resolve = noop;
    this.reject = noop;
  }
}

export class WaitQueue {
  readonly #batches = new Fifo<WaitingBatch>();
  /** The batch new waiters join (the newest one), or null. */
  #tail: WaitingBatch | null = null;
  readonly #pool: WaitingBatch[] = [];
  /** Waiters in all batches. */
  size = 0;

  /** The batch the next waiter joins. */
  #open(): WaitingBatch {
    let b = this.#tail;
    if (b === null || b.full) {
      b = this.#pool.pop() ?? new WaitingBatch();
      this.#batches.push(b);
      this.#tail = b;
    }
    return b;
  }

  /** A waiting send; returns the promise its batch's sends share. */
  addSend(type: string, id: string, typename: string, payload: Uint8Array, key: string | undefined): Promise<void> {
    const b = this.#open();
    const slots = b.slots;
    const at = b.size * SLOTS;
    slots[at] = type;
    slots[at + 1] = id;
    slots[at + 2] = typename;
    slots[at + 3] = payload;
    slots[at + 4] = key;
    b.size++;
    this.size++;
    return b.shared();
  }

  /** A waiter that goes on by itself: `go(arg)` is called when its turn comes (no closure per waiter needed). */
  addCall<A>(go: (arg: A) => void, arg: A): void {
    const b = this.#open();
    const at = b.size * SLOTS;
    b.slots[at] = go;
    b.slots[at + 1] = arg;
    b.size++;
    this.size++;
  }

  /** Takes the oldest batch (the caller releases it, then gives it back with {@link recycle}). */
  take(): WaitingBatch | undefined {
    const b = this.#batches.shift();
    if (b === undefined) return undefined;
    if (b === this.#tail) this.#tail = null;
    this.size -= b.size;
    return b;
  }

  recycle(b: WaitingBatch): void {
    b.reset();
    if (this.#pool.length < POOL) this.#pool.push(b);
  }
}

function noop(): void {}
