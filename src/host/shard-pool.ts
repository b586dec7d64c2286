/**
 * Shard handles: the shared memory of one engine generation (the ring mesh, the doorbells, the
 * control block) and the worker threads that use it — spawn, wait until ready, notice a crash.
 *
 * Rings form a full mesh of single-producer/single-consumer pairs: main→shard, shard→main and
 * shard→shard for every ordered pair, so every thread's input comes through rings that can carry
 * a checkpoint barrier. A recovery discards a whole generation and builds a fresh one: no ring
 * has to be "cleaned" of half-consumed frames from a dead thread.
 */
import { Worker } from 'node:worker_threads';
import { WeftError, deserializeError, type SerializedError } from '../core/errors.js';
import { compiledUrl, workerExecArgv } from '../internal/paths.js';
import type { ShardBoot } from '../shard/shard-loop.js';
import { Doorbell } from '../transport/doorbell.js';
import type { Ring } from '../transport/ring.js';
import { ControlBlock } from '../contract/control-block.js';
import { giveRings, takeRing } from './spare-rings.js';
import { withShardHeap } from './shard-heap.js';
import { shardSettings, type ResolvedOptions, type ShardSettings } from '../contract/options.js';
import type { SerializedError as QuarantineError } from '../core/errors.js';

export interface PoolConfig {
  /** The engine's options: its shard count, and the shard settings every worker gets. */
  readonly options: ResolvedOptions;
  /** The data dir's key groups. */
  readonly keyGroups: number;
  /** The engine's wire names (transport/names.ts). */
  readonly wireNames: readonly string[];
  /** The module declares a compute file and main runs a compute pool. */
  readonly compute: boolean;
  partitionPath(shard: number): string;
}

export interface PoolEvents {
  /** A shard worker failed (fatal error, exit, or crash) after it was ready. */
  onShardFailed(shard: number, err: Error): void;
  /** A context method was called after its invocation ended (see InvocationContext). */
  onLateCall(shard: number, address: { type: string; id: string }, method: string): void;
  /** Code a function left behind threw outside any invocation; the shard goes on (shard/worker.ts). */
  onUncaught(shard: number, error: Error): void;
}

const READY_TIMEOUT_MS = 60_000;
/**
 * How long {@link ShardPool.terminate} lets a shard end itself before it terminates the worker: a
 * shard answers between two steps, and one still inside a synchronous step (its own code, or a
 * native call such as LMDB's open on a slow disk) gets this long to leave it.
 */
const EXIT_GRACE_MS = 1_000;
/**
 * The same for a shard that has not reported ready: it may be inside LMDB's open or its
 * recovery's synchronous reads, on a slow disk.
 */
const START_EXIT_GRACE_MS = 10_000;

const CLOSE_TIMEOUT_MS = 30_000;

export class ShardPool {
  readonly bells: Doorbell;
  readonly control: ControlBlock;
  /** main→shard rings, by shard */
  readonly toShard: Ring[];
  /** shard→main rings, by shard */
  readonly fromShard: Ring[];
  readonly workers: Worker[] = [];
  readonly #config: PoolConfig;
  /** What every shard runs with, sent to each worker as it is. */
  readonly #settings: ShardSettings;
  readonly #shards: number;
  readonly #events: PoolEvents;
  #closing = false;
  #dead = false;
  #released = false;
  /** Every ring buffer of this generation (main's and the shard-to-shard ones), for {@link release}. */
  readonly #ringBuffers: SharedArrayBuffer[] = [];
  readonly #closed: Array<Promise<void>> = [];
  /** Why main ended a shard itself (see {@link kill}): reported instead of its exit code. */
  readonly #killed: Array<Error | undefined> = [];
  readonly #ready: boolean[] = [];
  /** Workers that have exited (their 'exit' event came). */
  readonly #exited: boolean[] = [];
  /** Shards that reported closed: their partition is closed, nothing of LMDB runs in them. */
  readonly #closedDone: boolean[] = [];

