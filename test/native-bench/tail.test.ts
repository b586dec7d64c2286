import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { PerformanceObserver } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { classifyGaps, leastParts, monotonicMs, performanceToMonotonic, splitSlowest, within, type RequestTimes } from '../../native-bench/lib/tail.js';

/** Columns of requests, each [due, lag, to the shard, back] in ms. */
function columns(rows: ReadonlyArray<readonly [number, number, number, number]>): RequestTimes {
  const t = { due: [] as number[], issued: [] as number[], invoked: [] as number[], done: [] as number[] };
  for (const [due, lag, to, back] of rows) {
    t.due.push(due);
    t.issued.push(due + lag);
    t.invoked.push(due + lag + to);
    t.done.push(due + lag + to + back);
  }
  return t;
}

describe('the tail probe: where the slowest requests spent their time', () => {
  it('splits the slowest fraction (by latency, wherever they are) into the generator lag, the way to the shard and back', () => {
    const rows: Array<[number, number, number, number]> = [];
    // The two slowest come first, due before every fast one: one slow to the shard only, one
    // slow both ways with the generator late.
    rows.push([0, 0, 4, 0.5], [1, 1, 2, 3]);
    for (let i = 0; i < 198; i++) rows.push([10 + i, 0.01, 0.05, 0.03]);
    // A fast one due last and done last.
    rows[199] = [900, 0.01, 0.05, 0.03];
    const s = splitSlowest(columns(rows), rows.length, 0.01, 1);
    expect(s.requests).toBe(2);
    expect(s.lagMs).toBeCloseTo(0.5);
    expect(s.toShardMs).toBeCloseTo(3);
    expect(s.backMs).toBeCloseTo(1.75);
    expect(s.slowBothWays).toBe(1);
    expect(s.lagMs + s.toShardMs + s.backMs).toBeCloseTo((4.5 + 6) / 2);
  });

  it('takes at least one request, none of none, and refuses a fraction or bound out of range', () => {
    expect(splitSlowest(columns([[0, 1, 1, 1]]), 1, 0.01, 0).requests).toBe(1);
    expect(splitSlowest(columns([]), 0, 0.01, 1)).toMatchObject({ requests: 0, slowBothWays: 0 });
    expect(() => splitSlowest(columns([]), 0, 0, 1)).toThrow(/fraction must be in \(0, 1\] \(got 0\)/);
    expect(() => splitSlowest(columns([]), 0, 1.5, 1)).toThrow(/got 1\.5/);
    expect(() => splitSlowest(columns([]), 0, 0.5, -1)).toThrow(/overMs must be >= 0 \(got -1\)/);
  });

  it('finds the least time of all requests each way (negative when the clocks disagree)', () => {
    expect(leastParts(columns([[0, 0, 0.2, 0.1], [5, 0, 0.05, 0.3]]), 2)).toEqual({ toShardMs: expect.closeTo(0.05) as number, backMs: expect.closeTo(0.1) as number });
    // A shard clock 1 ms behind main's.
    const skewed = columns([[0, 0, 0.2, 0.1]]);
    (skewed.invoked as number[])[0]! -= 1;
    expect(leastParts(skewed, 1).toShardMs).toBeCloseTo(-0.8);
  });
});

