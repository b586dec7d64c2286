/**
 * The HTTP service example over real HTTP on 127.0.0.1: every route and status code, the load
 * script, and shutdown (graceful for a request in flight; no handle left behind, checked in a
 * child process that must exit on its own). Needs `npm run build` first: the engine's shards
 * load compiled modules.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createService, type Service } from '../../examples/http-service/server.js';
import { runLoad } from '../../examples/http-service/load.js';

const COMPILED = new URL('../../dist/examples/http-service/', import.meta.url);
/** The service imported from source would look for functions.js next to server.ts: use the compiled one. */
const MODULE = new URL('functions.js', COMPILED);
const ENGINE = { shards: 2, durability: 'process' } as const;

interface Response {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: unknown;
}

/** One HTTP exchange, bounded so that a hung server fails the test instead of stalling it. */
function http(base: string, method: string, path: string, body?: string, agent?: Agent): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, base), { method, agent: agent ?? false, timeout: 15_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.once('end', () => {
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
    });
    req.once('timeout', () => req.destroy(new Error(`${method} ${path}: no response within 15 s`)));
    req.once('error', reject);
    req.end(body);
  });
}

/** An error body: JSON `{ error }` and nothing that looks like a stack trace. */
function expectCleanError(r: Response, status: number): void {
  expect(r.status, r.text).toBe(status);
  expect(r.headers['content-type']).toBe('application/json');
  expect(Object.keys(r.json as object)).toContain('error');
  expect(r.text).not.toMatch(/\bat .*\(|\.js:\d+|\.ts:\d+|Error:/);
}

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'weft-http-test-'));
}

