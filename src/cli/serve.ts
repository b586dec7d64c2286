/**
 * `weft serve <module>`: serves a function module to an Apache Flink StateFun cluster over
 * StateFun's HTTP request-reply protocol (the endpoint is {@link statefunHandler}; every path
 * answers, so any `endpoints` URL of the StateFun module works).
 *
 * It binds 127.0.0.1 unless `--host` says otherwise: the endpoint runs functions for whoever can
 * reach it, so exposing it is a decision to make explicitly (and then with `--tls-cert/--tls-key`
 * or behind a proxy that authenticates).
 *
 * Registering it in the command table (src/cli/commands.ts) is one line: import {@link serve}
 * and add it to `COMMANDS`. `serve` has the shape of the CLI's `Command`; on SIGINT/SIGTERM
 * (the context's `signal`) it stops accepting connections, lets in-flight batches finish (up to
 * 10 s), and returns 0.
 */
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { resolve as resolvePath } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { WeftError } from '../core/errors.js';
import type { ModuleDefinition } from '../module/definition.js';
import type { RestateServer } from '../restate/endpoint.js';
import { loadModule } from '../module/runtime.js';
import { STATEFUN_HANDLER_DEFAULTS, statefunHandler } from '../statefun/handler.js';

const EXIT_OK = 0;
const EXIT_FAILURE = 1;
const EXIT_USAGE = 2;

/** How long a stop waits for in-flight requests before cutting their connections. */
const DRAIN_MS = 10_000;

const HELP = `Usage: weft serve <module> [--port 8000] [--host 127.0.0.1] [--max-body-bytes N] [--tls-cert FILE --tls-key FILE]
       weft serve --restate <module> [--port 9080] [--host 127.0.0.1]

Serves the function module's functions to an Apache Flink StateFun cluster over StateFun's HTTP
request-reply protocol. Point the StateFun module's endpoint (kind http) for these function types
at this server; every URL path answers. Runs until SIGINT or SIGTERM.

With --restate, serves the module's function types as Restate virtual objects instead (HTTP/2,
the Restate SDK's endpoint; needs the optional peer dependencies @restatedev/restate-sdk):
register it with the Restate server's admin API (POST /deployments {"uri": "http://host:9080"}).
Egress records and dead letters are written to stdout, one JSON line each.

Options:
  --restate             serve to a Restate server instead of a StateFun cluster
  --port N              TCP port (default 8000, 9080 with --restate; 0 picks a free one)
  --host H              address to bind (default 127.0.0.1; use 0.0.0.0 to accept other hosts)
  --max-body-bytes N    largest request body accepted, larger ones get 500 (default ${STATEFUN_HANDLER_DEFAULTS.maxBodyBytes})
  --max-buffered-bytes N
                        request body bytes held at once over all connections; a request that
                        would pass it gets 503 with Retry-After (default ${STATEFUN_HANDLER_DEFAULTS.maxBufferedBytes},
                        at least --max-body-bytes)
  --batch-timeout-ms N  longest a batch may run before it is answered 500 (default ${STATEFUN_HANDLER_DEFAULTS.batchTimeoutMs})
  --tls-cert FILE       PEM certificate (chain): serve HTTPS (needs --tls-key)
  --tls-key FILE        PEM private key of --tls-cert
  -h, --help            show this help

A batch whose function throws is answered 500 and logged here with its stack; StateFun retries it.`;

/** Where serve writes and what stops it: the same shape as the CLI's `CliContext`. */
export interface ServeContext {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
  /** Aborting it stops the server; serve then resolves with 0. */
  readonly signal: AbortSignal;
}

function line(stream: NodeJS.WritableStream, text: string): void {
  stream.write(text.endsWith('\n') ? text : `${text}\n`);
}

class Usage extends Error {}

function intFlag(flag: string, raw: string | undefined, dflt: number, min: number, max: number): number {
  if (raw === undefined) return dflt;
  const n = raw.trim() === '' ? Number.NaN : Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new Usage(`weft serve: --${flag} must be an integer from ${min} to ${max} (got ${JSON.stringify(raw)})`);
  return n;
}

interface ServeArgs {
  module: string;
  restate: boolean;
  port: number;
  host: string;
  maxBodyBytes: number;
  maxBufferedBytes: number;
  batchTimeoutMs: number;
  tls: { cert: string; key: string } | undefined;
}

