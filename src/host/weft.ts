/**
 * The host facade: `Weft.start` / send / request / egress / query / idle / checkpoint / metrics /
 * close. It runs on the caller's (main) thread and wires the main thread's parts together:
 * - router.ts: routes host messages into the main→shard rings, ingress backpressure;
 * - shard-link.ts, resend-log.ts: what main keeps per shard (outbound queue, resend log, acks);
 * - commit-gate.ts: what the host may observe only after a commit (send acknowledgements,
 *   egress records, durable replies);
 * - inbound.ts, requests.ts, compute-bridge.ts: what the shards send main;
 * - supervisor.ts: what a shard failure means, the watchdog, user-code isolation;
 * - egresses.ts, egress.ts: the egress channels host iterators read;
 * - metrics.ts, channels.ts, decode.ts, start-guard.ts, lifecycle.ts;
 * - the checkpoint coordinator (checkpoint/coordinator.ts) and the shard pool (shard-pool.ts).
 * This file holds the public methods, the engine's start and close, the main thread's loop
 * (drain shard→main rings, flush main→shard rings) and the rollback of a recovery.
 */
import { checkIdempotencyKey } from '../core/idempotency.js';
import { checkTarget, encodeSharedPayload, valueType } from '../module/validation.js';
import { setImmediate } from 'node:timers';
import { debuglog } from 'node:util';
import { validateAddress, type Address } from '../core/address.js';
import { DataDir } from '../checkpoint/data-dir.js';
import { EgressStore, type EgressIteratorOptions, type EgressRecord } from './egress.js';
import { Egresses } from './egresses.js';
import { Coordinator } from '../checkpoint/coordinator.js';
import { repartition } from '../checkpoint/repartition.js';
import { WeftError, describe } from '../core/errors.js';
import { ComputePool } from '../compute/pool.js';
import type { ValueType } from '../module/definition.js';
import { resolveOptions, type ResolvedOptions, type WeftOptions } from '../contract/options.js';
import { METRIC_INDEX } from '../contract/control-block.js';
import { Partitioner } from '../contract/partitioner.js';
import { ShardPool, type PoolConfig } from './shard-pool.js';
import { Kind, envelopeWeight, resolveNames, wireEncoder } from '../contract/envelope.js';
import { Outbound } from '../contract/outbound.js';
import { compileModule, wireNamesOf, type RuntimeModule } from '../module/runtime.js';
import { NameTable } from '../transport/names.js';
import { LogSlabs } from '../internal/log-slabs.js';
import { remoteMatcher } from '../shard/remote-functions.js';
import type { FrameEncoder } from '../transport/framing.js';
import type { FrameAtHandler } from '../transport/ring.js';
import { BoundedDrain } from './bounded-drain.js';
import { resolveInstancesArgs, type InstanceEntry, type InstancesOptions } from '../state/listing.js';
import { Lister } from '../state/lister.js';
import { channels } from './channels.js';
import { CommitGate } from './commit-gate.js';
import { ComputeBridge } from './compute-bridge.js';
import { deadLetterOf, decodeValue, type DeadLetter } from './decode.js';
import { Inbound } from './inbound.js';
import { Lifecycle } from './lifecycle.js';
import { readShardMetrics, toPrometheus, type WeftMetrics } from './metrics.js';
import { PendingRequest, Requests } from './requests.js';
import { Router } from './router.js';
import { ShardLink, type AckGroup } from './shard-link.js';
import { loadFunctionModule, startMisuse } from './start-guard.js';
import { Supervisor } from './supervisor.js';

export type { WeftOptions } from '../contract/options.js';
export type { InstanceEntry, InstancesOptions } from '../state/listing.js';
export type { EgressRecord, EgressIteratorOptions } from './egress.js';

