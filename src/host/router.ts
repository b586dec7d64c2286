/**
 * The router's host side: routes each host message to its shard's outbound queue (one envelope,
 * one acknowledgement group per shard and flush), flushes the queues into the main→shard rings,
 * and holds host sends back while the engine is behind (ingress backpressure):
 * - frames main could not write because a ring is full (more than INGRESS_HIGH_WATER_FRAMES);
 * - a shard holding more dirty instances than its cache (see {@link Router.dirtyOver});
 * - a full egress (at `egressMaxBacklog` records nobody reads), for at most `egressFullWaitMs`.
 * Sends that wait are released a slice at a time once there is room again.
 *
 * `accept` is main's hottest path (every host message): no closure, allocation or call beyond
 * the envelope and the outbound push per message.
 */
import type { Address } from '../core/address.js';
import { quietDeferred } from '../internal/deferred.js';
import { METRIC_INDEX, type ControlBlock } from '../contract/control-block.js';
import { envelope, envelopeWeight } from '../contract/envelope.js';
import type { ResolvedOptions } from '../contract/options.js';
import type { Partitioner } from '../contract/partitioner.js';
import type { EgressChannel } from './egress.js';
import type { AckGroup, ShardLink } from './shard-link.js';

/** Frames main may hold back for full main→shard rings before sends wait (about 2 MiB). */
const INGRESS_HIGH_WATER_FRAMES = 32;
/** Sends between two reads of the shards' dirty counts (a power of two). */
const DIRTY_CHECK_SENDS = 64;
/** Waiting sends let through per flush once the rings have room again. */
const INGRESS_RELEASE_BATCH = 4096;

export type RouterSettings = Pick<ResolvedOptions, 'cacheSize' | 'checkpointIntervalMs' | 'egressFullWaitMs' | 'egressMaxBacklog'>;

export class Router {
  readonly #partitioner: Partitioner;
  readonly #links: readonly ShardLink[];
  readonly #settings: RouterSettings;
  /** Called when sends released after {@link close} published nothing (idle() may be due). */
  readonly #releasedAfterClose: () => void;
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
  #ingressWaiters: Array<() => void> = [];
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

  constructor(partitioner: Partitioner, links: readonly ShardLink[], settings: RouterSettings, releasedAfterClose: () => void) {
    this.#partitioner = partitioner;
    this.#links = links;
    this.#settings = settings;
    this.#releasedAfterClose = releasedAfterClose;
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
    const link = this.#links[this.#partitioner.shardOf(this.#partitioner.keyGroup(a.type, a.id))]!;
    const hseq = ++this.hseq;
    const env = envelope(a.type, a.id, null, null, typename, payload, requestId, hseq, idempotencyKey);
    this.unpublished++;
    this.activity++;
    link.out.push(env, envelopeWeight(env));
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
  pushAll(record: unknown, weight: number): void {
    for (const link of this.#links) link.out.push(record, weight);
  }

  /** A host send must wait for room first ({@link waitForRoom}). */
  throttled(): boolean {
    if (this.#ingressWaiters.length > 0 || this.#egressBlocking.size > 0) return true;
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
    return this.#ingressWaiters.length;
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
    return new Promise<void>((resolve) => {
      this.#ingressWaiters.push(resolve);
      if (this.#egressBlocking.size > 0) this.#armEgressWait();
    });
  }

  /** An egress reached its backlog bound (`full`), or got room again: host sends wait for it meanwhile. */
  egressFullChanged(full: boolean, channel: EgressChannel): void {
    this.#egressFull += full ? 1 : -1;
    if (full) {
      // egressFullWaitMs 0: sends never wait for egresses. After close(), nothing waits.
      if (this.#settings.egressFullWaitMs === 0 || this.#closing) return;
      this.#egressBlocking.add(channel);
      if (this.#ingressWaiters.length > 0) this.#armEgressWait();
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
    if (this.#closing || this.#ingressWaiters.length === 0 || this.#egressBlocking.size === 0) return;
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
    queueMicrotask(this.#flushTask);
  }

  readonly #flushTask = (): void => {
    this.#flushScheduled = false;
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
    if (this.#ingressWaiters.length > 0 && !this.#throttledByRings()) {
      // Release waiting sends a slice at a time: all at once would refill what just drained.
      const waiters = this.#ingressWaiters.splice(0, INGRESS_RELEASE_BATCH);
      for (const w of waiters) w();
      if (this.#ingressWaiters.length > 0) this.scheduleFlush();
      // Released sends refused at close() publish nothing: no shard report would end idle().
      else if (this.#closing) queueMicrotask(this.#releasedAfterClose);
    }
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
    const waiters = this.#ingressWaiters;
    this.#ingressWaiters = [];
    for (const w of waiters) w();
  }
}
