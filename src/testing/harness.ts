/**
 * The test harness: one {@link Dispatcher} — the same invocation core every shard runs — driven
 * in-process, with instances in a Map, every address routed to itself (one shard), and a
 * {@link VirtualClock}. No threads, no rings, no LMDB, no checkpoints: what a shard adds around
 * the dispatcher is transport and durability, not semantics.
 *
 * "Runs until quiescent": every call that feeds the dispatcher (`send`, `request`, `advance`)
 * runs invocations until nothing is runnable and no async invocation is awaiting. Virtual time
 * stands still meanwhile, so what falls due later (delayed messages, retries, TTL expiry) happens
 * only when `advance` moves the clock, one due time after another.
 */
import { checkIdempotencyKey, IDEMPOTENCY_PURGE_CALLER } from '../core/idempotency.js';
import { checkTarget, encodeMessage } from '../module/validation.js';
import { resolve as resolvePath } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseAddressKey, validateAddress, type Address } from '../core/address.js';
import { WeftError, deserializeError, describe, serializeError } from '../core/errors.js';
import { isModuleDefinition, type ModuleDefinition, type ValueType } from '../module/definition.js';
import { DEFAULTS } from '../contract/options.js';
import { keyGroupOf } from '../contract/partitioner.js';
import { Dispatcher, type DispatcherOptions, type Outbox, type Routing } from '../shard/dispatcher.js';
import { E_CALLER_TYPE, E_PAYLOAD, E_TARGET_ID, E_TARGET_TYPE, E_TYPENAME, envelope, type Envelope } from '../contract/envelope.js';
import { DEAD_LETTER_EGRESS, compileModule, loadModule, type RuntimeModule } from '../module/runtime.js';
import { computeTask } from '../module/compute-task.js';
import type { Slot } from '../state/instance.js';
import { isLive } from '../core/ttl.js';
import { compareIds, resolveInstancesArgs, type InstanceEntry, type InstancesOptions } from '../state/listing.js';
import { TimerService } from '../timers/timer-service.js';
import type { RequestOptions, SendOptions } from '../host/weft.js';
import { decodeEgressValue, decodeOrBytes, decodeValue, type DeadLetter } from '../host/decode.js';
import type { EgressRecord } from '../host/egress.js';
import { MemoryInstanceStore } from './memory-store.js';
import { resolveHarnessOptions, type ResolvedHarnessOptions, type TestHarnessOptions } from './options.js';
import { VirtualClock } from './virtual-clock.js';

/** A delayed message that has not fired (nor been cancelled), from {@link TestHarness.pendingTimers}. */
export interface PendingTimer {
  /** When it fires: virtual ms since the Unix epoch. */
  readonly due: number;
  readonly target: Address;
  /** The address whose `ctx.sendAfter` scheduled it (cancellation tokens are scoped to it). */
  readonly sender: Address;
  readonly typename: string;
  /** The message value, decoded when the module knows its type (else the bytes). */
  readonly value: unknown;
  readonly cancellationToken: string | null;
}

/**
 * A function module running in-process on a virtual clock. Same invocation semantics as the
 * engine: one invocation per address at a time in arrival order (also across awaits), effects
 * applied together when `fn` completes and discarded when it throws, retries with backoff, then
 * the `weft/dead-letters` egress. Errors are {@link WeftError}s with the engine's codes and, where
 * the two overlap, the engine's messages (so they start with `weft.send`, `weft.query`, ...).
 *
 * What differs, because there is nothing to wait for: `send` resolves when the message and
 * everything it caused have run (not at a checkpoint commit); egress records are readable at once;
 * nothing is persisted.
 */
