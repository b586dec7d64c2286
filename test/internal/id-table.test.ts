import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IdTable } from '../../src/internal/id-table.js';

/** One operation on a table and on a Map standing for it. */
type Op = { op: 'add'; gap: number } | { op: 'setLow'; back: number } | { op: 'delete'; back: number } | { op: 'deleteOldest' } | { op: 'deleteNewest'; n: number } | { op: 'get'; back: number } | { op: 'clear' };

// Mostly increasing ids with gaps (ids taken by queries), deletes near the newest and of the
// oldest (replies, timeouts), sometimes an id below the newest set late, and runs of deletes of
// the newest that empty the window while older entries wait as stragglers.
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 8, arbitrary: fc.record({ op: fc.constant('add' as const), gap: fc.integer({ min: 1, max: 40 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('setLow' as const), back: fc.integer({ min: 1, max: 300 }) }) },
  { weight: 5, arbitrary: fc.record({ op: fc.constant('delete' as const), back: fc.integer({ min: 0, max: 300 }) }) },
  { weight: 2, arbitrary: fc.constant({ op: 'deleteOldest' as const }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('deleteNewest' as const), n: fc.integer({ min: 1, max: 80 }) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('get' as const), back: fc.integer({ min: 0, max: 400 }) }) },
  { weight: 1, arbitrary: fc.constant({ op: 'clear' as const }) },
);