/** `NODE_DEBUG=weft` prints the engine's lifecycle: start, checkpoints, recoveries, close. */
const debug = debuglog('weft');

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
  readonly #life = new Lifecycle();
  readonly #links: readonly ShardLink[];
  readonly #router: Router;
  readonly #requests: Requests;
  readonly #gate: CommitGate;
  readonly #inbound: Inbound;
  readonly #compute: ComputeBridge;
  readonly #supervisor: Supervisor;
  readonly #egressStore: EgressStore;
  readonly #egresses: Egresses;
  #pool!: ShardPool;
  #sleeping = false;
  readonly #reader = new BoundedDrain();
  /** Per shard, what reads its frames (made once: no closure per drain). */
  readonly #frameHandlers: (shard: number) => FrameAtHandler;
  #activityAtLastCheckpoint = -1;
  #idleWaiters: Array<() => void> = [];
  #closing = false;
  #closePromise: Promise<void> | undefined;
  #failure: Error | undefined;
  #recovering: Promise<void> | undefined;
  /** A shard failed while #recovering: recover once more when it is done. */
  #recoverAgain = false;
  #recoveries = 0;
  #checkpointsCommitted = 0;
  /** Times main's loop woke to read the shards' rings (metrics: mainWakeups). */
  #mainWakeups = 0;
  #lastCheckpoint: WeftMetrics['lastCheckpoint'] = null;
  #lister: Lister | undefined;
  /** Weft.start finished starting the first generation of shards (see #onShardFailed). */
  #started = false;
  /** A shard of the first generation failed before every shard had started: Weft.start fails with it. */
  #startFailure: WeftError | undefined;

  private constructor(opts: ResolvedOptions, module: RuntimeModule, dir: DataDir) {
    this.#opts = opts;
    this.#module = module;
    this.#names = new NameTable(wireNamesOf(module));
    this.#wire = wireEncoder(this.#names);
    this.#dir = dir;
    const n = opts.shards;
    const slabs = new LogSlabs(n);
    this.#links = Array.from({ length: n }, (_, s) => new ShardLink(s, slabs, dir.info.committedEpoch + 1));
    this.#partitioner = new Partitioner(n, dir.info.keyGroups);
    this.#router = new Router(this.#partitioner, this.#links, opts, () => this.#resolveIdle(), () => this.#refusal('send'));
    this.#requests = new Requests(module, () => this.#coordinator.quiet());
    this.#gate = new CommitGate(this.#links, this.#requests, {
      channel: (name) => this.#egresses.channel(name),
      deadLetterCommitted: (typename, payload) => this.#onDeadLetterCommitted(typename, payload),
      wanted: () => this.#coordinator.wanted(),
    });
    const computeFile = module.definition.compute;
    this.#compute = new ComputeBridge(computeFile !== undefined && opts.computeThreads > 0 ? new ComputePool(computeFile.href, opts.computeThreads) : undefined, this.#router, this.#life);
    this.#supervisor = new Supervisor(opts.invocationTimeoutMs, this.#links, this.#life);
    this.#egressStore = new EgressStore(dir.meta, (err) => this.#fail(err));
    this.#egresses = new Egresses(module, this.#egressStore, opts.egressMaxBacklog, this.#router, this.#life);
    this.#coordinator = new Coordinator(n, dir.info.committedEpoch, opts.checkpointIntervalMs, {
      injectBarrier: (epoch) => {
        this.#activityAtLastCheckpoint = this.#currentActivity();
        this.#router.pushAll([Kind.Barrier, epoch], 16);
        this.#router.flush();
      },
      commit: (epoch, figures) => {
        // The epoch's egress records become durable in the same transaction (see egress.ts).
        const records = this.#gate.takeForCommit(epoch);
        return this.#dir.commit({ epoch, at: Date.now(), ...figures }, records.length === 0 ? undefined : (ops) => EgressStore.put(ops, records, epoch));
      },
      committed: (epoch, wake) => this.#onCommitted(epoch, wake),
      // Changed instances no snapshot took yet are activity too: an async invocation counts when
      // it starts but changes its state when it completes, possibly after the last barrier (and
      // host sends may be waiting for exactly that checkpoint, see Router.dirtyOver).
      quiescent: () => this.#currentActivity() === this.#activityAtLastCheckpoint && this.#pool.control.alive() === 0 && !this.#router.dirtyOver(0),
      idleTick: () => this.#router.nudge(),
      mayHold: () => this.#requests.atMostOneUndurable() && this.#router.waiting === 0 && !this.#gate.hostWaits(),
      idle: () => this.#requests.size === 0,
      failed: (err) => this.#fail(err),
    });
    this.#inbound = new Inbound(this.#links, this.#gate, this.#requests, this.#coordinator, this.#compute, this.#names);
    const inbound = this.#inbound;
    const handlers: FrameAtHandler[] = this.#links.map((link) => (bytes, start, end) => inbound.onFrame(link.shard, bytes, start, end));
    this.#frameHandlers = (shard) => handlers[shard]!;
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
        await weft.#compute.close();
        throw err;
      }
      weft.#started = true;
      weft.#coordinator.start();
      debug('started: %d shards, data dir %s, committed epoch %d', opts.shards, opts.dataDir, dir.info.committedEpoch);
      return weft;
    } catch (err) {
      await dir.close().catch(() => {});
      throw err;
    }
  }

  async #startPool(): Promise<void> {
    const generation = ++this.#life.generation;
    const pool = new ShardPool(poolConfig(this.#opts, this.#dir, this.#names, this.#compute.enabled), {
      onShardFailed: (shard, err) => this.#onShardFailed(generation, shard, err),
      onLateCall: (shard, address, method) => this.#supervisor.lateCall(generation, shard, address, method),
      onUncaught: (shard, error) => this.#supervisor.uncaught(generation, shard, error),
    });
    this.#pool = pool;
    // Waiters for idleness left from the generation before (a recovery) want this one's rings too.
    if (this.#idleWaiters.length > 0) pool.control.watchIdle(true);
    // One wake-up callback per generation, not a closure per sleep (main sleeps after nearly
    // every reply under a light load).
    this.#wakeThis = () => this.#wake(generation);
    this.#router.connect(pool.control);
    const { quarantined, careful } = this.#supervisor.generationStarting(generation);
    try {
      await pool.start(this.#coordinator.committedEpoch, generation > 1, quarantined, careful);
    } catch (err) {
      throw this.#startFailure ?? err;
    }
    if (this.#startFailure !== undefined) {
      // Every shard reported ready, but one had failed meanwhile (#onShardFailed ended the others).
      await pool.terminate();
      pool.release();
      throw this.#startFailure;
    }
    this.#supervisor.generationStarted(generation, pool);
    // Only now: while the workers start, sends still go to the previous generation's outbounds,
    // so a recovery re-sends them after the older messages it re-sends (order is kept).
    for (const link of this.#links) {
      const out = new Outbound(pool.toShard[link.shard]!, 1 + link.shard, pool.bells, this.#wire);
      const log = link.log;
      out.onCut = (frame, records, count) => log.keep(frame, records, count);
      link.out = out;
    }
    this.#sleep();
  }

  /** Changes whenever anything happened that a checkpoint could capture. */
  #currentActivity(): number {
    let n = this.#router.activity + this.#gate.activity;
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
      const a = checkTarget(this.#module, to, 'weft.send');
      const t = valueType(this.#module, opts?.type, 'weft.send');
      const typename = t.typename;
      const payload = encodeSharedPayload(t, value, 'weft.send value', this.#opts.maxMessageBytes);
      const key = opts === undefined ? undefined : checkIdempotencyKey(opts.idempotencyKey, 'weft.send');
      // The send waits for a commit: a checkpoint held for a request's reply starts now.
      this.#coordinator.wanted();
      // Waiting for room: no closure or promise per send (see wait-queue.ts); refused at release
      // if the engine closed or failed meanwhile (#refusal).
      if (this.#router.throttled()) return this.#router.wait(a.type, a.id, typename, payload, key);
      return this.#router.accept(a, typename, payload, 0, key).promise;
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Accepts a message that waited for room (backpressure), unless the engine closed or failed meanwhile. */
  #acceptChecked(a: Address, typename: string, payload: Uint8Array, requestId: number, idempotencyKey: string | undefined, what: string): AckGroup {
    const refused = this.#refusal(what);
    if (refused !== undefined) throw refused;
    return this.#router.accept(a, typename, payload, requestId, idempotencyKey);
  }

  /** Why a message that waited for room is not accepted now (close() was called, or the engine failed), or undefined. */
  #refusal(what: string): WeftError | undefined {
    if (this.#closing && this.#failure === undefined) {
      return new WeftError('ERR_WEFT_CLOSED', `weft.${what}() waited for room (backpressure) and close() was called meanwhile: the message was not accepted`);
    }
    try {
      this.#checkOpen(what);
    } catch (err) {
      return err as WeftError;
    }
    return undefined;
  }

  /**
   * Sends `value` and resolves with the value the target passes to `ctx.reply`. Rejects with
   * ERR_WEFT_TIMEOUT after `timeoutMs`. With `durable: true`, resolves only once the replying
   * invocation is committed.
   */
  request(to: Address, value: unknown, opts?: RequestOptions): Promise<unknown> {
    try {
      this.#checkOpen('request');
      const a = checkTarget(this.#module, to, 'weft.request');
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
      const pending = new PendingRequest(this.#requests.nextId(), durable, a, typename, payload, key, timeoutMs);
      const promise = this.#requests.add(pending);
      const throttled = this.#router.throttled();
      // A durable request waits for a commit, and so does a request waiting for room when a
      // snapshot must take dirty instances: a checkpoint held for a reply starts now.
      if (durable || throttled) this.#coordinator.wanted();
      if (throttled) this.#router.waitThen(this.#sendWaited, pending);
      else this.#sendRequest(pending);
      return promise;
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** #sendRequest for a request that waited for room (one function, no closure per waiting request). */
  readonly #sendWaited = (pending: PendingRequest): void => this.#sendRequest(pending);

  /** Accepts a request's message (or refuses it, rejecting the request, when the engine closed or failed meanwhile). */
  #sendRequest(pending: PendingRequest): void {
    // It timed out (or was rejected) while it waited for room: its caller has its answer, the
    // message must not reach the target.
    if (!this.#requests.isWaiting(pending)) return;
    try {
      const { to, typename, payload, requestId, idempotencyKey } = pending;
      if (pending.durable) {
        const group = this.#acceptChecked(to, typename, payload, requestId, idempotencyKey, 'request');
        pending.hseq = group.hseq;
        pending.ack = group.promise;
      } else {
        const refused = this.#refusal('request');
        if (refused !== undefined) throw refused;
        pending.hseq = this.#router.acceptRequest(to, typename, payload, requestId, idempotencyKey);
      }
    } catch (err) {
      this.#requests.refuse(pending, err);
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
    return this.#egresses.iterator(name, options);
  }

  /** The instance's current state as a plain object of its declared specs, or undefined. */
  query(address: Address): Promise<Record<string, unknown> | undefined> {
    try {
      this.#checkOpen('query');
      validateAddress(address, 'weft.query address');
      if (!this.#module.isKnownFunction(address.type)) {
        throw new WeftError('ERR_WEFT_UNKNOWN_FUNCTION', `weft.query: no function of type ${describe(address.type)} is defined`);
      }
      const result = this.#requests.query(this.#links[this.#router.shardOf(address.type, address.id)]!, address.type, address.id);
      this.#router.scheduleFlush();
      return result;
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

  /** Resolves when no message is queued or in flight (pending delayed messages excepted). */
  idle(): Promise<void> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    // Ask the shards to ring when the count reaches 0 BEFORE reading it (ControlBlock.watchIdle).
    this.#pool.control.watchIdle(true);
    if (this.#isIdle()) {
      if (this.#idleWaiters.length === 0) this.#pool.control.watchIdle(false);
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => this.#idleWaiters.push(resolve));
  }

  #isIdle(): boolean {
    return this.#recovering === undefined && this.#router.unpublished === 0 && this.#router.waiting === 0 && this.#pool.control.alive() === 0;
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
  // The main thread's loop: drain shard→main rings, flush main→shard rings (Router.flush)
  // ------------------------------------------------------------------------------------------

  #sleep(): void {
    if (this.#life.closed || this.#sleeping) return;
    const bells = this.#pool.bells;
    const wake = this.#wakeThis;
    bells.prepareSleep(0);
    // Re-check after the announcement: data from a shard, or room in a main→shard ring that holds
    // frames back (else Outbound.roomOrRequest raises its room request again).
    // And idleness a waiter has not heard of: a shard's ring for the live count's 0 that came
    // while main was awake was lost (a ring only wakes a bell that sleeps), and the frames it came
    // with, if any, have been read.
    if (this.#pool.fromShard.some((ring) => ring.hasData()) || this.#links.some((link) => link.out.roomOrRequest()) || (this.#idleWaiters.length > 0 && this.#isIdle())) {
      bells.cancelSleep(0);
      setImmediate(wake);
      this.#sleeping = true;
      return;
    }
    this.#sleeping = true;
    bells.sleepThen(0, Number.POSITIVE_INFINITY, wake);
  }

  /** `#wake` of the current generation (set by #startPool). */
  #wakeThis: () => void = () => {};

  #wake(generation: number): void {
    if (generation !== this.#life.generation) return;
    this.#sleeping = false;
    if (this.#life.closed) return;
    this.#mainWakeups++;
    let more: boolean;
    try {
      more = this.#drain();
    } catch (err) {
      this.#fail(err);
      return;
    }
    if (more) {
      // The budget is spent: the host's event loop runs (timers, I/O, its own work) before main
      // reads on.
      this.#sleeping = true;
      setImmediate(this.#wakeThis);
    } else this.#sleep();
  }

  /** Reads the shard→main rings for one slice (see bounded-drain.ts), then flushes. Returns true when a ring still holds frames. */
  #drain(): boolean {
    const pool = this.#pool;
    const more = this.#reader.slice(pool.fromShard, this.#frameHandlers, (s) => pool.bells.ring(1 + s));
    this.#router.flush();
    this.#resolveIdle();
    return more;
  }

  #resolveIdle(): void {
    if (this.#idleWaiters.length > 0 && this.#isIdle()) {
      const waiters = this.#idleWaiters;
      this.#idleWaiters = [];
      this.#pool.control.watchIdle(false);
      for (const w of waiters) w();
    }
  }

  /**
   * COMMITTED(epoch) is durable: release what the host may now observe, and tell the shards;
   * without waking them unless `wake` (see the protocol in coordinator.ts).
   */
  #onCommitted(epoch: number, wake: boolean): void {
    this.#checkpointsCommitted++;
    this.#supervisor.committed(this.#life.generation);
    this.#gate.committed(epoch);
    const last = this.#dir.lastCheckpoint();
    if (last !== undefined) {
      this.#lastCheckpoint = { epoch: last.epoch, ms: last.ms, bytes: last.bytes, states: last.states };
      debug('checkpoint %d committed: %d states, %d bytes, %d ms', last.epoch, last.states, last.bytes, Math.round(last.ms));
      if (channels.checkpoint.hasSubscribers) channels.checkpoint.publish({ ...this.#lastCheckpoint });
    }
    this.#router.pushAll([Kind.Committed, epoch], 16, !wake);
    this.#router.flush();
  }

  /**
   * A dead letter is committed: forget its quarantined message, tell `weft:poison` and
   * `weft:dead-letter` subscribers (once, at its commit: redeliveries do not publish again).
   */
  #onDeadLetterCommitted(typename: string, payload: Uint8Array): void {
    let raw: Record<string, unknown>;
    let letter: DeadLetter;
    try {
      raw = decodeValue(this.#module, typename, payload) as Record<string, unknown>;
      letter = deadLetterOf(this.#module, raw);
    } catch {
      return; // reported when an iterator decodes it
    }
    if (typeof raw.quarantined === 'string') {
      this.#supervisor.released(raw.quarantined);
      if (channels.poison.hasSubscribers) channels.poison.publish(letter);
    }
    if (channels.deadLetter.hasSubscribers) channels.deadLetter.publish(letter);
  }

  // ------------------------------------------------------------------------------------------
  // Failure and recovery
  // ------------------------------------------------------------------------------------------

  /** A shard worker ended, or main ended it (see Supervisor): recover, unless the restart budget is spent. */
  #onShardFailed(generation: number, shard: number, err: Error): void {
    if (!this.#life.isCurrent(generation)) return;
    if (!this.#started) {
      // The first generation is still starting: no outbound exists yet and there is nothing to
      // recover for; Weft.start fails (ending the other workers makes ShardPool.start settle).
      this.#startFailure ??= new WeftError('ERR_WEFT_SHARD_FAILED', `shard ${shard} failed while the engine was starting: ${err.message}`, { cause: err });
      void this.#pool.terminate();
      return;
    }
    const fatal = this.#supervisor.judge(generation, shard, err, this.#pool);
    if (fatal !== undefined) {
      this.#fail(fatal);
      return;
    }
    debug('shard %d failed (%s); rolling back to checkpoint %d', shard, err.message, this.#coordinator.committedEpoch);
    if (channels.recovery.hasSubscribers) channels.recovery.publish({ shard, error: err, committedEpoch: this.#coordinator.committedEpoch });
    process.emitWarning(`weft: shard ${shard} failed (${err.message}); rolling back to checkpoint ${this.#coordinator.committedEpoch}`);
    if (this.#recovering !== undefined) {
      // A shard of the generation this recovery is starting failed: the recovery completes with
      // it dead, so another one follows (see #recoverAll).
      this.#recoverAgain = true;
      return;
    }
    this.#recovering = this.#recoverAll().finally(() => {
      this.#recovering = undefined;
      // A recovery that replayed nothing brings no shard's ring for the live count: waiters for
      // idleness hear of it here.
      this.#resolveIdle();
    });
  }

  /** Recovers, and again while a shard of the generation just started failed meanwhile. */
  async #recoverAll(): Promise<void> {
    do {
      this.#recoverAgain = false;
      await this.#recover();
    } while (this.#recoverAgain && this.#failure === undefined && !this.#closing);
  }

  /**
   * Rolls every shard back to the last committed checkpoint inside this process: a fresh
   * generation of workers and rings recovers from the partitions, then the host messages accepted
   * after that checkpoint's barrier are sent again, in their original order.
   */
  async #recover(): Promise<void> {
    this.#recoveries++;
    // Between the old generation's end and the re-send: nothing may be published.
    this.#router.paused = true;
    const old = this.#pool;
    // Sends keep arriving during the rollback: they go to the old generation's outbounds, which
    // are never flushed again; what they hold is moved over once the new generation runs.
    const oldOut = this.#links.map((link) => link.out);
    this.#life.generation++;
    this.#sleeping = false;
    this.#supervisor.stopWatchdog();
    // Frames cut into the old outbounds from here on are logged (and re-sent below), never
    // written: the new generation reuses the old rings.
    for (const out of oldOut) out.retire();
    await Promise.all([old.terminate(), this.#coordinator.halt()]);
    old.release();
    const committed = this.#coordinator.committedEpoch;
    // Uncommitted observations are void: they will happen again.
    this.#gate.rollBack(committed);
    try {
      // Damage since the start must be an error here, not a signal when the shards map the files.
      this.#dir.checkFiles();
      await this.#startPool();
    } catch (err) {
      this.#router.paused = false;
      this.#fail(err);
      return;
    }
    this.#router.paused = false;
    // Every message not yet published is in the log or uncut: the new generation's count starts
    // here. Host messages tagged after the committed epoch were not in its snapshot: re-send them
    // in their original order, re-tagged with the epoch now open (they are logged again, in
    // frames of the new generation).
    this.#router.unpublished = 0;
    for (const link of this.#links) {
      const out = link.out;
      link.log.drain(committed, this.#coordinator.openEpoch, oldOut[link.shard]!.takeBatch(), (rec) => {
        this.#router.unpublished++;
        const env = resolveNames(rec, this.#names);
        out.push(env, envelopeWeight(env));
      });
    }
    this.#requests.resendQueries(this.#links);
    this.#router.flush();
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
    this.#requests.rejectAll(err, why, (hseq) => this.#gate.keptAtCommit(hseq));
    this.#gate.rejectSends(
      err,
      () => new WeftError('ERR_WEFT_DEFERRED', `weft.send(): ${why} before this message was applied: it waits for a paused remote address; it is committed, kept in the data dir and applied at the next start (do not resend it)`, { cause: err }),
    );
    this.#router.releaseAll();
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
    const holds = this.#coordinator.holds;
    const m: WeftMetrics = {
      shards: readShardMetrics(this.#pool.control, this.#opts.shards),
      hostMessagesSent: this.#router.hseq,
      hostMessagesUncommitted: this.#gate.uncommitted(),
      requestsPending: this.#requests.size,
      ...this.#egresses.figures(),
      egressFull: this.#router.egressFull,
      egressOverBacklog: this.#router.egressOverBacklog,
      committedEpoch: this.#coordinator.committedEpoch,
      checkpointsCommitted: this.#checkpointsCommitted,
      checkpointsHeld: holds.held,
      checkpointsHeldToLimit: holds.heldToLimit,
      lastCheckpoint: this.#lastCheckpoint,
      recoveries: this.#recoveries,
      ...this.#supervisor.figures,
      messagesAlive: this.#pool.control.alive(),
      ingressWaiting: this.#router.waiting,
      ingressSpilledFrames: this.#router.spillDepth(),
      mainWakeups: this.#mainWakeups,
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
    this.#router.close();
    const closedError = new WeftError('ERR_WEFT_CLOSED', 'the engine closed before this completed');
    let finished = false;
    if (this.#failure === undefined) {
      const work = this.#finishWork();
      // Whatever happens to it after a timeout, it must not surface as an unhandled rejection.
      work.catch(() => {});
      try {
        await bounded(work, this.#opts.closeTimeoutMs);
        finished = true;
      } catch {
        /* timed out or failed: close anyway; what is not committed is recovered at next start */
      }
    }
    this.#coordinator.stop(closedError);
    // A graceful shard close waits for running invocations; after a timeout they are abandoned
    // (their messages are in the last committed checkpoint or were never acknowledged).
    if (finished && this.#recovering === undefined) {
      this.#router.pushAll([Kind.Close], 8);
      this.#router.flush();
      await this.#pool.waitClosed();
    }
    this.#life.closed = true;
    this.#life.generation++;
    this.#supervisor.stopWatchdog();
    // Nothing touches the rings from here on (#wake and #sleep check the lifecycle, the
    // outbounds are retired, ingress is refused): the next engine in this process may reuse them.
    for (const link of this.#links) link.out.retire();
    await this.#pool.terminate();
    this.#pool.release();
    await this.#compute.close();
    this.#rejectAll(closedError);
    this.#egresses.end();
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
}

/** What a generation of shard workers is started with. */
function poolConfig(opts: ResolvedOptions, dir: DataDir, names: NameTable, compute: boolean): PoolConfig {
  return {
    options: opts,
    keyGroups: dir.info.keyGroups,
    wireNames: names.names,
    compute,
    partitionPath: (s) => dir.partitionPath(s),
  };
}

/** `p`, or ERR_WEFT_TIMEOUT from close() after `ms`. */
function bounded<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new WeftError('ERR_WEFT_TIMEOUT', `close() waited ${ms} ms for in-flight work`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