export interface TestHarness {
  /**
   * Sends `value` to the function at `to` (validated like `weft.send`, same errors) and resolves
   * once it and everything it caused — follow-up messages, replies to calling functions, async
   * invocations — has run, i.e. when the harness is quiescent. Delayed messages and retries wait
   * for {@link advance}.
   */
  send(to: Address, value: unknown, opts?: SendOptions): Promise<void>;
  /**
   * Sends `value` with a reply expected, runs until quiescent, and resolves with the value the
   * target passed to `ctx.reply`. Rejects with the function's error when the message was
   * dead-lettered (as the engine does), and with ERR_WEFT_TIMEOUT when the harness is quiescent
   * and no reply came (the function did not reply, or its message is waiting for a retry that only
   * `advance()` can run): with virtual time, waiting longer could not change the outcome.
   * `opts.timeoutMs` and `opts.durable` are validated as the engine does and have no other effect.
   */
  request(to: Address, value: unknown, opts?: RequestOptions): Promise<unknown>;
  /**
   * Moves virtual time forward by `ms` (a finite number >= 0). Delayed messages and retries fire
   * at their due times, in due order (ties in scheduling order), and the harness runs to
   * quiescence after each due time before moving on, so a message scheduled by a fired one fires
   * in the same call if it falls due within the window. State TTLs expire by the clock alone.
   */
  advance(ms: number): Promise<void>;
  /** The virtual time: ms since the Unix epoch. */
  now(): number;
  /** Resolves when the harness is quiescent (like `weft.idle()`: pending delayed messages excepted). */
  idle(): Promise<void>;
  /**
   * The instance's state as `weft.query` gives it: a plain object of its declared specs, expired
   * values omitted, `undefined` when nothing is left. Reads the current state; call it after
   * awaiting `send`/`request`/`advance`.
   */
  query(address: Address): Promise<Record<string, unknown> | undefined>;
  /**
   * The instances of function type `type`, as `weft.instances` lists them: ids (or `{ id, state }`
   * with `withState`) in the same order, with the same options and errors. The harness has no
   * checkpoints: the listing shows the state when iteration starts (its first `next()`), every
   * completed invocation included.
   */
  instances(type: string, options: InstancesOptions & { withState: true }): AsyncIterableIterator<InstanceEntry>;
  instances(type: string, options?: InstancesOptions & { withState?: false }): AsyncIterableIterator<string>;
  instances(type: string, options?: InstancesOptions): AsyncIterableIterator<string | InstanceEntry>;
  /**
   * Every record of egress `name` so far, in the order they were recorded, decoded like the
   * engine's egress iterator yields them (fresh objects on every call).
   * `weft/dead-letters` yields {@link DeadLetter}s.
   */
  egress(name: string): unknown[];
  /**
   * The same records in the shape `weft.egress(name)` yields them: `{ id, value, ack() }`, ids
   * unique per egress in record order (`"0.<index>"`: the harness has no checkpoint epochs), so
   * code that consumes engine records can be tested as is. Nothing is persisted: `ack()` resolves
   * at once and changes nothing.
   */
  egressRecords(name: string): EgressRecord[];
  /** The records of `weft/dead-letters` so far. */
  deadLetters(): DeadLetter[];
  /** The delayed messages not yet fired nor cancelled, in firing order. */
  pendingTimers(): PendingTimer[];
  /**
   * Context methods called after their invocation ended (a forgotten `await`), in call order:
   * the engine reports them on `weft:late-context` and counts them in metrics `lateContextCalls`.
   * Such a call has no effect; made while another function runs synchronously, it also throws
   * ERR_WEFT_INVOCATION_ENDED there.
   */
  lateContextCalls(): Array<{ address: Address; method: string }>;
  /**
   * Runs to quiescence (giving up after `settleTimeoutMs`), then refuses further
   * `send`/`request`/`advance`/`query` with ERR_WEFT_CLOSED. `egress`, `deadLetters`,
   * `pendingTimers` and `now` stay readable. Calling it again returns the same promise.
   */
  close(): Promise<void>;
}

/** Invocations per batch between two looks at the clock and the due timers. */
const RUN_BATCH = 1024;

interface PendingRequest {
  reply: [typename: string, payload: Uint8Array] | null;
  /** The request's message was dead-lettered: the function's error. */
  error: Error | null;
}

class Harness implements TestHarness {
  readonly #opts: ResolvedHarnessOptions;
  readonly #module: RuntimeModule;
  readonly #clock: VirtualClock;
  readonly #store = new MemoryInstanceStore();
  readonly #timers = new TimerService();
  readonly #dispatcher: Dispatcher;
  readonly #egress = new Map<string, Array<[typename: string, payload: Uint8Array]>>();
  readonly #requests = new Map<number, PendingRequest>();
  #requestSeq = 0;
  /** The loop running invocations, shared by every caller waiting for quiescence. */
  #running: Promise<void> | undefined;
  /** Wakes the loop when an async invocation settles. */
  #onSettled: (() => void) | null = null;
  /** `advance` calls run one after another, each from the time the previous one reached. */
  #advancing: Promise<void> = Promise.resolve();
  #closing = false;
  #closePromise: Promise<void> | undefined;
  #computeTasks: Promise<Record<string, unknown>> | undefined;
  readonly #lateCalls: Array<{ address: Address; method: string }> = [];

