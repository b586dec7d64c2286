/**
 * The host facade: `Weft.start` / send / request / egress / query / idle / checkpoint / metrics /
 * close. It runs on the caller's (main) thread and owns the router's host side (encode, route,
 * batch into main→shard rings), the checkpoint coordinator, and what the host may observe only
 * after a commit (send acknowledgements, egress records, durable replies).
 */
import { checkIdempotencyKey } from '../core/idempotency.js';
import { checkTarget, encodeSharedPayload, valueType } from '../module/validation.js';
import { channel } from 'node:diagnostics_channel';
import { setImmediate } from 'node:timers';
import { debuglog } from 'node:util';
import { quietDeferred } from '../internal/deferred.js';
import { validateAddress, type Address } from '../core/address.js';
import { DataDir } from '../checkpoint/data-dir.js';
import { EgressChannel, EgressStore, type EgressIteratorOptions, type EgressRecord } from './egress.js';
import { Coordinator } from '../checkpoint/coordinator.js';
import { repartition } from '../checkpoint/repartition.js';
import { WeftError, deserializeError, describe, serializeError, type SerializedError } from '../core/errors.js';
import { ComputePool } from '../compute/pool.js';
import { DEFAULT_TYPE } from '../codec/types.js';
import type { ValueType } from '../module/definition.js';
import { resolveOptions, type ResolvedOptions, type WeftOptions } from '../contract/options.js';
import { HISTOGRAM_BUCKETS, METRICS, METRIC_INDEX, type MetricName, type Running } from '../contract/control-block.js';
import { Partitioner } from '../contract/partitioner.js';
import { ShardPool } from './shard-pool.js';
import { Kind, envelope, envelopeWeight, resolveNames, wireEncoder } from '../contract/envelope.js';
import { Outbound } from '../contract/outbound.js';
import { DEAD_LETTER_EGRESS, compileModule, loadModule, wireNamesOf, type RuntimeModule } from '../module/runtime.js';
import { NameTable } from '../transport/names.js';
import { LogSlabs } from '../internal/log-slabs.js';
import { remoteMatcher } from '../shard/remote-functions.js';
import type { InstanceRecord } from '../state/instance.js';
import { decodeBatch, type FrameEncoder } from '../transport/framing.js';
import { resolveInstancesArgs, type InstanceEntry, type InstancesOptions } from '../state/listing.js';
import { Lister } from '../state/lister.js';

export type { WeftOptions } from '../contract/options.js';
export type { InstanceEntry, InstancesOptions } from '../state/listing.js';
export type { EgressRecord, EgressIteratorOptions } from './egress.js';

/** `NODE_DEBUG=weft` prints the engine's lifecycle: start, checkpoints, recoveries, close. */
const debug = debuglog('weft');

/**
 * `diagnostics_channel` events, published on the main thread (subscribe with
 * `diagnostics_channel.subscribe(name, fn)`):
 * - `weft:checkpoint` `{ epoch, ms, bytes, states }` when a checkpoint commits;
 * - `weft:recovery` `{ shard, error, committedEpoch }` when a failed shard triggers a rollback;
 * - `weft:dead-letter` the {@link DeadLetter} as it is handed to the host;
 * - `weft:late-context` `{ shard, address, method }` when a function's `ctx` was used after its
 *   invocation ended (a forgotten `await`): the call had no effect (metrics `lateContextCalls`);
 * - `weft:uncaught-error` `{ shard, error }` when user code left behind by a function threw in a
 *   shard outside any invocation (a timer or callback): reported, not fatal (metrics
 *   `uncaughtErrors`);
 * - `weft:poison` the {@link DeadLetter} of a message that was isolated because its invocation
 *   ended or stalled its shard (metrics `poisonMessages` counts them when isolated).
 */
export const channels = Object.freeze({
  checkpoint: channel('weft:checkpoint'),
  recovery: channel('weft:recovery'),
  deadLetter: channel('weft:dead-letter'),
  lateContext: channel('weft:late-context'),
  uncaughtError: channel('weft:uncaught-error'),
  poison: channel('weft:poison'),
});

/** Options of {@link Weft.send}. */
export interface SendOptions {
  /** The value's type; default: msgpack. */
  type?: ValueType<unknown>;
  /**
   * Applies the message at most once per target address within `idempotencyRetentionMs`: a
   * message with a key the address has applied is not applied again, and a request gets the
   * reply of the invocation that applied it (README, "Idempotency keys"). A non-empty string of
   * at most 256 characters.
   */
  idempotencyKey?: string;
}

/** Options of {@link Weft.request}. */
export interface RequestOptions extends SendOptions {
  /** Reject with ERR_WEFT_TIMEOUT after this many ms. Default: options.requestTimeoutMs. */
  timeoutMs?: number;
  /** Resolve only once the invocation that replied is committed. Default false. */
  durable?: boolean;
}

/** A record of the `weft/dead-letters` egress. */
export interface DeadLetter {
  target: Address;
  caller: Address | null;
  typename: string;
  /** The message value, decoded when the module knows its type. */
  value: unknown;
  error: Error;
  attempts: number;
  /** ms since the Unix epoch */
  at: number;
}

/** Per-shard figures of {@link Weft.metrics}. */
export interface ShardMetrics extends Record<MetricName, number> {
  shard: number;
  /** Invocation latency histogram: `[upperBoundMicros, count]`, log2 buckets. */
  latencyHistogram: Array<[number, number]>;
  latencyP50Micros: number;
  latencyP99Micros: number;
}

export interface WeftMetrics {
  shards: ShardMetrics[];
  hostMessagesSent: number;
  hostMessagesUncommitted: number;
  requestsPending: number;
  /** Committed egress records not yet acknowledged by the host (they wait in the data dir). */
  egressBuffered: number;
  /** Dead letters deleted unacknowledged because `weft/dead-letters` held `egressMaxBacklog` (the only egress records weft ever drops). */
  egressDropped: number;
  /** Egress records handed to an iterator again after an earlier one ended without acknowledging them (this process). */
  egressRedelivered: number;
  /**
   * Egresses at `egressMaxBacklog` unacknowledged records not held by an iterator: host sends wait
   * while any is, at most `egressFullWaitMs`.
   */
  egressFull: number;
  /**
   * Times a full egress held host sends back for `egressFullWaitMs`: the waiting sends went on, and
   * that egress may hold more than `egressMaxBacklog` records until its backlog drops below it.
   */
  egressOverBacklog: number;
  committedEpoch: number;
  checkpointsCommitted: number;
  lastCheckpoint: { epoch: number; ms: number; bytes: number; states: number } | null;
  recoveries: number;
  /** Recoveries that no message explains: these count against the restart budget. */
  unexplainedFailures: number;
  /** Messages isolated because their invocation ended or stalled its shard (see `weft:poison`). */
  poisonMessages: number;
  /** Shards main terminated because their event loop was blocked past `invocationTimeoutMs`. */
  stalledShards: number;
  /** Context methods called after their invocation ended (see `weft:late-context`). */
  lateContextCalls: number;
  /** Errors thrown in shards outside any invocation by code functions left behind (see `weft:uncaught-error`). */
  uncaughtErrors: number;
  messagesAlive: number;
  /** Host sends waiting for room in the main→shard rings (ingress backpressure). */
  ingressWaiting: number;
  /** Encoded frames main holds back because a main→shard ring is full (bounded). */
  ingressSpilledFrames: number;
}

interface AckGroup {
  /** lowest hseq in the group */
  first: number;
  /** highest hseq in the group: the group resolves when the committed watermark passes it */
  hseq: number;
  promise: Promise<void>;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/**
 * A frame of host messages kept until their epoch commits. `start`/`end`: the epoch tag of its
 * first record and of the record after its last (a record's tag is the epoch of the next barrier
 * on its ring; BARRIER(e) records inside the frame advance it to e + 1).
 */
interface LoggedFrame {
  frame: Uint8Array;
  start: number;
  end: number;
  msgs: number;
}

interface PendingRequest {
  resolve(value: unknown): void;
  reject(err: unknown): void;
  timer: NodeJS.Timeout;
  durable: boolean;
  ack: Promise<void> | null;
  /** The request message's hseq, once accepted (0 before). */
  hseq: number;
}

interface PendingQuery {
  type: string;
  id: string;
  shard: number;
  resolve(value: Record<string, unknown> | undefined): void;
  reject(err: unknown): void;
}

type EgressRecord_ = [name: string, typename: string, payload: Uint8Array];

/** Frames main may hold back for full main→shard rings before sends wait (about 2 MiB). */
const INGRESS_HIGH_WATER_FRAMES = 32;
/** Sends between two reads of the shards' dirty counts (a power of two). */
const DIRTY_CHECK_SENDS = 64;
/** Waiting sends let through per flush once the rings have room again. */
const INGRESS_RELEASE_BATCH = 4096;
/**
 * Shard failures that no message explains, tolerated within RECOVERY_WINDOW_MS before the engine
 * gives up (a failure that comes back right after every recovery is a bug, not a crash).
 */
const MAX_RECOVERIES = 5;
const RECOVERY_WINDOW_MS = 60_000;
/** Suspected messages (see Weft#suspects) remembered at most. */
const MAX_SUSPECTS = 1024;
/**
 * A shard whose event loop is blocked while no function is recorded as running is terminated
 * after this many times invocationTimeoutMs (see #watch): the engine's long steps beat the
 * heartbeat, but a GC pause, or a step that cannot (one LMDB call), may take a while.
 */
const ENGINE_STALL_FACTOR = 10;

/**
 * Set by a shard worker (shard/worker.ts) on its global object before it loads the function
 * module: `{ shard, moduleUrl, misuse? }`. A module that calls Weft.start there would start an
 * engine per shard, whose shards start engines, until the process runs out of threads.
 */
export const SHARD_THREAD = Symbol.for('weft.shardThread');
/** Function modules Weft.start is loading on this thread (a call from inside them is re-entrant). */
const loadingModules = new Map<string, number>();
/** Modules that called Weft.start while being loaded: the outer Weft.start fails. */
const reentered = new Map<string, WeftError>();

/** Why Weft.start must not run here, or undefined. */
function startMisuse(): WeftError | undefined {
  const inShard = (globalThis as Record<symbol, unknown>)[SHARD_THREAD] as { shard: number; moduleUrl: string; misuse?: WeftError } | undefined;
  if (inShard !== undefined) {
    const err = new WeftError('ERR_WEFT_INVALID_MODULE', `Weft.start was called inside shard thread ${inShard.shard}, which loads function module ${inShard.moduleUrl}: a function module must not start an engine (shards load it too); call Weft.start from the host program`);
    inShard.misuse ??= err;
    return err;
  }
  if (loadingModules.size === 0) return undefined;
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 200;
  const stack = new Error().stack ?? '';
  Error.stackTraceLimit = limit;
  for (const url of loadingModules.keys()) {
    if (!stack.includes(url)) continue;
    const err = new WeftError('ERR_WEFT_INVALID_MODULE', `Weft.start was called re-entrantly by function module ${url} while the engine was loading it: a function module must not start an engine (shards load it too); call Weft.start from the host program`);
    reentered.set(url, err);
    return err;
  }
  return undefined;
}

async function loadFunctionModule(url: string): Promise<Awaited<ReturnType<typeof loadModule>>> {
  loadingModules.set(url, (loadingModules.get(url) ?? 0) + 1);
  let loaded: PromiseSettledResult<Awaited<ReturnType<typeof loadModule>>>;
  try {
    loaded = { status: 'fulfilled', value: await loadModule(url) };
  } catch (reason) {
    loaded = { status: 'rejected', reason };
  }
  const n = loadingModules.get(url)! - 1;
  if (n === 0) loadingModules.delete(url);
  else loadingModules.set(url, n);
  // The module called Weft.start while loading (and may have swallowed the rejection).
  const misuse = reentered.get(url);
  if (misuse !== undefined) {
    reentered.delete(url);
    throw misuse;
  }
  if (loaded.status === 'rejected') throw loaded.reason;
  return loaded.value;
}

/**
 * A running weft engine.
 *
 * @example
 * ```ts
 * import { Weft } from 'weft';
 * const weft = await Weft.start({ module: new URL('./functions.js', import.meta.url), dataDir: './data' });
 * await weft.send({ type: 'example/greeter', id: 'ada' }, { name: 'Ada' });
 * console.log(await weft.request({ type: 'example/greeter', id: 'ada' }, { name: 'Ada' }));
 * await weft.close();
 * ```
 */
export class Weft {
  readonly #opts: ResolvedOptions;
  readonly #module: RuntimeModule;
  /** Wire names of this engine (transport/names.ts), shared with every shard generation. */
  readonly #names: NameTable;
  readonly #wire: FrameEncoder;
  readonly #dir: DataDir;
  readonly #partitioner: Partitioner;
  readonly #coordinator: Coordinator;
  readonly #compute: ComputePool | undefined;
  #pool!: ShardPool;
  #out: Outbound[] = [];
  #flushScheduled = false;
  #sleeping = false;
  #generation = 0;

