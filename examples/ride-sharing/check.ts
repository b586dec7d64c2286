/**
 * The consistency check of a finished simulation: reads the final state of every passenger,
 * ride, driver and geo cell with `weft.query` and compares it with the egress records the host
 * received, and recomputes every completed ride's fare with the compute task itself (it is a
 * plain function, so the host can call it directly). Run it once the engine is idle and no ride
 * is under way.
 */
import type { Weft } from 'weft';
import { GRID, cellId, type Point } from './city.js';
import { mapBounded } from './bounded.js';
import { fare } from './tasks.js';
import {
  DRIVER,
  GEO_CELL,
  PASSENGER,
  RIDE,
  type CompletedRide,
  type DriverRide,
  type PassengerRide,
  type RideRecord,
  type UnfulfilledRide,
} from './functions.js';

export interface CheckInput {
  passengers: readonly string[];
  drivers: readonly string[];
  /** Every record the host received from `ride-sharing/completed-rides`, duplicates included. */
  completed: readonly CompletedRide[];
  /** Every record the host received from `ride-sharing/unfulfilled-rides`. */
  unfulfilled: readonly UnfulfilledRide[];
}

export interface CheckResult {
  name: string;
  ok: boolean;
  /** What was compared, or the first few violations. */
  detail: string;
}

export interface Report {
  ok: boolean;
  checks: CheckResult[];
  rides: number;
  completedRides: number;
  failedRides: number;
  /** Requests passengers refused because a ride of theirs was under way (not an inconsistency). */
  refusedRequests: number;
}

interface PassengerState {
  ride?: PassengerRide;
  requested?: number;
  completed?: number;
  failed?: number;
  rejected?: number;
}

interface DriverState {
  location?: Point;
  cell?: string;
  ride?: DriverRide;
  rides?: number;
}

/** Queries run this many at a time: enough to keep every shard busy, bounded in memory. */
const QUERY_CONCURRENCY = 256;

/**
 * What the check reads from: a running engine, or anything with the same `query` (a test harness
 * from weft/testing, which runs the module in-process on a virtual clock).
 */
export type StateSource = Pick<Weft, 'query'>;

