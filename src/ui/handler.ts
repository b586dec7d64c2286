/**
 * `weft/ui`: a small web view of a running engine for operators — shards, throughput, backlog,
 * checkpoints, dead letters, an instance's state by address, and a paged list of a type's
 * instances. One `(req, res)` handler for `node:http`, mountable in the host's own server; the
 * page is plain HTML, CSS and vanilla JS served by the handler itself (no framework, no build
 * step, nothing from elsewhere), polling a JSON endpoint. Every value the page shows is set as
 * text (never parsed as HTML), and the responses carry a strict Content-Security-Policy (scripts,
 * styles and fetches from the same origin only), so ids and state — user data — cannot inject.
 *
 * ```
 *   GET <base>                 the page            GET <base>api/overview    metrics() + recent checkpoints and dead letters
 *   GET <base>ui.js, ui.css    its script, style   GET <base>api/query?type=&id=
 *                                                  GET <base>api/instances?type=&prefix=&after=&limit=
 * ```
 *
 * It has NO authentication: whoever reaches it sees every instance's state. {@link startUi}
 * binds 127.0.0.1 unless told otherwise; mounted in your own server, it is as exposed as that
 * server — put it behind your authentication, or keep it on loopback.
 *
 * Recent checkpoints and dead letters are collected from the `weft:checkpoint` and
 * `weft:dead-letter` diagnostics channels from the moment the handler is created (reading the
 * `weft/dead-letters` egress would take its records away from the host). Those channels are
 * process-wide: with several engines in one process, the lists show all of theirs.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WeftError, describe } from '../core/errors.js';
import type { Weft } from '../host/weft.js';
import type { DeadLetter } from '../host/decode.js';
import { PAGE_CSS, PAGE_HTML, PAGE_JS } from './assets.js';

/** Options of {@link weftUi}. */
export interface WeftUiOptions {
  /** The path the view is mounted at, starting and ending with "/". Default "/". */
  basePath?: string;
  /** How often the page refreshes, in ms (250 to 60000). Default 1000. */
  pollMs?: number;
  /** Function types offered in the page's type fields (any type can still be typed in). */
  types?: readonly string[];
  /** Recent checkpoints and dead letters kept for the page. Default 20. */
  recent?: number;
}

/** A `node:http` request handler; `next`, when given (Express and the like), gets requests outside the base path. */
export type WeftUiHandler = ((req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void) => void) & {
  /** Stops collecting checkpoints and dead letters (the handler keeps serving). */
  close(): void;
};

const PAGE_LIMIT_DEFAULT = 50;
const PAGE_LIMIT_MAX = 500;

const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

interface CheckpointEvent {
  epoch: number;
  ms: number;
  bytes: number;
  states: number;
  at: number;
}

function resolveUiOptions(o: WeftUiOptions | undefined): Required<WeftUiOptions> {
  if (o !== undefined && (o === null || typeof o !== 'object')) throw new WeftError('ERR_WEFT_INVALID_ARG', `weftUi options must be an object (got ${describe(o)})`);
  const basePath = o?.basePath ?? '/';
  if (typeof basePath !== 'string' || !basePath.startsWith('/') || !basePath.endsWith('/') || /[?#\s]/.test(basePath)) {
    throw new WeftError('ERR_WEFT_INVALID_ARG', `weftUi options.basePath must be a path starting and ending with "/" (got ${describe(basePath)})`);
  }
  const pollMs = o?.pollMs ?? 1000;
  if (typeof pollMs !== 'number' || !Number.isInteger(pollMs) || pollMs < 250 || pollMs > 60_000) {
    throw new WeftError('ERR_WEFT_INVALID_ARG', `weftUi options.pollMs must be an integer from 250 to 60000 (got ${describe(pollMs)})`);
  }
  const types = o?.types ?? [];
  if (!Array.isArray(types) || types.some((t) => typeof t !== 'string')) {
    throw new WeftError('ERR_WEFT_INVALID_ARG', `weftUi options.types must be an array of function typenames (got ${describe(types)})`);
  }
  const recent = o?.recent ?? 20;
  if (typeof recent !== 'number' || !Number.isInteger(recent) || recent < 0 || recent > 1000) {
    throw new WeftError('ERR_WEFT_INVALID_ARG', `weftUi options.recent must be an integer from 0 to 1000 (got ${describe(recent)})`);
  }
  return { basePath, pollMs, types: [...types], recent };
}

/** JSON for the page: bytes as hex (first 256), bigints as strings, errors as { name, code, message }. */
function replacer(_key: string, value: unknown): unknown {
  if (value instanceof Uint8Array) {
    const hex = Buffer.from(value.buffer, value.byteOffset, Math.min(value.byteLength, 256)).toString('hex');
    return { bytes: value.byteLength, hex: value.byteLength > 256 ? `${hex}...` : hex };
  }
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Error) return { name: value.name, code: (value as { code?: unknown }).code ?? null, message: value.message };
  return value;
}

