/**
 * The ride-sharing example through weft/testing, on the virtual clock:
 *
 * - scripted scenarios whose timings (driving to the pickup and the dropoff, the search backoff
 *   while no driver is free, giving a ride up) hold to the millisecond, with the fares the
 *   compute task gives;
 * - a seeded city of moving drivers and passengers, 20 virtual seconds and some 200 rides in
 *   about half a second of real time, that passes the example's own consistency check and plays
 *   out identically when run again;
 * - parity: the same script of messages through a real engine (2 shards, threads, LMDB, the
 *   compute pool) ends in the same states and egress records.
 *
 * The harness loads the compiled module from dist/ (npm test builds it first), so `compute`
 * resolves to the compiled tasks.js next to it, as it does in the engine.
 *
 * Why Date is faked: the functions stamp rides with `Date.now()` (a `ctx` has no clock), and the
 * harness's virtual clock drives delayed messages, not `Date`. {@link advance} below sets the
 * faked `Date` to each due time before the harness fires what falls due then, so every invocation
 * sees the virtual time and the timestamps are exact. Only `Date` is faked: the harness bounds
 * its own waits with real timers.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { within } from '../helpers/index.js';
import { Weft, type Address } from '../../src/index.js';
import { createTestHarness, type TestHarness } from '../../src/testing/index.js';
import { checkConsistency } from '../../examples/ride-sharing/check.js';
import { GRID, cellId, inCity, type Point } from '../../examples/ride-sharing/city.js';
import {
  COMPLETED_RIDES,
  UNFULFILLED_RIDES,
  type CompletedRide,
  type DriverLocation,
  type RequestRide,
  type RideRecord,
  type UnfulfilledRide,
} from '../../examples/ride-sharing/functions.js';
import { fare } from '../../examples/ride-sharing/tasks.js';

const MODULE = new URL('../../dist/examples/ride-sharing/functions.js', import.meta.url);

const passenger = (id: string): Address => ({ type: 'ride-sharing/passenger', id });
const driver = (id: string): Address => ({ type: 'ride-sharing/driver', id });
const ride = (id: string): Address => ({ type: 'ride-sharing/ride', id });
const cell = (p: Point): Address => ({ type: 'ride-sharing/geo-cell', id: cellId(p) });
const at = (x: number, y: number): Point => ({ x, y });
const location = (p: Point): DriverLocation => ({ kind: 'location', x: p.x, y: p.y });
const rideRequest = (from: Point, to: Point): RequestRide => ({ kind: 'request-ride', from, to });

const allCells: Point[] = Array.from({ length: GRID * GRID }, (_, i) => at(i % GRID, Math.floor(i / GRID)));

/**
 * Moves the harness's virtual time forward by `ms`, stopping at every due time on the way with
 * the faked `Date` set to it (see the file comment). Retries of failing invocations are not
 * stepped: none of these scenarios fails, which each one checks with `deadLetters()`.
 */
async function advance(h: TestHarness, ms: number): Promise<void> {
  const end = h.now() + ms;
  for (;;) {
    const next = h.pendingTimers()[0]?.due;
    if (next === undefined || next > end) break;
    vi.setSystemTime(next);
    await h.advance(next - h.now());
  }
  vi.setSystemTime(end);
  await h.advance(end - h.now());
}

/** Advances until no delayed message is pending: every ride under way has ended. */
async function drain(h: TestHarness): Promise<void> {
  for (let next = h.pendingTimers()[0]; next !== undefined; next = h.pendingTimers()[0]) await advance(h, next.due - h.now());
}

async function rideState(h: TestHarness, id: string): Promise<RideRecord> {
  return ((await h.query(ride(id))) as { ride: RideRecord }).ride;
}

describe('the fare task (examples/ride-sharing/tasks.ts)', () => {
  it('prices the quickest street route: deterministic, never shorter than the blocks between the cells', () => {
    // Along one street: 3 cells of 4 blocks, the shortest possible; 250 + 12 × 30 + 6 started minutes × 45.
    expect(fare({ from: at(2, 2), to: at(5, 2) })).toEqual({ cents: 880, blocks: 12, seconds: 352 });
    expect(fare({ from: at(7, 7), to: at(7, 7) })).toEqual({ cents: 250, blocks: 0, seconds: 0 });
    for (const [from, to] of [[at(0, 0), at(15, 15)], [at(3, 12), at(12, 3)], [at(6, 9), at(9, 6)], [at(15, 0), at(14, 1)]] as const) {
      const f = fare({ from, to });
      expect(f).toEqual(fare({ from, to }));
      expect(f.blocks).toBeGreaterThanOrEqual(4 * (Math.abs(from.x - to.x) + Math.abs(from.y - to.y)));
      expect(f.cents).toBeGreaterThan(250);
    }
  });

  it('refuses a trip that leaves the city', () => {
    expect(() => fare({ from: at(0, 0), to: at(GRID, 0) })).toThrow(RangeError);
    expect(() => fare({ from: at(-1, 0), to: at(0, 0) })).toThrow(/not a trip inside the 16x16 city/);
  });
});

