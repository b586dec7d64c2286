/**
 * A city under load: drivers moving around and passengers requesting rides at an offered rate,
 * for RIDES_SECONDS seconds (default 10), then a consistency check of the final state. This is
 * what `npm start` runs. Exits 0 when every check passes, 1 otherwise.
 *
 * Environment (all optional):
 *   RIDES_SECONDS      how long passengers keep requesting rides (default 10)
 *   RIDES_PER_SECOND   offered rate of ride requests (default 1000)
 *   RIDES_DRIVERS      drivers (default 1000); each reports its location about once a second
 *   RIDES_PASSENGERS   passengers (default 20000); one ride at a time each
 *   RIDES_DATA_DIR     data dir, wiped at start (default: a fresh temp dir, removed at the end)
 *   WEFT_SHARDS        shard threads (default: one per core)
 *
 * Every ride's fare is a route search on weft's compute pool (tasks.ts), awaited by the ride when
 * a driver accepts; the summary shows the fares, and the final check recomputes each one.
 *
 * Backpressure: every send goes through a bounded window of operations in flight (bounded.ts).
 * A `weft.send` resolves once its message is committed, and weft makes ingress wait when it is
 * behind, so when the engine cannot keep up the simulation offers less rather than queueing
 * without bound; the live line shows both the offered and the achieved rate.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { Weft } from 'weft';
import { Window, quantile } from './bounded.js';
import { checkConsistency } from './check.js';
import { GRID, inCity, type Point } from './city.js';
import {
  COMPLETED_RIDES,
  DRIVER,
  PASSENGER,
  UNFULFILLED_RIDES,
  type CompletedRide,
  type DriverLocation,
  type RequestRide,
  type RideRequestReply,
  type UnfulfilledRide,
} from './functions.js';

function envNumber(name: string, def: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return def;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number (got ${JSON.stringify(raw)})`);
  return n;
}

const SECONDS = envNumber('RIDES_SECONDS', 10);
const RIDES_PER_SECOND = envNumber('RIDES_PER_SECOND', 1000);
const DRIVERS = Math.round(envNumber('RIDES_DRIVERS', 1000));
const PASSENGERS = Math.round(envNumber('RIDES_PASSENGERS', 20_000));
/** Every driver reports its location about this often. */
const REPORT_EVERY_MS = 1000;
/** One in this many ride requests is made with `weft.request` and timed. */
const LATENCY_SAMPLE_EVERY = 4;
/** Operations (sends, requests) in flight at most. */
const WINDOW = 1024;
/** The simulation issues what fell due this often. */
const TICK_MS = 20;
/** After the last request: how long rides under way may take to end before the check runs. */
const DRAIN_TIMEOUT_MS = 8000;

const rand = (n: number): number => Math.floor(Math.random() * n);
const fmt = (n: number): string => n.toLocaleString('en-US');
const ms = (v: number): string => (Number.isNaN(v) ? '-' : `${v.toFixed(2)} ms`);

/**
 * A third of the trips start downtown, and a third end there: central cells run short of drivers
 * at times and rides search the cells around, while the flows in and out of downtown balance.
 */
function place(): Point {
  if (Math.random() < 1 / 3) {
    const c = GRID / 2 - 2;
    return { x: c + rand(4), y: c + rand(4) };
  }
  return { x: rand(GRID), y: rand(GRID) };
}

function destination(from: Point): Point {
  for (;;) {
    const to = place();
    if (to.x !== from.x || to.y !== from.y) return to;
  }
}

function step(p: Point): Point {
  const dirs: Point[] = [{ x: 1, y: 0 }, { x: -1, y: 0 }, { x: 0, y: 1 }, { x: 0, y: -1 }];
  for (;;) {
    const d = dirs[rand(4)]!;
    const next = { x: p.x + d.x, y: p.y + d.y };
    if (inCity(next)) return next;
  }
}

const ownDataDir = process.env.RIDES_DATA_DIR === undefined || process.env.RIDES_DATA_DIR === '';
const dataDir = ownDataDir ? mkdtempSync(join(tmpdir(), 'weft-ride-sharing-')) : resolve(process.env.RIDES_DATA_DIR!);
// A fresh city every run: the check compares against what this run sent.
if (!ownDataDir) rmSync(dataDir, { recursive: true, force: true });