function parse(argv: string[]): ServeArgs | 'help' {
  if (argv.includes('--help') || argv.includes('-h')) return 'help';
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        restate: { type: 'boolean' },
        port: { type: 'string' },
        host: { type: 'string' },
        'max-body-bytes': { type: 'string' },
        'max-buffered-bytes': { type: 'string' },
        'batch-timeout-ms': { type: 'string' },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
      },
    });
  } catch (err) {
    const first = (err as Error).message.split(/\.\s/)[0] as string;
    throw new Usage(`weft serve: ${first.charAt(0).toLowerCase()}${first.slice(1)}`);
  }
  const { values, positionals } = parsed;
  if (positionals.length === 0) throw new Usage('weft serve: missing the function module (a file path or file: URL)');
  if (positionals.length > 1) throw new Usage(`weft serve: unexpected argument ${JSON.stringify(positionals[1])}`);
  const cert = values['tls-cert'];
  const key = values['tls-key'];
  if ((cert === undefined) !== (key === undefined)) throw new Usage('weft serve: --tls-cert and --tls-key go together (give both or neither)');
  const host = values.host ?? '127.0.0.1';
  if (host.trim() === '') throw new Usage('weft serve: --host must not be empty');
  const restate = values.restate === true;
  if (restate) {
    for (const flag of ['tls-cert', 'tls-key', 'max-body-bytes', 'max-buffered-bytes', 'batch-timeout-ms'] as const) {
      if (values[flag] !== undefined) throw new Usage(`weft serve: --${flag} is an option of the StateFun endpoint, not of --restate`);
    }
  }
  const maxBodyBytes = intFlag('max-body-bytes', values['max-body-bytes'], STATEFUN_HANDLER_DEFAULTS.maxBodyBytes, 1, 2 ** 31 - 1);
  const maxBufferedBytes = intFlag('max-buffered-bytes', values['max-buffered-bytes'], Math.max(STATEFUN_HANDLER_DEFAULTS.maxBufferedBytes, maxBodyBytes), 1, Number.MAX_SAFE_INTEGER);
  if (maxBufferedBytes < maxBodyBytes) {
    throw new Usage(`weft serve: --max-buffered-bytes (${maxBufferedBytes}) must be at least --max-body-bytes (${maxBodyBytes})`);
  }
  return {
    module: positionals[0] as string,
    restate,
    port: intFlag('port', values.port, restate ? 9080 : 8000, 0, 65535),
    host,
    maxBodyBytes,
    maxBufferedBytes,
    batchTimeoutMs: intFlag('batch-timeout-ms', values['batch-timeout-ms'], STATEFUN_HANDLER_DEFAULTS.batchTimeoutMs, 1, 2 ** 31 - 1),
    tls: cert === undefined || key === undefined ? undefined : { cert, key },
  };
}

function moduleUrl(spec: string): string {
  return spec.startsWith('file:') ? spec : pathToFileURL(resolvePath(spec)).href;
}

/** A signal aborted by the first SIGINT/SIGTERM, for when serve runs outside the CLI runner. */
function processSignal(): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  const stop = (sig: NodeJS.Signals): void => controller.abort(new Error(sig));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  return {
    signal: controller.signal,
    dispose: () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
    },
  };
}

function listen(server: Server, port: number, host: string): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve(server.address() as AddressInfo);
    });
  });
}

/** Stops accepting, waits for in-flight requests up to {@link DRAIN_MS}, then cuts what is left. */
function stop(server: Server): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => server.closeAllConnections(), DRAIN_MS);
    server.close(() => {
      clearTimeout(timer);
      resolve();
    });
    // Idle keep-alive connections would otherwise hold close() until they time out.
    server.closeIdleConnections();
  });
}

/**
 * Runs `weft serve` with the arguments after `serve` and resolves with the exit code: 0 after a
 * stop, 1 when the module, the TLS files or the port cannot be used, 2 for bad usage.
 * Without `ctx` it writes to the process's stdout/stderr and stops on SIGINT/SIGTERM.
 *
 * @example
 * ```ts
 * // src/cli/commands.ts
 * import { serve } from './serve.js';
 * export const COMMANDS: readonly Command[] = [bench, serve, inspect];
 *
 * // or standalone:
 * process.exitCode = await serveCommand(['./functions.js', '--port', '8000']);
 * ```
 */
export async function serveCommand(argv: string[], ctx?: ServeContext): Promise<number> {
  const own = ctx === undefined ? processSignal() : undefined;
  const io: ServeContext = ctx ?? { stdout: process.stdout, stderr: process.stderr, signal: (own as { signal: AbortSignal }).signal };
  try {
    return await run(argv, io);
  } finally {
    own?.dispose();
  }
}

