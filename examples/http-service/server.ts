/**
 * A small HTTP service with weft embedded, the way an application uses it: the engine runs in the
 * same process as the `node:http` server, and each route is a `weft.request` or `weft.query`.
 *
 *   POST /accounts/:id/deposit   {"amount": 250}  → 200 {"id","balance"}      (committed before the reply)
 *   POST /accounts/:id/withdraw  {"amount": 100}  → 200 {"id","balance"} | 409 insufficient funds
 *   GET  /accounts/:id                            → 200 {"id","balance","operations"} | 404
 *   GET  /healthz                                 → 200 {"status":"ok"}
 *   GET  /metrics                                 → weft's metrics, Prometheus text
 *
 * Errors are JSON `{"error": "..."}` and never carry a stack: 400 bad JSON, id or amount; 404
 * unknown route or account; 405 wrong method; 413 body too large; 504 when the engine did not
 * answer in time (ERR_WEFT_TIMEOUT); 500 for anything else (logged, not shown).
 *
 * Run it: `node dist/examples/http-service/server.js` (PORT, HOST, DATA_DIR from the environment);
 * Ctrl-C shuts it down gracefully.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import { Weft, isWeftError, type WeftOptions } from 'weft';
import { ACCOUNT, type AccountOp, type AccountReply } from './functions.js';

export interface ServiceOptions {
  /** TCP port; 0 picks a free one (see {@link Service.port}). */
  port: number;
  /** Interface to listen on. Default `'127.0.0.1'`. */
  host?: string;
  /** weft's data directory. */
  dataDir: string;
  /** The function module. Default: this example's `functions.js`. */
  module?: URL | string;
  /** How long a route waits for the engine's answer before it responds 504, in ms. Default 5000. */
  requestTimeoutMs?: number;
  /** How long `close()` lets in-flight HTTP requests finish before it cuts connections, in ms. Default 5000. */
  shutdownTimeoutMs?: number;
  /** More engine options (shards, durability, ...). */
  engine?: Omit<WeftOptions, 'module' | 'dataDir'>;
  /** Where unexpected errors are logged. Default `console.error`. */
  log?: (message: string, err: unknown) => void;
}

export interface Service {
  readonly weft: Weft;
  readonly server: Server;
  readonly port: number;
  /** `http://host:port` */
  readonly url: string;
  /** Stops accepting requests, lets in-flight ones finish, then closes the engine. Idempotent. */
  close(): Promise<void>;
}

/** Largest request body accepted, in bytes. */
const MAX_BODY_BYTES = 16 * 1024;
/** Largest amount of one deposit or withdrawal, in cents. */
const MAX_AMOUNT = 1_000_000_000;
const ACCOUNT_ID = /^[A-Za-z0-9_.-]{1,64}$/;

