/**
 * What the host waits for from the shards, by request id: the replies of `weft.request` (direct,
 * or held by the commit gate until committed for `durable` ones) and the answers of
 * `weft.query`. Values are decoded here (decode.ts); an id nobody waits for any more (timed out,
 * or a duplicate after a recovery) is ignored.
 */
import { WeftError, deserializeError, type SerializedError } from '../core/errors.js';
import { Kind } from '../contract/envelope.js';
import type { RuntimeModule } from '../module/runtime.js';
import type { InstanceRecord } from '../state/instance.js';
import { decodeQueryResult, decodeValue } from './decode.js';
import type { ShardLink } from './shard-link.js';
import type { Address } from '../core/address.js';
import { RequestTimeouts, type TimeoutList, type Timed } from './request-timeouts.js';
import { IdTable } from '../internal/id-table.js';

/**
 * A `weft.request` waiting for its reply: one object holds everything the request needs until
 * then (its message while it waits for room, its promise's settle functions, its timer), so a
 * request allocates no closure and no timer (main allocates one per request at hundreds of thousands per
 * second: what lives across a scavenge costs main's event loop, issue 13).
 */
export class PendingRequest implements Timed {
  resolve: (value: unknown) => void = noop;
  reject: (err: unknown) => void = noop;
  /** Its place in the timeout lists (see request-timeouts.ts). */
  deadline = 0;
  prev: Timed | null = null;
  next: Timed | null = null;
  list: TimeoutList | null = null;
  /** A durable request's acknowledgement (its reply resolves once it did), else null. */
  ack: Promise<void> | null = null;
  /** The request message's hseq, once accepted (0 before). */
  hseq = 0;
  readonly requestId: number;
  readonly durable: boolean;
  readonly to: Address;
  readonly typename: string;
  readonly payload: Uint8Array;
  readonly idempotencyKey: string | undefined;
  readonly timeoutMs: number;

  constructor(requestId: number, durable: boolean, to: Address, typename: string, payload: Uint8Array, idempotencyKey: string | undefined, timeoutMs: number) {
    this.requestId = requestId;
    this.durable = durable;
    this.to = to;
    this.typename = typename;
    this.payload = payload;
    this.idempotencyKey = idempotencyKey;
    this.timeoutMs = timeoutMs;
  }
}

function noop(): void {}

/** The request whose promise is being made (see {@link capture}). */
let capturing: PendingRequest | undefined;

/** The one executor of every request promise: no closure per request. */
function capture(resolve: (value: unknown) => void, reject: (err: unknown) => void): void {
  const p = capturing as PendingRequest;
  p.resolve = resolve;
  p.reject = reject;
}


interface PendingQuery {
  type: string;
  id: string;
  shard: number;
  resolve(value: Record<string, unknown> | undefined): void;
  reject(err: unknown): void;
}

