/**
 * The dispatcher: per-address mailboxes and the invocation of functions, independent of threads.
 * The shard loop drives one per worker thread (state in LMDB, time from the wall clock, other
 * shards behind rings); the test harness drives one alone (state in memory, virtual time).
 *
 * Semantics (README.md, "Invocation semantics"):
 * - One invocation at a time per address, in arrival order, also while an async `fn` awaits:
 *   the address stays `running` until its promise settles; other addresses keep going.
 * - An invocation's effects are applied together at its end ({@link Effects}); if it throws, none
 *   are, and it is retried (after a backoff, blocking its address to keep order) up to
 *   `maxAttempts` times, then its message goes to the egress `weft/dead-letters`.
 *
 * Everything here is data a checkpoint can capture: mailboxes are arrays of envelopes (the head
 * of a running address's mailbox is the message being processed — it will simply run again after
 * a recovery), timers are a heap of envelopes, and dirty instances are a set.
 */
import { WeftError, describe, serializeError, type SerializedError } from '../core/errors.js';
import type { Instance, InstanceStore } from '../state/instance.js';
import { Slot } from '../state/instance.js';
import type { Clock, TimerService } from '../timers/timer-service.js';
import { Effects, IMMUTABLE, InvocationContext, MessageImpl, writeIndex, type ContextHost } from './context.js';
import { E_CALLER_ID, E_CALLER_TYPE, E_HSEQ, E_IDEMPOTENCY_KEY, E_PAYLOAD, E_REPLY_TO, E_TYPENAME, envelope, type Envelope } from '../contract/envelope.js';
import { IDEMPOTENCY_PURGE_CALLER, IDEMPOTENCY_PURGE_TYPENAME } from '../core/idempotency.js';
import { isSharedPayload } from '../codec/types.js';
import { DEAD_LETTER_EGRESS, type CompiledFunction, type CompiledSpec, type RuntimeModule } from '../module/runtime.js';
import type { RemoteEffects, RemoteInvoker, RemoteTarget } from './remote-invoker.js';
import { fingerprintOf, keyHash, originHash, payloadHash } from '../contract/control-block.js';
import { Fifo } from '../internal/fifo.js';
import type { InvocationSettings } from '../contract/options.js';

/** Where effects that leave the dispatcher go. */
export interface Outbox {
  /** A message whose target another shard owns. */
  toShard(shard: number, env: Envelope): void;
  /** `ctx.reply` to a host request. */
  reply(requestId: number, typename: string, payload: Uint8Array): void;
  /** A host request's message was dead-lettered: fail the request with the function's error. */
  replyError?(requestId: number, error: SerializedError): void;
  egress(name: string, typename: string, payload: Uint8Array): void;
}

/** Routing: `(type, id) → keyGroup`, and which shard owns a key group. */
export interface Routing {
  keyGroup(type: string, id: string): number;
  shardOf(keyGroup: number): number;
}

/** What a dispatcher runs with: the engine's (or the harness's) settings, and what is its own. */
export interface DispatcherOptions {
  readonly settings: InvocationSettings;
  /** The shard this dispatcher is (messages for the key groups of others leave through the outbox). */
  readonly shard: number;
  /** Runs a compute task; absent when the module has no compute file. */
  readonly compute?: (task: string, input: unknown) => Promise<unknown>;
  /** Calls remote (StateFun) functions; absent when no endpoint is configured. */
  readonly remote?: RemoteInvoker;
  /**
   * Messages (see {@link messageFingerprint}) whose invocation ended or stalled a shard worker,
   * with the error code and what happened (the dead letter's message is "the invocation of
   * <address> " + that): they are dead-lettered without running (a poison message must not stop
   * the engine).
   */
  readonly quarantine?: ReadonlyArray<readonly [fingerprint: string, error: SerializedError]>;
}

/** Records the message whose function runs synchronously right now (see ControlBlock.enter). */
export interface RunningRecorder {
  enter(mb: Mailbox, env: Envelope): void;
  /** Careful mode: the function returned a promise; it stays recorded, as awaiting, until it settles. */
  awaiting(): void;
  leave(): void;
}

/** An async invocation waiting for its promise, until `due` (see InvocationSettings.invocationTimeoutMs). */
interface Parked {
  readonly due: number;
  settled: boolean;
  /** Fails the invocation at its deadline; dropped when it settles (it holds the invocation). */
  expire: () => void;
}

const SETTLED = (): void => {};

/** For dropping settled entries from the parked queue (see fireDue). */
const unsettled = (p: Parked): boolean => !p.settled;

const NO_PAYLOAD = new Uint8Array(0);

/** Invocations between two looks at the clock in run() (a power of two). */
const DEADLINE_EVERY = 32;

/** Most Effects records kept for reuse (one per invocation running at a time is enough). */
const FX_POOL = 64;

export class Mailbox {
  readonly key: string;
  readonly type: string;
  readonly id: string;
  readonly kg: number;
  /** Messages waiting, oldest first; the oldest is the one running (or awaiting a retry). */
  readonly queue = new Fifo<Envelope>();
  /** An invocation is in progress, or a retry is pending: nothing else may start. */
  running = false;
  /** In the runnable queue. */
  queued = false;
  attempts = 0;
  /** The instance last used for this address (see Dispatcher#instanceOf). */
  inst: Instance | undefined = undefined;
  /** A remote function's address waiting out a pause after a failed call (see Dispatcher#pauseRemote). */
  paused = false;
  /** Messages of a paused mailbox taken out of the engine's count of live messages. */
  excluded = 0;
  /** Hash of `key` (see messageFingerprint), made on first use by a {@link RunningRecorder}. */
  keyHash = 0;
  /** Where this mailbox is in the dispatcher's list of mailboxes holding messages (-1: not in it). */
  holding = -1;

  constructor(key: string, type: string, id: string, kg: number) {
    this.key = key;
    this.type = type;
    this.id = id;
    this.kg = kg;
  }

  get size(): number {
    return this.queue.size;
  }
}

