/**
 * Child process of workload (c) (workloads/latency.ts): one host send loop against a fresh engine
 * in a fresh process, so its peak RSS is the loop's own. `node send-loop.js <yield|tight> <n>`:
 * `n` fire-and-forget sends to 10,000 counters (2 shards, checkpoints every 50 ms), yielding to
 * the event loop every 4096 sends (`yield`, what the suite's throughput workloads do) or never
 * (`tight`: a host loop that does not await; the sends beyond what the rings take wait in
 * memory). Reports, over IPC: processed and acknowledged rates and the process's peak RSS.
 */
import { sendResult } from './lib/child.js';
import { CHUNK, fireWeft } from './lib/drive.js';
import { startEngine } from './lib/engine.js';
import { INCREMENT } from './modules/counter.js';
import { FIRE_IDS, counterAddresses } from './workloads/fire.js';

export interface SendLoopResult {
  mode: 'yield' | 'tight';
  messages: number;
  processedRate: number;
  ackedRate: number;
  /** The process's peak resident set (main, shards, rings, LMDB pages), bytes. */
  peakRss: number;
  /** RSS just before the loop, bytes (engine started, warmed up). */
  rssBefore: number;
}

const mode = process.argv[2];
const n = Number(process.argv[3]);
if ((mode !== 'yield' && mode !== 'tight') || !Number.isInteger(n) || n <= 0) {
  console.error('usage: node send-loop.js <yield|tight> <messages>');
  process.exit(2);
}
const addrs = counterAddresses(FIRE_IDS);
const engine = await startEngine('send-loop', { module: 'counter', shards: 2, checkpointIntervalMs: 50 });
// Warm-up (yielding, a tenth of the run) so both modes start from a compiled, populated engine.
await fireWeft(engine.weft, addrs, Math.max(10_000, Math.floor(n / 10)), INCREMENT);
const rssBefore = process.memoryUsage.rss();
const t = await fireWeft(engine.weft, addrs, n, INCREMENT, 0, false, mode === 'yield' ? CHUNK : 0);
const result: SendLoopResult = {
  mode,
  messages: n,
  processedRate: n / (t.processedMs / 1000),
  ackedRate: n / (t.ackedMs / 1000),
  peakRss: process.resourceUsage().maxRSS * 1024,
  rssBefore,
};
await engine.close();
await sendResult(result);
