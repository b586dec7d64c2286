/**
 * Serving a weft function module to an Apache Flink StateFun cluster over StateFun's HTTP
 * request-reply protocol: the cluster POSTs a `ToFunction` (one address, its state, a batch of
 * messages) and gets back a `FromFunction` (state mutations and the messages, delayed messages
 * and egress records the batch produced).
 *
 * The batch runs on the SAME invocation core as the engine and the test harness (a
 * {@link Dispatcher}), wired for one request:
 *
 * ```
 *  ToFunction ──► seed one Instance from the request's state ──► Dispatcher (maxAttempts 1)
 *                                                                 │ invocations in order, each
 *                                                                 │ sees the previous one's writes
 *   Outbox.toShard ──► outgoing messages (every send and reply leaves: StateFun routes them)
 *   TimerService   ──► delayed invocations and cancellations, in call order
 *   Outbox.egress  ──► egress messages;  a dead letter ──► the whole batch fails (HTTP 500)
 *  FromFunction ◄── mutations = specs whose slot object changed (written or deleted)
 * ```
 *
 * Why a dispatcher per request: everything a batch touches (its instance, timers, outbox) is
 * private to it, so concurrent requests need no locking and an abandoned batch (timed out) cannot
 * leak effects into another.
 *
 * Time: a batch runs at one instant (the clock is frozen at its arrival). The StateFun runtime,
 * not this endpoint, owns TTLs: it expires values and simply stops sending them, so values seeded
 * here must never expire locally, which a frozen clock guarantees (a TTL needs time to pass).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { addressKey, isValidTypename } from '../core/address.js';
import { WeftError, deserializeError, describe, type SerializedError } from '../core/errors.js';
import type { ModuleDefinition } from '../module/definition.js';
import { DEFAULTS } from '../contract/options.js';
import { Dispatcher, type DispatcherOptions, type Outbox, type Routing } from '../shard/dispatcher.js';
import { E_PAYLOAD, E_TARGET_ID, E_TARGET_TYPE, E_TYPENAME, envelope, type Envelope } from '../contract/envelope.js';
import { compileModule, type CompiledFunction, type RuntimeModule } from '../module/runtime.js';
import { computeTask } from '../module/compute-task.js';
import { Instance, Slot, type InstanceStore } from '../state/instance.js';
import { TimerService, type Clock, type Timer } from '../timers/timer-service.js';
import {
  addressTypename,
  decodeToFunction,
  encodeFromFunction,
  splitStatefunTypename,
  type DelayedInvocation,
  type InvocationBatchRequest,
  type InvocationResponse,
  type PbAddress,
  type PersistedValueMutation,
  type PersistedValueSpec,
} from './protocol/proto.js';

/** Options of {@link statefunHandler} and {@link createStatefunInvoker}. */
export interface StatefunHandlerOptions {
  /**
   * Largest request body accepted, in bytes; a larger one is answered 500 without being buffered.
   * Default 32 MiB (33_554_432): the largest request the runtime's async transport sends
   * (payload_max_bytes), which carries a batch of up to 1000 messages (maxNumBatchRequests).
   */
  readonly maxBodyBytes?: number;
  /**
   * Bytes of request bodies this handler holds at once, over all requests: bodies still arriving
   * and bodies of batches still running. A request whose body would take the total past it is
   * answered 503 with `Retry-After: 1` (StateFun retries it) and its bytes are dropped, so many
   * slow or stalled clients cannot make the server buffer without bound. At least
   * `maxBodyBytes`, so that a lone request always fits. Default 256 MiB (268_435_456), or
   * `maxBodyBytes` if that is larger.
   */
  readonly maxBufferedBytes?: number;
  /** Largest encoded message value a function may send, in bytes (as the engine's option). Default 512 KiB. */
  readonly maxMessageBytes?: number;
  /** Largest encoded state value a function may write, in bytes (as the engine's option). Default 1 MiB. */
  readonly maxStateValueBytes?: number;
  /**
   * Milliseconds a batch may run (async functions awaiting included) before it is answered 500.
   * The StateFun runtime has its own call timeout and retries the batch; this bound only keeps an
   * invocation whose promise never settles from holding the request forever. Default 60_000.
   */
  readonly batchTimeoutMs?: number;
  /**
   * Runs `ctx.compute(task, input)`. Default: the module's `compute` file, imported once and
   * called in-process on the event loop (there is no compute pool behind this endpoint); a
   * module without a compute file gets ERR_WEFT_COMPUTE.
   */
  readonly compute?: (task: string, input: unknown) => Promise<unknown>;
  /**
   * Called with every request that was answered with an error status (4xx or 5xx), after the
   * answer is sent: `error` is a WeftError (its `cause` holds what a function threw, stack
   * included), `status` the HTTP status. The response body itself never carries a stack.
   * Default: nothing (the endpoint does not log).
   */
  readonly onError?: (error: WeftError, status: number) => void;
}

