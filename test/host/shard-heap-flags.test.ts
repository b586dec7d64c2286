/**
 * The flag bookkeeping of src/host/shard-heap.ts, with V8's setFlagsFromString recorded instead of
 * applied: overlapping engine starts share one window in which the shards' heaps are made without
 * the memory reducer, the flag comes back only when the last of them ends (also when a start
 * fails), and a node started with its own --[no-]memory-reducer or --min-semi-space-size is left
 * alone. (What the flags do to a worker is tested with real workers in test/engine/shard-heap.test.ts.)
 */
import { afterEach, describe, expect, it, vi } from 'vitest';

const calls: string[] = [];
vi.mock('node:v8', async (original) => ({
  ...(await original<typeof import('node:v8')>()),
  setFlagsFromString: (flag: string) => {
    calls.push(flag);
  },
}));

const { withShardHeap, withoutMemoryReducer } = await import('../../src/host/shard-heap.js');

/** A start that runs until its `end` is called (or fails with `fail`). */
function pending(): { run: () => Promise<string>; end: () => void; fail: (e: Error) => void } {
  let end!: () => void;
  let fail!: (e: Error) => void;
  const done = new Promise<string>((resolve, reject) => {
    end = () => resolve('started');
    fail = reject;
  });
  return { run: () => done, end, fail };
}

const execArgv = process.execArgv;
afterEach(() => {
  calls.length = 0;
  Object.defineProperty(process, 'execArgv', { value: execArgv, configurable: true, writable: true });
});

describe('shard heap flags', () => {
  it('turns the memory reducer off once for overlapping starts, and on again when the last one ends', async () => {
    const a = pending();
    const b = pending();
    const first = withoutMemoryReducer(a.run);
    const second = withoutMemoryReducer(b.run);
    await Promise.resolve();
    expect(calls).toEqual(['--no-memory-reducer']);
    a.end();
    expect(await first).toBe('started');
    // The second start's heaps are still being made.
    expect(calls).toEqual(['--no-memory-reducer']);
    b.end();
    expect(await second).toBe('started');
    expect(calls).toEqual(['--no-memory-reducer', '--memory-reducer']);
  });

  it('turns it on again when a start fails, and passes the failure on', async () => {
    const a = pending();
    const started = withoutMemoryReducer(a.run);
    a.fail(new Error('no worker'));
    await expect(started).rejects.toThrow('no worker');
    expect(calls).toEqual(['--no-memory-reducer', '--memory-reducer']);
    // The next start opens a window of its own.
    const b = pending();
    const again = withoutMemoryReducer(b.run);
    b.end();
    await again;
    expect(calls).toEqual(['--no-memory-reducer', '--memory-reducer', '--no-memory-reducer', '--memory-reducer']);
  });

  it("leaves a host's own --no-memory-reducer and --min-semi-space-size alone", async () => {
    Object.defineProperty(process, 'execArgv', { value: ['--no-memory-reducer', '--min-semi-space-size=4'], configurable: true, writable: true });
    const a = pending();
    const started = withShardHeap({ semiSpaceMb: 32, memoryReducer: false }, a.run);
    a.end();
    expect(await started).toBe('started');
    expect(calls).toEqual([]);
  });

  it('sets both for a start without host flags, the reducer inside the semi-space window', async () => {
    Object.defineProperty(process, 'execArgv', { value: [], configurable: true, writable: true });
    const a = pending();
    const started = withShardHeap({ semiSpaceMb: 32, memoryReducer: false }, a.run);
    a.end();
    await started;
    expect(calls).toEqual(['--min-semi-space-size=32', '--no-memory-reducer', '--memory-reducer', '--min-semi-space-size=0']);
    calls.length = 0;
    // shardMemoryReducer: true and shardSemiSpaceMb: 0 touch nothing.
    const b = pending();
    const plain = withShardHeap({ semiSpaceMb: 0, memoryReducer: true }, b.run);
    b.end();
    await plain;
    expect(calls).toEqual([]);
  });
});
