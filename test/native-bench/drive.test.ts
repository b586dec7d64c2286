/**
 * Bench (c)'s light-load driver: systems measured in turns, their slices pooled. Counts and
 * order only; the clock decides nothing here (the requests answer at once).
 */
import { describe, expect, it } from 'vitest';
import { interleavedPaced, pooled } from '../../native-bench/lib/drive.js';

describe('interleavedPaced', () => {
  it('runs each system in turn, round after round, settle slices first, and pools each one\'s measured slices', async () => {
    const calls: string[] = [];
    const system = (name: string) => (i: number): Promise<unknown> => {
      calls.push(`${name}${i}`);
      return Promise.resolve();
    };
    // 1 ms apart: 4 requests per measured slice (8 ms over 2 rounds), 2 to settle in the first
    // round and 1 in the second.
    const runs = await interleavedPaced([system('a'), system('b')], 1, 8, 2, [2, 1]);
    expect(runs.map((r) => r.requests)).toEqual([8, 8]);
    expect(runs.map((r) => r.sortedMicros.length)).toEqual([8, 8]);
    for (const r of runs) expect([...r.sortedMicros]).toEqual([...r.sortedMicros].sort((x, y) => x - y));
    // Each slice numbers its requests from 0: settle 0-1, measured 0-3; then b; then the
    // second round with one settle request each.
    expect(calls.join(' ')).toBe('a0 a1 a0 a1 a2 a3 b0 b1 b0 b1 b2 b3 a0 a0 a1 a2 a3 b0 b0 b1 b2 b3');
  });

  it('refuses a round count that is not a positive integer, naming it', async () => {
    await expect(interleavedPaced([() => Promise.resolve()], 1, 4, 0, [0, 0])).rejects.toThrow(/rounds must be a positive integer \(got 0\)/);
    await expect(interleavedPaced([() => Promise.resolve()], 1, 4, 1.5, [0, 0])).rejects.toThrow(/got 1\.5/);
  });
});

describe('pooled', () => {
  it('merges runs into one, every latency once, ascending', () => {
    const run = pooled([
      { requests: 3, sortedMicros: Float64Array.of(1, 5, 9) },
      { requests: 2, sortedMicros: Float64Array.of(2, 10) },
      { requests: 0, sortedMicros: new Float64Array(0) },
    ]);
    expect(run.requests).toBe(5);
    expect([...run.sortedMicros]).toEqual([1, 2, 5, 9, 10]);
  });
});
