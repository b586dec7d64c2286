/**
 * The shard loop: one per worker thread, owning a set of key groups, their state partition, their
 * mailboxes and the timers of their addresses.
 *
 *   drain inbound rings (bounded) → mailboxes → invoke → apply effects → fire due timers
 *   → flush outbound batches (one publish + at most one doorbell per destination) → sleep
 *
 * Every input of this thread arrives through a ring (from main, or from another shard), so a
 * checkpoint barrier can sit between any two inputs; the loop never blocks its event loop, so
 * async functions, LMDB write completions and timers progress between turns. Sleeping is one
 * `Atomics.waitAsync` on this thread's doorbell word, woken by any producer.
 *
 * Thread numbering (doorbells, rings): 0 is main, 1 + k is shard k.
 */
import { setImmediate } from 'node:timers';
import { ControlBlock, METRIC_INDEX, latencyBucket } from '../contract/control-block.js';
import { Partitioner } from '../contract/partitioner.js';
import { InstanceCache } from '../state/instance-cache.js';
import { toRecord } from '../state/instance.js';
import { NEVER_EXPIRES, isExpired, liveSlots, type TtlSpec } from '../core/ttl.js';
import type { Partition } from '../state/partition.js';
import { TimerService, systemClock } from '../timers/timer-service.js';
import { Doorbell } from '../transport/doorbell.js';
import { FrameDecoder } from '../transport/framing.js';
import { Ring, type FrameAtHandler } from '../transport/ring.js';
import { NameTable } from '../transport/names.js';
import { FOLD_EVERY, MAX_FOLD_LAG, Participant, foldPhase, recoverPartition, type Snapshot } from '../checkpoint/participant.js';
import { Dispatcher } from './dispatcher.js';
import { PauseMeter } from './pauses.js';
import { E_CALLER_ID, E_CALLER_TYPE, E_HSEQ, E_PAYLOAD, E_REPLY_TO, E_TYPENAME, Kind, envelopeWeight, resolveNames, wireEncoder, type Envelope } from '../contract/envelope.js';
import { Outbound } from '../contract/outbound.js';
import { RemoteFunctions } from './remote-functions.js';
import type { ShardSettings } from '../contract/options.js';
import { DEFAULT_TYPE } from '../codec/types.js';
import { deserializeError, type SerializedError } from '../core/errors.js';
import { keyHash, originHash } from '../contract/control-block.js';
import type { RuntimeModule } from '../module/runtime.js';

/** No COMMITTED read for this long: the engine is quiet, fold what is committed (see #armQuietFold). */
const QUIET_FOLD_MS = 200;

/** What a shard worker is started with (worker_threads `workerData`). */
export interface ShardBoot {
  /** The engine-wide settings (the same for every shard). */
  readonly settings: ShardSettings;
  readonly shard: number;
  readonly shards: number;
  /** The data dir's key groups. */
  readonly keyGroups: number;
  /** The engine's wire names (transport/names.ts), made by main. */
  readonly wireNames: readonly string[];
  /** The module declares a compute file and main runs a compute pool. */
  readonly compute: boolean;
  readonly partitionPath: string;
  /** Rings into this shard: index 0 from main, 1 + k from shard k (null for k = this shard). */
  readonly inbound: ReadonlyArray<SharedArrayBuffer | null>;
  /** Rings out of this shard: index 0 to main, 1 + k to shard k (null for k = this shard). */
  readonly outbound: ReadonlyArray<SharedArrayBuffer | null>;
  readonly bells: SharedArrayBuffer;
  readonly control: SharedArrayBuffer;
  /** Last epoch the coordinator committed: recovery starts from it. */
  readonly committedEpoch: number;
  /**
   * The host that sent the replayed messages is still there (an in-process recovery): keep their
   * host sequence numbers and request ids. After a process restart they mean nothing any more.
   */
  readonly sameHost: boolean;
  /** Messages dead-lettered without running, with their error (see DispatcherOptions.quarantine). */
  readonly quarantine: ReadonlyArray<readonly [fingerprint: string, error: SerializedError]>;
  /**
   * A failure no message explained preceded this generation: run careful (see Dispatcher.careful)
   * until the messages queued at the first commit have run.
   */
  readonly careful: boolean;
}

