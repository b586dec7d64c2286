/**
 * Baseline (3): weft's raw ring — the transport's ceiling. A full mesh of weft's SPSC rings
 * (main→worker, worker→main, worker→worker, 4 MiB each like weft's default), weft's doorbells,
 * FrameEncoder/decodeBatch framing of the same envelope tuples, and ring-worker.ts threads that
 * do the common.ts handling and nothing else. Main routes with weft's hash, batches per
 * destination, publishes every CHUNK messages, and waits for room when a ring is full.
 */
import { Worker } from 'node:worker_threads';
import { Doorbell } from '../../src/transport/doorbell.js';
import { decodeBatch } from '../../src/transport/framing.js';
import { Ring } from '../../src/transport/ring.js';
import { IdTable } from '../../src/internal/id-table.js';
import { COUNTER, INCREMENT_AND_REPLY } from '../modules/counter.js';
import { HOP } from '../modules/chain.js';
import { yieldToLoop } from '../lib/stats.js';
import { FIXINT, MSGPACK_TYPENAME, REPLY, armControl, createControl, runDone, shardOf, type Env } from './common.js';
import { RingBatch } from './ring-batch.js';
import type { RingWorkerData } from './ring-worker.js';

const RING_BYTES = 4 * 1024 * 1024;
const CHUNK = 4096;
const MAIN = 0;

export class RingActors {
  readonly threads: number;
  readonly #ctl = createControl();
  readonly #bells: Doorbell;
  readonly #workers: Worker[] = [];
  /** main → worker k */
  readonly #out: RingBatch[] = [];
  /** worker k → main */
  readonly #in: Ring[] = [];
  /** Pending requests: the table weft's main uses (a Map's discarded hash tables can be kept alive by a scavenge, see src/internal/id-table.ts). */
  readonly #requests = new IdTable<(count: number) => void>();
  #requestSeq = 0;
  #receiving = false;

  private constructor(threads: number) {
    this.threads = threads;
    this.#bells = Doorbell.create(threads + 1);
  }

  static async start(threads: number): Promise<RingActors> {
    const a = new RingActors(threads);
    const n = threads + 1;
    // rings[from][to], thread 0 = main, 1 + k = worker k.
    const rings: Array<Array<Ring | null>> = Array.from({ length: n }, (_, from) =>
      Array.from({ length: n }, (_, to) => (from === to ? null : Ring.create(RING_BYTES))),
    );
    const ready: Array<Promise<void>> = [];
    for (let t = 1; t < n; t++) {
      const data: RingWorkerData = {
        me: t,
        threads,
        inbound: rings.map((row) => row[t]?.buffer ?? null),
        outbound: (rings[t] as Array<Ring | null>).map((r) => r?.buffer ?? null),
        bells: a.#bells.buffer,
        ctl: a.#ctl,
      };
      const w = new Worker(new URL('./ring-worker.js', import.meta.url), { workerData: data });
      w.on('error', (err) => {
        console.error(`ring baseline worker ${t - 1} failed:`, err);
        process.exit(1);
      });
      ready.push(new Promise<void>((resolve) => w.once('message', () => resolve())));
      a.#workers.push(w);
      a.#out.push(new RingBatch((rings[MAIN] as Array<Ring | null>)[t] as Ring, t, a.#bells));
      a.#in.push((rings[t] as Array<Ring | null>)[MAIN] as Ring);
    }
    await Promise.all(ready);
    return a;
  }

