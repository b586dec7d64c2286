import { describe, expect, it } from 'vitest';
import { fixture, startEngine, within } from './helpers.js';

describe('compute tier (ctx.compute on the piscina pool)', () => {
  it('resumes the right invocation with the result while other addresses progress', async () => {
    const { weft, cleanup } = await startEngine({ module: fixture('compute'), shards: 1 });
    try {
      const worker = { type: 'calc/worker', id: 'w' };
      const slow = weft.request(worker, { task: 'slowEcho', input: { value: 'late', ms: 300 } });
      // The same shard keeps serving other addresses while `w` awaits its compute task.
      for (let i = 1; i <= 20; i++) await expect(weft.request({ type: 'calc/counter', id: 'c' }, null)).resolves.toBe(i);
      let slowDone = false;
      void slow.then(() => {
        slowDone = true;
      });
      await new Promise((r) => setImmediate(r));
      expect(slowDone).toBe(false);
      await expect(within(slow, 10_000, 'slow compute')).resolves.toBe('late');
      await expect(weft.request(worker, { task: 'fib', input: 20 })).resolves.toBe(6765);
      expect(await weft.query(worker)).toEqual({ results: ['late', 6765] });
    } finally {
      await cleanup();
    }
  });

  it('rejects inside the function when a task throws or does not exist', async () => {
    const { weft, cleanup } = await startEngine({ module: fixture('compute'), shards: 2 });
    try {
      await expect(weft.request({ type: 'calc/worker', id: 'e' }, { task: 'fail', input: 'nope' })).resolves.toEqual({ error: 'RangeError', code: null, message: 'nope' });
      const missing = (await weft.request({ type: 'calc/worker', id: 'e' }, { task: 'nosuch', input: 1 })) as { code: string; message: string };
      expect(missing.code).toBe('ERR_WEFT_COMPUTE');
      expect(missing.message).toContain('"nosuch"');
      expect(missing.message).toContain('"fib"');
    } finally {
      await cleanup();
    }
  });

  it('runs tasks on computeThreads: 2 in parallel', async () => {
    const { weft, cleanup } = await startEngine({ module: fixture('compute'), shards: 2, computeThreads: 2 });
    try {
      const threads = await within(
        Promise.all(Array.from({ length: 8 }, (_, i) => weft.request({ type: 'calc/worker', id: `t-${i}` }, { task: 'whichThread', input: 200 }) as Promise<number>)),
        20_000,
        'tasks',
      );
      expect(new Set(threads).size).toBe(2);
    } finally {
      await cleanup();
    }
  });

});