/** The defaults of {@link StatefunHandlerOptions}. */
export const STATEFUN_HANDLER_DEFAULTS = Object.freeze({
  maxBodyBytes: 32 * 1024 * 1024,
  maxBufferedBytes: 256 * 1024 * 1024,
  maxMessageBytes: DEFAULTS.maxMessageBytes,
  maxStateValueBytes: DEFAULTS.maxStateValueBytes,
  batchTimeoutMs: 60_000,
});

/** Response bodies of error answers are cut to this many characters. */
const MAX_ERROR_TEXT = 1024;
/**
 * After refusing an oversized body, at most this many more body bytes are read and dropped before the connection is
 * cut. Draining a little lets a client that already sent its (slightly) oversized body read the
 * answer; closing a socket with unread input would make the kernel send a reset instead.
 */
const MAX_DISCARD_BYTES = 1024 * 1024;

/** A StateFun endpoint's work without HTTP: request body in, response body out. */
export type StatefunInvoker = (body: Uint8Array) => Promise<Uint8Array>;

function positiveInt(value: unknown, name: string, dflt: number): number {
  if (value === undefined) return dflt;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw new WeftError('ERR_WEFT_INVALID_OPTION', `statefunHandler options.${name} must be a positive integer (got ${describe(value)})`);
  }
  return value;
}

interface Resolved {
  readonly maxBodyBytes: number;
  readonly maxBufferedBytes: number;
  readonly maxMessageBytes: number;
  readonly maxStateValueBytes: number;
  readonly batchTimeoutMs: number;
  readonly compute: ((task: string, input: unknown) => Promise<unknown>) | undefined;
  readonly onError: ((error: WeftError, status: number) => void) | undefined;
}

function resolveOptions(options: StatefunHandlerOptions | undefined): Resolved {
  if (options !== undefined && (typeof options !== 'object' || options === null)) {
    throw new WeftError('ERR_WEFT_INVALID_OPTION', `statefunHandler options must be an object (got ${describe(options)})`);
  }
  const o = options ?? {};
  const known = new Set(['maxBodyBytes', 'maxBufferedBytes', 'maxMessageBytes', 'maxStateValueBytes', 'batchTimeoutMs', 'compute', 'onError']);
  for (const key of Object.keys(o)) {
    if (!known.has(key)) throw new WeftError('ERR_WEFT_INVALID_OPTION', `statefunHandler options has an unknown key ${describe(key)}`);
  }
  for (const key of ['compute', 'onError'] as const) {
    if (o[key] !== undefined && typeof o[key] !== 'function') {
      throw new WeftError('ERR_WEFT_INVALID_OPTION', `statefunHandler options.${key} must be a function (got ${describe(o[key])})`);
    }
  }
  const maxBodyBytes = positiveInt(o.maxBodyBytes, 'maxBodyBytes', STATEFUN_HANDLER_DEFAULTS.maxBodyBytes);
  const maxBufferedBytes = positiveInt(o.maxBufferedBytes, 'maxBufferedBytes', Math.max(STATEFUN_HANDLER_DEFAULTS.maxBufferedBytes, maxBodyBytes));
  if (maxBufferedBytes < maxBodyBytes) {
    throw new WeftError('ERR_WEFT_INVALID_OPTION', `statefunHandler options.maxBufferedBytes (${maxBufferedBytes}) must be at least maxBodyBytes (${maxBodyBytes}): a lone request must fit`);
  }
  return {
    maxBodyBytes,
    maxBufferedBytes,
    maxMessageBytes: positiveInt(o.maxMessageBytes, 'maxMessageBytes', STATEFUN_HANDLER_DEFAULTS.maxMessageBytes),
    maxStateValueBytes: positiveInt(o.maxStateValueBytes, 'maxStateValueBytes', STATEFUN_HANDLER_DEFAULTS.maxStateValueBytes),
    batchTimeoutMs: positiveInt(o.batchTimeoutMs, 'batchTimeoutMs', STATEFUN_HANDLER_DEFAULTS.batchTimeoutMs),
    compute: o.compute,
    onError: o.onError,
  };
}