  constructor(module: RuntimeModule, opts: ResolvedHarnessOptions) {
    this.#opts = opts;
    this.#module = module;
    this.#clock = new VirtualClock(opts.startTime);
    const keyGroups = DEFAULTS.keyGroups;
    const routing: Routing = {
      keyGroup: (type, id) => keyGroupOf(type, id, keyGroups),
      // One shard: every address is local, so every send goes through the dispatcher's own queue.
      shardOf: () => 0,
    };
    const outbox: Outbox = {
      toShard(shard) {
        throw new WeftError('ERR_WEFT_INTERNAL', `test harness: a message was routed to shard ${shard}, but the harness has one shard`);
      },
      reply: (requestId, typename, payload) => {
        const req = this.#requests.get(requestId);
        // A copy: the payload of a one-byte reply is a shared array (Effects.replyPayload), and a
        // reply of a type the module does not declare reaches the caller as these very bytes.
        if (req !== undefined && req.reply === null) req.reply = [typename, payload.slice()];
      },
      replyError: (requestId, error) => {
        const req = this.#requests.get(requestId);
        if (req !== undefined && req.reply === null) req.error = deserializeError(error);
      },
      egress: (name, typename, payload) => {
        let list = this.#egress.get(name);
        if (list === undefined) this.#egress.set(name, (list = []));
        list.push([typename, payload]);
      },
    };
    const dispatcherOpts: DispatcherOptions = {
      settings: opts,
      shard: 0,
      ...(module.definition.compute === undefined ? {} : { compute: (task: string, input: unknown) => this.#compute(task, input) }),
    };
    this.#dispatcher = new Dispatcher(module, dispatcherOpts, this.#store, outbox, routing, this.#timers, this.#clock);
    this.#dispatcher.onLateCall = (type, id, method) => {
      this.#lateCalls.push({ address: { type, id }, method });
    };
    this.#dispatcher.onAsyncSettled = () => {
      const wake = this.#onSettled;
      this.#onSettled = null;
      wake?.();
    };
  }

  // ------------------------------------------------------------------------------------------
  // Ingress: validated exactly like the engine's (src/host/weft.ts), with its messages
  // ------------------------------------------------------------------------------------------

  /** `owner` is `weft` for the methods the engine has too (same message), `harness` for the others. */
  #checkOpen(what: string, owner = 'weft'): void {
    if (this.#closing) throw new WeftError('ERR_WEFT_CLOSED', `${owner}.${what}() called after close()`);
  }

  #target(to: unknown, what: string): Address {
    return checkTarget(this.#module, to, what);
  }

  #encode(value: unknown, type: ValueType<unknown> | undefined, what: string): [string, Uint8Array] {
    return encodeMessage(this.#module, value, type, what, this.#opts.maxMessageBytes);
  }