const weft = await Weft.start({ module: new URL('./functions.js', import.meta.url), shards: 'auto', dataDir });
const shards = weft.metrics().shards.length;
console.log(`ride-sharing: ${GRID}x${GRID} cells, ${fmt(DRIVERS)} drivers, ${fmt(PASSENGERS)} passengers, ${fmt(RIDES_PER_SECOND)} rides/s offered for ${SECONDS} s, ${shards} shard(s), data in ${dataDir}`);

const passengerIds = Array.from({ length: PASSENGERS }, (_, i) => `p${i}`);
const driverIds = Array.from({ length: DRIVERS }, (_, i) => `d${i}`);
/** Where the simulation believes each driver is (the driver's phone). */
const driverAt = new Map<string, Point>(driverIds.map((d) => [d, { x: rand(GRID), y: rand(GRID) }]));
/** Passengers free to request a ride: the host hands one out per request and takes it back when its ride ends. */
const idlePassengers = [...passengerIds];

const completed: CompletedRide[] = [];
const unfulfilled: UnfulfilledRide[] = [];
let requested = 0;
let noIdlePassenger = 0;
let onEgress: (() => void) | undefined;

async function consume<T>(name: string, sink: T[], passengerOf: (r: T) => string, also?: (r: T) => void): Promise<void> {
  for await (const record of weft.egress(name)) {
    const r = record.value as T;
    sink.push(r);
    also?.(r);
    idlePassengers.push(passengerOf(r));
    onEgress?.();
  }
}
const consumers = Promise.all([
  // The driver ends its ride at the destination: its phone reports from there on.
  consume<CompletedRide>(COMPLETED_RIDES, completed, (r) => r.passenger, (r) => driverAt.set(r.driver, r.to)),
  consume<UnfulfilledRide>(UNFULFILLED_RIDES, unfulfilled, (r) => r.passenger),
]);

const window = new Window(WINDOW);
const reportLocation = (driver: string): Promise<void> => {
  const p = driverAt.get(driver)!;
  return window.run(() => weft.send({ type: DRIVER, id: driver }, { kind: 'location', x: p.x, y: p.y } satisfies DriverLocation));
};

// Every driver appears somewhere before the first passenger asks.
for (const d of driverIds) await reportLocation(d);
await window.drain();

let latencies: number[] = [];
const allLatencies: number[] = [];

async function requestRide(): Promise<void> {
  const passenger = idlePassengers.shift();
  if (passenger === undefined) {
    noIdlePassenger++;
    return;
  }
  const from = place();
  const msg: RequestRide = { kind: 'request-ride', from, to: destination(from) };
  const to = { type: PASSENGER, id: passenger };
  requested++;
  if (requested % LATENCY_SAMPLE_EVERY !== 0) {
    await window.run(() => weft.send(to, msg));
    return;
  }
  await window.run(async () => {
    const t0 = performance.now();
    const reply = (await weft.request(to, msg, { timeoutMs: 10_000 })) as RideRequestReply;
    const took = performance.now() - t0;
    latencies.push(took);
    allLatencies.push(took);
    if (!reply.ok) throw new Error(`passenger ${passenger} refused a ride: ${reply.reason}`);
  });
}

const invocations = (): number => weft.metrics().shards.reduce((a, s) => a + s.invocations, 0);
const started = performance.now();
let lastLine = { at: started, invocations: invocations() };
let peakRate = 0;

function printLine(): void {
  const now = performance.now();
  const inv = invocations();
  const rate = ((inv - lastLine.invocations) * 1000) / (now - lastLine.at);
  peakRate = Math.max(peakRate, rate);
  lastLine = { at: now, invocations: inv };
  const sorted = latencies.sort((a, b) => a - b);
  latencies = [];
  const t = ((now - started) / 1000).toFixed(0).padStart(3);
  const underWay = requested - completed.length - unfulfilled.length;
  console.log(
    `[${t}s] rides requested ${fmt(requested)}, completed ${fmt(completed.length)}, under way ${fmt(underWay)}` +
      (unfulfilled.length > 0 ? `, no driver ${fmt(unfulfilled.length)}` : '') +
      ` | ${fmt(Math.round(rate))} msg/s | request p50 ${ms(quantile(sorted, 0.5))} p99 ${ms(quantile(sorted, 0.99))}` +
      ` | in flight ${window.inFlight}`,
  );
}
const ticker = setInterval(printLine, 1000);

