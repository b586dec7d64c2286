/**
 * How the suite drives weft (and the baselines) — the parts every workload shares.
 *
 * Fire-and-forget throughput: the host issues sends in a loop and yields to its event loop every
 * {@link CHUNK} sends, as a service taking requests from I/O would; weft's ingress backpressure
 * decides how far the host runs ahead. Two figures per run:
 *   - processed: from the first send until `weft.idle()` — every message invoked;
 *   - acknowledged: until every `send()` promise resolved — every message part of a committed
 *     checkpoint (so it includes the checkpoint interval and the commit after the last message).
 *
 * Request latency: an OPEN-LOOP generator. Request i is due at t0 + i / rate; the generator
 * issues every due request, and a request's latency runs from its DUE time, not from when the
 * generator got round to it, so a stalled engine (or a stalled generator) shows up as latency
 * instead of silently lowering the offered load (coordinated omission). Between due times the
 * generator spins the main thread's event loop with setImmediate (no timer is finer than ~1 ms),
 * so it takes CPU from the shard threads on a 2-core machine: the latency figures include that.
 */
import type { Address, Weft } from '../../src/index.js';
import { yieldToLoop } from './stats.js';

/** Sends between yields of the host loop. */
export const CHUNK = 4096;

export interface FireTimes {
  processedMs: number;
  ackedMs: number;
}

/** Where message i goes: an index into a prepared address list, or a function of i. */
export type Targets = readonly Address[] | ((i: number) => Address);

/**
 * Workload (a)'s host side: `n` fire-and-forget sends of `value`, message i to `targets[(offset
 * + i) % length]` (or `targets(offset + i)`). With `forceCheckpoint` (engines started with
 * checkpointIntervalMs 0, where nothing commits by itself) the acknowledged time includes one
 * `weft.checkpoint()` after idle. `yieldEvery` 0: the host never yields while it sends (a tight
 * loop: every send beyond what the rings take waits in memory).
 */
export async function fireWeft(weft: Weft, targets: Targets, n: number, value: unknown, offset = 0, forceCheckpoint = false, yieldEvery = CHUNK): Promise<FireTimes> {
  // One promise is shared by all sends of a shard's batch; throttled sends get their own.
  const acks = new Set<Promise<void>>();
  const at = typeof targets === 'function' ? targets : (i: number): Address => targets[i % targets.length] as Address;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    acks.add(weft.send(at(offset + i), value));
    if (yieldEvery > 0 && i % yieldEvery === yieldEvery - 1) await yieldToLoop();
  }
  await weft.idle();
  const processedMs = performance.now() - t0;
  if (forceCheckpoint) await weft.checkpoint();
  await Promise.all(acks);
  return { processedMs, ackedMs: performance.now() - t0 };
}

export interface LatencyRun {
  /** Offered rate, requests per second. */
  rate: number;
  requests: number;
  /** Latencies from due time, µs, ascending. */
  sortedMicros: Float64Array;
  /** Requests actually completed per second over the run. */
  achievedRate: number;
  /** Largest lag of the generator behind a due time, µs (how late it issued). */
  maxIssueLagMicros: number;
}

/**
 * What an open loop tells an observer (the tail probe, tail-probe.ts), times on the generator's
 * clock (`performance.now()`).
 */
export interface OpenLoopObserver {
  /** Request `i`, due at `due`, was issued at `at`. */
  issued(i: number, due: number, at: number): void;
  /** Request `i`'s promise resolved with `value` at `at`. */
  done(i: number, value: unknown, at: number): void;
  /**
   * A turn of the generator ran from `start` to `end`; the next one is due at `next` (a timer's
   * time when it sleeps on one, else `end`: it spins).
   */
  turn(start: number, end: number, next: number): void;
}

/**
 * Open-loop: `rate` requests per second for `durationMs`, latency from each request's due time.
 * An `observer` hears of every request and every turn of the generator.
 */
