/**
 * Workload (d): what periodic checkpoints cost. Two engines run workload (a) side by side in this
 * process — checkpoints every 50 ms, and checkpoints disabled (`checkpointIntervalMs: 0`: nothing
 * commits until asked) — in alternating runs, so both see the same machine. The cost is
 * 1 - (processed with 50 ms) / (processed with none). The disabled engine's acknowledged time
 * includes one forced checkpoint after idle (otherwise its sends would never resolve).
 */
import { startEngine } from '../lib/engine.js';
import { fireWeft } from '../lib/drive.js';
import { load1 } from '../lib/machine.js';
import type { BenchContext, Figure, WorkloadResult } from '../lib/report.js';
import { cpuNsPerMessage, median } from '../lib/stats.js';
import { INCREMENT } from '../modules/counter.js';
import { FIRE_IDS, counterAddresses } from './fire.js';

export async function runCheckpointCost(ctx: BenchContext): Promise<WorkloadResult> {
  const load0 = load1();
  // Full: 500k messages x 4 runs per engine; quick: 150k x 3. Runs alternate between engines.
  const n = ctx.quick ? 150_000 : 500_000;
  const runs = ctx.quick ? 3 : 4;
  const addrs = counterAddresses(FIRE_IDS);
  const on = await startEngine('ckpt-on', { module: 'counter', shards: 2, checkpointIntervalMs: 50 });
  const off = await startEngine('ckpt-off', { module: 'counter', shards: 2, checkpointIntervalMs: 0 });
  await fireWeft(on.weft, addrs, 100_000, INCREMENT);
  await fireWeft(off.weft, addrs, 100_000, INCREMENT, 0, true);
  const withCk: number[] = [];
  const without: number[] = [];
  const ackWith: number[] = [];
  const ackWithout: number[] = [];
  const cpuWith: number[] = [];
  const cpuWithout: number[] = [];
  const ck0 = on.weft.metrics().checkpointsCommitted;
  for (let r = 0; r < runs; r++) {
    // Alternate which engine goes first, so neither always follows the other's cleanup.
    const order = r % 2 === 0 ? [true, false] : [false, true];
    for (const periodic of order) {
      const c0 = process.cpuUsage();
      const t = await fireWeft(periodic ? on.weft : off.weft, addrs, n, INCREMENT, r * n, !periodic);
      (periodic ? cpuWith : cpuWithout).push(cpuNsPerMessage(c0, n));
      (periodic ? withCk : without).push(n / (t.processedMs / 1000));
      (periodic ? ackWith : ackWithout).push(n / (t.ackedMs / 1000));
    }
    ctx.log(`(d) run ${r + 1}/${runs}: every 50 ms ${Math.round(withCk.at(-1) as number)}, none ${Math.round(without.at(-1) as number)} processed msg/s`);
  }
  const m = on.weft.metrics();
  const checkpoints = m.checkpointsCommitted - ck0;
  await Promise.all([on.close(), off.close()]);
  const cost = 1 - median(withCk) / median(without);
  const figures: Figure[] = [
    { key: 'd.with', label: 'processed, checkpoints every 50 ms', value: median(withCk), unit: 'msg/s', runs: withCk },
    { key: 'd.without', label: 'processed, checkpoints disabled', value: median(without), unit: 'msg/s', runs: without },
    { key: 'd.cost', label: 'throughput cost of 50 ms checkpoints', value: cost * 100, unit: '%', target: { kind: 'max', bound: 10, text: '<= 10%' } },
    { key: 'd.cpuWith', label: 'CPU per message, checkpoints every 50 ms', value: median(cpuWith), unit: 'ns/msg', runs: cpuWith },
    { key: 'd.cpuWithout', label: 'CPU per message, checkpoints disabled', value: median(cpuWithout), unit: 'ns/msg', runs: cpuWithout },
    { key: 'd.ackWith', label: 'acknowledged, checkpoints every 50 ms', value: median(ackWith), unit: 'msg/s', runs: ackWith },
    { key: 'd.ackWithout', label: 'acknowledged, disabled + 1 forced checkpoint', value: median(ackWithout), unit: 'msg/s', runs: ackWithout },
  ];
  return {
    id: 'd',
    title: 'checkpoints every 50 ms vs disabled (workload a)',
    figures,
    setup: `${n} messages per run, ${runs} runs per engine alternating (median), 100k warm-up each; 2 shards, durability 'process'`,
    notMeasured: "fsync cost (durability 'process'; see ckpt for fsync checkpoint durations), checkpoints with large changed sets (10k instances here), recovery time",
    load: [load0, load1()],
    extra: { checkpointsDuringRuns: checkpoints, lastCheckpoint: m.lastCheckpoint },
  };
}
