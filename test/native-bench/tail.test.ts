import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { classifyGaps, splitSlowest, type RequestTimes } from '../../native-bench/lib/tail.js';

/** A request due at `due` that took `lag`, `to` and `back` ms in its three parts. */
const req = (due: number, lag: number, to: number, back: number): RequestTimes => ({ due, issued: due + lag, invoked: due + lag + to, done: due + lag + to + back });

describe('the tail probe: where the slowest requests spent their time', () => {
  it('splits the slowest fraction into the generator lag, the way to the shard and the way back', () => {
    const times: RequestTimes[] = [];
    for (let i = 0; i < 198; i++) times.push(req(i, 0.01, 0.05, 0.03));
    // The two slowest: one slow to the shard only, one slow both ways with the generator late.
    times.push(req(500, 0, 4, 0.5), req(600, 1, 2, 3));
    const s = splitSlowest(times, 0.01, 1);
    expect(s.requests).toBe(2);
    expect(s.lagMs).toBeCloseTo(0.5);
    expect(s.toShardMs).toBeCloseTo(3);
    expect(s.backMs).toBeCloseTo(1.75);
    expect(s.slowBothWays).toBe(1);
    // The parts add up to the latency of the requests taken.
    expect(s.lagMs + s.toShardMs + s.backMs).toBeCloseTo((4.5 + 6) / 2);
  });

  it('takes at least one request, none of none, and refuses a fraction or bound out of range', () => {
    expect(splitSlowest([req(0, 1, 1, 1)], 0.01, 0).requests).toBe(1);
    expect(splitSlowest([], 0.01, 1)).toMatchObject({ requests: 0, slowBothWays: 0 });
    expect(() => splitSlowest([], 0, 1)).toThrow(/fraction must be in \(0, 1\] \(got 0\)/);
    expect(() => splitSlowest([], 1.5, 1)).toThrow(/got 1\.5/);
    expect(() => splitSlowest([], 0.5, -1)).toThrow(/overMs must be >= 0 \(got -1\)/);
  });
});

describe('the tail probe: which stalls of main a GC explains', () => {
  it('counts a gap as a GC\'s when GC pauses cover the share asked of it, summed over pauses', () => {
    const gaps: Array<[number, number]> = [
      [0, 2], // one GC covers 1.5 of 2 ms
      [10, 14], // two GCs cover 0.5 + 0.5 of 4 ms: 25%
      [20, 23], // none
      [30, 31], // a GC from before it to after it
    ];
    const gcs: Array<[number, number]> = [
      [0.5, 2.5],
      [10, 10.5],
      [13.5, 14.5],
      [29, 32],
    ];
    const c = classifyGaps(gaps, gcs, 0.3);
    expect(c.withGc).toEqual({ gaps: 2, ms: 3 });
    expect(c.without.gaps).toBe(2);
    expect(c.without.ms).toBe(7);
    expect(c.without.longestMs).toEqual([4, 3]);
    // At 25% the second one is a GC's too.
    expect(classifyGaps(gaps, gcs, 0.25).withGc.gaps).toBe(3);
    expect(() => classifyGaps(gaps, gcs, 0)).toThrow(/share must be in \(0, 1\] \(got 0\)/);
  });

  it('keeps the five longest of the others, longest first', () => {
    const gaps: Array<[number, number]> = [1, 7, 3, 9, 2, 8, 4].map((d, i) => [i * 100, i * 100 + d]);
    expect(classifyGaps(gaps, [], 0.5).without.longestMs).toEqual([9, 8, 7, 4, 3]);
  });
});

describe('the tail probe, run', () => {
  it('measures a short fixed-rate run against real shards and reports consistent figures', async () => {
    const script = fileURLToPath(new URL('../../dist/native-bench/tail-probe.js', import.meta.url));
    const { stdout } = await promisify(execFile)(process.execPath, [script, '--rate', '2000', '--seconds', '1', '--warmup', '0.5', '--ids', '100', '--json'], { timeout: 60_000 });
    const r = JSON.parse(stdout.trim()) as {
      requests: number;
      micros: { p50: number; p99: number; p999: number; max: number };
      slowest: { requests: number; lagMs: number; toShardMs: number; backMs: number; slowBothWays: number };
      mainStalls: { withGc: { gaps: number }; without: { gaps: number; longestMs: number[] }; gcs: number };
      shards: Array<{ gcPausesOver2Ms: number; loopGapsOver2Ms: number }>;
    };
    expect(r.requests).toBe(2000);
    expect(r.micros.p50).toBeGreaterThan(0);
    expect(r.micros.p50).toBeLessThanOrEqual(r.micros.p99);
    expect(r.micros.p99).toBeLessThanOrEqual(r.micros.p999);
    expect(r.micros.p999).toBeLessThanOrEqual(r.micros.max);
    expect(r.slowest.requests).toBe(20);
    // The shard's clock is the process's: no part of a request's time is negative.
    expect(r.slowest.lagMs).toBeGreaterThanOrEqual(0);
    expect(r.slowest.toShardMs).toBeGreaterThan(0);
    expect(r.slowest.backMs).toBeGreaterThan(0);
    expect(r.slowest.slowBothWays).toBeLessThanOrEqual(20);
    // The parts of the slowest 1% add up to at least the p99 (they are the slowest).
    expect((r.slowest.lagMs + r.slowest.toShardMs + r.slowest.backMs) * 1000).toBeGreaterThanOrEqual(r.micros.p99 * 0.999);
    expect(r.mainStalls.without.longestMs.length).toBeLessThanOrEqual(Math.min(5, r.mainStalls.without.gaps));
    expect(r.shards).toHaveLength(2);
  }, 90_000);
});
