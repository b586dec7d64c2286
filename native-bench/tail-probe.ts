/**
 * The tail probe (`npm run probe:tail -- [options]`): requests at a FIXED rate against an engine
 * set up like bench (c)'s (2 shards, checkpoints every 50 ms, durability 'process', and bench
 * (c)'s own open-loop generator, lib/drive.ts, told of each request and turn), to see where the slow requests' time goes. The suite's levels
 * are fractions of a closed-loop maximum that moves with the machine; a fixed rate compares
 * builds and settings at the same load.
 *
 * It prints, over the measured window:
 *  - p50 / p90 / p95 / p98 / p99 / p999 / max latency from each request's due time;
 *  - how the slowest 1% split: the generator late for them (main busy), main to the shard's
 *    invocation (the reply carries the shard's clock, modules/stamp.ts), and the rest (the
 *    shard's turn after it, the way back, main picking the reply up); and how many of them were
 *    over 1 ms both ways; and the least time any request took each way (below 0 only if the
 *    clocks disagreed);
 *  - main busy or descheduled: gaps over 0.5 ms between two turns of the generator (which spins,
 *    so each turn follows the last within microseconds, or sleeps on a timer when the next
 *    request is due more than 3 ms ahead: then the gap counts from when the timer should have
 *    fired) and turns over 0.5 ms, split into those a GC of main covers at least 30% of and the
 *    others;
 *  - each shard's GC pauses and loop gaps over 2 ms (weft.metrics());
 *  - on Linux, each group of threads' time on a CPU and waiting for one, per second of the window
 *    (lib/threads.ts: main, which includes the generator's spinning; the shards; every other
 *    thread: V8's GC helpers and compilers, libuv's pool with LMDB's commits), and the shards'
 *    CPU per request.
 *
 * `--system ring` runs the same open loop against bench (c)'s raw-ring baseline instead (as many
 * worker threads as --shards, a counter per id in memory, nothing persisted; --checkpoint-ms does
 * not apply): the same figures at the same fixed rate, except the split of the slowest requests
 * (its reply carries no clock) and the shards' metrics, so that weft and the transport alone
 * compare thread by thread.
 *
 * Options: --system weft|ring (default weft), --rate N (requests/s, default 49000: bench (c)'s 10% on the 2-core machine),
 * --seconds S (measured, default 6), --warmup S (unmeasured first, default 3; 0: none), --ids N
 * (counters, default 10000), --shards N (default 2), --checkpoint-ms N (default 50), --json (one
 * JSON line).
 */
import { PerformanceObserver } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import type { Address } from '../src/index.js';
import { RingActors } from './baselines/ring.js';
import { openLoop, type LatencyRun } from './lib/drive.js';
import { startEngine } from './lib/engine.js';
import { percentile } from './lib/stats.js';
import { describeShare, listenForThreads, sampleRoles, settle, stopListening, threadShare } from './lib/threads.js';
import { classifyGaps, leastParts, performanceToMonotonic, splitSlowest, within, type RequestTimes, type Span } from './lib/tail.js';
import { STAMP } from './modules/stamp.js';

/** A gap between two generator turns, or a turn, longer than this is main busy elsewhere, ms. */
const GAP_MS = 0.5;
/** A gap is a GC's when GC pauses cover at least this share of it. */
const GC_SHARE = 0.3;
/** The slowest requests looked at. */
const SLOWEST = 0.01;
/** "Slow both ways": over this much to the shard and back, ms. */
const BOTH_WAYS_MS = 1;

const { values } = parseArgs({
  options: {
    system: { type: 'string', default: 'weft' },
    rate: { type: 'string', default: '49000' },
    seconds: { type: 'string', default: '6' },
    warmup: { type: 'string', default: '3' },
    ids: { type: 'string', default: '10000' },
    shards: { type: 'string', default: '2' },
    'checkpoint-ms': { type: 'string', default: '50' },
    json: { type: 'boolean', default: false },
  },
});

/** A number from option `name` (positive, or >= 0 with `zero`; an integer with `integer`), or exit 2 naming it. */
function option(name: string, text: string, integer: boolean, zero = false): number {
  const n = Number(text);
  if (!(text.trim() !== '' && Number.isFinite(n) && (zero ? n >= 0 : n > 0) && (!integer || Number.isInteger(n)))) {
    console.error(`tail-probe: --${name} must be a ${zero ? 'non-negative' : 'positive'} ${integer ? 'integer' : 'number'} (got ${JSON.stringify(text)})`);
    process.exit(2);
  }
  return n;
}

