/**
 * What the interop suites share: child processes whose output is kept (the last lines, to print
 * when a check fails), commands run with a bound, and bounded waits on conditions.
 */
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Keeps the last `max` lines of a process's output. */
const KEPT_LINES = 400;

export interface Peer {
  readonly name: string;
  readonly child: ChildProcess;
  /** Every complete stdout line, in order (for the suites to parse). */
  readonly lines: string[];
  /** The last lines of stdout and stderr, interleaved as they came. */
  readonly tail: string[];
  /** Set once the process has exited. */
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  /** The kept output, for failure messages. */
  output(): string;
  /** Ends the process: SIGTERM, then SIGKILL after `graceMs`; resolves once it exited. */
  stop(graceMs?: number): Promise<void>;
}

export function startPeer(name: string, command: string, args: string[], options: SpawnOptions = {}): Peer {
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], ...options });
  const lines: string[] = [];
  const tail: string[] = [];
  const keep = (line: string): void => {
    tail.push(line);
    if (tail.length > KEPT_LINES) tail.shift();
  };
  const reader = (stream: NodeJS.ReadableStream | null, isStdout: boolean): void => {
    let partial = '';
    stream?.setEncoding('utf8');
    stream?.on('data', (chunk: string) => {
      const parts = (partial + chunk).split('\n');
      partial = parts.pop() ?? '';
      for (const l of parts) {
        if (isStdout) lines.push(l);
        keep(isStdout ? l : `[stderr] ${l}`);
      }
    });
  };
  // A write to a peer that died must not crash the suite: its exit is reported by waitFor.
  child.stdin?.on('error', (err) => keep(`[stdin error] ${err.message}`));
  reader(child.stdout, true);
  reader(child.stderr, false);
  const exited = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      peer.exit = { code, signal };
      resolve();
    });
    child.once('error', (err) => {
      keep(`[spawn error] ${err.message}`);
      peer.exit = { code: null, signal: null };
      resolve();
    });
  });
  const peer: Peer = {
    name,
    child,
    lines,
    tail,
    exit: undefined,
    output: () => `----- ${name} (last ${tail.length} lines) -----\n${tail.join('\n')}\n----- end of ${name} -----`,
    async stop(graceMs = 5_000) {
      if (peer.exit !== undefined) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
  return peer;
}

/**
 * Waits until `probe` returns a value other than undefined, polling every `everyMs`; rejects after
 * `ms` with `what` and the given peers' output.
 */
export async function waitFor<T>(what: string, ms: number, probe: () => T | undefined | Promise<T | undefined>, peers: Peer[] = [], everyMs = 25): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    const dead = peers.find((p) => p.exit !== undefined);
    if (dead !== undefined) throw new Error(`${what}: ${dead.name} exited (${JSON.stringify(dead.exit)})\n${peers.map((p) => p.output()).join('\n')}`);
    if (Date.now() >= deadline) throw new Error(`${what}: not within ${ms} ms\n${peers.map((p) => p.output()).join('\n')}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Runs a command to completion within `ms`; throws with its output when it fails. */
export function run(command: string, args: string[], options: { cwd?: string; ms: number; env?: NodeJS.ProcessEnv }): string {
  const r = spawnSync(command, args, { cwd: options.cwd ?? ROOT, encoding: 'utf8', timeout: options.ms, env: options.env ?? process.env, maxBuffer: 64 * 1024 * 1024 });
  const out = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  if (r.error !== undefined) throw new Error(`${command} ${args.join(' ')} failed: ${r.error.message}\n${out}`);
  if (r.status !== 0) throw new Error(`${command} ${args.join(' ')} exited with ${r.status ?? r.signal}\n${out}`);
  return out;
}

/** Fails (never skips) with a clear message when a tool the suite needs is missing. */
export function requireTool(command: string, args: string[], what: string): string {
  const r = spawnSync(command, args, { encoding: 'utf8', timeout: 30_000 });
  if (r.error !== undefined || r.status !== 0) {
    throw new Error(`npm run test:interop needs ${what}: \`${command} ${args.join(' ')}\` failed (${r.error?.message ?? `exit ${r.status}`}). See README "Interop suite".`);
  }
  return `${r.stdout}${r.stderr}`.trim();
}

/** The port `weft serve` reports on its first line (`... at http://127.0.0.1:PORT/`). */
export async function servePort(peer: Peer, ms = 60_000): Promise<number> {
  return waitFor('weft serve to listen', ms, () => {
    for (const l of peer.lines) {
      const m = /at https?:\/\/[^:]+:(\d+)\//.exec(l);
      if (m !== null) return Number(m[1]);
    }
    return undefined;
  }, [peer]);
}

/** Prints the peers' output when a test fails (a failed `expect` carries no process output). */
export function printOutputOnFailure(ctx: { onTestFailed(fn: () => void): void }, peers: () => Peer[]): void {
  ctx.onTestFailed(() => {
    for (const p of peers()) console.error(p.output());
  });
}
