/**
 * Workload (c): `request()` latency under an OPEN-LOOP offered load (lib/drive.ts). First the
 * maximum request rate of this run (closed loop, 4096 requests in flight); then 10%, 50% and 90%
 * of it, each for a fixed time, latency measured from each request's due time. The raw-ring and
 * postMessage baselines answer the same requests at the SAME absolute rates, so their rows show
 * what the transport alone costs at that load. weft: 2 shards, checkpoints every 50 ms,
 * non-durable replies (the default: a reply goes out at once, before its commit).
 *
 * Then the tail figures of issue 13, each beside its baselines from the same run:
 *   - per level, each shard's GC pauses and loop gaps (weft.metrics(), shard/pauses.ts): how many
 *     went over 2 ms during the level, and the longest since the shard started;
 *   - at 50%, the main thread's event-loop delay (perf_hooks.monitorEventLoopDelay, 1 ms
 *     resolution) while the generator drives weft, and while it drives each baseline;
 *   - light load: a closed loop of one request every 5 ms (a quiet service: every request wakes
 *     a sleeping shard), weft and both baselines;
 *   - a host send loop that never yields against one yielding every 4096 sends, each in a fresh
 *     child process (send-loop.ts) so its peak RSS is its own.
 */
import type { Address } from '../../src/index.js';
import { baselines } from '../lib/baselines.js';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { forkResult } from '../lib/child.js';
import { interleavedPaced, maxRequestRate, openLoop, type LatencyRun, type PacedRun } from '../lib/drive.js';
import { pausesBetween, shardPauses, startEngine, type ShardPauses } from '../lib/engine.js';
import type { SendLoopResult } from '../send-loop.js';
import { load1 } from '../lib/machine.js';
import { describeShare, sampleRoles, threadShare, type ThreadShare } from '../lib/threads.js';
import type { BenchContext, Figure, WorkloadResult } from '../lib/report.js';
import { percentile } from '../lib/stats.js';
import { INCREMENT_AND_REPLY } from '../modules/counter.js';
import { FIRE_IDS, counterAddresses } from './fire.js';

const LEVELS = [0.1, 0.5, 0.9] as const;
const CONCURRENCY = 4096;
/** The level whose main-thread event-loop delay is measured. */
const ELD_LEVEL = 0.5;
/** Light load: one request every this many ms, closed loop of one. */
const LIGHT_INTERVAL_MS = 5;

/** A latency distribution's middle, tail and worst, µs. */
interface Tail {
  p50: number;
  p99: number;
  max: number;
}

/** The main thread's event-loop delay over a run. */
type LoopDelay = Tail;

async function withLoopDelay<T>(body: () => Promise<T>): Promise<[T, LoopDelay]> {
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  try {
    const r = await body();
    h.disable();
    return [r, { p50: h.percentile(50) / 1000, p99: h.percentile(99) / 1000, max: h.max / 1000 }];
  } finally {
    h.disable();
  }
}

function sendLoop(mode: 'yield' | 'tight', messages: number): Promise<SendLoopResult> {
  return forkResult<SendLoopResult>(new URL('../send-loop.js', import.meta.url), [mode, String(messages)], `send-loop ${mode}`);
}

/** `s0 3, s1 0` */
const perShard = (ps: readonly ShardPauses[], pick: (p: ShardPauses) => number, digits = 0): string => ps.map((p) => `s${p.shard} ${pick(p).toFixed(digits)}`).join(', ');

/** The longest since start, per shard, marked `new` when it was reached during the phase. */
function longest(before: readonly ShardPauses[], after: readonly ShardPauses[], pick: (p: ShardPauses) => number): string {
  return after.map((a, i) => `${pick(a).toFixed(1)}${pick(a) > pick(before[i] as ShardPauses) ? ' new' : ''}`).join(' / ');
}

