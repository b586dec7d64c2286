/**
 * The cheaper queueMicrotask (src/internal/microtask.ts): same timing as queueMicrotask (after the
 * current synchronous code, in order with other microtasks), and an exception in the callback is
 * an uncaught exception, as queueMicrotask's is, not an unhandled rejection.
 */
import { describe, expect, it } from 'vitest';
import { guarded, microtask } from '../../src/internal/microtask.js';

describe('microtask', () => {
  it('runs after the current synchronous code, in order with queueMicrotask and promise reactions', async () => {
    const order: string[] = [];
    microtask(guarded(() => order.push('a')));
    queueMicrotask(() => order.push('b'));
    microtask(guarded(() => order.push('c')));
    void Promise.resolve().then(() => order.push('d'));
    order.push('sync');
    await new Promise((r) => setImmediate(r));
    expect(order).toEqual(['sync', 'a', 'b', 'c', 'd']);
  });

  it('reports an exception as uncaught, not as an unhandled rejection', async () => {
    const uncaught: unknown[] = [];
    const rejections: unknown[] = [];
    const onUncaught = (err: unknown): void => void uncaught.push(err);
    const onRejection = (err: unknown): void => void rejections.push(err);
    // vitest listens too; ours are the only ones for this test's duration.
    const before = process.listeners('uncaughtException');
    process.removeAllListeners('uncaughtException');
    process.on('uncaughtException', onUncaught);
    process.on('unhandledRejection', onRejection);
    try {
      const boom = new Error('boom');
      let after = false;
      microtask(guarded(() => {
        throw boom;
      }));
      microtask(guarded(() => (after = true)));
      await new Promise((r) => setImmediate(r));
      expect(uncaught).toEqual([boom]);
      expect(rejections).toEqual([]);
      // A throwing callback does not stop the ones after it.
      expect(after).toBe(true);
    } finally {
      process.off('uncaughtException', onUncaught);
      process.off('unhandledRejection', onRejection);
      for (const l of before) process.on('uncaughtException', l);
    }
  });
});