export function openLoop(request: (i: number) => Promise<unknown>, rate: number, durationMs: number, observer?: OpenLoopObserver): Promise<LatencyRun> {
  const total = Math.max(1, Math.floor((durationMs * rate) / 1000));
  const interval = 1000 / rate;
  const lat = new Float64Array(total);
  return new Promise<LatencyRun>((resolve, reject) => {
    let issued = 0;
    let completed = 0;
    let maxLag = 0;
    const t0 = performance.now() + 1;
    const done = (): void => {
      const elapsed = performance.now() - t0;
      lat.sort();
      resolve({ rate, requests: total, sortedMicros: lat, achievedRate: total / (elapsed / 1000), maxIssueLagMicros: maxLag * 1000 });
    };
    const tick = (): void => {
      const t = performance.now();
      while (issued < total) {
        const due = t0 + issued * interval;
        if (due > t) break;
        if (t - due > maxLag) maxLag = t - due;
        const i = issued++;
        observer?.issued(i, due, performance.now());
        request(i).then((value) => {
          const at = performance.now();
          lat[i] = (at - due) * 1000;
          observer?.done(i, value, at);
          if (++completed === total) done();
        }, reject);
      }
      const end = performance.now();
      let next = end;
      if (issued < total) {
        const wait = t0 + issued * interval - end;
        if (wait > 3) {
          next = end + wait - 2;
          setTimeout(tick, wait - 2);
        } else setImmediate(tick);
      }
      observer?.turn(t, end, next);
    };
    tick();
  });
}

/**
 * Closed loop with `concurrency` requests always in flight for `durationMs`: the most requests
 * per second the system completes (the reference for the open-loop rates).
 */
export function maxRequestRate(request: (i: number) => Promise<unknown>, concurrency: number, durationMs: number): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    let issued = 0;
    let completed = 0;
    let inFlight = 0;
    const t0 = performance.now();
    const stopAt = t0 + durationMs;
    let stopped = false;
    const issue = (): void => {
      inFlight++;
      request(issued++).then(() => {
        inFlight--;
        completed++;
        if (!stopped && performance.now() >= stopAt) stopped = true;
        if (!stopped) issue();
        else if (inFlight === 0) resolve(completed / ((performance.now() - t0) / 1000));
      }, reject);
    };
    for (let i = 0; i < concurrency; i++) issue();
  });
}

export interface PacedRun {
  requests: number;
  /** Latencies from issue, µs, ascending. */
  sortedMicros: Float64Array;
}

/**
 * Light load: a closed loop of ONE request, the next issued `intervalMs` after the previous one
 * was due (at once if it answered later than that), for `durationMs`; latency from issue. The
 * service is idle between requests, so this measures waking up as much as working.
 */
export async function pacedClosedLoop(request: (i: number) => Promise<unknown>, intervalMs: number, durationMs: number): Promise<PacedRun> {
  const total = Math.max(1, Math.floor(durationMs / intervalMs));
  const lat = new Float64Array(total);
  const t0 = performance.now();
  for (let i = 0; i < total; i++) {
    const wait = t0 + i * intervalMs - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    const t = performance.now();
    await request(i);
    lat[i] = (performance.now() - t) * 1000;
  }
  lat.sort();
  return { requests: total, sortedMicros: lat };
}

/**
 * Light load for several systems in turn: `rounds` rounds, in each of which every system, in
 * order, runs {@link pacedClosedLoop} for `durationMs / rounds` (after `settleMs[0]` unmeasured in
 * the first round, `settleMs[1]` in the others). A stall of the machine lasting seconds then
 * falls into one slice of each system's run instead of into all of one system's, so the systems'
 * figures compare the same minutes. Returns each system's latencies, pooled.
 */
export async function interleavedPaced(
  requests: ReadonlyArray<(i: number) => Promise<unknown>>,
  intervalMs: number,
  durationMs: number,
  rounds: number,
  settleMs: readonly [first: number, others: number],
): Promise<PacedRun[]> {
  if (!Number.isInteger(rounds) || rounds < 1) throw new RangeError(`rounds must be a positive integer (got ${String(rounds)})`);
  const slices: PacedRun[][] = requests.map(() => []);
  for (let round = 0; round < rounds; round++) {
    for (let k = 0; k < requests.length; k++) {
      const request = requests[k] as (i: number) => Promise<unknown>;
      const settle = settleMs[round === 0 ? 0 : 1];
      if (settle > 0) await pacedClosedLoop(request, intervalMs, settle);
      (slices[k] as PacedRun[]).push(await pacedClosedLoop(request, intervalMs, durationMs / rounds));
    }
  }
  return slices.map(pooled);
}

/** `runs` as one: every latency, ascending. */
export function pooled(runs: readonly PacedRun[]): PacedRun {
  let total = 0;
  for (const r of runs) total += r.requests;
  const lat = new Float64Array(total);
  let at = 0;
  for (const r of runs) {
    lat.set(r.sortedMicros, at);
    at += r.requests;
  }
  lat.sort();
  return { requests: total, sortedMicros: lat };
}
