/**
 * What an egress record costs: host → function fire-and-forget over 10,000 counters (workload (a)'s
 * shape), once with a function that only updates its counter and once with one that also writes
 * an egress record per message, which a `for await` loop on the host consumes (each record
 * acknowledged by asking for the next). One engine (2 shards, checkpoints every 50 ms, durability
 * 'process', as in (a)); runs alternate plain / egress so drift hits both alike. A run ends when
 * every send is committed and, with egress, every record consumed.
 *
 * Reported per variant: messages/s (median run) and CPU per message over all threads
 * (process.cpuUsage); the cost of one egress record is the difference of the CPU medians.
 * `node dist/native-bench/egress.js [--messages N] [--runs R]`. Every record's value is checked
 * against the counter it came from (sum of counts): a fast wrong answer is no result.
 */
import type { Address } from '../src/index.js';
import { fireWeft } from './lib/drive.js';
import { startEngine } from './lib/engine.js';
import { load1 } from './lib/machine.js';
import { median } from './lib/stats.js';
import { EGRESS, EGRESSING, PLAIN } from './modules/egress.js';
import { ids } from './modules/ids.js';

const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const N = arg('messages', 300_000);
const RUNS = arg('runs', 5);
const IDS = 10_000;

const load0 = load1();
const engine = await startEngine('egress', { module: 'egress', shards: 2, checkpointIntervalMs: 50 });
const weft = engine.weft;
const plain: Address[] = ids('p', IDS).map((id) => ({ type: PLAIN, id }));
const egressing: Address[] = ids('e', IDS).map((id) => ({ type: EGRESSING, id }));

// One consumer for the whole run; works with records ({ id, value }) and with bare values.
let consumed = 0;
let sum = 0;
const waiter: { wake: (() => void) | null } = { wake: null };
const consumer = (async () => {
  for await (const rec of weft.egress(EGRESS)) {
    const value = typeof rec === 'object' && rec !== null && 'value' in rec ? (rec as { value: unknown }).value : rec;
    consumed++;
    sum += value as number;
    waiter.wake?.();
  }
})();

async function run(egress: boolean, n: number): Promise<{ rate: number; cpuNs: number }> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const target = consumed + n;
  await fireWeft(weft, egress ? egressing : plain, n, 0);
  if (egress && consumed < target) {
    await new Promise<void>((resolve) => {
      waiter.wake = () => {
        if (consumed < target) return;
        waiter.wake = null;
        resolve();
      };
    });
  }
  const ms = performance.now() - t0;
  const c = process.cpuUsage(c0);
  return { rate: n / (ms / 1000), cpuNs: ((c.user + c.system) * 1000) / n };
}

await run(false, N / 2);
await run(true, N / 2);
const results = { plain: [] as Array<{ rate: number; cpuNs: number }>, egress: [] as Array<{ rate: number; cpuNs: number }> };
for (let r = 0; r < RUNS; r++) {
  results.plain.push(await run(false, N));
  results.egress.push(await run(true, N));
}
const egressMessages = N / 2 + RUNS * N;
// Every egressing counter was incremented egressMessages / IDS times (ids cycled in order): the
// records are 1..k per counter.
const k = egressMessages / IDS;
const expected = Number.isInteger(k) ? IDS * ((k * (k + 1)) / 2) : undefined;
await engine.close();
await consumer;
const m = (xs: Array<{ rate: number; cpuNs: number }>, f: (x: { rate: number; cpuNs: number }) => number): number => median(xs.map(f));
const out = {
  messagesPerRun: N,
  runs: RUNS,
  plain: { rate: Math.round(m(results.plain, (x) => x.rate)), cpuNsPerMsg: Math.round(m(results.plain, (x) => x.cpuNs)) },
  egress: { rate: Math.round(m(results.egress, (x) => x.rate)), cpuNsPerMsg: Math.round(m(results.egress, (x) => x.cpuNs)) },
  cpuNsPerEgressRecord: Math.round(m(results.egress, (x) => x.cpuNs) - m(results.plain, (x) => x.cpuNs)),
  recordsConsumed: consumed,
  valuesChecked: expected === undefined ? 'skipped (messages not a multiple of ids)' : sum === expected,
  load1: [load0, load1()],
};
console.log(JSON.stringify(out, null, 2));
if (consumed !== egressMessages || (expected !== undefined && sum !== expected)) {
  console.error(`wrong result: consumed ${consumed} of ${egressMessages} records, sum ${sum}, expected ${String(expected)}`);
  process.exitCode = 1;
}