describe('the tail probe: which stalls of main a GC explains', () => {
  it("counts a gap as a GC's when GC pauses cover the share asked of it, summed over pauses", () => {
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
    expect(within(gcs, 10, 29)).toEqual([gcs[1], gcs[2], gcs[3]]);
  });

  it('keeps the five longest of the others, longest first', () => {
    const gaps: Array<[number, number]> = [1, 7, 3, 9, 2, 8, 4].map((d, i) => [i * 100, i * 100 + d]);
    expect(classifyGaps(gaps, [], 0.5).without.longestMs).toEqual([9, 8, 7, 4, 3]);
  });

  it("places a GC's PerformanceEntry on the monotonic clock between the times read around it", async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as (opts?: { type: 'major' | 'minor' }) => void;
    const toMonotonic = performanceToMonotonic();
    const seen = new Promise<[number, number]>((resolve) => {
      const o = new PerformanceObserver((list) => {
        const e = list.getEntries()[0];
        if (e === undefined) return;
        o.disconnect();
        resolve([toMonotonic + e.startTime, toMonotonic + e.startTime + e.duration]);
      });
      o.observe({ entryTypes: ['gc'] });
    });
    const before = monotonicMs();
    gc({ type: 'major' });
    const after = monotonicMs();
    const [start, end] = await seen;
    expect(start).toBeGreaterThanOrEqual(before - 0.5);
    expect(end).toBeLessThanOrEqual(after + 0.5);
  });

  it('turns performance.now() times into monotonic ones within microseconds, also as the first thing a process does', async () => {
    // A first call of either clock can take a millisecond (compilation): one reading of each put
    // that into the offset (0.8-1.1 ms off, measured), and the probe's times went backwards.
    const lib = new URL('../../dist/native-bench/lib/tail.js', import.meta.url).href;
    const code = `const m = await import(${JSON.stringify(lib)}); const off = m.performanceToMonotonic(); let worst = 0; for (let k = 0; k < 5; k++) { const p = performance.now(); const t = m.monotonicMs(); worst = Math.max(worst, Math.abs(p + off - t)); } console.log(worst);`;
    for (let run = 0; run < 3; run++) {
      const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', code], { timeout: 30_000 });
      expect(Number(stdout.trim())).toBeLessThan(0.1);
    }
  });

  it('reads the same clock in a worker thread as in main', async () => {
    const before = monotonicMs();
    const worker = new Worker(`const { parentPort } = require('node:worker_threads'); parentPort.postMessage(Number(process.hrtime.bigint()) / 1e6);`, { eval: true });
    const there = await new Promise<number>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    const after = monotonicMs();
    await worker.terminate();
    expect(there).toBeGreaterThanOrEqual(before);
    expect(there).toBeLessThanOrEqual(after);
  });
});