const rate = option('rate', values.rate, false);
const seconds = option('seconds', values.seconds, false);
const warmup = option('warmup', values.warmup, false, true);
const idCount = option('ids', values.ids, true);
const shards = option('shards', values.shards, true);
const checkpointMs = option('checkpoint-ms', values['checkpoint-ms'], true);

const system = values.system;
if (system !== 'weft' && system !== 'ring') {
  console.error(`tail-probe: --system must be weft or ring (got ${JSON.stringify(system)})`);
  process.exit(2);
}

// Worker threads announce their Linux thread ids (modules/thread-tag.ts) for the thread figures.
listenForThreads();
const addresses: Address[] = Array.from({ length: idCount }, (_, i) => ({ type: STAMP, id: `c${i}` }));
const ids = addresses.map((a) => a.id);
const engine = system === 'weft' ? await startEngine('tail-probe', { module: 'stamp', shards, checkpointIntervalMs: checkpointMs }) : undefined;
const ring = system === 'ring' ? await RingActors.start(shards) : undefined;
await settle();
const weft = engine?.weft;
// The raw ring's reply is a count, not the shard's clock: its requests have no split.
const request =
  weft !== undefined
    ? (i: number): Promise<unknown> => weft.request(addresses[i % idCount] as Address, 1)
    : (i: number): Promise<unknown> => (ring as RingActors).request(ids[i % idCount] as string);

// Main's times on the monotonic clock the shards stamp replies with: the generator's and the GC
// entries' (both this thread's performance.now()) moved by one offset.
const toMonotonic = performanceToMonotonic();

// Main's GC pauses. Entries arrive a loop turn or two after their GC: the observer stays on
// until after the window, and only those within it count.
const gcs: Span[] = [];
const observer = new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcs.push([toMonotonic + e.startTime, toMonotonic + e.startTime + e.duration]);
});
observer.observe({ entryTypes: ['gc'] });

// Every request's times, in columns allocated once for the largest window (the warm-up reuses
// them): an object per request would be main's garbage, and its GCs, in the window measured.
const most = Math.max(1, Math.floor(Math.max(seconds, warmup) * rate));
const times = { due: new Float64Array(most), issued: new Float64Array(most), invoked: new Float64Array(most), done: new Float64Array(most) } satisfies RequestTimes;

interface Window {
  run: LatencyRun;
  /** Main busy elsewhere: gaps between generator turns (from when the turn was due), and long turns. */
  gaps: Span[];
  /** From the first turn of the generator to its last. */
  from: number;
  to: number;
}

/** bench (c)'s open loop at `rate` for `ms`, each request's times into `times`. */
async function openWindow(ms: number): Promise<Window> {
  const gaps: Span[] = [];
  let from = Number.NaN;
  let to = Number.NaN;
  let next = Number.NaN;
  const run = await openLoop(request, rate, ms, {
    issued(i, due, at) {
      times.due[i] = toMonotonic + due;
      times.issued[i] = toMonotonic + at;
    },
    done(i, value, at) {
      times.done[i] = toMonotonic + at;
      times.invoked[i] = weft === undefined ? Number.NaN : (value as number);
    },
    turn(start, end, due) {
      const s = toMonotonic + start;
      const e = toMonotonic + end;
      if (Number.isNaN(from)) from = s;
      else if (s - next > GAP_MS) gaps.push([next, s]);
      if (e - s > GAP_MS) gaps.push([s, e]);
      to = e;
      next = toMonotonic + due;
    },
  });
  return { run, gaps, from, to };
}

if (warmup > 0) await openWindow(warmup * 1000);
const m0 = weft?.metrics();
const r0 = sampleRoles();
const t0 = performance.now();
const window = await openWindow(seconds * 1000);
const windowMs = performance.now() - t0;
const threads = threadShare(r0, sampleRoles(), windowMs);
const m1 = weft?.metrics();
// Let the window's last GC entries arrive.
for (let i = 0; i < 4; i++) await new Promise((resolve) => setImmediate(resolve));
observer.disconnect();

