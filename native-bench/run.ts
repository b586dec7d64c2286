/**
 * `npm run bench`: weft's benchmark suite. Runs every workload (or the ones named), each against
 * baselines measured in the SAME process run, prints one table with the ratios and the issue's
 * targets, and writes native-bench/results/latest.json.
 *
 *   npm run bench                         full suite (about 5 minutes on 2 cores)
 *   npm run bench -- --quick              short budgets (WEFT_BENCH_QUICK=1 does the same)
 *   npm run bench -- --only a,c           some workloads (WEFT_BENCH_ONLY=a,c does the same)
 *   npm run bench -- --no-baselines       weft only (e.g. under --cpu-prof)
 *
 * Workloads: a (fire-and-forget), b (fn->fn chains across shards), c (request latency, open
 * loop), d (checkpoint cost), e (1M instances, bounded cache), f (shards 1..4),
 * ckpt (checkpoint duration vs changed instances, with 1M stored; also checkpoint.ts).
 * Each workload's budget, setup and what it does not measure are in its file and in the JSON.
 *
 * Workloads whose figures include the process's memory (e, and ckpt which shares its 1M-instance
 * store) run in a child process of their own, so earlier workloads' heaps, rings and freed-but-
 * not-returned memory do not count in their RSS.
 */
import { closeBaselines } from './lib/baselines.js';
import { forkResult, sendResult } from './lib/child.js';
import { load1, machineInfo } from './lib/machine.js';
import { listenForThreads, stopListening } from './lib/threads.js';
import { printTable, writeResults, type BenchContext, type WorkloadResult } from './lib/report.js';
import { runCheckpointScaling } from './checkpoint.js';
import { dropLargeStore } from './lib/large-store.js';
import { runChain } from './workloads/chain.js';
import { runCheckpointCost } from './workloads/checkpoint-cost.js';
import { runFire } from './workloads/fire.js';
import { runLarge } from './workloads/large.js';
import { runLatency } from './workloads/latency.js';
import { runShards } from './workloads/shards.js';

type Runner = (ctx: BenchContext) => Promise<WorkloadResult | WorkloadResult[]>;

const WORKLOADS: Array<[id: string, run: Runner]> = [
  ['a', runFire],
  ['b', runChain],
  ['c', runLatency],
  ['d', runCheckpointCost],
  ['f', runShards],
  ['e', runLarge],
  ['ckpt', runCheckpointScaling],
];

/** Run in a child process of their own (their RSS is a figure). */
const ISOLATED = new Set(['e', 'ckpt']);

interface Args {
  quick: boolean;
  only: Set<string> | null;
  baselines: boolean;
  /** This process is the child that runs the isolated workloads. */
  child: boolean;
}

function parseArgs(argv: string[]): Args {
  let quick = process.env.WEFT_BENCH_QUICK === '1';
  let only: string | undefined = process.env.WEFT_BENCH_ONLY;
  let base = true;
  let child = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--quick') quick = true;
    else if (a === '--child') child = true;
    else if (a === '--no-baselines') base = false;
    else if (a === '--only') only = argv[++i];
    else if (a.startsWith('--only=')) only = a.slice('--only='.length);
    else if (a === '-h' || a === '--help') {
      console.log('usage: npm run bench -- [--quick] [--only a,b,c,d,e,f,ckpt] [--no-baselines]');
      process.exit(0);
    } else {
      console.error(`unknown argument ${JSON.stringify(a)} (try --help)`);
      process.exit(2);
    }
  }
  const ids = new Set(WORKLOADS.map(([id]) => id));
  const chosen = only === undefined || only === '' ? null : new Set(only.split(',').map((s) => s.trim()));
  for (const id of chosen ?? []) {
    if (!ids.has(id)) {
      console.error(`unknown workload ${JSON.stringify(id)}: one of ${[...ids].join(', ')}`);
      process.exit(2);
    }
  }
  return { quick, only: chosen, baselines: base, child };
}

/** Runs `ids` in a child process (same flags) and returns its results. */
function runIsolated(ids: string[], args: Args): Promise<WorkloadResult[]> {
  const argv = ['--child', '--only', ids.join(','), ...(args.quick ? ['--quick'] : []), ...(args.baselines ? [] : ['--no-baselines'])];
  // --expose-gc (inherited by the shard workers) lets (e) report each heap's live set after its
  // runs; nothing calls gc() while figures are measured.
  return forkResult<WorkloadResult[]>(new URL(import.meta.url), argv, `isolated workloads ${ids.join(',')}`, {
    env: { ...process.env, WEFT_BENCH_ONLY: '' },
    execArgv: [...process.execArgv, '--expose-gc'],
  });
}

async function runWorkloads(ids: string[], ctx: BenchContext): Promise<WorkloadResult[]> {
  const results: WorkloadResult[] = [];
  for (const [id, run] of WORKLOADS) {
    if (!ids.includes(id)) continue;
    ctx.log(`workload ${id} ...`);
    const w0 = performance.now();
    const r = await run(ctx);
    for (const x of Array.isArray(r) ? r : [r]) results.push(x);
    ctx.log(`workload ${id} took ${((performance.now() - w0) / 1000).toFixed(1)} s`);
  }
  return results;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const chosen = WORKLOADS.map(([id]) => id).filter((id) => args.only === null || args.only.has(id));
  if (args.child) {
    listenForThreads();
    const ctx: BenchContext = { quick: args.quick, baselines: args.baselines, log: (line) => process.stderr.write(`bench: ${line}\n`) };
    const results = await runWorkloads(chosen, ctx);
    await dropLargeStore();
    stopListening();
    await sendResult(results);
    return;
  }
  const machine = machineInfo();
  const started = new Date();
  const t0 = performance.now();
  const ctx: BenchContext = {
    quick: args.quick,
    baselines: args.baselines,
    log: (line) => process.stderr.write(`bench: ${line}\n`),
  };
  ctx.log(`${machine.cpus} x ${machine.model}, Node ${machine.node}, load ${load1().toFixed(2)}${args.quick ? ', quick' : ''}`);
  listenForThreads();
  const results = await runWorkloads(chosen.filter((id) => !ISOLATED.has(id)), ctx);
  await closeBaselines();
  stopListening();
  const isolated = chosen.filter((id) => ISOLATED.has(id));
  if (isolated.length > 0) results.push(...(await runIsolated(isolated, args)));
  const totalS = (performance.now() - t0) / 1000;
  console.log(`\nweft native-bench, ${started.toISOString()}, ${machine.cpus} CPUs (${machine.model}), Node ${machine.node}, ${args.quick ? 'quick' : 'full'} run in ${totalS.toFixed(0)} s, 1-min load ${results.map((r) => r.load[0].toFixed(1)).join('/')}`);
  printTable(results);
  for (const r of results) console.log(`\n${r.id}) ${r.setup}\n   not measured: ${r.notMeasured}`);
  const file = writeResults('latest', { bench: 'weft native-bench', date: started.toISOString(), quick: args.quick, seconds: totalS, machine, results });
  console.log(`\nwrote ${file}`);
}

await main();
