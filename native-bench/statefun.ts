/**
 * StateFun remote invocations over loopback HTTP, in one run:
 *
 *   weft RemoteFunctionClient ──HTTP──► a function served by the official JS SDK (3.3.0)
 *   weft RemoteFunctionClient ──HTTP──► the same function served by weft's statefunHandler
 *
 * The client plays the StateFun runtime: it keeps each address's state between batches (as the
 * engine will), sends one batch per address at a time, and applies the mutations it gets back.
 * The function is the same counter on both sides (one int state, +1 per message, a reply to the
 * caller), so both peers do the same protocol work: decode a ToFunction with one state value,
 * run the batch, encode a mutation and an outgoing message.
 *
 * The servers run in a child process (`--serve`), so client and server do not share an event
 * loop, as in a deployment; on a 2-core machine they do share the cores.
 *
 * Sample budget, fixed: per scenario, one warm-up run then 3 measured runs, interleaved across
 * peers so drift hits both alike; the median run is reported. A latency run is 3,000 sequential
 * batches of 1 message on one address (p50/p99 of the batch round trip); a throughput run is
 * 12,000 messages over 32 addresses, each address one batch in flight (batch of 1 message, then
 * batches of 10). That is 0.5–3 s per run here: long enough for timer noise to vanish, short
 * enough to interleave everything.
 *
 * A reference table prices the protocol core without HTTP: weft's `createStatefunInvoker` vs the
 * SDK's own `handle()` on the same request bytes, 20,000 requests × 3 runs, median.
 *
 * Not measured: TLS, the StateFun (Flink) runtime itself, network latency beyond loopback, GC
 * pauses of long runs, and the engine's integration (state in LMDB, checkpoints).
 *
 * Run: `npm run build && node dist/native-bench/statefun.js`; writes native-bench/results/statefun.json.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineModule, type } from '../src/index.js';
import { RemoteFunctionClient, createStatefunInvoker, encodeToFunction, statefunHandler, type RemoteValue } from '../src/statefun/index.js';

const require = createRequire(import.meta.url);
const sdk = require('apache-flink-statefun') as typeof import('apache-flink-statefun');
const sdkVersion = (require('apache-flink-statefun/package.json') as { version: string }).version;

const FN = 'bench/counter';
const RUNS = 3;
const LATENCY_CALLS = 3_000;
const THROUGHPUT_MESSAGES = 12_000;
const CONCURRENCY = 32;
const CORE_REQUESTS = 20_000;

// ---------------------------------------------------------------------------------------------
// The function, twice
// ---------------------------------------------------------------------------------------------

const weftModule = defineModule({
  functions: {
    [FN]: {
      state: { count: type.int() },
      fn(ctx) {
        const count = (ctx.state.count ?? 0) + 1;
        ctx.state.count = count;
        ctx.reply(count, { type: type.int() });
      },
    },
  },
});

function sdkFunctions(): InstanceType<typeof sdk.StateFun> {
  const sf = new sdk.StateFun();
  sf.bind({
    typename: FN,
    specs: [{ name: 'count', type: sdk.StateFun.intType() }],
    fn(ctx) {
      const count = ((ctx.storage.count as number | null) ?? 0) + 1;
      ctx.storage.count = count;
      if (ctx.caller !== null) ctx.send(sdk.messageBuilder({ typename: ctx.caller.typename, id: ctx.caller.id, value: count, valueType: sdk.StateFun.intType() }));
    },
  });
  return sf;
}

// ---------------------------------------------------------------------------------------------
// Server side (child process)
// ---------------------------------------------------------------------------------------------

function listen(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  const server = createServer(handler);
  server.keepAliveTimeout = 60_000;
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}/statefun`)));
}

async function serve(): Promise<void> {
  const sdkHandler = sdkFunctions().handler() as (req: IncomingMessage, res: ServerResponse) => Promise<void>;
  const urls = {
    sdk: await listen((req, res) => void sdkHandler(req, res)),
    weft: await listen(statefunHandler(weftModule)),
  };
  process.send?.(urls);
  // The parent's exit closes the IPC channel: leave with it.
  process.on('disconnect', () => process.exit(0));
}

// ---------------------------------------------------------------------------------------------
// Client side
// ---------------------------------------------------------------------------------------------

interface Measured {
  invocationsPerSec: number;
  p50Us: number;
  p99Us: number;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] as number;
}

const payload = type.string().encode('go');
const caller = { type: 'bench/driver', id: 'd' };

/**
 * `messages` messages over `addresses` addresses, each address one batch of `batch` messages in
 * flight at a time. Verifies every address's count at the end (a fast wrong answer is no result).
 */