describe('examples/ride-sharing through the test harness, on virtual time', () => {
  let h: TestHarness;
  let t0: number;

  beforeEach(async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    h = await createTestHarness(MODULE);
    t0 = h.now();
    vi.setSystemTime(t0);
  });

  afterEach(async () => {
    await h.close();
    vi.useRealTimers();
  });

  it('takes a ride from request to the egress, each leg after its driving time, with the fare', async () => {
    const from = at(2, 2);
    const to = at(5, 2);
    await h.send(driver('d1'), location(from));
    expect(await h.query(cell(from))).toEqual({ drivers: ['d1'] });
    expect(await h.query(driver('d1'))).toEqual({ location: from, cell: '2,2' });

    await expect(h.request(passenger('p1'), rideRequest(from, to))).resolves.toEqual({ ok: true, ride: 'p1.1' });
    // The request ran to quiescence: search, offer, acceptance and the fare from the compute task.
    const quote = fare({ from, to });
    expect(await h.query(ride('p1.1'))).toEqual({
      ride: { passenger: 'p1', from, to, status: 'assigned', requestedAt: t0, searches: 1, driver: 'd1', trip: 1, assignedAt: t0, fare: quote },
    });
    expect(await h.query(passenger('p1'))).toEqual({ requested: 1, ride: { id: 'p1.1', status: 'assigned', driver: 'd1' } });
    expect(await h.query(driver('d1'))).toEqual({ location: from, ride: { id: 'p1.1', from, to, trip: 1 } });
    expect(await h.query(cell(from))).toBeUndefined();
    // Already in the pickup cell: 60 ms to get going, no cells to drive.
    expect(h.pendingTimers().map((t) => [t.due - t0, t.target, t.value])).toEqual([[60, driver('d1'), { kind: 'at-pickup', ride: 'p1.1' }]]);

    await advance(h, 59);
    expect((await rideState(h, 'p1.1')).status).toBe('assigned');
    await advance(h, 1);
    expect(await rideState(h, 'p1.1')).toMatchObject({ status: 'in-progress', pickedUpAt: t0 + 60 });
    expect(await h.query(passenger('p1'))).toMatchObject({ ride: { id: 'p1.1', status: 'on-board' } });

    // (2,2) to (5,2): 60 ms plus 3 cells × 30 ms.
    await advance(h, 149);
    expect(h.egress(COMPLETED_RIDES)).toEqual([]);
    await advance(h, 1);
    const record: CompletedRide = {
      ride: 'p1.1',
      passenger: 'p1',
      from,
      to,
      status: 'completed',
      requestedAt: t0,
      searches: 1,
      driver: 'd1',
      trip: 1,
      assignedAt: t0,
      fare: quote,
      pickedUpAt: t0 + 60,
      completedAt: t0 + 210,
    };
    expect(h.egress(COMPLETED_RIDES)).toEqual([record]);
    expect(await h.query(ride('p1.1'))).toEqual({ ride: { ...record, ride: undefined } });
    expect(await h.query(passenger('p1'))).toEqual({ requested: 1, completed: 1 });
    // The driver ends free where the passenger wanted to go, listed by that cell.
    expect(await h.query(driver('d1'))).toEqual({ location: to, cell: '5,2', rides: 1 });
    expect(await h.query(cell(to))).toEqual({ drivers: ['d1'] });
    expect(h.pendingTimers()).toEqual([]);
    expect(h.deadLetters()).toEqual([]);
  });

  it('makes a ride wait for the only driver: the search backs off 100 ms, then 200 ms, and finds it free', async () => {
    await h.send(driver('d1'), location(at(2, 2)));
    await expect(h.request(passenger('p2'), rideRequest(at(2, 2), at(4, 2)))).resolves.toEqual({ ok: true, ride: 'p2.1' });
    await expect(h.request(passenger('p3'), rideRequest(at(2, 2), at(3, 3)))).resolves.toEqual({ ok: true, ride: 'p3.1' });
    // d1 is taken: p3's first search found no one, the second is due in 100 ms.
    expect(await rideState(h, 'p3.1')).toMatchObject({ status: 'searching', searches: 2 });
    expect(h.pendingTimers().map((t) => [t.due - t0, t.target])).toEqual([
      [60, driver('d1')],
      [100, ride('p3.1')],
    ]);
    // One ride at a time per passenger.
    await expect(h.request(passenger('p3'), rideRequest(at(2, 2), at(0, 0)))).resolves.toEqual({ ok: false, ride: 'p3.1', reason: 'a ride is under way' });

    // d1 picks p2 up at 60 ms and drops it at (4,2) at 180 ms (60 + 2 cells × 30), so the search
    // at 100 ms finds no one either; the next one, 200 ms later, finds d1 two cells away.
    await advance(h, 100);
    expect(await rideState(h, 'p3.1')).toMatchObject({ status: 'searching', searches: 3 });
    await advance(h, 199);
    expect(h.egress(COMPLETED_RIDES)).toHaveLength(1);
    expect((await rideState(h, 'p3.1')).status).toBe('searching');
    await advance(h, 1);
    expect(await rideState(h, 'p3.1')).toMatchObject({ status: 'assigned', driver: 'd1', trip: 2, assignedAt: t0 + 300 });

    // To the pickup, (4,2) → (2,2): 120 ms; to the dropoff, (2,2) → (3,3): 120 ms.
    await advance(h, 240);
    const [first, second, ...more] = h.egress(COMPLETED_RIDES) as CompletedRide[];
    expect(more).toEqual([]);
    expect(first).toMatchObject({ ride: 'p2.1', driver: 'd1', trip: 1, searches: 1, assignedAt: t0, pickedUpAt: t0 + 60, completedAt: t0 + 180 });
    expect(first!.fare).toEqual(fare({ from: at(2, 2), to: at(4, 2) }));
    expect(second).toEqual({
      ride: 'p3.1',
      passenger: 'p3',
      from: at(2, 2),
      to: at(3, 3),
      status: 'completed',
      requestedAt: t0,
      searches: 3,
      driver: 'd1',
      trip: 2,
      assignedAt: t0 + 300,
      fare: fare({ from: at(2, 2), to: at(3, 3) }),
      pickedUpAt: t0 + 420,
      completedAt: t0 + 540,
    });
    expect(await h.query(passenger('p2'))).toEqual({ requested: 1, completed: 1 });
    expect(await h.query(passenger('p3'))).toEqual({ requested: 1, completed: 1, rejected: 1 });
    expect(await h.query(driver('d1'))).toEqual({ location: at(3, 3), cell: '3,3', rides: 2 });
    expect(await h.query(cell(at(4, 2)))).toBeUndefined();
    expect(await h.query(cell(at(3, 3)))).toEqual({ drivers: ['d1'] });
    expect(h.egress(UNFULFILLED_RIDES)).toEqual([]);
    expect(h.deadLetters()).toEqual([]);
  });

  it('gives a ride up after 8 searches, 3.9 s of backoff, when no driver is within reach', async () => {
    await h.send(driver('d1'), location(at(0, 0)));
    await h.send(passenger('p9'), rideRequest(at(15, 15), at(14, 15)));
    // Searches at 0, 100, 300, 700, 1500, 2300, 3100 and 3900 ms: the backoff doubles up to 800 ms.
    await advance(h, 3899);
    expect(await rideState(h, 'p9.1')).toMatchObject({ status: 'searching', searches: 8 });
    expect(h.egress(UNFULFILLED_RIDES)).toEqual([]);
    await advance(h, 1);
    expect(h.egress(UNFULFILLED_RIDES)).toEqual([{ ride: 'p9.1', passenger: 'p9', from: at(15, 15), searches: 8 } satisfies UnfulfilledRide]);
    expect(await rideState(h, 'p9.1')).toEqual({ passenger: 'p9', from: at(15, 15), to: at(14, 15), status: 'failed', requestedAt: t0, searches: 8 });
    expect(await h.query(passenger('p9'))).toEqual({ requested: 1, failed: 1 });
    // The driver far away was never offered the ride.
    expect(await h.query(driver('d1'))).toEqual({ location: at(0, 0), cell: '0,0' });
    expect(h.egress(COMPLETED_RIDES)).toEqual([]);
    expect(h.pendingTimers()).toEqual([]);
    expect(h.deadLetters()).toEqual([]);
  });

  it('refuses a trip whose dropoff is outside the city before any driver is asked', async () => {
    await h.send(driver('d1'), location(at(2, 2)));
    await h.send(passenger('p7'), rideRequest(at(2, 2), at(2, GRID)));
    // The ride's create message fails on every attempt (retries back off 10 and 20 ms).
    await advance(h, 30);
    const letters = h.deadLetters();
    expect(letters.map((l) => [l.target, l.error.message])).toEqual([[ride('p7.1'), 'ride p7.1: dropoff 2,16 is outside the city']]);
    expect(await h.query(ride('p7.1'))).toBeUndefined();
    expect(await h.query(cell(at(2, 2)))).toEqual({ drivers: ['d1'] });
  });

  /**
   * A small city: drivers start at seeded random cells and move one cell at a time; passengers
   * ask for rides at a steady rate, with a burst in a corner where drivers are scarce. Like
   * main.ts, the host asks only passengers whose previous ride it saw end, and moves a driver
   * from where its last ride ended.
   */
  async function simulateCity(harness: TestHarness, seed: number) {
    let s = seed >>> 0;
    // mulberry32: a seeded PRNG, so the script is the same on every run.
    const rand = (n: number): number => {
      s = (s + 0x6d2b79f5) >>> 0;
      let t = s;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
    };
    const drivers = Array.from({ length: 24 }, (_, i) => `d${i}`);
    const passengers = Array.from({ length: 80 }, (_, i) => `p${i}`);
    const driverAt = new Map(drivers.map((d) => [d, at(rand(GRID), rand(GRID))]));
    const idle = [...passengers];
    let requested = 0;
    const seen = { completed: 0, unfulfilled: 0 };
    const collect = (): void => {
      const completed = harness.egress(COMPLETED_RIDES) as CompletedRide[];
      for (const r of completed.slice(seen.completed)) {
        idle.push(r.passenger);
        driverAt.set(r.driver, r.to);
      }
      const unfulfilled = harness.egress(UNFULFILLED_RIDES) as UnfulfilledRide[];
      for (const r of unfulfilled.slice(seen.unfulfilled)) idle.push(r.passenger);
      seen.completed = completed.length;
      seen.unfulfilled = unfulfilled.length;
    };
    const request = async (from: Point): Promise<void> => {
      const p = idle.shift();
      if (p === undefined) return;
      let to = at(rand(GRID), rand(GRID));
      while (to.x === from.x && to.y === from.y) to = at(rand(GRID), rand(GRID));
      requested++;
      await harness.send(passenger(p), rideRequest(from, to));
    };

    for (const d of drivers) await harness.send(driver(d), location(driverAt.get(d)!));
    // 20 virtual seconds in ticks of 100 ms: one request and four driver moves per tick.
    for (let tick = 0; tick < 200; tick++) {
      collect();
      await request(at(rand(GRID), rand(GRID)));
      // At 10 s, ten passengers at once in the corner (15,15).
      if (tick === 100) for (let i = 0; i < 10; i++) await request(at(15, 15));
      for (let m = 0; m < 4; m++) {
        const d = drivers[rand(drivers.length)]!;
        const here = driverAt.get(d)!;
        const dir = rand(4);
        const next = at(here.x + [1, -1, 0, 0][dir]!, here.y + [0, 0, 1, -1][dir]!);
        if (!inCity(next)) continue;
        driverAt.set(d, next);
        await harness.send(driver(d), location(next));
      }
      await advance(harness, 100);
    }
    await drain(harness);
    collect();
    const completed = harness.egress(COMPLETED_RIDES) as CompletedRide[];
    const unfulfilled = harness.egress(UNFULFILLED_RIDES) as UnfulfilledRide[];
    const report = await checkConsistency(harness, { passengers, drivers, completed, unfulfilled });
    return { requested, completed, unfulfilled, report };
  }

  it('runs a seeded city of moving drivers to a state that passes the example\'s consistency check', async () => {
    const run = await simulateCity(h, 42);
    expect(run.report.checks.filter((c) => !c.ok)).toEqual([]);
    expect(run.report.checks.map((c) => c.name)).toContain('every completed ride has the fare the task computes');
    expect(run.report.refusedRequests).toBe(0);
    expect(run.completed.length + run.unfulfilled.length).toBe(run.requested);
    expect(run.requested).toBeGreaterThan(150);
    // The corner burst outran the drivers near it: some rides waited and searched again, and
    // some were given up.
    expect(run.completed.some((r) => r.searches > 1)).toBe(true);
    expect(run.unfulfilled.length).toBeGreaterThan(0);
    expect(h.deadLetters()).toEqual([]);

    // Virtual time and a seeded script: a second run gives the same records, timestamps included.
    const again = await createTestHarness(MODULE);
    try {
      vi.setSystemTime(again.now());
      const rerun = await simulateCity(again, 42);
      expect(rerun.completed).toEqual(run.completed);
      expect(rerun.unfulfilled).toEqual(run.unfulfilled);
    } finally {
      await again.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Parity with the engine
// ---------------------------------------------------------------------------------------------

type Step = readonly [to: Address, value: unknown];

/**
 * The parity script, in phases; the host waits after each message for everything it caused
 * (engine: `idle()`, harness: `send` runs to quiescence), and after each phase for every ride of
 * the phase to end. Each outcome is decided by message order, never by how long something took
 * in real time, which is what lets a wall-clock engine and a virtual clock agree:
 * - every ride finds its driver in the search it starts with, except one that nobody can reach;
 * - nothing anyone does comes within search range of that one's pickup (15,0): all the other
 *   trips stay at least 6 cells away while it searches;
 * - a driver gets a location only while free, and a cell that two drivers join is joined in an
 *   order the script fixes.
 */
const PHASES: ReadonlyArray<{ steps: Step[]; ridesEnding: number }> = [
  {
    steps: [
      [driver('d1'), location(at(2, 2))],
      [driver('d2'), location(at(4, 4))],
      [driver('d3'), location(at(12, 12))],
      [driver('d4'), location(at(8, 8))],
      // Crossing a border: leaves (8,8), joins (8,9).
      [driver('d4'), location(at(8, 9))],
      [driver('d5'), location(at(6, 10))],
      // d1, in the pickup cell.
      [passenger('p1'), rideRequest(at(2, 2), at(5, 2))],
      // (3,3) and its first ring are empty but for (4,4): d2.
      [passenger('p2'), rideRequest(at(3, 3), at(10, 12))],
      // d3, one cell away.
      [passenger('p3'), rideRequest(at(13, 13), at(12, 6))],
      // No driver within 3 cells of (15,0), now or later: 8 searches, then given up.
      [passenger('p4'), rideRequest(at(15, 0), at(14, 1))],
      [passenger('p5'), rideRequest(at(8, 9), at(7, 7))],
    ],
    ridesEnding: 5,
  },
  {
    steps: [
      [driver('d1'), location(at(5, 3))],
      [passenger('p1'), rideRequest(at(5, 3), at(0, 0))],
      // d2 waits at (10,12), where p2's first ride ended; it drives to d5's cell.
      [passenger('p2'), rideRequest(at(10, 12), at(6, 10))],
      // d5 is the only one (6,10) lists now; d2 will join it after it has left.
      [passenger('p6'), rideRequest(at(6, 11), at(1, 14))],
      [driver('d4'), location(at(7, 6))],
      [passenger('p5'), rideRequest(at(7, 6), at(7, 7))],
    ],
    ridesEnding: 4,
  },
];
const PARITY_PASSENGERS = ['p1', 'p2', 'p3', 'p4', 'p5', 'p6'];
const PARITY_DRIVERS = ['d1', 'd2', 'd3', 'd4', 'd5'];

/** Reads the engine's two ride egresses (one reader each: a record is delivered once). */
class RideEgress {
  readonly completed: CompletedRide[] = [];
  readonly unfulfilled: UnfulfilledRide[] = [];
  #waiters: Array<() => void> = [];

  constructor(weft: Weft) {
    this.#read(weft.egress(COMPLETED_RIDES), this.completed);
    this.#read(weft.egress(UNFULFILLED_RIDES), this.unfulfilled);
  }

  #read<T>(records: AsyncIterable<{ value: unknown }>, sink: T[]): void {
    void (async () => {
      for await (const r of records) {
        sink.push(r.value as T);
        for (const wake of this.#waiters.splice(0)) wake();
      }
    })();
  }

  /** Resolves once `n` rides have ended, completed or given up. */
  async ended(n: number): Promise<void> {
    while (this.completed.length + this.unfulfilled.length < n) await new Promise<void>((resolve) => this.#waiters.push(resolve));
  }
}

const TIMES = ['requestedAt', 'assignedAt', 'pickedUpAt', 'completedAt'] as const;

/**
 * A ride record without its timestamps, which are wall-clock in the engine and stepped virtual
 * time in the harness. What they must agree on, their order, is checked here.
 */
function timeless<R extends RideRecord>(r: R): Omit<R, (typeof TIMES)[number]> {
  const stamps = TIMES.map((k) => r[k]).filter((t): t is number => t !== undefined);
  expect(stamps).toEqual([...stamps].sort((a, b) => a - b));
  const { requestedAt: _r, assignedAt: _a, pickedUpAt: _p, completedAt: _c, ...rest } = r;
  return rest;
}

/** Egress records as sorted JSON: across addresses their order depends on scheduling. */
const multiset = (records: unknown[]): string[] => records.map((r) => JSON.stringify(r)).sort();

describe('harness ↔ engine parity on the ride-sharing example', () => {
  let dir: string;
  let weft: Weft;
  let h: TestHarness;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'weft-rides-parity-'));
    weft = await Weft.start({ module: MODULE, shards: 2, dataDir: dir, durability: 'process' });
    h = await createTestHarness(MODULE);
  });

  afterAll(async () => {
    await h?.close();
    await weft?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('ends in the same states and egress records', async () => {
    const egress = new RideEgress(weft);
    let ending = 0;
    for (const [i, phase] of PHASES.entries()) {
      ending += phase.ridesEnding;
      for (const [to, value] of phase.steps) {
        await weft.send(to, value);
        await within(weft.idle(), 10_000, 'engine idle after a host message');
        await h.send(to, value);
      }
      // The rides of the phase run on delayed messages: real ones in the engine (the ride
      // nobody can reach searches for 3.9 s), virtual ones in the harness.
      await within(egress.ended(ending), 20_000, `the rides of phase ${i + 1} ending in the engine`);
      await within(weft.idle(), 10_000, 'engine idle after a phase');
      // Plain `advance`, not the Date-stepping helper: timestamps are not compared here, and
      // `vi.setSystemTime` would fake Date for the engine's main thread too.
      for (let next = h.pendingTimers()[0]; next !== undefined; next = h.pendingTimers()[0]) await h.advance(next.due - h.now());
      expect(h.egress(COMPLETED_RIDES).length + h.egress(UNFULFILLED_RIDES).length).toBe(ending);
    }

    const harnessCompleted = h.egress(COMPLETED_RIDES) as CompletedRide[];
    expect(harnessCompleted).toHaveLength(8);
    expect(multiset(egress.completed.map(timeless))).toEqual(multiset(harnessCompleted.map(timeless)));
    expect(multiset(egress.unfulfilled)).toEqual(multiset(h.egress(UNFULFILLED_RIDES)));
    for (const r of harnessCompleted) expect(r.fare).toEqual(fare({ from: r.from, to: r.to }));

    const rideIds: string[] = [];
    for (const p of PARITY_PASSENGERS) {
      const engine = await weft.query(passenger(p));
      expect({ p, state: await h.query(passenger(p)) }).toEqual({ p, state: engine });
      const requested = (engine as { requested?: number } | undefined)?.requested ?? 0;
      for (let n = 1; n <= requested; n++) rideIds.push(`${p}.${n}`);
    }
    expect(rideIds).toHaveLength(9);
    for (const id of rideIds) {
      const norm = (s: Record<string, unknown> | undefined) => ({ ride: timeless((s as { ride: RideRecord }).ride) });
      expect({ id, state: norm(await h.query(ride(id))) }).toEqual({ id, state: norm(await weft.query(ride(id))) });
    }
    for (const d of PARITY_DRIVERS) {
      expect({ d, state: await h.query(driver(d)) }).toEqual({ d, state: await weft.query(driver(d)) });
    }
    for (const c of allCells) {
      expect({ c, state: await h.query(cell(c)) }).toEqual({ c, state: await weft.query(cell(c)) });
    }

    // Both pass the example's consistency check.
    const input = { passengers: PARITY_PASSENGERS, drivers: PARITY_DRIVERS };
    for (const [source, report] of [
      ['engine', await checkConsistency(weft, { ...input, completed: egress.completed, unfulfilled: egress.unfulfilled })],
      ['harness', await checkConsistency(h, { ...input, completed: harnessCompleted, unfulfilled: h.egress(UNFULFILLED_RIDES) as UnfulfilledRide[] })],
    ] as const) {
      expect({ source, failed: report.checks.filter((c) => !c.ok) }).toEqual({ source, failed: [] });
    }
    expect(h.deadLetters()).toEqual([]);
  });
});
