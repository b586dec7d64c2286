/**
 * Workload (e): 1M stored instances behind a bounded cache, in two configurations: 10k instances
 * per shard ("e", bounded memory) and 100k per shard ("e2", weft's default). Each engine reopens
 * the populated store (its start time is recovery with 1M stored) and runs workload (a) twice
 * over, alternating: over 10k hot ids (all cached after the warm-up: the (a)
 * reference on this very engine) and uniformly at random over all 1M ids (~80% cache misses:
 * LMDB reads, instance decodes, evictions). RSS is the whole process's (main + shard threads
 * share it), sampled every 20 ms; it includes LMDB's mapped pages (RssFile).
 */
import type { Address } from '../../src/index.js';
import { fireWeft } from '../lib/drive.js';
import { startEngine, sumShards } from '../lib/engine.js';
import { LARGE_CACHE_PER_SHARD, LARGE_SHARDS, LARGE_SMALL_CACHE_PER_SHARD, largeAddress, largeStore, type LargeStore } from '../lib/large-store.js';
import { load1, rssSampler } from '../lib/machine.js';
import { workerHeaps } from '../lib/threads.js';
import type { BenchContext, Figure, WorkloadResult } from '../lib/report.js';
import { median } from '../lib/stats.js';
import { COUNTER, INCREMENT } from '../modules/counter.js';

const HOT = 10_000;
/** shardYoungGenerationMb of the bounded-memory configuration (the default is 128). */
const LARGE_SMALL_YOUNG_MB = 16;
/** ringBytes of the bounded-memory configuration (the default is 4 MiB). */
const LARGE_SMALL_RING_BYTES = 256 * 1024;

/** xorshift32: a fixed, cheap sequence of ids, the same in every run of the suite. */
function uniform(count: number, seed: number): (i: number) => Address {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return { type: COUNTER, id: `u${x % count}` };
  };
}

/**
 * One engine configuration over the store: warm-up over the hot ids, then `runs` alternating
 * pairs (hot, uniform). RSS is sampled over the runs only.
 */
