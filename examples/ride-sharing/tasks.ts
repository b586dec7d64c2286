/**
 * The ride-sharing module's compute file: stateless tasks that a function runs with
 * `ctx.compute(name, input)` on weft's compute pool, off the shard threads. They must be pure:
 * recovery re-runs a task when it replays the message whose invocation called it, and check.ts
 * calls {@link fare} directly to verify the fares the rides recorded.
 *
 * The fare comes from a route through the city's streets. Each geo cell (city.ts) is
 * {@link BLOCKS} × {@link BLOCKS} street blocks, so the street grid has (16·4)² = 4,096
 * intersections; entering one costs a travel time that depends on its cell's traffic and on the
 * street. A* finds the quickest route from the middle of the pickup cell to the middle of the
 * dropoff cell, and the fare is a flag fall plus a rate per block and per started minute.
 * That is a few hundred microseconds of CPU per ride: too much to do on a shard that serves
 * thousands of other addresses, the right size for the pool.
 */
import { GRID, cellId, inCity, type Point } from './city.js';

/** Street blocks along each side of a geo cell. */
export const BLOCKS = 4;
/** Intersections along each side of the city. */
const SIDE = GRID * BLOCKS;

/** Pricing, in cents: integers, so the check compares fares exactly. */
export const FLAG_FALL_CENTS = 250;
export const CENTS_PER_BLOCK = 30;
export const CENTS_PER_MINUTE = 45;

/** Seconds to drive through one free-flowing block; traffic multiplies it. */
const BLOCK_SECONDS = 12;
/** The lowest cost of entering an intersection (traffic 1, no street delay): A*'s heuristic per block. */
const MIN_STEP_SECONDS = BLOCK_SECONDS;

export interface FareInput {
  from: Point;
  to: Point;
}

export interface Fare {
  /** What the passenger pays. */
  cents: number;
  /** Length of the quickest route, in street blocks. */
  blocks: number;
  /** Its driving time with the traffic of the day. */
  seconds: number;
}

/** FNV-1a over a string: a stable hash, the same on every thread and every run. */
function hash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * Traffic of a cell, 1 (free) to 6 (jammed): derived from the cell id, so every thread agrees
 * without sharing data. Downtown (the middle 4 × 4 cells, where a third of the trips start and
 * end in main.ts) is busier, which makes the quickest route go round it rather than through.
 */
function cellTraffic(x: number, y: number): number {
  const c = GRID / 2;
  const downtown = x >= c - 2 && x < c + 2 && y >= c - 2 && y < c + 2 ? 2 : 0;
  return 1 + (hash(cellId({ x, y })) % 4) + downtown;
}

/**
 * The cost in seconds of entering each intersection, computed once per thread: its cell's traffic
 * times a block, plus a delay of its own (lights, turns) from a hash of its position. Avenues,
 * the streets along cell borders, have no lights between cells and half the delay.
 */
const STEP_SECONDS: Uint16Array = (() => {
  const cost = new Uint16Array(SIDE * SIDE);
  for (let j = 0; j < SIDE; j++) {
    for (let i = 0; i < SIDE; i++) {
      const traffic = cellTraffic(Math.floor(i / BLOCKS), Math.floor(j / BLOCKS));
      const avenue = i % BLOCKS === 0 || j % BLOCKS === 0;
      const delay = hash(`${i}:${j}`) % (avenue ? 5 : 10);
      cost[j * SIDE + i] = BLOCK_SECONDS * traffic + delay;
    }
  }
  return cost;
})();

/** The intersection in the middle of a geo cell: where a ride starts and ends. */
function hub(p: Point): number {
  const mid = BLOCKS >> 1;
  return (p.y * BLOCKS + mid) * SIDE + (p.x * BLOCKS + mid);
}

/**
 * A binary min-heap of intersections ordered by estimated total cost, then by index: the tie-break
 * makes the route (and so the fare) the same on every run, whichever thread computes it.
 */
class OpenSet {
  readonly #nodes: number[] = [];
  readonly #key: Float64Array;

  constructor(key: Float64Array) {
    this.#key = key;
  }

  get size(): number {
    return this.#nodes.length;
  }

  #less(a: number, b: number): boolean {
    const ka = this.#key[a]!;
    const kb = this.#key[b]!;
    return ka < kb || (ka === kb && a < b);
  }

  push(n: number): void {
    const h = this.#nodes;
    let i = h.push(n) - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.#less(h[i]!, h[parent]!)) break;
      [h[i], h[parent]] = [h[parent]!, h[i]!];
      i = parent;
    }
  }

  pop(): number {
    const h = this.#nodes;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let min = i;
        if (l < h.length && this.#less(h[l]!, h[min]!)) min = l;
        if (r < h.length && this.#less(h[r]!, h[min]!)) min = r;
        if (min === i) break;
        [h[i], h[min]] = [h[min]!, h[i]!];
        i = min;
      }
    }
    return top;
  }
}

/**
 * The quickest route between two intersections: A* over the street grid with the Manhattan
 * distance times the cheapest step as heuristic (it never overestimates, so the route found is
 * the quickest). Stale heap entries are skipped instead of decreased in place.
 */
function route(start: number, goal: number): { blocks: number; seconds: number } {
  const n = SIDE * SIDE;
  const cost = new Float64Array(n).fill(Number.POSITIVE_INFINITY);
  const estimate = new Float64Array(n);
  const blocks = new Int32Array(n);
  const done = new Uint8Array(n);
  const gx = goal % SIDE;
  const gy = Math.floor(goal / SIDE);
  const h = (v: number): number => MIN_STEP_SECONDS * (Math.abs((v % SIDE) - gx) + Math.abs(Math.floor(v / SIDE) - gy));
  const open = new OpenSet(estimate);
  cost[start] = 0;
  estimate[start] = h(start);
  open.push(start);
  while (open.size > 0) {
    const v = open.pop();
    if (done[v] === 1) continue;
    if (v === goal) return { blocks: blocks[v]!, seconds: cost[v]! };
    done[v] = 1;
    const x = v % SIDE;
    const neighbours = [x > 0 ? v - 1 : -1, x < SIDE - 1 ? v + 1 : -1, v - SIDE, v + SIDE];
    for (const w of neighbours) {
      if (w < 0 || w >= n || done[w] === 1) continue;
      const c = cost[v]! + STEP_SECONDS[w]!;
      if (c < cost[w]!) {
        cost[w] = c;
        blocks[w] = blocks[v]! + 1;
        estimate[w] = c + h(w);
        open.push(w);
      }
    }
  }
  // The grid is connected: every goal is reached.
  throw new Error(`no route from intersection ${start} to ${goal}`);
}

/**
 * The fare of a ride from `from` to `to` (geo cells): the quickest route through the streets,
 * priced by length and driving time. A ride within one cell still pays the flag fall.
 *
 * @example
 * ```ts
 * const quote = await ctx.compute<Fare>('fare', { from: { x: 2, y: 2 }, to: { x: 5, y: 2 } });
 * ```
 */
export function fare(input: FareInput): Fare {
  const { from, to } = input;
  if (!inCity(from) || !inCity(to)) throw new RangeError(`fare: ${JSON.stringify(input)} is not a trip inside the ${GRID}x${GRID} city`);
  const r = route(hub(from), hub(to));
  return { cents: FLAG_FALL_CENTS + CENTS_PER_BLOCK * r.blocks + CENTS_PER_MINUTE * Math.ceil(r.seconds / 60), blocks: r.blocks, seconds: r.seconds };
}