function send(res: ServerResponse, status: number, type: string, body: string | Buffer, extra: Record<string, string> = {}): void {
  res.writeHead(status, {
    'content-type': type,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'x-frame-options': 'DENY',
    'content-security-policy': CSP,
    ...extra,
  });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  // '<', '>' and '&' as \u escapes: the same JSON, and no markup even if something sniffs it as HTML.
  const body = JSON.stringify(value, replacer).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  send(res, status, 'application/json; charset=utf-8', body);
}

function sendError(res: ServerResponse, err: unknown): void {
  const code = err instanceof WeftError ? err.code : 'ERR_WEFT_INTERNAL';
  const status = code === 'ERR_WEFT_CLOSED' ? 503 : code === 'ERR_WEFT_INTERNAL' || code === 'ERR_WEFT_DATA_DIR' ? 500 : 400;
  sendJson(res, status, { error: { code, message: err instanceof Error ? err.message : String(err) } });
}

/**
 * The web view of `weft` as a request handler. Only GET and HEAD are answered (405 otherwise);
 * paths outside `basePath` get 404, or go to `next` when the caller passes one.
 *
 * @example
 * ```ts
 * import { createServer } from 'node:http';
 * import { weftUi } from 'weft/ui';
 * createServer(weftUi(weft)).listen(8080, '127.0.0.1'); // no authentication: keep it on loopback
 * ```
 */
