/**
 * Measures `weft.instances` (src/state/listing.ts) over a large store, and prints a table plus
 * JSON (native-bench/results/listing.json).
 *
 *   npm run build && node dist/native-bench/listing.js [--count 1000000] [--shards 2]
 *
 * What is measured: an engine (2 shards, durability 'process', default cache) is populated with
 * `--count` counter instances (ids `c-<n>`, 10 digits), committed and folded; then, three times
 * each and reporting the median: (1) listing every id, (2) every `{ id, state }`, (3) 200 pages of
 * 100 ids resumed with `after` (what a paged UI does), each from a fresh snapshot; plus the main
 * thread's heap growth during (1), after GC. Not measured: a store larger than the page cache,
 * listing while the engine is under load.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { COUNTER, INCREMENT } from './modules/counter.js';
import { moduleUrl, removeDir, tempDir } from './lib/engine.js';
import { Weft } from '../src/index.js';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const n = i < 0 ? def : Number(process.argv[i + 1]);
  if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`--${name} must be a positive integer`);
  return n;
}

const count = arg('count', 1_000_000);
const shards = arg('shards', 2);
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1] as number;

const dir = tempDir('listing');
const weft = await Weft.start({ module: moduleUrl('counter'), dataDir: dir, shards, durability: 'process' });
const idOf = (i: number): string => `c-${String(i).padStart(10, '0')}`;
const t0 = performance.now();
const BATCH = 50_000;
for (let i = 0; i < count; i += BATCH) {
  const n = Math.min(BATCH, count - i);
  await Promise.all(Array.from({ length: n }, (_, j) => weft.send({ type: COUNTER, id: idOf(i + j) }, INCREMENT)));
}
await weft.checkpoint();
await weft.checkpoint();
const populateS = (performance.now() - t0) / 1000;
console.log(`populated ${count} instances in ${populateS.toFixed(1)} s`);

async function listAll(withState: boolean): Promise<{ ms: number; n: number; heapGrowth: number }> {
  gc();
  const base = process.memoryUsage().heapUsed;
  let peak = 0;
  let n = 0;
  const start = performance.now();
  for await (const _ of weft.instances(COUNTER, { withState } as { withState: false })) {
    if ((++n & 0x3ffff) === 0) {
      gc();
      peak = Math.max(peak, process.memoryUsage().heapUsed - base);
    }
  }
  const ms = performance.now() - start;
  if (n !== count) throw new Error(`listed ${n} of ${count}`);
  return { ms, n, heapGrowth: peak };
}

async function pages(pageCount: number, size: number): Promise<number> {
  const start = performance.now();
  let after: string | undefined;
  for (let p = 0; p < pageCount; p++) {
    let last: string | undefined;
    for await (const id of weft.instances(COUNTER, { limit: size, ...(after === undefined ? {} : { after }) })) last = id;
    after = last;
  }
  return (performance.now() - start) / pageCount;
}

const ids: Array<{ ms: number; heapGrowth: number }> = [];
const withState: number[] = [];
const pageMs: number[] = [];
for (let r = 0; r < 3; r++) {
  ids.push(await listAll(false));
  withState.push((await listAll(true)).ms);
  pageMs.push(await pages(200, 100));
}
const result = {
  count,
  shards,
  populateSeconds: populateS,
  idsPerSecond: count / (median(ids.map((r) => r.ms)) / 1000),
  statesPerSecond: count / (median(withState) / 1000),
  pageOf100Ms: median(pageMs),
  heapGrowthMb: Math.max(...ids.map((r) => r.heapGrowth)) / 1024 / 1024,
  runs: { idsMs: ids.map((r) => r.ms), withStateMs: withState, pageMs },
};
console.log(`ids:        ${Math.round(result.idsPerSecond).toLocaleString('en-US')} /s (median of 3 full listings of ${count.toLocaleString('en-US')})`);
console.log(`with state: ${Math.round(result.statesPerSecond).toLocaleString('en-US')} /s`);
console.log(`page of 100 (after=): ${result.pageOf100Ms.toFixed(2)} ms`);
console.log(`main heap growth during a full listing (after GC): ${result.heapGrowthMb.toFixed(1)} MiB`);
await weft.close();
removeDir(dir);
const out = new URL('../../native-bench/results/', import.meta.url);
mkdirSync(out, { recursive: true });
writeFileSync(new URL('listing.json', out), `${JSON.stringify(result, null, 2)}\n`);