  #hseq = 0;
  #unpublished = 0;
  #activity = 0;
  #activityAtLastCheckpoint = -1;
  /** Per shard: frames of host messages not yet committed, oldest first. */
  readonly #frameLog: LoggedFrame[][];
  /** Per shard: the epoch tag of the next record cut into a frame. */
  readonly #streamEpoch: number[];
  readonly #openAck: Array<AckGroup | null>;
  readonly #ackGroups: AckGroup[][];
  readonly #lastAck: number[];
  readonly #committedAck: number[];
  readonly #ackAtBarrier = new Map<number, number[]>();
  /**
   * Per shard: hseqs below its ack watermark still pending (messages of a paused remote address,
   * see HostAcks), as last reported, at each barrier, and as of the last commit.
   */
  readonly #lastPending: number[][];
  readonly #pendingAtBarrier = new Map<number, number[][]>();
  readonly #committedPending: number[][];

  readonly #egressSince: EgressRecord_[][];
  readonly #egressByEpoch = new Map<number, EgressRecord_[]>();
  readonly #egress = new Map<string, EgressChannel>();
  readonly #egressStore: EgressStore;
  /** The records of the epoch being committed, numbered (their seq is the index). */
  #egressCommitting: EgressRecord_[] = [];
  /** Egresses at their backlog bound. */
  #egressFull = 0;
  /**
   * The full egresses host sends wait for: a full egress leaves this set when it has room again,
   * or when sends waited `egressFullWaitMs` for it (then it may grow past its bound until it has
   * room again), or at close().
   */
  readonly #egressBlocking = new Set<EgressChannel>();
  /** Bounds the wait of host sends for #egressBlocking (armed while sends wait for it). */
  #egressWaitTimer: NodeJS.Timeout | undefined;
  #egressOverBacklog = 0;
  #egressOverWarned = false;
  readonly #replySince: Array<Array<[requestId: number, typename: string, payload: Uint8Array]>>;

  #requestSeq = 0;
  readonly #requests = new Map<number, PendingRequest>();
  readonly #queries = new Map<number, PendingQuery>();
  #idleWaiters: Array<() => void> = [];
  #ingressWaiters: Array<() => void> = [];

  #closing = false;
  #closed = false;
  #closePromise: Promise<void> | undefined;
  #failure: Error | undefined;
  #recovering: Promise<void> | undefined;
  /** Between the old generation's end and the re-send: nothing may be published. */
  #rollingBack = false;
  #recoveries = 0;
  /** Unexplained failures of the last RECOVERY_WINDOW_MS (`suspect`: the message running then). */
  #recentFailures: Array<{ at: number; suspect: string | undefined }> = [];
  #unexplained = 0;
  /**
   * Messages (fingerprints, see Dispatcher's messageFingerprint) that ended or stalled a shard,
   * with the error of their dead letter and the generation that isolated them: shards
   * dead-letter them instead of running them, so no poison message can stop the engine. An entry
   * holds for the replay of the recovery it was made for only: it leaves when its dead letter is
   * committed, or at the first checkpoint committed after that recovery (the replay has then
   * reached it, or it was not sent again: see Dispatcher.scopeQuarantine, the shards' side).
   */
  readonly #quarantine = new Map<string, { error: SerializedError; generation: number }>();
  /**
   * Messages that were running when a shard died once (fingerprint → when): a second death inside
   * the same message quarantines it (one death could be a coincidence: memory another message
   * filled, a signal), and takes back the failure the first one counted.
   */
  readonly #suspects = new Map<string, number>();
  #poisonMessages = 0;
  #stalledShards = 0;
  #lateContextCalls = 0;
  #uncaughtErrors = 0;
  /**
   * The unexplained failure the next (or current) generation runs careful for (see
   * Dispatcher.careful); when that generation then isolates a message, this one is explained too.
   */
  #carefulFor: { at: number; suspect: string | undefined } | undefined;
  #nextCareful = false;
  /** The generation that runs careful for #carefulFor. */
  #carefulGeneration = 0;
  /**
   * Shards of this generation main terminated for a blocked event loop, with the invocation
   * recorded when #watch decided (undefined: none): #onShardFailed blames it only if it is still
   * the one recorded when the worker exited.
   */
  readonly #stalled = new Map<number, Running | undefined>();
  #watchdog: NodeJS.Timeout | undefined;
  #watchedAt = 0;
  #beats: number[] = [];
  #beatSeenAt: number[] = [];
  #checkpointsCommitted = 0;
  #lastCheckpoint: WeftMetrics['lastCheckpoint'] = null;

  private constructor(opts: ResolvedOptions, module: RuntimeModule, dir: DataDir) {
    this.#opts = opts;
    this.#module = module;
    this.#names = new NameTable(wireNamesOf(module));
    this.#wire = wireEncoder(this.#names);
    this.#dir = dir;
    const n = opts.shards;
    this.#partitioner = new Partitioner(n, dir.info.keyGroups);
    const computeFile = module.definition.compute;
    this.#compute = computeFile !== undefined && opts.computeThreads > 0 ? new ComputePool(computeFile.href, opts.computeThreads) : undefined;
    this.#frameLog = Array.from({ length: n }, () => []);
    this.#logSlabs = new LogSlabs(n);
    this.#streamEpoch = new Array<number>(n).fill(dir.info.committedEpoch + 1);
    this.#openAck = new Array<AckGroup | null>(n).fill(null);
    this.#ackGroups = Array.from({ length: n }, () => []);
    this.#lastAck = new Array<number>(n).fill(0);
    this.#committedAck = new Array<number>(n).fill(0);
    this.#lastPending = Array.from({ length: n }, () => []);
    this.#committedPending = Array.from({ length: n }, () => []);
    this.#egressSince = Array.from({ length: n }, () => []);
    this.#replySince = Array.from({ length: n }, () => []);
    this.#egressStore = new EgressStore(dir.meta, (err) => this.#fail(err));
    for (const name of module.egresses) this.#channel(name);
    this.#coordinator = new Coordinator(n, dir.info.committedEpoch, opts.checkpointIntervalMs, {
      injectBarrier: (epoch) => {
        this.#activityAtLastCheckpoint = this.#currentActivity();
        for (const out of this.#out) out.push([Kind.Barrier, epoch], 16);
        this.#flush();
      },
      commit: (epoch, figures) => {
        // The epoch's egress records become durable in the same transaction (see egress.ts).
        const records = this.#takeEgress(epoch);
        this.#egressCommitting = records;
        return this.#dir.commit({ epoch, at: Date.now(), ...figures }, records.length === 0 ? undefined : (ops) => EgressStore.put(ops, records, epoch));
      },
      committed: (epoch) => this.#onCommitted(epoch),
      // Changed instances no snapshot took yet are activity too: an async invocation counts when
      // it starts but changes its state when it completes, possibly after the last barrier (and
      // host sends may be waiting for exactly that checkpoint, see #dirtyOver).
      quiescent: () => this.#currentActivity() === this.#activityAtLastCheckpoint && this.#pool.control.alive() === 0 && !this.#dirtyOver(0),
      failed: (err) => this.#fail(err),
    });
  }

  /**
   * Starts an engine: validates options, opens (or creates) and locks the data dir, repartitions
   * it when the shard count changed, spawns the shard workers, and recovers the last committed
   * checkpoint.
   */
  static start(options: WeftOptions): Promise<Weft> {
    const misuse = startMisuse();
    if (misuse !== undefined) {
      // The caller is the function module: when it does not await, the rejection must not end
      // the process (the engine loading the module fails with the same error instead).
      const rejected = Promise.reject(misuse);
      rejected.catch(() => {});
      return rejected;
    }
    return Weft.#start(options);
  }