/**
 * Low watermark of completed host messages. Host messages carry increasing sequence numbers
 * (hseq) in their ring's order; invocations complete out of order (async functions), so the
 * watermark is the oldest hseq still pending — everything below it has completed, except the
 * messages {@link park}ed meanwhile (those of a paused remote address), which the watermark passes
 * and {@link pendingBelow} lists until they complete: one paused address must not hold back the
 * acknowledgement of every later host message on its shard.
 */
export class HostAcks {
  readonly #seqs = new Fifo<number>();
  #done = new Set<number>();
  #maxReceived = 0;
  /** Parked (paused) hseqs the watermark has not passed yet. */
  readonly #parked = new Set<number>();
  /** Parked hseqs the watermark passed: still pending. */
  readonly #below = new Set<number>();
  /** Bumped when {@link pendingBelow} changes. */
  version = 0;

  received(hseq: number): void {
    this.#seqs.push(hseq);
    if (hseq > this.#maxReceived) this.#maxReceived = hseq;
  }

  completed(hseq: number): void {
    if (this.#below.size > 0 && this.#below.delete(hseq)) {
      this.version++;
      return;
    }
    if (this.#parked.size > 0) this.#parked.delete(hseq);
    // Fast path: messages usually complete in arrival order; only out-of-order ones (an async
    // function still awaiting ahead of them) need the set.
    if (this.#seqs.peek() === hseq) {
      this.#seqs.shift();
      return;
    }
    this.#done.add(hseq);
  }

  /** The message is waiting out a pause: let the watermark pass it (it stays pending). */
  park(hseq: number): void {
    if (!this.#below.has(hseq)) this.#parked.add(hseq);
  }

  /** The pause ended: the message is an ordinary pending one again (if the watermark has not passed it). */
  unpark(hseq: number): void {
    this.#parked.delete(hseq);
  }

  /** Parked messages below the watermark that have not completed, ascending. */
  pendingBelow(): number[] {
    return [...this.#below].sort((a, b) => a - b);
  }

  /** Every host message with hseq < watermark has completed, but those of {@link pendingBelow}. */
  watermark(): number {
    const seqs = this.#seqs;
    for (;;) {
      const h = seqs.peek();
      if (h === undefined) return this.#maxReceived + 1;
      if (this.#done.delete(h)) seqs.shift();
      else if (this.#parked.size > 0 && this.#parked.delete(h)) {
        this.#below.add(h);
        this.version++;
        seqs.shift();
      } else return h;
    }
  }

  get pending(): number {
    return this.#seqs.size + this.#below.size;
  }
}

/**
 * Names one message across recoveries (see {@link fingerprintOf}; main makes the same string
 * from what a shard records in shared memory, ControlBlock.enter).
 */
export function messageFingerprint(key: string, env: Envelope): string {
  const p = env[E_PAYLOAD];
  const hseq = env[E_HSEQ];
  return fingerprintOf(keyHash(key), hseq, p.length, hseq > 0 ? 0 : payloadHash(p, originHash(env[E_TYPENAME], env[E_CALLER_TYPE], env[E_CALLER_ID])));
}

/** One invocation in this many has its latency measured, once past the first 1024 (power of two). */
const LATENCY_SAMPLE = 16;

/** Emptied mailboxes kept for reuse before a sweep drops them. */
const IDLE_MAILBOXES = 65_536;

interface Retry {
  due: number;
  mb: Mailbox;
  /** The end of a remote address's pause, rather than a retry's backoff. */
  pause: boolean;
}

/**
 * A remote batch stops before its payloads pass this many bytes (it always holds one message):
 * the runtime's async transport refuses larger requests (payload_max_bytes, 32 MiB by default),
 * and so do endpoints with the same limit, so a larger batch would fail on every try.
 */
const MAX_REMOTE_BATCH_BYTES = 32 * 1024 * 1024;

const noCompute = (): Promise<unknown> =>
  Promise.reject(new WeftError('ERR_WEFT_COMPUTE', 'ctx.compute: this module declares no compute file (defineModule({ compute: new URL(...) }))'));

export class Dispatcher implements ContextHost {
  readonly module: RuntimeModule;
  readonly maxMessageBytes: number;
  readonly maxStateValueBytes: number;
  readonly #opts: DispatcherOptions;
  readonly #settings: InvocationSettings;
  readonly #store: InstanceStore;
  readonly #out: Outbox;
  readonly #routing: Routing;
  readonly #timers: TimerService;
  readonly #clock: Clock;
  readonly #compute: (task: string, input: unknown) => Promise<unknown>;

  /**
   * Mailboxes by type, then id: looking up with the decoded strings as they are avoids building
   * a `type + "\0" + id` key per message. An emptied mailbox is kept (with its key string, whose
   * hash is then cached for the instance-cache lookup) until a sweep: addresses that receive
   * bursts reuse it instead of re-creating it per message.
   */
  readonly #mailboxes = new Map<string, Map<string, Mailbox>>();
  /**
   * The mailboxes holding messages (queued, or the one an invocation runs): what a snapshot
   * copies. Walking every mailbox instead cost a lightly loaded shard ~0.3 ms at each checkpoint
   * once it had seen 5,000 addresses. An array with each mailbox's index in it (Mailbox.holding),
   * not a Set: a message to an idle address adds and removes its mailbox, and hashing both times
   * cost workload (b) measurably.
   */
  readonly #nonEmpty: Mailbox[] = [];
  #lastType = '';
  #lastById: Map<string, Mailbox> | undefined;
  #idleMailboxes = 0;
  readonly #runnable = new Fifo<Mailbox>();
  #retries: Retry[] = [];
  /** The earliest due time in #retries (Infinity when empty): most turns skip the scan. */
  #retriesDue = Number.POSITIVE_INFINITY;
  #now = 0;
  readonly acks = new HostAcks();

  /** Messages created (sent, fired) since the counters were last taken: for idle detection. */
  created = 0;
  /** Messages whose invocation completed (or dead-lettered) since the counters were last taken. */
  completed = 0;
  /** Invocations awaiting a promise (remote calls included). */
  parked = 0;
  /** Remote addresses paused after a failed call, waiting to try their batch again. */
  remotePaused = 0;
  /** Messages queued in mailboxes (including running ones). */
  queuedMessages = 0;
  /** Called when an async invocation settles: the loop should run again. */
  onAsyncSettled: () => void = () => {};
  readonly counters = { invocations: 0, failures: 0, retries: 0, deadLetters: 0, localSends: 0, remoteSends: 0, egress: 0, replies: 0, timersFired: 0, duplicates: 0 };
  /** Invocation latencies in µs, fed to a histogram by the loop (null when not collected). */
  onLatency: ((micros: number, weight: number) => void) | null = null;

  constructor(module: RuntimeModule, opts: DispatcherOptions, store: InstanceStore, out: Outbox, routing: Routing, timers: TimerService, clock: Clock) {
    this.module = module;
    this.#opts = opts;
    this.#settings = opts.settings;
    this.maxMessageBytes = opts.settings.maxMessageBytes;
    this.maxStateValueBytes = opts.settings.maxStateValueBytes;
    this.#store = store;
    this.#out = out;
    this.#routing = routing;
    this.#timers = timers;
    this.#clock = clock;
    this.#compute = opts.compute ?? noCompute;
    for (const [key, error] of opts.quarantine ?? []) this.#quarantine.set(key, error);
  }

  /** True while a function runs synchronously (called by this dispatcher, not yet returned). */
  inUserCode = false;

  /**
   * A context method was called after its invocation ended: reported (counted, and published by
   * main on `weft:late-context`), never thrown from a timer or callback where nobody could catch it.
   */
  onLateCall: (type: string, id: string, method: string) => void = () => {};

  lateCall(type: string, id: string, method: string): void {
    this.onLateCall(type, id, method);
  }

  hasPendingToken(senderKey: string, token: string): boolean {
    return this.#timers.hasToken(senderKey, token);
  }

  compute(task: string, input: unknown): Promise<unknown> {
    return this.#compute(task, input);
  }

  get timers(): TimerService {
    return this.#timers;
  }

  /** Something can run now. */
  get hasRunnable(): boolean {
    return this.#runnable.size > 0 && !(this.careful && this.parked > 0);
  }

  /**
   * Set after a shard failure no message explained: one invocation at a time (an async one
   * blocks the others until it settles), recorded by {@link running} until it settles, so that
   * when the shard dies or stalls in an async function's continuation, main knows the message.
   */
  careful = false;

  /**
   * Routes a message created on this shard (a send, a reply to a calling function, a fired timer):
   * to a local mailbox, or to the shard that owns its target.
   */
  route(env: Envelope): void {
    this.created++;
    const kg = this.#routing.keyGroup(env[1], env[2]);
    const shard = this.#routing.shardOf(kg);
    if (shard === this.#opts.shard) {
      this.counters.localSends++;
      // A shared one-byte payload (ctx.send) must not reach a function: it gets its own copy.
      if (isSharedPayload(env[E_PAYLOAD])) env[E_PAYLOAD] = env[E_PAYLOAD].slice();
      this.enqueue(env, kg);
    } else {
      this.counters.remoteSends++;
      this.#out.toShard(shard, env);
    }
  }

  /** Accepts a message this shard owns (from a ring, a local send, or a replayed snapshot). */
  enqueue(env: Envelope, kg?: number): void {
    const type = env[1];
    const id = env[2];
    // Consecutive messages mostly go to one function type: compare before hashing the string.
    let byId = type === this.#lastType ? this.#lastById : this.#mailboxes.get(type);
    if (byId === undefined) {
      byId = new Map();
      this.#mailboxes.set(type, byId);
    }
    this.#lastType = type;
    this.#lastById = byId;
    let mb = byId.get(id);
    if (mb === undefined) {
      mb = new Mailbox(`${type}\u0000${id}`, type, id, kg ?? this.#routing.keyGroup(type, id));
      byId.set(id, mb);
    } else if (mb.queue.size === 0) this.#idleMailboxes--;
    if (mb.queue.size === 0) {
      mb.holding = this.#nonEmpty.length;
      this.#nonEmpty.push(mb);
    }
    mb.queue.push(env);
    this.queuedMessages++;
    if (mb.paused) {
      // It waits out the pause with the others (see #pauseRemote): not live until it ends.
      mb.excluded++;
      this.completed++;
      if (env[E_HSEQ] > 0) this.acks.park(env[E_HSEQ]);
    }
    if (!mb.running && !mb.queued) {
      mb.queued = true;
      this.#runnable.push(mb);
    }
  }

  /**
   * Runs up to `budget` invocations, and none more once `deadline` (a `performance.now()` time,
   * looked at every DEADLINE_EVERY invocations) has passed; returns how many started.
   */
  run(budget: number, deadline = Number.POSITIVE_INFINITY): number {
    let n = 0;
    // One clock read per run: TTL and timer resolution is a millisecond anyway.
    this.#now = this.#clock.now();
    const q = this.#runnable;
    while (n < budget && q.size > 0) {
      if (this.careful && this.parked > 0) break;
      if ((n & (DEADLINE_EVERY - 1)) === DEADLINE_EVERY - 1 && performance.now() >= deadline) break;
      const mb = q.shift() as Mailbox;
      mb.queued = false;
      if (mb.running || mb.queue.size === 0) continue;
      this.#invoke(mb);
      n++;
    }
    return n;
  }

  /** Fires due timers and due retries; returns the earliest future due time (or undefined). */
  fireDue(now: number, max = 10_000): number | undefined {
    const due = this.#timers.popDue(now, max);
    for (const t of due) {
      this.counters.timersFired++;
      this.route(t.env);
    }
    if (this.#retriesDue <= now) {
      const keep: Retry[] = [];
      let earliest = Number.POSITIVE_INFINITY;
      for (const r of this.#retries) {
        if (r.due <= now) {
          if (r.pause) this.#resumeRemote(r.mb);
          r.mb.running = false;
          this.#makeRunnable(r.mb);
        } else {
          keep.push(r);
          if (r.due < earliest) earliest = r.due;
        }
      }
      this.#retries = keep;
      this.#retriesDue = earliest;
    }
    const parked = this.#parkedQueue;
    // Settled entries behind a long-running one wait for it to leave the head: past a few times
    // the invocations still parked, drop them all at once, so the queue stays O(parked).
    if (parked.size > 4 * this.parked + 1024) parked.retain(unsettled);
    for (let p = parked.peek(); p !== undefined && (p.settled || p.due <= now); p = parked.peek()) {
      parked.shift();
      if (!p.settled) p.expire();
    }
    let next = this.#timers.nextDue();
    if (this.#retries.length > 0 && (next === undefined || this.#retriesDue < next)) next = this.#retriesDue;
    const oldest = parked.peek();
    if (oldest !== undefined && (next === undefined || oldest.due < next)) next = oldest.due;
    return next;
  }

  #retryAt(due: number, mb: Mailbox, pause: boolean): void {
    this.#retries.push({ due, mb, pause });
    if (due < this.#retriesDue) this.#retriesDue = due;
  }

  #makeRunnable(mb: Mailbox): void {
    if (!mb.running && !mb.queued && mb.queue.size > 0) {
      mb.queued = true;
      this.#runnable.push(mb);
    }
  }

  /**
   * The mailbox remembers its instance, so a busy address skips the cache lookup; an instance the
   * cache evicted is marked and looked up (reloaded) again.
   */
  #instanceOf(mb: Mailbox): Instance {
    let inst = mb.inst;
    if (inst === undefined || inst.evicted) {
      inst = this.#store.get(mb.key, mb.type, mb.id, mb.kg);
      mb.inst = inst;
    } else inst.ref = true;
    return inst;
  }

  /**
   * Told right before a function runs and right after its synchronous part returns, so a worker
   * that dies or stalls inside a function (process.exit, out of memory, an endless loop) leaves
   * the message behind for main (see ControlBlock.enter). Null in the test harness.
   */
  running: RunningRecorder | null = null;
  readonly #quarantine = new Map<string, SerializedError>();
  /** Messages taken to run (#invoke calls, quarantined ones included). */
  #tried = 0;
  /** #tried count past which the quarantine is dropped (-1: not decided yet; see scopeQuarantine). */
  #quarantineUntil = -1;

  /**
   * A checkpoint was committed: the quarantine (made for the replay of the recovery this shard
   * started from) lasts until every message queued now has been tried. A quarantined message
   * not met by then was not sent again (its sender took another path): the entry must not
   * dead-letter a later, healthy message that happens to look the same.
   */
  scopeQuarantine(): void {
    if (this.#quarantine.size > 0 && this.#quarantineUntil < 0) this.#quarantineUntil = this.#tried + this.queuedMessages;
  }

  /** Quarantined messages this shard still waits for (see scopeQuarantine). */
  get quarantined(): number {
    return this.#quarantine.size;
  }

  /** Async invocations in start order (so in deadline order), settled ones skipped lazily. */
  readonly #parkedQueue = new Fifo<Parked>();

  /**
   * A message with an idempotency key (src/core/idempotency.ts): true when it is done without running
   * — its key was applied within the window (a request gets the stored reply), or it is the
   * delayed message that purges an expired key. Messages without a key never get here.
   */
  #alreadyApplied(mb: Mailbox, env: Envelope): boolean {
    const key = env[E_IDEMPOTENCY_KEY] as string;
    const inst = this.#instanceOf(mb);
    const applied = inst.applied;
    const entry = applied?.get(key);
    const now = this.#now;
    if (env[E_CALLER_TYPE] === IDEMPOTENCY_PURGE_CALLER) {
      if (applied != null && entry !== undefined) {
        const end = entry[0] + this.#settings.idempotencyRetentionMs;
        if (end <= now) {
          this.#store.willChange(inst);
          applied.delete(key);
          if (applied.size === 0) inst.applied = null;
          this.#store.markDirty(inst);
        } else {
          // The window is longer than when this purge was scheduled (options changed): later.
          this.#timers.schedule(end, mb.kg, env, mb.key, null);
        }
      }
      this.#finish(mb, env);
      return true;
    }
    if (entry === undefined || now - entry[0] >= this.#settings.idempotencyRetentionMs) return false;
    this.counters.duplicates++;
    const typename = entry[1];
    // The kept reply's bytes are the instance's (checkpointed with it): the duplicate gets a copy.
    if (typename !== null) this.#reply(mb, env, typename, (entry[2] as Uint8Array).slice());
    else if (env[E_REPLY_TO] > 0) {
      this.#out.replyError?.(
        env[E_REPLY_TO],
        serializeError(new WeftError('ERR_WEFT_NO_REPLY', `the invocation of ${mb.type}/${mb.id} that applied idempotency key ${describe(key)} ended without calling ctx.reply`)),
      );
    }
    this.#finish(mb, env);
    return true;
  }

  /**
   * The invocation of a message with an idempotency key completed: its key and reply are kept
   * with the instance's state (so in the same checkpoint as its effects), and a delayed message
   * purges them once the window has passed (so keys on disk are bounded by the window too).
   */
  #recordApplied(mb: Mailbox, inst: Instance, env: Envelope, replyType: string | null, replyPayload: Uint8Array, now: number): void {
    const key = env[E_IDEMPOTENCY_KEY] as string;
    // The payload is copied: a reply's bytes may be a view the outbox or the caller reuses, or a
    // shared one-byte array.
    (inst.applied ??= new Map()).set(key, [now, replyType, replyType === null ? null : replyPayload.slice()]);
    this.#store.markDirty(inst);
    const purge = envelope(mb.type, mb.id, IDEMPOTENCY_PURGE_CALLER, null, IDEMPOTENCY_PURGE_TYPENAME, NO_PAYLOAD, 0, 0, key);
    this.#timers.schedule(now + this.#settings.idempotencyRetentionMs, mb.kg, purge, mb.key, null);
  }

  #invoke(mb: Mailbox): void {
    const env = mb.queue.peek() as Envelope;
    this.#tried++;
    if (this.#quarantine.size > 0 && this.#quarantineUntil >= 0 && this.#tried > this.#quarantineUntil) {
      this.#quarantine.clear();
      this.#quarantineUntil = -1;
    }
    if (env.length > E_IDEMPOTENCY_KEY && this.#alreadyApplied(mb, env)) return;
    if (this.#quarantine.size > 0) {
      const fp = messageFingerprint(mb.key, env);
      const error = this.#quarantine.get(fp);
      if (error !== undefined) {
        this.#quarantine.delete(fp);
        // Main knows the message by its fingerprint only: the error names the address here.
        const err = new WeftError((error.code ?? 'ERR_WEFT_SHARD_FAILED') as 'ERR_WEFT_SHARD_FAILED', `the invocation of ${mb.type}/${mb.id} ${error.message}`);
        this.#deadLetter(mb, env, err, 0, fp);
        return;
      }
    }
    const fn = this.module.functions.get(mb.type);
    if (fn === undefined) {
      const remote = this.#opts.remote?.for(mb.type);
      if (remote !== undefined) {
        this.#invokeRemote(mb, remote);
        return;
      }
      this.#deadLetter(mb, env, new WeftError('ERR_WEFT_UNKNOWN_FUNCTION', `no function of type ${describe(mb.type)} is defined`), 1);
      return;
    }
    const inst = this.#instanceOf(mb);
    const fx = this.#fxPool.pop() ?? new Effects();
    const now = this.#now;
    const ctx = new InvocationContext(this, fn, inst, env, fx, now);
    const msg = new MessageImpl(env[E_TYPENAME], env[E_PAYLOAD], this.module);
    mb.running = true;
    inst.busy = true;
    this.counters.invocations++;
    // Latency is sampled (every invocation while few have run, then one in LATENCY_SAMPLE with
    // that weight): reading the clock twice per message costs more than the histogram is worth.
    const started = this.onLatency === null || (this.counters.invocations > 1024 && (this.counters.invocations & (LATENCY_SAMPLE - 1)) !== 0) ? 0 : performance.now();
    let result: unknown;
    const running = this.running;
    // Careful: an async invocation stays recorded (as awaiting) until it settles.
    const recordUntilSettled = this.careful && running !== null;
    this.inUserCode = true;
    try {
      if (running !== null) running.enter(mb, env);
      result = (fn.fn as (c: unknown, m: unknown) => unknown)(ctx, msg);
      if (recordUntilSettled) running.awaiting();
      else running?.leave();
    } catch (err) {
      running?.leave();
      this.inUserCode = false;
      inst.busy = false;
      this.#failed(mb, ctx, env, err, fx);
      return;
    }
    this.inUserCode = false;
    if (result !== null && typeof result === 'object' && typeof (result as PromiseLike<unknown>).then === 'function') {
      // Parked: the address stays running, the instance stays pinned, other addresses go on.
      this.parked++;
      // Settles once: by the promise, or by the deadline (the promise is then ignored; its
      // function may go on, but its context has ended, see InvocationContext).
      const timeoutMs = this.#settings.invocationTimeoutMs;
      const p: Parked = {
        due: timeoutMs === undefined ? Number.POSITIVE_INFINITY : this.#clock.now() + timeoutMs,
        settled: false,
        expire: () => {
          p.settled = true;
          p.expire = SETTLED;
          if (recordUntilSettled) running.leave();
          this.parked--;
          inst.busy = false;
          this.#failed(mb, ctx, env, new WeftError('ERR_WEFT_TIMEOUT', `the invocation of ${mb.type}/${mb.id} did not settle within ${timeoutMs} ms (invocationTimeoutMs)`), fx);
          this.onAsyncSettled();
        },
      };
      if (timeoutMs !== undefined) this.#parkedQueue.push(p);
      // Promise.resolve adopts a foreign thenable, which could call back twice; a native
      // promise is returned as it is.
      void Promise.resolve(result).then(
        () => {
          if (p.settled) return;
          p.settled = true;
          p.expire = SETTLED;
          if (recordUntilSettled) running.leave();
          this.parked--;
          this.#completed(mb, fn, inst, ctx, env, fx, now, started);
          this.onAsyncSettled();
        },
        (err: unknown) => {
          if (p.settled) return;
          p.settled = true;
          p.expire = SETTLED;
          if (recordUntilSettled) running.leave();
          this.parked--;
          inst.busy = false;
          this.#failed(mb, ctx, env, err, fx);
          this.onAsyncSettled();
        },
      );
      return;
    }
    if (recordUntilSettled) running.leave();
    this.#completed(mb, fn, inst, ctx, env, fx, now, started);
  }

  /** Effects of invocations that ended, kept for the next ones (an ended context never reads them). */
  readonly #fxPool: Effects[] = [];

  #release(fx: Effects): void {
    if (this.#fxPool.length < FX_POOL) {
      fx.reset();
      this.#fxPool.push(fx);
    }
  }

  #completed(mb: Mailbox, fn: CompiledFunction, inst: Instance, ctx: InvocationContext, env: Envelope, fx: Effects, now: number, started: number): void {
    try {
      ctx.settle(); // state objects changed in place become writes
    } catch (err) {
      inst.busy = false;
      this.#failed(mb, ctx, env, err, fx);
      return;
    }
    ctx.end();
    inst.busy = false;
    // Every change below (writes, TTL drops, call time, idempotency keys) comes after this.
    this.#store.willChange(inst);
    let dirty = false;
    const writes = fx.writes;
    const nWrites = fx.nWrites;
    for (let i = 0; i < nWrites; i += 3) {
      const spec = writes[i] as CompiledSpec;
      const slot = writes[i + 1] as Slot | null | typeof IMMUTABLE;
      if (slot === null) {
        if (inst.slots.delete(spec.name)) dirty = true;
        continue;
      }
      const existing = inst.slots.get(spec.name);
      if (slot === IMMUTABLE) {
        // The instance's slot takes an immutable value in place: no Slot per write.
        if (existing === undefined) inst.slots.set(spec.name, new Slot(null, now, writes[i + 2], true, null, spec.encode));
        else existing.setImmutable(writes[i + 2], now, spec.encode);
      } else if (existing === undefined) inst.slots.set(spec.name, slot);
      else existing.assign(slot);
      dirty = true;
    }
    if (fn.hasCallTtl) {
      // Values that expired before this call stay expired: drop them before the call's time
      // becomes the new reference, or they would come back to life.
      for (const spec of fn.specs) {
        if (spec.expireAfterCall === 0 || inst.calledAt === 0 || now - inst.calledAt < spec.expireAfterCall) continue;
        if (writeIndex(writes, nWrites, spec) >= 0) continue;
        inst.slots.delete(spec.name);
      }
      inst.calledAt = now;
      dirty = true;
    }
    if (dirty) this.#store.markDirty(inst);
    for (let i = 0; i < fx.nSends; i++) this.route(fx.sends[i] as Envelope);
    if (fx.timerOps !== null) {
      for (const op of fx.timerOps) {
        if (op.env === undefined) this.#timers.cancel(mb.key, op.token as string);
        else this.#timers.schedule(now + op.delayMs, mb.kg, op.env, mb.key, op.token);
      }
    }
    if (fx.egress !== null) {
      for (const [name, typename, payload] of fx.egress) {
        this.counters.egress++;
        this.#out.egress(name, typename, payload);
      }
    }
    if (env.length > E_IDEMPOTENCY_KEY) this.#recordApplied(mb, inst, env, fx.replyType, fx.replyPayload, now);
    if (fx.replyType !== null) this.#reply(mb, env, fx.replyType, fx.replyPayload);
    else if (env[E_REPLY_TO] > 0) {
      // A host request waits for an answer that will not come: tell it now, not at its timeout.
      this.#out.replyError?.(env[E_REPLY_TO], serializeError(new WeftError('ERR_WEFT_NO_REPLY', `the invocation of ${mb.type}/${mb.id} ended without calling ctx.reply`)));
    }
    this.#release(fx);
    if (started !== 0 && this.onLatency !== null) this.onLatency((performance.now() - started) * 1000, this.counters.invocations > 1024 ? LATENCY_SAMPLE : 1);
    this.#finish(mb, env);
  }

  /**
   * Acts as the StateFun runtime for a remote function (RequestReplyFunction): one call in flight
   * per address, and the messages that arrived meanwhile go out together as the next batch — the
   * whole backlog, up to maxBatch messages (the runtime's maxNumBatchRequests, at which it stops
   * its whole operator's intake, so its batches never grow past it; here the rest simply waits
   * for the next batch, in order) and {@link MAX_REMOTE_BATCH_BYTES}. Every registered state is
   * attached (values past their TTL as absent); the answer is applied like one invocation's
   * effects — all of them, or none (then the address pauses, or the batch is dead-lettered).
   * The batch's messages stay at the head of the mailbox until then, so a checkpoint taken
   * meanwhile replays them (the remote call is made again after a recovery; state stays exactly-once).
   */
  #invokeRemote(mb: Mailbox, remote: RemoteTarget): void {
    const backlog = Math.min(remote.maxBatch, mb.queue.size);
    let count = 1;
    let bytes = (mb.queue.peek() as Envelope)[E_PAYLOAD].byteLength;
    while (count < backlog) {
      const e = mb.queue.at(count) as Envelope;
      // A message with an idempotency key heads its own batch: its key is looked up before it runs.
      if (e.length > E_IDEMPOTENCY_KEY) break;
      const next = e[E_PAYLOAD].byteLength;
      if (bytes + next > MAX_REMOTE_BATCH_BYTES) break;
      bytes += next;
      count++;
    }
    const envs: Envelope[] = [];
    for (let i = 0; i < count; i++) envs.push(mb.queue.at(i) as Envelope);
    const inst = this.#instanceOf(mb);
    mb.running = true;
    inst.busy = true;
    this.counters.invocations += count;
    this.parked++;
    remote.invoke(mb.type, mb.id, envs, inst, this.#now).then(
      (result) => {
        this.parked--;
        inst.busy = false;
        try {
          this.#applyRemote(mb, inst, envs, result);
        } catch (err) {
          this.#failedBatch(mb, envs, err, remote);
        }
        this.onAsyncSettled();
      },
      (err: unknown) => {
        this.parked--;
        inst.busy = false;
        this.#failedBatch(mb, envs, err, remote);
        this.onAsyncSettled();
      },
    );
  }

  #checkRemoteMessage(mb: Mailbox, payload: Uint8Array): void {
    if (payload.byteLength > this.maxMessageBytes) {
      throw new WeftError('ERR_WEFT_TOO_LARGE', `remote function ${mb.type} sent a message of ${payload.byteLength} bytes, over the limit of ${this.maxMessageBytes} (maxMessageBytes)`);
    }
  }

