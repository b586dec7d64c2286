/**
 * Issue 4's figures: how long a checkpoint takes as the number of CHANGED instances grows (1k,
 * 10k, 100k) with 1M instances stored. Part of `npm run bench` (workload "ckpt"); also runs
 * alone: `npm run build && node dist/native-bench/checkpoint.js [--quick]`.
 *
 * The engine reopens the populated store (lib/large-store.ts) with `checkpointIntervalMs: 0`, so
 * exactly the instances changed by the step are in the checkpoint: send one increment to each of
 * k ids spread over the 1M (a stride from a varying offset: mostly not cached, so each change
 * first loads its instance), wait until idle, then time `weft.checkpoint()`. Reported:
 *   - wall: `weft.checkpoint()` until it resolves (barrier → snapshots → PENDING writes →
 *     COMMITTED write → resolve);
 *   - coordinator: weft.metrics().lastCheckpoint.ms (barrier until every shard reported DONE);
 *   - shard write: the slowest shard's lastCheckpointMs (its PENDING transaction);
 *   - bytes and states written.
 * Durability 'process' and (full runs) 'fsync', each on its own reopened engine.
 * Not measured: the fold of PENDING into the base after the commit (asynchronous, off the
 * critical path, but it competes for the disk and the shard thread), timers and mailboxes of
 * any size (both are near empty here).
 */
import { fileURLToPath } from 'node:url';
import { startEngine } from './lib/engine.js';
import { LARGE_CACHE_PER_SHARD, LARGE_SHARDS, dropLargeStore, largeAddress, largeStore } from './lib/large-store.js';
import { load1, machineInfo } from './lib/machine.js';
import { printTable, writeResults, type BenchContext, type Figure, type WorkloadResult } from './lib/report.js';
import { median } from './lib/stats.js';
import { INCREMENT } from './modules/counter.js';

interface Step {
  durability: 'process' | 'fsync';
  changed: number;
  wallMs: number[];
  coordinatorMs: number[];
  shardWriteMs: number[];
  bytes: number;
  states: number;
}

export async function runCheckpointScaling(ctx: BenchContext): Promise<WorkloadResult> {
  const load0 = load1();
  const s = await largeStore(ctx);
  const sizes = ctx.quick ? [0, 1_000, 10_000] : [0, 1_000, 10_000, 100_000];
  const reps = ctx.quick ? 1 : 3;
  const durabilities: Array<'process' | 'fsync'> = ctx.quick ? ['process'] : ['process', 'fsync'];
  const steps: Step[] = [];
  let offset = 1;
  for (const durability of durabilities) {
    const engine = await startEngine('ckpt', { module: 'counter', shards: LARGE_SHARDS, checkpointIntervalMs: 0, cacheSize: LARGE_CACHE_PER_SHARD, durability, dataDir: s.dir });
    const weft = engine.weft;
    await weft.checkpoint();
    for (const changed of sizes) {
      const step: Step = { durability, changed, wallMs: [], coordinatorMs: [], shardWriteMs: [], bytes: 0, states: 0 };
      for (let r = 0; r < reps; r++) {
        const stride = changed === 0 ? 1 : Math.floor(s.count / changed);
        const acks: Array<Promise<void>> = [];
        for (let i = 0; i < changed; i++) acks.push(weft.send(largeAddress((offset + i * stride) % s.count), INCREMENT));
        offset += 7919;
        await weft.idle();
        const t0 = performance.now();
        await weft.checkpoint();
        step.wallMs.push(performance.now() - t0);
        await Promise.all(acks);
        const m = weft.metrics();
        step.coordinatorMs.push(m.lastCheckpoint?.ms ?? Number.NaN);
        step.shardWriteMs.push(Math.max(...m.shards.map((x) => x.lastCheckpointMs)));
        step.bytes = m.lastCheckpoint?.bytes ?? Number.NaN;
        step.states = m.lastCheckpoint?.states ?? Number.NaN;
      }
      steps.push(step);
      ctx.log(`(ckpt) ${durability}, ${changed} changed: ${median(step.wallMs).toFixed(1)} ms wall, ${step.states} states, ${step.bytes} bytes`);
    }
    await engine.close(true);
  }
  const figures: Figure[] = [];
  for (const st of steps) {
    figures.push({
      key: `ckpt.${st.durability}.${st.changed}`,
      label: `${st.durability}, ${st.changed} changed: wall (coord ${median(st.coordinatorMs).toFixed(1)}, shard write ${median(st.shardWriteMs).toFixed(1)} ms; ${Math.round(st.bytes / 1024)} KiB)`,
      value: median(st.wallMs),
      unit: 'ms',
      runs: st.wallMs,
    });
  }
  return {
    id: 'ckpt',
    title: `checkpoint duration vs changed instances, ${s.count / 1e6}M stored`,
    figures,
    setup: `${reps} checkpoint(s) per size (median); changed ids spread over the store by stride; ${LARGE_SHARDS} shards, cacheSize ${LARGE_CACHE_PER_SHARD} per shard, checkpointIntervalMs 0 (forced checkpoints only)`,
    notMeasured: 'the fold into the base after commit (asynchronous), big timers or mailboxes, checkpoints under concurrent load',
    load: [load0, load1()],
    extra: { steps },
  };
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const quick = process.argv.includes('--quick') || process.env.WEFT_BENCH_QUICK === '1';
  const ctx: BenchContext = { quick, baselines: false, log: (line) => process.stderr.write(`bench: ${line}\n`) };
  const result = await runCheckpointScaling(ctx);
  await dropLargeStore();
  printTable([result]);
  console.log(`\n${result.setup}\nnot measured: ${result.notMeasured}`);
  console.log(`wrote ${writeResults('checkpoint', { bench: 'weft checkpoint scaling', date: new Date().toISOString(), quick, machine: machineInfo(), result })}`);
}