/** Two figures: GC pauses and loop gaps over 2 ms in a phase, per shard, with the longest ones. */
function pauseFigures(key: string, phase: string, before: readonly ShardPauses[], after: readonly ShardPauses[], goal: boolean): Figure[] {
  const d = pausesBetween(before, after);
  const target: Figure['target'] = { kind: 'max', bound: 0, text: 'none > 2 ms' };
  return [
    {
      key: `${key}.gcOver2ms`,
      label: `  weft shards' GC pauses > 2 ms ${phase} (of ${d.reduce((a, p) => a + p.gcPauses, 0)}: ${perShard(d, (p) => p.gcPausesOver2Ms)}; GC ${perShard(d, (p) => p.gcPauseTotalMs, 1)} ms; longest since start ${longest(before, after, (p) => p.gcPauseMaxMs)} ms)`,
      value: d.reduce((a, p) => a + p.gcPausesOver2Ms, 0),
      unit: 'pauses',
      ...(goal ? { target } : {}),
    },
    {
      key: `${key}.gapOver2ms`,
      label: `  weft shards' loop gaps > 2 ms ${phase} (of ${d.reduce((a, p) => a + p.turns, 0)} turns: ${perShard(d, (p) => p.loopGapsOver2Ms)}; > 50 ms ${d.reduce((a, p) => a + p.loopGapsOver50Ms, 0)}; longest since start ${longest(before, after, (p) => p.loopGapMaxMs)} ms)`,
      value: d.reduce((a, p) => a + p.loopGapsOver2Ms, 0),
      unit: 'gaps',
      ...(goal ? { target } : {}),
    },
  ];
}

interface Summary {
  rate: number;
  requests: number;
  achievedRate: number;
  p50: number;
  p99: number;
  p999: number;
  max: number;
  maxIssueLagMicros: number;
}

interface LightSummary extends Tail {
  requests: number;
}

function summarizeLight(r: PacedRun): LightSummary {
  const s = r.sortedMicros;
  return { requests: r.requests, p50: percentile(s, 0.5), p99: percentile(s, 0.99), max: s[s.length - 1] as number };
}

function summarize(r: LatencyRun): Summary {
  const s = r.sortedMicros;
  return {
    rate: r.rate,
    requests: r.requests,
    achievedRate: r.achievedRate,
    p50: percentile(s, 0.5),
    p99: percentile(s, 0.99),
    p999: percentile(s, 0.999),
    max: s[s.length - 1] as number,
    maxIssueLagMicros: r.maxIssueLagMicros,
  };
}

