/**
 * `ctx.compute` against the same CPU-heavy work done inline in a function, in one process run:
 *
 *   inline   'bench/heavy-inline'   fn computes fib(27) on the shard thread, then replies
 *   compute  'bench/heavy-compute'  fn awaits ctx.compute('fib', 27) on the piscina pool, then replies
 *
 * What the compute tier is for is not the tasks' own speed (the pool has `computeThreads`
 * threads, the shards may have more) but what happens to the OTHER addresses on a shard while
 * heavy tasks run. So every run measures, on the same engine:
 * - heavy tasks/s: 4 heavy addresses per shard, each with one request in flight (closed loop),
 *   until HEAVY_TASKS have completed: alone, then together with the counter stream;
 * - counter requests/s and their latency while the heavy tasks run: 16 counter addresses per
 *   shard, each with one `weft.request` in flight, for as long as the heavy phase lasts; a
 *   counter invocation is an int increment, so its throughput is what the shard has left for
 *   cheap work;
 * - the counters' baseline: the same stream for BASELINE_MS with no heavy work.
 * Heavy and counter addresses are chosen with the router's own partitioner so that every shard
 * owns the same number of each: "the same shard" holds for every counter.
 *
 * Engine settings, identical for both modes: shards 1, then shards 2 (one engine each, both
 * modes on it), computeThreads 1 (the default), durability 'process', default checkpointing.
 *
 * Sample budget, fixed: per shard count, one warm-up run of each mode, then 3 measured runs,
 * alternating inline / compute so that drift (JIT, page cache, other load) hits both alike; the
 * median run is reported. A run is a BASELINE_MS phase of counters alone, a phase of HEAVY_TASKS
 * heavy tasks alone, then a phase of HEAVY_TASKS heavy tasks with the counters: fib(27) takes
 * 1.3–2.5 ms on the machines tried, so a heavy phase lasts 0.5–2 s, long enough for hundreds of
 * counter round trips and short enough to interleave everything. The counters' "alone" figure is
 * the median of every measured run's first phase, both modes: that phase does not depend on the
 * mode. The 1-minute load average before and after is recorded: the figures are only as quiet as
 * the machine. Every result is checked (each heavy reply is fib(27); each counter's state equals
 * the replies it gave): a fast wrong answer is no result.
 *
 * Not measured: tasks with large inputs or results (here one number each way), more than one
 * pool thread, fsync durability, recovery re-running tasks, open-loop arrival (both streams are
 * closed loops, so a slower shard also offers less), and the cost on the main thread, which
 * relays every compute call between the shard's ring and the pool while also driving this bench.
 * On a machine with fewer cores than shards + pool thread + main, threads share cores, so the
 * figures also price that oversubscription (the machine's core count is printed with them).
 *
 * This one file is the bench program (main thread), its function module (the shards import the
 * default export) and its compute file (the pool imports the named export `fib`): the bench runs
 * only on the main thread.
 *
 * Run: `npm run build && node dist/native-bench/compute.js`; writes native-bench/results/compute.json.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMainThread } from 'node:worker_threads';
import { Weft, defineModule, type } from '../src/index.js';
import { DEFAULTS } from '../src/contract/options.js';
import { Partitioner } from '../src/contract/partitioner.js';

/** The heavy task: naive Fibonacci, pure CPU, no allocation; the bench prints what fib(27) takes. */
export function fib(n: number): number {
  return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

const FIB_N = 27;
const FIB_RESULT = 196_418;

const HEAVY_INLINE = 'bench/heavy-inline';
const HEAVY_COMPUTE = 'bench/heavy-compute';
const COUNTER = 'bench/counter';

export default defineModule({
  functions: {
    [HEAVY_INLINE]: {
      state: { done: type.int() },
      fn(ctx, msg) {
        const result = fib(msg.value as number);
        ctx.state.done = (ctx.state.done ?? 0) + 1;
        ctx.reply(result);
      },
    },
    [HEAVY_COMPUTE]: {
      state: { done: type.int() },
      async fn(ctx, msg) {
        const result = await ctx.compute<number>('fib', msg.value);
        ctx.state.done = (ctx.state.done ?? 0) + 1;
        ctx.reply(result);
      },
    },
    [COUNTER]: {
      state: { n: type.int() },
      fn(ctx) {
        const n = (ctx.state.n ?? 0) + 1;
        ctx.state.n = n;
        ctx.reply(n);
      },
    },
  },
  compute: new URL(import.meta.url),
});

const SHARD_COUNTS = [1, 2] as const;
const MODES = ['inline', 'compute'] as const;
type Mode = (typeof MODES)[number];
const RUNS = 3;
const HEAVY_PER_SHARD = 4;
const COUNTERS_PER_SHARD = 16;
const HEAVY_TASKS = 400;
const BASELINE_MS = 500;
/** A bound on any single wait, so a stuck engine fails the bench instead of hanging it. */
const WAIT_BOUND_MS = 60_000;

interface Run {
  /** Heavy tasks/s with nothing else running. */
  heavyAloneTasksPerSec: number;
  /** Heavy tasks/s while the counter stream runs too. */
  heavyTasksPerSec: number;
  heavyPhaseMs: number;
  counterPerSec: number;
  counterP50Ms: number;
  counterP99Ms: number;
  counterMaxMs: number;
  baselineCounterPerSec: number;
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

function bounded<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not finish within ${WAIT_BOUND_MS} ms`)), WAIT_BOUND_MS);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** `perShard` ids of `type` on each shard, picked with the router's partitioner. */
function idsPerShard(type: string, prefix: string, shards: number, perShard: number): string[] {
  const partitioner = new Partitioner(shards, DEFAULTS.keyGroups);
  const byShard: string[][] = Array.from({ length: shards }, () => []);
  for (let i = 0; byShard.some((ids) => ids.length < perShard); i++) {
    const id = `${prefix}${i}`;
    const ids = byShard[partitioner.shardOf(partitioner.keyGroup(type, id))]!;
    if (ids.length < perShard) ids.push(id);
  }
  return byShard.flat();
}

/**
 * The counter stream: every counter address keeps one request in flight until `until()` says
 * stop. Returns each reply's latency and arrival time, so the caller counts only the replies that
 * arrived within the phase it measures.
 */
async function counterStream(weft: Weft, ids: string[], until: () => boolean, replies: Map<string, number>): Promise<{ latencies: number[]; endedAt: number[] }> {
  const latencies: number[] = [];
  const endedAt: number[] = [];
  await Promise.all(
    ids.map(async (id) => {
      while (!until()) {
        const t0 = performance.now();
        const n = (await weft.request({ type: COUNTER, id }, null)) as number;
        const t1 = performance.now();
        const expected = (replies.get(id) ?? 0) + 1;
        if (n !== expected) throw new Error(`counter ${id} answered ${n}, expected ${expected}`);
        replies.set(id, n);
        latencies.push(t1 - t0);
        endedAt.push(t1);
      }
    }),
  );
  return { latencies, endedAt };
}

/**
 * The heavy stream: every heavy address keeps one request in flight until HEAVY_TASKS have been
 * issued. `onDone` fires when the last one has answered, with the time it did.
 */
function heavyStream(weft: Weft, type: string, ids: string[], onDone: (at: number) => void): Promise<void> {
  let issued = 0;
  let done = 0;
  return bounded(
    Promise.all(
      ids.map(async (id) => {
        while (issued < HEAVY_TASKS) {
          issued++;
          const r = await weft.request({ type, id }, FIB_N, { timeoutMs: WAIT_BOUND_MS });
          if (r !== FIB_RESULT) throw new Error(`${type}/${id} answered ${String(r)}, expected ${FIB_RESULT}`);
          if (++done === HEAVY_TASKS) onDone(performance.now());
        }
      }),
    ).then(() => undefined),
    `${type} stream`,
  );
}

async function measure(weft: Weft, mode: Mode, heavyIds: string[], counterIds: string[], replies: Map<string, number>): Promise<Run> {
  // 1. The counters alone.
  const b0 = performance.now();
  const base = await bounded(counterStream(weft, counterIds, () => performance.now() - b0 >= BASELINE_MS, replies), 'counter baseline');
  const baselineCounterPerSec = base.endedAt.filter((t) => t - b0 <= BASELINE_MS).length / (BASELINE_MS / 1000);
  await bounded(weft.idle(), 'idle after the baseline');

  // 2. The heavy tasks alone.
  const type = mode === 'inline' ? HEAVY_INLINE : HEAVY_COMPUTE;
  let aloneEnd = 0;
  const a0 = performance.now();
  await heavyStream(weft, type, heavyIds, (at) => (aloneEnd = at));
  const heavyAloneTasksPerSec = HEAVY_TASKS / ((aloneEnd - a0) / 1000);
  await bounded(weft.idle(), 'idle after the heavy tasks alone');

  // 3. Both together, until HEAVY_TASKS are done: what the counters get meanwhile is the point.
  let heavyEnd = Number.POSITIVE_INFINITY;
  const h0 = performance.now();
  const heavy = heavyStream(weft, type, heavyIds, (at) => (heavyEnd = at));
  const counters = counterStream(weft, counterIds, () => heavyEnd !== Number.POSITIVE_INFINITY, replies);
  await heavy;
  const during = await bounded(counters, `${mode} counter stream`);
  await bounded(weft.idle(), 'idle after the heavy phase');

  const heavyPhaseMs = heavyEnd - h0;
  const inPhase = during.latencies.filter((_, i) => during.endedAt[i]! <= heavyEnd).sort((a, b) => a - b);
  return {
    heavyAloneTasksPerSec,
    heavyTasksPerSec: HEAVY_TASKS / (heavyPhaseMs / 1000),
    heavyPhaseMs,
    counterPerSec: inPhase.length / (heavyPhaseMs / 1000),
    counterP50Ms: quantile(inPhase, 0.5),
    counterP99Ms: quantile(inPhase, 0.99),
    counterMaxMs: quantile(inPhase, 1),
    baselineCounterPerSec,
  };
}

function median(xs: number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

interface Row {
  shards: number;
  mode: Mode;
  /** Each field is the median over the measured runs. */
  median: Run;
  /**
   * The counters alone on this engine: the median of the baseline phases of every measured run,
   * both modes (the phase is the same whichever mode follows it).
   */
  countersAlonePerSec: number;
  runs: Run[];
}

async function benchShards(shards: number, log: (line: string) => void): Promise<Row[]> {
  const dir = mkdtempSync(join(tmpdir(), 'weft-bench-compute-'));
  const weft = await Weft.start({ module: new URL(import.meta.url), shards, dataDir: dir, durability: 'process', computeThreads: 1 });
  try {
    // Addresses route by type and id: each heavy type gets its own ids, evenly over the shards.
    const heavyIds: Record<Mode, string[]> = {
      inline: idsPerShard(HEAVY_INLINE, 'h', shards, HEAVY_PER_SHARD),
      compute: idsPerShard(HEAVY_COMPUTE, 'h', shards, HEAVY_PER_SHARD),
    };
    const counterIds = idsPerShard(COUNTER, 'c', shards, COUNTERS_PER_SHARD);
    const replies = new Map<string, number>();
    const runs: Record<Mode, Run[]> = { inline: [], compute: [] };
    for (let r = -1; r < RUNS; r++) {
      for (const mode of MODES) {
        const run = await measure(weft, mode, heavyIds[mode], counterIds, replies);
        log(
          `  shards ${shards} ${mode.padEnd(7)} ${r < 0 ? 'warm-up' : `run ${r + 1}  `}: heavy alone ${num(run.heavyAloneTasksPerSec)} tasks/s; ` +
            `together ${num(run.heavyTasksPerSec)} tasks/s and counters ${num(run.counterPerSec)} req/s (alone ${num(run.baselineCounterPerSec)}), p99 ${run.counterP99Ms.toFixed(2)} ms`,
        );
        if (r >= 0) runs[mode].push(run);
      }
    }
    // The engine's state agrees with what the host saw.
    for (const [id, n] of replies) {
      const state = await weft.query({ type: COUNTER, id });
      if (state?.n !== n) throw new Error(`counter ${id} holds ${JSON.stringify(state)}, but replied up to ${n}`);
    }
    const countersAlonePerSec = median([...runs.inline, ...runs.compute].map((run) => run.baselineCounterPerSec));
    return MODES.map((mode) => {
      const rs = runs[mode];
      const keys = Object.keys(rs[0]!) as Array<keyof Run>;
      const m = Object.fromEntries(keys.map((k) => [k, median(rs.map((run) => run[k]))])) as unknown as Run;
      return { shards, mode, median: m, countersAlonePerSec, runs: rs };
    });
  } finally {
    await weft.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const num = (n: number): string => Math.round(n).toLocaleString('en-US');

async function main(): Promise<void> {
  const machine = { cpus: cpus().length, model: cpus()[0]?.model ?? 'unknown', node: process.version };
  const loadBefore = loadavg()[0]!;
  // The task's own cost, on this thread, once optimised: the ceiling for tasks/s per thread.
  const fibMs = median(
    Array.from({ length: 21 }, () => {
      const t0 = performance.now();
      if (fib(FIB_N) !== FIB_RESULT) throw new Error(`fib(${FIB_N}) is not ${FIB_RESULT}`);
      return performance.now() - t0;
    }).slice(1),
  );
  console.log(`ctx.compute vs inline CPU work — ${machine.cpus} CPUs (${machine.model}), Node ${machine.node}, load average ${loadBefore.toFixed(2)}`);
  console.log(
    `heavy task fib(${FIB_N}): ${fibMs.toFixed(2)} ms on the main thread; ${HEAVY_PER_SHARD} heavy + ${COUNTERS_PER_SHARD} counter addresses per shard, one request in flight each; ` +
      `${HEAVY_TASKS} tasks per phase; computeThreads 1; 1 warm-up + ${RUNS} runs per mode, median\n`,
  );
  const rows: Row[] = [];
  for (const shards of SHARD_COUNTS) rows.push(...(await benchShards(shards, (line) => console.log(line))));

  const pad = (s: string, n: number): string => s.padEnd(n);
  console.log('\nmedians; "together" = heavy tasks and the counter stream at the same time, on the same shards');
  console.log(
    `${pad('shards', 8)}${pad('mode', 9)}${pad('tasks/s', 9)}${pad('tasks/s', 10)}${pad('counters', 12)}${pad('counters', 10)}${pad('kept', 7)}${pad('counter latency, together', 0)}`,
  );
  console.log(`${pad('', 8)}${pad('', 9)}${pad('alone', 9)}${pad('together', 10)}${pad('together/s', 12)}${pad('alone/s', 10)}${pad('', 7)}p50 / p99 / max ms`);
  for (const { shards, mode, median: m, countersAlonePerSec } of rows) {
    console.log(
      `${pad(String(shards), 8)}${pad(mode, 9)}${pad(num(m.heavyAloneTasksPerSec), 9)}${pad(num(m.heavyTasksPerSec), 10)}${pad(num(m.counterPerSec), 12)}` +
        `${pad(num(countersAlonePerSec), 10)}${pad(`${((100 * m.counterPerSec) / countersAlonePerSec).toFixed(0)}%`, 7)}` +
        `${m.counterP50Ms.toFixed(2)} / ${m.counterP99Ms.toFixed(2)} / ${m.counterMaxMs.toFixed(2)}`,
    );
  }
  const ratios = SHARD_COUNTS.map((shards) => {
    const inline = rows.find((r) => r.shards === shards && r.mode === 'inline')!.median;
    const compute = rows.find((r) => r.shards === shards && r.mode === 'compute')!.median;
    return {
      shards,
      counterPerSec: compute.counterPerSec / inline.counterPerSec,
      counterP99: compute.counterP99Ms / inline.counterP99Ms,
      heavyTasksPerSec: compute.heavyTasksPerSec / inline.heavyTasksPerSec,
      heavyAloneTasksPerSec: compute.heavyAloneTasksPerSec / inline.heavyAloneTasksPerSec,
    };
  });
  console.log('\ncompute / inline:');
  for (const r of ratios) {
    console.log(
      `  shards ${r.shards}: other addresses' throughput ${r.counterPerSec.toFixed(1)}×, their p99 latency ${r.counterP99.toFixed(2)}×; ` +
        `heavy tasks/s ${r.heavyAloneTasksPerSec.toFixed(2)}× alone, ${r.heavyTasksPerSec.toFixed(2)}× together`,
    );
  }

  const loadAfter = loadavg()[0]!;
  console.log(`\nload average ${loadBefore.toFixed(2)} before, ${loadAfter.toFixed(2)} after`);
  const file = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'native-bench', 'results', 'compute.json');
  mkdirSync(dirname(file), { recursive: true });
  const out = {
    bench: 'compute',
    date: new Date().toISOString(),
    machine,
    load1: { before: loadBefore, after: loadAfter },
    task: `fib(${FIB_N})`,
    taskMsOnMainThread: fibMs,
    settings: { shards: SHARD_COUNTS, computeThreads: 1, durability: 'process' },
    budget: { warmupRuns: 1, runs: RUNS, heavyTasksPerRun: HEAVY_TASKS, heavyAddressesPerShard: HEAVY_PER_SHARD, counterAddressesPerShard: COUNTERS_PER_SHARD, baselineMs: BASELINE_MS },
    rows,
    ratiosComputeOverInline: ratios,
  };
  writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);
  console.log(`\nwrote ${file}`);
}

// Not a top-level await: Weft.start imports this module (to validate it) while it would still be
// evaluating, and that import would wait for the evaluation, which waits for Weft.start.
if (isMainThread) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