/** An error the client caused: its message is safe to show. */
class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, {
    'content-type': typeof body === 'string' ? 'text/plain; version=0.0.4' : 'application/json',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, `request body is larger than ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch {
    throw new HttpError(400, 'request body must be JSON');
  }
}

function amountOf(body: unknown): number {
  const amount = typeof body === 'object' && body !== null ? (body as { amount?: unknown }).amount : undefined;
  if (typeof amount !== 'number' || !Number.isInteger(amount) || amount <= 0 || amount > MAX_AMOUNT) {
    throw new HttpError(400, `amount must be an integer number of cents from 1 to ${MAX_AMOUNT}`);
  }
  return amount;
}

function accountId(raw: string): string {
  let id: string;
  try {
    id = decodeURIComponent(raw);
  } catch {
    throw new HttpError(400, 'account id is not valid URL encoding');
  }
  if (!ACCOUNT_ID.test(id)) throw new HttpError(400, 'account id must be 1 to 64 letters, digits, "_", "." or "-"');
  return id;
}

function allow(req: IncomingMessage, method: string): void {
  if (req.method !== method) throw new HttpError(405, `use ${method} here`, { allow: method });
}

/**
 * Starts the engine, then the HTTP server.
 *
 * @example
 * ```ts
 * const service = await createService({ port: 8080, dataDir: './weft-data/bank' });
 * // curl -X POST localhost:8080/accounts/ada/deposit -d '{"amount":250}'
 * process.once('SIGTERM', () => void service.close());
 * ```
 */
export async function createService(options: ServiceOptions): Promise<Service> {
  const host = options.host ?? '127.0.0.1';
  const timeoutMs = options.requestTimeoutMs ?? 5000;
  const shutdownTimeoutMs = options.shutdownTimeoutMs ?? 5000;
  const log = options.log ?? ((message: string, err: unknown) => console.error(message, err));
  const weft = await Weft.start({
    // A durable reply waits for the next checkpoint: the interval bounds the latency of every
    // POST, so this service checkpoints more often than weft's default of 50 ms.
    checkpointIntervalMs: 10,
    ...options.engine,
    module: options.module ?? new URL('./functions.js', import.meta.url),
    dataDir: options.dataDir,
  });

  let closing = false;
  /** Responses not yet finished: told to close their connection when shutdown starts. */
  const unfinished = new Set<ServerResponse>();

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { pathname } = new URL(req.url ?? '/', 'http://service');
    const op = /^\/accounts\/([^/]+)\/(deposit|withdraw)$/.exec(pathname);
    if (op !== null) {
      allow(req, 'POST');
      const id = accountId(op[1]!);
      const message: AccountOp = { op: op[2] as AccountOp['op'], amount: amountOf(await readJson(req)) };
      // durable: the 200 goes out only once the new balance is committed, so a client that saw
      // it will see the money after any crash.
      const reply = (await weft.request({ type: ACCOUNT, id }, message, { timeoutMs, durable: true })) as AccountReply;
      if (reply.ok) send(res, 200, { id, balance: reply.balance });
      else send(res, 409, { error: reply.error, id, balance: reply.balance });
      return;
    }
    const account = /^\/accounts\/([^/]+)$/.exec(pathname);
    if (account !== null) {
      allow(req, 'GET');
      const id = accountId(account[1]!);
      const state = await weft.query({ type: ACCOUNT, id });
      if (state === undefined) throw new HttpError(404, `no account ${JSON.stringify(id)}`);
      send(res, 200, { id, balance: state.balance ?? 0, operations: state.operations ?? 0 });
      return;
    }
    if (pathname === '/healthz') {
      allow(req, 'GET');
      send(res, 200, { status: closing ? 'closing' : 'ok' });
      return;
    }
    if (pathname === '/metrics') {
      allow(req, 'GET');
      send(res, 200, weft.metrics('prometheus'));
      return;
    }
    throw new HttpError(404, `no route for ${req.method ?? '?'} ${pathname}`);
  }

  const server = createServer((req, res) => {
    // While shutting down, finish this request but do not keep its connection for another one.
    if (closing) res.setHeader('connection', 'close');
    unfinished.add(res);
    res.once('close', () => unfinished.delete(res));
    route(req, res).catch((err: unknown) => {
      if (res.headersSent) {
        res.destroy();
      } else if (err instanceof HttpError) {
        send(res, err.status, { error: err.message }, err.headers);
      } else if (isWeftError(err) && err.code === 'ERR_WEFT_TIMEOUT') {
        // The message was accepted and may still be applied: a client must not blindly retry a
        // deposit after a 504 (an idempotency key would make that safe).
        send(res, 504, { error: 'the engine did not answer in time; the operation may still take effect' });
      } else {
        log(`${req.method ?? '?'} ${req.url ?? '?'} failed:`, err);
        send(res, 500, { error: 'internal error' });
      }
    });
  });

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    await weft.close();
    throw err;
  }
  const port = (server.address() as AddressInfo).port;

  let closed: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closed ??= (async () => {
      closing = true;
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      // Idle keep-alive connections would hold close() open: end them now. Busy ones end after
      // their response, which now says `connection: close`, or when the bound runs out.
      server.closeIdleConnections();
      for (const res of unfinished) if (!res.headersSent) res.setHeader('connection', 'close');
      let timer: NodeJS.Timeout | undefined;
      const bound = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          server.closeAllConnections();
          resolve();
        }, shutdownTimeoutMs);
      });
      await Promise.race([stopped, bound]);
      clearTimeout(timer);
      await stopped;
      // Only now: requests in flight above still needed the engine.
      await weft.close();
    })();
    return closed;
  };

  return { weft, server, port, url: `http://${host}:${port}`, close };
}

/** `node dist/examples/http-service/server.js`: serve until SIGINT or SIGTERM. */
async function main(): Promise<void> {
  const service = await createService({
    port: Number(process.env.PORT ?? 3000),
    host: process.env.HOST ?? '127.0.0.1',
    dataDir: process.env.DATA_DIR ?? './weft-data/http-service',
  });
  console.log(`listening on ${service.url} (try: curl -X POST ${service.url}/accounts/ada/deposit -d '{"amount":250}')`);
  const stop = (signal: string): void => {
    console.log(`${signal}: shutting down`);
    service.close().then(
      () => process.exit(0),
      (err: unknown) => {
        console.error('shutdown failed:', err);
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