  constructor(config: PoolConfig, events: PoolEvents) {
    this.#config = config;
    this.#settings = shardSettings(config.options);
    this.#shards = config.options.shards;
    this.#events = events;
    const n = this.#shards;
    this.bells = Doorbell.create(n + 1);
    this.control = ControlBlock.create(n);
    this.toShard = Array.from({ length: n }, () => this.#ring());
    this.fromShard = Array.from({ length: n }, () => this.#ring());
  }

  #ring(): Ring {
    const ring = takeRing(this.#settings.ringBytes);
    this.#ringBuffers.push(ring.buffer);
    return ring;
  }

  /** Spawns every shard (recovering from `committedEpoch`) and waits until all are ready. */
  async start(committedEpoch: number, sameHost: boolean, quarantine: ReadonlyArray<readonly [string, QuarantineError]> = [], careful = false): Promise<void> {
    const n = this.#shards;
    // between[i][j]: shard i → shard j
    const between: Array<Array<SharedArrayBuffer | null>> = Array.from({ length: n }, (_, i) =>
      Array.from({ length: n }, (_, j) => (i === j ? null : this.#ring().buffer)),
    );
    const entry = compiledUrl('shard/worker.js');
    const ready: Array<Promise<void>> = [];
    const settings = this.#settings;
    try {
      // The shards' heaps are created with their young generation at its working size and without
      // the memory reducer unless asked (shard-heap.ts): process-wide settings, held until each
      // worker is online (its heap exists).
      const online: Array<Promise<void>> = [];
      await withShardHeap({ semiSpaceMb: settings.shardSemiSpaceMb, memoryReducer: settings.shardMemoryReducer }, () => {
        for (let s = 0; s < n; s++) {
          const boot: ShardBoot = {
            settings,
            shard: s,
            shards: n,
            keyGroups: this.#config.keyGroups,
            wireNames: this.#config.wireNames,
            compute: this.#config.compute,
            partitionPath: this.#config.partitionPath(s),
            inbound: [this.toShard[s]!.buffer, ...between.map((row) => row[s] ?? null)],
            outbound: [this.fromShard[s]!.buffer, ...(between[s] as Array<SharedArrayBuffer | null>)],
            bells: this.bells.buffer,
            control: this.control.buffer,
            committedEpoch,
            sameHost,
            quarantine,
            careful,
          };
          const heap = settings.maxShardHeapMb;
          const worker = new Worker(entry, {
            workerData: boot,
            name: `weft-shard-${s}`,
            ...(workerExecArgv() === undefined ? {} : { execArgv: workerExecArgv() }),
            resourceLimits: {
              maxYoungGenerationSizeMb: settings.shardYoungGenerationMb,
              ...(heap === undefined ? {} : { maxOldGenerationSizeMb: heap }),
            },
          });
          this.workers.push(worker);
          online.push(new Promise<void>((resolve) => {
            worker.once('online', resolve);
            worker.once('exit', () => resolve());
          }));
          const started = this.#watch(worker, s);
          // Awaited below; a worker that cannot be made for a later shard skips that await, and
          // the shards made before it then fail their start as they are terminated.
          started.catch(() => {});
          ready.push(started);
        }
        return Promise.all(online);
      });
      await Promise.all(ready);
    } catch (err) {
      // Nothing on the main thread uses the rings of a generation that never started.
      await this.terminate();
      this.release();
      throw err;
    }
  }

  #watch(worker: Worker, shard: number): Promise<void> {
    let isReady = false;
    let closedResolve!: () => void;
    this.#closed[shard] = new Promise<void>((r) => {
      closedResolve = r;
    });
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new WeftError('ERR_WEFT_SHARD_FAILED', `shard ${shard} did not start within ${READY_TIMEOUT_MS} ms`));
      }, READY_TIMEOUT_MS);
      timer.unref();
      let fatal: Error | undefined;
      worker.on('message', (m: { type: string; error?: SerializedError }) => {
        if (m.type === 'ready') {
          isReady = true;
          this.#ready[shard] = true;
          clearTimeout(timer);
          resolve();
        } else if (m.type === 'fatal') {
          fatal = deserializeError(m.error as SerializedError);
        } else if (m.type === 'closed') {
          this.#closedDone[shard] = true;
          closedResolve();
        } else if (m.type === 'uncaught') {
          if (!this.#dead) this.#events.onUncaught(shard, deserializeError(m.error as SerializedError));
        } else if (m.type === 'late-call') {
          const late = m as unknown as { address: { type: string; id: string }; method: string };
          if (!this.#dead) this.#events.onLateCall(shard, late.address, late.method);
        }
      });
      worker.on('error', (err) => {
        fatal ??= err;
      });
      worker.on('exit', (code) => {
        this.#exited[shard] = true;
        clearTimeout(timer);
        closedResolve();
        const err =
          this.#killed[shard] ??
          fatal ??
          new WeftError('ERR_WEFT_SHARD_FAILED', `shard ${shard} worker exited with code ${code}`);
        if (!isReady) {
          const wrapped =
            err instanceof WeftError && (err.code === 'ERR_WEFT_INVALID_MODULE' || err.code === 'ERR_WEFT_DATA_DIR')
              ? err
              : new WeftError('ERR_WEFT_SHARD_FAILED', `shard ${shard} failed to start: ${err.message}`, { cause: err });
          reject(wrapped);
          return;
        }
        if (this.#closing || this.#dead) return;
        this.#events.onShardFailed(shard, err);
      });
    });
  }

  /** The shard finished starting (its heartbeat is running). */
  isReady(shard: number): boolean {
    return this.#ready[shard] === true;
  }

  /**
   * Ends one shard worker from main (its thread may be stuck in synchronous code:
   * `worker.terminate()` stops it anyway); its failure is reported with `reason`.
   */
  kill(shard: number, reason: Error): void {
    this.#killed[shard] ??= reason;
    void this.workers[shard]?.terminate().catch(() => 0);
  }

  /** Waits for every shard to report closed (after main sent Close), bounded. */
  async waitClosed(): Promise<void> {
    this.#closing = true;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, CLOSE_TIMEOUT_MS);
      timer.unref();
    });
    await Promise.race([Promise.all(this.#closed), timeout]);
    clearTimeout(timer);
  }

  /**
   * Ends every worker (after close, or to discard a failed generation), then wakes the main
   * thread's pending doorbell sleep on this generation's bells: left pending, it would keep the
   * generation's rings (and the engine) reachable forever.
   *
   * Each shard is asked to end itself first, and terminated only if it has not within
   * EXIT_GRACE_MS (START_EXIT_GRACE_MS while it starts). `Worker.terminate()` stops a thread
   * wherever it is: a shard still starting may be inside LMDB's synchronous open, and when that
   * call then fails (a full disk) its exception cannot be thrown into a terminating thread, which
   * aborts the whole process (seen in the disk-full test: `FATAL ERROR:
   * Error::ThrowAsJavaScriptException napi_throw`). A shard still in such a call after the grace
   * is terminated all the same: that risk remains, bounded to native calls that outlast it.
   */
  async terminate(): Promise<void> {
    this.#dead = true;
    await Promise.all(this.workers.map((w, s) => this.#end(w, s)));
    this.bells.wakeAll();
  }

  #end(worker: Worker, shard: number): Promise<void> {
    if (this.#exited[shard] === true) return Promise.resolve();
    // Closed (its port too): nothing left to interrupt, and it no longer hears messages.
    if (this.#closedDone[shard] === true) return worker.terminate().then(noop, noop);
    return new Promise<void>((resolve) => {
      const timer = setTimeout(
        () => {
          void worker.terminate().catch(() => 0).then(() => resolve());
        },
        this.#ready[shard] === true ? EXIT_GRACE_MS : START_EXIT_GRACE_MS,
      );
      worker.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      worker.postMessage({ type: 'exit' });
    });
  }

  /**
   * Hands this generation's rings to the next one (spare-rings.ts). Only after
   * {@link terminate}, and only when the main thread will not touch them again either: its
   * outbounds to these rings are retired and it drains them no more.
   */
  release(): void {
    if (!this.#dead) throw new WeftError('ERR_WEFT_INTERNAL', 'ShardPool.release() before terminate()');
    if (this.#released) return;
    this.#released = true;
    giveRings(this.#ringBuffers);
  }
}

function noop(): void {}
