/**
 * Measures the LMDB state partition (src/state/partition.ts) against raw lmdb-js, in one process
 * run, and prints a table plus JSON (native-bench/results/partition.json).
 *
 *   npm run build && node dist/native-bench/partition.js [--quick] [--repro-deadlock]
 *
 * What is measured, and the sample budget (fixed so runs compare):
 * - reads: 200k random `getState`-shaped reads of 10k keys (100-byte values), per variant, best
 *   of 3 rounds: lmdb `get`, `getBinary`, `getBinaryFast` (reused buffer: unsafe to keep),
 *   `getBinaryFast` + copy, and `Partition.getState`.
 * - commits of 1k / 10k / 100k changed keys (insert, then overwrite; 100-byte values), median of
 *   15 / 7 / 3: wall time until durable, and how long the calling thread's event loop was busy
 *   (`performance.eventLoopUtilization`), for `Partition.write`, raw `db.batch` (same flags) and
 *   raw `transactionSync` (which runs the whole commit on the calling thread).
 * - small durable commit (5 keys), 500 in a row: p50 / p99, for the partition in both modes and
 *   for raw lmdb-js with `overlappingSync` (+ `await db.flushed`) vs without.
 * - two worker threads each writing their own partition vs one: aggregate puts/s ratio.
 * Not measured: reads from a cold page cache, databases larger than RAM, compression.
 * `--repro-deadlock` runs the lmdb-js close deadlock (transactionSync + close in one turn) in a
 * child process, killed after 3 s: it shows the hazard the partition's close order avoids.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { open as openLmdb, type Key } from 'lmdb';
import { Partition } from '../src/state/partition.js';
import type { Durability } from '../src/contract/options.js';

const quick = process.argv.includes('--quick');
const base = mkdtempSync(join(tmpdir(), 'weft-bench-partition-'));
let n = 0;
const fresh = (): string => join(base, `p${n++}`);
const results: Record<string, unknown> = {};
const value = new Uint8Array(100).fill(7);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)] as number;
}
function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))] as number;
}

/** Wall ms and event-loop-busy ms of an async operation. */
async function timed(fn: () => Promise<unknown>): Promise<{ ms: number; busyMs: number }> {
  const elu0 = performance.eventLoopUtilization();
  const t0 = performance.now();
  await fn();
  const ms = performance.now() - t0;
  // Let the turn that resolved us end, so its time is accounted as active.
  await new Promise((r) => setImmediate(r));
  const elu = performance.eventLoopUtilization(elu0);
  return { ms, busyMs: elu.active };
}

function rawOpen(path: string, durability: Durability, overlappingSync = false) {
  mkdirSync(path, { recursive: true, mode: 0o700 });
  const root = openLmdb<Uint8Array, Key>(path, { noSubdir: false, overlappingSync, noSync: durability === 'process', encoding: 'binary', compression: false, maxDbs: 8, mapSize: 256 * 1024 * 1024, eventTurnBatching: false });
  const db = root.openDB<Uint8Array, Key>('state', { encoding: 'binary', compression: false });
  return { root, db };
}

