/**
 * The router's host side: routes each host message to its shard's outbound queue (one envelope,
 * one acknowledgement group per shard and flush), flushes the queues into the main→shard rings,
 * and holds host sends back while the engine is behind (ingress backpressure):
 * - frames main could not write because a ring is full (more than INGRESS_HIGH_WATER_FRAMES);
 * - a shard holding more dirty instances than its cache (see {@link Router.dirtyOver});
 * - a full egress (at `egressMaxBacklog` records nobody reads), for at most `egressFullWaitMs`.
 * Sends that wait are released a slice at a time once there is room again. They wait in a
 * {@link WaitQueue}: no closure or promise per waiting send (a batch of them shares one promise).
 *
 * A frame is published as soon as it is cut (not only at the flush after the host's current
 * task): a host loop that never yields would otherwise leave the shards idle until it ends. While
 * sends wait, every {@link PUMP_EVERY} waiting sends move spilled frames into the rings and release
 * waiting sends when there is room, for the same reason.
 *
 * `accept` is main's hottest path (every host message): no closure, allocation or call beyond
 * the envelope and the outbound push per message.
 */
import { setImmediate } from 'node:timers';
import type { Address } from '../core/address.js';
import { WeftError, type WeftErrorCode } from '../core/errors.js';
import { quietDeferred } from '../internal/deferred.js';
import { guarded, microtask } from '../internal/microtask.js';
import { METRIC_INDEX, type ControlBlock } from '../contract/control-block.js';
import { envelope, envelopeWeight } from '../contract/envelope.js';
import type { ResolvedOptions } from '../contract/options.js';
import type { Partitioner } from '../contract/partitioner.js';
import type { EgressChannel } from './egress.js';
import type { AckGroup, ShardLink } from './shard-link.js';
import { SLOTS, WAIT_BATCH, WaitQueue, type WaitingBatch } from './wait-queue.js';

/** Frames main may hold back for full main→shard rings before sends wait (about 2 MiB). */
const INGRESS_HIGH_WATER_FRAMES = 32;
/** Sends between two reads of the shards' dirty counts (a power of two). */
const DIRTY_CHECK_SENDS = 64;
/** Waiting sends let through per flush once the rings have room again. */
const INGRESS_RELEASE_BATCH = 2048;
/** Waiting sends between two pumps (spilled frames into the rings, waiting sends released) in a host loop that does not yield (a power of two). */
const PUMP_EVERY = 256;

export type RouterSettings = Pick<ResolvedOptions, 'cacheSize' | 'checkpointIntervalMs' | 'egressFullWaitMs' | 'egressMaxBacklog'>;

export class Router {
  readonly #partitioner: Partitioner;
  readonly #links: readonly ShardLink[];
  readonly #settings: RouterSettings;
  /** Called (in a microtask) when the last waiting sends were released: idle() may be due, as they may have published nothing. */
  readonly #allReleased: () => void;
  /** The control block of the running generation (see {@link connect}). */
  #control!: ControlBlock;
  /** Host messages accepted (the last hseq given). */
  hseq = 0;
  /** Host messages accepted and not yet counted alive in the control block (see #beforePublish). */
  unpublished = 0;
  /** Changes with every accepted message (the checkpoint coordinator's quiescence test). */
  activity = 0;
  /** While a recovery rolls back, nothing is written to the rings. */
  paused = false;
  #flushScheduled = false;
  #closing = false;
  readonly #waiting = new WaitQueue();
  /** Waiting sends accepted since the last pump. */
  #sincePump = 0;
  /** The shard of the message {@link #accept} took last. */
  #lastShard = 0;
  /** Per shard, the acknowledgement group the batch being released joined (see #releaseBatch). */
  readonly #batchGroups: Array<AckGroup | null>;
  /** Why waiting sends are refused now (the engine closed or failed), or undefined. */
  readonly #refusal: () => Error | undefined;
  /** Some shard held more dirty instances than its cache at the last check (see {@link dirtyOver}). */
  #dirtyHigh = false;
  #sendsSinceDirtyCheck = 0;
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

