/**
 * Per-thread doorbells: how a thread that reads many rings sleeps on ONE word, and how producers
 * wake it only when it actually sleeps.
 *
 * One SharedArrayBuffer holds a bell for every thread (index = thread number), each on its own
 * cache line (layout.ts). A bell is {@link BELL_AWAKE} while its thread runs and
 * {@link BELL_SLEEPING} from the moment it announces sleep until someone wakes it.
 *
 * ## The sleep protocol (consumer side)
 * ```
 * doorbell.prepareSleep(me);                 // 1. announce: bell := SLEEPING
 * if (anyInboundRingHasData()) {             // 2. re-check every ring AFTER announcing
 *   doorbell.cancelSleep(me);                //    work arrived in between: stay up
 * } else {
 *   await doorbell.sleep(me, timeoutMs);     // 3. wait while bell === SLEEPING
 * }
 * ```
 * ## The ring protocol (producer side)
 * ```
 * if (ring.publish()) doorbell.ring(consumer); // bell SLEEPING -> AWAKE, and only then notify
 * ```
 *
 * ## Why no wake-up is lost
 * The producer does `Atomics.store(HEAD)` then `Atomics.compareExchange(bell, SLEEPING, AWAKE)`;
 * the consumer does `Atomics.store(bell, SLEEPING)` then `Atomics.load(HEAD)` (its re-check).
 * Atomics are sequentially consistent, so the four operations fall in one total order that keeps
 * each thread's program order. Either
 *  - the consumer's SLEEPING store comes before the producer's compare-exchange: the producer
 *    sees SLEEPING, flips it to AWAKE and notifies. If the consumer was not waiting yet, its
 *    `waitAsync(bell, SLEEPING)` finds AWAKE and returns 'not-equal' at once; if it was, the
 *    notify wakes it. Or
 *  - the compare-exchange comes first: then the HEAD store precedes it, which precedes the
 *    SLEEPING store, which precedes the re-check — so the re-check sees the new HEAD and the
 *    consumer does not sleep.
 * The same argument covers "waiting for room" (ring.ts `requestRoom`), where the roles swap;
 * there the sleeper's re-check must raise its request again (see `requestRoom`).
 *
 * ## Cost
 * A producer whose consumer is awake pays one compare-exchange that fails — no notify, no wake.
 * Several producers racing to wake one sleeper: exactly one compare-exchange succeeds, so there is
 * at most one `Atomics.notify` per sleep.
 *
 * ## Keeping a worker alive
 * A pending `Atomics.waitAsync` does NOT keep a worker's event loop alive: a worker
 * with nothing else open exits while "sleeping". Keep a handle open for the worker's lifetime —
 * a `parentPort.on('message', ...)` listener is the natural one.
 */
import { WeftError, describe } from '../core/errors.js';
import {
  BELL_AWAKE,
  BELL_SLEEPING,
  DOORBELL_COUNT_I32,
  DOORBELL_MAGIC,
  DOORBELL_MAGIC_I32,
  MAX_BELLS,
  bellIndexI32,
  doorbellByteLength,
} from './layout.js';

/** How a {@link Doorbell.sleep} ended: rung ('ok'), rung before it began ('not-equal'), or timeout. */
export type WakeReason = 'ok' | 'not-equal' | 'timed-out';

/**
 * `Atomics.waitAsync` exists since Node 16 but TypeScript types it only from lib ES2024, and weft
 * compiles against ES2023; this is its ES2024 signature.
 */
type WaitAsyncResult =
  | { async: false; value: 'not-equal' | 'timed-out' }
  | { async: true; value: Promise<'ok' | 'timed-out'> };
const waitAsync = (
  Atomics as unknown as {
    waitAsync(typedArray: Int32Array, index: number, value: number, timeout?: number): WaitAsyncResult;
  }
).waitAsync;

const hex = (n: number): string => `0x${(n >>> 0).toString(16).padStart(8, '0')}`;

/**
 * The doorbells of all threads. Create once with {@link Doorbell.create}, pass `buffer` to every
 * thread, and {@link Doorbell.attach} it there.
 *
 * @example
 * ```ts
 * // Shard loop: drain every inbound ring, sleep on one word when there is nothing to do.
 * for (;;) {
 *   let frames = 0;
 *   for (const r of inbound) {
 *     const n = r.ring.drain(onFrame, 64);
 *     if (n > 0 && r.ring.takeRoomRequest()) doorbell.ring(r.producerThread);
 *     frames += n;
 *   }
 *   // ... run mailboxes, then publish outbound rings (ring each consumer once per publish) ...
 *   if (frames > 0) continue; // (yield to the event loop now and then, too)
 *   doorbell.prepareSleep(me);
 *   // Re-check everything a ring(me) stands for: inbound data, and room in any outbound ring
 *   // that holds frames back — asking for room again (requestRoom), since its consumer may have
 *   // taken the last request and rung before we said SLEEPING.
 *   const work =
 *     inbound.some((r) => r.ring.hasData()) ||
 *     outbound.some((o) => o.spilled.length > 0 && o.ring.requestRoom(o.spilled[0].length));
 *   if (work) doorbell.cancelSleep(me);
 *   else await doorbell.sleep(me, nextTimerDelayMs);
 * }
 * ```
 */
