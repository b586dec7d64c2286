/**
 * Starts a real `restate-server` (the binary of the npm package @restatedev/restate-server) for
 * the interop tests: every port on 127.0.0.1 and picked free, its data in a temp dir, SIGKILL-able
 * and restartable on the same dir. Every wait is bounded and fails with what it waited for.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const require = createRequire(import.meta.url);

/** The server binary the npm package ships for this platform. */
export function restateServerBinary(): string {
  return require.resolve(`@restatedev/restate-server-${process.platform}-${process.arch}/bin/restate-server`);
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

export async function waitFor<T>(what: string, ms: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not reached within ${ms} ms${last === undefined ? '' : ` (last error: ${String((last as Error)?.message ?? last)})`}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export class RestateServer {
  readonly dir = mkdtempSync(join(tmpdir(), 'weft-restate-'));
  ingressPort = 0;
  adminPort = 0;
  nodePort = 0;
  #proc: ChildProcess | undefined;
  #log: string[] = [];

  get ingressUrl(): string {
    return `http://127.0.0.1:${this.ingressPort}`;
  }

  get adminUrl(): string {
    return `http://127.0.0.1:${this.adminPort}`;
  }

  /** The last lines the server wrote (for failure messages). */
  get log(): string {
    return this.#log.join('').slice(-4000);
  }

  /** Starts the server (on the same ports and data dir when restarted) and waits until it serves. */
  async start(): Promise<void> {
    if (this.ingressPort === 0) {
      this.ingressPort = await freePort();
      this.adminPort = await freePort();
      this.nodePort = await freePort();
    }
    const proc = spawn(restateServerBinary(), ['--node-name', 'weft-test', '--base-dir', join(this.dir, 'data'), '--listen-mode', 'tcp', '--no-logo', '--default-num-partitions', '4'], {
      env: {
        PATH: process.env.PATH ?? '',
        HOME: this.dir,
        RESTATE_BIND_ADDRESS: `127.0.0.1:${this.nodePort}`,
        RESTATE_ADVERTISED_ADDRESS: `http://127.0.0.1:${this.nodePort}`,
        RESTATE_ADMIN__BIND_ADDRESS: `127.0.0.1:${this.adminPort}`,
        RESTATE_INGRESS__BIND_ADDRESS: `127.0.0.1:${this.ingressPort}`,
        RESTATE_DISABLE_TELEMETRY: 'true',
        RESTATE_LOG_FORMAT: 'compact',
        RESTATE_LOG_DISABLE_ANSI_CODES: 'true',
        RESTATE_ROCKSDB_TOTAL_MEMORY_SIZE: '256MB',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.#proc = proc;
    const keep = (b: Buffer): void => {
      this.#log.push(b.toString());
      if (this.#log.length > 200) this.#log.splice(0, 100);
    };
    proc.stdout?.on('data', keep);
    proc.stderr?.on('data', keep);
    await waitFor('restate-server admin and ingress health', 60_000, async () => {
      if (proc.exitCode !== null) throw new Error(`restate-server exited with ${proc.exitCode}: ${this.log}`);
      const a = await fetch(`${this.adminUrl}/health`, { signal: AbortSignal.timeout(2000) });
      const i = await fetch(`${this.ingressUrl}/restate/health`, { signal: AbortSignal.timeout(2000) });
      return a.ok && i.ok ? true : undefined;
    });
  }

  /** Kills the server at once (no shutdown), and waits for it to be gone. */
  async kill(): Promise<void> {
    const proc = this.#proc;
    this.#proc = undefined;
    if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill('SIGKILL');
    await waitFor('restate-server to exit after SIGKILL', 10_000, async () => ((await Promise.race([gone.then(() => true), new Promise((r) => setTimeout(() => r(undefined), 200))])) as true | undefined));
  }

  /** Registers a deployment (the endpoint's URL) through the admin API. */
  async register(uri: string): Promise<unknown> {
    const res = await fetch(`${this.adminUrl}/deployments`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ uri, force: true }),
      signal: AbortSignal.timeout(30_000),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`POST /deployments ${uri} answered ${res.status}: ${text}`);
    return JSON.parse(text) as unknown;
  }

  /** Runs SQL on the admin API's query endpoint. */
  async sql<R>(query: string): Promise<R[]> {
    const res = await fetch(`${this.adminUrl}/query`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({ query }),
      signal: AbortSignal.timeout(10_000),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`POST /query answered ${res.status}: ${text}`);
    return (JSON.parse(text) as { rows: R[] }).rows;
  }

  /** Invocations neither completed nor scheduled for later (running, queued, backing off...). */
  async busyInvocations(): Promise<number> {
    const rows = await this.sql<{ n: number }>("SELECT count(*) AS n FROM sys_invocation WHERE status NOT IN ('completed', 'scheduled')");
    return Number(rows[0]?.n ?? 0);
  }

  /** Waits until every invocation has completed (delayed ones still scheduled excepted). */
  async idle(ms = 60_000): Promise<void> {
    await waitFor('Restate invocations to complete', ms, async () => ((await this.busyInvocations()) === 0 ? true : undefined));
  }

  async close(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