export class Requests {
  readonly #module: RuntimeModule;
  #seq = 0;
  readonly #requests = new IdTable<PendingRequest>();
  /** Durable requests among {@link #requests}. */
  #durable = 0;
  readonly #timeouts = new RequestTimeouts<PendingRequest>((p) => {
    this.#forget(p);
    p.reject(new WeftError('ERR_WEFT_TIMEOUT', `weft.request to ${p.to.type}/${p.to.id} got no reply within ${p.timeoutMs} ms`));
  });
  readonly #queries = new Map<number, PendingQuery>();
  /** Called when a request leaving (its reply, a timeout, a refusal) leaves none waiting (a held checkpoint may start: coordinator.ts, step 5a). */
  readonly #onQuiet: () => void;

  constructor(module: RuntimeModule, onQuiet: () => void = noop) {
    this.#module = module;
    this.#onQuiet = onQuiet;
  }

  /** A new request (or query) id. */
  nextId(): number {
    return ++this.#seq;
  }

  /** `weft.request` calls waiting for their reply. */
  get size(): number {
    return this.#requests.size;
  }

  /**
   * At most one request waits for its reply, and it is not durable (a durable one waits for a
   * commit): a periodic checkpoint may then wait for that reply (coordinator.ts, step 5a).
   */
  atMostOneUndurable(): boolean {
    return this.#requests.size <= 1 && this.#durable === 0;
  }

  #forget(p: PendingRequest): void {
    if (this.#requests.get(p.requestId) !== p) return;
    this.#requests.delete(p.requestId);
    if (p.durable) this.#durable--;
    if (this.#requests.size === 0) this.#onQuiet();
  }

  /** Registers `pending`: returns its promise, rejected with ERR_WEFT_TIMEOUT after its timeout. */
  add(pending: PendingRequest): Promise<unknown> {
    capturing = pending;
    const promise = new Promise<unknown>(capture);
    capturing = undefined;
    this.#timeouts.add(pending, pending.timeoutMs);
    this.#requests.set(pending.requestId, pending);
    if (pending.durable) this.#durable++;
    return promise;
  }

  /** `pending`'s message was refused: it is rejected with `err`. */
  refuse(pending: PendingRequest, err: unknown): void {
    this.#timeouts.remove(pending);
    this.#forget(pending);
    pending.reject(err);
  }

  /** Is `pending` still waiting for its reply (not timed out, refused or rejected)? */
  isWaiting(pending: PendingRequest): boolean {
    return this.#requests.get(pending.requestId) === pending;
  }

  /** Is request `requestId` durable and still waiting (its reply must then wait for its commit)? */
  isDurable(requestId: number): boolean {
    return this.#requests.get(requestId)?.durable === true;
  }

  /** The reply of a request that is not durable: resolves it (decoded). */
  reply(requestId: number, typename: string, payload: Uint8Array): void {
    const req = this.#take(requestId);
    if (req === undefined) return;
    try {
      req.resolve(decodeValue(this.#module, typename, payload));
    } catch (err) {
      req.reject(err);
    }
  }

  /** The request's target failed for good (dead-lettered): rejects it with that error. */
  replyError(requestId: number, error: SerializedError): void {
    this.#take(requestId)?.reject(deserializeError(error));
  }

  /** The reply of a durable request is committed: resolves it once its message's ack has. */
  releaseDurable(requestId: number, typename: string, payload: Uint8Array): void {
    const req = this.#take(requestId);
    if (req === undefined) return;
    let value: unknown;
    try {
      value = decodeValue(this.#module, typename, payload);
    } catch (err) {
      req.reject(err);
      return;
    }
    // The reply's invocation is committed; the ack of the request message resolves with it or
    // right after (same epoch), so waiting for it keeps "durable" strict.
    (req.ack ?? Promise.resolve()).then(() => req.resolve(value), req.reject);
  }

  #take(requestId: number): PendingRequest | undefined {
    const req = this.#requests.get(requestId);
    if (req === undefined) return undefined;
    this.#forget(req);
    this.#timeouts.remove(req);
    return req;
  }

  /** A query of `type`/`id`, routed to `link`'s shard: queued there, answered by {@link queryResult}. */
  query(link: ShardLink, type: string, id: string): Promise<Record<string, unknown> | undefined> {
    const requestId = this.nextId();
    return new Promise((resolve, reject) => {
      this.#queries.set(requestId, { type, id, shard: link.shard, resolve, reject });
      link.out.push([Kind.Query, requestId, type, id], 64);
    });
  }

  queryResult(requestId: number, record: InstanceRecord | null): void {
    const q = this.#queries.get(requestId);
    if (q === undefined) return;
    this.#queries.delete(requestId);
    try {
      q.resolve(decodeQueryResult(this.#module, q.type, record));
    } catch (err) {
      q.reject(err);
    }
  }

  /** A recovery restarted the shards: queries not answered yet are asked again. */
  resendQueries(links: readonly ShardLink[]): void {
    for (const [requestId, q] of this.#queries) links[q.shard]!.out.push([Kind.Query, requestId, q.type, q.id], 64);
  }

  /**
   * Rejects every waiting request and query with `err`; a request whose message is committed and
   * waits for a paused remote address (`kept`) gets ERR_WEFT_DEFERRED instead.
   */
  rejectAll(err: Error, why: string, kept: (hseq: number) => boolean): void {
    this.#timeouts.clear();
    for (const [, r] of this.#requests.entries()) {
      if (r.hseq !== 0 && kept(r.hseq)) {
        r.reject(new WeftError('ERR_WEFT_DEFERRED', `weft.request(): ${why} before its message was applied: the message waits for a paused remote address; it is committed, kept in the data dir and applied at the next start (do not resend it). Its reply is lost.`, { cause: err }));
      } else r.reject(err);
    }
    this.#requests.clear();
    this.#durable = 0;
    for (const [, q] of this.#queries) q.reject(err);
    this.#queries.clear();
  }
}