export class Doorbell {
  /** The shared memory holding all bells; pass it to every thread. */
  readonly buffer: SharedArrayBuffer;
  /** Number of bells (threads). */
  readonly count: number;

  readonly #words: Int32Array;

  /**
   * Allocates bells for `count` threads, all {@link BELL_AWAKE}.
   * @throws WeftError `ERR_WEFT_INVALID_ARG` unless `count` is an integer from 1 to 4096.
   */
  static create(count: number): Doorbell {
    if (!(typeof count === 'number' && Number.isInteger(count) && count >= 1 && count <= MAX_BELLS)) {
      throw new WeftError(
        'ERR_WEFT_INVALID_ARG',
        `doorbell count must be an integer from 1 to ${MAX_BELLS} (got ${describe(count)})`,
      );
    }
    const sab = new SharedArrayBuffer(doorbellByteLength(count));
    const words = new Int32Array(sab);
    // Written before the buffer reaches other threads, never again.
    words[DOORBELL_MAGIC_I32] = DOORBELL_MAGIC;
    words[DOORBELL_COUNT_I32] = count;
    return new Doorbell(sab);
  }

  /** Attaches to bells created by {@link Doorbell.create} (usually in another thread). */
  static attach(buffer: SharedArrayBuffer): Doorbell {
    return new Doorbell(buffer);
  }

  /**
   * Same as {@link Doorbell.attach}.
   * @throws WeftError `ERR_WEFT_INVALID_ARG` when `buffer` is not an initialised doorbell.
   */
  constructor(buffer: SharedArrayBuffer) {
    if (!(buffer instanceof SharedArrayBuffer)) {
      throw new WeftError('ERR_WEFT_INVALID_ARG', `doorbell buffer must be a SharedArrayBuffer (got ${describe(buffer)})`);
    }
    if (buffer.byteLength < doorbellByteLength(1)) {
      throw new WeftError(
        'ERR_WEFT_INVALID_ARG',
        `doorbell buffer must be at least ${doorbellByteLength(1)} bytes (got ${buffer.byteLength})`,
      );
    }
    const words = new Int32Array(buffer);
    const magic = words[DOORBELL_MAGIC_I32] ?? 0;
    if (magic !== DOORBELL_MAGIC) {
      throw new WeftError(
        'ERR_WEFT_INVALID_ARG',
        `doorbell buffer has no doorbell header (magic ${hex(magic)}, expected ${hex(DOORBELL_MAGIC)}); create it with Doorbell.create`,
      );
    }
    const count = words[DOORBELL_COUNT_I32] ?? 0;
    if (count < 1 || count > MAX_BELLS || buffer.byteLength !== doorbellByteLength(count)) {
      throw new WeftError(
        'ERR_WEFT_INVALID_ARG',
        `doorbell header says ${count} bells, which does not match a buffer of ${buffer.byteLength} bytes`,
      );
    }
    this.buffer = buffer;
    this.count = count;
    this.#words = words;
  }

