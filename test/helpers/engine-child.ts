/**
 * Drives test/fixtures/lock-child.js (an engine in a child process) from a test: spawn it
 * (directly or under a prefix such as `unshare ...`), read its JSON lines with a bound on each
 * wait, send it commands, see how it exited (code or signal).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { fixture, within } from '../engine/helpers.js';

export interface EngineChild {
  proc: ChildProcess;
  /** The next JSON line the child prints (bounded wait). */
  next(what: string): Promise<Record<string, unknown>>;
  send(line: string): void;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Every child spawned here; tests kill the ones still running when they end. */
export const spawned: ChildProcess[] = [];

export function killSpawned(): void {
  for (const c of spawned.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}

export function engineChild(dataDir: string, options: { prefix?: string[]; args?: string[]; fixture?: string } = {}): EngineChild {
  const args = [fileURLToPath(fixture(options.fixture ?? 'lock-child')), dataDir, ...(options.args ?? [])];
  const prefix = options.prefix ?? [];
  const proc = prefix.length === 0 ? spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'] }) : spawn(prefix[0]!, [...prefix.slice(1), process.execPath, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  spawned.push(proc);
  // stderr is kept for failure messages (lmdb-js and warnings write there).
  let stderr = '';
  proc.stderr!.on('data', (b: Buffer) => {
    if (stderr.length < 20_000) stderr += b.toString();
  });
  const queue: Array<Record<string, unknown>> = [];
  const waiters: Array<(l: Record<string, unknown>) => void> = [];
  createInterface({ input: proc.stdout! }).on('line', (line) => {
    const msg = JSON.parse(line) as Record<string, unknown>;
    const w = waiters.shift();
    if (w !== undefined) w(msg);
    else queue.push(msg);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  const next = (what: string): Promise<Record<string, unknown>> =>
    within(
      new Promise<Record<string, unknown>>((resolve, reject) => {
        if (queue.length > 0) resolve(queue.shift()!);
        else {
          waiters.push(resolve);
          void exited.then(({ code, signal }) => reject(new Error(`child exited (code ${code}, signal ${signal}) before ${what}; stderr: ${stderr}`)));
        }
      }),
      30_000,
      `child: ${what}`,
    );
  return { proc, next, send: (line) => proc.stdin!.write(`${line}\n`), exited };
}

/** Starts a child and waits until its engine started or was refused. */
export async function startEngineChild(dataDir: string, options: { prefix?: string[]; args?: string[] } = {}): Promise<{ c: EngineChild; result: Record<string, unknown> }> {
  const c = engineChild(dataDir, options);
  const loaded = await c.next('loaded');
  if (loaded.event !== 'loaded') throw new Error(`child said ${JSON.stringify(loaded)} first`);
  return { c, result: await c.next('started or refused') };
}
