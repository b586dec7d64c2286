/**
 * Each shard's young generation starts at `shardSemiSpaceMb` (src/host/shard-heap.ts): set through
 * V8's process-wide `--min-semi-space-size` only while the shards' heaps are created. Real worker
 * threads; sizes read inside them with `v8.getHeapSpaceStatistics()`.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { resolveOptions } from '../../src/contract/options.js';
import { hostSetsSemiSpace, withShardSemiSpace } from '../../src/host/shard-heap.js';
import { fixture, removeDir, startEngine, tempDir, within } from './helpers.js';

const at = (id: string) => ({ type: 'pauses/counter', id });

/** The semi-space a fresh worker's heap starts with, MiB (what V8's flag says now). */
function workerSemiSpace(): Promise<number> {
  const code = `const { getHeapSpaceStatistics } = require('node:v8'); const { parentPort } = require('node:worker_threads');
parentPort.postMessage(getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size / 1048576);`;
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

describe('shard heap: the young generation a shard starts with', () => {
  it('tells a host flag --min-semi-space-size apart from others', () => {
    expect(hostSetsSemiSpace(['--min-semi-space-size=8'], '')).toBe(true);
    expect(hostSetsSemiSpace(['--min_semi_space_size', '8'], '')).toBe(true);
    expect(hostSetsSemiSpace([], '--enable-source-maps --min-semi-space-size=4')).toBe(true);
    expect(hostSetsSemiSpace(['--max-semi-space-size=8', '--min-semi-space-sizes=1'], '--max-old-space-size=100')).toBe(false);
    expect(hostSetsSemiSpace([], '')).toBe(false);
  });

  it('sets V8 flag only while the shards start: heaps made meanwhile get the size, later ones do not', async () => {
    const before = await workerSemiSpace();
    expect(before).toBeLessThan(16);
    const inside = await withShardSemiSpace(32, () => workerSemiSpace());
    expect(inside).toBe(32);
    expect(await workerSemiSpace()).toBe(before);
    // 0: V8's default, the flag untouched.
    expect(await withShardSemiSpace(0, () => workerSemiSpace())).toBe(before);
  });

  it('keeps the flag while any of two overlapping starts runs, at the larger size', async () => {
    let endFirst!: () => void;
    const first = withShardSemiSpace(16, () => new Promise<void>((resolve) => (endFirst = resolve)));
    // The second asks for more while the first still runs; then the first ends before it.
    const second = withShardSemiSpace(32, async () => {
      expect(await workerSemiSpace()).toBe(32);
      endFirst();
      await first;
      return workerSemiSpace();
    });
    expect(await within(second, 20_000, 'the second start')).toBe(32);
    expect(await workerSemiSpace()).toBeLessThan(16);
  });

  it('gives the shards of an engine shardSemiSpaceMb (default 32), and workers started later their own', async () => {
    expect(resolveOptions({ module: '/m.js' }).shardSemiSpaceMb).toBe(32);
    // Sizes over 16 MiB: V8 grows a fresh heap to 16 within its first moments (the survivors of
    // loading its code), so only a larger start shows. 0 leaves V8's own sizing.
    for (const [options, expected] of [[{}, 32], [{ shardSemiSpaceMb: 64 }, 64], [{ shardSemiSpaceMb: 0 }, 0]] as const) {
      const { weft, cleanup } = await startEngine({ module: fixture('pauses'), shards: 2, ...options });
      try {
        const seen = new Map<number, number>();
        for (let i = 0; i < 64 && seen.size < 2; i++) {
          const [mib, thread] = (await weft.request(at(`k${i}`), { op: 'heap' })) as [number, number];
          seen.set(thread, mib);
        }
        expect(seen.size).toBe(2);
        for (const mib of seen.values()) {
          if (expected === 0) expect(mib).toBeLessThanOrEqual(16);
          else expect(mib).toBe(expected);
        }
        expect(await workerSemiSpace()).toBeLessThan(16);
      } finally {
        await cleanup();
      }
    }
  }, 60_000);

  it("leaves the flag alone when node was started with it: the host's value holds", async () => {
    const dir = tempDir();
    try {
      // The host asks for 64, the engine's option (the default) for 32: the host's value holds.
      const child = spawn(process.execPath, ['--min-semi-space-size=64', fileURLToPath(fixture('heap-child')), dir, '{}'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (b: Buffer) => (out += b.toString()));
      child.stderr.on('data', (b: Buffer) => (err += b.toString()));
      const code = await within(new Promise<number | null>((resolve) => child.on('exit', resolve)), 30_000, 'the child engine');
      expect(code, err).toBe(0);
      expect(JSON.parse(out)).toEqual({ shards: [64, 64] });
    } finally {
      removeDir(dir);
    }
  }, 60_000);
});