  /**
   * Step 1 of sleeping: announce that thread `i` is about to sleep. From here on producers that
   * publish to `i` will notify it. Re-check every inbound ring after this call, then either
   * {@link cancelSleep} or {@link sleep}.
   */
  prepareSleep(i: number): void {
    Atomics.store(this.#words, this.#bell(i), BELL_SLEEPING);
  }

  /** Withdraws {@link prepareSleep}: the re-check found work, so thread `i` stays up. */
  cancelSleep(i: number): void {
    Atomics.store(this.#words, this.#bell(i), BELL_AWAKE);
  }

  /**
   * Step 3 of sleeping: waits, without blocking the event loop (timers, I/O and promises keep
   * running), until thread `i` is rung or `timeoutMs` passes. Resolves 'not-equal' at once when
   * it was rung since {@link prepareSleep}. The bell is {@link BELL_AWAKE} again when the promise
   * resolves, whatever the reason.
   *
   * A pending sleep does not keep a worker alive (see the module comment). Event-loop timeouts
   * have about 1 ms granularity: values under ~0.5 ms return at once.
   *
   * @param timeoutMs milliseconds, `>= 0`; default: no timeout.
   * @throws WeftError `ERR_WEFT_INVALID_ARG` for a bad index or timeout.
   */
  sleep(i: number, timeoutMs: number = Number.POSITIVE_INFINITY): Promise<WakeReason> {
    const index = this.#bell(i);
    const words = this.#words;
    const result = waitAsync(words, index, BELL_SLEEPING, checkTimeout(timeoutMs));
    if (!result.async) {
      Atomics.store(words, index, BELL_AWAKE);
      return Promise.resolve(result.value);
    }
    return result.value.then((reason) => {
      // 'ok': a producer already set AWAKE. 'timed-out': nobody did; stop asking producers to
      // notify a thread that is running again.
      Atomics.store(words, index, BELL_AWAKE);
      return reason;
    });
  }

  /**
   * {@link sleep} for a loop that sleeps after nearly every message: calls `onWake` once thread
   * `i` is rung or `timeoutMs` passes (in a later microtask when rung already), with the bell
   * {@link BELL_AWAKE} again, instead of resolving a promise of its own. A sleep then allocates
   * only what `Atomics.waitAsync` does; {@link sleep}'s promise chain was a tenth of what a lightly
   * loaded shard allocated per message. At most one sleep of thread `i` may be pending.
   *
   * @throws WeftError `ERR_WEFT_INVALID_ARG` for a bad index or timeout.
   */
  sleepThen(i: number, timeoutMs: number, onWake: () => void): void {
    const index = this.#bell(i);
    const words = this.#words;
    const result = waitAsync(words, index, BELL_SLEEPING, checkTimeout(timeoutMs));
    this.#onWake[i] = onWake;
    let waker = this.#wakers[i];
    if (waker === undefined) {
      // One per bell, made on its first sleep.
      waker = (): void => {
        Atomics.store(words, index, BELL_AWAKE);
        const f = this.#onWake[i];
        this.#onWake[i] = undefined;
        if (f !== undefined) f();
      };
      this.#wakers[i] = waker;
    }
    if (result.async) void result.value.then(waker);
    else void Promise.resolve().then(waker);
  }

  readonly #onWake: Array<(() => void) | undefined> = [];
  readonly #wakers: Array<(() => void) | undefined> = [];

  /**
   * Blocking variant of {@link sleep} with `Atomics.wait`: the thread (and its event loop) stops
   * until rung or timed out. For dedicated threads and tests; not allowed on the main thread.
   */
  sleepSync(i: number, timeoutMs: number = Number.POSITIVE_INFINITY): WakeReason {
    const index = this.#bell(i);
    const reason = Atomics.wait(this.#words, index, BELL_SLEEPING, checkTimeout(timeoutMs));
    Atomics.store(this.#words, index, BELL_AWAKE);
    return reason;
  }

  /**
   * Wakes thread `i` if it is (about to be) asleep; call after publishing to one of its rings, or
   * after freeing room the thread asked for. Costs one failed compare-exchange when `i` is awake.
   * @returns `true` when this call woke the thread (it did the `Atomics.notify`).
   */
  ring(i: number): boolean {
    const index = this.#bell(i);
    if (Atomics.compareExchange(this.#words, index, BELL_SLEEPING, BELL_AWAKE) !== BELL_SLEEPING) return false;
    Atomics.notify(this.#words, index, 1);
    return true;
  }

  /**
   * Wakes every thread's pending {@link sleep}, whatever its bell says: for when the bells are
   * discarded (an engine generation ends). A pending `Atomics.waitAsync` is a GC root in its
   * isolate: it holds its promise's reactions — and through them everything they reach — until
   * it is notified or times out, so a sleep nobody will ever ring keeps its whole engine alive
   * (rings and all) after close.
   */
  wakeAll(): void {
    for (let i = 0; i < this.count; i++) {
      const index = bellIndexI32(i);
      Atomics.store(this.#words, index, BELL_AWAKE);
      Atomics.notify(this.#words, index);
    }
  }

  /** Whether thread `i` has announced sleep and not been woken yet (a snapshot, for tests/metrics). */
  isSleeping(i: number): boolean {
    return Atomics.load(this.#words, this.#bell(i)) === BELL_SLEEPING;
  }

  #bell(i: number): number {
    if ((i >>> 0) !== i || i >= this.count) {
      throw new WeftError(
        'ERR_WEFT_INVALID_ARG',
        `doorbell index must be an integer from 0 to ${this.count - 1} (got ${describe(i)})`,
      );
    }
    return bellIndexI32(i);
  }
}

function checkTimeout(timeoutMs: number): number {
  if (typeof timeoutMs !== 'number' || !(timeoutMs >= 0)) {
    throw new WeftError(
      'ERR_WEFT_INVALID_ARG',
      `sleep timeout must be a number of milliseconds >= 0 (got ${describe(timeoutMs)})`,
    );
  }
  return timeoutMs;
}