async function drive(url: string, addresses: number, batch: number, messages: number, run: number): Promise<Measured> {
  const client = new RemoteFunctionClient({ url, timeoutMs: 30_000, maxSockets: addresses, maxRetries: 0 });
  const states = Array.from({ length: addresses }, () => new Map<string, RemoteValue>());
  const ids = states.map((_, i) => `r${run}-a${i}`);
  const invocations = Array.from({ length: batch }, () => ({ caller, typename: 'io.statefun.types/string', payload }));
  const call = async (i: number): Promise<void> => {
    const state = states[i] as Map<string, RemoteValue>;
    const r = await client.invoke({ target: { type: FN, id: ids[i] as string }, invocations, state });
    for (const m of r.mutations) {
      if (m.value === null) state.delete(m.name);
      else state.set(m.name, m.value);
    }
  };
  // The handshake (first call per function type) is not part of the measurement.
  await call(0);
  const perAddress = Math.ceil(messages / batch / addresses);
  const latencies: number[] = [];
  const started = performance.now();
  await Promise.all(
    states.map(async (_, i) => {
      for (let n = 0; n < perAddress; n++) {
        const t0 = performance.now();
        await call(i);
        latencies.push(performance.now() - t0);
      }
    }),
  );
  const elapsed = performance.now() - started;
  await client.close();
  states.forEach((state, i) => {
    const expected = (i === 0 ? perAddress + 1 : perAddress) * batch;
    const got = type.int().decode((state.get('count') as RemoteValue).bytes);
    if (got !== expected) throw new Error(`${url}: address ${i} counted ${got}, expected ${expected}`);
  });
  latencies.sort((a, b) => a - b);
  return {
    invocationsPerSec: (perAddress * addresses * batch) / (elapsed / 1000),
    p50Us: percentile(latencies, 50) * 1000,
    p99Us: percentile(latencies, 99) * 1000,
  };
}

function median(runs: Measured[]): Measured {
  const byRate = [...runs].sort((a, b) => a.invocationsPerSec - b.invocationsPerSec);
  return byRate[Math.floor(byRate.length / 2)] as Measured;
}

/** The protocol core without HTTP: the same request bytes through weft's invoker and the SDK's handle(). */
async function core(): Promise<Record<string, number>> {
  const body = encodeToFunction({
    invocation: {
      target: { namespace: 'bench', type: 'counter', id: 'c' },
      state: [{ stateName: 'count', stateValue: { typename: 'io.statefun.types/int', hasValue: true, value: type.int().encode(41) } }],
      invocations: [{ caller: { namespace: 'bench', type: 'driver', id: 'd' }, argument: { typename: 'io.statefun.types/string', hasValue: true, value: payload } }],
    },
  });
  const weftInvoke = createStatefunInvoker(weftModule);
  const sdkHandle = (require('apache-flink-statefun/dist/handler.js') as { handle(b: Uint8Array, fns: unknown): Promise<Uint8Array> }).handle;
  // The SDK's handle() takes its function table; StateFun keeps it in a private field, so bind
  // the same function spec through the SDK's own FunctionSpec.
  const { FunctionSpec } = require('apache-flink-statefun/dist/core.js') as { FunctionSpec: { fromOpts(o: unknown): unknown } };
  const table = {
    [FN]: FunctionSpec.fromOpts({
      typename: FN,
      specs: [{ name: 'count', type: sdk.StateFun.intType() }],
      fn(ctx: { storage: { count: number | null }; caller: { typename: string; id: string } | null; send(m: unknown): void }) {
        const count = (ctx.storage.count ?? 0) + 1;
        ctx.storage.count = count;
        if (ctx.caller !== null) ctx.send(sdk.messageBuilder({ typename: ctx.caller.typename, id: ctx.caller.id, value: count, valueType: sdk.StateFun.intType() }));
      },
    }),
  };
  const ours = Buffer.from(await weftInvoke(body)).toString('hex');
  const theirs = Buffer.from(await sdkHandle(body, table)).toString('hex');
  if (ours !== theirs) throw new Error('weft and the SDK answer the same request differently: the comparison would be unfair');
  const variants: Array<[string, () => Promise<unknown>]> = [
    ['weft createStatefunInvoker', () => weftInvoke(body)],
    [`SDK ${sdkVersion} handle()`, () => sdkHandle(body, table)],
  ];
  const results: Record<string, number[]> = {};
  for (let run = -1; run < RUNS; run++) {
    for (const [name, fn] of variants) {
      const t0 = performance.now();
      for (let i = 0; i < CORE_REQUESTS; i++) await fn();
      const rate = CORE_REQUESTS / ((performance.now() - t0) / 1000);
      if (run >= 0) (results[name] ??= []).push(rate);
    }
  }
  return Object.fromEntries(Object.entries(results).map(([k, v]) => [k, [...v].sort((a, b) => a - b)[1] as number]));
}

