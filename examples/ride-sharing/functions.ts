/**
 * The ride-sharing application from the Stateful Functions talk, as four functions:
 *
 *   passenger ──create──► ride ──find──► geo-cell ──find──► neighbouring geo-cell ...
 *       ▲                  ▲  ▲              │ (a free driver)            │ (search exhausted)
 *       │ assigned,        │  │              ▼                            ▼
 *       │ picked-up,       │  └─declined─ driver ◄──location── host    ride: no-driver
 *       │ completed        └──accepted, picked-up, dropped-off─┘          (retries later, or fails)
 *
 * - A **driver** reports its location; while free it is a member of exactly the geo cell it is
 *   in (it leaves the old cell and joins the new one when it crosses a border).
 * - A **geo cell** keeps its free drivers. Asked to find one for a ride, it hands the ride to
 *   its longest-waiting driver, or passes the search on to the next cell around the pickup
 *   point (city.ts fixes the order), and the last cell tells the ride that there is none.
 * - A **ride** owns one trip: it starts the search, retries it a few times when no driver is
 *   near, and follows the driver through pickup and dropoff. A completed ride is written to the
 *   egress `ride-sharing/completed-rides`; one that never found a driver to
 *   `ride-sharing/unfulfilled-rides`.
 * - A **passenger** has at most one ride at a time and counts how its rides ended.
 *
 * The driver drives: accepting an offer it schedules its arrival at the pickup with
 * `ctx.sendAfter`, and on arrival schedules the dropoff, so rides progress in (durable) time.
 *
 * The fare is fixed when a driver accepts: the ride awaits `ctx.compute('fare', ...)`, a route
 * search through the streets (tasks.ts) that runs on the compute pool while the ride's shard
 * serves other addresses. The ride's own later messages wait until it has the fare (one
 * invocation per address at a time), so every ride that completes has one.
 *
 * Races are settled by message order, which weft keeps per sender and target. A cell removes a
 * driver when it offers it a ride; the driver may meanwhile have joined another cell, or be busy
 * with another ride. So a driver that accepts an offer always sends `leave` to the cell it is a
 * member of (even the offering one: it may have re-joined after the offer was made), and a busy
 * driver declines, which sends the ride searching again. A driver's last membership message to
 * every cell is then a `leave`, until it joins its dropoff cell when the ride ends.
 */
import { defineModule, type, type Context } from 'weft';
import { cellId, driveMs, inCity, searchStep, type Point } from './city.js';
import type { Fare, FareInput } from './tasks.js';

/** Typenames, exported for the host code that addresses these functions. */
export const PASSENGER = 'ride-sharing/passenger';
export const DRIVER = 'ride-sharing/driver';
export const GEO_CELL = 'ride-sharing/geo-cell';
export const RIDE = 'ride-sharing/ride';
export const COMPLETED_RIDES = 'ride-sharing/completed-rides';
export const UNFULFILLED_RIDES = 'ride-sharing/unfulfilled-rides';

/**
 * A search that found no driver within the radius is repeated after a backoff that starts here
 * and doubles up to {@link SEARCH_RETRY_MAX_MS}: a search visits up to 49 cells, so retrying
 * many waiting rides quickly would flood the engine exactly when drivers are scarce.
 */
export const SEARCH_RETRY_MS = 100;
export const SEARCH_RETRY_MAX_MS = 800;
/** Searches in all (about 4 s of waiting) before the ride is given up. */
export const MAX_SEARCHES = 8;

/** The wait before search number `searches + 1`. */
export function searchBackoffMs(searches: number): number {
  return Math.min(SEARCH_RETRY_MAX_MS, SEARCH_RETRY_MS * 2 ** (searches - 1));
}

// --- Messages -------------------------------------------------------------------------------

/** What the host sends a passenger; the reply is a {@link RideRequestReply}. */
export interface RequestRide {
  kind: 'request-ride';
  from: Point;
  to: Point;
}
export type RideRequestReply = { ok: true; ride: string } | { ok: false; ride: string; reason: string };

/** What the host (the drivers' phones) sends a driver. */
export interface DriverLocation {
  kind: 'location';
  x: number;
  y: number;
}

type PassengerMessage =
  | RequestRide
  | { kind: 'driver-assigned'; ride: string; driver: string }
  | { kind: 'picked-up'; ride: string }
  | { kind: 'ride-completed'; ride: string }
  | { kind: 'ride-failed'; ride: string };

