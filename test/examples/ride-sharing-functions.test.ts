/**
 * The ride-sharing functions through a real engine, one scripted scenario at a time: a ride from
 * request to egress, a passenger who waits for the only (busy) driver, a passenger who gets the
 * other driver, and a ride that finds no driver at all. Each ends with the example's own
 * consistency check. Needs `npm run build` first (the shards load the compiled module).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { within } from '../helpers/index.js';
import { Weft } from '../../src/index.js';
import { checkConsistency } from '../../examples/ride-sharing/check.js';
import { cellId, type Point } from '../../examples/ride-sharing/city.js';
import type { CompletedRide, RideRecord, RideRequestReply, UnfulfilledRide } from '../../examples/ride-sharing/functions.js';

const MODULE = new URL('../../dist/examples/ride-sharing/functions.js', import.meta.url);

const passenger = (id: string) => ({ type: 'ride-sharing/passenger', id });
const driver = (id: string) => ({ type: 'ride-sharing/driver', id });
const ride = (id: string) => ({ type: 'ride-sharing/ride', id });
const cell = (p: Point) => ({ type: 'ride-sharing/geo-cell', id: cellId(p) });

/**
 * Collects an egress into a list and lets a test wait until it holds a record that matches.
 * One reader per egress for the whole engine: each record is delivered once.
 */
class Collector<T> {
  readonly records: T[] = [];
  #waiters: Array<() => void> = [];

