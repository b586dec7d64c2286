/**
 * Workload (a): host → function fire-and-forget. Every message updates an int counter of one of
 * 10,000 instances (ids cycled in order). weft: 2 shards, checkpoints every 50 ms, durability
 * 'process'. The three baselines do the same messages in the same process run, interleaved
 * round by round with weft so drift on a shared machine hits all of them alike. Besides rates,
 * each run records CPU per message per thread role (main, shards / baseline workers) and the
 * time those threads waited for a CPU.
 */
import type { Address } from '../../src/index.js';
import { BASELINE_THREADS, baselines } from '../lib/baselines.js';
import { fireWeft } from '../lib/drive.js';
import { startEngine, sumShards } from '../lib/engine.js';
import { load1 } from '../lib/machine.js';
import { measured, medianOf, type RunFigures } from '../lib/measure.js';
import type { BenchContext, Figure, WorkloadResult } from '../lib/report.js';
import { median } from '../lib/stats.js';
import { COUNTER, INCREMENT } from '../modules/counter.js';
import { ids } from '../modules/ids.js';

export const FIRE_IDS = 10_000;

export function counterAddresses(count: number, prefix = 'c'): Address[] {
  return ids(prefix, count).map((id) => ({ type: COUNTER, id }));
}

/** Figures of CPU per message per thread role for a variant's runs. */
export function cpuFigures(prefix: string, label: string, runs: RunFigures[], workerRole: string): Figure[] {
  const main = medianOf(runs, (r) => r.roleCpuNs.main);
  const workers = medianOf(runs, (r) => r.roleCpuNs[workerRole]);
  const wait = medianOf(runs, (r) => (r.roleWaitNs.main ?? 0) + (r.roleWaitNs[workerRole] ?? 0));
  const other = medianOf(runs, (r) => r.cpuNs - (r.roleCpuNs.main ?? 0) - (r.roleCpuNs[workerRole] ?? 0));
  return [
    { key: `${prefix}.cpu`, label: `${label} CPU/msg, all threads`, value: medianOf(runs, (r) => r.cpuNs), unit: 'ns/msg' },
    { key: `${prefix}.cpuMain`, label: `${label} CPU/msg, main thread`, value: main, unit: 'ns/msg' },
    { key: `${prefix}.cpuWorkers`, label: `${label} CPU/msg, ${workerRole} threads (sum)`, value: workers, unit: 'ns/msg' },
    { key: `${prefix}.cpuOther`, label: `${label} CPU/msg, other threads (GC helpers, LMDB, libuv)`, value: other, unit: 'ns/msg' },
    { key: `${prefix}.wait`, label: `${label} run-queue wait/msg, those threads`, value: wait, unit: 'ns/msg' },
  ];
}

export interface FireBudget {
  messages: number;
  runs: number;
  warmup: number;
}

export function fireBudget(quick: boolean): FireBudget {
  // Full: 500k messages per run (~1-2 s for weft here: long against the 50 ms checkpoint interval
  // and timer noise), 5 runs for a median; quick: 200k x 3.
  return quick ? { messages: 200_000, runs: 3, warmup: 50_000 } : { messages: 500_000, runs: 5, warmup: 200_000 };
}