let stopping = false;
process.once('SIGINT', () => {
  stopping = true;
});

// Paced by the clock: each tick issues what fell due since the start. When the window is full,
// `await` holds the loop and the due work is issued later (or skipped at the end), never queued.
let moves = 0;
let nextDriver = 0;
while (!stopping) {
  const elapsed = performance.now() - started;
  if (elapsed >= SECONDS * 1000) break;
  const dueRides = Math.floor((elapsed / 1000) * RIDES_PER_SECOND);
  const dueMoves = Math.floor((elapsed / REPORT_EVERY_MS) * DRIVERS);
  while (requested + noIdlePassenger < dueRides && !stopping) await requestRide();
  while (moves < dueMoves && !stopping) {
    const d = driverIds[nextDriver]!;
    nextDriver = (nextDriver + 1) % DRIVERS;
    driverAt.set(d, step(driverAt.get(d)!));
    moves++;
    await reportLocation(d);
  }
  await delay(TICK_MS);
}

// Wind down: let everything sent commit, then let the rides under way finish (they run on
// delayed messages, which `idle()` does not wait for), bounded.
await window.drain();
const drainDeadline = performance.now() + DRAIN_TIMEOUT_MS;
while (completed.length + unfulfilled.length < requested && performance.now() < drainDeadline) {
  await Promise.race([new Promise<void>((r) => (onEgress = r)), delay(250)]);
}
onEgress = undefined;
await weft.idle();
await weft.checkpoint();
clearInterval(ticker);
printLine();

const sortedAll = allLatencies.sort((a, b) => a - b);
const wall = (performance.now() - started) / 1000;
console.log(
  `\n${fmt(requested)} rides requested in ${SECONDS} s (${fmt(Math.round(requested / SECONDS))}/s offered ${fmt(RIDES_PER_SECOND)}/s` +
    (noIdlePassenger > 0 ? `, ${fmt(noIdlePassenger)} skipped: every passenger was riding` : '') +
    `), ${fmt(moves + DRIVERS)} location reports, ${fmt(invocations())} invocations, peak ${fmt(Math.round(peakRate))} msg/s, ${wall.toFixed(1)} s wall`,
);
console.log(
  `request latency (${fmt(sortedAll.length)} sampled): p50 ${ms(quantile(sortedAll, 0.5))} p90 ${ms(quantile(sortedAll, 0.9))} p99 ${ms(quantile(sortedAll, 0.99))} max ${ms(quantile(sortedAll, 1))}`,
);
{
  const mean = (f: (r: CompletedRide) => number): string => ms(completed.reduce((a, r) => a + f(r), 0) / completed.length);
  const cents = completed.reduce((a, r) => a + r.fare.cents, 0);
  const blocks = completed.reduce((a, r) => a + r.fare.blocks, 0);
  const dollars = (c: number): string => `$${(c / 100).toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;
  const perRide = completed.length === 0 ? '' : ` (mean ${dollars(cents / completed.length)} for ${(blocks / completed.length).toFixed(1)} blocks)`;
  console.log(
    `completed rides: fares ${dollars(cents)} in all${perRide}, mean wait for a driver ${mean((r) => r.assignedAt - r.requestedAt)}, to pickup ${mean((r) => r.pickedUpAt - r.assignedAt)}, pickup to dropoff ${mean((r) => r.completedAt - r.pickedUpAt)}`,
  );
}

const report = await checkConsistency(weft, { passengers: passengerIds, drivers: driverIds, completed, unfulfilled });
// The simulation asks only passengers whose previous ride it saw end (in the egress), and a
// passenger's own ride-ended message reaches it before that egress record is committed: so no
// request of this run may have found a ride still under way.
report.checks.push({
  name: 'no passenger was asked for a ride while one was under way',
  ok: report.refusedRequests === 0,
  detail: `${report.refusedRequests} request(s) refused`,
});
const ok = report.checks.every((c) => c.ok);
console.log('\nconsistency check of the final state:');
for (const c of report.checks) console.log(`  ${c.ok ? 'ok  ' : 'FAIL'} ${c.name}: ${c.detail}`);
console.log(ok ? 'all checks passed' : 'CONSISTENCY CHECK FAILED');

await weft.close();
await consumers;
if (ownDataDir) rmSync(dataDir, { recursive: true, force: true });
process.exit(ok ? 0 : 1);