async function runConfig(ctx: BenchContext, s: LargeStore, cachePerShard: number, id: string, bounded: boolean): Promise<WorkloadResult> {
  const load0 = load1();
  // Full: 300k messages x 3 runs per pattern; quick: 100k x 2.
  const n = ctx.quick ? 100_000 : 300_000;
  const runs = ctx.quick ? 2 : 3;
  // The bounded-memory configuration also keeps each shard's young generation and rings small
  // (a ring's messages are processed before the next barrier: they bound the dirty instances).
  const small = bounded ? { shardYoungGenerationMb: LARGE_SMALL_YOUNG_MB, ringBytes: LARGE_SMALL_RING_BYTES, maxMessageBytes: LARGE_SMALL_RING_BYTES / 4 } : {};
  const engine = await startEngine('large', { module: 'counter', shards: LARGE_SHARDS, checkpointIntervalMs: 50, cacheSize: cachePerShard, dataDir: s.dir, ...small });
  const weft = engine.weft;
  const hot = (i: number): Address => largeAddress(i % HOT);
  await fireWeft(weft, hot, 50_000, INCREMENT);
  const rss = rssSampler();
  const hotRates: number[] = [];
  const coldRates: number[] = [];
  let coldInvocations = 0;
  let coldMisses = 0;
  for (let r = 0; r < runs; r++) {
    hotRates.push(n / ((await fireWeft(weft, hot, n, INCREMENT)).processedMs / 1000));
    const inv0 = sumShards(weft, 'invocations');
    const miss0 = sumShards(weft, 'cacheMisses');
    coldRates.push(n / ((await fireWeft(weft, uniform(s.count, 0x9e3779b9 + r), n, INCREMENT)).processedMs / 1000));
    coldInvocations += sumShards(weft, 'invocations') - inv0;
    coldMisses += sumShards(weft, 'cacheMisses') - miss0;
    ctx.log(`(${id}) run ${r + 1}/${runs}: hot ${Math.round(hotRates.at(-1) as number)}, uniform over ${s.count} ${Math.round(coldRates.at(-1) as number)} msg/s`);
  }
  const mem = rss.stop();
  const heaps = await workerHeaps('shard', LARGE_SHARDS);
  const mainHeap = process.memoryUsage();
  const cached = sumShards(weft, 'cacheInstances');
  await engine.close(true);
  const hotV = median(hotRates);
  const coldV = median(coldRates);
  const figures: Figure[] = [
    { key: `${id}.uniform`, label: `uniform over ${s.count / 1e6}M ids, processed`, value: coldV, unit: 'msg/s', runs: coldRates },
    { key: `${id}.hot`, label: '10k hot ids on the same engine, processed', value: hotV, unit: 'msg/s', runs: hotRates },
    { key: `${id}.ratio`, label: 'uniform / hot (the (a) workload)', value: coldV / hotV, unit: 'x', target: { kind: 'min', bound: 0.7, text: '>= 0.7x' } },
    { key: `${id}.missRate`, label: 'cache miss rate, uniform runs', value: coldMisses / Math.max(1, coldInvocations), unit: 'ratio' },
    { key: `${id}.peakRss`, label: 'peak RSS during the runs (whole process)', value: mem.sampledPeakRssMb, unit: 'MiB', target: { kind: 'max', bound: 600, text: '<= 600 MB' } },
    { key: `${id}.rssEnd`, label: `RSS at end: anon ${mem.anonMb.toFixed(0)} + file-backed ${mem.fileMb.toFixed(0)}`, value: mem.rssMb, unit: 'MiB' },
    {
      key: `${id}.shardHeaps`,
      label: `shard V8 heaps, reserved (used ${heaps.map((h) => h.heapUsedMb.toFixed(0)).join(' + ')}, live after GC ${heaps.map((h) => (h.liveMb === null ? '?' : h.liveMb.toFixed(0))).join(' + ')}; main heap ${(mainHeap.heapTotal / 2 ** 20).toFixed(0)})`,
      value: heaps.reduce((a, h) => a + h.heapTotalMb, 0),
      unit: 'MiB',
    },
    { key: `${id}.reopen`, label: `engine start with ${s.count / 1e6}M stored`, value: engine.startMs, unit: 'ms' },
  ];
  if (!bounded) {
    figures.push(
      { key: `${id}.populate`, label: `populate (own process): new instances (acked ${Math.round(s.insertAcked / 1000)}k/s)`, value: s.insertProcessed, unit: 'msg/s' },
      { key: `${id}.populateRss`, label: 'peak RSS of the populating process', value: s.populatePeakRssMb, unit: 'MiB' },
    );
  }
  return {
    id,
    title: `${s.count / 1e6}M stored instances, cacheSize ${cachePerShard / 1000}k per shard${bounded ? `, shardYoungGenerationMb ${LARGE_SMALL_YOUNG_MB}, ringBytes ${LARGE_SMALL_RING_BYTES / 1024} KiB (bounded memory)` : " (weft's defaults)"}`,
    figures,
    setup: `${n} messages per run, ${runs} runs per pattern alternating (median), 50k warm-up; ${LARGE_SHARDS} shards, checkpointIntervalMs 50, durability 'process'; ${cached} instances cached at the end; store populated by another process`,
    notMeasured: 'skewed (Zipf) access, values bigger than an int, fsync, memory of the host process alone (RSS is process-wide), page cache outside the process',
    load: [load0, load1()],
    extra: { cachePerShard, populate: s, memoryAtEnd: mem, shardHeaps: heaps, mainHeapTotalMb: mainHeap.heapTotal / 2 ** 20 },
  };
}

/**
 * The bounded-memory configuration runs first: RSS only grows within a process (freed heap pages
 * go back to the OS, malloc arenas may not), so its figure is not inflated by the default one's.
 */
export async function runLarge(ctx: BenchContext): Promise<WorkloadResult[]> {
  const s = await largeStore(ctx);
  const small = await runConfig(ctx, s, LARGE_SMALL_CACHE_PER_SHARD, 'e', true);
  const dflt = await runConfig(ctx, s, LARGE_CACHE_PER_SHARD, 'e2', false);
  return [small, dflt];
}