  /**
   * @param refusal when waiting sends are released: the error they are refused with (the engine
   * closed or failed meanwhile), or undefined to accept them.
   */
  constructor(partitioner: Partitioner, links: readonly ShardLink[], settings: RouterSettings, allReleased: () => void, refusal: () => Error | undefined = () => undefined) {
    this.#partitioner = partitioner;
    this.#links = links;
    this.#settings = settings;
    this.#allReleased = guarded(allReleased);
    this.#refusal = refusal;
    this.#batchGroups = links.map(() => null);
  }

  /** A generation of shards starts: its control block counts live messages and dirty instances. */
  connect(control: ControlBlock): void {
    this.#control = control;
  }

  /** The shard of address `type`/`id`. */
  shardOf(type: string, id: string): number {
    return this.#partitioner.shardOf(this.#partitioner.keyGroup(type, id));
  }

  /** Accepts a host message: routes it; its frame is logged for re-sending until its epoch commits. */
  accept(a: Address, typename: string, payload: Uint8Array, requestId: number, idempotencyKey: string | undefined): AckGroup {
    return this.#accept(a.type, a.id, typename, payload, requestId, idempotencyKey);
  }

  /**
   * Accepts a request message whose caller does not wait for its acknowledgement (a request that
   * is not durable resolves with its reply): it joins no acknowledgement group, so a request
   * costs main no group, promise or closure that lives until the next commit. Returns its hseq.
   */
  acceptRequest(a: Address, typename: string, payload: Uint8Array, requestId: number, idempotencyKey: string | undefined): number {
    this.#route(a.type, a.id, typename, payload, requestId, idempotencyKey);
    this.scheduleFlush();
    return this.hseq;
  }

  /** Routes a host message to its shard's outbound (it takes the next hseq); returns its link. */
  #route(type: string, id: string, typename: string, payload: Uint8Array, requestId: number, idempotencyKey: string | undefined): ShardLink {
    const shard = this.#partitioner.shardOf(this.#partitioner.keyGroup(type, id));
    this.#lastShard = shard;
    const link = this.#links[shard]!;
    const env = envelope(type, id, null, null, typename, payload, requestId, ++this.hseq, idempotencyKey);
    this.unpublished++;
    this.activity++;
    // A frame completed: publish it now (see the file comment), unless a recovery holds writes.
    if (link.out.push(env, envelopeWeight(env)) && !this.paused) link.out.pump(this.#beforePublish);
    return link;
  }

