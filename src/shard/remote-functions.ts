/**
 * Remote (StateFun) functions as a shard sees them: which types an endpoint serves, and one
 * keep-alive client per endpoint in this thread. The shard owning an address acts as the StateFun
 * runtime for it (see Dispatcher#invokeRemote): one request in flight per address, the backlog sent
 * as one batch, every registered state attached, the handshake done by the client; a failed call
 * pauses the address (or dead-letters its batch, when the endpoint says so). This file is the
 * dispatcher's {@link RemoteInvoker} over the StateFun protocol: what a batch and its answer are
 * in StateFun terms is said here, not in the dispatcher.
 */
import { REMOTE_MAX_PAUSE_MS, type RemoteEndpointOptions } from '../contract/options.js';
import { RemoteFunctionClient, type RemoteCall, type RemoteResult, type RemoteValue, type StateSpecInfo } from '../statefun/protocol/remote-client.js';
import { isExpired } from '../core/ttl.js';
import { E_CALLER_ID, E_CALLER_TYPE, E_PAYLOAD, E_REPLY_TO, E_TYPENAME, type Envelope } from '../contract/envelope.js';
import type { Instance } from '../state/instance.js';
import type { RemoteEffects, RemoteInvoker, RemoteTarget } from './remote-invoker.js';

/**
 * A host request to a REMOTE function: StateFun has no reply channel, so the request travels
 * with this caller type (id = the request id) and a message the function sends to its caller
 * becomes the reply. The `weft` namespace is reserved, so no function can have this type.
 */
export const REPLY_CALLER_TYPE = 'weft/reply';

/** Matches `'ns/*'` (every function of a namespace) or one exact `'ns/name'`. */
export function remoteMatcher(pattern: string): (type: string) => boolean {
  if (pattern.endsWith('/*')) {
    const prefix = pattern.slice(0, -1);
    return (type) => type.startsWith(prefix) && type.indexOf('/', prefix.length) === -1;
  }
  return (type) => type === pattern;
}

/** One warning per endpoint per this many ms about paused addresses (an outage pauses many). */
const WARN_EVERY_MS = 10_000;

export class RemoteFunctions implements RemoteInvoker {
  readonly #endpoints: Array<{ match: (type: string) => boolean; options: Required<RemoteEndpointOptions>; endpoint?: RemoteEndpoint }>;
  readonly #byType = new Map<string, RemoteEndpoint | null>();

  constructor(endpoints: ReadonlyArray<Required<RemoteEndpointOptions>>) {
    this.#endpoints = endpoints.map((options) => ({ match: remoteMatcher(options.functions), options }));
  }

  get size(): number {
    return this.#endpoints.length;
  }

  /** The endpoint serving `type`, or undefined (first matching endpoint wins). */
  for(type: string): RemoteEndpoint | undefined {
    let ep = this.#byType.get(type);
    if (ep === undefined) {
      const entry = this.#endpoints.find((e) => e.match(type));
      if (entry === undefined) ep = null;
      else {
        entry.endpoint ??= new RemoteEndpoint(entry.options);
        ep = entry.endpoint;
      }
      this.#byType.set(type, ep);
    }
    return ep ?? undefined;
  }

  /** Retries made by this thread's clients (all endpoints). */
  get retries(): number {
    let n = 0;
    for (const e of this.#endpoints) n += e.endpoint?.client.retries ?? 0;
    return n;
  }

  /** State specs learned from handshakes for `type` (empty before the first call). */
  specsOf(type: string): StateSpecInfo[] {
    return this.for(type)?.client.specsOf(type) ?? [];
  }

  async close(): Promise<void> {
    await Promise.all(this.#endpoints.map((e) => e.endpoint?.client.close() ?? Promise.resolve()));
  }
}

/** One endpoint: its client, and its batches in StateFun terms. */
class RemoteEndpoint implements RemoteTarget {
  readonly client: RemoteFunctionClient;
  readonly maxBatch: number;
  readonly onExhausted: 'pause' | 'dead-letter';
  /** First pause after a failed call (ms); it doubles while the address keeps failing, up to #maxPauseMs. */
  readonly #pauseMs: number;
  readonly #maxPauseMs: number;
  #warnedAt = Number.NEGATIVE_INFINITY;
  #unreported = 0;

  constructor(options: Required<RemoteEndpointOptions>) {
    this.client = new RemoteFunctionClient({ url: options.url, timeoutMs: options.timeoutMs });
    this.maxBatch = options.maxBatch;
    this.onExhausted = options.onExhausted;
    this.#pauseMs = options.pauseMs;
    this.#maxPauseMs = Math.max(options.pauseMs, REMOTE_MAX_PAUSE_MS);
  }

  pauseMs(failures: number): number {
    return Math.min(this.#maxPauseMs, this.#pauseMs * 2 ** Math.min(failures - 1, 30));
  }

  /** Reports a paused address, rate-limited to one warning per {@link WARN_EVERY_MS}. */
  paused(type: string, id: string, err: unknown, pauseMs: number): void {
    this.#unreported++;
    const now = Date.now();
    if (now - this.#warnedAt < WARN_EVERY_MS) return;
    this.#warnedAt = now;
    const others = this.#unreported > 1 ? ` (${this.#unreported - 1} more paused since the last warning)` : '';
    this.#unreported = 0;
    const why = err instanceof Error ? err.message : String(err);
    process.emitWarning(`weft: remote function ${type} (id ${JSON.stringify(id)}) paused for ${pauseMs} ms; its messages are kept and tried again${others}: ${why}`);
  }

  /**
   * One call: every stored value goes with it (those past their TTL as absent); a message from a
   * host request names {@link REPLY_CALLER_TYPE} as its caller, and what the function sends
   * there comes back as the request's reply.
   */
  async invoke(type: string, id: string, messages: readonly Envelope[], inst: Instance, now: number): Promise<RemoteEffects> {
    const state = new Map<string, RemoteValue>();
    for (const [name, slot] of inst.slots) state.set(name, { typename: slot.typename ?? '', bytes: slot.bytes });
    const call: RemoteCall = {
      target: { type, id },
      invocations: messages.map((e) => ({
        caller:
          e[E_REPLY_TO] > 0
            ? { type: REPLY_CALLER_TYPE, id: String(e[E_REPLY_TO]) }
            : e[E_CALLER_TYPE] === null
              ? null
              : { type: e[E_CALLER_TYPE], id: e[E_CALLER_ID] as string },
        typename: e[E_TYPENAME],
        payload: e[E_PAYLOAD],
      })),
      state,
      isExpired: (name, spec) => {
        const slot = inst.slots.get(name);
        return slot !== undefined && isExpired(spec, slot.writtenAt, inst.calledAt, now);
      },
    };
    return this.#effects(type, await this.client.invoke(call));
  }

  #effects(type: string, result: RemoteResult): RemoteEffects {
    const sends: Array<RemoteEffects['sends'][number]> = [];
    const replies: Array<RemoteEffects['replies'][number]> = [];
    for (const o of result.outgoing) {
      if (o.target.type === REPLY_CALLER_TYPE) replies.push({ requestId: Number(o.target.id), typename: o.typename, payload: o.payload });
      else sends.push({ type: o.target.type, id: o.target.id, typename: o.typename, payload: o.payload });
    }
    return {
      mutations: result.mutations,
      sends,
      replies,
      delayed: result.delayed,
      egress: result.egress,
      // The specs as the handshakes of this call left them.
      callTimeMatters: this.client.specsOf(type).some((sp) => (sp.expireAfterCall ?? 0) > 0),
    };
  }
}