export async function checkConsistency(weft: StateSource, input: CheckInput): Promise<Report> {
  const query = <S>(type: string, ids: readonly string[]) =>
    mapBounded(ids, QUERY_CONCURRENCY, async (id) => ((await weft.query({ type, id })) ?? {}) as S);

  const passengers = await query<PassengerState>(PASSENGER, input.passengers);
  const rideIds = input.passengers.flatMap((p, i) => Array.from({ length: passengers[i]!.requested ?? 0 }, (_, n) => `${p}.${n + 1}`));
  const rides = (await query<{ ride?: RideRecord }>(RIDE, rideIds)).map((s) => s.ride);
  const drivers = await query<DriverState>(DRIVER, input.drivers);
  const cellIds: string[] = [];
  for (let y = 0; y < GRID; y++) for (let x = 0; x < GRID; x++) cellIds.push(cellId({ x, y }));
  const cells = (await query<{ drivers?: string[] }>(GEO_CELL, cellIds)).map((s) => s.drivers ?? []);

  const checks: CheckResult[] = [];
  const check = (name: string, violations: string[], detail: string): void => {
    const shown = violations.slice(0, 5).join('; ');
    checks.push({ name, ok: violations.length === 0, detail: violations.length === 0 ? detail : `${violations.length} violation(s): ${shown}` });
  };

  const completedIds = new Set<string>();
  const rideById = new Map<string, RideRecord>();
  rideIds.forEach((id, i) => {
    const r = rides[i];
    if (r === undefined) return;
    rideById.set(id, r);
    if (r.status === 'completed') completedIds.add(id);
  });

  // 1. Every completed ride appears exactly once in the egress, and nothing else does.
  {
    const v: string[] = [];
    const seen = new Map<string, number>();
    for (const rec of input.completed) seen.set(rec.ride, (seen.get(rec.ride) ?? 0) + 1);
    for (const [id, n] of seen) {
      if (n !== 1) v.push(`${id} appears ${n} times`);
      const r = rideById.get(id);
      if (r?.status !== 'completed') v.push(`${id} is in the egress but its state is ${r?.status ?? 'missing'}`);
    }
    for (const rec of input.completed) {
      const r = rideById.get(rec.ride);
      if (r !== undefined && (r.driver !== rec.driver || r.completedAt !== rec.completedAt || r.fare?.cents !== rec.fare.cents)) {
        v.push(`${rec.ride}: egress record differs from its state`);
      }
    }
    for (const id of completedIds) if (!seen.has(id)) v.push(`${id} is completed but missing from the egress`);
    check('every completed ride appears exactly once in the egress', v, `${completedIds.size} completed rides, ${input.completed.length} egress records`);
  }

  // 2. No driver is in two rides: a driver's rides have trip numbers 1..n and never overlap in time.
  {
    const v: string[] = [];
    const byDriver = new Map<string, RideRecord[]>();
    for (const r of rideById.values()) {
      if (r.driver === undefined) continue;
      let list = byDriver.get(r.driver);
      if (list === undefined) byDriver.set(r.driver, (list = []));
      list.push(r);
    }
    for (const [driver, list] of byDriver) {
      list.sort((a, b) => (a.trip ?? 0) - (b.trip ?? 0));
      list.forEach((r, i) => {
        if (r.trip !== i + 1) v.push(`${driver}: trip numbers ${list.map((x) => x.trip).join(',')} are not 1..${list.length}`);
        const prev = list[i - 1];
        if (prev !== undefined && (prev.completedAt === undefined || (r.assignedAt ?? 0) < prev.completedAt)) {
          v.push(`${driver}: trip ${r.trip} was assigned before trip ${prev.trip} ended`);
        }
      });
    }
    drivers.forEach((d, i) => {
      if (d.ride !== undefined) v.push(`${input.drivers[i]} is still on ride ${d.ride.id}`);
    });
    check('no driver is in two rides', v, `${byDriver.size} drivers drove ${[...byDriver.values()].reduce((a, l) => a + l.length, 0)} rides`);
  }

  // 3. Every passenger who got a ride has it completed; every request ended one way or the other.
  {
    const v: string[] = [];
    for (const [id, r] of rideById) {
      if (r.driver !== undefined && r.status !== 'completed') v.push(`${id} has driver ${r.driver} but is ${r.status}`);
      if (r.driver === undefined && r.status !== 'failed') v.push(`${id} is still ${r.status}`);
    }
    for (const id of rideIds) if (!rideById.has(id)) v.push(`${id} was requested but has no state`);
    passengers.forEach((p, i) => {
      const id = input.passengers[i]!;
      if (p.ride !== undefined) v.push(`${id} still has ride ${p.ride.id} (${p.ride.status})`);
      if ((p.completed ?? 0) + (p.failed ?? 0) !== (p.requested ?? 0)) v.push(`${id}: ${p.completed ?? 0} completed + ${p.failed ?? 0} failed != ${p.requested ?? 0} requested`);
    });
    const failed = [...rideById.values()].filter((r) => r.status === 'failed').length;
    if (failed !== input.unfulfilled.length) v.push(`${failed} failed rides but ${input.unfulfilled.length} unfulfilled egress records`);
    check('every passenger who got a ride has it completed', v, `${rideIds.length} requested: ${completedIds.size} completed, ${failed} found no driver`);
  }

  // 4. Drivers' ride counts sum to the completed rides.
  {
    const sum = drivers.reduce((a, d) => a + (d.rides ?? 0), 0);
    const v = sum === completedIds.size && sum === input.completed.length ? [] : [`drivers count ${sum}, states ${completedIds.size}, egress ${input.completed.length}`];
    check("drivers' ride counts sum to completed rides", v, `${sum} = ${completedIds.size}`);
  }

  // 5. Cell membership matches driver locations: a free driver is listed by exactly the cell it
  //    is in (and knows it), a driver on a ride by none, and cells list no one else.
  {
    const v: string[] = [];
    const listedIn = new Map<string, string[]>();
    cells.forEach((list, i) => {
      if (new Set(list).size !== list.length) v.push(`cell ${cellIds[i]} lists a driver twice`);
      for (const d of list) {
        let where = listedIn.get(d);
        if (where === undefined) listedIn.set(d, (where = []));
        where.push(cellIds[i]!);
      }
    });
    const known = new Set(input.drivers);
    for (const d of listedIn.keys()) if (!known.has(d)) v.push(`unknown driver ${d} in cell ${listedIn.get(d)!.join(',')}`);
    drivers.forEach((d, i) => {
      const id = input.drivers[i]!;
      const where = listedIn.get(id) ?? [];
      if (d.location === undefined) {
        if (where.length > 0) v.push(`${id} has no location but is in cell ${where.join(',')}`);
        return;
      }
      const here = cellId(d.location);
      if (d.ride !== undefined) {
        if (where.length > 0) v.push(`${id} is on a ride but listed in ${where.join(',')}`);
      } else if (where.length !== 1 || where[0] !== here || d.cell !== here) {
        v.push(`${id} is at ${here} (member of ${d.cell ?? 'none'}) but listed in [${where.join(' ')}]`);
      }
    });
    check('cell membership matches driver locations', v, `${listedIn.size} free drivers in ${cells.filter((c) => c.length > 0).length} cells`);
  }

  // 6. Every completed ride has a positive fare, the one the compute task gives for its trip:
  //    whichever pool thread computed it, and however often recovery re-ran it.
  {
    const v: string[] = [];
    let cents = 0;
    for (const id of completedIds) {
      const r = rideById.get(id)!;
      const expected = fare({ from: r.from, to: r.to });
      if (r.fare === undefined) v.push(`${id} has no fare`);
      else if (!(r.fare.cents > 0)) v.push(`${id} has fare ${r.fare.cents} cents`);
      else if (r.fare.cents !== expected.cents || r.fare.blocks !== expected.blocks || r.fare.seconds !== expected.seconds) {
        v.push(`${id}: fare ${JSON.stringify(r.fare)} but the task gives ${JSON.stringify(expected)}`);
      }
      cents += r.fare?.cents ?? 0;
    }
    check('every completed ride has the fare the task computes', v, `${completedIds.size} fares, $${(cents / 100).toFixed(2)} in all`);
  }

  return {
    ok: checks.every((c) => c.ok),
    checks,
    rides: rideIds.length,
    completedRides: completedIds.size,
    failedRides: input.unfulfilled.length,
    refusedRequests: passengers.reduce((a, p) => a + (p.rejected ?? 0), 0),
  };
}