async function run(argv: string[], io: ServeContext): Promise<number> {
  let args: ServeArgs | 'help';
  try {
    args = parse(argv);
  } catch (err) {
    if (!(err instanceof Usage)) throw err;
    line(io.stderr, `${err.message}\n\n${HELP.split('\n')[0] as string}\nRun "weft serve --help" for details.`);
    return EXIT_USAGE;
  }
  if (args === 'help') {
    line(io.stdout, HELP);
    return EXIT_OK;
  }

  let tls: { cert: Buffer; key: Buffer } | undefined;
  if (args.tls !== undefined) {
    try {
      tls = { cert: readFileSync(args.tls.cert), key: readFileSync(args.tls.key) };
    } catch (err) {
      line(io.stderr, `weft serve: cannot read the TLS files: ${(err as Error).message}`);
      return EXIT_FAILURE;
    }
  }

  let definition;
  try {
    definition = await loadModule(moduleUrl(args.module));
  } catch (err) {
    const e = err as Error & { code?: string };
    line(io.stderr, `weft serve: ${e.code === undefined ? '' : `${e.code}: `}${e.message}`);
    return EXIT_FAILURE;
  }

  if (args.restate) return runRestate(args, definition, io);

  const handler = statefunHandler(definition, {
    maxBodyBytes: args.maxBodyBytes,
    maxBufferedBytes: args.maxBufferedBytes,
    batchTimeoutMs: args.batchTimeoutMs,
    onError: (error: WeftError, status: number) => {
      // The client got one line; the operator gets the function's stack.
      const cause = error.cause instanceof Error && status >= 500 ? `\n${error.cause.stack ?? error.cause.message}` : '';
      line(io.stderr, `weft serve: ${status} ${error.code}: ${error.message}${cause}`);
    },
  });
  let server: Server;
  try {
    server = tls === undefined ? createHttpServer(handler) : (createHttpsServer({ cert: tls.cert, key: tls.key }, handler) as unknown as Server);
  } catch (err) {
    line(io.stderr, `weft serve: cannot use the TLS certificate and key: ${(err as Error).message}`);
    return EXIT_FAILURE;
  }
  // Bounds on slow or stalled clients; StateFun's own call timeout is a minute by default.
  server.headersTimeout = 30_000;
  server.requestTimeout = 120_000;

  if (io.signal.aborted) return EXIT_OK;
  let address: AddressInfo;
  try {
    address = await listen(server, args.port, args.host);
  } catch (err) {
    line(io.stderr, `weft serve: cannot listen on ${args.host}:${args.port}: ${(err as Error).message}`);
    return EXIT_FAILURE;
  }
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const types = [...definition.functions.keys()];
  line(
    io.stdout,
    `weft serve: ${types.length} function type${types.length === 1 ? '' : 's'} (${types.join(', ')}) at ${tls === undefined ? 'http' : 'https'}://${host}:${address.port}/`,
  );

  await new Promise<void>((resolve) => {
    if (io.signal.aborted) resolve();
    else io.signal.addEventListener('abort', () => resolve(), { once: true });
  });
  await stop(server);
  line(io.stdout, 'weft serve: stopped');
  return EXIT_OK;
}

/** Egress records as JSON: bytes (a value of `type.bytes()` or an unknown type) as base64. */
function jsonLine(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString('base64') : v));
}

async function runRestate(args: ServeArgs, definition: ModuleDefinition, io: ServeContext): Promise<number> {
  let server: RestateServer;
  try {
    // Imported here: the StateFun endpoint must work without the optional Restate SDK installed.
    const { serveRestate } = await import('../restate/endpoint.js');
    server = await serveRestate(definition, {
      port: args.port,
      host: args.host,
      egress: (record) => {
        line(io.stdout, jsonLine({ egress: record.egress, source: record.source, typename: record.typename, value: record.value }));
      },
      log: (level, message) => line(io.stderr, `weft serve: restate ${level}: ${message}`),
    });
  } catch (err) {
    const e = err as Error & { code?: string };
    line(io.stderr, `weft serve: ${e.code === undefined ? '' : `${e.code}: `}${e.message}`);
    return EXIT_FAILURE;
  }
  const types = [...definition.functions.keys()];
  line(io.stdout, `weft serve: ${types.length} function type${types.length === 1 ? '' : 's'} (${types.join(', ')}) as Restate virtual objects at ${server.url}`);
  await new Promise<void>((resolve) => {
    if (io.signal.aborted) resolve();
    else io.signal.addEventListener('abort', () => resolve(), { once: true });
  });
  await server.close();
  line(io.stdout, 'weft serve: stopped');
  return EXIT_OK;
}

/**
 * The `serve` entry of the CLI's command table (the shape of src/cli/command.ts's `Command`).
 *
 * @example
 * ```ts
 * // src/cli/commands.ts
 * import { serve } from './serve.js';
 * export const COMMANDS: readonly Command[] = [bench, serve, inspect];
 * ```
 */
export const serve = {
  name: 'serve',
  summary: 'serve a function module to an Apache Flink StateFun cluster, or with --restate to a Restate server',
  help: HELP,
  run: (args: string[], ctx: ServeContext): Promise<number> => serveCommand(args, ctx),
} as const;
