/**
 * A start whose second shard's Worker cannot be made (node throws from `new Worker`: threads
 * exhausted, a container's limit) fails with that error and leaves nothing behind: the shard made
 * before it is terminated without an unhandled rejection (its start fails as it is terminated,
 * and nobody awaits that any more), and V8's semi-space flag is reset (src/host/shard-heap.ts).
 * Real worker threads: only the second construction is made to throw.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Weft } from '../../src/index.js';
import { fixture, removeDir, tempDir, within, workerSemiSpace } from './helpers.js';

let made = 0;
vi.mock('node:worker_threads', async (importOriginal) => {
  const original = await importOriginal<typeof import('node:worker_threads')>();
  class FailingSecond extends original.Worker {
    constructor(...args: ConstructorParameters<typeof original.Worker>) {
      if (args[1]?.name === 'weft-shard-1' && ++made === 1) throw new Error('no thread for shard 1 (test)');
      super(...args);
    }
  }
  return { ...original, Worker: FailingSecond, default: { ...original, Worker: FailingSecond } };
});

describe('a shard start that fails part-way', () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown): void => {
    unhandled.push(reason);
  };
  afterEach(() => {
    process.off('unhandledRejection', onUnhandled);
  });

  it('rejects Weft.start with the error, terminates the shard already made, and leaks no rejection', async () => {
    process.on('unhandledRejection', onUnhandled);
    const dir = tempDir();
    try {
      await expect(within(Weft.start({ module: fixture('pauses'), dataDir: dir, shards: 2, durability: 'process' }), 30_000, 'the failing start')).rejects.toThrow(/no thread for shard 1 \(test\)/);
      // The terminated shard's own start failure settles after the rejection: give it time to surface.
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(unhandled).toEqual([]);
      expect(made).toBe(1);
      // The semi-space flag is back to V8's default: a worker made now starts small.
      const mib = await workerSemiSpace();
      expect(mib).toBeLessThan(8);
      // The data dir is free again: an engine starts on it (the mock lets shard 1 be made now).
      const weft = await within(Weft.start({ module: fixture('pauses'), dataDir: dir, shards: 2, durability: 'process' }), 30_000, 'the second start');
      expect(await weft.request({ type: 'pauses/counter', id: 'a' }, { op: 'inc' })).toBe(1);
      await weft.close();
    } finally {
      removeDir(dir);
    }
  }, 90_000);
});