  #applyRemote(mb: Mailbox, inst: Instance, envs: Envelope[], result: RemoteEffects): void {
    const now = this.#clock.now();
    // Validate everything first: the batch's effects are applied together or not at all.
    for (const m of result.mutations) {
      if (m.value !== null && m.value.bytes.byteLength > this.maxStateValueBytes) {
        throw new WeftError('ERR_WEFT_TOO_LARGE', `remote function ${mb.type} wrote state ${describe(m.name)} of ${m.value.bytes.byteLength} bytes, over the limit of ${this.maxStateValueBytes} (maxStateValueBytes)`);
      }
    }
    for (const o of result.replies) this.#checkRemoteMessage(mb, o.payload);
    for (const o of result.sends) {
      this.#checkRemoteMessage(mb, o.payload);
      if (!this.module.isKnownFunction(o.type)) {
        throw new WeftError('ERR_WEFT_UNKNOWN_FUNCTION', `remote function ${mb.type} sent a message to ${describe(o.type)}, which no module or endpoint defines`);
      }
    }
    for (const e of result.egress) {
      if (!this.module.egresses.has(e.name)) {
        throw new WeftError('ERR_WEFT_UNKNOWN_EGRESS', `remote function ${mb.type} wrote to egress ${describe(e.name)}, which the module does not declare`);
      }
    }
    const tokens = new Map<string, boolean>();
    for (const d of result.delayed) {
      if (d.cancellationToken === null) continue;
      if (d.cancel) tokens.set(d.cancellationToken, false);
      else {
        const pending = tokens.get(d.cancellationToken) ?? this.#timers.hasToken(mb.key, d.cancellationToken);
        if (pending) {
          throw new WeftError('ERR_WEFT_DUPLICATE_TOKEN', `remote function ${mb.type}: cancellation token ${describe(d.cancellationToken)} is already used by a pending delayed message`);
        }
        tokens.set(d.cancellationToken, true);
      }
    }
    // Apply.
    this.#store.willChange(inst);
    let dirty = false;
    for (const m of result.mutations) {
      if (m.value === null) {
        if (inst.slots.delete(m.name)) dirty = true;
      } else {
        inst.slots.set(m.name, new Slot(m.value.bytes, now, undefined, false, m.value.typename));
        dirty = true;
      }
    }
    if (result.callTimeMatters) {
      inst.calledAt = now;
      dirty = true;
    }
    if (dirty) this.#store.markDirty(inst);
    for (const o of result.sends) this.route(envelope(o.type, o.id, mb.type, mb.id, o.typename, o.payload));
    for (const r of result.replies) {
      this.counters.replies++;
      this.#out.reply(r.requestId, r.typename, r.payload);
    }
    for (const d of result.delayed) {
      if (d.cancel) {
        if (d.cancellationToken !== null) this.#timers.cancel(mb.key, d.cancellationToken);
      } else if (d.target !== null && d.typename !== null && d.payload !== null) {
        const env = envelope(d.target.type, d.target.id, mb.type, mb.id, d.typename, d.payload);
        this.#timers.schedule(now + d.delayMs, mb.kg, env, mb.key, d.cancellationToken);
      }
    }
    for (const e of result.egress) {
      this.counters.egress++;
      this.#out.egress(e.name, e.typename, e.payload);
    }
    const head = envs[0] as Envelope;
    if (head.length > E_IDEMPOTENCY_KEY) {
      // Only the head of a batch can have a key (#invokeRemote).
      let replyType: string | null = null;
      let replyPayload: Uint8Array = NO_PAYLOAD;
      const requestId = head[E_REPLY_TO];
      if (requestId > 0) {
        for (const r of result.replies) {
          if (r.requestId !== requestId) continue;
          replyType = r.typename;
          replyPayload = r.payload;
        }
      }
      this.#recordApplied(mb, inst, head, replyType, replyPayload, now);
    }
    for (const env of envs) this.#finish(mb, env);
  }

  /**
   * A remote call failed: its budget ran out, the endpoint answered a status that is not retried,
   * or the answer was refused. The runtime fails the job then and restores it from its last
   * checkpoint, which sends the batch again: nothing is dropped. Here the address pauses instead
   * (its messages stay queued, in order; the other addresses go on) and tries the batch again
   * later; or, when the endpoint says `onExhausted: 'dead-letter'`, the batch is dead-lettered.
   */
  #failedBatch(mb: Mailbox, envs: Envelope[], err: unknown, remote: RemoteTarget): void {
    // The shard is closing (after its final checkpoint, which holds these messages): leave them.
    if (err instanceof WeftError && err.code === 'ERR_WEFT_CLOSED') return;
    this.counters.failures++;
    if (remote.onExhausted === 'dead-letter') {
      for (const env of envs) this.#deadLetter(mb, env, err, 1);
      return;
    }
    this.#pauseRemote(mb, err, remote);
  }

  /**
   * Pauses a remote address after a failed call: the batch is tried again after the pause, which
   * doubles with each failed call in a row (mb.attempts, reset by a success). While paused, the
   * mailbox's messages do not count as live (like pending delayed messages), so `idle()` and
   * `close()` do not wait for an endpoint that is down, and their host acknowledgements are parked
   * (HostAcks), so they do not hold back those of later host messages; they are in every
   * checkpoint all the same.
   */
  #pauseRemote(mb: Mailbox, err: unknown, remote: RemoteTarget): void {
    mb.attempts++;
    const ms = remote.pauseMs(mb.attempts);
    mb.paused = true;
    mb.excluded = mb.queue.size;
    this.completed += mb.excluded;
    for (let i = 0; i < mb.queue.size; i++) {
      const hseq = (mb.queue.at(i) as Envelope)[E_HSEQ];
      if (hseq > 0) this.acks.park(hseq);
    }
    this.remotePaused++;
    this.#retryAt(this.#clock.now() + ms, mb, true);
    remote.paused(mb.type, mb.id, err, ms);
  }

  #resumeRemote(mb: Mailbox): void {
    mb.paused = false;
    for (let i = 0; i < mb.queue.size; i++) {
      const hseq = (mb.queue.at(i) as Envelope)[E_HSEQ];
      if (hseq > 0) this.acks.unpark(hseq);
    }
    this.created += mb.excluded;
    mb.excluded = 0;
    this.remotePaused--;
  }

  /**
   * Counts a failed attempt; true when another one is due later (after a backoff that doubles
   * each time). The address stays blocked (running) until then, so later messages keep their order.
   */
  #retryLater(mb: Mailbox): boolean {
    this.counters.failures++;
    mb.attempts++;
    if (mb.attempts >= this.#settings.maxAttempts) return false;
    this.counters.retries++;
    const backoff = this.#settings.retryBackoffMs * 2 ** (mb.attempts - 1);
    this.#retryAt(this.#clock.now() + backoff, mb, false);
    return true;
  }

  #reply(mb: Mailbox, env: Envelope, typename: string, payload: Uint8Array): void {
    this.counters.replies++;
    const requestId = env[E_REPLY_TO];
    if (requestId > 0) {
      this.#out.reply(requestId, typename, payload);
      return;
    }
    const callerType = env[E_CALLER_TYPE];
    if (callerType !== null) {
      this.route(envelope(callerType, env[E_CALLER_ID] as string, mb.type, mb.id, typename, payload));
    }
    // A host `send()` has no one to answer: the reply is dropped, as documented.
  }

  /** The message at the head of `mb` is done (completed or dead-lettered): move on. */
  #finish(mb: Mailbox, env: Envelope): void {
    const hseq = env[E_HSEQ];
    if (hseq > 0) this.acks.completed(hseq);
    this.completed++;
    this.queuedMessages--;
    mb.attempts = 0;
    mb.running = false;
    mb.queue.shift();
    if (mb.queue.size === 0) {
      this.#dropHolding(mb);
      if (++this.#idleMailboxes > IDLE_MAILBOXES) this.sweepMailboxes();
      return;
    }
    mb.queued = true;
    this.#runnable.push(mb);
  }

  /** `mb` holds no message any more: out of #nonEmpty (the last one takes its place). */
  #dropHolding(mb: Mailbox): void {
    const list = this.#nonEmpty;
    const last = list.pop() as Mailbox;
    if (last !== mb) {
      list[mb.holding] = last;
      last.holding = mb.holding;
    }
    mb.holding = -1;
  }

  #failed(mb: Mailbox, ctx: InvocationContext, env: Envelope, err: unknown, fx: Effects): void {
    ctx.end();
    this.#release(fx);
    if (isDeterministic(err)) {
      // Running it again would fail the same way: dead-letter it at once.
      this.counters.failures++;
      this.#deadLetter(mb, env, err, mb.attempts + 1);
      return;
    }
    if (this.#retryLater(mb)) return;
    this.#deadLetter(mb, env, err, mb.attempts);
  }

  #deadLetter(mb: Mailbox, env: Envelope, err: unknown, attempts: number, quarantined?: string): void {
    this.counters.deadLetters++;
    const record = {
      target: { type: mb.type, id: mb.id },
      caller: env[E_CALLER_TYPE] === null ? null : { type: env[E_CALLER_TYPE], id: env[E_CALLER_ID] },
      typename: env[E_TYPENAME],
      payload: env[E_PAYLOAD],
      error: serializeError(asWeftError(err)),
      attempts,
      at: this.#clock.now(),
      // Main forgets a quarantined message once its dead letter is committed.
      ...(quarantined === undefined ? {} : { quarantined }),
    };
    const t = this.module.defaultType;
    this.#out.egress(DEAD_LETTER_EGRESS, t.typename, t.encode(record));
    // A host waiting in request() hears of the failure now, not at its timeout.
    if (env[E_REPLY_TO] > 0) this.#out.replyError?.(env[E_REPLY_TO], record.error);
    this.#finish(mb, env);
  }

  /**
   * The messages waiting in mailboxes, per address in order, including the message of each
   * invocation still running or awaiting a retry: what a snapshot must replay on recovery.
   */
  snapshotMailboxes(sweep: boolean): Envelope[] {
    const out: Envelope[] = [];
    for (const mb of this.#nonEmpty) {
      for (let i = 0; i < mb.queue.size; i++) out.push(mb.queue.at(i) as Envelope);
    }
    // Emptied mailboxes whose instance the cache dropped would keep that instance alive: drop
    // them (`sweep`: the cache evicted since the last sweep). Those of cached instances cost
    // little and are reused by the next messages (a chain of calls keeps most of its addresses
    // idle at any moment: re-creating their mailboxes every epoch cost ~4% of a shard in
    // workload b).
    if (sweep) this.sweepMailboxes(false);
    return out;
  }

  /**
   * Drops emptied mailboxes (kept for reuse between sweeps): all of them, or (`all` false) those
   * whose instance is no longer cached.
   */
  sweepMailboxes(all = true): void {
    if (this.#idleMailboxes === 0) return;
    let kept = 0;
    // values(), not entries(): no [key, value] pair allocated per mailbox, every checkpoint.
    for (const byId of this.#mailboxes.values()) {
      let type = '';
      for (const mb of byId.values()) {
        type = mb.type;
        if (mb.queue.size > 0 || mb.running || mb.queued) continue;
        if (!all && mb.inst !== undefined && !mb.inst.evicted) kept++;
        else byId.delete(mb.id);
      }
      if (byId.size === 0 && type !== '') this.#mailboxes.delete(type);
    }
    this.#idleMailboxes = kept;
    this.#lastType = '';
    this.#lastById = undefined;
  }

  /** The mailbox of an address, if it has one. */
  mailbox(type: string, id: string): Mailbox | undefined {
    return this.#mailboxes.get(type)?.get(id);
  }

  /** Every mailbox (including emptied ones kept for reuse). */
  *allMailboxes(): IterableIterator<Mailbox> {
    for (const byId of this.#mailboxes.values()) yield* byId.values();
  }

  /** Takes the idle-detection counters: net messages alive created minus completed. */
  takeNet(): number {
    const net = this.created - this.completed;
    this.created = 0;
    this.completed = 0;
    return net;
  }
}

export { Slot };

/**
 * Errors weft raises at a call whose outcome only the message, the state and the code decide:
 * retrying the invocation would fail the same way, so its message is dead-lettered at once.
 */
const DETERMINISTIC = new Set<string>([
  'ERR_WEFT_TYPE_MISMATCH',
  'ERR_WEFT_UNKNOWN_STATE',
  'ERR_WEFT_UNKNOWN_FUNCTION',
  'ERR_WEFT_UNKNOWN_EGRESS',
  'ERR_WEFT_UNSERIALIZABLE',
  'ERR_WEFT_TOO_LARGE',
  'ERR_WEFT_INVALID_ADDRESS',
  'ERR_WEFT_INVALID_TYPENAME',
  'ERR_WEFT_INVALID_ARG',
  'ERR_WEFT_INVOCATION_ENDED',
]);

function isDeterministic(err: unknown): boolean {
  return err instanceof WeftError && DETERMINISTIC.has(err.code);
}

/** What a dead letter (and a failed request) carries: weft's own errors as they are, a user's wrapped. */
function asWeftError(err: unknown): unknown {
  if (err instanceof WeftError) return err;
  const message = err instanceof Error ? err.message : serializeError(err).message;
  return new WeftError('ERR_WEFT_USER_CODE', message, { cause: err });
}