async function benchReads(): Promise<void> {
  const path = fresh();
  const p = await Partition.open(path, { durability: 'process' });
  const ids = 10_000;
  await p.write((ops) => {
    for (let i = 0; i < ids; i++) ops.putState(i % 128, 'bench/account', `id-${i}`, value);
  });
  await p.close();
  const { root, db } = rawOpen(path, 'process');
  const reads = quick ? 50_000 : 200_000;
  const order = Array.from({ length: reads }, (_, i) => (i * 7919) % ids);
  const variants: Record<string, (i: number) => unknown> = {
    'lmdb get': (i) => db.get([i % 128, 'bench/account', `id-${i}`]),
    'lmdb getBinary': (i) => db.getBinary([i % 128, 'bench/account', `id-${i}`]),
    'lmdb getBinaryFast (unsafe to keep)': (i) => db.getBinaryFast([i % 128, 'bench/account', `id-${i}`]),
    'lmdb getBinaryFast + copy': (i) => {
      const b = db.getBinaryFast([i % 128, 'bench/account', `id-${i}`]);
      return b === undefined ? undefined : Uint8Array.prototype.slice.call(b, 0, b.length);
    },
  };
  const out: Record<string, number> = {};
  const run = (fn: (i: number) => unknown): number => {
    let best = 0;
    for (let round = 0; round < 3; round++) {
      const t0 = performance.now();
      for (const i of order) fn(i);
      best = Math.max(best, reads / ((performance.now() - t0) / 1000));
    }
    return best;
  };
  for (const [name, fn] of Object.entries(variants)) out[name] = run(fn);
  await root.close();
  const part = await Partition.open(path, { durability: 'process' });
  out['Partition.getState'] = run((i) => part.getState(i % 128, 'bench/account', `id-${i}`));
  await part.close();
  results.reads = out;
  console.log('\nreads/s (10k keys, 100-byte values, best of 3):');
  for (const [name, rate] of Object.entries(out)) console.log(`  ${name.padEnd(36)} ${(rate / 1e6).toFixed(2)}M/s`);
}

async function benchCommits(durability: Durability): Promise<void> {
  const sizes = quick ? [1000, 10_000] : [1000, 10_000, 100_000];
  const reps: Record<number, number> = { 1000: 15, 10_000: 7, 100_000: 3 };
  const out: Record<string, unknown> = {};
  console.log(`\ncommit of N changed keys, ${durability} (median ms until durable / event-loop busy ms):`);
  for (const size of sizes) {
    const row: Record<string, unknown> = {};
    for (const variant of ['Partition.write', 'lmdb batch', 'lmdb transactionSync'] as const) {
      for (const phase of ['insert', 'overwrite'] as const) {
        const samples: Array<{ ms: number; busyMs: number }> = [];
        for (let r = 0; r < (reps[size] ?? 3); r++) {
          const path = fresh();
          const keyOf = (i: number): [number, string, string] => [i % 128, 'bench/account', `id-${r}-${i}`];
          if (variant === 'Partition.write') {
            const p = await Partition.open(path, { durability });
            const write = () =>
              p.write((ops) => {
                for (let i = 0; i < size; i++) {
                  const k = keyOf(i);
                  ops.putState(k[0], k[1], k[2], value);
                }
              });
            if (phase === 'overwrite') await write();
            samples.push(await timed(write));
            await p.close();
          } else {
            const { root, db } = rawOpen(path, durability);
            const write = async (): Promise<void> => {
              if (variant === 'lmdb batch') {
                await db.batch(() => {
                  for (let i = 0; i < size; i++) void db.put(keyOf(i), value);
                });
              } else {
                db.transactionSync(() => {
                  for (let i = 0; i < size; i++) void db.put(keyOf(i), value);
                });
                await root.flushed;
              }
            };
            if (phase === 'overwrite') await write();
            samples.push(await timed(write));
            await new Promise((res) => setImmediate(res));
            await root.close();
          }
          rmSync(path, { recursive: true, force: true });
        }
        const ms = median(samples.map((s) => s.ms));
        const busyMs = median(samples.map((s) => s.busyMs));
        row[`${variant} ${phase}`] = { ms, busyMs };
        console.log(`  ${String(size).padStart(6)} keys  ${`${variant} ${phase}`.padEnd(32)} ${ms.toFixed(1).padStart(7)} ms  busy ${busyMs.toFixed(1).padStart(6)} ms`);
      }
    }
    out[size] = row;
  }
  results[`commits ${durability}`] = out;
}

