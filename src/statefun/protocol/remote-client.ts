/**
 * The runtime side of StateFun's request-reply protocol: what a weft shard uses to run a function
 * served by a StateFun SDK (any language) at an HTTP endpoint, keeping the function's state itself.
 *
 * One {@link RemoteFunctionClient.invoke} = one batch for one address:
 *
 * ```
 *  RemoteCall (target, messages, stored state) ──POST ToFunction──► endpoint
 *        ▲                                                              │
 *        │  IncompleteInvocationContext: register the missing specs,    │
 *        └─ resend the SAME batch with them attached (absent values) ◄──┤
 *                                                                       │
 *  RemoteResult (mutations, outgoing, delayed, egress) ◄── InvocationResponse
 * ```
 *
 * State travels as the runtime sends it (PersistedRemoteFunctionValues): only the states
 * registered by a handshake are attached, each under its registered typename, and a value past
 * its TTL goes as absent. Specs are registered per client, in memory: a new client (a weft start,
 * a recovered shard) sends no state until the function's first answer lists what is missing, so
 * specs and their TTLs are learned again from the function, as the runtime does after a restore
 * (its registry is rebuilt by handshakes too). Stored values are attached again once their specs
 * are known, so nothing is lost by that.
 *
 * Answers are read as strictly as the runtime reads them: an empty FromFunction (the Python SDK's
 * answer to a batch without effects) is a result with no effects; a mutation of a state no
 * handshake registered, or of a typename other than the registered one, fails the call; MODIFY
 * stores the value's bytes whatever `has_value` says; a negative delay fails the call.
 *
 * Failures: like the runtime's transports, a call retries network errors, timeouts and the HTTP
 * statuses 408, 409, 420, 429, 499 and 5xx with exponential backoff (with jitter, so many
 * addresses failing together do not retry in lockstep) until its budget `timeoutMs` (StateFun's
 * `call` timeout) runs out; other statuses and malformed answers fail it at once (resending the
 * same bytes cannot help). Every wait is bounded: the whole call, attempts and backoff included,
 * by `timeoutMs`, the answer by `maxResponseBytes`, the handshake rounds by the number of states a
 * function may declare. What happens to a failed call's messages is the caller's decision (the
 * engine keeps them and pauses the address; see Dispatcher).
 *
 * Retrying re-sends a batch the function may already have processed: the state it wrote then is
 * discarded with the lost answer (the engine applies mutations only from the answer it receives),
 * so state stays exactly-once; side effects the function performs itself may repeat, as in
 * StateFun.
 */
