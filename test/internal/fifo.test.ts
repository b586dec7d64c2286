import fc from 'fast-check';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { COMPACT_FROM, Fifo, KEEP_SLOTS, SHRINK_FROM } from '../../src/internal/fifo.js';

/** One operation on a queue and on an array standing for it. */
type Op =
  | { op: 'push'; n: number }
  | { op: 'shift'; n: number }
  | { op: 'peek' }
  | { op: 'at'; i: number }
  | { op: 'includes'; v: number }
  | { op: 'retain'; mod: number }
  | { op: 'clear' }
  | { op: 'toArray' };

// Runs of pushes and shifts long enough to pass COMPACT_FROM and KEEP_SLOTS, interleaved.
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ op: fc.constant('push' as const), n: fc.integer({ min: 1, max: 3 * COMPACT_FROM }) }) },
  { weight: 6, arbitrary: fc.record({ op: fc.constant('shift' as const), n: fc.integer({ min: 1, max: 3 * COMPACT_FROM }) }) },
  // Bursts past SHRINK_FROM (and past the largest keep the test gives), to reach the shrink path.
  { weight: 1, arbitrary: fc.record({ op: fc.constant('push' as const), n: fc.integer({ min: SHRINK_FROM, max: 3 * SHRINK_FROM }) }) },
  { weight: 1, arbitrary: fc.constant({ op: 'peek' as const }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('at' as const), i: fc.integer({ min: -2, max: 4 * COMPACT_FROM }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('includes' as const), v: fc.integer({ min: 0, max: 2000 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('retain' as const), mod: fc.integer({ min: 1, max: 4 }) }) },
  { weight: 1, arbitrary: fc.constant({ op: 'clear' as const }) },
  { weight: 1, arbitrary: fc.constant({ op: 'toArray' as const }) },
);

describe('Fifo', () => {
  it('behaves as an array used as a queue, across interleaved pushes, takes, compactions and rewinds', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 80 }), fc.constantFrom(0, 100, 3 * COMPACT_FROM, 2 * SHRINK_FROM), (ops, keep) => {
        const q = new Fifo<number>(keep);
        const model: number[] = [];
        let next = 0;
        for (const o of ops) {
          switch (o.op) {
            case 'push':
              for (let k = 0; k < o.n; k++) {
                q.push(next);
                model.push(next++);
              }
              break;
            case 'shift':
              for (let k = 0; k < o.n; k++) expect(q.shift()).toBe(model.shift());
              break;
            case 'peek':
              expect(q.peek()).toBe(model[0]);
              break;
            case 'at':
              expect(q.at(o.i)).toBe(o.i < 0 ? undefined : model[o.i]);
              break;
            case 'includes':
              expect(q.includes(o.v)).toBe(model.includes(o.v));
              break;
            case 'retain': {
              q.retain((v) => v % o.mod === 0);
              const kept = model.filter((v) => v % o.mod === 0);
              model.length = 0;
              model.push(...kept);
              break;
            }
            case 'clear':
              q.clear();
              model.length = 0;
              break;
            case 'toArray':
              expect(q.toArray()).toEqual(model);
              break;
          }
          expect(q.size).toBe(model.length);
          // An emptied queue holds at most what it may keep.
          if (model.length === 0) expect(q.capacity).toBeLessThanOrEqual(Math.max(keep, KEEP_SLOTS));
        }
        expect(q.toArray()).toEqual(model);
      }),
      { numRuns: 300 },
    );
  });

  it('holds no taken item: taken slots are cleared, also across compactions and rewinds', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const q = new Fifo<object>();
    const taken: Array<WeakRef<object>> = [];
    const waiting: Array<WeakRef<object>> = [];
    // Items are made and taken in a function of their own, so no local variable holds them.
    const round = (pushes: number, shifts: number): void => {
      for (let k = 0; k < pushes; k++) {
        const o = { k };
        q.push(o);
        waiting.push(new WeakRef(o));
      }
      for (let k = 0; k < shifts; k++) {
        expect(q.shift()).toBe(waiting[0]!.deref());
        taken.push(waiting.shift()!);
      }
    };
    round(10, 3); // taken slots behind the head
    round(3 * COMPACT_FROM, 2 * COMPACT_FROM); // the array grows, then most of it is taken
    round(1, 0); // the array is full: the waiting items move to the front
    round(0, q.size - 5); // most of what waits, moved or not
    // WeakRef targets live until the current job ends.
    await new Promise((resolve) => setImmediate(resolve));
    gc();
    expect(taken.filter((r) => r.deref() !== undefined)).toHaveLength(0);
    expect(waiting.filter((r) => r.deref() !== undefined)).toHaveLength(5);
    expect(q.size).toBe(5);
  });

  it('made with keep slots, holds no item its kept array held: not after takes, clear() or an emptying retain()', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const gone: Array<WeakRef<object>> = [];
    const kept: Array<WeakRef<object>> = [];
    // Items are made in a function of their own, so no local variable holds them.
    const fill = (q: Fifo<object>, n: number, into: Array<WeakRef<object>>): void => {
      for (let k = 0; k < n; k++) {
        const o = { k };
        q.push(o);
        into.push(new WeakRef(o));
      }
    };
    // Each queue empties with its array kept (within keep), then takes two items: whatever the
    // emptying left in the slots past those two would still be held.
    const cleared = new Fifo<object>(4 * SHRINK_FROM);
    fill(cleared, 2 * SHRINK_FROM, gone);
    for (let k = 0; k < SHRINK_FROM; k++) cleared.shift();
    cleared.clear();
    expect(cleared.capacity).toBeGreaterThan(KEEP_SLOTS);
    fill(cleared, 2, kept);
    const retained = new Fifo<object>(4 * SHRINK_FROM);
    fill(retained, 2 * SHRINK_FROM, gone);
    retained.retain(() => false);
    expect(retained.capacity).toBeGreaterThan(KEEP_SLOTS);
    fill(retained, 2, kept);
    const partly = new Fifo<object>(4 * SHRINK_FROM);
    fill(partly, 2 * SHRINK_FROM, gone);
    partly.retain((o) => (o as { k: number }).k < 2); // keeps the first two
    kept.push(...gone.splice(-2 * SHRINK_FROM, 2));
    await new Promise((resolve) => setImmediate(resolve));
    gc();
    expect(gone.filter((r) => r.deref() !== undefined)).toHaveLength(0);
    expect(kept.filter((r) => r.deref() !== undefined)).toHaveLength(6);
    expect([cleared.size, retained.size, partly.size]).toEqual([2, 2, 2]);
  });

  it('keeps a small array when emptied and drops one a burst grew', () => {
    const q = new Fifo<number>();
    for (let i = 0; i < KEEP_SLOTS; i++) q.push(i);
    for (let i = 0; i < KEEP_SLOTS; i++) q.shift();
    expect(q.size).toBe(0);
    expect(q.capacity).toBe(KEEP_SLOTS);
    for (let i = 0; i < 10 * KEEP_SLOTS; i++) q.push(i);
    for (let i = 0; i < 10 * KEEP_SLOTS; i++) expect(q.shift()).toBe(i);
    expect(q.capacity).toBe(0);
    expect(q.shift()).toBeUndefined();
    expect(q.peek()).toBeUndefined();
  });

  it('gives back the array a burst grew once few items wait, also when it never empties', () => {
    // The queues it replaced (mailboxes, runnable addresses, host acks, the egress window)
    // compacted into a new array as they drained: a hot mailbox or the host-ack list behind a
    // slow invocation did not keep a burst's array while traffic went on.
    const q = new Fifo<number>();
    for (let i = 0; i < 100_000; i++) q.push(i);
    let next = 0;
    let outOfOrder = 0;
    while (q.size > 10) if (q.shift() !== next++) outOfOrder++;
    for (let i = 100_000; i < 100_000 + 4 * COMPACT_FROM; i++) {
      q.push(i);
      if (q.shift() !== next++) outOfOrder++;
    }
    expect(outOfOrder).toBe(0);
    expect(q.size).toBe(10);
    expect(q.toArray()).toEqual(Array.from({ length: 10 }, (_, k) => next + k));
    expect(q.capacity).toBeLessThanOrEqual(16 * KEEP_SLOTS);
  });

  it('does not grow its array when items flow through it steadily', () => {
    const q = new Fifo<number>();
    for (let i = 0; i < 100; i++) q.push(i);
    let capacity = 0;
    let outOfOrder = 0;
    for (let i = 100; i < 20_000; i++) {
      q.push(i);
      if (q.shift() !== i - 100) outOfOrder++;
      if (i === 1000) capacity = q.capacity;
    }
    expect(outOfOrder).toBe(0);
    expect(q.size).toBe(100);
    expect(q.capacity).toBe(capacity);
    expect(capacity).toBeLessThanOrEqual(2 * (100 + COMPACT_FROM) + 1);
  });

  it('made with keep slots, keeps its array through fill-and-drain cycles instead of growing a new one each time', () => {
    // Main's resend log: frames kept for a checkpoint interval, then the commit releases nearly
    // all of them. With the default, every low gave the array back and the next high grew a new
    // one slot by slot (arrays that lived until a commit: main's scavenges copied them).
    const cycle = (q: Fifo<number>): { low: number; ends: number[] } => {
      let low = Number.POSITIVE_INFINITY;
      const ends: number[] = [];
      for (let round = 0; round < 20; round++) {
        for (let i = 0; i < 3000; i++) {
          q.push(i);
          low = Math.min(low, q.capacity);
        }
        ends.push(q.capacity);
        while (q.size > 100) q.shift();
      }
      return { low, ends };
    };
    const kept = new Fifo<number>(8192);
    for (let i = 0; i < 3000; i++) kept.push(i);
    const after = cycle(kept);
    expect(after.low).toBeGreaterThanOrEqual(3000);
    // It grew once (3,100 wait at each high), then kept that array.
    expect(new Set(after.ends.slice(1)).size).toBe(1);
    // The default lets a drained array go at each low (what a burst should do).
    const plain = new Fifo<number>();
    for (let i = 0; i < 3000; i++) plain.push(i);
    expect(cycle(plain).low).toBeLessThan(SHRINK_FROM);
  });

  it('made with keep slots, still lets go of a burst beyond them, and keeps them when it empties', () => {
    const q = new Fifo<number>(2 * SHRINK_FROM);
    for (let i = 0; i < 100_000; i++) q.push(i);
    let next = 0;
    while (q.size > 10) expect(q.shift()).toBe(next++);
    for (let i = 100_000; i < 100_000 + 4 * COMPACT_FROM; i++) {
      q.push(i);
      expect(q.shift()).toBe(next++);
    }
    expect(q.capacity).toBeLessThanOrEqual(2 * SHRINK_FROM);
    while (q.size > 0) expect(q.shift()).toBe(next++);
    for (let i = 0; i < SHRINK_FROM; i++) q.push(i);
    const capacity = q.capacity;
    while (q.size > 0) q.shift();
    // Emptied: an array of up to `keep` slots stays (the default keeps KEEP_SLOTS).
    expect(q.capacity).toBe(capacity);
    expect(capacity).toBeGreaterThan(KEEP_SLOTS);
  });

  it('refuses a keep that is not a non-negative integer, naming it', () => {
    expect(() => new Fifo(-1)).toThrow(/keep must be a non-negative integer \(got -1\)/);
    expect(() => new Fifo(1.5)).toThrow(/got 1\.5/);
  });
});