type RideMessage =
  | { kind: 'create'; passenger: string; from: Point; to: Point }
  | { kind: 'search' }
  | { kind: 'no-driver' }
  | { kind: 'declined'; step: number }
  | { kind: 'accepted'; driver: string; trip: number; at: number }
  | { kind: 'picked-up'; at: number }
  | { kind: 'dropped-off'; at: number };

interface Find {
  kind: 'find';
  ride: string;
  from: Point;
  to: Point;
  step: number;
}
type CellMessage = { kind: 'join'; driver: string } | { kind: 'leave'; driver: string } | Find;

type DriverMessage =
  | DriverLocation
  | { kind: 'offer'; ride: string; from: Point; to: Point; step: number }
  | { kind: 'at-pickup'; ride: string }
  | { kind: 'at-dropoff'; ride: string };

// --- State ----------------------------------------------------------------------------------

/** A passenger's current ride. */
export interface PassengerRide {
  id: string;
  status: 'searching' | 'assigned' | 'on-board';
  driver?: string;
}

/** A ride's record: its own state, and (once completed) the egress record. */
export interface RideRecord {
  passenger: string;
  from: Point;
  to: Point;
  status: 'searching' | 'assigned' | 'in-progress' | 'completed' | 'failed';
  requestedAt: number;
  /** Searches started so far (the first one included). */
  searches: number;
  driver?: string;
  /** The driver's trip number: its n-th accepted ride. */
  trip?: number;
  assignedAt?: number;
  /** Fixed when the driver accepts, by the compute task `fare`. */
  fare?: Fare;
  pickedUpAt?: number;
  completedAt?: number;
}

/** A record of the egress `ride-sharing/completed-rides`. */
export interface CompletedRide extends RideRecord {
  ride: string;
  status: 'completed';
  driver: string;
  trip: number;
  assignedAt: number;
  fare: Fare;
  pickedUpAt: number;
  completedAt: number;
}

/** A record of the egress `ride-sharing/unfulfilled-rides`. */
export interface UnfulfilledRide {
  ride: string;
  passenger: string;
  from: Point;
  searches: number;
}

/** A driver's current ride. */
export interface DriverRide {
  id: string;
  from: Point;
  to: Point;
  trip: number;
}

const passengerAddress = (id: string) => ({ type: PASSENGER, id });
const rideAddress = (id: string) => ({ type: RIDE, id });
const cellAddress = (p: Point | string) => ({ type: GEO_CELL, id: typeof p === 'string' ? p : cellId(p) });

/** Sends a search to the first cell at or after `step` around the pickup, or reports none left. */
function findFrom(ctx: Pick<Context, 'send'>, ride: string, from: Point, to: Point, step: number): boolean {
  const next = searchStep(from, step);
  if (next === undefined) return false;
  ctx.send(cellAddress(next.cell), { kind: 'find', ride, from, to, step: next.step } satisfies Find);
  return true;
}

/** The ride's half of an accepted offer: the fare from the compute pool, then the assignment. */
async function accept(ctx: Context<{ ride: RideRecord }>, id: string, ride: RideRecord, m: Extract<RideMessage, { kind: 'accepted' }>): Promise<void> {
  const fare = await ctx.compute<Fare>('fare', { from: ride.from, to: ride.to } satisfies FareInput);
  ctx.state.ride = { ...ride, status: 'assigned', driver: m.driver, trip: m.trip, assignedAt: m.at, fare };
  ctx.send(passengerAddress(ride.passenger), { kind: 'driver-assigned', ride: id, driver: m.driver } satisfies PassengerMessage);
}

