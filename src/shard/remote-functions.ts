/**
 * Remote (StateFun) functions as a shard sees them: which types an endpoint serves, and one
 * keep-alive client per endpoint in this thread. The shard owning an address acts as the StateFun
 * runtime for it (see Dispatcher#invokeRemote): one request in flight per address, the backlog sent
 * as one batch, every known state attached, the handshake done by the client.
 */
import type { RemoteEndpointOptions } from '../options.js';
import { RemoteFunctionClient, type StateSpecInfo } from '../statefun/remote-client.js';
import { isExpired } from '../state/ttl.js';

/** Matches `'ns/*'` (every function of a namespace) or one exact `'ns/name'`. */
export function remoteMatcher(pattern: string): (type: string) => boolean {
  if (pattern.endsWith('/*')) {
    const prefix = pattern.slice(0, -1);
    return (type) => type.startsWith(prefix) && type.indexOf('/', prefix.length) === -1;
  }
  return (type) => type === pattern;
}

export interface RemoteEndpoint {
  readonly client: RemoteFunctionClient;
  readonly maxBatch: number;
}

export class RemoteFunctions {
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
        entry.endpoint ??= {
          client: new RemoteFunctionClient({ url: entry.options.url, timeoutMs: entry.options.timeoutMs }),
          maxBatch: entry.options.maxBatch,
        };
        ep = entry.endpoint;
      }
      this.#byType.set(type, ep);
    }
    return ep ?? undefined;
  }

  /** State specs learned from handshakes for `type` (empty before the first call). */
  specsOf(type: string): StateSpecInfo[] {
    return this.for(type)?.client.specsOf(type) ?? [];
  }

  async close(): Promise<void> {
    await Promise.all(this.#endpoints.map((e) => e.endpoint?.client.close() ?? Promise.resolve()));
  }
}

/** Whether a remote value has expired under its learned spec (same rules as weft functions). */
export function remoteExpired(spec: StateSpecInfo | undefined, writtenAt: number, calledAt: number, now: number): boolean {
  return spec !== undefined && isExpired(spec, writtenAt, calledAt, now);
}
