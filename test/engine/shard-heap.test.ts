/**
 * Each shard's young generation starts at `shardSemiSpaceMb` (src/host/shard-heap.ts): set through
 * V8's process-wide `--min-semi-space-size` only while the shards' heaps are created. Real worker
 * threads; sizes read inside them with `v8.getHeapSpaceStatistics()`.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { resolveOptions } from '../../src/contract/options.js';
import { hostSetsSemiSpace, withShardSemiSpace } from '../../src/host/shard-heap.js';
import { fixture, removeDir, startEngine, tempDir, within, workerSemiSpace } from './helpers.js';

const at = (id: string) => ({ type: 'pauses/counter', id });

/** `mib` is a semi-space of `expected` MiB: V8 reports a little less (page headers). */
function expectSemiSpace(mib: number, expected: number): void {
  expect(mib).toBeGreaterThan(expected * 0.95);
  expect(mib).toBeLessThanOrEqual(expected);
}

describe('shard heap: the young generation a shard starts with', () => {
  it('tells a host flag --min-semi-space-size apart from others', () => {
    expect(hostSetsSemiSpace(['--min-semi-space-size=8'])).toBe(true);
    // V8 takes underscores for dashes, and one dash.
    expect(hostSetsSemiSpace(['--enable-source-maps', '--min_semi_space_size=8'])).toBe(true);
    expect(hostSetsSemiSpace(['-min-semi-space-size=8'])).toBe(true);
    expect(hostSetsSemiSpace(['--max-semi-space-size=8', '--min-semi-space-sizes=1', '--max-old-space-size=100'])).toBe(false);
    expect(hostSetsSemiSpace([])).toBe(false);
  });

  it('sets V8 flag only while the shards start: heaps made meanwhile get the size, later ones do not', async () => {
    const before = await workerSemiSpace();
    expect(before).toBeLessThan(8);
    const inside = await withShardSemiSpace(32, () => workerSemiSpace());
    expectSemiSpace(inside, 32);
    expect(await workerSemiSpace()).toBeLessThan(8);
    // 0: V8's default, the flag untouched.
    expect(await withShardSemiSpace(0, () => workerSemiSpace())).toBeLessThan(8);
  });

  it('keeps the flag while any of two overlapping starts runs, at the larger size', async () => {
    let endFirst!: () => void;
    const first = withShardSemiSpace(16, () => new Promise<void>((resolve) => (endFirst = resolve)));
    // The second asks for more while the first still runs; then the first ends before it.
    const second = withShardSemiSpace(32, async () => {
      expectSemiSpace(await workerSemiSpace(), 32);
      endFirst();
      await first;
      return workerSemiSpace();
    });
    expectSemiSpace(await within(second, 20_000, 'the second start'), 32);
    expect(await workerSemiSpace()).toBeLessThan(16);
  });

  it('gives the shards of an engine shardSemiSpaceMb (default 32), and workers started later their own', async () => {
    // 32 each up to 8 shards, then 256 MiB shared (a power of two each).
    const auto = (shards: number): number => resolveOptions({ module: '/m.js', shards }).shardSemiSpaceMb;
    expect([1, 2, 8, 9, 16, 17, 64, 256].map(auto)).toEqual([32, 32, 32, 16, 16, 8, 4, 1]);
    expect(resolveOptions({ module: '/m.js', shards: 64, shardSemiSpaceMb: 32 }).shardSemiSpaceMb).toBe(32);
    // 0 leaves V8's own sizing: 1 MiB, grown to a few MiB by the survivors of loading a shard.
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
          if (expected === 0) expect(mib).toBeLessThan(16);
          else expectSemiSpace(mib, expected);
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
      const { shards } = JSON.parse(out) as { shards: number[] };
      expect(shards).toHaveLength(2);
      for (const mib of shards) expectSemiSpace(mib, 64);
    } finally {
      removeDir(dir);
    }
  }, 60_000);
});
