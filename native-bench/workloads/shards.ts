/**
 * Workload (f): workload (a) with 1, 2, 3 and 4 shards on this machine. All four engines are
 * started first and measured in alternating runs (an idle engine sleeps on its doorbells), so
 * the comparison sees one machine state. On 2 cores, more shards than cores oversubscribe:
 * main + N shard threads share them.
 */
import { fireWeft } from '../lib/drive.js';
import { startEngine, type EngineHandle } from '../lib/engine.js';
import { load1 } from '../lib/machine.js';
import type { BenchContext, Figure, WorkloadResult } from '../lib/report.js';
import { cpuNsPerMessage, median } from '../lib/stats.js';
import { INCREMENT } from '../modules/counter.js';
import { FIRE_IDS, counterAddresses } from './fire.js';

const SHARDS = [1, 2, 3, 4] as const;

export async function runShards(ctx: BenchContext): Promise<WorkloadResult> {
  const load0 = load1();
  // Full: 300k messages x 3 runs per shard count; quick: 100k x 2.
  const n = ctx.quick ? 100_000 : 300_000;
  const runs = ctx.quick ? 2 : 3;
  const addrs = counterAddresses(FIRE_IDS);
  const engines: EngineHandle[] = [];
  for (const shards of SHARDS) engines.push(await startEngine(`shards${shards}`, { module: 'counter', shards, checkpointIntervalMs: 50 }));
  for (const e of engines) await fireWeft(e.weft, addrs, 50_000, INCREMENT);
  const rates: number[][] = SHARDS.map(() => []);
  const cpu: number[][] = SHARDS.map(() => []);
  for (let r = 0; r < runs; r++) {
    for (let k = 0; k < SHARDS.length; k++) {
      const c0 = process.cpuUsage();
      const t = await fireWeft((engines[k] as EngineHandle).weft, addrs, n, INCREMENT, r * n);
      (cpu[k] as number[]).push(cpuNsPerMessage(c0, n));
      (rates[k] as number[]).push(n / (t.processedMs / 1000));
    }
    ctx.log(`(f) run ${r + 1}/${runs}: ${SHARDS.map((s, k) => `${s} shard(s) ${Math.round((rates[k] as number[]).at(-1) as number)}`).join(', ')} msg/s`);
  }
  await Promise.all(engines.map((e) => e.close()));
  const one = median(rates[0] as number[]);
  const figures: Figure[] = [];
  SHARDS.forEach((s, k) => {
    const v = median(rates[k] as number[]);
    figures.push({ key: `f.${s}`, label: `${s} shard${s === 1 ? '' : 's'}, processed (x vs 1 shard: ${(v / one).toFixed(2)})`, value: v, unit: 'msg/s', runs: rates[k] as number[] });
  });
  SHARDS.forEach((s, k) => {
    figures.push({ key: `f.${s}.cpu`, label: `${s} shard${s === 1 ? '' : 's'}, CPU per message, all threads`, value: median(cpu[k] as number[]), unit: 'ns/msg', runs: cpu[k] as number[] });
  });
  return {
    id: 'f',
    title: 'workload (a) with 1..4 shards',
    figures,
    setup: `${n} messages per run, ${runs} runs per shard count alternating (median), 50k warm-up each; checkpointIntervalMs 50, durability 'process'`,
    notMeasured: 'machines with more cores (on 2 cores, 3-4 shards oversubscribe), cross-shard traffic',
    load: [load0, load1()],
  };
}