import { Agent as HttpAgent, request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { Address } from '../../core/address.js';
import { WeftError, describe } from '../../core/errors.js';
import {
  addressTypename,
  canonicalStatefunTypename,
  decodeFromFunction,
  encodeToFunction,
  splitStatefunTypename,
  type InvocationResponse,
  type PbAddress,
  type PersistedValue,
  type PersistedValueSpec,
  type TypedValue,
} from './proto.js';

/** A value with its typename, as the engine stores state and carries messages. */
export interface RemoteValue {
  readonly typename: string;
  readonly bytes: Uint8Array;
}

/** One batch for one address of a remote function type. */
export interface RemoteCall {
  /** The remote function instance; `target.type` is its StateFun typename `namespace/name`. */
  readonly target: Address;
  /** The messages, in order; `caller` is null for messages from the host or an ingress. */
  readonly invocations: ReadonlyArray<{ readonly caller: Address | null; readonly typename: string; readonly payload: Uint8Array }>;
  /**
   * The instance's stored state by state name (absent names have no value). Every spec the
   * client registered for `target.type` is attached: its value when stored (and not expired),
   * else "no value". Entries for names no handshake registered are not sent (the runtime sends
   * registered states only).
   */
  readonly state: ReadonlyMap<string, RemoteValue>;
  /**
   * Whether a stored value has expired under its spec's TTL: it is then sent as absent. Called
   * when the batch is encoded, so it also applies to specs learned by this call's handshake.
   * Default: values never expire here.
   */
  readonly isExpired?: (name: string, spec: StateSpecInfo) => boolean;
}

/** A delayed message (`cancel: false`) or the cancellation of one (`cancel: true`). */
export interface RemoteDelayed {
  /** Milliseconds after the batch to deliver (a negative delay fails the call, as in the runtime). 0 for cancellations. */
  readonly delayMs: number;
  /** Null for cancellations. */
  readonly target: Address | null;
  /** Null for cancellations. */
  readonly typename: string | null;
  /** Null for cancellations. */
  readonly payload: Uint8Array | null;
  /** The token naming the message (scoped to the sending address); null when none. */
  readonly cancellationToken: string | null;
  readonly cancel: boolean;
}

/** What a batch did. Byte arrays are copies the caller owns. */
export interface RemoteResult {
  /**
   * State changes, in the function's order: a value to store (under its registered typename), or
   * null to delete. Only states a handshake registered appear.
   */
  readonly mutations: ReadonlyArray<{ readonly name: string; readonly value: RemoteValue | null }>;
  /** Messages to other functions (or itself). */
  readonly outgoing: ReadonlyArray<{ readonly target: Address; readonly typename: string; readonly payload: Uint8Array }>;
  /** Delayed messages and cancellations, in call order (a cancel may free a token a later message reuses). */
  readonly delayed: readonly RemoteDelayed[];
  /** Egress records; `name` is `egress_namespace/egress_type`. */
  readonly egress: ReadonlyArray<{ readonly name: string; readonly typename: string; readonly payload: Uint8Array }>;
}

/**
 * A state a remote function declares, as learned from a handshake. Like a module's `StateSpec`:
 * at most one TTL is set.
 */
export interface StateSpecInfo {
  readonly name: string;
  /** The typename the function reads and writes the value as (canonical `namespace/name`). */
  readonly typename: string;
  /** ms after the last write of the value when it expires (StateFun AFTER_WRITE). */
  readonly expireAfterWrite?: number;
  /** ms after the last invocation of the instance when it expires (StateFun AFTER_INVOKE). */
  readonly expireAfterCall?: number;
}

/** Options of {@link RemoteFunctionClient}. */
export interface RemoteFunctionClientOptions {
  /** The endpoint: an `http://` or `https://` URL. Required. */
  readonly url: string;
  /**
   * The budget of one call in milliseconds (StateFun's `call` timeout): every attempt, waiting for
   * a socket, connecting, sending, receiving the whole answer, and the backoff between attempts.
   * Each attempt may take what is left of it. Required.
   */
  readonly timeoutMs: number;
  /** Most retries within one call's budget. Default: no limit but the budget. */
  readonly maxRetries?: number;
  /**
   * Backoff before the first retry in ms, doubling each retry (with jitter: 50–100% of it), never
   * past what is left of the budget. Default 10 (the runtime's first backoff).
   */
  readonly backoffMs?: number;
  /** Ceiling of one backoff in ms. Default 5_000. */
  readonly maxBackoffMs?: number;
  /**
   * Largest answer accepted, in bytes; a larger one fails the call (not retried). Default 32 MiB
   * (the runtime's largest request or response).
   */
  readonly maxResponseBytes?: number;
  /**
   * The agent for connections. Default: a keep-alive `http.Agent` or `https.Agent` (by the URL)
   * with `maxSockets` sockets, owned and destroyed by {@link RemoteFunctionClient.close}. An agent
   * passed here is used as is and left open.
   */
  readonly agent?: HttpAgent;
  /** Sockets of the default agent (concurrent requests beyond it queue). Default 64. */
  readonly maxSockets?: number;
}

/** Defaults of {@link RemoteFunctionClientOptions}. */
export const REMOTE_CLIENT_DEFAULTS = Object.freeze({
  maxRetries: Number.POSITIVE_INFINITY,
  backoffMs: 10,
  maxBackoffMs: 5_000,
  maxResponseBytes: 32 * 1024 * 1024,
  maxSockets: 64,
});

/**
 * HTTP statuses retried within a call's budget besides 5xx: the runtime's okhttp transport
 * (RetryingCallback) retries exactly these and every status >= 500, and fails the call on any
 * other. (Its async transport retries every non-2xx status; the set here is the narrower one.)
 */
const RETRYABLE_STATUSES: ReadonlySet<number> = new Set([408, 409, 420, 429, 499]);

/** Whether an HTTP status is worth another attempt (see {@link RETRYABLE_STATUSES}). */
export function isRetryableStatus(status: number): boolean {
  return status >= 500 || RETRYABLE_STATUSES.has(status);
}

/** States a remote function may declare: bounds the spec registry and the handshake rounds. */
const MAX_SPECS_PER_FUNCTION = 1024;
/** Characters of an error answer's body quoted in an error message. */
const MAX_QUOTED_BODY = 300;

const EMPTY = new Uint8Array(0);

/** Why one attempt failed, and whether trying again could help. */
class AttemptFailure extends Error {
  readonly retryable: boolean;
  constructor(message: string, retryable: boolean, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.retryable = retryable;
  }
}

function invalidOption(message: string): WeftError {
  return new WeftError('ERR_WEFT_INVALID_OPTION', `RemoteFunctionClient ${message}`);
}

function intOption(value: unknown, name: string, dflt: number | undefined, min: number): number {
  if (value === undefined && dflt !== undefined) return dflt;
  if (value === Number.POSITIVE_INFINITY && dflt === Number.POSITIVE_INFINITY) return value;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw invalidOption(`options.${name} must be an integer >= ${min} (got ${describe(value)})`);
  }
  return value;
}

