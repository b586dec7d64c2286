/**
 * The host side over Restate: weft's `send` / `request` shapes (the {@link WeftClient} interface
 * the embedded engine also satisfies) on Restate's HTTP ingress, through the SDK's clients
 * package `@restatedev/restate-sdk-clients` (an optional peer dependency).
 *
 * Every call carries a fresh idempotency key, and the ingress client retries ambiguous failures
 * (connection lost, 5xx from a restarting server) with that same key: Restate deduplicates by
 * it, so a message the client retried is still taken once.
 */
import { randomUUID } from 'node:crypto';
import type * as RestateClients from '@restatedev/restate-sdk-clients';
import type { Address } from '../core/address.js';
import type { WeftClient } from '../host/client.js';
import { WeftError, describe } from '../core/errors.js';
import { isModuleDefinition, type ModuleDefinition } from '../module/definition.js';
import { DEFAULTS } from '../contract/options.js';
import { compileModule, type RuntimeModule } from '../module/runtime.js';
import { isLive } from '../core/ttl.js';
import { checkTarget, encodeMessage } from '../module/validation.js';
import type { RequestOptions, SendOptions } from '../host/weft.js';
import { META_KEY, decodeMeta, decodeReply, decodeValue, encodeWireMessage } from './invocation.js';
import { HANDLER, restateNames } from './names.js';
import { loadPeer } from './peer.js';

type Clients = typeof RestateClients;

/** Options of {@link connectRestate}. */
export interface RestateClientOptions {
  /** Restate's ingress URL, e.g. `http://127.0.0.1:8080`. */
  readonly url: string;
  /** The function module the endpoint serves (for target checks and typed values). */
  readonly module: ModuleDefinition;
  /** The same `serviceNames` the endpoint was given. */
  readonly serviceNames?: Readonly<Record<string, string>>;
  /** Restate's admin URL (e.g. `http://127.0.0.1:9070`): needed by {@link RestateClient.query} only. */
  readonly adminUrl?: string;
  /** Headers sent with every ingress request (authentication). */
  readonly headers?: Readonly<Record<string, string>>;
  /** Default `request()` timeout (ms). Default 30000. */
  readonly requestTimeoutMs?: number;
  /** Largest encoded message value (bytes). Default 512 KiB. */
  readonly maxMessageBytes?: number;
  /**
   * How long the client retries an ambiguous failure (network error, 5xx) of one call, in ms,
   * with the call's idempotency key. Default 60000.
   */
  readonly retryForMs?: number;
}

/** {@link WeftClient} over Restate's ingress, plus `query` through its admin API. */
export interface RestateClient extends WeftClient {
  /**
   * An instance's state as a plain object (`undefined` when empty), as `weft.query` gives it:
   * read through the admin API's SQL (`adminUrl` needed), values decoded by their declared
   * types, values past their TTL left out.
   */
  query(address: Address): Promise<Record<string, unknown> | undefined>;
}

class Client implements RestateClient {
  readonly #ingress: RestateClients.Ingress;
  readonly #clients: Clients;
  readonly #runtime: RuntimeModule;
  readonly #names: Map<string, string>;
  readonly #opts: RestateClientOptions;
  #closed = false;

