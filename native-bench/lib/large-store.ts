/**
 * The 1M-instance data directory shared by workload (e) and the checkpoint-scaling figures: made
 * once per suite run, in a child process, by sending one increment to each of `u0 .. u<count-1>`
 * through weft (2 shards, checkpoints every 50 ms, a bounded cache); then reopened by each user.
 */
import type { Address } from '../../src/index.js';
import { COUNTER } from '../modules/counter.js';
import { forkResult } from './child.js';
import { removeDir, tempDir } from './engine.js';
import type { BenchContext } from './report.js';

/** Instances each shard keeps in memory, weft's default: 200k of the 1M across 2 shards. */
export const LARGE_CACHE_PER_SHARD = 100_000;
/** The bounded-memory configuration (e) also runs: 20k of the 1M across 2 shards. */
export const LARGE_SMALL_CACHE_PER_SHARD = 10_000;
/** The cache of the engine that populates the store. */
export const LARGE_POPULATE_CACHE = LARGE_CACHE_PER_SHARD;
export const LARGE_SHARDS = 2;

export function largeCount(quick: boolean): number {
  // Quick runs store 200k instances (still twice the cache) to stay short.
  return quick ? 200_000 : 1_000_000;
}

/** Instance i of the large store. A fresh object per call, as a host request would make. */
export function largeAddress(i: number): Address {
  return { type: COUNTER, id: `u${i}` };
}

/** What the populating child reports. */
export interface PopulateResult {
  /** Populating: messages (= new instances) per second, processed and acknowledged. */
  insertProcessed: number;
  insertAcked: number;
  /** Highest RSS of the populating process, MiB. */
  populatePeakRssMb: number;
  seconds: number;
}

export interface LargeStore extends PopulateResult {
  dir: string;
  count: number;
}

let store: Promise<LargeStore> | undefined;

/**
 * The populated store, made on first use by a child process of its own (populate.ts), so what
 * populating leaves in a process (heaps, malloc arenas) is not in the RSS of the runs.
 */
export function largeStore(ctx: BenchContext): Promise<LargeStore> {
  store ??= (async () => {
    const count = largeCount(ctx.quick);
    ctx.log(`populating ${count} instances (child process) ...`);
    const dir = tempDir('large');
    const result = await forkResult<PopulateResult>(new URL('./populate.js', import.meta.url), [dir, String(count)], 'populating the large store');
    ctx.log(`populated ${count} instances in ${result.seconds.toFixed(1)} s`);
    return { dir, count, ...result };
  })();
  return store;
}

export async function dropLargeStore(): Promise<void> {
  if (store === undefined) return;
  const s = await store;
  store = undefined;
  removeDir(s.dir);
}