async function benchSmall(): Promise<void> {
  const count = quick ? 200 : 500;
  const out: Record<string, unknown> = {};
  console.log(`\nsmall durable commit (5 keys), ${count} in a row:`);
  const report = (name: string, lat: number[]): void => {
    out[name] = { p50: pct(lat, 0.5), p99: pct(lat, 0.99) };
    console.log(`  ${name.padEnd(44)} p50 ${pct(lat, 0.5).toFixed(3)} ms  p99 ${pct(lat, 0.99).toFixed(3)} ms`);
  };
  for (const durability of ['fsync', 'process'] as const) {
    const p = await Partition.open(fresh(), { durability });
    const lat: number[] = [];
    for (let i = 0; i < count; i++) {
      const t0 = performance.now();
      await p.write((ops) => {
        for (let j = 0; j < 5; j++) ops.putState(i % 64, 'bench/account', `id-${j}`, value);
      });
      lat.push(performance.now() - t0);
    }
    await p.close();
    report(`Partition.write ${durability}`, lat);
  }
  for (const overlapping of [false, true]) {
    const { root, db } = rawOpen(fresh(), 'fsync', overlapping);
    const lat: number[] = [];
    for (let i = 0; i < count; i++) {
      const t0 = performance.now();
      await db.batch(() => {
        for (let j = 0; j < 5; j++) void db.put([i % 64, 'bench/account', `id-${j}`], value);
      });
      if (overlapping) await root.flushed;
      lat.push(performance.now() - t0);
    }
    await root.close();
    report(`lmdb batch fsync, overlappingSync ${overlapping}${overlapping ? ' + flushed' : ''}`, lat);
  }
  results.small = out;
}

function runWorker(path: string, batches: number, perBatch: number): Promise<number> {
  const url = new URL('../test/fixtures/partition-worker.js', import.meta.url);
  return new Promise((resolve, reject) => {
    const w = new Worker(url, { workerData: { action: 'bench', path, durability: 'fsync', batches, perBatch } });
    w.once('message', (m: { ms: number }) => resolve(m.ms));
    w.once('error', reject);
  });
}

async function benchThreads(): Promise<void> {
  const batches = quick ? 20 : 60;
  const perBatch = 2000;
  const puts = batches * perBatch;
  const oneMs = median([await runWorker(fresh(), batches, perBatch), await runWorker(fresh(), batches, perBatch)]);
  const twoRuns: number[] = [];
  for (let r = 0; r < 2; r++) {
    const t0 = performance.now();
    await Promise.all([runWorker(fresh(), batches, perBatch), runWorker(fresh(), batches, perBatch)]);
    twoRuns.push(performance.now() - t0);
  }
  const twoMs = median(twoRuns);
  const one = puts / (oneMs / 1000);
  const two = (2 * puts) / (twoMs / 1000);
  results.threads = { onePutsPerSec: one, twoPutsPerSec: two, ratio: two / one };
  console.log(`\nworker threads, own partition each (${batches} x ${perBatch} puts, fsync): one ${(one / 1e3).toFixed(0)}k puts/s, two ${(two / 1e3).toFixed(0)}k puts/s: ${(two / one).toFixed(2)}x`);
}

async function reproDeadlock(): Promise<void> {
  const path = fresh();
  const code = `
    import { open } from 'lmdb';
    const root = open(${JSON.stringify(path)}, { noSubdir: false, encoding: 'binary' });
    const db = root.openDB('state', { encoding: 'binary' });
    db.transactionSync(() => db.put('k', Buffer.from('v')));
    await root.close();
    console.log('closed');`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], { cwd: fileURLToPath(new URL('../..', import.meta.url)), stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
  const signal = await new Promise<NodeJS.Signals | null>((resolve) => child.on('close', (_c, s) => resolve(s)));
  clearTimeout(timer);
  const verdict = signal === 'SIGKILL' ? 'deadlocked (killed after 3 s)' : `did not deadlock (${out.trim()})`;
  results.deadlockRepro = verdict;
  console.log(`\nlmdb-js transactionSync(() => db.put(...)) then close() in the same turn: ${verdict}`);
}

try {
  if (process.argv.includes('--repro-deadlock')) await reproDeadlock();
  await benchReads();
  await benchCommits('fsync');
  await benchCommits('process');
  await benchSmall();
  await benchThreads();
  const dir = fileURLToPath(new URL('../../native-bench/results/', import.meta.url));
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'partition.json'), `${JSON.stringify({ node: process.version, date: new Date().toISOString(), results }, null, 2)}\n`);
} finally {
  rmSync(base, { recursive: true, force: true });
}
