/**
 * `weft bench`: the quick built-in throughput and latency benchmark.
 *
 * Sample budget, and why: the throughput phase runs for a fixed wall time (S seconds) rather than
 * a fixed message count, so a slow machine still finishes on time; it counts a message only once
 * its send() has resolved — i.e. once it is part of a committed checkpoint — so the figure includes
 * checkpointing, as a real workload would. At most WINDOWS_IN_FLIGHT × WINDOW messages are
 * unacknowledged at once: enough to keep every shard busy across a checkpoint interval, bounded
 * so the host's resend log (which holds messages until their epoch commits) stays small. The
 * latency phase sends one request() at a time, so it measures the unloaded round trip
 * (main → shard → main), not queueing behind a backlog.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Address } from '../core/address.js';
import { compiledUrl } from '../internal/paths.js';
import { MAX_SHARDS, resolveShards } from '../contract/options.js';
import { Weft } from '../host/weft.js';
import { INCREMENT, INCREMENT_AND_REPLY } from './bench-module.js';
import { EXIT_OK, UsageError, numberFlag, parse, write, type CliContext, type Command } from './command.js';
import { bytes, int, micros } from './format.js';

const IDS = 10_000;
// 65,536 unacknowledged messages: a send resolves at the commit after it (checkpointIntervalMs 50
// plus the commit itself), so this caps the figure near 1M msgs/s — above what the engine does on
// the 2-core machines it was tuned on — while a slow or loaded machine overshoots S by
// at most one batch of windows. Raise it if a bigger machine reports figures near the cap.
const WINDOW = 8192;
const WINDOWS_IN_FLIGHT = 8;
const MAX_LATENCY_SAMPLES = 100_000;
const MIN_LATENCY_MS = 500;

const NOT_MEASURED =
  'cross-shard messages (the counter sends none), async functions, compute tasks, remote functions, ' +
  'state eviction (10,000 instances fit the cache), recovery; with durability "process", disk syncs';

const HELP = `Usage: weft bench [--shards N] [--seconds S] [--durability process|fsync] [--json]

Runs the built-in benchmark on a temporary data dir with a counter function:
  1. throughput: fire-and-forget sends to ${int(IDS)} ids for S seconds, at most
     ${int(WINDOW * WINDOWS_IN_FLIGHT)} messages unacknowledged (windows of ${int(WINDOW)}); a message counts once
     its send() resolved, i.e. once it is part of a committed checkpoint;
  2. latency: one request() at a time for S/2 seconds (at least 0.5 s, at most ${int(MAX_LATENCY_SAMPLES)}
     requests): p50/p90/p99 of the round trip host → shard → host.
A progress line goes to stderr once a second. The data dir is removed at exit, also after
SIGINT/SIGTERM (the engine is closed first).

Options:
  --shards N         shard threads, 1–${MAX_SHARDS} (default: one per core, or WEFT_SHARDS)
  --seconds S        length of the throughput phase, 0.1–3600 (default 5)
  --durability D     "process" (default) or "fsync" (a disk sync per checkpoint commit)
  --json             print one JSON object on stdout instead of the summary
  -h, --help         show this help

Not measured: ${NOT_MEASURED}.`;

/** What `weft bench --json` prints. */
export interface BenchResult {
  command: 'bench';
  node: string;
  cpus: number;
  shards: number;
  durability: 'process' | 'fsync';
  seconds: number;
  ids: number;
  throughput: { messages: number; elapsedMs: number; msgsPerSec: number; window: number; windowsInFlight: number };
  latency: { requests: number; elapsedMs: number; p50Us: number; p90Us: number; p99Us: number; maxUs: number; meanUs: number };
  checkpoints: { committed: number; lastMs: number | null; lastBytes: number | null };
  notMeasured: string;
}

function percentile(sorted: number[], q: number): number {
  if (sorted.length === 0) return 0;
  // Nearest rank: the smallest sample with at least q of all samples at or below it.
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] as number;
}

function sendWindow(weft: Weft, addrs: Address[], offset: number): Promise<number> {
  // One send() promise is shared by every send of a shard's batch: collect the distinct ones.
  const acks = new Set<Promise<void>>();
  for (let i = 0; i < WINDOW; i++) acks.add(weft.send(addrs[(offset + i) % IDS] as Address, INCREMENT));
  return Promise.all(acks).then(() => WINDOW);
}

interface Progress {
  phase: string;
  done: number;
  unit: string;
  startedAt: number;
}

