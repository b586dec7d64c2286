import { describe, expect, it } from 'vitest';
import { Weft } from '../../src/index.js';
import { handles, runCycles } from './cycles.js';
import { fixture, removeDir, tempDir } from './helpers.js';

const mib = (bytes: number): string => (bytes / 1024 / 1024).toFixed(0);
const CYCLES = Number(process.env.WEFT_SOAK_CYCLES ?? 300);

describe('leak soak', () => {
  it(`starts and closes an engine ${CYCLES} times without growing heap or handles`, async () => {
    const dataDir = tempDir();
    const handles = (): number => (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles().length;
    const cycle = async (i: number): Promise<void> => {
      const weft = await Weft.start({ module: fixture('bank'), dataDir, shards: 2, durability: 'process' });
      await Promise.all(Array.from({ length: 100 }, (_, k) => weft.send({ type: 'bank/account', id: `s-${k}` }, { op: 'deposit', amount: 1 })));
      await weft.request({ type: 'bank/account', id: `s-${i % 100}` }, { op: 'get' });
      await weft.close();
    };
    try {
      for (let i = 0; i < 10; i++) await cycle(i);
      const baseHandles = handles();
      const baseHeap = process.memoryUsage().heapUsed;
      for (let i = 10; i < CYCLES; i++) await cycle(i);
      (globalThis as { gc?: () => void }).gc?.();
      expect(handles()).toBeLessThanOrEqual(baseHandles);
      expect(process.memoryUsage().heapUsed - baseHeap).toBeLessThan(64 * 1024 * 1024);
    } finally {
      removeDir(dataDir);
    }
  }, 60 * 60_000);

  // Measured from before the first start. The RSS that remains is bounded allocator and native
  // library state (LMDB environments opened and closed in main and in the shards, glibc arenas
  // of ended threads): it levels off within the first ~60 cycles.
  it('200 start/close cycles of a small engine stay within +50 MiB RSS, leaving no threads, fds or handles', async () => {
    const samples = await runCycles('bank', 200, 20, 20 * 60_000);
    const start = samples[0]!; // before the first engine
    const warm = samples[2]!; // after 20 cycles
    const end = samples[samples.length - 1]!;
    const context = JSON.stringify(samples.map(({ resources, ...rest }) => ({ ...rest, resources: resources.join(',') })));
    expect(end.cycle).toBe(200);
    console.log(`leak soak (bank): RSS ${mib(start.rss)} MiB before the first start, ${mib(warm.rss)} after 20 cycles, ${mib(end.rss)} after 200`);
    expect(end.rss - start.rss, context).toBeLessThan(50 * 1024 * 1024);
    expect(end.arrayBuffers - warm.arrayBuffers, context).toBeLessThan(4 * 1024 * 1024);
    expect(end.threads, context).toBeLessThanOrEqual(start.threads);
    expect(end.fds, context).toBeLessThanOrEqual(warm.fds);
    expect(handles(end), context).toEqual(handles(warm));
  }, 30 * 60_000);

  it('200 cycles with the compute pool level off: +50 MiB at most after the first 20', async () => {
    const samples = await runCycles('compute', 200, 20, 20 * 60_000);
    const warm = samples[2]!;
    const end = samples[samples.length - 1]!;
    const context = JSON.stringify(samples.map(({ resources, ...rest }) => ({ ...rest, resources: resources.join(',') })));
    console.log(`leak soak (compute): RSS ${mib(samples[0]!.rss)} MiB before the first start, ${mib(warm.rss)} after 20 cycles, ${mib(end.rss)} after 200`);
    expect(end.rss - warm.rss, context).toBeLessThan(50 * 1024 * 1024);
    expect(end.arrayBuffers - warm.arrayBuffers, context).toBeLessThan(4 * 1024 * 1024);
    expect(end.threads, context).toBeLessThanOrEqual(samples[0]!.threads);
    expect(end.fds, context).toBeLessThanOrEqual(warm.fds);
    expect(handles(end), context).toEqual(handles(warm));
  }, 30 * 60_000);
});
