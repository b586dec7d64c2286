/**
 * The city's geometry, shared by the functions (which run in the shard workers) and the
 * simulation (which runs on the main thread): a square grid of geo cells, the order in which a
 * ride searches the cells around its pickup point, and how long driving takes.
 */

/** The city is GRID × GRID geo cells; positions are cell coordinates. */
export const GRID = 16;

/** A ride looks for drivers at most this many cells away (Chebyshev distance) from the pickup. */
export const SEARCH_RADIUS = 3;

/** Driving time: a fixed part (getting going, parking) plus a part per cell of Manhattan distance. */
export const BASE_DRIVE_MS = 60;
export const MS_PER_CELL = 30;

export interface Point {
  readonly x: number;
  readonly y: number;
}

/** The id of the geo cell at `p`: `"x,y"`. */
export function cellId(p: Point): string {
  return `${p.x},${p.y}`;
}

export function inCity(p: Point): boolean {
  return Number.isInteger(p.x) && Number.isInteger(p.y) && p.x >= 0 && p.y >= 0 && p.x < GRID && p.y < GRID;
}

export function distance(a: Point, b: Point): number {
  return Math.abs(a.x - b.x) + Math.abs(a.y - b.y);
}

export function driveMs(a: Point, b: Point): number {
  return BASE_DRIVE_MS + MS_PER_CELL * distance(a, b);
}

/**
 * Offsets around a pickup point, nearest first: ring by ring (Chebyshev distance 0, 1, 2, ...),
 * Manhattan distance within a ring, then a fixed tie-break. Every function computes the same
 * order, so a search can be handed from cell to cell as just `(pickup, step)`.
 */
const SEARCH_OFFSETS: readonly Point[] = (() => {
  const out: Point[] = [];
  for (let dy = -SEARCH_RADIUS; dy <= SEARCH_RADIUS; dy++) {
    for (let dx = -SEARCH_RADIUS; dx <= SEARCH_RADIUS; dx++) out.push({ x: dx, y: dy });
  }
  const ring = (p: Point): number => Math.max(Math.abs(p.x), Math.abs(p.y));
  return out.sort((a, b) => ring(a) - ring(b) || distance(a, { x: 0, y: 0 }) - distance(b, { x: 0, y: 0 }) || a.y - b.y || a.x - b.x);
})();

/**
 * The first search step at or after `step` whose cell lies inside the city, with that cell; or
 * `undefined` when the search around `from` is exhausted.
 */
export function searchStep(from: Point, step: number): { step: number; cell: Point } | undefined {
  for (let s = step; s < SEARCH_OFFSETS.length; s++) {
    const o = SEARCH_OFFSETS[s]!;
    const cell = { x: from.x + o.x, y: from.y + o.y };
    if (inCity(cell)) return { step: s, cell };
  }
  return undefined;
}