  static async #start(options: WeftOptions): Promise<Weft> {
    let opts = resolveOptions(options);
    const definition = await loadFunctionModule(opts.moduleUrl);
    const module = compileModule(definition, opts.remote.map((r) => remoteMatcher(r.functions)));
    const dir = await DataDir.open(opts.dataDir, { keyGroups: opts.keyGroupsGiven ? opts.keyGroups : undefined, shards: opts.shards, shardsAuto: opts.shardsAuto, durability: opts.durability });
    // 'auto' shards are capped at the data dir's key groups.
    if (dir.shards !== opts.shards) opts = Object.freeze({ ...opts, shards: dir.shards });
    try {
      if (dir.info.shards !== opts.shards) await repartition(dir, opts.shards, opts.durability);
      const weft = new Weft(opts, module, dir);
      try {
        await weft.#startPool();
      } catch (err) {
        await weft.#compute?.close();
        throw err;
      }
      weft.#coordinator.start();
      debug('started: %d shards, data dir %s, committed epoch %d', opts.shards, opts.dataDir, dir.info.committedEpoch);
      return weft;
    } catch (err) {
      await dir.close().catch(() => {});
      throw err;
    }
  }

  async #startPool(): Promise<void> {
    const generation = ++this.#generation;
    const pool = new ShardPool(
      {
        shards: this.#opts.shards,
        keyGroups: this.#dir.info.keyGroups,
        ringBytes: this.#opts.ringBytes,
        moduleUrl: this.#opts.moduleUrl,
        durability: this.#opts.durability,
        cacheSize: this.#opts.cacheSize,
        maxAttempts: this.#opts.maxAttempts,
        retryBackoffMs: this.#opts.retryBackoffMs,
        maxMessageBytes: this.#opts.maxMessageBytes,
        maxStateValueBytes: this.#opts.maxStateValueBytes,
        maxShardHeapMb: this.#opts.maxShardHeapMb,
        shardYoungGenerationMb: this.#opts.shardYoungGenerationMb,
        wireNames: this.#names.names,
        compute: this.#compute !== undefined,
        remote: this.#opts.remote,
        invocationTimeoutMs: this.#opts.invocationTimeoutMs,
        idempotencyRetentionMs: this.#opts.idempotencyRetentionMs,
        partitionPath: (s) => this.#dir.partitionPath(s),
      },
      {
        onShardFailed: (shard, err) => this.#onShardFailed(generation, shard, err),
        onLateCall: (shard, address, method) => this.#onLateCall(generation, shard, address, method),
        onUncaught: (shard, error) => this.#onUncaught(generation, shard, error),
      },
    );
    this.#pool = pool;
    this.#stalled.clear();
    if (this.#nextCareful) this.#carefulGeneration = generation;
    await pool.start(this.#coordinator.committedEpoch, generation > 1, [...this.#quarantine].map(([fp, q]) => [fp, q.error] as const), this.#nextCareful);
    this.#nextCareful = false;
    this.#startWatchdog();
    // Only now: while the workers start, sends still go to the previous generation's outbounds,
    // so a recovery re-sends them after the older messages it re-sends (order is kept).
    this.#out = pool.toShard.map((ring, s) => {
      const out = new Outbound(ring, 1 + s, pool.bells, this.#wire);
      out.onCut = (frame, records) => this.#logFrame(s, frame, records);
      return out;
    });
    this.#sleep();
  }

  /** Changes whenever anything happened that a checkpoint could capture. */
  #currentActivity(): number {
    let n = this.#activity;
    for (let s = 0; s < this.#opts.shards; s++) {
      const base = this.#pool.control.metricsBase(s);
      const f = this.#pool.control.f64;
      n += (f[base + METRIC_INDEX.invocations] ?? 0) + (f[base + METRIC_INDEX.timersFired] ?? 0);
    }
    return n;
  }

  // ------------------------------------------------------------------------------------------
  // Ingress
  // ------------------------------------------------------------------------------------------

  #checkOpen(what: string): void {
    if (this.#closing) throw new WeftError('ERR_WEFT_CLOSED', `weft.${what}() called after close()`);
    if (this.#failure !== undefined) {
      throw new WeftError('ERR_WEFT_CLOSED', `weft.${what}() called on an engine that failed: ${this.#failure.message}`, { cause: this.#failure });
    }
  }

  #target(to: unknown, what: string): Address {
    return checkTarget(this.#module, to, what);
  }


  /**
   * Keeps a frame holding host messages until their epoch commits (see #recover). Keeping whole
   * frames, not one object per message, keeps this off the per-message path and out of the GC.
   */
  #logFrame(shard: number, frame: Uint8Array, records: readonly unknown[]): void {
    const start = this.#streamEpoch[shard]!;
    let msgs = 0;
    for (const rec of records) {
      const kind = (rec as unknown[])[0];
      if (kind === Kind.Msg) msgs++;
      else if (kind === Kind.Barrier) this.#streamEpoch[shard] = ((rec as unknown[])[1] as number) + 1;
    }
    if (msgs > 0) this.#frameLog[shard]!.push({ frame: this.#logSlabs.keep(shard, frame), start, end: this.#streamEpoch[shard]!, msgs });
  }

  /** Memory of the logged frames (internal/log-slabs.ts). */
  readonly #logSlabs: LogSlabs;

  /** Accepts a host message: routes it; its frame is logged for re-sending until its epoch commits. */
  #accept(a: Address, typename: string, payload: Uint8Array, requestId: number, idempotencyKey: string | undefined): AckGroup {
    const shard = this.#partitioner.shardOf(this.#partitioner.keyGroup(a.type, a.id));
    const hseq = ++this.#hseq;
    const env = envelope(a.type, a.id, null, null, typename, payload, requestId, hseq, idempotencyKey);
    this.#unpublished++;
    this.#activity++;
    this.#out[shard]!.push(env, envelopeWeight(env));
    let group = this.#openAck[shard];
    if (group === null || group === undefined) {
      // Fire-and-forget sends are normal: a group nobody awaits must not become an unhandled
      // rejection (and crash the host) when the engine closes or fails. Awaiting callers still
      // get the rejection.
      group = { first: hseq, hseq, ...quietDeferred() };
      this.#openAck[shard] = group;
      this.#ackGroups[shard]!.push(group);
    } else group.hseq = hseq;
    this.#scheduleFlush();
    return group;
  }

  #throttled(): boolean {
    if (this.#ingressWaiters.length > 0 || this.#egressBlocking.size > 0) return true;
    let depth = 0;
    for (const out of this.#out) depth += out.spillDepth;
    if (depth > INGRESS_HIGH_WATER_FRAMES) return true;
    // The shards' dirty counts are read at every flush and every DIRTY_CHECK_SENDS sends (reading
    // shared memory on every send cost ~3% of main's time).
    if ((++this.#sendsSinceDirtyCheck & (DIRTY_CHECK_SENDS - 1)) === 0) this.#dirtyHigh = this.#dirtyOver(this.#opts.cacheSize);
    return this.#dirtyHigh;
  }

  /** Some shard held more dirty instances than its cache at the last check (see {@link #dirtyOver}). */
  #dirtyHigh = false;
  #sendsSinceDirtyCheck = 0;

  /**
   * Some shard holds more dirty instances (changed since its last snapshot) than its cache size.
   * Dirty instances cannot be evicted until a snapshot takes them, so when the working set
   * changes faster than checkpoints complete (many distinct instances, a slow disk), the cache
   * would grow without bound: host sends wait instead, until the next snapshot. Without periodic
   * checkpoints (checkpointIntervalMs 0) nothing would take them, so nothing waits for it.
   */
  #dirtyOver(limit: number): boolean {
    if (this.#opts.checkpointIntervalMs === 0) return false;
    const control = this.#pool.control;
    const f = control.f64;
    for (let s = 0; s < this.#opts.shards; s++) {
      if ((f[control.metricsBase(s) + METRIC_INDEX.dirtyInstances] ?? 0) > limit) return true;
    }
    return false;
  }

  #waitForRoom(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.#ingressWaiters.push(resolve);
      if (this.#egressBlocking.size > 0) this.#armEgressWait();
    });
  }

  /** Host sends wait for a full egress: they go on after `egressFullWaitMs` at most. */
  #armEgressWait(): void {
    if (this.#egressWaitTimer !== undefined) return;
    this.#egressWaitTimer = setTimeout(this.#egressWaitExpired, this.#opts.egressFullWaitMs);
    this.#egressWaitTimer.unref();
  }

  readonly #egressWaitExpired = (): void => {
    this.#egressWaitTimer = undefined;
    if (this.#closed || this.#ingressWaiters.length === 0 || this.#egressBlocking.size === 0) return;
    for (const ch of this.#egressBlocking) {
      this.#egressOverBacklog++;
      if (!this.#egressOverWarned) {
        this.#egressOverWarned = true;
        process.emitWarning(
          `weft: host sends waited ${this.#opts.egressFullWaitMs} ms (egressFullWaitMs) for egress ${JSON.stringify(ch.name)}, which holds ${this.#opts.egressMaxBacklog} unacknowledged records (egressMaxBacklog); ` +
            'they go on, and the egress may hold more until its consumer catches up (metrics egressOverBacklog; nothing is dropped). ' +
            'Read it with weft.egress(name), or raise egressMaxBacklog / egressFullWaitMs.',
        );
      }
    }
    this.#egressBlocking.clear();
    this.#scheduleFlush();
  };

  /**
   * Sends `value` to the function at `to`. Resolves once the message's invocation and all its
   * effects are part of a committed checkpoint: from then on no crash loses it and it is applied
   * exactly once. When the engine is behind, the message waits for room first (backpressure; a
   * full egress holds it back for at most `egressFullWaitMs`). Rejects with ERR_WEFT_CLOSED when
   * the engine closed before the message was committed (it is not applied), or ERR_WEFT_DEFERRED
   * when it was committed but waits for a paused remote address (it is applied at the next start:
   * do not resend it).
   */
  send(to: Address, value: unknown, opts?: SendOptions): Promise<void> {
    try {
      this.#checkOpen('send');
      const a = this.#target(to, 'weft.send');
      const t = valueType(this.#module, opts?.type, 'weft.send');
      const typename = t.typename;
      const payload = encodeSharedPayload(t, value, 'weft.send value', this.#opts.maxMessageBytes);
      const key = opts === undefined ? undefined : checkIdempotencyKey(opts.idempotencyKey, 'weft.send');
      if (this.#throttled()) return this.#waitForRoom().then(() => this.#acceptChecked(a, typename, payload, 0, key, 'send').promise);
      return this.#accept(a, typename, payload, 0, key).promise;
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Accepts a message that waited for room (backpressure), unless the engine closed or failed meanwhile. */
  #acceptChecked(a: Address, typename: string, payload: Uint8Array, requestId: number, idempotencyKey: string | undefined, what: string): AckGroup {
    if (this.#closing && this.#failure === undefined) {
      throw new WeftError('ERR_WEFT_CLOSED', `weft.${what}() waited for room (backpressure) and close() was called meanwhile: the message was not accepted`);
    }
    this.#checkOpen(what);
    return this.#accept(a, typename, payload, requestId, idempotencyKey);
  }

  /**
   * Sends `value` and resolves with the value the target passes to `ctx.reply`. Rejects with
   * ERR_WEFT_TIMEOUT after `timeoutMs`. With `durable: true`, resolves only once the replying
   * invocation is committed.
   */
  request(to: Address, value: unknown, opts?: RequestOptions): Promise<unknown> {
    try {
      this.#checkOpen('request');
      const a = this.#target(to, 'weft.request');
      const timeoutMs = opts?.timeoutMs ?? this.#opts.requestTimeoutMs;
      if (typeof timeoutMs !== 'number' || !Number.isFinite(timeoutMs) || timeoutMs <= 0) {
        throw new WeftError('ERR_WEFT_INVALID_ARG', `weft.request timeoutMs must be a positive number of ms (got ${describe(timeoutMs)})`);
      }
      const durable = opts?.durable ?? false;
      if (typeof durable !== 'boolean') throw new WeftError('ERR_WEFT_INVALID_ARG', `weft.request durable must be a boolean (got ${describe(durable)})`);
      const t = valueType(this.#module, opts?.type, 'weft.request');
      const typename = t.typename;
      const payload = encodeSharedPayload(t, value, 'weft.request value', this.#opts.maxMessageBytes);
      const key = opts === undefined ? undefined : checkIdempotencyKey(opts.idempotencyKey, 'weft.request');
      const requestId = ++this.#requestSeq;
      return new Promise<unknown>((resolve, reject) => {
        const timer = setTimeout(() => {
          this.#requests.delete(requestId);
          reject(new WeftError('ERR_WEFT_TIMEOUT', `weft.request to ${a.type}/${a.id} got no reply within ${timeoutMs} ms`));
        }, timeoutMs);
        const pending: PendingRequest = { resolve, reject, timer, durable, ack: null, hseq: 0 };
        this.#requests.set(requestId, pending);
        const go = (): void => {
          try {
            const group = this.#acceptChecked(a, typename, payload, requestId, key, 'request');
            pending.hseq = group.hseq;
            if (durable) pending.ack = group.promise;
          } catch (err) {
            clearTimeout(timer);
            this.#requests.delete(requestId);
            reject(err);
          }
        };
        if (this.#throttled()) void this.#waitForRoom().then(go);
        else go();
      });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * The committed records of egress `name` as `{ id, value, ack() }`, oldest first, including
   * records committed before this start and not yet acknowledged. At-least-once: a record stays in
   * the data dir until acknowledged — by asking for the next record (`autoAck`, the default) or by
   * `record.ack()` — and is delivered again after a crash, or when its iterator ends without
   * acknowledging it (`break`, `return`, an exception in the loop body), with the same `id`.
   * Concurrent iterators of one egress share its records: each goes to one iterator at a time.
   * `weft/dead-letters` yields {@link DeadLetter} values.
   */
  egress(name: string, options?: EgressIteratorOptions): AsyncIterableIterator<EgressRecord> {
    if (typeof name !== 'string' || !this.#module.egresses.has(name)) {
      throw new WeftError('ERR_WEFT_UNKNOWN_EGRESS', `weft.egress: egress ${describe(name)} is not declared in the module's egresses`);
    }
    if (options !== undefined && (options === null || typeof options !== 'object')) {
      throw new WeftError('ERR_WEFT_INVALID_ARG', `weft.egress options must be an object (got ${describe(options)})`);
    }
    if (options?.autoAck !== undefined && typeof options.autoAck !== 'boolean') {
      throw new WeftError('ERR_WEFT_INVALID_ARG', `weft.egress autoAck must be a boolean (got ${describe(options.autoAck)})`);
    }
    return this.#channel(name).iterator(options);
  }

  #channel(name: string): EgressChannel {
    let ch = this.#egress.get(name);
    if (ch === undefined) {
      ch = new EgressChannel(name, this.#egressStore, {
        maxBacklog: this.#opts.egressMaxBacklog,
        dropOldest: name === DEAD_LETTER_EGRESS,
        decode: (typename, payload) => this.#decodeEgress(name, typename, payload),
        onFull: (full, channel) => {
          this.#egressFull += full ? 1 : -1;
          if (full) {
            // egressFullWaitMs 0: sends never wait for egresses. After close(), nothing waits.
            if (this.#opts.egressFullWaitMs === 0 || this.#closing) return;
            this.#egressBlocking.add(channel);
            if (this.#ingressWaiters.length > 0) this.#armEgressWait();
          } else if (this.#egressBlocking.delete(channel)) this.#scheduleFlush();
        },
      });
      this.#egress.set(name, ch);
      if (this.#closed) ch.end();
    }
    return ch;
  }

  /** Takes the egress records of the epochs up to `epoch` (the one committing). */
  #takeEgress(epoch: number): EgressRecord_[] {
    let out: EgressRecord_[] = [];
    for (const [e, records] of this.#egressByEpoch) {
      if (e > epoch) continue;
      this.#egressByEpoch.delete(e);
      out = out.length === 0 ? records : out.concat(records);
    }
    return out;
  }

  /** The instance's current state as a plain object of its declared specs, or undefined. */
  query(address: Address): Promise<Record<string, unknown> | undefined> {
    try {
      this.#checkOpen('query');
      validateAddress(address, 'weft.query address');
      if (!this.#module.isKnownFunction(address.type)) {
        throw new WeftError('ERR_WEFT_UNKNOWN_FUNCTION', `weft.query: no function of type ${describe(address.type)} is defined`);
      }
      const shard = this.#partitioner.shardOf(this.#partitioner.keyGroup(address.type, address.id));
      const requestId = ++this.#requestSeq;
      return new Promise((resolve, reject) => {
        this.#queries.set(requestId, { type: address.type, id: address.id, shard, resolve, reject });
        this.#out[shard]!.push([Kind.Query, requestId, address.type, address.id], 64);
        this.#scheduleFlush();
      });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * The instances of function type `type` in the last committed checkpoint, as an async iterable
   * of ids (or of `{ id, state }` with `withState`, the state as {@link query} returns it), in id
   * order across all shards. Changes after that checkpoint are not seen; deleted instances and
   * instances whose every value expired are absent. Streams with bounded memory; the read
   * snapshot it holds is released when the iteration ends or is broken out of (src/state/listing.ts).
   * Throws ERR_WEFT_INVALID_ARG for bad options, ERR_WEFT_UNKNOWN_FUNCTION for an unknown type.
   */
  instances(type: string, options: InstancesOptions & { withState: true }): AsyncIterableIterator<InstanceEntry>;
  instances(type: string, options?: InstancesOptions & { withState?: false }): AsyncIterableIterator<string>;
  instances(type: string, options?: InstancesOptions): AsyncIterableIterator<string | InstanceEntry>;
  instances(type: string, options?: InstancesOptions): AsyncIterableIterator<string | InstanceEntry> {
    this.#checkOpen('instances');
    const opts = resolveInstancesArgs(this.#module, type, options, 'weft.instances');
    this.#lister ??= new Lister({
      partitionPaths: Array.from({ length: this.#opts.shards }, (_, s) => this.#dir.partitionPath(s)),
      durability: this.#opts.durability,
      keyGroups: this.#dir.info.keyGroups,
      module: this.#module,
      shardOf: (kg) => this.#partitioner.shardOf(kg),
      committedEpoch: () => this.#coordinator.committedEpoch,
      checkOpen: () => this.#checkOpen('instances'),
    });
    return this.#lister.list(type, opts);
  }

  #lister: Lister | undefined;

  /** Resolves when no message is queued or in flight (pending delayed messages excepted). */
  idle(): Promise<void> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    if (this.#isIdle()) return Promise.resolve();
    return new Promise<void>((resolve) => this.#idleWaiters.push(resolve));
  }

  #isIdle(): boolean {
    return this.#recovering === undefined && this.#unpublished === 0 && this.#ingressWaiters.length === 0 && this.#pool.control.alive() === 0;
  }

  /** Forces a checkpoint; resolves with its epoch number once committed. */
  checkpoint(): Promise<number> {
    try {
      this.#checkOpen('checkpoint');
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#coordinator.checkpoint();
  }

  // ------------------------------------------------------------------------------------------
  // The main thread's loop: drain shard→main rings, flush main→shard rings
  // ------------------------------------------------------------------------------------------

  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    queueMicrotask(this.#flushTask);
  }

  readonly #flushTask = (): void => {
    this.#flushScheduled = false;
    this.#flush();
  };

  readonly #beforePublish = (): void => {
    if (this.#unpublished !== 0) {
      this.#pool.control.addAlive(this.#unpublished);
      this.#unpublished = 0;
    }
  };

  #flush(): void {
    if (this.#rollingBack) return;
    // Shards publish their dirty counts once per turn: reading them once per flush is enough.
    this.#dirtyHigh = this.#dirtyOver(this.#opts.cacheSize);
    for (let s = 0; s < this.#out.length; s++) {
      this.#out[s]!.flush(this.#beforePublish);
      this.#openAck[s] = null;
    }
    if (this.#ingressWaiters.length > 0 && !this.#throttledByRings()) {
      // Release waiting sends a slice at a time: all at once would refill what just drained.
      const waiters = this.#ingressWaiters.splice(0, INGRESS_RELEASE_BATCH);
      for (const w of waiters) w();
      if (this.#ingressWaiters.length > 0) this.#scheduleFlush();
      // Released sends refused at close() publish nothing: no shard report would end idle().
      else if (this.#closing) queueMicrotask(() => this.#resolveIdle());
    }
  }

  #throttledByRings(): boolean {
    let depth = 0;
    for (const out of this.#out) depth += out.spillDepth;
    return depth > INGRESS_HIGH_WATER_FRAMES / 2 || this.#egressBlocking.size > 0 || this.#dirtyOver((this.#opts.cacheSize >> 2) * 3);
  }

  #sleep(): void {
    if (this.#closed || this.#sleeping) return;
    const bells = this.#pool.bells;
    const generation = this.#generation;
    bells.prepareSleep(0);
    for (const ring of this.#pool.fromShard) {
      if (ring.hasData()) {
        bells.cancelSleep(0);
        setImmediate(() => this.#wake(generation));
        this.#sleeping = true;
        return;
      }
    }
    this.#sleeping = true;
    void bells.sleep(0).then(() => this.#wake(generation));
  }

  #wake(generation: number): void {
    if (generation !== this.#generation) return;
    this.#sleeping = false;
    if (this.#closed) return;
    try {
      this.#drain();
    } catch (err) {
      this.#fail(err);
      return;
    }
    this.#sleep();
  }

  #drain(): void {
    const pool = this.#pool;
    for (let s = 0; s < pool.fromShard.length; s++) {
      const ring = pool.fromShard[s]!;
      let n: number;
      do {
        n = ring.drain((frame) => this.#onFrame(s, frame), 256);
        if (n > 0 && ring.takeRoomRequest()) pool.bells.ring(1 + s);
      } while (n === 256);
    }
    this.#flush();
    this.#resolveIdle();
  }

  #resolveIdle(): void {
    if (this.#idleWaiters.length > 0 && this.#isIdle()) {
      const waiters = this.#idleWaiters;
      this.#idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  #onFrame(shard: number, frame: Uint8Array): void {
    const records = decodeBatch(frame) as unknown as unknown[][];
    for (const rec of records) {
      switch (rec[0] as Kind) {
        case Kind.Reply:
          this.#onReply(shard, rec[1] as number, rec[2] as string, rec[3] as Uint8Array);
          break;
        case Kind.ReplyError: {
          const req = this.#requests.get(rec[1] as number);
          if (req !== undefined) {
            this.#requests.delete(rec[1] as number);
            clearTimeout(req.timer);
            req.reject(deserializeError(rec[2] as SerializedError));
          }
          break;
        }
        case Kind.Egress:
          this.#activity++;
          this.#egressSince[shard]!.push([rec[1] as string, rec[2] as string, rec[3] as Uint8Array]);
          break;
        case Kind.Ack: {
          const wm = rec[1] as number;
          const last = this.#lastPending[shard]!;
          let pending = (rec[2] as number[] | undefined) ?? [];
          if (last.length > 0) {
            // A pending message the shard's watermark has not passed (again) is still pending: a
            // shard restarted by a recovery replays parked messages as ordinary ones.
            const carried = last.filter((h) => h >= wm && !pending.includes(h));
            if (carried.length > 0) pending = [...pending, ...carried];
          }
          if (pending.length > 0 || last.length > 0) {
            // Parked messages completed (or were parked): their sends wait for the next commit.
            this.#lastPending[shard] = pending;
            this.#activity++;
          }
          if (wm > this.#lastAck[shard]!) {
            this.#lastAck[shard] = wm;
            // Host sends wait for the checkpoint that holds this ack: it is activity, whatever
            // else happened. An invocation counts as activity when it starts; one that completes
            // after the last barrier without changing state (an async function, a remote call
            // that outlasts the checkpoint interval) acks its message after that barrier, and the
            // periodic checkpoint would otherwise find the engine quiescent and leave the send
            // waiting for unrelated traffic.
            this.#activity++;
          }
          break;
        }
        case Kind.Barrier: {
          const epoch = rec[1] as number;
          let acks = this.#ackAtBarrier.get(epoch);
          if (acks === undefined) {
            acks = new Array<number>(this.#opts.shards).fill(0);
            this.#ackAtBarrier.set(epoch, acks);
          }
          acks[shard] = this.#lastAck[shard]!;
          let pending = this.#pendingAtBarrier.get(epoch);
          if (pending === undefined) {
            pending = Array.from({ length: this.#opts.shards }, () => []);
            this.#pendingAtBarrier.set(epoch, pending);
          }
          pending[shard] = this.#lastPending[shard]!;
          const since = this.#egressSince[shard]!;
          if (since.length > 0) {
            const bucket = this.#egressByEpoch.get(epoch);
            if (bucket === undefined) this.#egressByEpoch.set(epoch, since);
            else bucket.push(...since);
            this.#egressSince[shard] = [];
          }
          const replies = this.#replySince[shard]!;
          if (replies.length > 0) {
            this.#durableRepliesByEpoch(epoch).push(...replies);
            this.#replySince[shard] = [];
          }
          break;
        }
        case Kind.Done: {
          const figures = rec[2] as { bytes: number; states: number };
          this.#coordinator.onDone(shard, rec[1] as number, figures);
          break;
        }
        case Kind.QueryResult:
          this.#onQueryResult(rec[1] as number, rec[2] as InstanceRecord | null);
          break;
        case Kind.Compute:
          this.#onCompute(shard, rec[1] as number, rec[2] as string, rec[3] as Uint8Array);
          break;
        default:
          throw new WeftError('ERR_WEFT_INTERNAL', `main: unexpected record kind ${String(rec[0])} from shard ${shard}`);
      }
    }
  }

  /** Runs a shard's compute call on the pool; the result goes back through that shard's ring. */
  #onCompute(shard: number, callId: number, task: string, payload: Uint8Array): void {
    const generation = this.#generation;
    const reply = (ok: boolean, value: unknown): void => {
      // A recovery replaced the shard meanwhile: its invocation will run (and compute) again.
      if (generation !== this.#generation || this.#closed) return;
      this.#out[shard]!.push([Kind.ComputeResult, callId, ok, value], 64 + (value instanceof Uint8Array ? value.byteLength : 256));
      this.#scheduleFlush();
    };
    const pool = this.#compute;
    if (pool === undefined) {
      reply(false, serializeError(new WeftError('ERR_WEFT_COMPUTE', 'ctx.compute: the compute pool is disabled (computeThreads: 0)')));
      return;
    }
    let input: unknown;
    try {
      input = DEFAULT_TYPE.decode(payload);
    } catch (err) {
      reply(false, serializeError(err));
      return;
    }
    pool.run(task, input).then(
      (value) => {
        let bytes: Uint8Array;
        try {
          bytes = DEFAULT_TYPE.encode(value, `ctx.compute(${JSON.stringify(task)}) result`);
        } catch (err) {
          reply(false, serializeError(err));
          return;
        }
        reply(true, bytes);
      },
      (err: unknown) => reply(false, serializeError(err)),
    );
  }

  readonly #durableReplies = new Map<number, Array<[number, string, Uint8Array]>>();

  #durableRepliesByEpoch(epoch: number): Array<[number, string, Uint8Array]> {
    let list = this.#durableReplies.get(epoch);
    if (list === undefined) {
      list = [];
      this.#durableReplies.set(epoch, list);
    }
    return list;
  }

  #decode(typename: string, payload: Uint8Array): unknown {
    const t = this.#module.typeOf(typename);
    return t === undefined ? payload : t.decode(payload);
  }

  #onReply(shard: number, requestId: number, typename: string, payload: Uint8Array): void {
    const req = this.#requests.get(requestId);
    if (req === undefined) return; // timed out, or a duplicate after a recovery
    if (req.durable) {
      // Held until the epoch holding the replying invocation commits (see #onCommitted); activity,
      // for the same reason as an ack.
      this.#replySince[shard]!.push([requestId, typename, payload]);
      this.#activity++;
      return;
    }
    this.#requests.delete(requestId);
    clearTimeout(req.timer);
    try {
      req.resolve(this.#decode(typename, payload));
    } catch (err) {
      req.reject(err);
    }
  }

  #onQueryResult(requestId: number, record: InstanceRecord | null): void {
    const q = this.#queries.get(requestId);
    if (q === undefined) return;
    this.#queries.delete(requestId);
    if (record === null) {
      q.resolve(undefined);
      return;
    }
    try {
      const fn = this.#module.functions.get(q.type);
      const out: Record<string, unknown> = {};
      for (const [name, bytes, , typename] of record.slots) {
        if (fn !== undefined) {
          const spec = fn.specByName.get(name);
          if (spec !== undefined) out[name] = spec.type.decode(bytes);
        } else {
          // A remote function's state: decoded by its typename when the module knows the type.
          out[name] = typename === null ? bytes : this.#decode(typename, bytes);
        }
      }
      q.resolve(Object.keys(out).length === 0 ? undefined : out);
    } catch (err) {
      q.reject(err);
    }
  }

  /** COMMITTED(epoch) is durable: release what the host may now observe. */
  #onCommitted(epoch: number): void {
    this.#checkpointsCommitted++;
    // The first commit after a recovery ends the quarantine made for it (see #quarantine).
    for (const [fp, q] of this.#quarantine) if (q.generation < this.#generation) this.#quarantine.delete(fp);
    const acks = this.#ackAtBarrier.get(epoch);
    for (const [e] of this.#ackAtBarrier) if (e <= epoch) this.#ackAtBarrier.delete(e);
    const pendingAt = this.#pendingAtBarrier.get(epoch);
    for (const [e] of this.#pendingAtBarrier) if (e <= epoch) this.#pendingAtBarrier.delete(e);
    for (let s = 0; s < this.#opts.shards; s++) {
      if (acks !== undefined && acks[s]! > this.#committedAck[s]!) this.#committedAck[s] = acks[s]!;
      if (pendingAt !== undefined) this.#committedPending[s] = pendingAt[s]!;
      const wm = this.#committedAck[s]!;
      const groups = this.#ackGroups[s]!;
      const pending = this.#committedPending[s]!;
      if (pending.length === 0) {
        let i = 0;
        while (i < groups.length && groups[i]!.hseq < wm && groups[i] !== this.#openAck[s]) groups[i++]!.resolve();
        if (i > 0) groups.splice(0, i);
      } else {
        // Some messages below the watermark wait out a remote pause: their groups stay, the
        // others resolve.
        let i = 0;
        let kept = 0;
        for (; i < groups.length && groups[i]!.hseq < wm && groups[i] !== this.#openAck[s]; i++) {
          const g = groups[i]!;
          if (pending.some((h) => h >= g.first && h <= g.hseq)) groups[kept++] = g;
          else g.resolve();
        }
        if (i > kept) groups.splice(kept, i - kept);
      }
      // A logged frame whose every message is tagged <= epoch is in the committed snapshot.
      const log = this.#frameLog[s]!;
      let h = 0;
      while (h < log.length && log[h]!.end <= epoch) h++;
      if (h > 0) for (const f of log.splice(0, h)) this.#logSlabs.release(s, f.frame);
    }
    const records = this.#egressCommitting;
    this.#egressCommitting = [];
    if (records.length > 0) this.#releaseEgress(epoch, records);
    for (const [e, replies] of this.#durableReplies) {
      if (e > epoch) continue;
      this.#durableReplies.delete(e);
      for (const [requestId, typename, payload] of replies) this.#releaseDurableReply(requestId, typename, payload);
    }
    const last = this.#dir.lastCheckpoint();
    if (last !== undefined) {
      this.#lastCheckpoint = { epoch: last.epoch, ms: last.ms, bytes: last.bytes, states: last.states };
      debug('checkpoint %d committed: %d states, %d bytes, %d ms', last.epoch, last.states, last.bytes, Math.round(last.ms));
      if (channels.checkpoint.hasSubscribers) channels.checkpoint.publish({ ...this.#lastCheckpoint });
    }
    for (const out of this.#out) out.push([Kind.Committed, epoch], 16);
    this.#flush();
  }

  #releaseDurableReply(requestId: number, typename: string, payload: Uint8Array): void {
    const req = this.#requests.get(requestId);
    if (req === undefined) return;
    this.#requests.delete(requestId);
    clearTimeout(req.timer);
    let value: unknown;
    try {
      value = this.#decode(typename, payload);
    } catch (err) {
      req.reject(err);
      return;
    }
    // The reply's invocation is committed; the ack of the request message resolves with it or
    // right after (same epoch), so waiting for it keeps "durable" strict.
    (req.ack ?? Promise.resolve()).then(() => req.resolve(value), req.reject);
  }

  /** The records of committed `epoch` are durable: hand them to their egresses. */
  #releaseEgress(epoch: number, records: readonly EgressRecord_[]): void {
    const byName = new Map<string, Array<[number, number, string, Uint8Array]>>();
    for (let seq = 0; seq < records.length; seq++) {
      const [name, typename, payload] = records[seq]!;
      let list = byName.get(name);
      if (list === undefined) byName.set(name, (list = []));
      list.push([epoch, seq, typename, payload]);
      if (name === DEAD_LETTER_EGRESS) this.#onDeadLetterCommitted(typename, payload);
    }
    for (const [name, list] of byName) this.#channel(name).committed(list);
  }

  /**
   * A dead letter is committed: forget its quarantined message, tell `weft:poison` and
   * `weft:dead-letter` subscribers (once, at its commit: redeliveries do not publish again).
   */
  #onDeadLetterCommitted(typename: string, payload: Uint8Array): void {
    let raw: Record<string, unknown>;
    let letter: DeadLetter;
    try {
      raw = this.#decode(typename, payload) as Record<string, unknown>;
      letter = this.#deadLetter(raw);
    } catch {
      return; // reported when an iterator decodes it
    }
    if (typeof raw.quarantined === 'string') {
      this.#quarantine.delete(raw.quarantined);
      if (channels.poison.hasSubscribers) channels.poison.publish(letter);
    }
    if (channels.deadLetter.hasSubscribers) channels.deadLetter.publish(letter);
  }

  #decodeEgress(name: string, typename: string, payload: Uint8Array): unknown {
    try {
      const value = this.#decode(typename, payload);
      return name === DEAD_LETTER_EGRESS ? this.#deadLetter(value as Record<string, unknown>) : value;
    } catch (err) {
      process.emitWarning(`weft: egress ${name} record could not be decoded: ${(err as Error).message}`);
      return payload;
    }
  }

  #deadLetter(raw: Record<string, unknown>): DeadLetter {
    const typename = raw.typename as string;
    let value: unknown = raw.payload;
    try {
      value = this.#decode(typename, raw.payload as Uint8Array);
    } catch {
      /* keep the bytes */
    }
    return {
      target: raw.target as Address,
      caller: (raw.caller as Address | null) ?? null,
      typename,
      value,
      error: deserializeError(raw.error as SerializedError),
      attempts: raw.attempts as number,
      at: raw.at as number,
    };
  }

  // ------------------------------------------------------------------------------------------
  // Failure and recovery
  // ------------------------------------------------------------------------------------------

  /**
   * A shard worker ended (or main ended it: see #watch). When it died inside a function (the
   * shard records the running message in shared memory, see ControlBlock.enter), the message
   * explains it: one whose function ran synchronously through the whole stall is quarantined at
   * once; one that ended its shard, or that was only awaiting (careful mode) when its shard
   * stalled, is quarantined the second time (see #suspects): a timer left behind by another
   * function, a GC pause or the engine's own work may be what blocked the loop. Quarantined
   * messages are dead-lettered by the recovered shards, and cost no restart budget: only
   * failures no message explains count (MAX_RECOVERIES).
   */
  #onShardFailed(generation: number, shard: number, err: Error): void {
    if (generation !== this.#generation || this.#closed) return;
    const now = Date.now();
    this.#recentFailures = this.#recentFailures.filter((f) => now - f.at < RECOVERY_WINDOW_MS);
    for (const [fp, at] of this.#suspects) if (now - at >= RECOVERY_WINDOW_MS) this.#suspects.delete(fp);
    const stalled = this.#stalled.has(shard);
    const recorded = this.#pool.control.current(shard);
    // A stall is blamed on the invocation #watch saw, if it is still the one recorded now (the
    // shard could have started another one between the decision and its termination).
    let running: Running | undefined = recorded;
    if (stalled) {
      const seen = this.#stalled.get(shard);
      running = seen !== undefined && recorded !== undefined && seen.fingerprint === recorded.fingerprint && seen.synchronous === recorded.synchronous ? seen : undefined;
    }
    const fp = running?.fingerprint;
    let poison: SerializedError | undefined;
    if (fp !== undefined && stalled && running!.synchronous) {
      poison = { name: 'WeftError', code: 'ERR_WEFT_TIMEOUT', message: `ran synchronously for more than ${this.#opts.invocationTimeoutMs} ms (invocationTimeoutMs): its shard ${shard} was terminated, and its message dead-lettered without running again` };
    } else if (fp !== undefined && this.#suspects.has(fp)) {
      this.#suspects.delete(fp);
      // Its first death was counted as unexplained: it is explained now.
      const first = this.#recentFailures.findIndex((f) => f.suspect === fp);
      if (first >= 0) {
        this.#recentFailures.splice(first, 1);
        this.#unexplained--;
      }
      poison = stalled
        ? { name: 'WeftError', code: 'ERR_WEFT_TIMEOUT', message: `was awaiting, in a careful replay, each of two times its shard's event loop was blocked for more than ${this.#opts.invocationTimeoutMs} ms (invocationTimeoutMs; its continuation, or code it left behind, is presumed to block it): its shard ${shard} was terminated, and its message dead-lettered without running again` }
        : { name: 'WeftError', code: 'ERR_WEFT_SHARD_FAILED', message: `ended its shard worker twice (exit, crash or out of memory; last: ${err.message}): its message was dead-lettered without running again` };
    }
    if (fp !== undefined && poison !== undefined) {
      this.#quarantine.set(fp, { error: poison, generation });
      this.#poisonMessages++;
      // The failure this careful generation was started for is explained by the same message.
      // (Unless it was another message's first death: that one is explained by its own.)
      const cause = generation === this.#carefulGeneration && (this.#carefulFor?.suspect === undefined || this.#carefulFor.suspect === fp) ? this.#carefulFor : undefined;
      this.#carefulFor = undefined;
      const at = cause === undefined ? -1 : this.#recentFailures.indexOf(cause);
      if (at >= 0) {
        this.#recentFailures.splice(at, 1);
        this.#unexplained--;
      }
      debug('shard %d: quarantining message %s: it %s', shard, fp, poison.message);
    } else {
      // No message explains it (yet): past MAX_RECOVERIES in RECOVERY_WINDOW_MS, the engine
      // fails for good rather than spin.
      if (this.#recentFailures.length >= MAX_RECOVERIES) {
        this.#fail(new WeftError('ERR_WEFT_SHARD_FAILED', `shard ${shard} failed ${MAX_RECOVERIES + 1} times within ${RECOVERY_WINDOW_MS} ms, for no message in particular; last error: ${err.message}`, { cause: err }));
        return;
      }
      this.#unexplained++;
      const failure = { at: now, suspect: fp };
      this.#recentFailures.push(failure);
      // The next generation runs careful, to find the message if one is to blame.
      this.#nextCareful = true;
      if (generation !== this.#carefulGeneration || this.#carefulFor === undefined) this.#carefulFor = failure;
      if (fp !== undefined) {
        if (this.#suspects.size >= MAX_SUSPECTS) this.#suspects.delete(this.#suspects.keys().next().value as string);
        this.#suspects.set(fp, now);
      }
    }
    debug('shard %d failed (%s); rolling back to checkpoint %d', shard, err.message, this.#coordinator.committedEpoch);
    if (channels.recovery.hasSubscribers) channels.recovery.publish({ shard, error: err, committedEpoch: this.#coordinator.committedEpoch });
    process.emitWarning(`weft: shard ${shard} failed (${err.message}); rolling back to checkpoint ${this.#coordinator.committedEpoch}`);
    this.#recovering ??= this.#recover().finally(() => {
      this.#recovering = undefined;
    });
  }

  #onLateCall(generation: number, shard: number, address: { type: string; id: string }, method: string): void {
    if (generation !== this.#generation) return;
    if (this.#lateContextCalls++ === 0) {
      process.emitWarning(`weft: ctx.${method}() of ${address.type}/${address.id} was called after its invocation ended (did you forget to await?); it had no effect. Later ones are counted in metrics lateContextCalls and published on diagnostics channel weft:late-context.`);
    }
    debug('shard %d: ctx.%s() of %s/%s called after its invocation ended', shard, method, address.type, address.id);
    if (channels.lateContext.hasSubscribers) channels.lateContext.publish({ shard, address, method });
  }

  #onUncaught(generation: number, shard: number, error: Error): void {
    if (generation !== this.#generation) return;
    if (this.#uncaughtErrors++ === 0) {
      process.emitWarning(`weft: shard ${shard}: code a function left behind (a timer or callback) threw outside any invocation: ${error.message}. The shard goes on; later ones are counted in metrics uncaughtErrors and published on diagnostics channel weft:uncaught-error.`);
    }
    debug('shard %d: uncaught error outside any invocation: %s', shard, error.message);
    if (channels.uncaughtError.hasSubscribers) channels.uncaughtError.publish({ shard, error });
  }

  /**
   * Main's watchdog: every shard bumps a heartbeat word while its event loop runs (at every
   * invocation and turn, from a timer, and every few thousand records of the engine's own long
   * loops: snapshot encode, fold). One that does not change means the shard is stuck. Main
   * terminates the worker (worker.terminate() stops a busy loop) and the engine recovers:
   * - after invocationTimeoutMs when a function is recorded as running (synchronously, or, in a
   *   careful generation, awaiting: see ControlBlock.current); the message is blamed as
   *   #onShardFailed decides;
   * - otherwise after ENGINE_STALL_FACTOR × invocationTimeoutMs: the loop is blocked outside any
   *   function's synchronous code (a timer or callback a function left behind, a long GC pause,
   *   an engine step that does not beat), which no message explains.
   */
  #startWatchdog(): void {
    clearInterval(this.#watchdog);
    const deadline = this.#opts.invocationTimeoutMs;
    const pool = this.#pool;
    const generation = this.#generation;
    this.#watchedAt = performance.now();
    this.#beats = Array.from({ length: this.#opts.shards }, (_, s) => pool.control.heartbeat(s));
    this.#beatSeenAt = new Array<number>(this.#opts.shards).fill(this.#watchedAt);
    this.#watchdog = setInterval(() => this.#watch(generation, deadline), Math.max(10, Math.floor(deadline / 4)));
    this.#watchdog.unref();
  }

  #watch(generation: number, deadline: number): void {
    if (generation !== this.#generation || this.#closed) return;
    const pool = this.#pool;
    const now = performance.now();
    // Main itself did not run for a while (a busy host, a suspended process): what it did not
    // see says nothing about the shards; start watching again.
    const late = now - this.#watchedAt > deadline / 2;
    this.#watchedAt = now;
    for (let s = 0; s < this.#opts.shards; s++) {
      const beat = pool.control.heartbeat(s);
      if (late || beat !== this.#beats[s] || !pool.isReady(s)) {
        this.#beats[s] = beat;
        this.#beatSeenAt[s] = now;
        continue;
      }
      const blockedMs = now - this.#beatSeenAt[s]!;
      if (blockedMs < deadline || this.#stalled.has(s)) continue;
      const running = pool.control.current(s);
      if (running === undefined && blockedMs < deadline * ENGINE_STALL_FACTOR) continue;
      const err =
        running === undefined
          ? new WeftError('ERR_WEFT_TIMEOUT', `shard ${s}'s event loop was blocked for more than ${deadline * ENGINE_STALL_FACTOR} ms (${ENGINE_STALL_FACTOR} × invocationTimeoutMs) outside any function's synchronous code; the shard was terminated`)
          : running.synchronous
            ? new WeftError('ERR_WEFT_TIMEOUT', `shard ${s} ran one function synchronously for more than ${deadline} ms (invocationTimeoutMs); the shard was terminated, and that message will be dead-lettered`)
            : new WeftError('ERR_WEFT_TIMEOUT', `shard ${s}'s event loop was blocked for more than ${deadline} ms (invocationTimeoutMs) while a function awaited in a careful replay; the shard was terminated, and that message is suspected (dead-lettered if it happens again)`);
      this.#stalled.set(s, running);
      this.#stalledShards++;
      debug('shard %d stalled: %s', s, err.message);
      pool.kill(s, err);
    }
  }

  /**
   * Rolls every shard back to the last committed checkpoint inside this process: a fresh
   * generation of workers and rings recovers from the partitions, then the host messages accepted
   * after that checkpoint's barrier are sent again, in their original order.
   */
  async #recover(): Promise<void> {
    this.#recoveries++;
    this.#rollingBack = true;
    const old = this.#pool;
    // Sends keep arriving during the rollback: they go to the old generation's outbounds, which
    // are never flushed again; what they hold is moved over once the new generation runs.
    const oldOut = this.#out;
    this.#generation++;
    this.#sleeping = false;
    clearInterval(this.#watchdog);
    // Frames cut into the old outbounds from here on are logged (and re-sent below), never
    // written: the new generation reuses the old rings.
    for (const out of oldOut) out.retire();
    await Promise.all([old.terminate(), this.#coordinator.halt()]);
    old.release();
    const committed = this.#coordinator.committedEpoch;
    // Uncommitted observations are void: they will happen again.
    for (const [e] of this.#egressByEpoch) if (e > committed) this.#egressByEpoch.delete(e);
    for (const [e] of this.#durableReplies) if (e > committed) this.#durableReplies.delete(e);
    for (const [e] of this.#ackAtBarrier) if (e > committed) this.#ackAtBarrier.delete(e);
    for (const [e] of this.#pendingAtBarrier) if (e > committed) this.#pendingAtBarrier.delete(e);
    for (let s = 0; s < this.#opts.shards; s++) {
      this.#egressSince[s] = [];
      this.#replySince[s] = [];
      this.#lastAck[s] = this.#committedAck[s]!;
      this.#lastPending[s] = this.#committedPending[s]!;
      this.#openAck[s] = null;
    }
    this.#rollingBack = true;
    try {
      // Damage since the start must be an error here, not a signal when the shards map the files.
      this.#dir.checkFiles();
      await this.#startPool();
    } catch (err) {
      this.#rollingBack = false;
      this.#fail(err);
      return;
    }
    this.#rollingBack = false;
    // Re-send what the snapshot does not hold, re-tagged with the epoch now open.
    // Every message not yet published is in the log or uncut: the new generation's count starts
    // here. Host messages tagged after the committed epoch were not in its snapshot: re-send them
    // in their original order (they are logged again, in frames of the new generation).
    this.#unpublished = 0;
    const uncut = oldOut.map((o) => o.takeBatch());
    for (let s = 0; s < this.#opts.shards; s++) {
      const logged = this.#frameLog[s]!;
      this.#frameLog[s] = [];
      let tag = logged[0]?.start ?? this.#streamEpoch[s]!;
      const resend = (rec: unknown[]): void => {
        if (rec[0] === Kind.Barrier) tag = (rec[1] as number) + 1;
        else if (rec[0] === Kind.Msg && tag > committed) {
          this.#unpublished++;
          const env = resolveNames(rec, this.#names);
          this.#out[s]!.push(env, envelopeWeight(env));
        }
      };
      this.#streamEpoch[s] = this.#coordinator.openEpoch;
      for (const f of logged) {
        tag = f.start;
        for (const rec of decodeBatch(f.frame)) resend(rec);
        this.#logSlabs.release(s, f.frame);
      }
      for (const rec of uncut[s]!) resend(rec as unknown[]);
    }
    for (const [requestId, q] of this.#queries) this.#out[q.shard]!.push([Kind.Query, requestId, q.type, q.id], 64);
    this.#flush();
    // The epoch that was in flight is abandoned; the next one starts on the new generation.
    this.#coordinator.resume();
  }

  #fail(err: unknown): void {
    if (this.#failure !== undefined) return;
    this.#failure = err instanceof Error ? err : new Error(String(err));
    const failure = new WeftError('ERR_WEFT_SHARD_FAILED', `weft engine failed: ${this.#failure.message}`, { cause: this.#failure });
    this.#coordinator.stop(failure);
    this.#rejectAll(failure);
    void this.close().catch(() => {});
  }

  /**
   * Rejects what waits. Host messages the last commit holds back because they wait for a paused
   * remote address (see HostAcks) are in the committed checkpoint: they are applied at the next
   * start, so their sends and requests get ERR_WEFT_DEFERRED (do not resend), not `err`.
   */
  #rejectAll(err: Error): void {
    const why = err instanceof WeftError && err.code === 'ERR_WEFT_CLOSED' ? 'the engine closed' : `the engine failed (${err.message})`;
    for (const [, r] of this.#requests) {
      clearTimeout(r.timer);
      if (r.hseq !== 0 && this.#committedPending.some((_, s) => this.#keptAtCommit(s, r.hseq, r.hseq))) {
        r.reject(new WeftError('ERR_WEFT_DEFERRED', `weft.request(): ${why} before its message was applied: the message waits for a paused remote address; it is committed, kept in the data dir and applied at the next start (do not resend it). Its reply is lost.`, { cause: err }));
      } else r.reject(err);
    }
    this.#requests.clear();
    for (const [, q] of this.#queries) q.reject(err);
    this.#queries.clear();
    for (let s = 0; s < this.#ackGroups.length; s++) {
      const groups = this.#ackGroups[s]!;
      for (const g of groups) {
        if (this.#keptAtCommit(s, g.first, g.hseq)) {
          g.reject(new WeftError('ERR_WEFT_DEFERRED', `weft.send(): ${why} before this message was applied: it waits for a paused remote address; it is committed, kept in the data dir and applied at the next start (do not resend it)`, { cause: err }));
        } else g.reject(err);
      }
      groups.length = 0;
    }
    for (const w of this.#ingressWaiters) w();
    this.#ingressWaiters = [];
  }

  /**
   * Shard `s`'s host messages `first`..`last` are all below its committed acknowledgement
   * watermark, and some of them wait for a paused remote address in the committed checkpoint.
   */
  #keptAtCommit(s: number, first: number, last: number): boolean {
    const pending = this.#committedPending[s]!;
    return pending.length > 0 && last < this.#committedAck[s]! && pending.some((h) => h >= first && h <= last);
  }

  // ------------------------------------------------------------------------------------------
  // Metrics and close
  // ------------------------------------------------------------------------------------------

  /** Per-shard counters, queue depths, latency histograms and checkpoint figures. */
  metrics(): WeftMetrics;
  /** The same as Prometheus text exposition. */
  metrics(format: 'prometheus'): string;
  metrics(format?: 'prometheus'): WeftMetrics | string {
    if (format !== undefined && format !== 'prometheus') {
      throw new WeftError('ERR_WEFT_INVALID_ARG', `weft.metrics format must be 'prometheus' or omitted (got ${describe(format)})`);
    }
    const shards: ShardMetrics[] = [];
    for (let s = 0; s < this.#opts.shards; s++) {
      const { metrics, histogram } = this.#pool.control.readShard(s);
      const buckets: Array<[number, number]> = histogram.map((count, b) => [b === 0 ? 1 : 2 ** b, count]);
      shards.push({ shard: s, ...metrics, latencyHistogram: buckets, latencyP50Micros: quantile(histogram, 0.5), latencyP99Micros: quantile(histogram, 0.99) });
    }
    let uncommitted = 0;
    for (let s = 0; s < this.#frameLog.length; s++) {
      for (const f of this.#frameLog[s]!) uncommitted += f.msgs;
      uncommitted += this.#out[s]!.pendingRecords;
    }
    let egressBuffered = 0;
    let egressDropped = 0;
    let egressRedelivered = 0;
    for (const ch of this.#egress.values()) {
      egressBuffered += ch.backlog;
      egressDropped += ch.dropped;
      egressRedelivered += ch.redelivered;
    }
    const m: WeftMetrics = {
      shards,
      hostMessagesSent: this.#hseq,
      hostMessagesUncommitted: uncommitted,
      requestsPending: this.#requests.size,
      egressBuffered,
      egressDropped,
      egressRedelivered,
      egressFull: this.#egressFull,
      egressOverBacklog: this.#egressOverBacklog,
      committedEpoch: this.#coordinator.committedEpoch,
      checkpointsCommitted: this.#checkpointsCommitted,
      lastCheckpoint: this.#lastCheckpoint,
      recoveries: this.#recoveries,
      unexplainedFailures: this.#unexplained,
      poisonMessages: this.#poisonMessages,
      stalledShards: this.#stalledShards,
      lateContextCalls: this.#lateContextCalls,
      uncaughtErrors: this.#uncaughtErrors,
      messagesAlive: this.#pool.control.alive(),
      ingressWaiting: this.#ingressWaiters.length,
      ingressSpilledFrames: this.#out.reduce((a, o) => a + o.spillDepth, 0),
    };
    return format === 'prometheus' ? toPrometheus(m) : m;
  }

  /**
   * Stops intake, finishes in-flight work (up to `closeTimeoutMs`), commits a final checkpoint,
   * and ends all threads. Calling it again returns the same promise. Sends still waiting for room
   * are refused (ERR_WEFT_CLOSED); committed messages waiting for a paused remote address are
   * kept for the next start (their sends reject with ERR_WEFT_DEFERRED, see #rejectAll).
   */
  close(): Promise<void> {
    this.#closePromise ??= this.#close();
    return this.#closePromise;
  }

  async #close(): Promise<void> {
    this.#closing = true;
    debug('closing');
    // Sends waiting for a full egress are refused now (never accepted), so closing never waits
    // for egressFullWaitMs; sends accepted earlier finish and are committed below.
    this.#egressBlocking.clear();
    clearTimeout(this.#egressWaitTimer);
    this.#egressWaitTimer = undefined;
    this.#scheduleFlush();
    const closedError = new WeftError('ERR_WEFT_CLOSED', 'the engine closed before this completed');
    let finished = false;
    if (this.#failure === undefined) {
      const work = this.#finishWork();
      // Whatever happens to it after a timeout, it must not surface as an unhandled rejection.
      work.catch(() => {});
      try {
        await this.#bounded(work, this.#opts.closeTimeoutMs);
        finished = true;
      } catch {
        /* timed out or failed: close anyway; what is not committed is recovered at next start */
      }
    }
    this.#coordinator.stop(closedError);
    // A graceful shard close waits for running invocations; after a timeout they are abandoned
    // (their messages are in the last committed checkpoint or were never acknowledged).
    if (finished && this.#recovering === undefined) {
      for (const out of this.#out) out.push([Kind.Close], 8);
      this.#flush();
      await this.#pool.waitClosed();
    }
    this.#closed = true;
    this.#generation++;
    clearInterval(this.#watchdog);
    // Nothing touches the rings from here on (#wake and #sleep check #closed and the
    // generation, the outbounds are retired, ingress is refused): the next engine in this
    // process may reuse them.
    for (const out of this.#out) out.retire();
    await this.#pool.terminate();
    this.#pool.release();
    await this.#compute?.close();
    this.#rejectAll(closedError);
    for (const ch of this.#egress.values()) ch.end();
    for (const w of this.#idleWaiters) w();
    this.#idleWaiters = [];
    await this.#lister?.close();
    // Acknowledgements made so far are written; later ones are ignored (delivered again at next start).
    await this.#egressStore.close();
    await this.#dir.close();
    debug('closed');
  }

  async #finishWork(): Promise<void> {
    while (this.#recovering !== undefined) await this.#recovering;
    await this.idle();
    await this.#coordinator.checkpoint();
  }

  #bounded<T>(p: Promise<T>, ms: number): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new WeftError('ERR_WEFT_TIMEOUT', `close() waited ${ms} ms for in-flight work`)), ms);
    });
    return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
  }
}

function quantile(histogram: number[], q: number): number {
  const total = histogram.reduce((a, b) => a + b, 0);
  if (total === 0) return 0;
  let acc = 0;
  for (let b = 0; b < HISTOGRAM_BUCKETS; b++) {
    acc += histogram[b]!;
    if (acc >= total * q) return b === 0 ? 1 : 2 ** b;
  }
  return 2 ** (HISTOGRAM_BUCKETS - 1);
}

/**
 * How each figure of {@link WeftMetrics} is exposed to Prometheus: its type, name and HELP text.
 * Monotonic counts are counters named `..._total` (they restart from 0 after a recovery or a
 * restart, which Prometheus's rate() treats as a counter reset); levels are gauges; durations are
 * in seconds (Prometheus's base unit). `latencySumMicros` is the latency histogram's `_sum`.
 */
const SHARD_PROMETHEUS: Readonly<Record<MetricName, readonly ['counter' | 'gauge', string, string, number?] | null>> = {
  invocations: ['counter', 'weft_shard_invocations_total', 'Invocations run (attempts included).'],
  failures: ['counter', 'weft_shard_failures_total', 'Invocation attempts that threw.'],
  retries: ['counter', 'weft_shard_retries_total', 'Invocation attempts retried after a failure.'],
  deadLetters: ['counter', 'weft_shard_dead_letters_total', 'Messages sent to weft/dead-letters.'],
  localSends: ['counter', 'weft_shard_local_sends_total', 'Messages sent by functions to an address of the same shard.'],
  remoteSends: ['counter', 'weft_shard_remote_sends_total', 'Messages sent by functions to another shard.'],
  egress: ['counter', 'weft_shard_egress_records_total', 'Egress records written by functions.'],
  replies: ['counter', 'weft_shard_replies_total', 'ctx.reply calls.'],
  timersFired: ['counter', 'weft_shard_timers_fired_total', 'Delayed messages delivered.'],
  idempotentDuplicates: ['counter', 'weft_shard_idempotent_duplicates_total', 'Host messages not applied because their idempotency key was applied within idempotencyRetentionMs.'],
  mailboxBacklog: ['gauge', 'weft_shard_mailbox_backlog', 'Messages waiting in mailboxes.'],
  parkedInvocations: ['gauge', 'weft_shard_parked_invocations', 'Async invocations awaiting.'],
  pendingTimers: ['gauge', 'weft_shard_pending_timers', 'Delayed messages not yet due.'],
  cacheInstances: ['gauge', 'weft_shard_cache_instances', 'Instances decoded in the cache.'],
  cacheHits: ['counter', 'weft_shard_cache_hits_total', 'Instance lookups served by the cache.'],
  cacheMisses: ['counter', 'weft_shard_cache_misses_total', 'Instance lookups read from the partition.'],
  cacheEvictions: ['counter', 'weft_shard_cache_evictions_total', 'Instances evicted from the cache.'],
  dirtyInstances: ['gauge', 'weft_shard_dirty_instances', 'Instances changed since the last snapshot.'],
  ringSpilledFrames: ['counter', 'weft_shard_ring_spilled_frames_total', 'Outbound frames that had to wait for room in a ring.'],
  ringSpillDepth: ['gauge', 'weft_shard_ring_spill_depth', 'Outbound frames waiting for room in a ring now.'],
  inboundRingFill: ['gauge', 'weft_shard_inbound_ring_fill', 'Fill of the fullest inbound ring.'],
  checkpoints: ['counter', 'weft_shard_checkpoints_total', 'Snapshots this shard took.'],
  lastCheckpointMs: ['gauge', 'weft_shard_last_checkpoint_seconds', 'Duration of the last snapshot.', 1e-3],
  lastCheckpointBytes: ['gauge', 'weft_shard_last_checkpoint_bytes', 'Bytes written by the last snapshot.'],
  checkpointBytesTotal: ['counter', 'weft_shard_checkpoint_bytes_total', 'Bytes written by snapshots.'],
  hostMessagesPending: ['gauge', 'weft_shard_host_messages_pending', 'Host messages received and not yet finished.'],
  turns: ['counter', 'weft_shard_turns_total', 'Turns of the shard loop.'],
  remoteRetries: ['counter', 'weft_shard_remote_retries_total', 'Remote (StateFun) call attempts retried.'],
  remotePaused: ['gauge', 'weft_shard_remote_paused', 'Addresses paused because their remote endpoint failed.'],
  latencySumMicros: null,
};

/** Engine-wide figures: [type, name, help, value]. */
function engineFigures(m: WeftMetrics): Array<readonly ['counter' | 'gauge', string, string, number]> {
  return [
    ['counter', 'weft_host_messages_sent_total', 'Messages the host sent (send and request).', m.hostMessagesSent],
    ['gauge', 'weft_host_messages_uncommitted', 'Host messages accepted and not yet committed.', m.hostMessagesUncommitted],
    ['gauge', 'weft_requests_pending', 'request() calls waiting for their reply.', m.requestsPending],
    ['gauge', 'weft_egress_buffered', 'Committed egress records not yet acknowledged by the host.', m.egressBuffered],
    ['counter', 'weft_egress_dropped_total', 'Dead letters deleted unacknowledged past egressMaxBacklog (the only egress records weft drops).', m.egressDropped],
    ['counter', 'weft_egress_redelivered_total', 'Egress records handed to an iterator again after an earlier one ended without acknowledging them.', m.egressRedelivered],
    ['gauge', 'weft_egress_full', 'Egresses at egressMaxBacklog unacknowledged records not held by an iterator (host sends wait while any is, at most egressFullWaitMs).', m.egressFull],
    ['counter', 'weft_egress_over_backlog_total', 'Times host sends waited egressFullWaitMs for a full egress and went on (that egress may then hold more than egressMaxBacklog records).', m.egressOverBacklog],
    ['gauge', 'weft_committed_epoch', 'Epoch of the last committed checkpoint.', m.committedEpoch],
    ['counter', 'weft_checkpoints_committed_total', 'Checkpoints committed since start.', m.checkpointsCommitted],
    ['counter', 'weft_recoveries_total', 'In-process recoveries since start.', m.recoveries],
    ['counter', 'weft_unexplained_failures_total', 'Recoveries no message explains (they count against the restart budget).', m.unexplainedFailures],
    ['counter', 'weft_poison_messages_total', 'Messages isolated because their invocation ended or stalled its shard.', m.poisonMessages],
    ['counter', 'weft_stalled_shards_total', 'Shards terminated because their event loop was blocked past invocationTimeoutMs.', m.stalledShards],
    ['counter', 'weft_late_context_calls_total', 'Context methods called after their invocation ended.', m.lateContextCalls],
    ['counter', 'weft_uncaught_errors_total', 'Errors thrown in shards outside any invocation.', m.uncaughtErrors],
    ['gauge', 'weft_messages_alive', 'Messages queued or in flight anywhere in the engine.', m.messagesAlive],
    ['gauge', 'weft_ingress_waiting', 'Host sends waiting for room (backpressure).', m.ingressWaiting],
    ['gauge', 'weft_ingress_spilled_frames', 'Frames main holds back because a ring to a shard is full.', m.ingressSpilledFrames],
  ];
}

/** Prometheus text exposition format 0.0.4 of one metrics snapshot. */
function toPrometheus(m: WeftMetrics): string {
  const lines: string[] = [];
  for (const name of METRICS) {
    const spec = SHARD_PROMETHEUS[name];
    if (spec === null) continue;
    const [kind, metric, help, scale = 1] = spec;
    lines.push(`# HELP ${metric} ${help}`, `# TYPE ${metric} ${kind}`);
    for (const s of m.shards) lines.push(`${metric}{shard="${s.shard}"} ${s[name] * scale}`);
  }
  // One engine-wide histogram (the shards' buckets added up; metrics() keeps them per shard).
  const hist = 'weft_invocation_latency_seconds';
  lines.push(`# HELP ${hist} Invocation latency (sampled: every invocation up to 1024 per shard, then one in 16, weighted).`, `# TYPE ${hist} histogram`);
  const bounds = m.shards[0]?.latencyHistogram.map(([le]) => le) ?? [];
  let acc = 0;
  let sum = 0;
  for (let b = 0; b < bounds.length; b++) {
    for (const s of m.shards) acc += s.latencyHistogram[b]![1];
    lines.push(`${hist}_bucket{le="${bounds[b]! / 1e6}"} ${acc}`);
  }
  for (const s of m.shards) sum += s.latencySumMicros;
  lines.push(`${hist}_bucket{le="+Inf"} ${acc}`, `${hist}_sum ${sum / 1e6}`, `${hist}_count ${acc}`);
  for (const [kind, name, help, value] of engineFigures(m)) lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${kind}`, `${name} ${value}`);
  return `${lines.join('\n')}\n`;
}