/** `ctx.compute` behind the endpoint: the module's compute file, in-process. */
function inProcessCompute(url: URL): (task: string, input: unknown) => Promise<unknown> {
  let tasks: Promise<Record<string, unknown>> | undefined;
  return async (task, input) => {
    tasks ??= import(url.href).then(
      (ns: Record<string, unknown>) => ns,
      (cause: unknown) => {
        // Forget the failure so a later call tries again (the file may be fixed and reloaded).
        tasks = undefined;
        throw new WeftError('ERR_WEFT_COMPUTE', `compute file ${describe(url.href)} failed to load: ${(cause as Error)?.message ?? String(cause)}`, { cause });
      },
    );
    const fn = computeTask(await tasks, task);
    try {
      return await fn(input);
    } catch (cause) {
      throw new WeftError('ERR_WEFT_COMPUTE', `compute task ${describe(task)} failed: ${(cause as Error)?.message ?? String(cause)}`, { cause });
    }
  };
}

/** One captured `ctx.sendAfter` (env set) or `ctx.cancelDelayed` (env null), in call order. */
interface TimerOp {
  readonly delayMs: number;
  readonly env: Envelope | null;
  readonly token: string | null;
}

/**
 * The dispatcher schedules and cancels through a TimerService; this one also records each call
 * as a delayed invocation for the response. Tokens still go through the base class so a token
 * reused within one batch is refused exactly as in the engine (tokens pending from EARLIER
 * batches live in the StateFun runtime, which this endpoint cannot see).
 */
class CapturingTimers extends TimerService {
  readonly ops: TimerOp[] = [];
  readonly #now: number;

  constructor(now: number) {
    super();
    this.#now = now;
  }

