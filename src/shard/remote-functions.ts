/**
 * Remote (StateFun) functions as a shard sees them: which types an endpoint serves, and one
 * keep-alive client per endpoint in this thread. The shard owning an address acts as the StateFun
 * runtime for it (see Dispatcher#invokeRemote): one request in flight per address, the backlog sent
 * as one batch, every registered state attached, the handshake done by the client; a failed call
 * pauses the address (or dead-letters its batch, when the endpoint says so).
 */
import { REMOTE_MAX_PAUSE_MS, type RemoteEndpointOptions } from '../contract/options.js';
import { RemoteFunctionClient, type StateSpecInfo } from '../statefun/protocol/remote-client.js';

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
  /** What a failed call does to its batch: keep it and pause the address, or dead-letter it. */
  readonly onExhausted: 'pause' | 'dead-letter';
  /** First pause after a failed call (ms); it doubles while the address keeps failing, up to maxPauseMs. */
  readonly pauseMs: number;
  readonly maxPauseMs: number;
  /** Reports a paused address (rate-limited to one warning per endpoint per {@link WARN_EVERY_MS}). */
  paused(type: string, id: string, err: unknown, pauseMs: number): void;
}

/** One warning per endpoint per this many ms about paused addresses (an outage pauses many). */
const WARN_EVERY_MS = 10_000;

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
        entry.endpoint ??= endpointFor(entry.options);
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

function endpointFor(options: Required<RemoteEndpointOptions>): RemoteEndpoint {
  let warnedAt = Number.NEGATIVE_INFINITY;
  let unreported = 0;
  return {
    client: new RemoteFunctionClient({ url: options.url, timeoutMs: options.timeoutMs }),
    maxBatch: options.maxBatch,
    onExhausted: options.onExhausted,
    pauseMs: options.pauseMs,
    maxPauseMs: Math.max(options.pauseMs, REMOTE_MAX_PAUSE_MS),
    paused(type, id, err, pauseMs) {
      unreported++;
      const now = Date.now();
      if (now - warnedAt < WARN_EVERY_MS) return;
      warnedAt = now;
      const others = unreported > 1 ? ` (${unreported - 1} more paused since the last warning)` : '';
      unreported = 0;
      const why = err instanceof Error ? err.message : String(err);
      process.emitWarning(`weft: remote function ${type} (id ${JSON.stringify(id)}) paused for ${pauseMs} ms; its messages are kept and tried again${others}: ${why}`);
    },
  };
}