  constructor(it: AsyncIterable<{ value: unknown }>) {
    void (async () => {
      for await (const r of it) {
        this.records.push(r.value as T);
        for (const w of this.#waiters.splice(0)) w();
      }
    })();
  }

  async waitFor(match: (r: T) => boolean, what: string, ms = 15_000): Promise<T> {
    const find = async (): Promise<T> => {
      for (;;) {
        const found = this.records.find(match);
        if (found !== undefined) return found;
        await new Promise<void>((resolve) => this.#waiters.push(resolve));
      }
    };
    return within(find(), ms, what);
  }
}

describe('examples/ride-sharing functions', () => {
  let weft: Weft;
  let dir: string;
  let completed: Collector<CompletedRide>;
  let unfulfilled: Collector<UnfulfilledRide>;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'weft-rides-test-'));
    weft = await Weft.start({ module: MODULE, dataDir: dir, shards: 2, durability: 'process' });
    completed = new Collector(weft.egress('ride-sharing/completed-rides'));
    unfulfilled = new Collector(weft.egress('ride-sharing/unfulfilled-rides'));
  });

  afterAll(async () => {
    await weft?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const requestRide = async (p: string, from: Point, to: Point): Promise<string> => {
    const reply = (await weft.request(passenger(p), { kind: 'request-ride', from, to })) as RideRequestReply;
    expect(reply.ok).toBe(true);
    return reply.ride;
  };

  /** Puts a free driver at `p` and waits until its geo cell knows (idle: the join was processed). */
  const place = async (d: string, p: Point): Promise<void> => {
    await weft.send(driver(d), { kind: 'location', x: p.x, y: p.y });
    await weft.idle();
  };

  it('takes a ride from request to the egress, and records it on every side', async () => {
    await place('d1', { x: 2, y: 2 });
    expect(await weft.query(cell({ x: 2, y: 2 }))).toEqual({ drivers: ['d1'] });

    const id = await requestRide('p1', { x: 2, y: 2 }, { x: 5, y: 2 });
    expect(id).toBe('p1.1');
    const rec = await completed.waitFor((r) => r.ride === id, 'ride p1.1 completing');
    expect(rec).toMatchObject({ passenger: 'p1', driver: 'd1', trip: 1, status: 'completed', searches: 1, from: { x: 2, y: 2 }, to: { x: 5, y: 2 } });
    expect(rec.requestedAt).toBeLessThanOrEqual(rec.assignedAt);
    expect(rec.assignedAt).toBeLessThanOrEqual(rec.pickedUpAt);
    expect(rec.pickedUpAt).toBeLessThanOrEqual(rec.completedAt);

    await weft.idle();
    expect(await weft.query(passenger('p1'))).toEqual({ requested: 1, completed: 1 });
    expect(await weft.query(ride(id))).toEqual({ ride: { ...rec, ride: undefined } });
    // The driver ends where the passenger wanted to go, free, and in that cell's list.
    expect(await weft.query(driver('d1'))).toEqual({ location: { x: 5, y: 2 }, cell: '5,2', rides: 1 });
    expect(await weft.query(cell({ x: 5, y: 2 }))).toEqual({ drivers: ['d1'] });
    expect(await weft.query(cell({ x: 2, y: 2 }))).toBeUndefined();
  });

  it('makes a second passenger wait while the only driver is busy, then gives it the same driver', async () => {
    await weft.idle();
    await place('d1', { x: 2, y: 2 });
    // Both trips end within the search radius of (2,2): whoever waits finds d1 when it is free.
    const [a, b] = await Promise.all([requestRide('p2', { x: 2, y: 2 }, { x: 4, y: 2 }), requestRide('p3', { x: 2, y: 2 }, { x: 3, y: 3 })]);
    const [ra, rb] = await Promise.all([
      completed.waitFor((r) => r.ride === a, `ride ${a} completing`),
      completed.waitFor((r) => r.ride === b, `ride ${b} completing`),
    ]);
    const [first, second] = ra.assignedAt <= rb.assignedAt ? [ra, rb] : [rb, ra];
    expect(first.driver).toBe('d1');
    expect(second.driver).toBe('d1');
    expect(second.trip).toBe(first.trip + 1);
    expect(first.searches).toBe(1);
    // It searched again (after a backoff) until d1 had dropped the first passenger off.
    expect(second.searches).toBeGreaterThan(1);
    expect(second.assignedAt).toBeGreaterThanOrEqual(first.completedAt);
  });

  it('gives the second passenger the other driver when the nearest one is taken', async () => {
    await weft.idle();
    await place('d1', { x: 2, y: 2 });
    // Two cells away: inside the search radius, found by the cell search around the pickup.
    await place('d2', { x: 4, y: 4 });
    const [a, b] = await Promise.all([requestRide('p4', { x: 2, y: 2 }, { x: 9, y: 9 }), requestRide('p5', { x: 2, y: 2 }, { x: 9, y: 8 })]);
    const [ra, rb] = await Promise.all([
      completed.waitFor((r) => r.ride === a, `ride ${a} completing`),
      completed.waitFor((r) => r.ride === b, `ride ${b} completing`),
    ]);
    expect(new Set([ra.driver, rb.driver])).toEqual(new Set(['d1', 'd2']));
    // Neither waited: the second search went on from the empty cell to d2's.
    expect(ra.searches).toBe(1);
    expect(rb.searches).toBe(1);
    const state = (await weft.query(ride(ra.driver === 'd2' ? a : b)))?.ride as RideRecord;
    expect(state.driver).toBe('d2');
  });

  it('refuses a second request while a ride searches, and gives the ride up when no driver is near', async () => {
    await weft.idle();
    // Every driver is around (2..9, 2..9); (15,15) is more than 3 cells from all of them.
    const id = await requestRide('p6', { x: 15, y: 15 }, { x: 14, y: 15 });
    // The ride keeps searching for seconds (backoff), so the passenger still has it.
    const again = await weft.request(passenger('p6'), { kind: 'request-ride', from: { x: 15, y: 15 }, to: { x: 0, y: 0 } });
    expect(again).toEqual({ ok: false, ride: id, reason: 'a ride is under way' });
    const rec = await unfulfilled.waitFor((r) => r.ride === id, `ride ${id} being given up`);
    expect(rec).toEqual({ ride: id, passenger: 'p6', from: { x: 15, y: 15 }, searches: 8 });
    await weft.idle();
    expect(await weft.query(passenger('p6'))).toEqual({ requested: 1, failed: 1, rejected: 1 });
    expect(((await weft.query(ride(id)))?.ride as RideRecord).status).toBe('failed');
  });

  it('leaves a final state that passes the consistency check', async () => {
    await weft.idle();
    const report = await checkConsistency(weft, {
      passengers: ['p1', 'p2', 'p3', 'p4', 'p5', 'p6'],
      drivers: ['d1', 'd2'],
      completed: completed.records,
      unfulfilled: unfulfilled.records,
    });
    expect(report.checks.filter((c) => !c.ok)).toEqual([]);
    expect(report.failedRides).toBe(1);
    expect(report.refusedRequests).toBe(1);
    expect(report.completedRides).toBe(completed.records.length);
  });
});