  override schedule(due: number, kg: number, env: Envelope, senderKey: string, token: string | null): Timer {
    const timer = super.schedule(due, kg, env, senderKey, token);
    this.ops.push({ delayMs: due - this.#now, env, token });
    return timer;
  }

  override cancel(senderKey: string, token: string): boolean {
    // StateFun is told about every cancellation: the message may have been sent in an earlier
    // batch, which only the runtime knows.
    super.cancel(senderKey, token);
    this.ops.push({ delayMs: 0, env: null, token });
    return true;
  }
}

/** Every address is "elsewhere": each send and reply becomes an outgoing message. */
const LOCAL_SHARD = 0;
const ELSEWHERE = 1;
const routing: Routing = { keyGroup: () => 0, shardOf: () => ELSEWHERE };

/**
 * The protocol address of a message target. A caller's address goes back as it came (`callers`,
 * by its joined typename): the runtime's embedded functions may have a `/` inside their namespace
 * or type, which joining and splitting again cannot restore. Other targets are typenames a
 * function named, read as the runtime reads them (exactly one `/`).
 */
function pbAddress(typename: string, id: string, callers: ReadonlyMap<string, PbAddress>): PbAddress {
  const caller = callers.get(typename);
  if (caller !== undefined) return { namespace: caller.namespace, type: caller.type, id };
  const { namespace, name } = splitStatefunTypename(typename);
  return { namespace, type: name, id };
}

function errorText(err: unknown): string {
  if (err instanceof Error) return `${err.name === 'Error' ? '' : `${err.name}: `}${err.message}`;
  return describe(err);
}

/**
 * The endpoint's core, shared by {@link statefunHandler} and {@link createStatefunInvoker}. Every
 * error it throws is answered 500 (see {@link FAILURE_STATUS}); its code tells what went wrong.
 */
class StatefunEndpoint {
  readonly #runtime: RuntimeModule;
  readonly #opts: Resolved;
  readonly #compute: ((task: string, input: unknown) => Promise<unknown>) | undefined;

  constructor(module: ModuleDefinition, opts: Resolved) {
    // Functions may send to any well-formed typename: the StateFun cluster routes those messages
    // (to this endpoint, another SDK's endpoint, or an embedded function).
    this.#runtime = compileModule(module, [isValidTypename]);
    this.#opts = opts;
    this.#compute = opts.compute ?? (module.compute === undefined ? undefined : inProcessCompute(module.compute));
  }

  get maxBodyBytes(): number {
    return this.#opts.maxBodyBytes;
  }

  get maxBufferedBytes(): number {
    return this.#opts.maxBufferedBytes;
  }

  /** Bytes of request bodies held now, over all requests (see `maxBufferedBytes`). */
  buffered = 0;

  get onError(): ((error: WeftError, status: number) => void) | undefined {
    return this.#opts.onError;
  }

  async invoke(body: Uint8Array): Promise<Uint8Array> {
    const { invocation: batch } = decodeToFunction(body);
    if (batch === null) throw new WeftError('ERR_WEFT_PROTOCOL', 'ToFunction carries no invocation batch (field 100 is missing)');
    if (batch.target === null) throw new WeftError('ERR_WEFT_PROTOCOL', 'InvocationBatchRequest has no target address');
    const type = addressTypename(batch.target);
    const fn = this.#runtime.functions.get(type);
    if (fn === undefined) {
      const served = [...this.#runtime.functions.keys()].map((t) => JSON.stringify(t)).join(', ') || 'none';
      throw new WeftError('ERR_WEFT_UNKNOWN_FUNCTION', `no function of type ${describe(type)} is served by this endpoint (served: ${served})`);
    }
    batch.invocations.forEach((inv, i) => {
      if (inv.argument === null || !inv.argument.hasValue) {
        throw new WeftError('ERR_WEFT_PROTOCOL', `invocation ${i} of the batch for ${type} has no argument value`);
      }
    });
    const missing = missingSpecs(fn, batch);
    if (missing.length > 0) return encodeFromFunction({ kind: 'incomplete-invocation-context', missingValues: missing });
    const result = await this.#run(fn, type, batch);
    return encodeFromFunction({ kind: 'invocation-result', result });
  }

  async #run(fn: CompiledFunction, type: string, batch: InvocationBatchRequest): Promise<InvocationResponse> {
    const id = (batch.target as PbAddress).id;
    const now = Date.now();
    const clock: Clock = { now: () => now };
    const inst = new Instance(addressKey(type, id), type, id, 0);
    for (const pv of batch.state) {
      const spec = fn.specByName.get(pv.stateName);
      const v = pv.stateValue;
      // States the function no longer declares are ignored, as the SDKs do.
      if (spec === undefined || v === null || !v.hasValue) continue;
      if (v.typename !== '' && v.typename !== spec.type.typename) {
        throw new WeftError(
          'ERR_WEFT_TYPE_MISMATCH',
          `state ${describe(spec.name)} of ${type}/${id} arrived as ${describe(v.typename)}, but the function declares it as ${describe(spec.type.typename)}`,
        );
      }
      inst.slots.set(spec.name, new Slot(v.value, now, undefined, false));
    }
    // Slots are updated in place (Slot.assign), so "changed" is a different slot or a new version.
    const before = new Map([...inst.slots].map(([name, slot]) => [name, [slot, slot.version] as const]));

    const outgoing: Envelope[] = [];
    const egress: Array<[name: string, typename: string, payload: Uint8Array]> = [];
    const timers = new CapturingTimers(now);
    let failure: SerializedError | null = null;
    let deadLetters = 0;
    // Assigned right below; the outbox only runs once invocations do.
    let dispatcher: Dispatcher | undefined;
    const outbox: Outbox = {
      toShard: (_shard, env) => {
        outgoing.push(env);
      },
      reply: () => {
        throw new WeftError('ERR_WEFT_INTERNAL', 'statefun endpoint: a reply to a host request, but StateFun batches carry none');
      },
      egress: (name, typename, payload) => {
        // The dispatcher counts a dead letter just before recording it: that is how a failed
        // invocation is told apart from a function's own egress record.
        const d = (dispatcher as Dispatcher).counters.deadLetters;
        if (d !== deadLetters) {
          deadLetters = d;
          const record = this.#runtime.defaultType.decode(payload) as { error: SerializedError };
          failure = record.error;
          return;
        }
        egress.push([name, typename, payload]);
      },
    };
    const store: InstanceStore = { get: () => inst, markDirty: () => {}, willChange: () => {} };
    const dispatcherOpts: DispatcherOptions = {
      settings: {
        // One attempt: a failure fails the batch, and the StateFun runtime retries the whole batch.
        maxAttempts: 1,
        retryBackoffMs: 0,
        maxMessageBytes: this.#opts.maxMessageBytes,
        maxStateValueBytes: this.#opts.maxStateValueBytes,
        idempotencyRetentionMs: DEFAULTS.idempotencyRetentionMs,
      },
      shard: LOCAL_SHARD,
      ...(this.#compute === undefined ? {} : { compute: this.#compute }),
    };
    dispatcher = new Dispatcher(this.#runtime, dispatcherOpts, store, outbox, routing, timers, clock);
    const callers = new Map<string, PbAddress>();
    for (const inv of batch.invocations) {
      const caller = inv.caller;
      if (caller !== null && !callers.has(addressTypename(caller))) callers.set(addressTypename(caller), caller);
      const arg = inv.argument as { typename: string; value: Uint8Array };
      dispatcher.enqueue(envelope(type, id, caller === null ? null : addressTypename(caller), caller === null ? null : caller.id, arg.typename, arg.value), 0);
    }

    await this.#drive(dispatcher, batch.invocations.length, () => failure !== null, `${type}/${id}`);
    if (failure !== null) {
      let cause = deserializeError(failure);
      // A user's error, wrapped in the dead letter (ERR_WEFT_USER_CODE): name the original.
      if (cause instanceof WeftError && cause.code === 'ERR_WEFT_USER_CODE' && cause.cause instanceof Error) cause = cause.cause;
      throw new WeftError('ERR_WEFT_USER_CODE', `function ${type} (id ${describe(id)}) failed: ${errorText(cause)}`, { cause });
    }

    const stateMutations: PersistedValueMutation[] = [];
    for (const spec of fn.specs) {
      const after = inst.slots.get(spec.name);
      const was = before.get(spec.name);
      if (after === was?.[0] && after?.version === was?.[1]) continue;
      stateMutations.push(
        after === undefined
          ? { mutationType: 'DELETE', stateName: spec.name, stateValue: null }
          : { mutationType: 'MODIFY', stateName: spec.name, stateValue: { typename: spec.type.typename, hasValue: true, value: after.bytes } },
      );
    }
    const delayedInvocations: DelayedInvocation[] = timers.ops.map((op) =>
      op.env === null
        ? { isCancellationRequest: true, cancellationToken: op.token as string, delayInMs: 0, target: null, argument: null }
        : {
            isCancellationRequest: false,
            cancellationToken: op.token ?? '',
            delayInMs: op.delayMs,
            target: pbAddress(op.env[E_TARGET_TYPE], op.env[E_TARGET_ID], callers),
            argument: { typename: op.env[E_TYPENAME], hasValue: true, value: op.env[E_PAYLOAD] },
          },
    );
    return {
      stateMutations,
      outgoingMessages: outgoing.map((env) => ({
        target: pbAddress(env[E_TARGET_TYPE], env[E_TARGET_ID], callers),
        argument: { typename: env[E_TYPENAME], hasValue: true, value: env[E_PAYLOAD] },
      })),
      delayedInvocations,
      outgoingEgresses: egress.map(([name, typename, payload]) => {
        const { namespace, name: egressType } = splitStatefunTypename(name);
        return { egressNamespace: namespace, egressType, argument: { typename, hasValue: true, value: payload } };
      }),
    };
  }

  /**
   * Runs the `n` queued invocations one at a time until all completed or one failed. One at a
   * time (run budget 1) so nothing after a failed invocation starts: its user code would run for
   * a batch that is thrown away anyway.
   */
  #drive(dispatcher: Dispatcher, n: number, failed: () => boolean, what: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let done = false;
      const finish = (err?: unknown): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        if (err === undefined) resolve();
        else reject(err);
      };
      const timer = setTimeout(() => {
        finish(new WeftError('ERR_WEFT_TIMEOUT', `the batch for ${what} did not finish within ${this.#opts.batchTimeoutMs} ms (batchTimeoutMs)`));
      }, this.#opts.batchTimeoutMs);
      const pump = (): void => {
        if (done) return;
        try {
          while (!failed() && dispatcher.completed < n) {
            // Nothing runnable while invocations remain: one is awaiting; onAsyncSettled resumes.
            if (dispatcher.run(1) === 0) return;
          }
        } catch (err) {
          finish(err);
          return;
        }
        finish();
      };
      dispatcher.onAsyncSettled = pump;
      pump();
    });
  }
}

/** The declared specs the request carries no entry for, as the handshake lists them. */
function missingSpecs(fn: CompiledFunction, batch: InvocationBatchRequest): PersistedValueSpec[] {
  if (fn.specs.length === 0) return [];
  const present = new Set(batch.state.map((s) => s.stateName));
  const missing: PersistedValueSpec[] = [];
  for (const spec of fn.specs) {
    if (present.has(spec.name)) continue;
    missing.push({
      stateName: spec.name,
      typeTypename: spec.type.typename,
      // Like the SDKs: no expiration spec at all when the value does not expire.
      expirationSpec:
        spec.expireAfterWrite > 0
          ? { mode: 'AFTER_WRITE', expireAfterMillis: spec.expireAfterWrite }
          : spec.expireAfterCall > 0
            ? { mode: 'AFTER_INVOKE', expireAfterMillis: spec.expireAfterCall }
            : null,
    });
  }
  return missing;
}

/**
 * The status of a failed request the runtime could have sent (a POST of application/octet-stream):
 * always 500, what the SDKs answer to any failure. The runtime never drops a batch whatever the
 * status: its okhttp transport fails the call at once on a 4xx outside 408/409/420/429/499, which
 * fails the job, restores it from its checkpoint and sends the same batch again — a restart loop
 * of the whole job at the restart strategy's pace; a 5xx it first retries with exponential backoff
 * for the whole call timeout (its async transport retries every non-2xx status that way). So a 500
 * is the status that costs a deployment least (no restart for a cause that heals within the call
 * timeout, such as a rolling deploy), and a 400/404/413 would only make things worse.
 */
const FAILURE_STATUS = 500;

function isOctetStream(contentType: string | undefined): boolean {
  if (contentType === undefined) return false;
  const semi = contentType.indexOf(';');
  return (semi < 0 ? contentType : contentType.slice(0, semi)).trim().toLowerCase() === 'application/octet-stream';
}

/** The error a request ended with, as a WeftError for `onError`. */
function asWeftError(err: unknown): WeftError {
  if (err instanceof WeftError) return err;
  return new WeftError('ERR_WEFT_INTERNAL', `statefun endpoint: ${errorText(err)}`, { cause: err });
}

function sendError(res: ServerResponse, status: number, message: string, endpoint: StatefunEndpoint, err: WeftError, extraHeaders?: Record<string, string>): void {
  if (!res.headersSent && !res.destroyed) {
    const text = `${message.length > MAX_ERROR_TEXT ? `${message.slice(0, MAX_ERROR_TEXT - 3)}...` : message}\n`;
    res.writeHead(status, {
      'Content-Type': 'text/plain; charset=utf-8',
      'Content-Length': Buffer.byteLength(text),
      ...extraHeaders,
    });
    res.end(text);
  }
  notify(endpoint, err, status);
}

function notify(endpoint: StatefunEndpoint, err: WeftError, status: number): void {
  const onError = endpoint.onError;
  if (onError === undefined) return;
  try {
    onError(err, status);
  } catch {
    // A throwing logger must not take the server down; there is no one else to tell.
  }
}

function handleRequest(endpoint: StatefunEndpoint, req: IncomingMessage, res: ServerResponse): void {
  // A client that goes away mid-request makes these emit; the answer is then simply not sent.
  req.on('error', () => {});
  res.on('error', () => {});
  const reject = (status: number, message: string, code: 'ERR_WEFT_TOO_LARGE' | 'ERR_WEFT_PROTOCOL', headers?: Record<string, string>): void => {
    sendError(res, status, message, endpoint, new WeftError(code, message), headers);
  };

  if (req.method !== 'POST') {
    // The runtime always POSTs application/octet-stream (both transports): 405 and 415 only ever
    // reach other clients (probes, browsers), so they cannot set off the runtime's retries.
    reject(405, `method ${req.method ?? '(none)'} is not allowed: a StateFun endpoint accepts POST only`, 'ERR_WEFT_PROTOCOL', { Allow: 'POST' });
    return;
  }
  const contentType = req.headers['content-type'];
  if (!isOctetStream(contentType)) {
    reject(415, `content type ${describe(contentType ?? null)} is not supported: a StateFun request is application/octet-stream`, 'ERR_WEFT_PROTOCOL');
    return;
  }
  const limit = endpoint.maxBodyBytes;
  const cap = endpoint.maxBufferedBytes;
  let overflow = false;
  let discarded = 0;
  let ended = false;
  const chunks: Buffer[] = [];
  let size = 0;
  /** This request's bytes counted in `endpoint.buffered`. */
  let held = 0;
  const release = (): void => {
    endpoint.buffered -= held;
    held = 0;
    chunks.length = 0;
  };
  // A 503 is a 5xx, which the runtime retries with backoff like a 500 (see FAILURE_STATUS).
  const refuse = (status: number, message: string, code: 'ERR_WEFT_TOO_LARGE' | 'ERR_WEFT_OVERLOADED', headers: Record<string, string>): void => {
    overflow = true;
    release();
    sendError(res, status, message, endpoint, new WeftError(code, message), headers);
    req.resume();
  };
  const tooLarge = (size: string): void => {
    refuse(FAILURE_STATUS, `request body of ${size} bytes is over the limit of ${limit} (maxBodyBytes)`, 'ERR_WEFT_TOO_LARGE', { Connection: 'close' });
  };
  const overloaded = (more: number): void => {
    refuse(
      503,
      `the endpoint holds ${endpoint.buffered} bytes of request bodies; ${more} more would pass its limit of ${cap} (maxBufferedBytes): retry later`,
      'ERR_WEFT_OVERLOADED',
      { Connection: 'close', 'Retry-After': '1' },
    );
  };
  // A client gone before its body arrived in full frees what it sent.
  req.on('close', () => {
    if (!ended) release();
  });
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) tooLarge(declared);
  else if (declared !== undefined && endpoint.buffered + Number(declared) > cap) overloaded(Number(declared));

