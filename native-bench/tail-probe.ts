/**
 * The tail probe (`npm run probe:tail -- [options]`): requests at a FIXED rate against an engine
 * set up like bench (c)'s (2 shards, checkpoints every 50 ms, durability 'process', the same
 * spinning open-loop generator), to see where the slow requests' time goes. The suite's levels
 * are fractions of a closed-loop maximum that moves with the machine; a fixed rate compares
 * builds and settings at the same load.
 *
 * It prints, over the measured window:
 *  - p50 / p99 / p999 / max latency from each request's due time;
 *  - how the slowest 1% split: the generator late for them (main busy), main to the shard's
 *    invocation (the reply carries the shard's clock, modules/stamp.ts), and the way back; and
 *    how many of them were over 1 ms both ways (a stall of both sides at once, i.e. of main);
 *  - main's stalls: gaps over 0.5 ms between two turns of the generator (which spins, so each
 *    turn follows the last within microseconds), split into those a GC of main explains and the
 *    others;
 *  - each shard's GC pauses and loop gaps over 2 ms (weft.metrics()).
 *
 * Options: --rate N (requests/s, default 49000: bench (c)'s 10% on the 2-core machine),
 * --seconds S (measured, default 6), --warmup S (unmeasured first, default 3), --ids N (counters,
 * default 10000), --shards N (default 2), --checkpoint-ms N (default 50), --json (one JSON line).
 */
import { PerformanceObserver } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import type { Address } from '../src/index.js';
import { startEngine } from './lib/engine.js';
import { percentile } from './lib/stats.js';
import { classifyGaps, splitSlowest, type RequestTimes, type Span } from './lib/tail.js';
import { STAMP } from './modules/stamp.js';

/** A gap between two generator turns longer than this is a stall of main, ms. */
const GAP_MS = 0.5;
/** A stall is a GC's when GC pauses cover at least this share of it. */
const GC_SHARE = 0.3;
/** The slowest requests looked at. */
const SLOWEST = 0.01;
/** "Slow both ways": over this much to the shard and back, ms. */
const BOTH_WAYS_MS = 1;

const { values } = parseArgs({
  options: {
    rate: { type: 'string', default: '49000' },
    seconds: { type: 'string', default: '6' },
    warmup: { type: 'string', default: '3' },
    ids: { type: 'string', default: '10000' },
    shards: { type: 'string', default: '2' },
    'checkpoint-ms': { type: 'string', default: '50' },
    json: { type: 'boolean', default: false },
  },
});

/** A positive number from option `name`, or exit 2 naming it. */
function positive(name: string, text: string, integer: boolean): number {
  const n = Number(text);
  if (!(Number.isFinite(n) && n > 0 && (!integer || Number.isInteger(n)))) {
    console.error(`tail-probe: --${name} must be a positive ${integer ? 'integer' : 'number'} (got ${JSON.stringify(text)})`);
    process.exit(2);
  }
  return n;
}

const rate = positive('rate', values.rate, false);
const seconds = positive('seconds', values.seconds, false);
const warmup = positive('warmup', values.warmup, false);
const idCount = positive('ids', values.ids, true);
const shards = positive('shards', values.shards, true);
const checkpointMs = positive('checkpoint-ms', values['checkpoint-ms'], true);

const now = (): number => performance.timeOrigin + performance.now();
const addresses: Address[] = Array.from({ length: idCount }, (_, i) => ({ type: STAMP, id: `c${i}` }));
const engine = await startEngine('tail-probe', { module: 'stamp', shards, checkpointIntervalMs: checkpointMs });
const weft = engine.weft;

const gcs: Span[] = [];
const observer = new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcs.push([performance.timeOrigin + e.startTime, performance.timeOrigin + e.startTime + e.duration]);
});
observer.observe({ entryTypes: ['gc'] });

interface Window {
  times: RequestTimes[];
  gaps: Span[];
}