export async function runLatency(ctx: BenchContext): Promise<WorkloadResult> {
  const load0 = load1();
  // Full: 1 s to find the maximum, 2 s per level (at 10% of ~100k req/s that is 20k samples, so
  // p999 rests on ~20 samples); quick: 0.5 s and 0.6 s.
  const maxMs = ctx.quick ? 500 : 1000;
  const levelMs = ctx.quick ? 600 : 2000;
  const addrs: Address[] = counterAddresses(FIRE_IDS);
  const ids = addrs.map((a) => a.id);
  const engine = await startEngine('latency', { module: 'counter', shards: 2, checkpointIntervalMs: 50 });
  const weft = engine.weft;
  const weftRequest = (i: number): Promise<unknown> => weft.request(addrs[i % FIRE_IDS] as Address, INCREMENT_AND_REPLY);
  await maxRequestRate(weftRequest, CONCURRENCY, 300);
  const max = await maxRequestRate(weftRequest, CONCURRENCY, maxMs);
  ctx.log(`(c) max request rate ${Math.round(max)} req/s`);
  const b = ctx.baselines ? await baselines() : undefined;
  const ringRequest = b === undefined ? undefined : (i: number): Promise<unknown> => b.ring.request(ids[i % FIRE_IDS] as string);
  const postRequest = b === undefined ? undefined : (i: number): Promise<unknown> => b.post.request(ids[i % FIRE_IDS] as string);
  // Each system then warms up, unmeasured: warmMs at the 10% rate, then at the 50% rate. V8
  // optimizes a function only after it has run hot for a while, on helper threads that share the
  // cores with the engine: after 1.3 s of the closed loop, weft's threads still compiled for ~3 s
  // more (at the 10% rate, 410 ms of compiling in the first second, 66-111 ms in each of the next
  // three, ~20 ms after). The levels measure a service that has run for a while, each system
  // warmed the same way.
  const warmMs = ctx.quick ? 200 : 1500;
  const warmUp = async (request: (i: number) => Promise<unknown>): Promise<void> => {
    await openLoop(request, LEVELS[0] * max, warmMs);
    await openLoop(request, LEVELS[1] * max, warmMs);
  };
  await warmUp(weftRequest);
  if (ringRequest !== undefined && postRequest !== undefined) {
    await warmUp(ringRequest);
    await warmUp(postRequest);
  }
  const weftRuns: Summary[] = [];
  const ringRuns: Summary[] = [];
  const postRuns: Summary[] = [];
  // Each level first runs unmeasured for settleMs at its rate: the saturating phase before it
  // leaves garbage and timers behind whose cleanup would otherwise land in the first level.
  const settleMs = ctx.quick ? 200 : 300;
  const delays: { weft?: LoopDelay; rawRing?: LoopDelay; postMessage?: LoopDelay } = {};
  // CPU and run-queue time per thread group over each measured level (Linux only).
  const threadTimes: { weft: ThreadShare[]; rawRing: ThreadShare[] } = { weft: [], rawRing: [] };
  const runLevel = async (request: (i: number) => Promise<unknown>, rate: number, delay?: (d: LoopDelay) => void, threads?: ThreadShare[]): Promise<Summary> => {
    await openLoop(request, rate, settleMs);
    const r0 = sampleRoles();
    const t0 = performance.now();
    let run: LatencyRun;
    if (delay === undefined) run = await openLoop(request, rate, levelMs);
    else {
      const [r, d] = await withLoopDelay(() => openLoop(request, rate, levelMs));
      delay(d);
      run = r;
    }
    threads?.push(threadShare(r0, sampleRoles(), performance.now() - t0));
    return summarize(run);
  };
  const levelPauses: Array<[ShardPauses[], ShardPauses[]]> = [];
  for (const level of LEVELS) {
    const rate = level * max;
    const eld = level === ELD_LEVEL;
    const p0 = shardPauses(weft);
    weftRuns.push(await runLevel(weftRequest, rate, eld ? (d) => (delays.weft = d) : undefined, threadTimes.weft));
    levelPauses.push([p0, shardPauses(weft)]);
    if (ringRequest !== undefined && postRequest !== undefined) {
      ringRuns.push(await runLevel(ringRequest, rate, eld ? (d) => (delays.rawRing = d) : undefined, threadTimes.rawRing));
      postRuns.push(await runLevel(postRequest, rate, eld ? (d) => (delays.postMessage = d) : undefined));
    }
    const w = weftRuns.at(-1) as Summary;
    ctx.log(`(c) ${level * 100}%: ${Math.round(rate)} req/s offered, weft p50 ${w.p50.toFixed(0)} p99 ${w.p99.toFixed(0)} p999 ${w.p999.toFixed(0)} us (generator lag up to ${w.maxIssueLagMicros.toFixed(0)} us)` + (ringRuns.length === 0 ? '' : `; ring p99 ${(ringRuns.at(-1) as Summary).p99.toFixed(0)}, post p99 ${(postRuns.at(-1) as Summary).p99.toFixed(0)} us`));
  }
  // Light load, after the levels (a service gone quiet after busier times): 10 s per system at
  // one request per 5 ms, so p99 rests on ~20 samples (with 3 s it rested on ~6, and three runs
  // of the same build gave p99s 2-3x apart). The systems take turns, a second each: measured one
  // after the other, 10 s each, a few seconds of machine stalls landed in one system's run and
  // swung its ratio (weft ÷ postMessage 5.88 and 1.19 in two runs of nearly the same code).
  const lightMs = ctx.quick ? 1000 : 10_000;
  const lightRounds = ctx.quick ? 2 : 10;
  const lightSettleMs = ctx.quick ? 250 : 1000;
  const lightSliceSettleMs = 100;
  const lp0 = shardPauses(weft);
  const lc0 = weft.metrics();
  const lightSystems = ringRequest === undefined || postRequest === undefined ? [weftRequest] : [weftRequest, ringRequest, postRequest];
  const lightRuns = await interleavedPaced(lightSystems, LIGHT_INTERVAL_MS, lightMs, lightRounds, [lightSettleMs, lightSliceSettleMs]);
  const lp1 = shardPauses(weft);
  const lc1 = weft.metrics();
  const lightCheckpoints = {
    committed: lc1.checkpointsCommitted - lc0.checkpointsCommitted,
    held: lc1.checkpointsHeld - lc0.checkpointsHeld,
    heldToLimit: lc1.checkpointsHeldToLimit - lc0.checkpointsHeldToLimit,
  };
  const [weftLight, ringLight, postLight] = lightRuns.map(summarizeLight) as [LightSummary, LightSummary | undefined, LightSummary | undefined];
  ctx.log(`(c) light load (1 request / ${LIGHT_INTERVAL_MS} ms): weft p50 ${weftLight.p50.toFixed(0)} p99 ${weftLight.p99.toFixed(0)} max ${weftLight.max.toFixed(0)} us` + (postLight === undefined ? '' : `; post p99 ${postLight.p99.toFixed(0)}, ring p99 ${(ringLight as LightSummary).p99.toFixed(0)} us`));
  const m = weft.metrics();
  await engine.close();
  // The send loops, each in a fresh process against a fresh engine (peak RSS is a figure).
  const sendN = ctx.quick ? 300_000 : 2_000_000;
  const yielding = await sendLoop('yield', sendN);
  const tight = await sendLoop('tight', sendN);
  ctx.log(`(c) send loop of ${sendN}: yielding ${Math.round(yielding.processedRate)} msg/s, peak RSS ${(yielding.peakRss / 2 ** 20).toFixed(0)} MiB; tight ${Math.round(tight.processedRate)} msg/s, ${(tight.peakRss / 2 ** 20).toFixed(0)} MiB`);
  const figures: Figure[] = [{ key: 'c.maxRate', label: 'weft max request rate (closed loop, 4096 in flight)', value: max, unit: 'req/s' }];
  const targets: Record<string, Figure['target']> = {
    '10.p50': { kind: 'max', bound: 60, text: '<= 60 us' },
    '10.p99': { kind: 'max', bound: 300, text: '<= 300 us' },
    '50.p99': { kind: 'max', bound: 1000, text: '<= 1 ms' },
  };
  LEVELS.forEach((level, i) => {
    const pct = Math.round(level * 100);
    const w = weftRuns[i] as Summary;
    const r = ringRuns[i];
    const p = postRuns[i];
    for (const q of ['p50', 'p99', 'p999'] as const) {
      const target = targets[`${pct}.${q}`];
      figures.push({
        key: `c.${pct}.${q}`,
        label: `weft at ${pct}% (${Math.round(w.rate)} req/s), ${q}`,
        value: w[q],
        unit: 'us',
        ratios: r === undefined || p === undefined ? undefined : { postMessage: w[q] / p[q], rawRing: w[q] / r[q] },
        ...(target === undefined ? {} : { target }),
      });
    }
    figures.push({ key: `c.${pct}.lag`, label: `  load generator's largest lag behind schedule at ${pct}%`, value: w.maxIssueLagMicros, unit: 'us' });
    if (r !== undefined && p !== undefined) {
      figures.push(
        { key: `c.${pct}.ring.p99`, label: `  raw ring baseline at ${pct}%, p50 / p99`, value: r.p99, unit: `us (p50 ${r.p50.toFixed(0)})` },
        { key: `c.${pct}.post.p99`, label: `  postMessage baseline at ${pct}%, p50 / p99`, value: p.p99, unit: `us (p50 ${p.p50.toFixed(0)})` },
      );
    }
    const [p0, p1] = levelPauses[i] as [ShardPauses[], ShardPauses[]];
    figures.push(...pauseFigures(`c.${pct}`, `at ${pct}%`, p0, p1, pct === 10));
    const wt = threadTimes.weft[i];
    if (wt !== undefined && wt.groups.length > 0) {
      const rt = threadTimes.rawRing[i];
      figures.push({ key: `c.${pct}.threads`, label: `  CPU per thread group at ${pct}%, ms per s (waiting for a core): weft ${describeShare(wt)}`, value: wt.other, unit: 'ms/s other threads' });
      if (rt !== undefined) figures.push({ key: `c.${pct}.threads.ring`, label: `  CPU per thread group at ${pct}%, ms per s (waiting for a core): raw ring ${describeShare(rt)}`, value: rt.other, unit: 'ms/s other threads' });
    }
    if (level === ELD_LEVEL && delays.weft !== undefined) {
      const d = delays.weft;
      const ratios = (q: keyof LoopDelay) => (delays.rawRing === undefined || delays.postMessage === undefined ? undefined : { postMessage: d[q] / delays.postMessage[q], rawRing: d[q] / delays.rawRing[q] });
      figures.push(
        { key: `c.${pct}.eld.max`, label: `  main event-loop delay at ${pct}% driving weft, max`, value: d.max, unit: 'us', ratios: ratios('max'), target: { kind: 'max', bound: 1000, text: '<= 1 ms' } },
        { key: `c.${pct}.eld.p99`, label: `  main event-loop delay at ${pct}% driving weft, p99 (p50 ${d.p50.toFixed(0)} us)`, value: d.p99, unit: 'us', ratios: ratios('p99') },
      );
      if (delays.rawRing !== undefined && delays.postMessage !== undefined) {
        figures.push(
          { key: `c.${pct}.eld.ring`, label: `  main event-loop delay at ${pct}% driving the raw ring, max (p99 ${delays.rawRing.p99.toFixed(0)} us)`, value: delays.rawRing.max, unit: 'us' },
          { key: `c.${pct}.eld.post`, label: `  main event-loop delay at ${pct}% driving postMessage, max (p99 ${delays.postMessage.p99.toFixed(0)} us)`, value: delays.postMessage.max, unit: 'us' },
        );
      }
    }
  });
  const lightLabel = `weft light load (1 request / ${LIGHT_INTERVAL_MS} ms, closed loop of one)`;
  for (const q of ['p50', 'p99', 'max'] as const) {
    figures.push({
      key: `c.light.${q}`,
      label: `${lightLabel}, ${q}${q === 'p99' ? ' (goal <= 1.5x postMessage)' : ''}`,
      value: weftLight[q],
      unit: 'us',
      ratios: ringLight === undefined || postLight === undefined ? undefined : { postMessage: weftLight[q] / postLight[q], rawRing: weftLight[q] / ringLight[q] },
    });
  }
  if (ringLight !== undefined && postLight !== undefined) {
    figures.push(
      { key: 'c.light.ring.p99', label: `  raw ring baseline, light load, p99 (p50 ${ringLight.p50.toFixed(0)}, max ${ringLight.max.toFixed(0)} us)`, value: ringLight.p99, unit: 'us' },
      { key: 'c.light.post.p99', label: `  postMessage baseline, light load, p99 (p50 ${postLight.p50.toFixed(0)}, max ${postLight.max.toFixed(0)} us)`, value: postLight.p99, unit: 'us' },
    );
  }
  figures.push(...pauseFigures('c.light', 'under light load', lp0, lp1, false));
  figures.push({
    key: 'c.light.checkpointsHeld',
    label: `  weft checkpoints under light load held for a request's reply (of ${lightCheckpoints.committed} committed; ${lightCheckpoints.heldToLimit} started at their limit instead)`,
    value: lightCheckpoints.held,
    unit: 'held',
  });
  const mib = (b: number): number => b / 2 ** 20;
  figures.push(
    { key: 'c.send.yield', label: `weft host send loop, ${sendN} sends yielding every 4096, processed`, value: yielding.processedRate, unit: 'msg/s' },
    { key: 'c.send.tight', label: `weft host send loop, ${sendN} sends never yielding, processed (${(tight.processedRate / yielding.processedRate).toFixed(2)}x yielding; goal >= 0.8x)`, value: tight.processedRate, unit: 'msg/s' },
    { key: 'c.send.yield.rss', label: `  peak RSS of the process, yielding loop (${mib(yielding.rssBefore).toFixed(0)} MiB before the loop)`, value: mib(yielding.peakRss), unit: 'MiB' },
    { key: 'c.send.tight.rss', label: `  peak RSS of the process, tight loop (${mib(tight.rssBefore).toFixed(0)} MiB before the loop)`, value: mib(tight.peakRss), unit: 'MiB' },
  );
  return {
    id: 'c',
    title: 'request() latency, open loop at 10/50/90% of max rate',
    figures,
    setup: `max rate: closed loop with ${CONCURRENCY} in flight for ${maxMs} ms after a 300 ms warm-up; then each system warms up unmeasured (${warmMs} ms at the 10% rate, ${warmMs} ms at the 50% rate); then per level ${settleMs} ms unmeasured and ${levelMs} ms measured; latency from each request's scheduled time (no coordinated omission); weft: 2 shards, checkpointIntervalMs 50, durability 'process'; ratios are weft / baseline at the same absolute rate; shard pauses from weft.metrics() (counts during the level; the longest since the shard started, 'new' when reached during it); main event-loop delay at ${ELD_LEVEL * 100}% over the measured level (monitorEventLoopDelay, resolution 1 ms); CPU per thread group over each measured level from Linux's /proc/self/task/*/schedstat, thread by thread, ms on a core per s and ms runnable but waiting for one (main includes the load generator's spinning; shard and ring-worker: both threads together; other threads: every untagged thread, i.e. V8's GC helpers and compilers and libuv's pool, shared by weft and the baselines, whose engine or threads stay open but idle while the other runs); light load, after the levels: the systems take turns, ${lightRounds} rounds of ${lightMs / lightRounds} ms measured each (after ${lightSettleMs} ms unmeasured in the first round, ${lightSliceSettleMs} ms in the others), pooled, latency from issue (weft's shard pauses over the whole phase); send loops: ${sendN} sends to ${FIRE_IDS} counters after a warm-up of a tenth of that, each in a fresh child process, peak RSS = its maxRSS`,
    notMeasured: "durable replies (durable: true waits for the commit), request timeouts, loads above 90%, the generator's CPU apart from main's (it spins the main event loop between due times and competes with the shards for the 2 cores; the thread-group figures count it in main)",
    load: [load0, load1()],
    extra: { threadTimes, weft: weftRuns, rawRing: ringRuns, postMessage: postRuns, shardPauses: levelPauses.map(([a, b]) => pausesBetween(a, b)), loopDelayAt50: delays, light: { weft: weftLight, rawRing: ringLight, postMessage: postLight, shardPauses: pausesBetween(lp0, lp1), checkpoints: lightCheckpoints }, sendLoop: { yielding, tight }, invocationLatencyP50Micros: m.shards.map((s) => s.latencyP50Micros), invocationLatencyP99Micros: m.shards.map((s) => s.latencyP99Micros) },
  };
}