  #accept(type: string, id: string, typename: string, payload: Uint8Array, requestId: number, idempotencyKey: string | undefined): AckGroup {
    const link = this.#route(type, id, typename, payload, requestId, idempotencyKey);
    const hseq = this.hseq;
    let group = link.openAck;
    if (group === null) {
      // Fire-and-forget sends are normal: a group nobody awaits must not become an unhandled
      // rejection (and crash the host) when the engine closes or fails. Awaiting callers still
      // get the rejection.
      group = { first: hseq, hseq, ...quietDeferred() };
      link.openAck = group;
      link.ackGroups.push(group);
    } else group.hseq = hseq;
    this.scheduleFlush();
    return group;
  }

  /** Queues an engine record (barrier, commit, close) to every shard. */
  pushAll(record: unknown, weight: number, quiet = false): void {
    for (const link of this.#links) link.out.push(record, weight, quiet);
  }

  /** Rings every shard that has not read all that was published to it (Outbound.nudge). */
  nudge(): void {
    for (const link of this.#links) link.out.nudge();
  }

  /** A host send must wait for room first ({@link wait}, {@link waitThen}). */
  throttled(): boolean {
    if (this.#waiting.size > 0 || this.#egressBlocking.size > 0) return true;
    if (this.spillDepth() > INGRESS_HIGH_WATER_FRAMES) return true;
    // The shards' dirty counts are read at every flush and every DIRTY_CHECK_SENDS sends (reading
    // shared memory on every send cost ~3% of main's time).
    if ((++this.#sendsSinceDirtyCheck & (DIRTY_CHECK_SENDS - 1)) === 0) this.#dirtyHigh = this.dirtyOver(this.#settings.cacheSize);
    return this.#dirtyHigh;
  }

  /** Encoded frames main holds back because main→shard rings are full. */
  spillDepth(): number {
    let depth = 0;
    for (const link of this.#links) depth += link.out.spillDepth;
    return depth;
  }

  /** Host sends waiting for room. */
  get waiting(): number {
    return this.#waiting.size;
  }

  /**
   * Some shard holds more dirty instances (changed since its last snapshot) than `limit`.
   * Dirty instances cannot be evicted until a snapshot takes them, so when the working set
   * changes faster than checkpoints complete (many distinct instances, a slow disk), the cache
   * would grow without bound: host sends wait instead, until the next snapshot. Without periodic
   * checkpoints (checkpointIntervalMs 0) nothing would take them, so nothing waits for it.
   */
  dirtyOver(limit: number): boolean {
    if (this.#settings.checkpointIntervalMs === 0) return false;
    const control = this.#control;
    const f = control.f64;
    for (let s = 0; s < this.#links.length; s++) {
      if ((f[control.metricsBase(s) + METRIC_INDEX.dirtyInstances] ?? 0) > limit) return true;
    }
    return false;
  }

  /** Resolves when a throttled send may go on (released by a flush, an egress wait, or {@link releaseAll}). */
  waitForRoom(): Promise<void> {
    return new Promise<void>((resolve) => this.waitThen(resolve, undefined));
  }

  /** Calls `go(arg)` when a throttled request may go on (in order with the waiting sends). */
  waitThen<A>(go: (arg: A) => void, arg: A): void {
    this.#waiting.addCall(go, arg);
    this.#waited();
  }

  /**
   * A throttled send waits: accepted in order when there is room (its promise then follows its
   * acknowledgement), or refused if the engine closed or failed meanwhile. The sends of a batch
   * share the promise returned (see wait-queue.ts): it resolves once all of them are committed.
   */
  wait(type: string, id: string, typename: string, payload: Uint8Array, idempotencyKey: string | undefined): Promise<void> {
    const promise = this.#waiting.addSend(type, id, typename, payload, idempotencyKey);
    this.#waited();
    return promise;
  }

  #waited(): void {
    if (this.#egressBlocking.size > 0) this.#armEgressWait();
    // A host loop that does not yield: nothing else moves frames or waiting sends until it does.
    if ((++this.#sincePump & (PUMP_EVERY - 1)) === 0) this.#pump();
  }

  /** Moves spilled frames into the rings, then releases a batch of waiting sends if there is room. */
  #pump(): void {
    if (this.paused) return;
    for (const link of this.#links) link.out.pump(this.#beforePublish);
    if (!this.#throttledByRings()) this.#release(1);
  }

  /** An egress reached its backlog bound (`full`), or got room again: host sends wait for it meanwhile. */
  egressFullChanged(full: boolean, channel: EgressChannel): void {
    this.#egressFull += full ? 1 : -1;
    if (full) {
      // egressFullWaitMs 0: sends never wait for egresses. After close(), nothing waits.
      if (this.#settings.egressFullWaitMs === 0 || this.#closing) return;
      this.#egressBlocking.add(channel);
      if (this.#waiting.size > 0) this.#armEgressWait();
    } else if (this.#egressBlocking.delete(channel)) this.scheduleFlush();
  }

  /** Egresses at their backlog bound; times sends went on after waiting `egressFullWaitMs` for one. */
  get egressFull(): number {
    return this.#egressFull;
  }

  get egressOverBacklog(): number {
    return this.#egressOverBacklog;
  }

  /** Host sends wait for a full egress: they go on after `egressFullWaitMs` at most. */
  #armEgressWait(): void {
    if (this.#egressWaitTimer !== undefined) return;
    this.#egressWaitTimer = setTimeout(this.#egressWaitExpired, this.#settings.egressFullWaitMs);
    this.#egressWaitTimer.unref();
  }

  readonly #egressWaitExpired = (): void => {
    this.#egressWaitTimer = undefined;
    if (this.#closing || this.#waiting.size === 0 || this.#egressBlocking.size === 0) return;
    for (const ch of this.#egressBlocking) {
      this.#egressOverBacklog++;
      if (!this.#egressOverWarned) {
        this.#egressOverWarned = true;
        process.emitWarning(
          `weft: host sends waited ${this.#settings.egressFullWaitMs} ms (egressFullWaitMs) for egress ${JSON.stringify(ch.name)}, which holds ${this.#settings.egressMaxBacklog} unacknowledged records (egressMaxBacklog); ` +
            'they go on, and the egress may hold more until its consumer catches up (metrics egressOverBacklog; nothing is dropped). ' +
            'Read it with weft.egress(name), or raise egressMaxBacklog / egressFullWaitMs.',
        );
      }
    }
    this.#egressBlocking.clear();
    this.scheduleFlush();
  };

  scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    microtask(this.#flushTask);
  }

  readonly #flushTask = guarded((): void => {
    this.#flushScheduled = false;
    this.flush();
  });

  #releaseScheduled = false;

  #scheduleRelease(): void {
    if (this.#releaseScheduled) return;
    this.#releaseScheduled = true;
    setImmediate(this.#releaseTask);
  }

  readonly #releaseTask = (): void => {
    this.#releaseScheduled = false;
    this.flush();
  };

  readonly #beforePublish = (): void => {
    if (this.unpublished !== 0) {
      this.#control.addAlive(this.unpublished);
      this.unpublished = 0;
    }
  };

  /** Writes the queued records to the rings (what does not fit spills), then releases waiting sends if there is room. */
  flush(): void {
    if (this.paused) return;
    // Shards publish their dirty counts once per turn: reading them once per flush is enough.
    this.#dirtyHigh = this.dirtyOver(this.#settings.cacheSize);
    for (const link of this.#links) {
      link.out.flush(this.#beforePublish);
      link.openAck = null;
    }
    // A slice already waits for its macrotask (#releaseTask): the flushes in between (each
    // released send schedules one, as a microtask) must not release more, or one macrotask would
    // release the whole backlog.
    if (this.#waiting.size > 0 && !this.#releaseScheduled && !this.#throttledByRings()) {
      // Release waiting sends a slice at a time: all at once would refill what just drained.
      this.#release(INGRESS_RELEASE_BATCH / WAIT_BATCH);
      // The next slice in a later macrotask: the host's event loop runs in between.
      if (this.#waiting.size > 0) this.#scheduleRelease();
      // The last waiters went. They may have published nothing (sends refused at close(), a
      // request that timed out while it waited): no shard report would then end idle().
      else microtask(this.#allReleased);
    }
  }

  /** Releases up to `batches` batches of waiting sends, oldest first. */
  #release(batches: number): void {
    for (let i = 0; i < batches; i++) {
      const b = this.#waiting.take();
      if (b === undefined) return;
      this.#releaseBatch(b);
      this.#waiting.recycle(b);
    }
  }

  /**
   * Accepts the sends of batch `b` in order (or refuses them all) and lets the other waiters go
   * on; the batch's promise follows the acknowledgement groups its sends joined (one per shard).
   */
  #releaseBatch(b: WaitingBatch): void {
    const sends = b.promise !== null;
    const refused = sends ? this.#refusal() : undefined;
    const slots = b.slots;
    const groups = this.#batchGroups;
    let failure: unknown;
    let accepted = 0;
    let inBatch = 0;
    for (let i = 0, at = 0; i < b.size; i++, at += SLOTS) {
      const first = slots[at];
      if (typeof first === 'function') {
        (first as (arg: unknown) => void)(slots[at + 1]);
        continue;
      }
      inBatch++;
      if (refused !== undefined || failure !== undefined) continue;
      try {
        const group = this.#accept(first as string, slots[at + 1] as string, slots[at + 2] as string, slots[at + 3] as Uint8Array, 0, slots[at + 4] as string | undefined);
        // After #accept: it routes the send, which sets #lastShard (`groups[this.#lastShard] =
        // this.#accept(...)` read the index first, the shard of the previous send).
        groups[this.#lastShard] = group;
        accepted++;
      } catch (err) {
        failure = err;
      }
    }
    if (!sends) return;
    let joined: Promise<void> | undefined;
    let all: Array<Promise<void>> | undefined;
    for (let s = 0; s < groups.length; s++) {
      const g = groups[s];
      if (g === null || g === undefined) continue;
      groups[s] = null;
      if (joined === undefined) joined = g.promise;
      else (all ??= [joined]).push(g.promise);
    }
    if (refused !== undefined) b.reject(refused);
    else if (failure !== undefined) b.reject(accepted === 0 ? failure : partlyAccepted(failure, accepted, inBatch));
    else b.resolve(all !== undefined ? settleTogether(all) : joined);
  }

  #throttledByRings(): boolean {
    return this.spillDepth() > INGRESS_HIGH_WATER_FRAMES / 2 || this.#egressBlocking.size > 0 || this.dirtyOver((this.#settings.cacheSize >> 2) * 3);
  }

  /**
   * close() began: sends waiting for a full egress are refused now (never accepted), so closing
   * never waits for egressFullWaitMs, and no egress holds sends back any more.
   */
  close(): void {
    this.#closing = true;
    this.#egressBlocking.clear();
    clearTimeout(this.#egressWaitTimer);
    this.#egressWaitTimer = undefined;
    this.scheduleFlush();
  }

  /** Releases every waiting send (the engine closed or failed: they are refused as they resume). */
  releaseAll(): void {
    this.#release(Infinity);
  }
}

/**
 * The outcome of a batch of sends that waited together when accepting one of them failed after
 * others were accepted: those will be applied, so the batch's shared promise must not read as a
 * plain failure (a caller that resends would apply them twice).
 */
function partlyAccepted(failure: unknown, accepted: number, total: number): WeftError {
  return sharedOutcome(failure, 'ERR_WEFT_INTERNAL', `${accepted} of the ${total} were accepted before the failure and will be applied, the others were not`);
}

/** `failure`, told to a send that shares its outcome with others: `what` happened to them. */
function sharedOutcome(failure: unknown, fallbackCode: WeftErrorCode, what: string): WeftError {
  const code = failure instanceof WeftError ? failure.code : fallbackCode;
  const why = failure instanceof Error ? failure.message : String(failure);
  return new WeftError(code, `${why} (this send waited for room together with others and shares their outcome: ${what}; resend only with an idempotency key)`, { cause: failure });
}

/**
 * The outcome of a batch of sends that waited together and went to several shards (one
 * acknowledgement group each). Resolves when every group is committed. When some are not, the
 * sends cannot tell whose message was applied: all committed or kept for the next start
 * (ERR_WEFT_DEFERRED) — that error, do not resend; none committed — that group's error; some
 * committed and some not — that error with the fact in its message (resend only with an
 * idempotency key).
 */
function settleTogether(groups: ReadonlyArray<Promise<void>>): Promise<void> {
  return Promise.allSettled(groups).then((outcomes) => {
    let committed = 0;
    let lost: unknown;
    let deferred: unknown;
    for (const o of outcomes) {
      if (o.status === 'fulfilled') committed++;
      else if (o.reason instanceof WeftError && o.reason.code === 'ERR_WEFT_DEFERRED') {
        committed++;
        deferred ??= o.reason;
      } else lost ??= o.reason;
    }
    if (lost === undefined) {
      if (deferred !== undefined) throw deferred;
      return;
    }
    if (committed === 0) throw lost;
    throw sharedOutcome(lost, 'ERR_WEFT_SHARD_FAILED', 'some of them were committed, some not, so this one may or may not have been applied');
  });
}
