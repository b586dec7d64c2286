import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Weft, type WeftError } from '../../src/index.js';
import { fixture, removeDir, tempDir, within, takeValues } from './helpers.js';
import { ledger } from './ledger.js';

const ACCOUNTS = 20;

describe('a shard worker dying inside a live engine', () => {
  const dir = tempDir('weft-wcrash-');
  afterAll(() => removeDir(dir));

  for (const how of ['exit', 'uncaught', 'oom'] as const) {
    it(`rolls every shard back (or, for an error thrown from a timer, goes on) and loses or doubles nothing (${how})`, async () => {
      const dataDir = join(dir, how);
      const flagFile = join(dir, `${how}.flag`);
      writeFileSync(flagFile, 'crash once');
      const weft = await Weft.start({ module: fixture('xfer'), dataDir, shards: 2, durability: 'process', checkpointIntervalMs: 10, maxShardHeapMb: 64 });
      try {
        const sends: Array<Promise<void>> = [];
        let id = 0;
        const burst = (n: number): void => {
          for (let k = 0; k < n; k++, id++) {
            const delayMs = id % 5 === 0 ? 5 : 0;
            sends.push(weft.send({ type: 'xfer/account', id: `x-${id % ACCOUNTS}` }, { op: 'transfer', id, to: `x-${(id * 7 + 3) % ACCOUNTS}`, amount: 1 + (id % 3), delayMs }));
          }
        };
        burst(2000);
        await within(Promise.all(sends.slice(0, 500)), 20_000, 'first sends');
        sends.push(weft.send({ type: 'xfer/account', id: 'x-1' }, { op: 'crash', flagFile, how }));
        burst(2000);
        await within(Promise.all(sends), 60_000, 'all sends');
        // An error thrown from a timer the function left behind is reported, not fatal
        // (user-code.test.ts): that shard goes on without a rollback.
        expect(weft.metrics().recoveries).toBe(how === 'uncaught' ? 0 : 1);
        if (how === 'uncaught') expect(weft.metrics().uncaughtErrors).toBe(1);
        const deadline = Date.now() + 20_000;
        while (weft.metrics().shards.reduce((a, s) => a + s.pendingTimers, 0) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
        await within(weft.idle(), 20_000, 'idle');
        const { total, debits, credits } = await ledger(weft, ACCOUNTS);
        expect(total).toBe(0);
        expect(debits.size).toBe(4000);
        expect(credits.size).toBe(4000);
        expect([...debits.values(), ...credits.values()].every((c) => c === 1)).toBe(true);
        // Still serving.
        await within(weft.send({ type: 'xfer/account', id: 'x-0' }, { op: 'credit', id: -1, amount: 5 }), 10_000, 'send after');
        expect(((await weft.query({ type: 'xfer/account', id: 'x-0' }))?.credited as number[]).includes(-1)).toBe(true);
      } finally {
        await weft.close();
      }
    }, 120_000);
  }

  it('isolates a message that ends its shard every time it runs: dead-lettered, everything else exactly once', async () => {
    const dataDir = join(dir, 'poison');
    const weft = await Weft.start({ module: fixture('xfer'), dataDir, shards: 2, durability: 'process', checkpointIntervalMs: 10 });
    try {
      const dead = weft.egress('weft/dead-letters');
      const sends: Array<Promise<void>> = [];
      for (let id = 0; id < 1000; id++) {
        sends.push(weft.send({ type: 'xfer/account', id: `x-${id % ACCOUNTS}` }, { op: 'transfer', id, to: `x-${(id * 7 + 3) % ACCOUNTS}`, amount: 1, delayMs: 0 }));
        if (id === 300) sends.push(weft.send({ type: 'xfer/account', id: 'x-5' }, { op: 'poison' }));
      }
      await within(Promise.all(sends), 60_000, 'all sends');
      const [letter] = (await takeValues(dead, 1)) as Array<{ target: unknown; error: WeftError }>;
      expect(letter!.target).toEqual({ type: 'xfer/account', id: 'x-5' });
      expect(letter!.error.code).toBe('ERR_WEFT_SHARD_FAILED');
      // Once to see it fail, once more (careful) to learn which invocation it was.
      expect(weft.metrics().recoveries).toBe(2);
      await within(weft.idle(), 20_000, 'idle');
      const { total, debits, credits } = await ledger(weft, ACCOUNTS);
      expect(total).toBe(0);
      expect(debits.size).toBe(1000);
      expect(credits.size).toBe(1000);
      expect([...debits.values(), ...credits.values()].every((c) => c === 1)).toBe(true);
      // The address works again afterwards.
      await weft.send({ type: 'xfer/account', id: 'x-5' }, { op: 'credit', id: -5, amount: 1 });
      expect(((await weft.query({ type: 'xfer/account', id: 'x-5' }))?.credited as number[]).includes(-5)).toBe(true);
    } finally {
      await weft.close();
    }
  }, 120_000);
});