  /** Publishes every batch; while a ring is full, sleeps until its consumer frees room. */
  async #flush(): Promise<void> {
    for (const out of this.#out) {
      while (out.flush()) {
        if (out.requestRoom()) continue;
        this.#bells.prepareSleep(MAIN);
        // Ask again after announcing sleep (not just look): a request the worker took and
        // answered before the announcement woke nobody.
        if (out.requestRoom()) {
          this.#bells.cancelSleep(MAIN);
          continue;
        }
        await this.#bells.sleep(MAIN, 50);
      }
    }
  }

  /** Workload (a). Returns elapsed ms until every message was handled. */
  async fire(n: number, ids: readonly string[]): Promise<number> {
    armControl(this.#ctl, n);
    const t0 = performance.now();
    const payload = FIXINT[0] as Uint8Array;
    for (let i = 0; i < n; i++) {
      const id = ids[i % ids.length] as string;
      (this.#out[shardOf(COUNTER, id, this.threads)] as RingBatch).push([0, COUNTER, id, null, null, MSGPACK_TYPENAME, payload, 0, i + 1] satisfies Env);
      if (i % CHUNK === CHUNK - 1) {
        await this.#flush();
        await yieldToLoop();
      }
    }
    await this.#flush();
    await runDone(this.#ctl);
    return performance.now() - t0;
  }

  /** Workload (b): a chain of `hops` hops from every id of `ring`. Returns elapsed ms. */
  async chains(ring: readonly string[], hops: number): Promise<number> {
    armControl(this.#ctl, ring.length * (hops + 1));
    const t0 = performance.now();
    for (const id of ring) {
      (this.#out[shardOf(HOP, id, this.threads)] as RingBatch).push([0, HOP, id, null, null, MSGPACK_TYPENAME, FIXINT[hops] as Uint8Array, 0, 0] satisfies Env);
    }
    await this.#flush();
    await runDone(this.#ctl);
    return performance.now() - t0;
  }

  /**
   * Workload (c): one request; requests made in the same tick share one publish (a microtask
   * flush, as weft's host does); the reply comes back through a ring.
   */
  request(id: string): Promise<number> {
    const requestId = ++this.#requestSeq;
    this.#receive();
    return new Promise<number>((resolve) => {
      this.#requests.set(requestId, resolve);
      const out = this.#out[shardOf(COUNTER, id, this.threads)] as RingBatch;
      out.push([0, COUNTER, id, null, null, MSGPACK_TYPENAME, FIXINT[INCREMENT_AND_REPLY] as Uint8Array, requestId, 0] satisfies Env);
      if (!this.#flushQueued) {
        this.#flushQueued = true;
        queueMicrotask(this.#flushRequests);
      }
    });
  }

  #flushQueued = false;

  readonly #flushRequests = (): void => {
    this.#flushQueued = false;
    this.#flushOuts();
  };

  /**
   * Publishes every batch; returns true when one still holds frames back for a full ring (many
   * requests in one tick: the receive loop sends them as the worker frees room).
   */
  #flushOuts(): boolean {
    let held = false;
    for (const out of this.#out) if (out.flush()) held = true;
    return held;
  }

  /** Called after main announced its sleep: whether a batch holding frames back can send now (else its worker rings main once it frees room). */
  #roomNow(): boolean {
    return this.#out.some((out) => out.spilled > 0 && out.requestRoom());
  }

  readonly #onFrame = (frame: Uint8Array): void => {
    for (const rec of decodeBatch(frame)) {
      if (rec[0] !== REPLY) continue;
      const id = rec[1] as number;
      const r = this.#requests.get(id);
      this.#requests.delete(id);
      r?.(rec[2] as number);
    }
  };

  /** Main's receive loop while requests are pending: drain replies, sleep on the doorbell. */
  #receive(): void {
    if (this.#receiving) return;
    this.#receiving = true;
    const loop = (): void => {
      const held = this.#flushOuts();
      for (const ring of this.#in) ring.drain(this.#onFrame, 256);
      if (this.#requests.size === 0) {
        this.#receiving = false;
        return;
      }
      this.#bells.prepareSleep(MAIN);
      if (this.#in.some((r) => r.hasData()) || (held && this.#roomNow())) {
        this.#bells.cancelSleep(MAIN);
        setImmediate(loop);
        return;
      }
      void this.#bells.sleep(MAIN).then(loop);
    };
    setImmediate(loop);
  }

  async close(): Promise<void> {
    for (const w of this.#workers) w.postMessage('exit');
    await Promise.all(this.#workers.map((w) => w.terminate()));
  }
}