describe('the tail probe, run', () => {
  it('measures a short fixed-rate run against real shards and reports consistent figures', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [probe, '--rate', '2000', '--seconds', '1', '--warmup', '0.5', '--ids', '100', '--json'], { timeout: 60_000 });
    const r = JSON.parse(stdout.trim()) as {
      requests: number;
      micros: { p50: number; p90: number; p95: number; p98: number; p99: number; p999: number; max: number };
      slowest: { requests: number; lagMs: number; toShardMs: number; backMs: number; slowBothWays: number };
      leastMs: { toShardMs: number; backMs: number };
      mainBusy: { withGc: { gaps: number; ms: number }; without: { gaps: number; ms: number; longestMs: number[] }; gcs: number; gcMs: number };
      shards: Array<{ gcPausesOver2Ms: number; loopGapsOver2Ms: number }>;
      threads: ThreadFigures;
      workerCpuMicrosPerRequest: number | null;
    };
    expect(r.requests).toBe(2000);
    expect(r.micros.p50).toBeGreaterThan(0);
    const order = [r.micros.p50, r.micros.p90, r.micros.p95, r.micros.p98, r.micros.p99, r.micros.p999, r.micros.max];
    expect(order).toEqual([...order].sort((a, b) => a - b));
    expect(r.slowest.requests).toBe(20);
    // The shard's clock and main's agree: no request reached the shard before it was issued, or
    // main before the shard invoked it.
    expect(r.leastMs.toShardMs).toBeGreaterThanOrEqual(-0.001);
    expect(r.leastMs.backMs).toBeGreaterThanOrEqual(-0.001);
    expect(r.slowest.slowBothWays).toBeLessThanOrEqual(20);
    // The slowest 1% are at least as slow as the p99.
    expect((r.slowest.lagMs + r.slowest.toShardMs + r.slowest.backMs) * 1000).toBeGreaterThanOrEqual(r.micros.p99 * 0.999);
    // Main-busy figures: counts and times that agree with each other.
    expect(r.mainBusy.without.longestMs.length).toBe(Math.min(5, r.mainBusy.without.gaps));
    for (const x of r.mainBusy.without.longestMs) expect(x).toBeGreaterThan(0.5);
    expect(r.mainBusy.withGc.ms).toBeGreaterThanOrEqual(r.mainBusy.withGc.gaps * 0.5);
    expect(r.mainBusy.gcMs).toBeGreaterThanOrEqual(0);
    expect(r.shards).toHaveLength(2);
    for (const s of r.shards) expect(s.gcPausesOver2Ms).toBeGreaterThanOrEqual(0);
    expectThreadFigures(r, 'shard');
  }, 90_000);

  it('runs the same open loop against the raw ring (--system ring): latency and thread figures, no split and no shards', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [probe, '--system', 'ring', '--rate', '2000', '--seconds', '1', '--warmup', '0.5', '--ids', '100', '--json'], { timeout: 60_000 });
    const r = JSON.parse(stdout.trim()) as { system: string; requests: number; micros: { p50: number; p99: number }; slowest: unknown; leastMs: unknown; shards: unknown[]; threads: ThreadFigures; workerCpuMicrosPerRequest: number | null };
    expect(r.system).toBe('ring');
    expect(r.requests).toBe(2000);
    expect(r.micros.p50).toBeGreaterThan(0);
    expect(r.micros.p50).toBeLessThanOrEqual(r.micros.p99);
    // Its replies carry no shard clock: nothing to split.
    expect(r.slowest).toBeNull();
    expect(r.leastMs).toBeNull();
    expect(r.shards).toEqual([]);
    expectThreadFigures(r, 'ring-worker');
  }, 90_000);

  it('refuses a --system it does not know, naming it', async () => {
    const run = promisify(execFile)(process.execPath, [probe, '--system', 'postMessage', '--seconds', '1'], { timeout: 30_000 });
    await expect(run).rejects.toMatchObject({ code: 2, stderr: expect.stringContaining('--system must be weft or ring (got "postMessage")') as string });
  });
});

const probe = fileURLToPath(new URL('../../dist/native-bench/tail-probe.js', import.meta.url));

interface ThreadFigures {
  groups: Array<{ role: string; cpu: number; wait: number; threads: number }>;
  other: number;
}

/** Per-thread times are read from Linux's schedstat; elsewhere (or where /proc hides it) the probe has none. */
const schedstat = existsSync(`/proc/self/task/${process.pid}/schedstat`);

/**
 * With schedstat: main and both worker threads (each announced its role: a lost announcement would
 * count a worker among the other threads) ran, and the workers' CPU per request is a positive
 * figure. Without: no thread figures, and no CPU per request.
 */
function expectThreadFigures(r: { threads: ThreadFigures; workerCpuMicrosPerRequest: number | null }, worker: string): void {
  if (!schedstat) {
    expect(r.threads.groups).toEqual([]);
    expect(r.workerCpuMicrosPerRequest).toBeNull();
    return;
  }
  const roles = new Map(r.threads.groups.map((g) => [g.role, g]));
  expect(roles.get('main')?.cpu).toBeGreaterThan(0);
  expect(roles.get('main')?.threads).toBe(1);
  expect(roles.get(worker)?.cpu).toBeGreaterThan(0);
  expect(roles.get(worker)?.threads).toBe(2);
  for (const g of r.threads.groups) {
    expect(g.cpu).toBeGreaterThanOrEqual(0);
    expect(g.wait).toBeGreaterThanOrEqual(0);
  }
  expect(r.workerCpuMicrosPerRequest).toBeGreaterThan(0);
}