/** An ack's pending host sequence numbers when there are none (most acks): one shared array. */
const NONE_BELOW: readonly number[] = Object.freeze([]);

/** Most frames drained from one ring per turn, so one busy producer cannot starve the others. */
const FRAMES_PER_RING_PER_TURN = 64;
/**
 * Intake stops while this many messages wait in mailboxes: the rest stays in the rings, whose
 * producers then see them full — main's ingress waits (backpressure to the host), other shards
 * spill. Mailboxes are part of every snapshot, so this also bounds the cost of a checkpoint.
 * Draining never depends on another shard (sends never block), so this cannot deadlock a cycle.
 */
const MAILBOX_HIGH_WATER = 16_384;
/**
 * Longest a turn spends encoding the snapshot in progress, ms (InstanceCache.captureSome): the
 * rest waits for the next turns, so a checkpoint of thousands of changed instances never holds
 * the loop in one step.
 */
const CAPTURE_SLICE_MS = 0.5;
/** Most invocations started per turn before the loop yields to the event loop. */
const INVOCATIONS_PER_TURN = 8192;
/**
 * Longest a turn keeps starting invocations, ms: then it publishes what they produced (replies
 * leave at the end of a turn) and lets the event loop run before the next. A turn of 8,192
 * invocations held a shard for 10-50 ms under a backlog, and every reply of the turn waited for
 * its end.
 */
const TURN_RUN_MS = 1;

export class ShardLoop {
  readonly #boot: ShardBoot;
  readonly #names: NameTable;
  readonly #me: number;
  readonly #partition: Partition;
  readonly #bells: Doorbell;
  readonly #control: ControlBlock;
  readonly #inbound: Array<Ring | null>;
  readonly #inUse: boolean[];
  readonly #outbound: Array<Outbound | null>;
  readonly #toMain: Outbound;
  readonly #cache: InstanceCache;
  readonly #timers: TimerService;
  readonly #dispatcher: Dispatcher;
  readonly #participant: Participant;
  readonly #partitioner: Partitioner;
  /** GC pauses and gaps between turns, into the control block. */
  readonly #pauses: PauseMeter;
  /** One drain callback per inbound ring, made once (no closure per drain). */
  readonly #frameHandlers: Array<FrameAtHandler | null>;
  readonly #decoder = new FrameDecoder();
  #scheduled = false;
  /** Invocation count that ends the careful phase (-1: not decided yet, or not careful). */
  #carefulUntil = -1;
  /** Bumps the heartbeat while the event loop runs (see ControlBlock.beat), also when idle. */
  #heartbeat: NodeJS.Timeout | undefined;
  #computeSeq = 0;
  readonly #computeCalls = new Map<number, { resolve(v: unknown): void; reject(e: unknown): void }>();
  #sleeping = false;
  #closing = false;
  #closed = false;
  #lastAck = 0;
  #lastAckVersion = 0;
  #turns = 0;
  #checkpoints = 0;
  #checkpointBytes = 0;
  #lastCheckpointMs = 0;
  #lastCheckpointBytes = 0;
  readonly #onClosed: () => void;
  readonly #onFatal: (err: unknown) => void;
  readonly #onLateCall: (type: string, id: string, method: string) => void;

  readonly #remote: RemoteFunctions;

