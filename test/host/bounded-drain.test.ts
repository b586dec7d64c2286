/**
 * Main reads the shard→main rings one slice per macrotask (src/host/bounded-drain.ts): it stops
 * once the budget is spent (checked between frames), says when frames are left, and a ring the
 * budget skipped is read first next time (no ring starves). Real rings; the clock is the test's (each frame
 * read advances it), so nothing here depends on the machine's speed.
 */
import { describe, expect, it } from 'vitest';
import { BoundedDrain } from '../../src/host/bounded-drain.js';
import { Ring } from '../../src/transport/ring.js';

/** Rings holding `frames[s]` one-byte frames each, the byte being the frame's number. */
function rings(frames: number[]): Ring[] {
  return frames.map((n) => {
    const ring = Ring.create(64 * 1024);
    for (let i = 0; i < n; i++) expect(ring.tryWrite(new Uint8Array([i]))).toBe(true);
    ring.publish();
    return ring;
  });
}

/** A drain whose clock advances `msPerFrame` per frame read; returns what each slice read. */
function setup(budgetMs: number, msPerFrame: number) {
  let now = 0;
  const drain = new BoundedDrain(budgetMs, () => now);
  const read: Array<[shard: number, frame: number]> = [];
  const onFrame = (shard: number) => (bytes: Uint8Array, start: number) => {
    read.push([shard, bytes[start]!]);
    now += msPerFrame;
  };
  return { drain, read, onFrame };
}

describe('BoundedDrain', () => {
  it('reads every ring to its end within the budget, and says nothing is left', () => {
    const { drain, read, onFrame } = setup(1, 0.01);
    const rs = rings([3, 2]);
    expect(drain.slice(rs, onFrame, () => {})).toBe(false);
    expect(read).toEqual([[0, 0], [0, 1], [0, 2], [1, 0], [1, 1]]);
  });

  it('stops between frames once the budget is spent, and goes on where it stopped, each ring in order, the skipped ring first', () => {
    const { drain, read, onFrame } = setup(0.25, 0.1);
    const rs = rings([6, 4]);
    // 0.1 ms per frame, 0.25 ms per slice: three frames per slice.
    expect(drain.slice(rs, onFrame, () => {})).toBe(true);
    expect(read.splice(0)).toEqual([[0, 0], [0, 1], [0, 2]]);
    // Ring 1 was skipped: it goes first.
    expect(drain.slice(rs, onFrame, () => {})).toBe(true);
    expect(read.splice(0)).toEqual([[1, 0], [1, 1], [1, 2]]);
    expect(drain.slice(rs, onFrame, () => {})).toBe(true);
    expect(read.splice(0)).toEqual([[0, 3], [0, 4], [0, 5]]);
    expect(drain.slice(rs, onFrame, () => {})).toBe(false);
    expect(read.splice(0)).toEqual([[1, 3]]);
  });

  it('a ring its producer keeps full cannot starve the others', () => {
    const { drain, read, onFrame } = setup(0.25, 0.1);
    const rs = rings([10, 10]);
    for (let i = 0; i < 100; i++) {
      // Shard 0 adds three frames between slices: its ring is never empty.
      for (let j = 0; j < 3; j++) rs[0]!.tryWrite(new Uint8Array([100]));
      rs[0]!.publish();
      drain.slice(rs, onFrame, () => {});
    }
    expect(read.filter(([s]) => s === 1)).toHaveLength(10);
  });

  it('reads at least one frame per slice even when a frame alone takes longer than the budget', () => {
    const { drain, read, onFrame } = setup(0.25, 5);
    const rs = rings([2, 0]);
    expect(drain.slice(rs, onFrame, () => {})).toBe(true);
    expect(drain.slice(rs, onFrame, () => {})).toBe(false);
    expect(read).toEqual([[0, 0], [0, 1]]);
  });

  it('takes turns: with every ring read to its end, the next slice starts with the next ring', () => {
    const { drain, read, onFrame } = setup(10, 0.01);
    const rs = rings([1, 1]);
    drain.slice(rs, onFrame, () => {});
    for (const r of rs) {
      r.tryWrite(new Uint8Array([9]));
      r.publish();
    }
    drain.slice(rs, onFrame, () => {});
    expect(read).toEqual([[0, 0], [1, 0], [1, 9], [0, 9]]);
  });

  it("tells when a ring's producer asked for room and the slice freed some", () => {
    const { drain, onFrame } = setup(1, 0.01);
    const rs = rings([2, 0]);
    expect(rs[0]!.requestRoom(rs[0]!.maxFrameBytes)).toBe(false);
    const rang: number[] = [];
    drain.slice(rs, onFrame, (s) => rang.push(s));
    expect(rang).toEqual([0]);
  });
});
