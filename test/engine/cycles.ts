/**
 * Runs start/close cycles of an engine in a child process with --expose-gc
 * (test/fixtures/cycle-child.ts) and collects its samples: leak.test.ts and leak.soak.test.ts.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { fixture, removeDir, tempDir } from './helpers.js';

export interface CycleSample {
  cycle: number;
  rss: number;
  arrayBuffers: number;
  heapUsed: number;
  fds: number;
  threads: number;
  resources: string[];
}

/**
 * Runs `cycles` start/close cycles of a 2-shard engine with the `bank` or `compute` fixture in a
 * child; bounded by `timeoutMs`. Samples: before the first start, after cycle 1, every `every`.
 */
export function runCycles(module: 'bank' | 'compute', cycles: number, every: number, timeoutMs: number): Promise<CycleSample[]> {
  const dataDir = tempDir('weft-leak-');
  return new Promise<CycleSample[]>((resolve, reject) => {
    const child = spawn(process.execPath, ['--expose-gc', fileURLToPath(fixture('cycle-child')), dataDir, String(cycles), '2', String(every), module], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the cycle child did not exit by itself within ${timeoutMs} ms (a handle left open keeps it alive)\nstdout:\n${stdout}\nstderr:\n${stderr}`));
    }, timeoutMs);
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      removeDir(dataDir);
      if (code !== 0) {
        reject(new Error(`the cycle child exited with ${code ?? signal}\nstdout:\n${stdout}\nstderr:\n${stderr}`));
        return;
      }
      resolve(stdout.trim().split('\n').map((l) => JSON.parse(l) as CycleSample));
    });
  });
}

/** Handles and requests, without one-shot immediates (a callback queued for this turn, not a handle). */
export function handles(s: CycleSample): string[] {
  return s.resources.filter((r) => r !== 'Immediate').sort();
}