  send(to: Address, value: unknown, opts?: SendOptions): Promise<void> {
    try {
      this.#checkOpen('send');
      const a = this.#target(to, 'weft.send');
      const [typename, payload] = this.#encode(value, opts?.type, 'weft.send');
      const key = opts === undefined ? undefined : checkIdempotencyKey(opts.idempotencyKey, 'weft.send');
      this.#dispatcher.enqueue(envelope(a.type, a.id, null, null, typename, payload, 0, 0, key));
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#settle();
  }

  request(to: Address, value: unknown, opts?: RequestOptions): Promise<unknown> {
    let env: Envelope;
    let requestId: number;
    let pending: PendingRequest;
    try {
      this.#checkOpen('request');
      const a = this.#target(to, 'weft.request');
      const timeoutMs = opts?.timeoutMs ?? DEFAULTS.requestTimeoutMs;
      if (typeof timeoutMs !== 'number' || !Number.isFinite(timeoutMs) || timeoutMs <= 0) {
        throw new WeftError('ERR_WEFT_INVALID_ARG', `weft.request timeoutMs must be a positive number of ms (got ${describe(timeoutMs)})`);
      }
      const durable = opts?.durable ?? false;
      if (typeof durable !== 'boolean') throw new WeftError('ERR_WEFT_INVALID_ARG', `weft.request durable must be a boolean (got ${describe(durable)})`);
      const [typename, payload] = this.#encode(value, opts?.type, 'weft.request');
      const key = opts === undefined ? undefined : checkIdempotencyKey(opts.idempotencyKey, 'weft.request');
      requestId = ++this.#requestSeq;
      pending = { reply: null, error: null };
      this.#requests.set(requestId, pending);
      env = envelope(a.type, a.id, null, null, typename, payload, requestId, 0, key);
      this.#dispatcher.enqueue(env);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#settle().then(
      () => {
        this.#requests.delete(requestId);
        if (pending.reply !== null) return decodeValue(this.#module, pending.reply[0], pending.reply[1]);
        throw pending.error ?? this.#noReply(env);
      },
      (err: unknown) => {
        this.#requests.delete(requestId);
        throw err;
      },
    );
  }

  #noReply(env: Envelope): WeftError {
    const type = env[E_TARGET_TYPE];
    const id = env[E_TARGET_ID];
    const mb = this.#dispatcher.mailbox(type, id);
    const waiting = mb !== undefined && mb.queue.includes(env);
    if (!waiting) return new WeftError('ERR_WEFT_NO_REPLY', `weft.request to ${type}/${id} got no reply: the function did not call ctx.reply`);
    return new WeftError('ERR_WEFT_TIMEOUT', `weft.request to ${type}/${id} got no reply: the test harness ran until quiescent and its message failed and is waiting for a retry, which only advance() can run`);
  }

  // ------------------------------------------------------------------------------------------
  // Running to quiescence, and virtual time
  // ------------------------------------------------------------------------------------------

  /**
   * Resolves when nothing is runnable, nothing is due at the current virtual time and no async
   * invocation is awaiting. One loop runs at a time and every caller shares it; a caller whose
   * message arrived after the loop's last look (between its final check and the moment its
   * promise settles) goes round again.
   */
  async #settle(): Promise<void> {
    const d = this.#dispatcher;
    do {
      this.#running ??= this.#runLoop().finally(() => {
        this.#running = undefined;
      });
      await this.#running;
    } while (d.hasRunnable || d.parked > 0 || (this.#timers.nextDue() ?? Number.POSITIVE_INFINITY) <= this.#clock.now());
  }

  async #runLoop(): Promise<void> {
    const d = this.#dispatcher;
    const limit = this.#opts.settleTimeoutMs;
    const deadline = performance.now() + limit;
    for (;;) {
      // Due timers and retries first: they were scheduled before anything now runnable was sent.
      d.fireDue(this.#clock.now());
      if (d.hasRunnable) {
        d.run(RUN_BATCH);
        // A message cycle that never ends would otherwise spin here for ever, synchronously.
        if (performance.now() > deadline) throw this.#notQuiescent(limit);
        continue;
      }
      if (d.parked === 0) return;
      await this.#nextSettled(deadline, limit);
    }
  }

  #nextSettled(deadline: number, limit: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#onSettled = null;
        reject(this.#notQuiescent(limit));
      }, Math.max(0, deadline - performance.now()));
      this.#onSettled = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  #notQuiescent(limit: number): WeftError {
    const d = this.#dispatcher;
    const busy: string[] = [];
    for (const mb of d.allMailboxes()) {
      if (busy.length === 5) break;
      if (mb.running || mb.size > 0) busy.push(`${mb.type}/${mb.id}`);
    }
    return new WeftError(
      'ERR_WEFT_TIMEOUT',
      `the test harness did not become quiescent within ${limit} ms of real time (settleTimeoutMs): ` +
        `${d.parked} async invocation(s) still awaiting, ${d.queuedMessages} message(s) queued (at ${busy.join(', ')}); ` +
        'an awaited promise that never settles, or a message cycle that never ends?',
    );
  }

  advance(ms: number): Promise<void> {
    try {
      this.#checkOpen('advance', 'harness');
      if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) {
        throw new WeftError('ERR_WEFT_INVALID_ARG', `harness.advance ms must be a finite number >= 0 (got ${describe(ms)})`);
      }
    } catch (err) {
      return Promise.reject(err);
    }
    const run = this.#advancing.then(() => this.#advanceBy(ms));
    this.#advancing = run.catch(() => {});
    return run;
  }

  async #advanceBy(ms: number): Promise<void> {
    await this.#settle();
    const target = this.#clock.now() + ms;
    for (;;) {
      // Nothing is due at the current time after settling: this only reports the next due time.
      const next = this.#dispatcher.fireDue(this.#clock.now());
      if (next === undefined || next > target) break;
      this.#clock.set(next);
      await this.#settle();
    }
    this.#clock.set(target);
  }

  now(): number {
    return this.#clock.now();
  }

  idle(): Promise<void> {
    return this.#settle();
  }

  // ------------------------------------------------------------------------------------------
  // Observation
  // ------------------------------------------------------------------------------------------

  query(address: Address): Promise<Record<string, unknown> | undefined> {
    try {
      this.#checkOpen('query');
      validateAddress(address, 'weft.query address');
      const fn = this.#module.functions.get(address.type);
      if (fn === undefined) {
        throw new WeftError('ERR_WEFT_UNKNOWN_FUNCTION', `weft.query: no function of type ${describe(address.type)} is defined`);
      }
      const inst = this.#store.peek(`${address.type}\u0000${address.id}`);
      const now = this.#clock.now();
      const out: Record<string, unknown> = {};
      if (inst !== undefined) {
        for (const [name, slot] of inst.slots) {
          const spec = fn.specByName.get(name);
          if (!isLive(spec, slot.writtenAt, inst.calledAt, now)) continue;
          out[name] = spec.type.decode(slot.bytes);
        }
      }
      return Promise.resolve(Object.keys(out).length === 0 ? undefined : out);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  instances(type: string, options: InstancesOptions & { withState: true }): AsyncIterableIterator<InstanceEntry>;
  instances(type: string, options?: InstancesOptions & { withState?: false }): AsyncIterableIterator<string>;
  instances(type: string, options?: InstancesOptions): AsyncIterableIterator<string | InstanceEntry>;
  instances(type: string, options?: InstancesOptions): AsyncIterableIterator<string | InstanceEntry> {
    this.#checkOpen('instances');
    const what = 'weft.instances';
    const opts = resolveInstancesArgs(this.#module, type, options, what);
    if (!this.#module.functions.has(type)) throw new WeftError('ERR_WEFT_UNKNOWN_FUNCTION', `${what}: no function of type ${describe(type)} is defined`);
    return this.#list(type, opts.prefix, opts.after, opts.limit, opts.withState);
  }

  async *#list(type: string, prefix: string, after: string | undefined, limit: number, withState: boolean): AsyncGenerator<string | InstanceEntry, void, undefined> {
    const fn = this.#module.functions.get(type)!;
    const now = this.#clock.now();
    // Taken at the first next(), all at once: later invocations do not change what this lists.
    const live: Array<{ id: string; slots: Array<[string, Slot]>; calledAt: number }> = [];
    for (const inst of this.#store.all()) {
      if (inst.type !== type || !inst.id.startsWith(prefix) || (after !== undefined && compareIds(inst.id, after) <= 0)) continue;
      const slots = [...inst.slots].filter(([name, slot]) => isLive(fn.specByName.get(name), slot.writtenAt, inst.calledAt, now));
      if (slots.length > 0) live.push({ id: inst.id, slots, calledAt: inst.calledAt });
    }
    live.sort((a, b) => compareIds(a.id, b.id));
    if (live.length > limit) live.length = limit;
    const entries = live.map(({ id, slots }) => {
      const state: Record<string, unknown> = {};
      if (withState) for (const [name, slot] of slots) state[name] = fn.specByName.get(name)!.type.decode(slot.bytes);
      return { id, state };
    });
    for (const e of entries) yield withState ? e : e.id;
  }

  egress(name: string): unknown[] {
    if (typeof name !== 'string' || !this.#module.egresses.has(name)) {
      throw new WeftError('ERR_WEFT_UNKNOWN_EGRESS', `weft.egress: egress ${describe(name)} is not declared in the module's egresses`);
    }
    const records = this.#egress.get(name) ?? [];
    return records.map(([typename, payload]) => decodeEgressValue(this.#module, name, typename, payload));
  }

  egressRecords(name: string): EgressRecord[] {
    return this.egress(name).map((value, i) => ({ id: `0.${i}`, value, ack: () => Promise.resolve() }));
  }

  deadLetters(): DeadLetter[] {
    return this.egress(DEAD_LETTER_EGRESS) as DeadLetter[];
  }

  lateContextCalls(): Array<{ address: Address; method: string }> {
    return this.#lateCalls.map((c) => ({ address: { ...c.address }, method: c.method }));
  }

  pendingTimers(): PendingTimer[] {
    return this.#timers
      .pending()
      // The purges of idempotency keys (src/core/idempotency.ts) are the harness's own, not the module's.
      .filter((t) => t.env[E_CALLER_TYPE] !== IDEMPOTENCY_PURGE_CALLER)
      .sort((a, b) => a.due - b.due || a.seq - b.seq)
      .map((t) => ({
        due: t.due,
        target: { type: t.env[E_TARGET_TYPE], id: t.env[E_TARGET_ID] },
        sender: parseAddressKey(t.senderKey),
        typename: t.env[E_TYPENAME],
        value: decodeOrBytes(this.#module, t.env[E_TYPENAME], t.env[E_PAYLOAD]),
        cancellationToken: t.token,
      }));
  }

  close(): Promise<void> {
    this.#closePromise ??= this.#close();
    return this.#closePromise;
  }

  async #close(): Promise<void> {
    this.#closing = true;
    await this.#advancing;
    try {
      await this.#settle();
    } catch {
      // Not quiescent within settleTimeoutMs (the caller whose call timed out has already seen
      // why). Closing goes ahead, as the engine's close() does after its closeTimeoutMs.
    }
  }

  // ------------------------------------------------------------------------------------------
  // Compute: in-process, since the harness has no threads
  // ------------------------------------------------------------------------------------------

  async #compute(task: string, input: unknown): Promise<unknown> {
    const url = (this.#module.definition.compute as URL).href;
    try {
      this.#computeTasks ??= import(url) as Promise<Record<string, unknown>>;
      const f = computeTask(await this.#computeTasks, task);
      // A pool thread receives a copy of the input and sends back a copy of the result: here too
      // the task must share no objects with the invocation.
      const result: unknown = await f(structuredClone(input));
      return structuredClone(result);
    } catch (err) {
      // The engine's errors cross a thread (src/compute/task-worker.ts): rebuilt from plain data,
      // they keep name, message, code and stack but not their class. So do they here.
      throw deserializeError(serializeError(err));
    }
  }
}

function moduleSource(m: unknown): string {
  if (m instanceof URL) {
    if (m.protocol !== 'file:') throw new WeftError('ERR_WEFT_INVALID_ARG', `createTestHarness module must be a file: URL or a path (got ${describe(m.href)})`);
    return m.href;
  }
  if (typeof m === 'string' && m.length > 0) return m.startsWith('file:') ? m : pathToFileURL(resolvePath(m)).href;
  throw new WeftError(
    'ERR_WEFT_INVALID_ARG',
    `createTestHarness module must be a module definition (the value defineModule returns), a file: URL or a path (got ${describe(m)})`,
  );
}

/**
 * Runs a function module in-process on a virtual clock: no threads, no data dir. Pass the
 * module's definition (the value of `defineModule`) or the URL or path of its file (loaded like
 * `Weft.start` loads it).
 *
 * @example
 * ```ts
 * import { createTestHarness } from 'weft/testing';
 * import bank from './bank.js';
 *
 * const h = await createTestHarness(bank, { retryBackoffMs: 100 });
 * await h.send({ type: 'bank/account', id: 'ada' }, { op: 'deposit', amount: 5 });
 * expect(await h.request({ type: 'bank/account', id: 'ada' }, { op: 'get' })).toBe(5);
 * await h.send({ type: 'bank/account', id: 'ada' }, { op: 'schedule', delayMs: 1000, amount: 1 });
 * await h.advance(1000);                       // the delayed deposit fires
 * expect(await h.query({ type: 'bank/account', id: 'ada' })).toEqual({ balance: 6 });
 * await h.close();
 * ```
 */
export async function createTestHarness(module: ModuleDefinition | URL | string, options?: TestHarnessOptions): Promise<TestHarness> {
  const opts = resolveHarnessOptions(options);
  const definition = isModuleDefinition(module) ? module : await loadModule(moduleSource(module));
  return new Harness(compileModule(definition), opts);
}