export function weftUi(weft: Weft, options?: WeftUiOptions): WeftUiHandler {
  const opts = resolveUiOptions(options);
  const checkpoints: CheckpointEvent[] = [];
  const deadLetters: DeadLetter[] = [];
  const keep = <T>(list: T[], item: T): void => {
    if (opts.recent === 0) return;
    list.push(item);
    if (list.length > opts.recent) list.shift();
  };
  const onCheckpoint = (msg: unknown): void => keep(checkpoints, { ...(msg as Omit<CheckpointEvent, 'at'>), at: Date.now() });
  const onDeadLetter = (msg: unknown): void => keep(deadLetters, msg as DeadLetter);
  subscribe('weft:checkpoint', onCheckpoint);
  subscribe('weft:dead-letter', onDeadLetter);
  const config = JSON.stringify({ pollMs: opts.pollMs, types: opts.types, pageLimit: PAGE_LIMIT_DEFAULT });
  const html = PAGE_HTML.replace('%CONFIG%', config.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;').replace(/>/g, '&gt;'));

  const api = async (route: string, params: URLSearchParams, res: ServerResponse): Promise<void> => {
    switch (route) {
      case 'api/overview': {
        const m = weft.metrics();
        const shards = m.shards.map(({ latencyHistogram: _h, ...rest }) => rest);
        sendJson(res, 200, { now: Date.now(), metrics: { ...m, shards }, checkpoints, deadLetters });
        return;
      }
      case 'api/query': {
        const type = params.get('type') ?? '';
        const id = params.get('id') ?? '';
        const state = await weft.query({ type, id });
        sendJson(res, 200, { type, id, state: state ?? null });
        return;
      }
      case 'api/instances': {
        const type = params.get('type') ?? '';
        const rawLimit = params.get('limit');
        const limit = rawLimit === null ? PAGE_LIMIT_DEFAULT : Number(rawLimit);
        if (!Number.isInteger(limit) || limit < 1 || limit > PAGE_LIMIT_MAX) {
          throw new WeftError('ERR_WEFT_INVALID_ARG', `limit must be an integer from 1 to ${PAGE_LIMIT_MAX} (got ${describe(rawLimit)})`);
        }
        const prefix = params.get('prefix') ?? '';
        const after = params.get('after');
        const items: Array<{ id: string; state: Record<string, unknown> }> = [];
        let more = false;
        const it = weft.instances(type, { prefix, limit: limit + 1, withState: true, ...(after === null || after === '' ? {} : { after }) });
        for await (const e of it) {
          if (items.length === limit) {
            more = true;
            break;
          }
          items.push(e);
        }
        sendJson(res, 200, { type, prefix, after, items, more });
        return;
      }
      default:
        sendJson(res, 404, { error: { code: 'NOT_FOUND', message: `no such endpoint: ${route}` } });
    }
  };

  const handler = ((req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void): void => {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://weft.invalid');
    } catch {
      send(res, 400, 'text/plain; charset=utf-8', 'bad request\n');
      return;
    }
    const path = url.pathname;
    if (path === opts.basePath.slice(0, -1) && opts.basePath !== '/') {
      send(res, 301, 'text/plain; charset=utf-8', 'moved\n', { location: opts.basePath });
      return;
    }
    if (!path.startsWith(opts.basePath)) {
      if (next !== undefined) next();
      else send(res, 404, 'text/plain; charset=utf-8', 'not found\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(res, 405, 'text/plain; charset=utf-8', 'only GET and HEAD\n', { allow: 'GET, HEAD' });
      return;
    }
    const route = path.slice(opts.basePath.length);
    if (route === '' || route === 'index.html') send(res, 200, 'text/html; charset=utf-8', html);
    else if (route === 'ui.js') send(res, 200, 'text/javascript; charset=utf-8', PAGE_JS);
    else if (route === 'ui.css') send(res, 200, 'text/css; charset=utf-8', PAGE_CSS);
    else if (route.startsWith('api/')) {
      api(route, url.searchParams, res).catch((err: unknown) => {
        if (res.headersSent) res.destroy();
        else sendError(res, err);
      });
    } else send(res, 404, 'text/plain; charset=utf-8', 'not found\n');
  }) as WeftUiHandler;
  handler.close = () => {
    unsubscribe('weft:checkpoint', onCheckpoint);
    unsubscribe('weft:dead-letter', onDeadLetter);
  };
  return handler;
}

/** Options of {@link startUi}: those of {@link weftUi}, plus where to listen. */
export interface StartUiOptions extends WeftUiOptions {
  /** Default 0: a free port. */
  port?: number;
  /** Default "127.0.0.1". The view has no authentication: bind another address deliberately. */
  host?: string;
}

/** A running web view, from {@link startUi}. */
export interface RunningUi {
  /** Where it listens, e.g. `http://127.0.0.1:41234/`. */
  readonly url: string;
  readonly server: Server;
  /** Stops the server and the collection of events. */
  close(): Promise<void>;
}

/**
 * Serves {@link weftUi} on its own HTTP server, bound to 127.0.0.1 unless `host` says otherwise.
 *
 * @example
 * ```ts
 * const ui = await startUi(weft, { port: 8080 });
 * console.log(`weft ui at ${ui.url}`);
 * ```
 */
export async function startUi(weft: Weft, options?: StartUiOptions): Promise<RunningUi> {
  const { port = 0, host = '127.0.0.1', ...uiOptions } = options ?? {};
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new WeftError('ERR_WEFT_INVALID_ARG', `startUi options.port must be an integer from 0 to 65535 (got ${describe(port)})`);
  if (typeof host !== 'string' || host.length === 0) throw new WeftError('ERR_WEFT_INVALID_ARG', `startUi options.host must be a non-empty string (got ${describe(host)})`);
  const handler = weftUi(weft, uiOptions);
  const server = createServer(handler);
  server.headersTimeout = 30_000;
  server.requestTimeout = 60_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const shown = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${shown}:${addr.port}${uiOptions.basePath ?? '/'}`,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        handler.close();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