  req.on('data', (chunk: Buffer) => {
    if (overflow) {
      discarded += chunk.length;
      if (discarded > MAX_DISCARD_BYTES) req.socket.destroy();
      return;
    }
    size += chunk.length;
    if (size > limit) {
      tooLarge(`more than ${limit}`);
      return;
    }
    if (endpoint.buffered + chunk.length > cap) {
      overloaded(chunk.length);
      return;
    }
    endpoint.buffered += chunk.length;
    held += chunk.length;
    chunks.push(chunk);
  });
  req.on('end', () => {
    ended = true;
    if (overflow) return;
    const body = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size);
    chunks.length = 0;
    // The body stays counted until its batch is done with it.
    endpoint.invoke(body).finally(release).then(
      (out) => {
        if (res.destroyed) return;
        res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': out.byteLength });
        res.end(out);
      },
      (err: unknown) => {
        const status = FAILURE_STATUS;
        const weftErr = asWeftError(err);
        // A bug's message is not for the client; what a function threw is (without its stack).
        const message = weftErr.code === 'ERR_WEFT_INTERNAL' ? 'internal error in the weft StateFun endpoint' : weftErr.message;
        sendError(res, status, message, endpoint, weftErr);
      },
    );
  });
}

/**
 * A Node `http`/`https` request handler serving a weft function module over Apache Flink
 * StateFun's HTTP request-reply protocol, so a StateFun cluster can run the same functions.
 * Point a StateFun `endpoints` entry (kind `http`) for the module's function types at it.
 *
 * Per request (one address, a batch of messages, the address's state):
 * - The batch runs in order on weft's own invocation core; each invocation sees the state the
 *   previous one wrote. The answer lists a MODIFY or DELETE for each declared state that was
 *   written or deleted, every `ctx.send` as an outgoing message, `ctx.sendAfter` /
 *   `ctx.cancelDelayed` as delayed invocations (in call order), and `ctx.egress(name, ...)` as an
 *   egress message for egress `name` (`"ns/type"` → namespace `ns`, type `type`: configure that
 *   egress in the StateFun module, e.g. as a Kafka egress fed with {@link kafkaEgressRecord}).
 * - `ctx.reply(value)` sends `value` to the caller when a function called; a message from an
 *   ingress has no caller, and the reply is dropped.
 * - Missing-state handshake: if a declared state is absent from the request, the answer is an
 *   IncompleteInvocationContext listing every absent spec (typename, and `expireAfterWrite` as
 *   AFTER_WRITE / `expireAfterCall` as AFTER_INVOKE); the runtime registers them and resends.
 * - If an invocation throws (or its promise rejects), the WHOLE batch fails with HTTP 500 and no
 *   effect of it is reported: StateFun then retries the batch. Functions therefore see a message
 *   again after a failure, as in the engine's retries.
 *
 * Status codes: 200 answer; 405 any method but POST; 415 a content type other than
 * `application/octet-stream` (requests the runtime never sends); 500 anything else that fails —
 * a failed or timed-out batch, malformed protobuf, a batch without target or argument, a state
 * value whose typename is not the declared one, a function type this module does not define, a
 * body over `maxBodyBytes` — as the SDKs answer, because every other status makes the runtime
 * fail its job sooner (see FAILURE_STATUS); 503 with `Retry-After: 1` (a 5xx too, retried the
 * same way) a body that would take the bytes held over all requests past `maxBufferedBytes`.
 * Error bodies are one line of `text/plain` naming the cause (`onError` gets its code), never a
 * stack trace. TTLs are enforced by the StateFun runtime.
 *
 * @example
 * ```ts
 * import { createServer } from 'node:http';
 * import { statefunHandler } from 'weft/statefun';
 * import functions from './functions.js';
 *
 * createServer(statefunHandler(functions, { onError: (err, status) => console.error(status, err) }))
 *   .listen(8000, '127.0.0.1');
 * ```
 */
export function statefunHandler(module: ModuleDefinition, options?: StatefunHandlerOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const endpoint = new StatefunEndpoint(module, resolveOptions(options));
  return (req, res) => handleRequest(endpoint, req, res);
}

/**
 * The endpoint without HTTP, for other servers and frameworks: takes a `ToFunction` request body
 * and resolves with the `FromFunction` answer. Rejects with a WeftError whose code tells what
 * failed: ERR_WEFT_PROTOCOL, ERR_WEFT_TYPE_MISMATCH, ERR_WEFT_UNKNOWN_FUNCTION, ERR_WEFT_USER_CODE
 * or ERR_WEFT_TIMEOUT ({@link statefunHandler} answers all of them 500, as the SDKs do). Body
 * size is the caller's to limit.
 *
 * @example
 * ```ts
 * const invoke = createStatefunInvoker(functions);
 * app.post('/statefun', async (req, reply) => reply.type('application/octet-stream').send(Buffer.from(await invoke(req.body))));
 * ```
 */
export function createStatefunInvoker(module: ModuleDefinition, options?: StatefunHandlerOptions): StatefunInvoker {
  const endpoint = new StatefunEndpoint(module, resolveOptions(options));
  return (body) => endpoint.invoke(body);
}