  constructor(clients: Clients, opts: RestateClientOptions) {
    this.#clients = clients;
    this.#opts = opts;
    this.#runtime = compileModule(opts.module);
    this.#names = restateNames(this.#runtime.functions.keys(), opts.serviceNames, 'connectRestate');
    this.#ingress = clients.connect({
      url: opts.url,
      ...(opts.headers === undefined ? {} : { headers: { ...opts.headers } }),
      retry: { maxDuration: opts.retryForMs ?? 60_000, maxAttempts: false, initialInterval: 100, maxInterval: 2000 },
    });
  }

  #live(what: string): void {
    if (this.#closed) throw new WeftError('ERR_WEFT_CLOSED', `${what}: the Restate client is closed`);
  }

  #message(to: Address, value: unknown, opts: SendOptions | undefined, what: string): { service: string; parameter: Uint8Array } {
    const a = checkTarget(this.#runtime, to, what);
    const [typename, payload] = encodeMessage(this.#runtime, value, opts?.type, what, this.#opts.maxMessageBytes ?? DEFAULTS.maxMessageBytes);
    return { service: this.#names.get(a.type) as string, parameter: encodeWireMessage({ typename, payload, caller: null }) };
  }

  async send(to: Address, value: unknown, opts?: SendOptions): Promise<void> {
    this.#live('send');
    const { service, parameter } = this.#message(to, value, opts, 'send');
    const { serde, rpc } = this.#clients;
    try {
      await this.#ingress.send({ service, handler: HANDLER, key: to.id, parameter, opts: rpc.sendOpts({ input: serde.binary, idempotencyKey: randomUUID() }) });
    } catch (err) {
      throw this.#failure(err, `send to ${to.type}/${to.id}`);
    }
  }

  async request(to: Address, value: unknown, opts?: RequestOptions): Promise<unknown> {
    this.#live('request');
    const { service, parameter } = this.#message(to, value, opts, 'request');
    const timeoutMs = opts?.timeoutMs ?? this.#opts.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs;
    const { serde, rpc } = this.#clients;
    let out: Uint8Array;
    try {
      out = await this.#ingress.call({
        service,
        handler: HANDLER,
        key: to.id,
        parameter,
        opts: rpc.opts({ input: serde.binary, output: serde.binary, idempotencyKey: randomUUID(), timeout: timeoutMs }),
      });
    } catch (err) {
      throw this.#failure(err, `request to ${to.type}/${to.id}`, timeoutMs);
    }
    const reply = decodeReply(out);
    if (reply === null) {
      // The engine would wait for a reply that never comes; here the invocation is known to be over.
      throw new WeftError('ERR_WEFT_TIMEOUT', `request to ${to.type}/${to.id}: the invocation completed without ctx.reply()`);
    }
    return decodeValue(this.#runtime, reply[0], reply[1]);
  }

  #failure(err: unknown, what: string, timeoutMs?: number): WeftError {
    if (err instanceof WeftError) return err;
    const e = err as { name?: string; status?: number; message?: string };
    if (e?.name === 'TimeoutError' || e?.name === 'AbortError') {
      return new WeftError('ERR_WEFT_TIMEOUT', `${what} got no reply within ${timeoutMs ?? 0} ms`, { cause: err });
    }
    if (err instanceof this.#clients.HttpCallError && err.status >= 400 && err.status < 500 && err.status !== 408 && err.status !== 429) {
      return new WeftError('ERR_WEFT_REMOTE', `${what}: Restate answered ${err.status}: ${err.message}`, { cause: err });
    }
    if (err instanceof this.#clients.HttpCallError) {
      // A terminal failure of the invocation (the function failed every attempt: dead-lettered).
      return new WeftError('ERR_WEFT_USER_CODE', `${what} failed: ${err.message}`, { cause: err });
    }
    return new WeftError('ERR_WEFT_REMOTE', `${what}: ${e?.message ?? describe(err)}`, { cause: err });
  }

  async query(address: Address): Promise<Record<string, unknown> | undefined> {
    this.#live('query');
    const a = checkTarget(this.#runtime, address, 'query');
    const admin = this.#opts.adminUrl;
    if (admin === undefined) throw new WeftError('ERR_WEFT_INVALID_OPTION', 'query needs the adminUrl option of connectRestate (Restate state is read through its admin API)');
    const service = this.#names.get(a.type) as string;
    const sql = `SELECT key, value FROM state WHERE service_name = '${service}' AND service_key = '${a.id.replaceAll("'", "''")}'`;
    const res = await fetch(new URL('/query', admin), {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json', ...this.#opts.headers },
      body: JSON.stringify({ query: sql }),
      signal: AbortSignal.timeout(this.#opts.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs),
    });
    if (!res.ok) throw new WeftError('ERR_WEFT_REMOTE', `query ${a.type}/${a.id}: the admin API answered ${res.status}: ${(await res.text()).slice(0, 300)}`);
    const body = (await res.json()) as { rows?: Array<{ key: string; value: string }> };
    const stored = new Map<string, Uint8Array>();
    for (const row of body.rows ?? []) stored.set(row.key, Buffer.from(row.value, 'hex'));
    const fn = this.#runtime.functions.get(a.type);
    if (fn === undefined) return undefined;
    const meta = decodeMeta(stored.get(META_KEY) ?? null);
    const now = Date.now();
    const out: Record<string, unknown> = {};
    let any = false;
    for (const spec of fn.specs) {
      const bytes = stored.get(spec.name);
      if (bytes === undefined || !isLive(spec, meta.w[spec.name] ?? 0, meta.c, now)) continue;
      out[spec.name] = spec.type.decode(bytes);
      any = true;
    }
    return any ? out : undefined;
  }

  async close(): Promise<void> {
    this.#closed = true;
  }
}

/**
 * A {@link RestateClient} for the Restate server whose ingress is at `options.url`, serving
 * `options.module` (registered from {@link serveRestate} or {@link restateObjects}).
 */
export async function connectRestate(options: RestateClientOptions): Promise<RestateClient> {
  if (typeof options !== 'object' || options === null) throw new WeftError('ERR_WEFT_INVALID_OPTION', `connectRestate options must be an object (got ${describe(options)})`);
  if (typeof options.url !== 'string' || !URL.canParse(options.url)) throw new WeftError('ERR_WEFT_INVALID_OPTION', `connectRestate options.url must be the ingress URL (got ${describe(options.url)})`);
  if (options.adminUrl !== undefined && (typeof options.adminUrl !== 'string' || !URL.canParse(options.adminUrl))) {
    throw new WeftError('ERR_WEFT_INVALID_OPTION', `connectRestate options.adminUrl must be a URL (got ${describe(options.adminUrl)})`);
  }
  if (!isModuleDefinition(options.module)) throw new WeftError('ERR_WEFT_INVALID_OPTION', `connectRestate options.module must be the value defineModule() returned (got ${describe(options.module)})`);
  const clients = await loadPeer<Clients>('@restatedev/restate-sdk-clients', 'connectRestate (weft/restate)');
  return new Client(clients, options);
}