async function main(): Promise<void> {
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), ['--serve'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const urls = await new Promise<{ sdk: string; weft: string }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('bench servers did not start within 10 s')), 10_000);
    child.once('message', (m) => {
      clearTimeout(timer);
      resolve(m as { sdk: string; weft: string });
    });
    child.once('exit', (code) => reject(new Error(`bench servers exited (${code})`)));
  });

  const peers: Array<[string, string]> = [
    [`SDK ${sdkVersion} handler`, urls.sdk],
    ['weft statefunHandler', urls.weft],
  ];
  const scenarios: Array<{ name: string; addresses: number; batch: number; messages: number }> = [
    { name: 'latency, 1 address, batch 1', addresses: 1, batch: 1, messages: LATENCY_CALLS },
    { name: `throughput, ${CONCURRENCY} addresses, batch 1`, addresses: CONCURRENCY, batch: 1, messages: THROUGHPUT_MESSAGES },
    { name: `throughput, ${CONCURRENCY} addresses, batch 10`, addresses: CONCURRENCY, batch: 10, messages: THROUGHPUT_MESSAGES },
  ];
  const rows: Array<{ scenario: string; peer: string } & Measured> = [];
  let run = 0;
  for (const s of scenarios) {
    const runs = new Map<string, Measured[]>();
    for (let r = -1; r < RUNS; r++) {
      for (const [peer, url] of peers) {
        const m = await drive(url, s.addresses, s.batch, s.messages, run++);
        if (r >= 0) runs.set(peer, [...(runs.get(peer) ?? []), m]);
      }
    }
    for (const [peer] of peers) rows.push({ scenario: s.name, peer, ...median(runs.get(peer) as Measured[]) });
  }
  child.disconnect();

  const coreRates = await core();

  const pad = (s: string, n: number): string => s.padEnd(n);
  const num = (n: number): string => Math.round(n).toLocaleString('en-US');
  console.log(`StateFun request-reply over loopback HTTP — ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), Node ${process.version}`);
  console.log('client: weft RemoteFunctionClient (keep-alive); median of 3 runs\n');
  console.log(`${pad('scenario', 36)}${pad('peer', 26)}${pad('invocations/s', 16)}${pad('p50 µs', 10)}p99 µs`);
  for (const r of rows) console.log(`${pad(r.scenario, 36)}${pad(r.peer, 26)}${pad(num(r.invocationsPerSec), 16)}${pad(num(r.p50Us), 10)}${num(r.p99Us)}`);
  console.log('\nweft / SDK (invocations/s):');
  for (const s of scenarios) {
    const [a, b] = peers.map(([peer]) => rows.find((r) => r.scenario === s.name && r.peer === peer) as Measured);
    console.log(`  ${pad(s.name, 36)}${((b as Measured).invocationsPerSec / (a as Measured).invocationsPerSec).toFixed(2)}×`);
  }
  console.log('\nprotocol core without HTTP (same request bytes, same answer bytes), requests/s:');
  for (const [name, rate] of Object.entries(coreRates)) console.log(`  ${pad(name, 36)}${num(rate)}`);

  const file = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'native-bench', 'results', 'statefun.json');
  mkdirSync(dirname(file), { recursive: true });
  const out = {
    bench: 'statefun',
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, model: cpus()[0]?.model ?? 'unknown', node: process.version },
    sdk: `apache-flink-statefun ${sdkVersion}`,
    budget: { runs: RUNS, latencyCalls: LATENCY_CALLS, throughputMessages: THROUGHPUT_MESSAGES, concurrency: CONCURRENCY, coreRequests: CORE_REQUESTS },
    http: rows,
    coreRequestsPerSec: coreRates,
  };
  writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);
  console.log(`\nwrote ${file}`);
}

if (process.argv.includes('--serve')) await serve();
else await main();