export async function runFire(ctx: BenchContext): Promise<WorkloadResult> {
  const load0 = load1();
  const budget = fireBudget(ctx.quick);
  const addrs = counterAddresses(FIRE_IDS);
  const idList = addrs.map((a) => a.id);
  const n = budget.messages;
  const b = ctx.baselines ? await baselines() : undefined;
  const engine = await startEngine('fire', { module: 'counter', shards: 2, checkpointIntervalMs: 50 });
  const weft = engine.weft;
  await fireWeft(weft, addrs, budget.warmup, INCREMENT);
  if (b !== undefined) {
    b.inProcess.fire(budget.warmup, FIRE_IDS);
    await b.post.fire(Math.min(budget.warmup, 100_000), idList);
    await b.ring.fire(budget.warmup, idList);
  }
  const processed: RunFigures[] = [];
  const acked: number[] = [];
  const inProc: RunFigures[] = [];
  const post: RunFigures[] = [];
  const ring: RunFigures[] = [];
  const ckpt0 = weft.metrics().checkpointsCommitted;
  const spill0 = sumShards(weft, 'ringSpilledFrames');
  let weftMs = 0;
  for (let r = 0; r < budget.runs; r++) {
    if (b !== undefined) {
      inProc.push(await measured(n, () => b.inProcess.fire(n, FIRE_IDS)));
      post.push(await measured(n, () => b.post.fire(n, idList)));
      ring.push(await measured(n, () => b.ring.fire(n, idList)));
    }
    let ackMs = 0;
    processed.push(
      await measured(n, async () => {
        const t = await fireWeft(weft, addrs, n, INCREMENT, r * n);
        ackMs = t.ackedMs;
        return t.processedMs;
      }),
    );
    weftMs += ackMs;
    acked.push(n / (ackMs / 1000));
    const last = (xs: RunFigures[]): number => Math.round((xs.at(-1) as RunFigures).rate);
    ctx.log(`(a) run ${r + 1}/${budget.runs}: weft ${last(processed)} processed msg/s` + (b === undefined ? '' : `, in-proc ${last(inProc)}, post ${last(post)}, ring ${last(ring)}`));
  }
  const m = weft.metrics();
  const checkpoints = m.checkpointsCommitted - ckpt0;
  const spilled = sumShards(weft, 'ringSpilledFrames') - spill0;
  await engine.close();
  const rate = (xs: RunFigures[]): number => medianOf(xs, (x) => x.rate);
  const rates = (xs: RunFigures[]): number[] => xs.map((x) => x.rate);
  const p = rate(processed);
  const ratios = (v: number): Figure['ratios'] =>
    b === undefined ? undefined : { inProcess: v / rate(inProc), postMessage: v / rate(post), rawRing: v / rate(ring) };
  const figures: Figure[] = [
    { key: 'a.processed', label: 'weft 2 shards, processed (idle)', value: p, unit: 'msg/s', runs: rates(processed), ratios: ratios(p), target: { kind: 'min', bound: 2_500_000, text: '>= 2.5M msg/s' } },
    { key: 'a.acknowledged', label: 'weft 2 shards, acknowledged (committed)', value: median(acked), unit: 'msg/s', runs: acked, ratios: ratios(median(acked)) },
    ...cpuFigures('a.weft', 'weft', processed, 'shard'),
  ];
  if (b !== undefined) {
    figures.push(
      { key: 'a.vsPost', label: 'processed / postMessage baseline', value: p / rate(post), unit: 'x', target: { kind: 'min', bound: 4, text: '>= 4x' } },
      { key: 'a.vsRing', label: 'processed / raw ring baseline', value: p / rate(ring), unit: 'x', target: { kind: 'min', bound: 0.5, text: '>= 0.5x' } },
      { key: 'a.inProcess', label: 'baseline: in-process dispatcher, 1 thread', value: rate(inProc), unit: 'msg/s', runs: rates(inProc) },
      { key: 'a.inProcess.cpu', label: 'in-process CPU/msg', value: medianOf(inProc, (x) => x.cpuNs), unit: 'ns/msg' },
      { key: 'a.postMessage', label: `baseline: postMessage actors, ${BASELINE_THREADS} threads`, value: rate(post), unit: 'msg/s', runs: rates(post) },
      ...cpuFigures('a.post', 'postMessage', post, 'post-worker'),
      { key: 'a.rawRing', label: `baseline: raw ring, ${BASELINE_THREADS} threads`, value: rate(ring), unit: 'msg/s', runs: rates(ring) },
      ...cpuFigures('a.ring', 'raw ring', ring, 'ring-worker'),
    );
  }
  return {
    id: 'a',
    title: 'host -> function fire-and-forget, 10k instances',
    figures,
    setup: `${n} messages per run, ${budget.runs} runs (median), ${budget.warmup} warm-up messages; host yields every 4096 sends; weft: 2 shards, checkpointIntervalMs 50, durability 'process'`,
    notMeasured: "disk syncs (durability 'process'), state eviction (10k instances fit the cache), replies, payloads bigger than 1 byte, cross-shard traffic",
    load: [load0, load1()],
    extra: { checkpointsDuringRuns: checkpoints, checkpointsPerSecond: checkpoints / (weftMs / 1000), spilledFrames: spilled, startMs: engine.startMs, runs: { weft: processed, inProcess: inProc, postMessage: post, rawRing: ring } },
  };
}
