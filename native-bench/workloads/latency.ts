/**
 * Workload (c): `request()` latency under an OPEN-LOOP offered load (lib/drive.ts). First the
 * maximum request rate of this run (closed loop, 4096 requests in flight); then 10%, 50% and 90%
 * of it, each for a fixed time, latency measured from each request's due time. The raw-ring and
 * postMessage baselines answer the same requests at the SAME absolute rates, so their rows show
 * what the transport alone costs at that load. weft: 2 shards, checkpoints every 50 ms,
 * non-durable replies (the default: a reply goes out at once, before its commit).
 */
import type { Address } from '../../src/index.js';
import { baselines } from '../lib/baselines.js';
import { maxRequestRate, openLoop, type LatencyRun } from '../lib/drive.js';
import { startEngine } from '../lib/engine.js';
import { load1 } from '../lib/machine.js';
import type { BenchContext, Figure, WorkloadResult } from '../lib/report.js';
import { percentile } from '../lib/stats.js';
import { INCREMENT_AND_REPLY } from '../modules/counter.js';
import { FIRE_IDS, counterAddresses } from './fire.js';

const LEVELS = [0.1, 0.5, 0.9] as const;
const CONCURRENCY = 4096;

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
  if (ringRequest !== undefined && postRequest !== undefined) {
    await openLoop(ringRequest, 10_000, 200);
    await openLoop(postRequest, 10_000, 200);
  }
  const weftRuns: Summary[] = [];
  const ringRuns: Summary[] = [];
  const postRuns: Summary[] = [];
  // Each level first runs unmeasured for settleMs at its rate: the saturating phase before it
  // leaves garbage and timers behind whose cleanup would otherwise land in the first level.
  const settleMs = ctx.quick ? 200 : 300;
  const runLevel = async (request: (i: number) => Promise<unknown>, rate: number): Promise<Summary> => {
    await openLoop(request, rate, settleMs);
    return summarize(await openLoop(request, rate, levelMs));
  };
  for (const level of LEVELS) {
    const rate = level * max;
    weftRuns.push(await runLevel(weftRequest, rate));
    if (ringRequest !== undefined && postRequest !== undefined) {
      ringRuns.push(await runLevel(ringRequest, rate));
      postRuns.push(await runLevel(postRequest, rate));
    }
    const w = weftRuns.at(-1) as Summary;
    ctx.log(`(c) ${level * 100}%: ${Math.round(rate)} req/s offered, weft p50 ${w.p50.toFixed(0)} p99 ${w.p99.toFixed(0)} p999 ${w.p999.toFixed(0)} us (generator lag up to ${w.maxIssueLagMicros.toFixed(0)} us)` + (ringRuns.length === 0 ? '' : `; ring p99 ${(ringRuns.at(-1) as Summary).p99.toFixed(0)}, post p99 ${(postRuns.at(-1) as Summary).p99.toFixed(0)} us`));
  }
  const m = weft.metrics();
  await engine.close();
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
  });
  return {
    id: 'c',
    title: 'request() latency, open loop at 10/50/90% of max rate',
    figures,
    setup: `max rate: closed loop with ${CONCURRENCY} in flight for ${maxMs} ms after a 300 ms warm-up; then per level ${settleMs} ms unmeasured and ${levelMs} ms measured; latency from each request's scheduled time (no coordinated omission); weft: 2 shards, checkpointIntervalMs 50, durability 'process'; ratios are weft / baseline at the same absolute rate`,
    notMeasured: "durable replies (durable: true waits for the commit), request timeouts, loads above 90%, the generator's own CPU (it spins the main event loop between due times and competes with the shards for the 2 cores)",
    load: [load0, load1()],
    extra: { weft: weftRuns, rawRing: ringRuns, postMessage: postRuns, invocationLatencyP50Micros: m.shards.map((s) => s.latencyP50Micros), invocationLatencyP99Micros: m.shards.map((s) => s.latencyP99Micros) },
  };
}
