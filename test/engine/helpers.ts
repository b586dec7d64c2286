import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { Weft, type WeftOptions } from '../../src/index.js';
import { until, within } from '../helpers/index.js';

export { until, within };

/** A compiled fixture module (npm test builds test/fixtures into dist/test/fixtures). */
export function fixture(name: string): URL {
  return new URL(`../../dist/test/fixtures/${name}.js`, import.meta.url);
}

export function tempDir(prefix = 'weft-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** Starts an engine on a fresh temp dir; `cleanup` closes it and removes the dir. */
export async function startEngine(options: Partial<WeftOptions> & { module: URL | string }): Promise<{ weft: Weft; dir: string; cleanup: () => Promise<void> }> {
  const dir = options.dataDir ?? tempDir();
  const weft = await Weft.start({ durability: 'process', ...options, dataDir: dir });
  return {
    weft,
    dir,
    cleanup: async () => {
      await weft.close();
      removeDir(dir);
    },
  };
}

/** Takes `n` records from an async iterator, bounded by `ms`. */
/** Takes `n` egress records (acknowledging each but the last as it asks for the next) and returns their values. */
export async function takeValues(it: AsyncIterator<{ value: unknown }>, n: number, ms = 10_000): Promise<unknown[]> {
  return (await take(it, n, ms)).map((r) => r.value);
}

export async function take<T>(it: AsyncIterator<T>, n: number, ms = 10_000): Promise<T[]> {
  const out: T[] = [];
  const run = async (): Promise<T[]> => {
    while (out.length < n) {
      const r = await it.next();
      if (r.done === true) break;
      out.push(r.value);
    }
    return out;
  };
  return within(run(), ms, `taking ${n} records`);
}

/** The semi-space a fresh worker's heap starts with, MiB (what V8's flag says now). */
export function workerSemiSpace(): Promise<number> {
  // One semi-space's capacity, MiB (space_size counts both once the heap has scavenged); a little
  // under the size asked for: V8 keeps a header in each of its pages.
  const code = `const { getHeapSpaceStatistics } = require('node:v8'); const { parentPort } = require('node:worker_threads');
const s = getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
parentPort.postMessage((s.space_used_size + s.space_available_size) / 1048576);`;
  return within(
    new Promise<number>((resolve, reject) => {
      const w = new Worker(code, { eval: true, resourceLimits: { maxYoungGenerationSizeMb: 128 } });
      w.once('message', (mib: number) => {
        resolve(mib);
        void w.terminate();
      });
      w.once('error', reject);
    }),
    10_000,
    'a worker reporting its heap',
  );
}
