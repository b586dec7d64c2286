/**
 * The 1M-instance data directory shared by workload (e) and the checkpoint-scaling figures: made
 * once per suite run by sending one increment to each of `u0 .. u<count-1>` through weft (2
 * shards, checkpoints every 50 ms, a bounded cache), then closed and reopened by each user.
 */
import type { Address } from '../../src/index.js';
import { COUNTER, INCREMENT } from '../modules/counter.js';
import { fireWeft } from './drive.js';
import { removeDir, startEngine } from './engine.js';
import { rssSampler } from './machine.js';
import type { BenchContext } from './report.js';

/** Instances each shard keeps in memory (weft's default): 200k of the 1M across 2 shards. */
export const LARGE_CACHE_PER_SHARD = 100_000;
export const LARGE_SHARDS = 2;

export function largeCount(quick: boolean): number {
  // Quick runs store 200k instances (still twice the cache) to stay short.
  return quick ? 200_000 : 1_000_000;
}

/** Instance i of the large store. A fresh object per call, as a host request would make. */
export function largeAddress(i: number): Address {
  return { type: COUNTER, id: `u${i}` };
}

export interface LargeStore {
  dir: string;
  count: number;
  /** Populating: messages (= new instances) per second, processed and acknowledged. */
  insertProcessed: number;
  insertAcked: number;
  /** Highest process RSS while populating, MiB. */
  populatePeakRssMb: number;
}

let store: Promise<LargeStore> | undefined;

export function largeStore(ctx: BenchContext): Promise<LargeStore> {
  store ??= (async () => {
    const count = largeCount(ctx.quick);
    ctx.log(`populating ${count} instances ...`);
    const engine = await startEngine('large', { module: 'counter', shards: LARGE_SHARDS, checkpointIntervalMs: 50, cacheSize: LARGE_CACHE_PER_SHARD });
    const rss = rssSampler();
    const t = await fireWeft(engine.weft, largeAddress, count, INCREMENT);
    const mem = rss.stop();
    await engine.close(true);
    ctx.log(`populated ${count} instances in ${(t.ackedMs / 1000).toFixed(1)} s`);
    return { dir: engine.dir, count, insertProcessed: count / (t.processedMs / 1000), insertAcked: count / (t.ackedMs / 1000), populatePeakRssMb: mem.sampledPeakRssMb };
  })();
  return store;
}

export async function dropLargeStore(): Promise<void> {
  if (store === undefined) return;
  const s = await store;
  store = undefined;
  removeDir(s.dir);
}