function toPbAddress(a: Address): PbAddress {
  const { namespace, name } = splitStatefunTypename(a.type);
  return { namespace, type: name, id: a.id };
}

function fromPbAddress(a: PbAddress): Address {
  return { type: addressTypename(a), id: a.id };
}

function reason(err: unknown): string {
  if (err instanceof Error) return err.message;
  return describe(err);
}

/**
 * A client for one StateFun endpoint (one URL, any number of function types behind it).
 *
 * @example
 * ```ts
 * import { RemoteFunctionClient } from 'weft/statefun';
 * import { type } from 'weft';
 *
 * const client = new RemoteFunctionClient({ url: 'http://127.0.0.1:8000/statefun', timeoutMs: 10_000 });
 * const state = new Map();                      // the instance's stored state, kept by the caller
 * const result = await client.invoke({
 *   target: { type: 'example/greeter', id: 'ada' },
 *   invocations: [{ caller: null, typename: 'io.statefun.types/string', payload: type.string().encode('hi') }],
 *   state,
 * });
 * for (const m of result.mutations) m.value === null ? state.delete(m.name) : state.set(m.name, m.value);
 * console.log(client.specsOf('example/greeter'));   // [{ name: 'seen', typename: 'io.statefun.types/int' }]
 * await client.close();
 * ```
 */
export class RemoteFunctionClient {
  readonly #url: URL;
  readonly #timeoutMs: number;
  readonly #maxRetries: number;
  readonly #backoffMs: number;
  readonly #maxBackoffMs: number;
  readonly #maxResponseBytes: number;
  readonly #agent: HttpAgent;
  readonly #ownAgent: boolean;
  readonly #request: typeof httpRequest;
  /** Specs by function type, then by state name, in the order they were learned. */
  readonly #specs = new Map<string, Map<string, StateSpecInfo>>();
  readonly #inflight = new Set<ClientRequest>();
  readonly #sleeps = new Set<() => void>();
  #closed = false;
  #retries = 0;