describe('examples/http-service', () => {
  let service: Service;
  let dir: string;
  const logged: string[] = [];

  beforeAll(async () => {
    dir = tempDir();
    service = await createService({ port: 0, dataDir: dir, module: MODULE, engine: ENGINE, log: (message) => logged.push(message) });
  });

  afterAll(async () => {
    await service?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('listens on 127.0.0.1 on the port it was given (0: a free one)', () => {
    expect(service.port).toBeGreaterThan(0);
    expect(service.url).toBe(`http://127.0.0.1:${service.port}`);
  });

  it('deposits, withdraws and reads balances', async () => {
    const base = service.url;
    expect((await http(base, 'POST', '/accounts/ada/deposit', '{"amount":250}')).json).toEqual({ id: 'ada', balance: 250 });
    expect((await http(base, 'POST', '/accounts/ada/deposit', '{"amount":50}')).json).toEqual({ id: 'ada', balance: 300 });
    const w = await http(base, 'POST', '/accounts/ada/withdraw', '{"amount":100}');
    expect(w.status).toBe(200);
    expect(w.json).toEqual({ id: 'ada', balance: 200 });
    const read = await http(base, 'GET', '/accounts/ada');
    expect(read.status).toBe(200);
    expect(read.headers['content-type']).toBe('application/json');
    expect(read.json).toEqual({ id: 'ada', balance: 200, operations: 3 });
  });

  it('answers 409 when the money is not there, and changes nothing', async () => {
    const r = await http(service.url, 'POST', '/accounts/bob/withdraw', '{"amount":1}');
    expect(r.status).toBe(409);
    expect(r.json).toEqual({ error: 'insufficient funds', id: 'bob', balance: 0 });
    // No state was written: the account does not exist.
    expectCleanError(await http(service.url, 'GET', '/accounts/bob'), 404);
  });

  it('answers 400 for bad JSON, amounts and account ids', async () => {
    const base = service.url;
    expectCleanError(await http(base, 'POST', '/accounts/ada/deposit', '{"amount":'), 400);
    expectCleanError(await http(base, 'POST', '/accounts/ada/deposit', ''), 400);
    for (const body of ['{}', '{"amount":0}', '{"amount":-5}', '{"amount":1.5}', '{"amount":"10"}', '{"amount":1e15}', '[]', 'null', '7']) {
      const r = await http(base, 'POST', '/accounts/ada/deposit', body);
      expectCleanError(r, 400);
      expect((r.json as { error: string }).error).toMatch(/^amount must be an integer/);
    }
    expectCleanError(await http(base, 'POST', `/accounts/${'x'.repeat(65)}/deposit`, '{"amount":1}'), 400);
    expectCleanError(await http(base, 'GET', '/accounts/a%20b'), 400);
    expectCleanError(await http(base, 'GET', '/accounts/%E0%A4%A'), 400);
    // None of it reached the account.
    expect((await http(base, 'GET', '/accounts/ada')).json).toMatchObject({ balance: 200 });
  });

  it('answers 404 for unknown routes and accounts, 405 for the wrong method, 413 for a huge body', async () => {
    const base = service.url;
    for (const [method, path] of [['GET', '/'], ['GET', '/accounts'], ['POST', '/accounts/ada/steal'], ['GET', '/accounts/ada/deposit/x']]) {
      expectCleanError(await http(base, method!, path!), 404);
    }
    expectCleanError(await http(base, 'GET', '/accounts/nobody'), 404);
    const wrong = await http(base, 'GET', '/accounts/ada/deposit');
    expectCleanError(wrong, 405);
    expect(wrong.headers.allow).toBe('POST');
    expect((await http(base, 'DELETE', '/accounts/ada')).headers.allow).toBe('GET');
    expectCleanError(await http(base, 'POST', '/accounts/ada/deposit', JSON.stringify({ amount: 1, pad: 'x'.repeat(20_000) })), 413);
  });

  it('serves health and Prometheus metrics', async () => {
    const health = await http(service.url, 'GET', '/healthz');
    expect(health.json).toEqual({ status: 'ok' });
    const metrics = await http(service.url, 'GET', '/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.text).toContain('weft_shard_invocations_total{shard="0"}');
  });

  it('runs the load script briefly and reports throughput and percentiles', async () => {
    const report = await runLoad({ url: service.url, requests: 300, concurrency: 8, accounts: 50 });
    expect(report.requests).toBe(300);
    expect(report.errors).toBe(0);
    expect(Object.values(report.statuses).reduce((a, n) => a + n, 0)).toBe(300);
    for (const status of Object.keys(report.statuses)) expect(['200', '404', '409']).toContain(status);
    const { p50, p90, p99, max } = report.latencyMs;
    expect(p50).toBeGreaterThan(0);
    expect(p50).toBeLessThanOrEqual(p90);
    expect(p90).toBeLessThanOrEqual(p99);
    expect(p99).toBeLessThanOrEqual(max);
    expect(report.throughput).toBeGreaterThan(0);
  });

  it('answers 500 without details when the engine fails under it, and logs the cause', async () => {
    const d = tempDir();
    const broken = await createService({ port: 0, dataDir: d, module: MODULE, engine: ENGINE, log: (message) => logged.push(message) });
    try {
      // What a failed engine looks like from the service: every call is refused.
      await broken.weft.close();
      const before = logged.length;
      const r = await http(broken.url, 'GET', '/accounts/ada');
      expectCleanError(r, 500);
      expect(r.json).toEqual({ error: 'internal error' });
      expect(logged.slice(before)).toEqual(['GET /accounts/ada failed:']);
    } finally {
      await broken.close();
      rmSync(d, { recursive: true, force: true });
    }
  });

  it('answers 504 when the function does not reply in time', async () => {
    // A module whose account replies too late for the route (a function that forgets ctx.reply
    // gets ERR_WEFT_NO_REPLY at once instead). Written as compiled JS because the shards load it.
    const d = tempDir();
    const weftUrl = new URL('../../dist/src/index.js', import.meta.url).href;
    const module = join(d, 'silent.mjs');
    writeFileSync(
      module,
      `import { defineModule, type } from ${JSON.stringify(weftUrl)};\n` +
        `export default defineModule({ functions: { 'bank/account': { state: { balance: type.long(), operations: type.int() }, async fn(ctx) { await new Promise((r) => setTimeout(r, 1000)); ctx.reply({ balance: 0 }); } } } });\n`,
    );
    const silent = await createService({ port: 0, dataDir: join(d, 'data'), module, requestTimeoutMs: 100, engine: ENGINE });
    try {
      const r = await http(silent.url, 'POST', '/accounts/ada/deposit', '{"amount":1}');
      expectCleanError(r, 504);
      expect(r.json).toEqual({ error: 'the engine did not answer in time; the operation may still take effect' });
    } finally {
      await silent.close();
      rmSync(d, { recursive: true, force: true });
    }
  });

  it('shuts down gracefully: a request in flight completes, idle keep-alive connections do not hold it up', async () => {
    const d = tempDir();
    const s = await createService({ port: 0, dataDir: d, module: MODULE, engine: ENGINE });
    const agent = new Agent({ keepAlive: true });
    try {
      // An idle keep-alive connection from this agent stays open after this exchange.
      expect((await http(s.url, 'POST', '/accounts/ada/deposit', '{"amount":5}', agent)).status).toBe(200);
      // Close as soon as the next request has reached the server: it must still be answered.
      let closing: Promise<void> | undefined;
      s.server.once('request', () => {
        closing = s.close();
      });
      const inFlight = await http(s.url, 'POST', '/accounts/ada/deposit', '{"amount":7}', new Agent({ keepAlive: true }));
      expect(inFlight.status).toBe(200);
      expect(inFlight.json).toEqual({ id: 'ada', balance: 12 });
      expect(inFlight.headers.connection).toBe('close');
      expect(closing).toBeDefined();
      await closing;
      expect(s.server.listening).toBe(false);
      await expect(http(s.url, 'GET', '/healthz')).rejects.toThrow(/ECONNREFUSED/);
      // The committed balance survives: a new service on the same data dir sees it.
      const again = await createService({ port: 0, dataDir: d, module: MODULE, engine: ENGINE });
      try {
        expect((await http(again.url, 'GET', '/accounts/ada')).json).toEqual({ id: 'ada', balance: 12, operations: 2 });
      } finally {
        await again.close();
      }
    } finally {
      agent.destroy();
      await s.close();
      rmSync(d, { recursive: true, force: true });
    }
  });

  it('leaves no handle behind: load.js starts a service, loads it over keep-alive, closes it, and its process exits', { timeout: 70_000 }, async () => {
    const file = fileURLToPath(new URL('load.js', COMPILED));
    const child = spawn(process.execPath, [file, '--requests', '200', '--concurrency', '4'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, WEFT_SHARDS: '2' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    // The bound: a leaked socket, timer or worker would keep the process alive past it.
    const code = await new Promise<number | null>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`load.js did not exit within 60 s\nstdout:\n${stdout}\nstderr:\n${stderr}`));
      }, 60_000);
      child.once('error', reject);
      child.once('exit', (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    expect(code, `stdout:\n${stdout}\nstderr:\n${stderr}`).toBe(0);
    expect(stderr).toBe('');
    expect(stdout).toMatch(/^200 requests in [\d.]+ s: \d+ req\/s, 0 errors$/m);
    expect(stdout).toMatch(/^latency +p50 [\d.]+ ms +p90 [\d.]+ ms +p99 [\d.]+ ms +max [\d.]+ ms$/m);
  });
});