async function measure(weft: Weft, seconds: number, progress: Progress, signal: AbortSignal): Promise<Omit<BenchResult, 'command' | 'node' | 'cpus' | 'shards' | 'durability' | 'seconds' | 'ids' | 'checkpoints' | 'notMeasured'>> {
  const addrs: Address[] = Array.from({ length: IDS }, (_, i) => ({ type: 'bench/counter', id: `c${i}` }));

  // Warm-up, not measured: JIT, the first checkpoints, and the creation of every instance.
  progress.phase = 'warm-up';
  progress.startedAt = performance.now();
  await sendWindow(weft, addrs, 0);

  progress.phase = 'throughput';
  progress.unit = 'messages committed';
  progress.done = 0;
  const t0 = performance.now();
  progress.startedAt = t0;
  const stopAt = t0 + seconds * 1000;
  const inflight: Array<Promise<number>> = [];
  let offset = 0;
  while (performance.now() < stopAt && !signal.aborted) {
    inflight.push(sendWindow(weft, addrs, offset));
    offset += WINDOW;
    if (inflight.length >= WINDOWS_IN_FLIGHT) progress.done += await (inflight.shift() as Promise<number>);
  }
  for (const w of inflight) progress.done += await w;
  const elapsedMs = performance.now() - t0;
  const messages = progress.done;

  await weft.idle();
  progress.phase = 'latency';
  progress.unit = 'requests';
  progress.done = 0;
  const samples: number[] = [];
  const l0 = performance.now();
  progress.startedAt = l0;
  const latencyMs = Math.max(MIN_LATENCY_MS, seconds * 500);
  while (performance.now() - l0 < latencyMs && samples.length < MAX_LATENCY_SAMPLES && !signal.aborted) {
    const to = addrs[samples.length % IDS] as Address;
    const s = performance.now();
    await weft.request(to, INCREMENT_AND_REPLY);
    samples.push((performance.now() - s) * 1000);
    progress.done = samples.length;
  }
  const latencyElapsed = performance.now() - l0;
  samples.sort((a, b) => a - b);
  const sum = samples.reduce((a, b) => a + b, 0);
  return {
    throughput: { messages, elapsedMs, msgsPerSec: messages / (elapsedMs / 1000), window: WINDOW, windowsInFlight: WINDOWS_IN_FLIGHT },
    latency: {
      requests: samples.length,
      elapsedMs: latencyElapsed,
      p50Us: percentile(samples, 0.5),
      p90Us: percentile(samples, 0.9),
      p99Us: percentile(samples, 0.99),
      maxUs: samples.at(-1) ?? 0,
      meanUs: samples.length === 0 ? 0 : sum / samples.length,
    },
  };
}

function summary(r: BenchResult): string {
  const t = r.throughput;
  const l = r.latency;
  const last = r.checkpoints.lastMs === null ? '' : `; last took ${r.checkpoints.lastMs.toFixed(1)} ms, wrote ${bytes(r.checkpoints.lastBytes ?? 0)}`;
  return [
    `weft bench: ${r.shards} shard(s), durability ${r.durability}, node ${r.node}, ${r.cpus} cpu(s)`,
    `throughput   ${int(t.msgsPerSec)} msgs/s  (${int(t.messages)} messages to ${int(r.ids)} ids committed in ${(t.elapsedMs / 1000).toFixed(2)} s)`,
    `latency      p50 ${micros(l.p50Us)}  p90 ${micros(l.p90Us)}  p99 ${micros(l.p99Us)}  max ${micros(l.maxUs)}  (${int(l.requests)} requests, one in flight)`,
    `checkpoints  ${int(r.checkpoints.committed)} committed${last}`,
    `not measured: ${r.notMeasured}`,
  ].join('\n');
}

async function run(args: string[], ctx: CliContext): Promise<number> {
  const p = parse('bench', args, { shards: { type: 'string' }, seconds: { type: 'string' }, durability: { type: 'string' }, json: { type: 'boolean' } }, 0);
  if (p.help) {
    write(ctx.stdout, HELP);
    return EXIT_OK;
  }
  const seconds = numberFlag('bench', 'seconds', p.values.seconds, 5, 0.1, 3600, false);
  let shards: number;
  if (p.values.shards === undefined) {
    try {
      shards = resolveShards('auto');
    } catch (err) {
      throw new UsageError(`weft bench: ${(err as Error).message}`);
    }
  } else shards = numberFlag('bench', 'shards', p.values.shards, 1, 1, MAX_SHARDS, true);
  const durability = p.values.durability ?? 'process';
  if (durability !== 'process' && durability !== 'fsync') {
    throw new UsageError(`weft bench: --durability must be "process" or "fsync" (got ${JSON.stringify(durability)})`);
  }
  const json = p.values.json === true;

  const dir = mkdtempSync(join(tmpdir(), 'weft-bench-'));
  const log = (line: string): void => write(ctx.stderr, `bench: ${line}`);
  log(`data dir ${dir} (removed at exit)`);
  const progress: Progress = { phase: 'starting', done: 0, unit: '', startedAt: performance.now() };
  const ticker = setInterval(() => {
    const s = (performance.now() - progress.startedAt) / 1000;
    const rate = progress.unit === '' || s <= 0 ? '' : `  ${int(progress.done)} ${progress.unit} (${int(progress.done / s)}/s)`;
    log(`${progress.phase} ${s.toFixed(1)} s${rate}`);
  }, 1000);
  let weft: Weft | undefined;
  try {
    weft = await Weft.start({ module: compiledUrl('cli/bench-module.js'), shards, dataDir: dir, durability });
    if (ctx.signal.aborted) return EXIT_OK;
    const measured = await measure(weft, seconds, progress, ctx.signal);
    if (ctx.signal.aborted) {
      log('interrupted: no results');
      return EXIT_OK;
    }
    const m = weft.metrics();
    const result: BenchResult = {
      command: 'bench',
      node: process.version,
      cpus: availableParallelism(),
      shards: m.shards.length,
      durability,
      seconds,
      ids: IDS,
      ...measured,
      checkpoints: { committed: m.checkpointsCommitted, lastMs: m.lastCheckpoint?.ms ?? null, lastBytes: m.lastCheckpoint?.bytes ?? null },
      notMeasured: NOT_MEASURED,
    };
    write(ctx.stdout, json ? JSON.stringify(result) : summary(result));
    return EXIT_OK;
  } finally {
    clearInterval(ticker);
    progress.phase = 'closing';
    await weft?.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export const bench: Command = {
  name: 'bench',
  summary: 'run the built-in throughput/latency benchmark',
  help: HELP,
  run,
};
