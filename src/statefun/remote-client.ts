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
 * Specs learned from handshakes are kept per function type (what the runtime does), so later
 * batches carry every declared state and need no handshake; {@link RemoteFunctionClient.specsOf}
 * tells the engine which states to keep, with their typenames and TTLs.
 *
 * Failures: network errors, per-attempt timeouts and HTTP 5xx are retried with exponential backoff
 * (with jitter, so many addresses failing together do not retry in lockstep); HTTP 4xx and
 * malformed answers are not (resending the same bytes cannot help). Every wait is bounded: each
 * attempt by `timeoutMs` (connection, queueing for a socket, and the whole answer included), the
 * attempts by `maxRetries`, the answer by `maxResponseBytes`, the handshake rounds by the number
 * of states a function may declare.
 *
 * Retrying re-sends a batch the function may already have processed: the state it wrote then is
 * discarded with the lost answer (the engine applies mutations only from the answer it receives),
 * so state stays exactly-once; side effects the function performs itself may repeat, as in
 * StateFun.
 */
import { Agent as HttpAgent, request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { Address } from '../address.js';
import { WeftError, describe } from '../errors.js';
import {
  addressTypename,
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
   * client learned for `target.type` is attached, absent ones as "no value"; entries for other
   * names are attached too.
   */
  readonly state: ReadonlyMap<string, RemoteValue>;
}

/** A delayed message (`cancel: false`) or the cancellation of one (`cancel: true`). */
export interface RemoteDelayed {
  /** Milliseconds after the batch to deliver; negative values from the function read as 0. 0 for cancellations. */
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
  /** State changes, in the function's order: a value to store, or null to delete. */
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
  /** The typename the function reads and writes the value as. */
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
   * Milliseconds one attempt may take: waiting for a socket, connecting, sending and receiving
   * the whole answer. Required.
   */
  readonly timeoutMs: number;
  /** Attempts after the first one, for network errors, timeouts and HTTP 5xx. Default 3. */
  readonly maxRetries?: number;
  /** Backoff before the first retry in ms, doubling each retry (with jitter: 50–100% of it). Default 100. */
  readonly backoffMs?: number;
  /** Ceiling of one backoff in ms. Default 5_000. */
  readonly maxBackoffMs?: number;
  /** Largest answer accepted, in bytes; a larger one fails the call (not retried). Default 16 MiB. */
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
  maxRetries: 3,
  backoffMs: 100,
  maxBackoffMs: 5_000,
  maxResponseBytes: 16 * 1024 * 1024,
  maxSockets: 64,
});

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

  /**
   * The states `type` declares, as learned from handshakes so far (or {@link registerSpecs}), in
   * the order they were learned. Empty before the first handshake.
   */
  specsOf(type: string): StateSpecInfo[] {
    const specs = this.#specs.get(type);
    return specs === undefined ? [] : [...specs.values()];
  }

  /**
   * Registers specs of `type` known from elsewhere (e.g. persisted by the engine from an earlier
   * run), so its first batch needs no handshake. Replaces a spec of the same name.
   */
  registerSpecs(type: string, specs: readonly StateSpecInfo[]): void {
    let known = this.#specs.get(type);
    if (known === undefined) this.#specs.set(type, (known = new Map()));
    for (const s of specs) {
      if (typeof s?.name !== 'string' || s.name.length === 0 || typeof s.typename !== 'string') {
        throw new WeftError('ERR_WEFT_INVALID_ARG', `registerSpecs: a spec must be { name, typename, expireAfterWrite?, expireAfterCall? } (got ${describe(s)})`);
      }
      if (!known.has(s.name) && known.size >= MAX_SPECS_PER_FUNCTION) {
        throw new WeftError('ERR_WEFT_INVALID_ARG', `registerSpecs: ${type} would declare more than ${MAX_SPECS_PER_FUNCTION} states`);
      }
      known.set(s.name, { ...s });
    }
  }

  /**
   * Runs one batch on the remote function and resolves with its effects. Performs the
   * missing-state handshake as needed. Rejects with ERR_WEFT_REMOTE (naming the URL, the function
   * and the last error, which is also the `cause`) when the endpoint cannot be reached, keeps
   * failing, answers 4xx or answers something malformed; with ERR_WEFT_CLOSED after
   * {@link close}; with ERR_WEFT_INVALID_ARG for a malformed call.
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
      if (msg.kind === 'invocation-result') {
        try {
          return this.#result(msg.result, type);
        } catch (err) {
          throw new WeftError('ERR_WEFT_REMOTE', `${what} answered an unusable InvocationResponse: ${reason(err)}`, { cause: err });
        }
      }
      if (msg.kind === 'empty') throw new WeftError('ERR_WEFT_REMOTE', `${what} answered a FromFunction with neither an invocation result nor an incomplete invocation context`);
      this.#learn(type, msg.missingValues, sent, what);
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

  #encodeCall(call: RemoteCall): { body: Uint8Array; sent: Set<string> } {
    const state: PersistedValue[] = [];
    const sent = new Set<string>();
    const specs = this.#specs.get(call.target.type);
    if (specs !== undefined) {
      for (const spec of specs.values()) {
        const v = call.state.get(spec.name);
        state.push({
          stateName: spec.name,
          stateValue: v === undefined ? { typename: spec.typename, hasValue: false, value: EMPTY } : { typename: v.typename, hasValue: true, value: v.bytes },
        });
        sent.add(spec.name);
      }
    }
    for (const [name, v] of call.state) {
      if (sent.has(name)) continue;
      state.push({ stateName: name, stateValue: { typename: v.typename, hasValue: true, value: v.bytes } });
      sent.add(name);
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
      const spec: { name: string; typename: string; expireAfterWrite?: number; expireAfterCall?: number } = { name: m.stateName, typename: m.typeTypename };
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
        if (m.stateName.length === 0) throw new WeftError('ERR_WEFT_PROTOCOL', `state mutation ${i} has no state name`);
        const v = m.stateValue;
        // A MODIFY to "no value" stores nothing, which is what a delete leaves.
        if (m.mutationType === 'DELETE' || v === null || !v.hasValue) return { name: m.stateName, value: null };
        const typename = v.typename !== '' ? v.typename : (specs?.get(m.stateName)?.typename ?? '');
        return { name: m.stateName, value: { typename, bytes: v.value.slice() } };
      }),
      outgoing: r.outgoingMessages.map((o, i) => ({ target: target(o.target, `outgoing message ${i}`), ...arg(o.argument, `outgoing message ${i}`) })),
      delayed: r.delayedInvocations.map((d, i): RemoteDelayed => {
        if (d.isCancellationRequest) {
          if (d.cancellationToken.length === 0) throw new WeftError('ERR_WEFT_PROTOCOL', `cancellation request ${i} has no cancellation token`);
          return { delayMs: 0, target: null, typename: null, payload: null, cancellationToken: d.cancellationToken, cancel: true };
        }
        const { typename, payload } = arg(d.argument, `delayed message ${i}`);
        return {
          delayMs: Math.max(0, d.delayInMs),
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

  /** POSTs `body`, retrying what may succeed on another try; resolves with the 200 answer's body. */
  async #post(body: Uint8Array, what: string): Promise<Uint8Array> {
    let last: AttemptFailure | undefined;
    let attempts = 0;
    for (let attempt = 0; attempt <= this.#maxRetries; attempt++) {
      if (attempt > 0) await this.#backoff(attempt);
      if (this.#closed) throw new WeftError('ERR_WEFT_CLOSED', `${what}: the client was closed`, { cause: last });
      attempts++;
      try {
        return await this.#attempt(body);
      } catch (err) {
        last = err instanceof AttemptFailure ? err : new AttemptFailure(reason(err), false, err);
        if (this.#closed) throw new WeftError('ERR_WEFT_CLOSED', `${what}: the client was closed`, { cause: last });
        if (!last.retryable) break;
      }
    }
    throw new WeftError('ERR_WEFT_REMOTE', `${what} failed after ${attempts} attempt${attempts === 1 ? '' : 's'}: ${last?.message ?? 'no attempt made'}`, { cause: last });
  }

  #backoff(retry: number): Promise<void> {
    const base = Math.min(this.#maxBackoffMs, this.#backoffMs * 2 ** (retry - 1));
    const ms = base / 2 + Math.random() * (base / 2);
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

  #attempt(body: Uint8Array): Promise<Uint8Array> {
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
      // One timer for the whole attempt: a socket's idle timeout would not bound a slow trickle.
      const timer = setTimeout(() => fail(new AttemptFailure(`no complete answer within ${this.#timeoutMs} ms (timeoutMs)`, true)), this.#timeoutMs);
      req.on('error', (err) => {
        settle(err instanceof AttemptFailure ? err : new AttemptFailure(`request failed: ${reason(err)}`, true, err));
      });
      req.on('response', (res: IncomingMessage) => this.#readAnswer(res, settle, fail));
      req.end(body);
    });
  }

  #readAnswer(res: IncomingMessage, settle: (err: AttemptFailure | null, value?: Uint8Array) => void, fail: (err: AttemptFailure) => void): void {
    const status = res.statusCode ?? 0;
    const declared = Number(res.headers['content-length']);
    if (status === 200 && declared > this.#maxResponseBytes) {
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
      if (status === 200 || size - chunk.length < MAX_QUOTED_BODY) chunks.push(chunk);
    });
    res.on('error', (err) => settle(new AttemptFailure(`the answer broke off: ${reason(err)}`, true, err)));
    res.on('close', () => {
      if (!res.complete) settle(new AttemptFailure('the answer broke off', true));
    });
    res.on('end', () => {
      const bytes = Buffer.concat(chunks);
      if (status === 200) {
        settle(null, bytes);
        return;
      }
      const text = bytes.toString('utf8', 0, Math.min(bytes.length, MAX_QUOTED_BODY)).trim();
      const quoted = text.length === 0 ? '' : `: ${JSON.stringify(text)}`;
      settle(new AttemptFailure(`HTTP ${status}${quoted}`, status >= 500));
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