  constructor(boot: ShardBoot, module: RuntimeModule, partition: Partition, hooks: { closed(): void; fatal(err: unknown): void; lateCall(type: string, id: string, method: string): void }, remote: RemoteFunctions) {
    this.#boot = boot;
    this.#remote = remote;
    this.#me = 1 + boot.shard;
    this.#partition = partition;
    this.#onClosed = hooks.closed;
    this.#onFatal = hooks.fatal;
    this.#onLateCall = hooks.lateCall;
    this.#bells = Doorbell.attach(boot.bells);
    this.#control = new ControlBlock(boot.control, boot.shards);
    this.#pauses = new PauseMeter(this.#control, boot.shard);
    this.#inbound = boot.inbound.map((b) => (b === null ? null : Ring.attach(b)));
    this.#inUse = this.#inbound.map((r) => r !== null);
    this.#frameHandlers = this.#inbound.map((r, i) => (r === null ? null : (bytes: Uint8Array, start: number, end: number) => this.#onFrame(i, bytes, start, end)));
    this.#names = new NameTable(boot.wireNames);
    const wire = wireEncoder(this.#names);
    this.#outbound = boot.outbound.map((b, i) => (b === null ? null : new Outbound(Ring.attach(b), i, this.#bells, wire)));
    this.#toMain = this.#outbound[0] as Outbound;
    this.#cache = new InstanceCache(boot.settings.cacheSize, (kg, type, id) => partition.getState(kg, type, id));
    this.#timers = new TimerService();
    const partitioner = new Partitioner(boot.shards, boot.keyGroups);
    this.#partitioner = partitioner;
    const outbound = this.#outbound;
    const toMain = this.#toMain;
    const names = this.#names;
    this.#dispatcher = new Dispatcher(
      module,
      {
        settings: boot.settings,
        shard: boot.shard,
        ...(boot.compute ? { compute: (task: string, input: unknown) => this.#compute(task, input) } : {}),
        ...(remote.size > 0 ? { remote } : {}),
        quarantine: boot.quarantine,
      },
      this.#cache,
      {
        toShard(shard: number, env: Envelope) {
          (outbound[1 + shard] as Outbound).push(env, envelopeWeight(env));
        },
        reply(requestId: number, typename: string, payload: Uint8Array) {
          // A typename in the name table travels as its index (main resolves it): no string to
          // write here and none to make on main, per reply.
          toMain.push([Kind.Reply, requestId, names.field(typename), payload], payload.byteLength + 32);
        },
        replyError(requestId: number, error: SerializedError) {
          toMain.push([Kind.ReplyError, requestId, error], 256);
        },
        egress(name: string, typename: string, payload: Uint8Array) {
          toMain.push([Kind.Egress, name, names.field(typename), payload], payload.byteLength + name.length + 32);
        },
      },
      partitioner,
      this.#timers,
      systemClock,
    );
    this.#dispatcher.onAsyncSettled = () => this.#wake();
    const control = this.#control;
    const shard = boot.shard;
    this.#dispatcher.running = {
      enter(mb, env) {
        if (mb.keyHash === 0) mb.keyHash = keyHash(mb.key);
        const hseq = env[E_HSEQ];
        control.enter(shard, mb.keyHash, hseq, env[E_PAYLOAD], hseq > 0 ? 0 : originHash(env[E_TYPENAME], env[E_CALLER_TYPE], env[E_CALLER_ID]));
      },
      awaiting() {
        control.awaiting(shard);
      },
      leave() {
        control.leave(shard);
      },
    };
    this.#dispatcher.onLateCall = (type, id, method) => this.#onLateCall(type, id, method);
    this.#dispatcher.careful = boot.careful;
    const histogram = this.#control.f64;
    const hBase = this.#control.histogramBase(boot.shard);
    const sumAt = this.#control.metricsBase(boot.shard) + METRIC_INDEX.latencySumMicros;
    this.#dispatcher.onLatency = (us, weight) => {
      histogram[hBase + latencyBucket(us)]! += weight;
      histogram[sumAt]! += us * weight;
    };
    const phase = foldPhase(boot.shard, boot.shards);
    this.#participant = new Participant(
      partition,
      this.#inbound.length,
      {
        takeSnapshot: (epoch) => this.#takeSnapshot(epoch),
        forwardBarrier: (epoch) => this.#forwardBarrier(epoch),
        done: (epoch, snap, ms) => this.#done(epoch, snap, ms),
        folded: (epoch) => {
          this.#cache.foldedEpoch = Math.max(this.#cache.foldedEpoch, epoch);
          // Intake may have waited for this fold (see #intakeOpen).
          this.#wake();
        },
        fatal: (err) => this.#onFatal(err),
        captured: () => !this.#cache.capturing,
        finishCapture: () => this.#cache.finishCapture(),
        beat: () => this.#control.beat(boot.shard),
      },
      boot.committedEpoch,
      phase,
    );
    // Shards whose commits stop fold when quiet at different times too (see #armQuietFold).
    this.#quietFoldMs = QUIET_FOLD_MS + Math.floor((phase * QUIET_FOLD_MS) / FOLD_EVERY);
  }

  /** Restores the last committed checkpoint, then starts the loop. */
  async start(): Promise<void> {
    const rec = await recoverPartition(this.#partition, this.#boot.committedEpoch);
    this.#cache.foldedEpoch = rec.folded;
    this.#timers.restoreSeq(rec.timerSeq);
    for (const t of rec.timers) this.#timers.restore(t);
    if (!this.#boot.sameHost) {
      for (const env of rec.mailbox) {
        env[E_HSEQ] = 0;
        env[E_REPLY_TO] = 0;
      }
    }
    // Replayed host messages are tracked for acks in hseq order (ring order for new ones).
    const hseqs: number[] = [];
    for (const env of rec.mailbox) if (env[E_HSEQ] > 0) hseqs.push(env[E_HSEQ]);
    hseqs.sort((a, b) => a - b);
    for (const h of hseqs) this.#dispatcher.acks.received(h);
    // The replayed messages are alive again: count them before anything can complete.
    if (rec.mailbox.length > 0) this.#control.addAlive(rec.mailbox.length);
    for (const env of rec.mailbox) this.#dispatcher.enqueue(env);
    // Metrics are valid before the shard reports ready (Weft.start resolves): a host that reads
    // pendingTimers right after start sees the restored timers, not an empty control block.
    this.#publishMetrics();
    // Main's watchdog terminates a shard whose heartbeat stops for invocationTimeoutMs: beat a
    // few times per deadline while the event loop is free (turns beat too).
    const beatMs = Math.max(5, Math.floor(this.#boot.settings.invocationTimeoutMs / 8));
    this.#control.beat(this.#boot.shard);
    this.#heartbeat = setInterval(() => this.#control.beat(this.#boot.shard), beatMs);
    this.#heartbeat.unref();
    this.#pauses.start();
    this.#pauses.woke();
    this.#schedule();
  }

  #schedule(): void {
    if (this.#scheduled || this.#closed) return;
    this.#scheduled = true;
    setImmediate(this.#runTurn);
  }

  /** Called from promise callbacks on this thread: run again soon, waking the sleeper if needed. */
  #wake(): void {
    if (this.#sleeping) this.#bells.ring(this.#me);
    else this.#schedule();
  }

  readonly #runTurn = (): void => {
    this.#scheduled = false;
    if (this.#closed) return;
    try {
      this.#turn();
    } catch (err) {
      this.#onFatal(err);
    }
  };

  #turn(): void {
    this.#pauses.turn();
    this.#turns++;
    this.#control.beat(this.#boot.shard);
    let work = 0;
    // 1. Drain every inbound ring (bounded per ring), in ring order, into mailboxes.
    const inbound = this.#inbound;
    for (let r = 0; r < inbound.length; r++) {
      const ring = inbound[r];
      if (ring === null || ring === undefined) continue;
      let n = 0;
      while (n < FRAMES_PER_RING_PER_TURN && this.#intakeOpen()) {
        if (ring.drainAt(this.#frameHandlers[r]!, 1) === 0) break;
        n++;
      }
      if (n > 0) {
        work += n;
        // The producer found this ring full and sleeps until we free space.
        if (ring.takeRoomRequest()) this.#bells.ring(r);
      }
    }
    if (this.#closed) return;
    // 2. Invoke.
    work += this.#dispatcher.run(INVOCATIONS_PER_TURN, performance.now() + TURN_RUN_MS);
    this.#control.beat(this.#boot.shard);
    if (this.#carefulUntil >= 0 && this.#dispatcher.counters.invocations >= this.#carefulUntil && this.#dispatcher.parked === 0) {
      this.#dispatcher.careful = false;
      this.#carefulUntil = -1;
      work++;
    }
    // 3. Encode a slice of the snapshot in progress (InstanceCache.beginCapture); once complete,
    // its PENDING write goes out. A slice takes up to CAPTURE_SLICE_MS: what waits to be
    // published (this turn's replies and messages, those of async invocations settled since the
    // last turn, a DONE) goes out first, not after it.
    const cache = this.#cache;
    if (cache.capturing) {
      this.#flush();
      if (cache.captureSome(performance.now() + CAPTURE_SLICE_MS)) this.#participant.resume();
      else work++;
    }
    // 4. Fire due timers and retries (their messages run next turn).
    const now = Date.now();
    const nextDue = this.#dispatcher.fireDue(now);
    // 5. Publish.
    const blocked = this.#flush();
    this.#publishMetrics();
    if (this.#closing && this.#dispatcher.parked === 0) {
      this.#finishClose();
      return;
    }
    // Another turn right away only when it has something to do: after a turn that worked off
    // everything, the loop goes to sleep at once rather than through one more, empty turn (which
    // every message of a lightly loaded shard paid). #sleep looks again before it parks.
    if (this.#dispatcher.hasRunnable || cache.capturing || (work > 0 && this.#anyInbound())) {
      this.#schedule();
      return;
    }
    this.#sleep(nextDue, blocked);
  }

  #sleep(nextDue: number | undefined, blocked: boolean): void {
    // Announce the sleep, then look once more: a producer that published before our announcement
    // is seen here; one that publishes after it sees SLEEPING and rings (Doorbell's argument).
    this.#bells.prepareSleep(this.#me);
    const intakeOpen = this.#intakeOpen();
    if ((intakeOpen && this.#anyInbound()) || this.#dispatcher.hasRunnable || (blocked && this.#anyOutboundRoomOrRequest())) {
      this.#bells.cancelSleep(this.#me);
      this.#schedule();
      return;
    }
    // A full ring's consumer rings us when it frees space: the check above raised its
    // waiting-for-room flag again after our announcement (Outbound.roomOrRequest), so no extra
    // polling is needed.
    const timeout = nextDue === undefined ? Number.POSITIVE_INFINITY : Math.max(1, nextDue - Date.now());
    this.#sleeping = true;
    this.#bells.sleepThen(this.#me, timeout, this.#woke);
  }

  /**
   * The doorbell woke the loop: the turn runs at once, in the wake-up's own task, rather than one
   * event-loop iteration later (setImmediate), which every request of a quiet service paid. A
   * turn that finds work ends by scheduling the next one with setImmediate, so I/O and timers
   * still run between busy turns.
   */
  readonly #woke = (): void => {
    this.#sleeping = false;
    this.#pauses.woke();
    if (this.#scheduled || this.#closed) return;
    this.#runTurn();
  };

  /**
   * Input is taken while the mailboxes hold fewer than MAILBOX_HIGH_WATER messages and the folds
   * keep up (Participant.foldLag): otherwise it waits in the rings (its producers see them full).
   * A fold that completes wakes the loop (the `folded` hook).
   */
  #intakeOpen(): boolean {
    return this.#dispatcher.queuedMessages < MAILBOX_HIGH_WATER && this.#participant.foldLag <= MAX_FOLD_LAG;
  }

    #anyOutboundRoomOrRequest(): boolean {
    for (const out of this.#outbound) if (out !== null && out.roomOrRequest()) return true;
    return false;
  }

  #anyInbound(): boolean {
    for (const ring of this.#inbound) if (ring !== null && ring.hasData()) return true;
    return false;
  }

  readonly #beforePublish = (): void => {
    const net = this.#dispatcher.takeNet();
    if (net !== 0 && this.#control.addAlive(net) === 0) this.#idleReached = true;
  };

  /** The live-message count reached 0 during this flush: main may want a ring at its end (see #flush). */
  #idleReached = false;

  /** Flushes every outbound queue; returns true when some ring is full. */
  #flush(): boolean {
    this.#emitAck();
    let blocked = false;
    for (const out of this.#outbound) {
      if (out !== null && out.flush(this.#beforePublish)) blocked = true;
    }
    // Completions with nothing to publish still count toward idleness.
    this.#beforePublish();
    // Main learns that the engine went idle from a ring, rung only while it waits for that
    // (weft.idle(), close()) and once the frames are out. Rung at every completion that brought
    // the count to 0, it woke a quiet service's main twice per request: once for the reply's
    // frame and once, found empty, for this ring.
    if (this.#idleReached) {
      this.#idleReached = false;
      if (this.#control.idleWatched()) this.#bells.ring(0);
    }
    return blocked;
  }

  #emitAck(): void {
    const acks = this.#dispatcher.acks;
    const wm = acks.watermark();
    if (wm !== this.#lastAck || acks.version !== this.#lastAckVersion) {
      this.#lastAck = wm;
      this.#lastAckVersion = acks.version;
      // The hseqs below the watermark still pending (paused remote addresses), usually none.
      const below = acks.version === 0 ? NONE_BELOW : acks.pendingBelow();
      this.#toMain.push([Kind.Ack, wm, below], 24 + below.length * 8);
    }
  }

  #onFrame(ring: number, bytes: Uint8Array, start: number, end: number): void {
    const decoder = this.#decoder;
    const count = decoder.decodeAt(bytes, start, end);
    const records = decoder.records;
    for (let i = 0; i < count; i++) {
      const rec = records[i] as unknown[];
      switch (rec[0] as Kind) {
        case Kind.Msg: {
          const env = resolveNames(rec, this.#names);
          if (this.#participant.isRecording(ring)) this.#participant.record(env);
          if (ring === 0 && env[E_HSEQ] > 0) this.#dispatcher.acks.received(env[E_HSEQ]);
          this.#dispatcher.enqueue(env);
          break;
        }
        case Kind.Barrier:
          this.#participant.onBarrier(ring, rec[1] as number, this.#inUse);
          break;
        case Kind.Committed: {
          // The careful phase ends once every message queued at the first commit since the
          // recovery has been tried (the replayed ones, and the one to blame among them, if any).
          if (this.#dispatcher.careful && this.#carefulUntil < 0) {
            this.#carefulUntil = this.#dispatcher.counters.invocations + this.#dispatcher.queuedMessages;
          }
          // The same point ends the quarantine made for that recovery (main drops its copy at
          // this commit too).
          this.#dispatcher.scopeQuarantine();
          // Fold at once when the cache is over its size or holds more unfolded records than that:
          // the records wait in memory until folded.
          const cache = this.#cache;
          this.#participant.onCommitted(rec[1] as number, cache.size > cache.capacity || cache.unfoldedCount > cache.capacity);
          this.#armQuietFold();
          break;
        }
        case Kind.Query:
          this.#query(rec[1] as number, rec[2] as string, rec[3] as string);
          break;
        case Kind.Close:
          this.#closing = true;
          // Main sends Close after the final checkpoint, which holds every queued message: a
          // remote call still running (an address whose pause just ended) cannot commit any
          // more, so it is cut short rather than waited for (up to its whole budget).
          void this.#remote.close();
          break;
        case Kind.ComputeResult:
          this.#onComputeResult(rec[1] as number, rec[2] as boolean, rec[3]);
          break;
        default:
          throw new Error(`shard ${this.#boot.shard}: unexpected record kind ${String(rec[0])} on ring ${ring}`);
      }
    }
    decoder.release();
  }

  /**
   * ctx.compute: the call goes to main (which owns the compute pool) through the ring; the
   * result comes back through the main→shard ring and resumes the parked invocation.
   */
  #compute(task: string, input: unknown): Promise<unknown> {
    let payload: Uint8Array;
    try {
      payload = DEFAULT_TYPE.encode(input, 'ctx.compute input');
    } catch (err) {
      return Promise.reject(err);
    }
    const callId = ++this.#computeSeq;
    return new Promise((resolve, reject) => {
      this.#computeCalls.set(callId, { resolve, reject });
      this.#toMain.push([Kind.Compute, callId, task, payload], payload.byteLength + task.length + 32);
      this.#wake();
    });
  }

  #onComputeResult(callId: number, ok: boolean, value: unknown): void {
    const call = this.#computeCalls.get(callId);
    if (call === undefined) return;
    this.#computeCalls.delete(callId);
    if (ok) {
      try {
        call.resolve(DEFAULT_TYPE.decode(value as Uint8Array));
      } catch (err) {
        call.reject(err);
      }
    } else call.reject(deserializeError(value as SerializedError));
  }

  #query(requestId: number, type: string, id: string): void {
    const key = `${type}\u0000${id}`;
    const kg = this.#partitioner.keyGroup(type, id);
    const inst = this.#cache.get(key, type, id, kg);
    const fn = this.#dispatcher.module.functions.get(type);
    const now = Date.now();
    const record = toRecord(inst);
    // Expired values read as undefined, as they do inside the function. A remote function's specs
    // are what the handshakes taught us; a value whose spec it has not declared yet is kept.
    let specOf: (name: string) => TtlSpec | undefined = (name) => fn?.specByName.get(name);
    if (fn === undefined) {
      const specs = new Map(this.#remote.specsOf(type).map((sp) => [sp.name, sp]));
      specOf = (name) => specs.get(name) ?? NEVER_EXPIRES;
    }
    record.slots = liveSlots(record.slots, record.calledAt, specOf, now);
    this.#toMain.push([Kind.QueryResult, requestId, record.slots.length === 0 ? null : record], 64);
  }

  /**
   * Folds the committed epochs still pending once this shard has read no COMMITTED for
   * QUIET_FOLD_MS (a periodic one may reach it up to one checkpoint interval, at most 50 ms, after
   * the commit: coordinator.ts, LATE_COMMITTED_MAX_INTERVAL_MS):
   * folds are batched (FOLD_EVERY) to save work under load, where commits keep coming; when the
   * engine goes quiet, checkpoints stop and the last epochs would stay unfolded until load
   * returns — and every `weft.instances` listing would read them (a page of 100 over 300k
   * unfolded changes: 63 ms; folded: 1.4 ms). The wait grows with the shard's fold phase (up to
   * twice QUIET_FOLD_MS), so that with checkpoints QUIET_FOLD_MS or more apart the shards do not
   * all fold at the same moment after each commit.
   */
  #armQuietFold(): void {
    if (this.#quietFold !== undefined) clearTimeout(this.#quietFold);
    this.#quietFold = setTimeout(() => {
      this.#quietFold = undefined;
      if (!this.#closing) this.#participant.foldNow();
    }, this.#quietFoldMs);
    this.#quietFold.unref();
  }

  #quietFold: NodeJS.Timeout | undefined;
  /** How long after the last commit this shard folds when quiet (see #armQuietFold). */
  readonly #quietFoldMs: number;

  /** Cache evictions when idle mailboxes were last swept (see Dispatcher.snapshotMailboxes). */
  #sweptAtEvictions = 0;

  /** The cache evicted instances since the last sweep: idle mailboxes may hold some of them. */
  #sweepDue(): boolean {
    const evictions = this.#cache.evictions;
    if (evictions === this.#sweptAtEvictions) return false;
    this.#sweptAtEvictions = evictions;
    return true;
  }

  #takeSnapshot(epoch: number): Omit<Snapshot, 'inflight' | 'bytes'> {
    this.#sweepExpired();
    return {
      epoch,
      states: this.#cache.beginCapture(epoch),
      timers: this.#timers.takeDelta(),
      mailbox: this.#dispatcher.snapshotMailboxes(this.#sweepDue()),
      timerSeq: this.#timers.nextSeq,
    };
  }

  /**
   * Frees expired state of cached instances before it is snapshotted (values past their TTL
   * already read as undefined; this reclaims their space in memory and in the partition).
   */
  #sweepExpired(): void {
    // Walking every cached instance on every checkpoint costs ~1 ms per 10k cached instances:
    // only when some function can expire state.
    if (!this.#dispatcher.module.hasTtl) return;
    const now = Date.now();
    const functions = this.#dispatcher.module.functions;
    for (const inst of this.#cache.values()) {
      if (inst.busy || inst.slots.size === 0) continue;
      const fn = functions.get(inst.type);
      if (fn === undefined || !fn.hasTtl) continue;
      let changed = false;
      for (const [name, slot] of inst.slots) {
        const spec = fn.specByName.get(name);
        if (spec === undefined) continue;
        if (isExpired(spec, slot.writtenAt, inst.calledAt, now)) {
          if (!changed) this.#cache.willChange(inst);
          inst.slots.delete(name);
          changed = true;
        }
      }
      if (changed) this.#cache.markDirty(inst);
    }
  }

  #forwardBarrier(epoch: number): void {
    // Acks of invocations completed before the snapshot must precede the barrier to main.
    this.#emitAck();
    // Main needs the barrier only with this snapshot's DONE, which follows it on the same ring
    // and wakes main: the barrier itself does not (two wakes of main fewer per checkpoint).
    // Another shard needs it to complete its own snapshot: that one rings.
    for (const out of this.#outbound) if (out !== null) out.push([Kind.Barrier, epoch], 16, out === this.#toMain);
  }

  #done(epoch: number, snap: Snapshot, ms: number): void {
    this.#checkpoints++;
    this.#lastCheckpointMs = ms;
    this.#lastCheckpointBytes = snap.bytes;
    this.#checkpointBytes += snap.bytes;
    this.#toMain.push([Kind.Done, epoch, { bytes: snap.bytes, states: snap.states.count, ms }], 64);
    this.#wake();
  }

  #publishMetrics(): void {
    const f = this.#control.f64;
    const b = this.#control.metricsBase(this.#boot.shard);
    const c = this.#dispatcher.counters;
    const m = METRIC_INDEX;
    f[b + m.invocations] = c.invocations;
    f[b + m.failures] = c.failures;
    f[b + m.retries] = c.retries;
    f[b + m.deadLetters] = c.deadLetters;
    f[b + m.localSends] = c.localSends;
    f[b + m.remoteSends] = c.remoteSends;
    f[b + m.egress] = c.egress;
    f[b + m.replies] = c.replies;
    f[b + m.timersFired] = c.timersFired;
    f[b + m.idempotentDuplicates] = c.duplicates;
    f[b + m.mailboxBacklog] = this.#dispatcher.queuedMessages;
    f[b + m.parkedInvocations] = this.#dispatcher.parked;
    f[b + m.pendingTimers] = this.#timers.size;
    f[b + m.cacheInstances] = this.#cache.size;
    f[b + m.cacheHits] = this.#cache.hits;
    f[b + m.cacheMisses] = this.#cache.misses;
    f[b + m.cacheEvictions] = this.#cache.evictions;
    f[b + m.dirtyInstances] = this.#cache.dirtyCount;
    let spilled = 0;
    let depth = 0;
    for (const out of this.#outbound) {
      if (out === null) continue;
      spilled += out.spilled;
      depth += out.spillDepth;
    }
    f[b + m.ringSpilledFrames] = spilled;
    f[b + m.ringSpillDepth] = depth;
    let fill = 0;
    for (const ring of this.#inbound) if (ring !== null) fill = Math.max(fill, ring.fillRatio());
    f[b + m.inboundRingFill] = fill;
    f[b + m.checkpoints] = this.#checkpoints;
    f[b + m.lastCheckpointMs] = this.#lastCheckpointMs;
    f[b + m.lastCheckpointBytes] = this.#lastCheckpointBytes;
    f[b + m.checkpointBytesTotal] = this.#checkpointBytes;
    f[b + m.hostMessagesPending] = this.#dispatcher.acks.pending;
    f[b + m.turns] = this.#turns;
    f[b + m.remoteRetries] = this.#remote.retries;
    f[b + m.remotePaused] = this.#dispatcher.remotePaused;
  }

  #finishClose(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#heartbeat);
    this.#pauses.stop();
    // Leave the base complete: the partition closes once every fold has been written.
    this.#participant.foldNow();
    void this.#participant.whenFolded().then(() => this.#onClosed());
  }

}

