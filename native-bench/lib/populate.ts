/**
 * Child process entry: populates the large store (large-store.ts) and reports back over IPC.
 * Populating inserts every instance through one engine: its heaps, its malloc arenas and LMDB's
 * dirty pages would otherwise stay in the process whose RSS workload (e) reports.
 *
 *   node populate.js <dir> <count>     → process.send(PopulateResult)
 */
import { sendResult } from './child.js';
import { fireWeft } from './drive.js';
import { startEngine } from './engine.js';
import { rssSampler } from './machine.js';
import { LARGE_POPULATE_CACHE, LARGE_SHARDS, largeAddress, type PopulateResult } from './large-store.js';
import { INCREMENT } from '../modules/counter.js';

const [dir, countArg] = process.argv.slice(2);
const count = Number(countArg);
if (dir === undefined || !Number.isSafeInteger(count) || count <= 0) {
  console.error('usage: node populate.js <dir> <count>');
  process.exit(2);
}
const engine = await startEngine('large', { module: 'counter', shards: LARGE_SHARDS, checkpointIntervalMs: 50, cacheSize: LARGE_POPULATE_CACHE, dataDir: dir });
const rss = rssSampler();
const t = await fireWeft(engine.weft, largeAddress, count, INCREMENT);
const mem = rss.stop();
await engine.close(true);
const result: PopulateResult = { insertProcessed: count / (t.processedMs / 1000), insertAcked: count / (t.ackedMs / 1000), populatePeakRssMb: mem.sampledPeakRssMb, seconds: t.ackedMs / 1000 };
await sendResult(result);