  constructor(options: RemoteFunctionClientOptions) {
    if (typeof options !== 'object' || options === null) throw invalidOption(`options must be an object { url, timeoutMs, ... } (got ${describe(options)})`);
    let url: URL;
    try {
      url = new URL(options.url);
    } catch {
      throw invalidOption(`options.url must be an http:// or https:// URL (got ${describe(options.url)})`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw invalidOption(`options.url must be an http:// or https:// URL (got ${describe(options.url)})`);
    }
    this.#url = url;
    this.#timeoutMs = intOption(options.timeoutMs, 'timeoutMs', undefined, 1);
    this.#maxRetries = intOption(options.maxRetries, 'maxRetries', REMOTE_CLIENT_DEFAULTS.maxRetries, 0);
    this.#backoffMs = intOption(options.backoffMs, 'backoffMs', REMOTE_CLIENT_DEFAULTS.backoffMs, 0);
    this.#maxBackoffMs = intOption(options.maxBackoffMs, 'maxBackoffMs', REMOTE_CLIENT_DEFAULTS.maxBackoffMs, 0);
    this.#maxResponseBytes = intOption(options.maxResponseBytes, 'maxResponseBytes', REMOTE_CLIENT_DEFAULTS.maxResponseBytes, 1);
    const maxSockets = intOption(options.maxSockets, 'maxSockets', REMOTE_CLIENT_DEFAULTS.maxSockets, 1);
    const https = url.protocol === 'https:';
    this.#request = https ? (httpsRequest as unknown as typeof httpRequest) : httpRequest;
    if (options.agent !== undefined) {
      if (!(options.agent instanceof HttpAgent)) throw invalidOption(`options.agent must be an http.Agent or https.Agent (got ${describe(options.agent)})`);
      this.#agent = options.agent;
      this.#ownAgent = false;
    } else {
      // keepAlive: a batch per address per round trip would otherwise pay a TCP (and TLS)
      // handshake each time.
      this.#agent = https ? new HttpsAgent({ keepAlive: true, maxSockets }) : new HttpAgent({ keepAlive: true, maxSockets });
      this.#ownAgent = true;
    }
  }

  /** The endpoint URL. */
  get url(): string {
    return this.#url.href;
  }

  /** Retries made so far (attempts after the first of a request), over all calls. */
  get retries(): number {
    return this.#retries;
  }

  /**
   * The states `type` declares, as learned from handshakes so far (or {@link registerSpecs}), in
   * the order they were learned. Empty before the first handshake.
   */
  specsOf(type: string): StateSpecInfo[] {
    const specs = this.#specs.get(type);
    return specs === undefined ? [] : [...specs.values()];
  }

  /**
   * Registers specs of `type` known from elsewhere, so its first batch needs no handshake.
   * Replaces a spec of the same name. Typenames are read as the runtime reads them (exactly one
   * `/`; empty is "io.statefun.types/unset"); ERR_WEFT_INVALID_ARG for a malformed spec.
   */
  registerSpecs(type: string, specs: readonly StateSpecInfo[]): void {
    const checked = specs.map((s) => {
      if (typeof s?.name !== 'string' || s.name.length === 0 || typeof s.typename !== 'string') {
        throw new WeftError('ERR_WEFT_INVALID_ARG', `registerSpecs: a spec must be { name, typename, expireAfterWrite?, expireAfterCall? } (got ${describe(s)})`);
      }
      let typename: string;
      try {
        typename = canonicalStatefunTypename(s.typename);
      } catch (err) {
        throw new WeftError('ERR_WEFT_INVALID_ARG', `registerSpecs: state ${describe(s.name)} of ${type}: ${reason(err)}`, { cause: err });
      }
      return { ...s, typename };
    });
    let known = this.#specs.get(type);
    if (known === undefined) this.#specs.set(type, (known = new Map()));
    for (const s of checked) {
      if (!known.has(s.name) && known.size >= MAX_SPECS_PER_FUNCTION) {
        throw new WeftError('ERR_WEFT_INVALID_ARG', `registerSpecs: ${type} would declare more than ${MAX_SPECS_PER_FUNCTION} states`);
      }
      known.set(s.name, s);
    }
  }

  /**
   * Runs one batch on the remote function and resolves with its effects. Performs the
   * missing-state handshake as needed. Rejects with ERR_WEFT_REMOTE (naming the URL, the function
   * and the last error, which is also the `cause`) when the endpoint cannot be reached within the
   * budget, keeps failing, answers a status that is not retried, or answers something malformed or
   * that the runtime would refuse; with ERR_WEFT_CLOSED after {@link close}; with
   * ERR_WEFT_INVALID_ARG for a malformed call.
   */
  async invoke(call: RemoteCall): Promise<RemoteResult> {
    if (this.#closed) throw new WeftError('ERR_WEFT_CLOSED', `RemoteFunctionClient for ${this.#url.href} is closed`);
    checkCall(call);
    const type = call.target.type;
    const what = `remote function ${type} (id ${describe(call.target.id)}) at ${this.#url.href}`;
    // Each handshake round registers at least one new spec (or fails), so this loop ends.
    for (;;) {
      const { body, sent } = this.#encodeCall(call);
      const answer = await this.#post(body, what);
      let msg;
      try {
        msg = decodeFromFunction(answer);
      } catch (err) {
        throw new WeftError('ERR_WEFT_REMOTE', `${what} answered a malformed FromFunction: ${reason(err)}`, { cause: err });
      }
      if (msg.kind === 'incomplete-invocation-context') {
        this.#learn(type, msg.missingValues, sent, what);
        continue;
      }
      // A FromFunction with neither member is "no side effects" (RequestReplyFunction reads it as
      // an empty InvocationResponse): what the Python SDK sends for a batch without effects.
      if (msg.kind === 'empty') return { mutations: [], outgoing: [], delayed: [], egress: [] };
      try {
        return this.#result(msg.result, type);
      } catch (err) {
        throw new WeftError('ERR_WEFT_REMOTE', `${what} answered an unusable InvocationResponse: ${reason(err)}`, { cause: err });
      }
    }
  }

  /**
   * Stops: in-flight calls and backoff waits end with ERR_WEFT_CLOSED, later calls are refused,
   * and the default agent's sockets are closed. Calling it again is harmless.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const req of this.#inflight) req.destroy(new AttemptFailure('the client was closed', false));
    this.#inflight.clear();
    for (const wake of this.#sleeps) wake();
    this.#sleeps.clear();
    if (this.#ownAgent) this.#agent.destroy();
  }

  /**
   * The batch as the runtime sends it (PersistedRemoteFunctionValues.attachStateValues): every
   * registered state, with its value under the registered typename, or without a value when none
   * is stored or it expired. Names no handshake registered are not sent.
   */
  #encodeCall(call: RemoteCall): { body: Uint8Array; sent: Set<string> } {
    const state: PersistedValue[] = [];
    const sent = new Set<string>();
    const specs = this.#specs.get(call.target.type);
    if (specs !== undefined) {
      for (const spec of specs.values()) {
        const v = call.state.get(spec.name);
        const live = v !== undefined && (call.isExpired === undefined || !call.isExpired(spec.name, spec));
        state.push({
          stateName: spec.name,
          stateValue: live ? { typename: spec.typename, hasValue: true, value: v.bytes } : { typename: spec.typename, hasValue: false, value: EMPTY },
        });
        sent.add(spec.name);
      }
    }
    const body = encodeToFunction({
      invocation: {
        target: toPbAddress(call.target),
        state,
        invocations: call.invocations.map((inv) => ({
          caller: inv.caller === null ? null : toPbAddress(inv.caller),
          argument: { typename: inv.typename, hasValue: true, value: inv.payload },
        })),
      },
    });
    return { body, sent };
  }

  /** Registers the specs a handshake reported missing; refuses answers that cannot make progress. */
  #learn(type: string, missing: readonly PersistedValueSpec[], sent: ReadonlySet<string>, what: string): void {
    if (missing.length === 0) throw new WeftError('ERR_WEFT_REMOTE', `${what} answered an incomplete invocation context that lists no missing state`);
    const learned: StateSpecInfo[] = [];
    for (const m of missing) {
      if (m.stateName.length === 0) throw new WeftError('ERR_WEFT_REMOTE', `${what} reported a missing state without a name`);
      if (sent.has(m.stateName)) {
        throw new WeftError('ERR_WEFT_REMOTE', `${what} reported state ${describe(m.stateName)} missing although the request carried it`);
      }
      let typename: string;
      try {
        typename = canonicalStatefunTypename(m.typeTypename);
      } catch (err) {
        // The runtime's TypeName.parseFrom throws on it: the call fails.
        throw new WeftError('ERR_WEFT_REMOTE', `${what} reported state ${describe(m.stateName)} with an invalid type: ${reason(err)}`, { cause: err });
      }
      const spec: { name: string; typename: string; expireAfterWrite?: number; expireAfterCall?: number } = { name: m.stateName, typename };
      const e = m.expirationSpec;
      if (e !== null && e.mode !== 'NONE' && e.expireAfterMillis > 0) {
        if (e.mode === 'AFTER_WRITE') spec.expireAfterWrite = e.expireAfterMillis;
        else spec.expireAfterCall = e.expireAfterMillis;
      }
      learned.push(spec);
    }
    const known = this.#specs.get(type);
    const total = (known?.size ?? 0) + learned.length;
    if (total > MAX_SPECS_PER_FUNCTION) {
      throw new WeftError('ERR_WEFT_REMOTE', `${what} declares more than ${MAX_SPECS_PER_FUNCTION} states (${total})`);
    }
    this.registerSpecs(type, learned);
  }

