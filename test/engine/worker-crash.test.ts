import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Weft } from '../../src/index.js';
import { fixture, removeDir, tempDir, within } from './helpers.js';

const ACCOUNTS = 20;

async function totals(weft: Weft): Promise<{ total: number; debits: Map<number, number>; credits: Map<number, number> }> {
  const debits = new Map<number, number>();
  const credits = new Map<number, number>();
  let total = 0;
  for (let a = 0; a < ACCOUNTS; a++) {
    const s = await weft.query({ type: 'xfer/account', id: `x-${a}` });
    total += (s?.balance as number | undefined) ?? 0;
    for (const id of (s?.debited as number[] | undefined) ?? []) debits.set(id, (debits.get(id) ?? 0) + 1);
    for (const id of (s?.credited as number[] | undefined) ?? []) credits.set(id, (credits.get(id) ?? 0) + 1);
  }
  return { total, debits, credits };
}

describe('a shard worker dying inside a live engine', () => {
  const dir = tempDir('weft-wcrash-');
  afterAll(() => removeDir(dir));

  for (const how of ['exit', 'uncaught', 'oom'] as const) {
    it(`rolls every shard back and loses or doubles nothing (${how})`, async () => {
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
        expect(weft.metrics().recoveries).toBe(1);
        const deadline = Date.now() + 20_000;
        while (weft.metrics().shards.reduce((a, s) => a + s.pendingTimers, 0) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
        await within(weft.idle(), 20_000, 'idle');
        const { total, debits, credits } = await totals(weft);
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
});
