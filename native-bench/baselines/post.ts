/**
 * Baseline (2): actors over `postMessage` between worker threads, ONE message per post — the
 * usual way to spread stateful actors over threads in Node. Main routes each message with
 * weft's hash to one of `threads` actor threads; chains hop between actor threads through
 * MessagePorts; requests are answered with a post to main. No flow control exists in
 * postMessage, so the driver bounds how far it runs ahead of the actors (MAX_AHEAD), as weft's
 * ingress backpressure does.
 */
import { MessageChannel, type MessagePort, Worker } from 'node:worker_threads';
import { COUNTER, INCREMENT_AND_REPLY } from '../modules/counter.js';
import { HOP } from '../modules/chain.js';
import { IdTable } from '../../src/internal/id-table.js';
import { yieldToLoop } from '../lib/stats.js';
import { CTL_HANDLED, FIXINT, MSGPACK_TYPENAME, armControl, createControl, runDone, shardOf, type Env } from './common.js';
import type { PostWorkerData } from './post-worker.js';

const CHUNK = 4096;
const MAX_AHEAD = 65_536;

export class PostActors {
  readonly threads: number;
  readonly #ctl = createControl();
  readonly #workers: Worker[] = [];
  /** Pending requests: the table weft's main uses (a Map's discarded hash tables can be kept alive by a scavenge, see src/internal/id-table.ts). */
  readonly #requests = new IdTable<(count: number) => void>();
  #requestSeq = 0;

  private constructor(threads: number) {
    this.threads = threads;
  }

  static async start(threads: number): Promise<PostActors> {
    const a = new PostActors(threads);
    const ports: Array<Array<MessagePort | null>> = Array.from({ length: threads }, () => new Array<MessagePort | null>(threads).fill(null));
    for (let i = 0; i < threads; i++) {
      for (let j = i + 1; j < threads; j++) {
        const { port1, port2 } = new MessageChannel();
        (ports[i] as Array<MessagePort | null>)[j] = port1;
        (ports[j] as Array<MessagePort | null>)[i] = port2;
      }
    }
    const ready: Array<Promise<void>> = [];
    for (let me = 0; me < threads; me++) {
      const data: PostWorkerData = { me, threads, ctl: a.#ctl };
      const w = new Worker(new URL('./post-worker.js', import.meta.url), { workerData: data });
      w.on('error', (err) => {
        console.error(`post baseline worker ${me} failed:`, err);
        process.exit(1);
      });
      ready.push(
        new Promise<void>((resolve) => {
          w.on('message', (m: unknown) => {
            if (m === 'ready') resolve();
            else {
              const [id, count] = m as [number, number];
              const r = a.#requests.get(id);
              a.#requests.delete(id);
              r?.(count);
            }
          });
        }),
      );
      const mine = ports[me] as Array<MessagePort | null>;
      w.postMessage({ peers: mine }, mine.filter((p): p is MessagePort => p !== null));
      a.#workers.push(w);
    }
    await Promise.all(ready);
    return a;
  }

  async #keepUp(posted: number, base: number): Promise<void> {
    while (posted - (Atomics.load(this.#ctl, CTL_HANDLED) - base) > MAX_AHEAD) await yieldToLoop();
  }

  /** Workload (a). Returns elapsed ms until every message was handled. */
  async fire(n: number, ids: readonly string[]): Promise<number> {
    const base = Atomics.load(this.#ctl, CTL_HANDLED);
    armControl(this.#ctl, n);
    const t0 = performance.now();
    const payload = FIXINT[0] as Uint8Array;
    for (let i = 0; i < n; i++) {
      const id = ids[i % ids.length] as string;
      (this.#workers[shardOf(COUNTER, id, this.threads)] as Worker).postMessage([0, COUNTER, id, null, null, MSGPACK_TYPENAME, payload, 0, i + 1] satisfies Env);
      if (i % CHUNK === CHUNK - 1) await this.#keepUp(i, base);
    }
    await runDone(this.#ctl);
    return performance.now() - t0;
  }

  /** Workload (b): a chain of `hops` hops from every id of `ring`. Returns elapsed ms. */
  async chains(ring: readonly string[], hops: number): Promise<number> {
    armControl(this.#ctl, ring.length * (hops + 1));
    const t0 = performance.now();
    for (const id of ring) {
      (this.#workers[shardOf(HOP, id, this.threads)] as Worker).postMessage([0, HOP, id, null, null, MSGPACK_TYPENAME, FIXINT[hops] as Uint8Array, 0, 0] satisfies Env);
    }
    await runDone(this.#ctl);
    return performance.now() - t0;
  }

  /** Workload (c): one request, answered with the counter's new value. */
  request(id: string): Promise<number> {
    const requestId = ++this.#requestSeq;
    return new Promise<number>((resolve) => {
      this.#requests.set(requestId, resolve);
      (this.#workers[shardOf(COUNTER, id, this.threads)] as Worker).postMessage([0, COUNTER, id, null, null, MSGPACK_TYPENAME, FIXINT[INCREMENT_AND_REPLY] as Uint8Array, requestId, 0] satisfies Env);
    });
  }

  async close(): Promise<void> {
    for (const w of this.#workers) w.postMessage({ exit: true });
    await Promise.all(this.#workers.map((w) => w.terminate()));
  }
}