  /** The effects of an answer, refused (throws) where the runtime would refuse them. */
  #result(r: InvocationResponse, type: string): RemoteResult {
    const specs = this.#specs.get(type);
    const arg = (tv: TypedValue | null, what: string): { typename: string; payload: Uint8Array } => {
      if (tv === null) throw new WeftError('ERR_WEFT_PROTOCOL', `${what} has no argument`);
      return { typename: tv.typename, payload: tv.value.slice() };
    };
    const target = (a: PbAddress | null, what: string): Address => {
      if (a === null) throw new WeftError('ERR_WEFT_PROTOCOL', `${what} has no target address`);
      return fromPbAddress(a);
    };
    return {
      mutations: r.stateMutations.map((m, i) => {
        // PersistedRemoteFunctionValues.updateStateValues: the state must be registered ("Accessing
        // a non-existing function state"), and a MODIFY must carry the registered type.
        const spec = specs?.get(m.stateName);
        if (spec === undefined) {
          throw new WeftError('ERR_WEFT_UNKNOWN_STATE', `state mutation ${i} is for state ${describe(m.stateName)}, which the function did not declare in a handshake`);
        }
        if (m.mutationType === 'DELETE') return { name: m.stateName, value: null };
        // An absent state_value reads as protobuf's default TypedValue: no typename (unset), no bytes.
        const v = m.stateValue;
        const given = v?.typename ?? '';
        let typename: string;
        try {
          typename = canonicalStatefunTypename(given);
        } catch (err) {
          throw new WeftError('ERR_WEFT_TYPE_MISMATCH', `state mutation ${i} of state ${describe(m.stateName)}: ${reason(err)}`, { cause: err });
        }
        if (typename !== spec.typename) {
          throw new WeftError('ERR_WEFT_TYPE_MISMATCH', `state mutation ${i} writes state ${describe(m.stateName)} as ${describe(given)}, but it was declared as ${describe(spec.typename)}`);
        }
        // The runtime stores the value's bytes whatever has_value says: a MODIFY "without a value"
        // stores empty bytes (a present, empty value), it does not delete.
        return { name: m.stateName, value: { typename: spec.typename, bytes: v === null ? new Uint8Array(0) : v.value.slice() } };
      }),
      outgoing: r.outgoingMessages.map((o, i) => ({ target: target(o.target, `outgoing message ${i}`), ...arg(o.argument, `outgoing message ${i}`) })),
      delayed: r.delayedInvocations.map((d, i): RemoteDelayed => {
        if (d.isCancellationRequest) {
          if (d.cancellationToken.length === 0) throw new WeftError('ERR_WEFT_PROTOCOL', `cancellation request ${i} has no cancellation token`);
          return { delayMs: 0, target: null, typename: null, payload: null, cancellationToken: d.cancellationToken, cancel: true };
        }
        // The runtime's delay sink checks `delayMillis >= 0` and throws otherwise.
        if (d.delayInMs < 0) throw new WeftError('ERR_WEFT_PROTOCOL', `delayed message ${i} has a negative delay (${d.delayInMs} ms)`);
        const { typename, payload } = arg(d.argument, `delayed message ${i}`);
        return {
          delayMs: d.delayInMs,
          target: target(d.target, `delayed message ${i}`),
          typename,
          payload,
          cancellationToken: d.cancellationToken === '' ? null : d.cancellationToken,
          cancel: false,
        };
      }),
      egress: r.outgoingEgresses.map((e, i) => ({ name: `${e.egressNamespace}/${e.egressType}`, ...arg(e.argument, `egress message ${i}`) })),
    };
  }

  /**
   * POSTs `body`, retrying what may succeed on another try until the call's budget runs out;
   * resolves with the 2xx answer's body.
   */
  async #post(body: Uint8Array, what: string): Promise<Uint8Array> {
    const deadline = performance.now() + this.#timeoutMs;
    let last: AttemptFailure | undefined;
    let attempts = 0;
    let why = '';
    for (;;) {
      if (this.#closed) throw new WeftError('ERR_WEFT_CLOSED', `${what}: the client was closed`, { cause: last });
      attempts++;
      try {
        return await this.#attempt(body, Math.max(1, Math.ceil(deadline - performance.now())));
      } catch (err) {
        last = err instanceof AttemptFailure ? err : new AttemptFailure(reason(err), false, err);
        if (this.#closed) throw new WeftError('ERR_WEFT_CLOSED', `${what}: the client was closed`, { cause: last });
        if (!last.retryable) break;
        if (attempts > this.#maxRetries) {
          why = ' (maxRetries)';
          break;
        }
      }
      // Like the runtime's transports: no retry when less than a millisecond of budget is left.
      why = ` within its budget of ${this.#timeoutMs} ms (timeoutMs)`;
      const left = deadline - performance.now();
      if (left <= 1) break;
      await this.#backoff(attempts, left);
      if (deadline - performance.now() <= 1) break;
      this.#retries++;
    }
    throw new WeftError('ERR_WEFT_REMOTE', `${what} failed after ${attempts} attempt${attempts === 1 ? '' : 's'}${why}: ${last?.message ?? 'no attempt made'}`, { cause: last });
  }

  #backoff(retry: number, left: number): Promise<void> {
    const base = Math.min(this.#maxBackoffMs, this.#backoffMs * 2 ** Math.min(retry - 1, 30));
    const ms = Math.min(left, base / 2 + Math.random() * (base / 2));
    return new Promise<void>((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.#sleeps.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.#sleeps.add(wake);
    });
  }

  #attempt(body: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    return new Promise<Uint8Array>((resolve, reject) => {
      let settled = false;
      const settle = (err: AttemptFailure | null, value?: Uint8Array): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.#inflight.delete(req);
        if (err === null) resolve(value as Uint8Array);
        else reject(err);
      };
      // Settle first, then destroy: destroying makes the request and the answer emit their own
      // errors ("socket hang up", "aborted"), which must not replace the real reason.
      const fail = (err: AttemptFailure): void => {
        settle(err);
        req.destroy();
      };
      const req = this.#request(this.#url, {
        method: 'POST',
        agent: this.#agent,
        headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': body.byteLength },
      });
      this.#inflight.add(req);
      // One timer for the whole attempt (what is left of the call's budget): a socket's idle
      // timeout would not bound a slow trickle.
      const timer = setTimeout(() => fail(new AttemptFailure(`no complete answer within ${timeoutMs} ms (what was left of the call's budget)`, true)), timeoutMs);
      req.on('error', (err) => {
        settle(err instanceof AttemptFailure ? err : new AttemptFailure(`request failed: ${reason(err)}`, true, err));
      });
      req.on('response', (res: IncomingMessage) => this.#readAnswer(res, settle, fail));
      req.end(body);
    });
  }

  #readAnswer(res: IncomingMessage, settle: (err: AttemptFailure | null, value?: Uint8Array) => void, fail: (err: AttemptFailure) => void): void {
    const status = res.statusCode ?? 0;
    // 2xx is success, as for the runtime (okhttp's isSuccessful, the async transport's 2xx check).
    const ok = status >= 200 && status < 300;
    const declared = Number(res.headers['content-length']);
    if (ok && declared > this.#maxResponseBytes) {
      fail(new AttemptFailure(`the answer of ${declared} bytes is over the limit of ${this.#maxResponseBytes} (maxResponseBytes)`, false));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    res.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > this.#maxResponseBytes) {
        fail(new AttemptFailure(`the answer is over the limit of ${this.#maxResponseBytes} bytes (maxResponseBytes)`, false));
        return;
      }
      // Error answers are quoted, not parsed: keep only their start.
      if (ok || size - chunk.length < MAX_QUOTED_BODY) chunks.push(chunk);
    });
    res.on('error', (err) => settle(new AttemptFailure(`the answer broke off: ${reason(err)}`, true, err)));
    res.on('close', () => {
      if (!res.complete) settle(new AttemptFailure('the answer broke off', true));
    });
    res.on('end', () => {
      const bytes = Buffer.concat(chunks);
      if (ok) {
        settle(null, bytes);
        return;
      }
      const text = bytes.toString('utf8', 0, Math.min(bytes.length, MAX_QUOTED_BODY)).trim();
      const quoted = text.length === 0 ? '' : `: ${JSON.stringify(text)}`;
      settle(new AttemptFailure(`HTTP ${status}${quoted}`, isRetryableStatus(status)));
    });
  }
}

function checkCall(call: RemoteCall): void {
  const bad = (message: string): WeftError => new WeftError('ERR_WEFT_INVALID_ARG', `RemoteFunctionClient.invoke: ${message}`);
  if (typeof call !== 'object' || call === null) throw bad(`call must be an object { target, invocations, state } (got ${describe(call)})`);
  const t = call.target;
  if (typeof t !== 'object' || t === null || typeof t.type !== 'string' || !t.type.includes('/') || typeof t.id !== 'string') {
    throw bad(`call.target must be an address { type: 'namespace/name', id } (got ${describe(t)})`);
  }
  if (!Array.isArray(call.invocations)) throw bad(`call.invocations must be an array (got ${describe(call.invocations)})`);
  call.invocations.forEach((inv, i) => {
    if (typeof inv?.typename !== 'string' || !(inv.payload instanceof Uint8Array)) {
      throw bad(`call.invocations[${i}] must be { caller, typename, payload: Uint8Array } (got ${describe(inv)})`);
    }
  });
  if (!(call.state instanceof Map)) throw bad(`call.state must be a Map of state name to { typename, bytes } (got ${describe(call.state)})`);
}
