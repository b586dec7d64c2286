/**
 * What every baseline does with a message, so that each one runs the SAME workload as weft:
 *
 *   - the message is weft's envelope tuple `[0, type, id, callerType, callerId, typename,
 *     payload, replyTo, hseq]` with the value already encoded as msgpack (a positive fixint:
 *     the count of hops left, or the counter's op);
 *   - handling it is: build the key `type + "\0" + id` (as weft's dispatcher and cache do),
 *     read-modify-write an int in a Map (the instance state), and for a chain, send the value
 *     minus one to the id's successor in the hop ring (another thread), routed by weft's hash;
 *   - a request (replyTo > 0) is answered with the new count.
 *
 * What the baselines do NOT do and weft does: invocation context and effects buffering,
 * decoding the value with msgpackr (a fixint is read as its byte), encoding state values,
 * mailboxes per address, host acks, checkpoints, the resend log. That gap is what the ratios show.
 *
 * The control block (one small SharedArrayBuffer) counts handled messages across threads so the
 * driver learns when a run is over without a message per completion.
 */

/** `[0, type, id, callerType, callerId, typename, payload, replyTo, hseq]` */
export type Env = [0, string, string, string | null, string | null, string, Uint8Array, number, number];

/** A reply record to main: `[REPLY, requestId, count]` (weft's Kind.Reply number). */
export const REPLY = 5;

export const MSGPACK_TYPENAME = 'weft.types/msgpack';

/** msgpack positive fixints 0..127, each in its own buffer (as an encoded payload is). */
export const FIXINT: readonly Uint8Array[] = Array.from({ length: 128 }, (_, i) => Uint8Array.of(i));

/** Control block words (Int32). */
export const CTL_HANDLED = 0;
/** Driver sets the handled count at which the run is over. */
export const CTL_TARGET = 1;
/** 0 while running; the worker that reaches the target stores 1 and notifies it. */
export const CTL_DONE = 2;
export const CTL_WORDS = 16;

export function createControl(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(CTL_WORDS * 4));
}

/** Starts a run: the next `count` handled messages end it. */
export function armControl(ctl: Int32Array, count: number): void {
  Atomics.store(ctl, CTL_DONE, 0);
  Atomics.store(ctl, CTL_TARGET, Atomics.load(ctl, CTL_HANDLED) + count);
}

/** Worker side: count `n` handled messages; the one that crosses the target wakes the driver. */
export function countHandled(ctl: Int32Array, n: number): void {
  if (n === 0) return;
  const after = Atomics.add(ctl, CTL_HANDLED, n) + n;
  if (after >= Atomics.load(ctl, CTL_TARGET) && Atomics.load(ctl, CTL_DONE) === 0) {
    Atomics.store(ctl, CTL_DONE, 1);
    Atomics.notify(ctl, CTL_DONE);
  }
}

type WaitAsync = (a: Int32Array, i: number, v: number, t?: number) => { async: false; value: string } | { async: true; value: Promise<string> };
const waitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync;

/** Driver side: resolves when the armed run is over. */
export async function runDone(ctl: Int32Array): Promise<void> {
  while (Atomics.load(ctl, CTL_DONE) === 0) {
    const r = waitAsync(ctl, CTL_DONE, 0, 1000);
    if (r.async) await r.value;
  }
}

/** The instance state of every baseline: one int per address key. */
export class Counters {
  readonly map = new Map<string, number>();

  /** The handler's state update; returns the new count. */
  bump(type: string, id: string): number {
    const key = `${type}\u0000${id}`;
    const count = (this.map.get(key) ?? 0) + 1;
    this.map.set(key, count);
    return count;
  }
}

/** Which baseline thread owns an address: weft's router, over `threads` threads. */
export { shardOf } from '../modules/ids.js';
