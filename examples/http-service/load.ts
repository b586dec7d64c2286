/**
 * A load generator for the service: `concurrency` clients, each sending its next request as soon
 * as the previous one is answered, over keep-alive connections (`node:http` with a keep-alive
 * Agent), for a number of seconds or requests. Reports throughput and latency percentiles.
 *
 *   node dist/examples/http-service/load.js [--url http://127.0.0.1:3000] [--seconds 5]
 *                                           [--requests N] [--concurrency 32] [--accounts 1000]
 *
 * Without --url it starts its own service on a free port and a temp data dir, and closes it after.
 *
 * The request mix: 70% deposits, 10% withdrawals (a 409 for want of funds is an answer, not an
 * error), 20% balance reads. Closed-loop load like this measures the service at the concurrency
 * given; it does not model an open arrival rate (latency under overload would then grow without bound).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { createService } from './server.js';

export interface LoadOptions {
  /** The service's base URL, e.g. `http://127.0.0.1:3000`. */
  url: string;
  /** Stop after this many seconds. Default 5 (unless `requests` is given). */
  seconds?: number;
  /** Stop after this many requests. */
  requests?: number;
  /** Requests in flight (and keep-alive connections). Default 32. */
  concurrency?: number;
  /** Accounts the requests are spread over. Default 1000. */
  accounts?: number;
}

export interface LoadReport {
  requests: number;
  /** Responses by status code. */
  statuses: Record<string, number>;
  /** 5xx responses and failed connections. */
  errors: number;
  seconds: number;
  /** Requests per second. */
  throughput: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number };
}

/** Nearest-rank quantile of ascending `sorted`. */
function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

function call(agent: Agent, url: URL, method: string, body: string | undefined): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, agent, headers: body === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      // Drain the body: the connection goes back to the pool only once the response is read.
      res.resume();
      res.once('end', () => resolve(res.statusCode ?? 0));
      res.once('error', reject);
    });
    req.once('error', reject);
    req.end(body);
  });
}

export async function runLoad(options: LoadOptions): Promise<LoadReport> {
  const concurrency = options.concurrency ?? 32;
  const accounts = options.accounts ?? 1000;
  const maxRequests = options.requests ?? Number.POSITIVE_INFINITY;
  const seconds = options.seconds ?? (options.requests === undefined ? 5 : Number.POSITIVE_INFINITY);
  const base = new URL(options.url);
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });

  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  let errors = 0;
  let issued = 0;
  const started = performance.now();
  const deadline = started + seconds * 1000;

  const client = async (): Promise<void> => {
    while (issued < maxRequests && performance.now() < deadline) {
      issued++;
      const id = `acct-${Math.floor(Math.random() * accounts)}`;
      const r = Math.random();
      const [method, path, body] =
        r < 0.7 ? ['POST', `/accounts/${id}/deposit`, JSON.stringify({ amount: 1 + Math.floor(Math.random() * 10_000) })]
        : r < 0.8 ? ['POST', `/accounts/${id}/withdraw`, JSON.stringify({ amount: 1 + Math.floor(Math.random() * 5_000) })]
        : ['GET', `/accounts/${id}`, undefined];
      const t0 = performance.now();
      try {
        const status = await call(agent, new URL(path, base), method, body);
        latencies.push(performance.now() - t0);
        statuses[status] = (statuses[status] ?? 0) + 1;
        if (status >= 500) errors++;
      } catch {
        errors++;
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: concurrency }, client));
  } finally {
    agent.destroy();
  }

  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    requests: issued,
    statuses,
    errors,
    seconds: elapsed,
    throughput: issued / elapsed,
    latencyMs: { p50: quantile(latencies, 0.5), p90: quantile(latencies, 0.9), p99: quantile(latencies, 0.99), max: quantile(latencies, 1) },
  };
}

export function formatReport(r: LoadReport): string {
  const f = (v: number): string => `${v.toFixed(2)} ms`;
  const statuses = Object.entries(r.statuses).map(([s, n]) => `${s}: ${n}`).join(', ');
  return [
    `${r.requests} requests in ${r.seconds.toFixed(2)} s: ${Math.round(r.throughput)} req/s, ${r.errors} errors`,
    `statuses   ${statuses}`,
    `latency    p50 ${f(r.latencyMs.p50)}  p90 ${f(r.latencyMs.p90)}  p99 ${f(r.latencyMs.p99)}  max ${f(r.latencyMs.max)}`,
  ].join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      url: { type: 'string' },
      seconds: { type: 'string' },
      requests: { type: 'string' },
      concurrency: { type: 'string' },
      accounts: { type: 'string' },
    },
  });
  const num = (name: keyof typeof values): number | undefined => {
    const raw = values[name];
    if (raw === undefined) return undefined;
    const n = Number(raw);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number (got ${JSON.stringify(raw)})`);
    return n;
  };
  const opts = { seconds: num('seconds'), requests: num('requests'), concurrency: num('concurrency'), accounts: num('accounts') };
  const defined = Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) as Omit<LoadOptions, 'url'>;

  if (values.url !== undefined) {
    console.log(formatReport(await runLoad({ ...defined, url: values.url })));
    return;
  }
  const dataDir = mkdtempSync(join(tmpdir(), 'weft-http-load-'));
  const service = await createService({ port: 0, dataDir });
  try {
    console.log(`load against ${service.url} (its own service, data in ${dataDir})`);
    console.log(formatReport(await runLoad({ ...defined, url: service.url })));
  } finally {
    await service.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