/** Requests at `rate` for `ms`, open loop (each due at its time, latency from then). */
function openLoop(ms: number): Promise<Window> {
  const total = Math.max(1, Math.floor((ms * rate) / 1000));
  const interval = 1000 / rate;
  const times: RequestTimes[] = Array.from({ length: total }, () => ({ due: 0, issued: 0, invoked: 0, done: 0 }));
  const gaps: Span[] = [];
  return new Promise((resolve, reject) => {
    let issued = 0;
    let completed = 0;
    const t0 = now() + 1;
    let last = now();
    const tick = (): void => {
      const t = now();
      if (t - last > GAP_MS) gaps.push([last, t]);
      while (issued < total) {
        const due = t0 + issued * interval;
        if (due > t) break;
        const r = times[issued++] as RequestTimes;
        r.due = due;
        r.issued = now();
        weft.request(addresses[issued % idCount] as Address, 1).then((invoked) => {
          r.done = now();
          r.invoked = invoked as number;
          if (++completed === total) resolve({ times, gaps });
        }, reject);
      }
      last = now();
      if (issued < total) setImmediate(tick);
    };
    tick();
  });
}

await openLoop(warmup * 1000);
const m0 = weft.metrics();
const start = now();
gcs.length = 0;
const { times, gaps } = await openLoop(seconds * 1000);
const end = now();
const m1 = weft.metrics();
observer.disconnect();

const sorted = Float64Array.from(times, (t) => (t.done - t.due) * 1000).sort();
const split = splitSlowest(times, SLOWEST, BOTH_WAYS_MS);
const stalls = classifyGaps(gaps, gcs, GC_SHARE);
const mainGc = gcs.filter(([a]) => a >= start && a <= end);
const result = {
  rate,
  seconds,
  requests: times.length,
  micros: { p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), p999: percentile(sorted, 0.999), max: sorted[sorted.length - 1] ?? Number.NaN },
  slowest: split,
  mainStalls: { overMs: GAP_MS, ...stalls, gcs: mainGc.length, gcMs: mainGc.reduce((s, [a, b]) => s + b - a, 0) },
  shards: m1.shards.map((s, i) => ({
    gcPausesOver2Ms: s.gcPausesOver2Ms - (m0.shards[i]?.gcPausesOver2Ms ?? 0),
    loopGapsOver2Ms: s.loopGapsOver2Ms - (m0.shards[i]?.loopGapsOver2Ms ?? 0),
  })),
};
await engine.close();

if (values.json) {
  console.log(JSON.stringify(result));
} else {
  const ms = (x: number): string => x.toFixed(2);
  const us = result.micros;
  console.log(`tail probe: ${rate} req/s for ${seconds} s (${result.requests} requests, ${shards} shards, checkpoints every ${checkpointMs} ms, after ${warmup} s unmeasured)`);
  console.log(`  latency from due: p50 ${us.p50.toFixed(0)} µs, p99 ${us.p99.toFixed(0)} µs, p999 ${us.p999.toFixed(0)} µs, max ${us.max.toFixed(0)} µs`);
  console.log(`  slowest 1% (${split.requests}), mean ms: generator late ${ms(split.lagMs)}, to the shard ${ms(split.toShardMs)}, back ${ms(split.backMs)}; over ${BOTH_WAYS_MS} ms both ways: ${split.slowBothWays}`);
  console.log(`  main's stalls over ${GAP_MS} ms: ${stalls.withGc.gaps} with a GC (${ms(stalls.withGc.ms)} ms), ${stalls.without.gaps} without (${ms(stalls.without.ms)} ms; longest ${stalls.without.longestMs.map(ms).join(', ') || '-'}); main's GCs ${result.mainStalls.gcs} (${ms(result.mainStalls.gcMs)} ms)`);
  result.shards.forEach((s, i) => console.log(`  shard ${i}: GC pauses over 2 ms ${s.gcPausesOver2Ms}, loop gaps over 2 ms ${s.loopGapsOver2Ms}`));
}
process.exit(0);