const n = window.run.requests;
const sorted = window.run.sortedMicros;
const split = weft === undefined ? null : splitSlowest(times, n, SLOWEST, BOTH_WAYS_MS);
const least = weft === undefined ? null : leastParts(times, n);
const mainGc = within(gcs, window.from, window.to);
const stalls = classifyGaps(window.gaps, mainGc, GC_SHARE);
// The worker threads (weft's shards, the ring's workers): CPU per request over the window.
const workers = threads.groups.filter((g) => g.role === 'shard' || g.role === 'ring-worker');
const workerCpu = workers.reduce((a, g) => a + g.cpu, 0);
const result = {
  system,
  rate,
  seconds,
  requests: n,
  // p90 to p98 too: where two systems' distributions part says whether the slow requests are a
  // slower common case or more stalls.
  micros: {
    p50: percentile(sorted, 0.5),
    p90: percentile(sorted, 0.9),
    p95: percentile(sorted, 0.95),
    p98: percentile(sorted, 0.98),
    p99: percentile(sorted, 0.99),
    p999: percentile(sorted, 0.999),
    max: sorted[n - 1] ?? Number.NaN,
  },
  slowest: split,
  leastMs: least,
  mainBusy: { overMs: GAP_MS, gcShare: GC_SHARE, ...stalls, gcs: mainGc.length, gcMs: mainGc.reduce((s, [a, b]) => s + b - a, 0) },
  shards: (m1?.shards ?? []).map((s, i) => ({
    gcPausesOver2Ms: s.gcPausesOver2Ms - (m0?.shards[i]?.gcPausesOver2Ms ?? 0),
    loopGapsOver2Ms: s.loopGapsOver2Ms - (m0?.shards[i]?.loopGapsOver2Ms ?? 0),
  })),
  /** Per thread group, ms on a CPU and ms waiting for one, per second of the window (Linux; empty elsewhere). */
  threads,
  /** The worker threads' CPU per request, µs (null without thread figures). */
  workerCpuMicrosPerRequest: workers.length === 0 ? null : (workerCpu * windowMs) / n,
};

if (values.json) {
  console.log(JSON.stringify(result));
} else {
  const ms = (x: number): string => x.toFixed(2);
  const us = result.micros;
  const setup = system === 'weft' ? `${shards} shards, checkpoints every ${checkpointMs} ms` : `the raw ring, ${shards} workers`;
  console.log(`tail probe: ${rate} req/s for ${seconds} s (${n} requests, ${setup}, after ${warmup} s unmeasured)`);
  console.log(`  latency from due: p50 ${us.p50.toFixed(0)} µs, p90 ${us.p90.toFixed(0)} µs, p95 ${us.p95.toFixed(0)} µs, p98 ${us.p98.toFixed(0)} µs, p99 ${us.p99.toFixed(0)} µs, p999 ${us.p999.toFixed(0)} µs, max ${us.max.toFixed(0)} µs`);
  if (split !== null && least !== null) {
    console.log(`  slowest 1% (${split.requests}), mean ms: generator late ${ms(split.lagMs)}, to the shard's invocation ${ms(split.toShardMs)}, from it to main ${ms(split.backMs)}; over ${BOTH_WAYS_MS} ms both ways: ${split.slowBothWays} (least of all requests: ${ms(least.toShardMs)} / ${ms(least.backMs)} ms)`);
  }
  console.log(`  main busy over ${GAP_MS} ms: ${stalls.withGc.gaps} times with a GC (${ms(stalls.withGc.ms)} ms), ${stalls.without.gaps} without (${ms(stalls.without.ms)} ms; longest ${stalls.without.longestMs.map(ms).join(', ') || '-'}); main's GCs ${result.mainBusy.gcs} (${ms(result.mainBusy.gcMs)} ms)`);
  result.shards.forEach((s, i) => console.log(`  shard ${i}: GC pauses over 2 ms ${s.gcPausesOver2Ms}, loop gaps over 2 ms ${s.loopGapsOver2Ms}`));
  if (threads.groups.length > 0) {
    const perRequest = result.workerCpuMicrosPerRequest === null ? 'no worker thread announced itself' : `the ${system === 'weft' ? 'shards' : "ring's workers"} ${result.workerCpuMicrosPerRequest.toFixed(1)} µs of CPU per request`;
    console.log(`  threads, ms on a CPU per s (waiting for one): ${describeShare(threads)}; ${perRequest}`);
  }
}
await engine?.close();
await ring?.close();
stopListening();
process.exit(0);
