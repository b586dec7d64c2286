import { describe, expect, it } from 'vitest';
import { Weft } from '../../src/index.js';
import { fixture, removeDir, tempDir } from './helpers.js';

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
});