export default defineModule({
  functions: {
    [PASSENGER]: {
      state: {
        ride: type.json<PassengerRide>(),
        requested: type.int(),
        completed: type.int(),
        failed: type.int(),
        /** Requests refused because a ride was still under way. */
        rejected: type.int(),
      },
      fn(ctx, msg) {
        const m = msg.value as PassengerMessage;
        const current = ctx.state.ride;
        if (m.kind === 'request-ride') {
          if (current !== undefined) {
            ctx.state.rejected = (ctx.state.rejected ?? 0) + 1;
            ctx.reply({ ok: false, ride: current.id, reason: 'a ride is under way' } satisfies RideRequestReply);
            return;
          }
          // Ride ids are `<passenger>.<n>`: unique without coordination, and the host can list
          // every ride of a passenger from its `requested` count.
          const n = (ctx.state.requested ?? 0) + 1;
          const ride = `${ctx.self.id}.${n}`;
          ctx.state.requested = n;
          ctx.state.ride = { id: ride, status: 'searching' };
          ctx.send(rideAddress(ride), { kind: 'create', passenger: ctx.self.id, from: m.from, to: m.to } satisfies RideMessage);
          ctx.reply({ ok: true, ride } satisfies RideRequestReply);
          return;
        }
        // Everything else comes from the current ride; anything else would be a protocol bug,
        // which the simulation's consistency check reports through the counters.
        if (current?.id !== m.ride) return;
        switch (m.kind) {
          case 'driver-assigned':
            ctx.state.ride = { ...current, status: 'assigned', driver: m.driver };
            break;
          case 'picked-up':
            ctx.state.ride = { ...current, status: 'on-board' };
            break;
          case 'ride-completed':
            ctx.state.ride = undefined;
            ctx.state.completed = (ctx.state.completed ?? 0) + 1;
            break;
          case 'ride-failed':
            ctx.state.ride = undefined;
            ctx.state.failed = (ctx.state.failed ?? 0) + 1;
            break;
        }
      },
    },

    [RIDE]: {
      state: { ride: type.json<RideRecord>() },
      // Not `async`: only an accepted offer awaits (the fare). A returned promise parks the
      // invocation until it settles; every other message completes in the shard's own turn.
      fn(ctx, msg) {
        const m = msg.value as RideMessage;
        const id = ctx.self.id;
        if (m.kind === 'create') {
          // The fare task needs both ends in the city; refusing here keeps a bad trip from
          // failing only once a driver has accepted it.
          if (!inCity(m.to)) throw new Error(`ride ${id}: dropoff ${cellId(m.to)} is outside the city`);
          ctx.state.ride = { passenger: m.passenger, from: m.from, to: m.to, status: 'searching', requestedAt: Date.now(), searches: 1 };
          if (!findFrom(ctx, id, m.from, m.to, 0)) throw new Error(`ride ${id}: pickup ${cellId(m.from)} is outside the city`);
          return;
        }
        const ride = ctx.state.ride;
        if (ride === undefined) throw new Error(`ride ${id} got ${m.kind} before it was created`);
        const passenger = passengerAddress(ride.passenger);
        switch (m.kind) {
          case 'search':
            findFrom(ctx, id, ride.from, ride.to, 0);
            break;
          case 'no-driver':
            if (ride.searches >= MAX_SEARCHES) {
              ctx.state.ride = { ...ride, status: 'failed' };
              ctx.send(passenger, { kind: 'ride-failed', ride: id } satisfies PassengerMessage);
              ctx.egress(UNFULFILLED_RIDES, { ride: id, passenger: ride.passenger, from: ride.from, searches: ride.searches } satisfies UnfulfilledRide);
            } else {
              // Drivers move and finish rides: look again a little later, durably.
              ctx.state.ride = { ...ride, searches: ride.searches + 1 };
              ctx.sendAfter(searchBackoffMs(ride.searches), ctx.self, { kind: 'search' } satisfies RideMessage);
            }
            break;
          case 'declined':
            // The driver was taken by another ride meanwhile: the same cell may have another.
            findFrom(ctx, id, ride.from, ride.to, m.step);
            break;
          case 'accepted':
            return accept(ctx, id, ride, m);
          case 'picked-up':
            ctx.state.ride = { ...ride, status: 'in-progress', pickedUpAt: m.at };
            ctx.send(passenger, { kind: 'picked-up', ride: id } satisfies PassengerMessage);
            break;
          case 'dropped-off': {
            const done: RideRecord = { ...ride, status: 'completed', completedAt: m.at };
            ctx.state.ride = done;
            ctx.send(passenger, { kind: 'ride-completed', ride: id } satisfies PassengerMessage);
            ctx.egress(COMPLETED_RIDES, { ride: id, ...done } as CompletedRide);
            break;
          }
        }
      },
    },

    [GEO_CELL]: {
      state: { drivers: type.json<string[]>() },
      fn(ctx, msg) {
        const m = msg.value as CellMessage;
        const drivers = ctx.state.drivers ?? [];
        switch (m.kind) {
          case 'join':
            if (!drivers.includes(m.driver)) ctx.state.drivers = [...drivers, m.driver];
            break;
          case 'leave':
            if (drivers.includes(m.driver)) {
              const rest = drivers.filter((d) => d !== m.driver);
              ctx.state.drivers = rest.length > 0 ? rest : undefined;
            }
            break;
          case 'find': {
            const [driver, ...rest] = drivers;
            if (driver !== undefined) {
              // The driver is off the free list from now on; it confirms or declines.
              ctx.state.drivers = rest.length > 0 ? rest : undefined;
              ctx.send({ type: DRIVER, id: driver }, { kind: 'offer', ride: m.ride, from: m.from, to: m.to, step: m.step } satisfies DriverMessage);
            } else if (!findFrom(ctx, m.ride, m.from, m.to, m.step + 1)) {
              ctx.send(rideAddress(m.ride), { kind: 'no-driver' } satisfies RideMessage);
            }
            break;
          }
        }
      },
    },

    [DRIVER]: {
      state: {
        location: type.json<Point>(),
        /** The geo cell this driver is a member of; absent while on a ride. */
        cell: type.string(),
        ride: type.json<DriverRide>(),
        /** Rides completed. */
        rides: type.int(),
      },
      fn(ctx, msg) {
        const m = msg.value as DriverMessage;
        const me = ctx.self.id;
        switch (m.kind) {
          case 'location': {
            // On a ride the car follows the trip: the dropoff sets the location.
            if (ctx.state.ride !== undefined) return;
            const here = { x: m.x, y: m.y };
            ctx.state.location = here;
            const cell = cellId(here);
            const member = ctx.state.cell;
            if (member === cell) return;
            if (member !== undefined) ctx.send(cellAddress(member), { kind: 'leave', driver: me } satisfies CellMessage);
            ctx.send(cellAddress(cell), { kind: 'join', driver: me } satisfies CellMessage);
            ctx.state.cell = cell;
            break;
          }
          case 'offer': {
            const location = ctx.state.location;
            if (ctx.state.ride !== undefined || location === undefined) {
              ctx.send(rideAddress(m.ride), { kind: 'declined', step: m.step } satisfies RideMessage);
              return;
            }
            const member = ctx.state.cell;
            if (member !== undefined) ctx.send(cellAddress(member), { kind: 'leave', driver: me } satisfies CellMessage);
            ctx.state.cell = undefined;
            const trip = (ctx.state.rides ?? 0) + 1;
            ctx.state.ride = { id: m.ride, from: m.from, to: m.to, trip };
            ctx.send(rideAddress(m.ride), { kind: 'accepted', driver: me, trip, at: Date.now() } satisfies RideMessage);
            ctx.sendAfter(driveMs(location, m.from), ctx.self, { kind: 'at-pickup', ride: m.ride } satisfies DriverMessage);
            break;
          }
          case 'at-pickup': {
            const ride = ctx.state.ride;
            if (ride?.id !== m.ride) throw new Error(`driver ${me} arrived for ride ${m.ride} but drives ${ride?.id ?? 'none'}`);
            ctx.state.location = ride.from;
            ctx.send(rideAddress(ride.id), { kind: 'picked-up', at: Date.now() } satisfies RideMessage);
            ctx.sendAfter(driveMs(ride.from, ride.to), ctx.self, { kind: 'at-dropoff', ride: ride.id } satisfies DriverMessage);
            break;
          }
          case 'at-dropoff': {
            const ride = ctx.state.ride;
            if (ride?.id !== m.ride) throw new Error(`driver ${me} dropped off ride ${m.ride} but drives ${ride?.id ?? 'none'}`);
            ctx.state.location = ride.to;
            ctx.state.ride = undefined;
            ctx.state.rides = ride.trip;
            const cell = cellId(ride.to);
            ctx.state.cell = cell;
            ctx.send(cellAddress(cell), { kind: 'join', driver: me } satisfies CellMessage);
            ctx.send(rideAddress(ride.id), { kind: 'dropped-off', at: Date.now() } satisfies RideMessage);
            break;
          }
        }
      },
    },
  },
  egresses: [COMPLETED_RIDES, UNFULFILLED_RIDES],
  compute: new URL('./tasks.js', import.meta.url),
});
