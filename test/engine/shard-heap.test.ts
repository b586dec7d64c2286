/**
 * Each shard's heap is made with its young generation at `shardSemiSpaceMb` and without V8's
 * memory reducer unless `shardMemoryReducer` (src/host/shard-heap.ts): set through V8's
 * process-wide `--min-semi-space-size` and `--memory-reducer` only while the shards' heaps are
 * created. Real worker threads; sizes read inside them with `v8.getHeapSpaceStatistics()`, full
 * GCs seen by a PerformanceObserver in them.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { resolveOptions } from '../../src/contract/options.js';
import { hostSetsMemoryReducer, hostSetsSemiSpace, withShardSemiSpace } from '../../src/host/shard-heap.js';
import { fixture, removeDir, startEngine, tempDir, within, workerSemiSpace } from './helpers.js';

const at = (id: string) => ({ type: 'pauses/counter', id });

/** `mib` is a semi-space of `expected` MiB: V8 reports a little less (page headers). */
function expectSemiSpace(mib: number, expected: number): void {
  expect(mib).toBeGreaterThan(expected * 0.95);
  expect(mib).toBeLessThanOrEqual(expected);
}

describe('shard heap: the young generation and memory reducer a shard is made with', () => {
  it('tells a host flag --min-semi-space-size apart from others', () => {
    expect(hostSetsSemiSpace(['--min-semi-space-size=8'])).toBe(true);
    // V8 takes underscores for dashes, and one dash.
    expect(hostSetsSemiSpace(['--enable-source-maps', '--min_semi_space_size=8'])).toBe(true);
    expect(hostSetsSemiSpace(['-min-semi-space-size=8'])).toBe(true);
    expect(hostSetsSemiSpace(['--max-semi-space-size=8', '--min-semi-space-sizes=1', '--max-old-space-size=100'])).toBe(false);
    expect(hostSetsSemiSpace([])).toBe(false);
  });

  it('tells a host flag --[no-]memory-reducer apart from others', () => {
    expect(hostSetsMemoryReducer(['--no-memory-reducer'])).toBe(true);
    expect(hostSetsMemoryReducer(['--enable-source-maps', '--memory_reducer'])).toBe(true);
    expect(hostSetsMemoryReducer(['-no_memory_reducer'])).toBe(true);
    // V8 also takes "no" without a dash.
    expect(hostSetsMemoryReducer(['--nomemory-reducer'])).toBe(true);
    expect(hostSetsMemoryReducer(['--memory-reducer-for-small-heaps', '--no-memory-reducer-for-small-heaps', '--max-old-space-size=100'])).toBe(false);
    expect(hostSetsMemoryReducer([])).toBe(false);
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

  it('runs no memory-reducing GC in a shard that has gone quiet (shardMemoryReducer: false, the default)', async () => {
    // V8 shrinks an idle heap with full GCs some seconds after its allocation rate falls (its
    // "memory reducer"): at light load after busier times these held a shard 16-36 ms (probe,
    // native-bench/README.md). A shard's heap is made without it; with the option, V8's default
    // holds. Both engines at once, so the test waits out one quiet spell.
    const engines: Array<Awaited<ReturnType<typeof startEngine>>> = [];
    try {
      engines.push(await startEngine({ module: fixture('pauses'), shards: 2 }));
      engines.push(await startEngine({ module: fixture('pauses'), shards: 2, shardMemoryReducer: true }));
      const quiet = await Promise.all(engines.map(async ({ weft }) => {
        // One counter on each shard; each makes garbage, some of it surviving (the busy time).
        const byThread = new Map<number, string>();
        for (let i = 0; i < 64 && byThread.size < 2; i++) {
          const [, , thread] = (await weft.request(at(`m${i}`), { op: 'majors' })) as [number, number[], number];
          if (!byThread.has(thread)) byThread.set(thread, `m${i}`);
        }
        expect(byThread.size).toBe(2);
        const ids = [...byThread.values()];
        await within(Promise.all(ids.map((id) => weft.request(at(id), { op: 'garbage', objects: 1_000_000 }))), 30_000, 'the garbage requests');
        const from = await Promise.all(ids.map(async (id) => ((await weft.request(at(id), { op: 'majors' })) as [number])[0]));
        return { weft, ids, from };
      }));
      // Quiet. V8 arms its reducer 8 s after a heap's last full GC and runs it if the allocation
      // rate is low then, else 8 s later, and so on (7.5-24 s seen): wait until every shard of the
      // engine with the reducer has run one (at most 30 s), then look at the other engine, quiet
      // as long.
      const majorsWhileQuiet = ({ weft, ids, from }: (typeof quiet)[number]): Promise<number[]> =>
        Promise.all(ids.map(async (id, s) => {
          const [, majors] = (await weft.request(at(id), { op: 'majors' })) as [number, number[]];
          // A second of settling: a full GC the garbage started may finish meanwhile.
          return majors.filter((t) => t > (from[s] as number) + 1000).length;
        }));
      const [without, withReducer] = quiet as [(typeof quiet)[number], (typeof quiet)[number]];
      let reduced: number[] = [];
      for (let waited = 0; waited < 30_000; waited += 500) {
        await new Promise((resolve) => setTimeout(resolve, 500));
        reduced = await majorsWhileQuiet(withReducer);
        if (reduced.every((n) => n > 0)) break;
      }
      expect(reduced.some((n) => n > 0), `major GCs per shard while quiet, with the reducer: ${reduced.join(', ')}`).toBe(true);
      expect(await majorsWhileQuiet(without), 'major GCs per shard while quiet, without the reducer').toEqual([0, 0]);
    } finally {
      await Promise.all(engines.map((e) => e.cleanup()));
    }
  }, 120_000);
});
