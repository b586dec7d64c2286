/**
 * Baseline (1): a single-threaded, in-process dispatcher with Map state and no durability — the
 * ceiling of "just call the function" on one core. Messages are weft's envelope tuples, queued
 * and dispatched in batches of {@link BATCH} (as a shard drains a frame); the host side builds a
 * fresh id string per message (`"c" + n`), as decoding a frame does, so the key's hash is
 * computed on every lookup as in the engine.
 */
import { COUNTER } from '../modules/counter.js';
import { HOP } from '../modules/chain.js';
import { Counters, FIXINT, MSGPACK_TYPENAME, type Env } from './common.js';

const BATCH = 1024;

interface Fn {
  (state: Counters, env: Env, out: Env[]): void;
}

/** The function table: looked up by type per message, like weft's module. */
function functionTable(next: ReadonlyMap<string, string>): Map<string, Fn> {
  return new Map<string, Fn>([
    [COUNTER, (state, env) => void state.bump(env[1], env[2])],
    [
      HOP,
      (state, env, out) => {
        state.bump(env[1], env[2]);
        const hops = env[6][0] as number;
        if (hops > 0) out.push([0, HOP, next.get(env[2]) as string, env[1], env[2], MSGPACK_TYPENAME, FIXINT[hops - 1] as Uint8Array, 0, 0]);
      },
    ],
  ]);
}

export class InProcessDispatcher {
  readonly #state = new Counters();
  readonly #fns: Map<string, Fn>;

  constructor(next: ReadonlyMap<string, string>) {
    this.#fns = functionTable(next);
  }

  /** Dispatches every queued message; what they send goes to `out`. */
  #dispatch(queue: Env[], out: Env[]): void {
    for (let i = 0; i < queue.length; i++) {
      const env = queue[i] as Env;
      (this.#fns.get(env[1]) as Fn)(this.#state, env, out);
    }
    queue.length = 0;
  }

  /** Workload (a): `n` counter updates over `ids` instances. Returns elapsed ms. */
  fire(n: number, ids: number): number {
    const t0 = performance.now();
    const queue: Env[] = [];
    const payload = FIXINT[0] as Uint8Array;
    for (let i = 0; i < n; i++) {
      queue.push([0, COUNTER, `c${i % ids}`, null, null, MSGPACK_TYPENAME, payload, 0, i + 1]);
      if (queue.length === BATCH) this.#dispatch(queue, queue);
    }
    this.#dispatch(queue, queue);
    return performance.now() - t0;
  }

  /** Workload (b): one chain of `hops` hops starting at every id of `ring`. Returns elapsed ms. */
  chains(ring: readonly string[], hops: number): number {
    const t0 = performance.now();
    let queue: Env[] = [];
    let sent: Env[] = [];
    for (const id of ring) queue.push([0, HOP, id, null, null, MSGPACK_TYPENAME, FIXINT[hops] as Uint8Array, 0, 0]);
    // One wave per hop: what a wave sends is the next wave.
    while (queue.length > 0) {
      this.#dispatch(queue, sent);
      [queue, sent] = [sent, queue];
    }
    return performance.now() - t0;
  }
}