describe('IdTable', () => {
  it('behaves as a Map of its ids: set, get, delete, size, entries (window first in id order)', () => {
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 1, maxLength: 600 }), fc.constantFrom([4, 16], [8, 64], [64, 65_536]), (ops, [initial, max]) => {
        const t = new IdTable<string>(initial, max);
        const model = new Map<number, string>();
        let next = 0;
        let peak = 0;
        for (const o of ops) {
          switch (o.op) {
            case 'add':
              next += o.gap;
              t.set(next, `v${next}`);
              model.set(next, `v${next}`);
              break;
            case 'setLow': {
              const id = Math.max(0, next - o.back);
              t.set(id, `low${id}`);
              model.set(id, `low${id}`);
              break;
            }
            case 'delete': {
              const id = next - o.back;
              expect(t.delete(id)).toBe(model.delete(id));
              break;
            }
            case 'deleteOldest': {
              const oldest = Math.min(...model.keys());
              if (Number.isFinite(oldest)) expect(t.delete(oldest)).toBe(model.delete(oldest));
              break;
            }
            case 'deleteNewest':
              for (const id of [...model.keys()].sort((a, b) => b - a).slice(0, o.n)) expect(t.delete(id)).toBe(model.delete(id));
              break;
            case 'get':
              expect(t.get(next - o.back)).toBe(model.get(next - o.back));
              break;
            case 'clear':
              t.clear();
              model.clear();
              break;
          }
          expect(t.size).toBe(model.size);
          peak = Math.max(peak, model.size);
          // Past maxSlots the window grows only while half its slots are in use.
          expect(t.capacity).toBeLessThanOrEqual(Math.max(max, 4 * peak));
          // Emptied (answered, or cleared), a grown window is back at maxSlots at most.
          if (model.size === 0) expect(t.capacity).toBeLessThanOrEqual(max);
        }
        const entries = [...t.entries()];
        expect(new Map(entries)).toEqual(model);
        expect(entries.length).toBe(model.size);
        // The stragglers come first; the window's entries last, in increasing id order.
        const window = entries.slice(t.stragglers);
        expect(window.map(([id]) => id)).toEqual([...window.map(([id]) => id)].sort((a, b) => a - b));
      }),
      { numRuns: 300 },
    );
  });

  it('keeps an entry that waits past maxSlots later ids as a straggler, and the window no larger', () => {
    const t = new IdTable<number>(4, 16);
    t.set(1, 1);
    for (let id = 2; id < 1000; id++) {
      t.set(id, id);
      t.delete(id);
    }
    expect(t.capacity).toBe(16);
    expect(t.stragglers).toBe(1);
    expect(t.get(1)).toBe(1);
    expect(t.size).toBe(1);
    expect(t.delete(1)).toBe(true);
    expect(t.size).toBe(0);
    expect(t.get(1)).toBeUndefined();
  });

  it('grows the window while the ids in use span more slots than it has', () => {
    const t = new IdTable<number>(4, 1024);
    for (let id = 1; id <= 100; id++) t.set(id, id);
    expect(t.capacity).toBe(128);
    expect(t.stragglers).toBe(0);
    for (let id = 1; id <= 100; id++) expect(t.get(id)).toBe(id);
  });

  it('grows past maxSlots for a backlog every id of which waits, and shrinks back as it is answered', () => {
    const t = new IdTable<number>(4, 16);
    for (let id = 1; id <= 1000; id++) t.set(id, id);
    expect(t.capacity).toBe(1024);
    expect(t.stragglers).toBe(0);
    for (let id = 1; id <= 1000; id++) expect(t.get(id)).toBe(id);
    for (let id = 1; id <= 600; id++) expect(t.delete(id)).toBe(true);
    // 400 ids in use span under half of the 1024 slots, not yet a quarter.
    expect(t.capacity).toBe(1024);
    for (let id = 601; id <= 997; id++) expect(t.delete(id)).toBe(true);
    expect(t.capacity).toBe(16);
    expect([...t.entries()]).toEqual([
      [998, 998],
      [999, 999],
      [1000, 1000],
    ]);
    for (let id = 998; id <= 1000; id++) t.delete(id);
    expect(t.size).toBe(0);
    expect(t.capacity).toBe(16);
  });

  it('keeps a sparse window at maxSlots: an old entry among later ones becomes a straggler, a backlog after it grows the window', () => {
    const t = new IdTable<number>(4, 16);
    t.set(1, 1);
    // Every other id answered at once: a quarter of a window of 16 or more is in use.
    for (let id = 2; id <= 200; id++) {
      t.set(id, id);
      if (id % 2 === 0 || id < 190) t.delete(id);
    }
    expect(t.capacity).toBe(16);
    expect(t.stragglers).toBe(1);
    for (let id = 201; id <= 300; id++) t.set(id, id);
    expect(t.capacity).toBe(128);
    expect(t.stragglers).toBe(1);
    expect(t.size).toBe(1 + 5 + 100);
    expect(t.get(1)).toBe(1);
    expect(t.get(191)).toBe(191);
    t.clear();
    expect(t.capacity).toBe(16);
    expect(t.size).toBe(0);
  });

  it('holds an id once when it is set again below an emptied window (found by a review)', () => {
    const t = new IdTable<string>(4, 4);
    for (let id = 10; id <= 14; id++) t.set(id, `v${id}`); // 10 leaves the 4-slot window
    for (let id = 11; id <= 14; id++) t.delete(id);
    t.set(8, 'v8');
    t.set(11, 'v11');
    expect(t.get(10)).toBe('v10');
    t.set(10, 'again');
    expect(t.size).toBe(3);
    expect([...t.entries()].filter(([id]) => id === 10)).toEqual([[10, 'again']]);
    expect(t.delete(10)).toBe(true);
    expect(t.get(10)).toBeUndefined();

    const u = new IdTable<string>(4, 64);
    u.set(1, 'a');
    u.set(0, 'b');
    u.delete(1);
    u.set(0, 'c');
    expect(u.size).toBe(1);
    expect([...u.entries()]).toEqual([[0, 'c']]);
  });

  it('finds nothing under an id that is not an integer, and refuses to set one', () => {
    const t = new IdTable<string>(4, 64);
    t.set(1, 'one');
    expect(t.get(1.5)).toBeUndefined();
    expect(t.delete(1.5)).toBe(false);
    expect(t.get(Number.NaN)).toBeUndefined();
    expect(t.size).toBe(1);
    expect(() => t.set(2.5, 'x')).toThrow(/got 2.5/);
    expect(() => t.set(-1, 'x')).toThrow(/got -1/);
  });

  it('refuses sizes that are not powers of two, naming them', () => {
    expect(() => new IdTable(3, 16)).toThrow(/got 3, 16/);
    expect(() => new IdTable(16, 8)).toThrow(/got 16, 8/);
    expect(() => new IdTable(0, 8)).toThrow(RangeError);
  });
});
