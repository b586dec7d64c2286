import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { expectWeftError } from '../helpers/index.js';
import {
  FRAME_HEADER_BYTES,
  RING_DATA_OFFSET,
  RING_HEAD_I32,
  RING_TAIL_I32,
  frameFootprint,
} from '../../src/transport/layout.js';
import { Ring } from '../../src/transport/ring.js';

/** Frame `seq` of `length` bytes: byte k is `(seq * 131 + k) & 255` — any misplaced byte shows. */
function makeFrame(seq: number, length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let k = 0; k < length; k++) bytes[k] = (seq * 131 + k) & 255;
  return bytes;
}

function drainAll(ring: Ring, maxFrames?: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  ring.drain((frame) => out.push(frame.slice()), maxFrames);
  return out;
}

describe('Ring: frames', () => {
  it('carries frames in order, including empty ones, and reports fill', () => {
    const ring = Ring.create(4096);
    expect(ring.capacity).toBe(4096);
    expect(ring.maxFrameBytes).toBe(4096 - FRAME_HEADER_BYTES);
    expect(ring.isEmpty()).toBe(true);
    expect(ring.tryWrite(makeFrame(1, 10))).toBe(true);
    expect(ring.tryWrite(new Uint8Array(0))).toBe(true);
    expect(ring.tryWrite(makeFrame(3, 100))).toBe(true);
    // Staged but not published: invisible to the consumer.
    expect(ring.stagedBytes).toBe(frameFootprint(10) + frameFootprint(0) + frameFootprint(100));
    expect(ring.hasData()).toBe(false);
    expect(drainAll(ring)).toEqual([]);
    expect(ring.publish()).toBe(true);
    expect(ring.publish()).toBe(false);
    expect(ring.hasData()).toBe(true);
    expect(ring.usedBytes()).toBe(frameFootprint(10) + frameFootprint(0) + frameFootprint(100));
    expect(ring.fillRatio()).toBeCloseTo(ring.usedBytes() / 4096);
    expect(drainAll(ring, 2)).toEqual([makeFrame(1, 10), new Uint8Array(0)]);
    expect(drainAll(ring)).toEqual([makeFrame(3, 100)]);
    expect(ring.isEmpty()).toBe(true);
    expect(ring.usedBytes()).toBe(0);
  });

  it('writes a region of a larger buffer without slicing it', () => {
    const ring = Ring.create(64);
    const source = makeFrame(7, 40);
    expect(ring.tryWrite(source, 5, 25)).toBe(true);
    ring.publish();
    expect(drainAll(ring)).toEqual([source.slice(5, 25)]);
  });

  it('fits a frame of exactly maxFrameBytes when empty, at any position', () => {
    const ring = Ring.create(256);
    for (let shift = 0; shift < 256; shift += 8) {
      const frame = makeFrame(shift, ring.maxFrameBytes);
      expect(ring.tryWrite(frame)).toBe(true);
      expect(ring.tryWrite(new Uint8Array(0))).toBe(false);
      ring.publish();
      expect(drainAll(ring)).toEqual([frame]);
      // Move the start by 8 bytes for the next round so the big frame wraps at every offset.
      expect(ring.tryWrite(new Uint8Array(0))).toBe(true);
      ring.publish();
      expect(drainAll(ring)).toEqual([new Uint8Array(0)]);
    }
  });

  it('reports a full ring with tryWrite false and writes nothing', () => {
    const ring = Ring.create(128);
    let written = 0;
    while (ring.tryWrite(makeFrame(written, 20))) written++;
    expect(written).toBe(128 / frameFootprint(20));
    const before = ring.stagedBytes;
    expect(ring.tryWrite(makeFrame(99, 1))).toBe(false);
    expect(ring.stagedBytes).toBe(before);
    ring.publish();
    const frames = drainAll(ring);
    expect(frames).toEqual(Array.from({ length: written }, (_, i) => makeFrame(i, 20)));
  });

  it('counts a frame whose handler throws as consumed and frees its space', () => {
    const ring = Ring.create(256);
    for (let i = 0; i < 3; i++) ring.tryWrite(makeFrame(i, 16));
    ring.publish();
    const seen: number[] = [];
    expect(() =>
      ring.drain((frame) => {
        seen.push(frame[0] ?? -1);
        if (seen.length === 2) throw new Error('handler failed');
      }),
    ).toThrow('handler failed');
    expect(seen).toEqual([makeFrame(0, 1)[0], makeFrame(1, 1)[0]]);
    expect(drainAll(ring)).toEqual([makeFrame(2, 16)]);
    expect(ring.usedBytes()).toBe(0);
  });

  it('raises and takes the waiting-for-room flag (single thread)', () => {
    const ring = Ring.create(64);
    expect(ring.tryWrite(makeFrame(0, 41))).toBe(true); // footprint 56 of 64
    expect(ring.tryWrite(makeFrame(1, 8))).toBe(false); // footprint 16
    // Staged frames must be published (and the consumer rung) before asking for room.
    expectWeftError(
      () => ring.requestRoom(8),
      'ERR_WEFT_INTERNAL',
      'requestRoom() with 56 staged bytes: publish() them and ring the consumer first',
    );
    ring.publish();
    expect(ring.requestRoom(8)).toBe(false);
    expect(ring.hasData()).toBe(true);
    expect(ring.takeRoomRequest()).toBe(true);
    expect(ring.takeRoomRequest()).toBe(false);
    expect(ring.requestRoom(8)).toBe(false);
    expect(drainAll(ring)).toEqual([makeFrame(0, 41)]);
    expect(ring.takeRoomRequest()).toBe(true);
    // With room available requestRoom says so and lowers the flag again.
    expect(ring.requestRoom(8)).toBe(true);
    expect(ring.takeRoomRequest()).toBe(false);
    expect(ring.tryWrite(makeFrame(1, 8))).toBe(true);
  });

  it('attaches a second Ring object to the same memory', () => {
    const producer = Ring.create(1024);
    const consumer = Ring.attach(producer.buffer);
    producer.tryWrite(makeFrame(1, 33));
    producer.publish();
    expect(consumer.hasData()).toBe(true);
    expect(drainAll(consumer)).toEqual([makeFrame(1, 33)]);
    // A Ring attached mid-stream starts at the current indices.
    const late = new Ring(producer.buffer);
    expect(late.isEmpty()).toBe(true);
    expect(late.usedBytes()).toBe(0);
  });
});

describe('Ring.recycle', () => {
  it('empties a used ring (unread frames, a raised room flag) for a new pair', () => {
    const old = Ring.create(256);
    for (let seq = 0; seq < 5; seq++) expect(old.tryWrite(makeFrame(seq, 40))).toBe(true);
    old.publish();
    expect(drainAll(old, 2)).toHaveLength(2);
    expect(old.tryWrite(makeFrame(9, 120))).toBe(false);
    expect(old.requestRoom(120)).toBe(false);
    const ring = Ring.recycle(old.buffer);
    expect(ring.buffer).toBe(old.buffer);
    expect(ring.isEmpty()).toBe(true);
    expect(ring.usedBytes()).toBe(0);
    expect(ring.takeRoomRequest()).toBe(false);
    const consumer = Ring.attach(ring.buffer);
    for (let seq = 10; seq < 13; seq++) expect(ring.tryWrite(makeFrame(seq, 70))).toBe(true);
    ring.publish();
    expect(drainAll(consumer)).toEqual([makeFrame(10, 70), makeFrame(11, 70), makeFrame(12, 70)]);
  });

  it('refuses a buffer that is not a ring', () => {
    expectWeftError(() => Ring.recycle(new SharedArrayBuffer(1024)), 'ERR_WEFT_INVALID_ARG', /has no ring header/);
  });
});

describe('Ring: property', () => {
  type Op = { kind: 'write'; size: number } | { kind: 'publish' } | { kind: 'drain'; max: number };
  const capacity = 4096;
  const size = fc.oneof(
    fc.integer({ min: 0, max: 64 }),
    fc.integer({ min: capacity / 2 - 64, max: capacity / 2 }),
    fc.integer({ min: 0, max: capacity / 2 }),
  );
  const op: fc.Arbitrary<Op> = fc.oneof(
    { weight: 6, arbitrary: size.map((s) => ({ kind: 'write' as const, size: s })) },
    { weight: 2, arbitrary: fc.constant({ kind: 'publish' as const }) },
    { weight: 2, arbitrary: fc.integer({ min: 1, max: 8 }).map((max) => ({ kind: 'drain' as const, max })) },
  );

  it('delivers every frame intact and in order across random writes, publishes and drains', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: capacity / 8 - 1 }), fc.array(op, { maxLength: 200 }), (shift, ops) => {
        const ring = Ring.create(capacity);
        // Start the stream at a random aligned offset so wrap points land everywhere.
        if (shift > 0) ring.tryWrite(new Uint8Array(shift * 8 - FRAME_HEADER_BYTES));
        ring.publish();
        drainAll(ring);
        let used = 0; // bytes staged or published, not drained (model)
        let nextSeq = 0;
        const staged: Uint8Array[] = [];
        const published: Uint8Array[] = [];
        for (const o of ops) {
          if (o.kind === 'write') {
            const frame = makeFrame(nextSeq, o.size);
            const fits = frameFootprint(o.size) <= capacity - used;
            expect(ring.tryWrite(frame)).toBe(fits);
            if (fits) {
              nextSeq++;
              used += frameFootprint(o.size);
              staged.push(frame);
            }
          } else if (o.kind === 'publish') {
            expect(ring.publish()).toBe(staged.length > 0);
            published.push(...staged.splice(0));
          } else {
            const got = drainAll(ring, o.max);
            const want = published.splice(0, o.max);
            expect(got).toEqual(want);
            for (const f of want) used -= frameFootprint(f.length);
          }
          expect(ring.usedBytes()).toBe(used - ring.stagedBytes);
        }
        ring.publish();
        published.push(...staged.splice(0));
        expect(drainAll(ring)).toEqual(published);
        expect(ring.isEmpty()).toBe(true);
      }),
      { numRuns: 300 },
    );
  });
});

describe('Ring: errors', () => {
  it('rejects a frame that could never fit, naming the sizes', () => {
    const ring = Ring.create(4096);
    expectWeftError(
      () => ring.tryWrite(new Uint8Array(4089)),
      'ERR_WEFT_FRAME_TOO_LARGE',
      'frame of 4089 bytes does not fit a ring of capacity 4096 bytes (at most 4088 bytes per frame)',
    );
    expectWeftError(
      () => ring.hasRoomFor(5000),
      'ERR_WEFT_FRAME_TOO_LARGE',
      'frame of 5000 bytes does not fit a ring of capacity 4096 bytes (at most 4088 bytes per frame)',
    );
    expect(ring.tryWrite(new Uint8Array(4088))).toBe(true);
  });

  it('detects a scribbled frame header instead of misreading it', () => {
    const ring = Ring.create(1024);
    ring.tryWrite(makeFrame(0, 24));
    ring.tryWrite(makeFrame(1, 24));
    ring.publish();
    // Scribble the length of the second frame (it starts after the first one's footprint).
    const second = RING_DATA_OFFSET + frameFootprint(24);
    new Uint8Array(ring.buffer)[second] = 25;
    const seen: Uint8Array[] = [];
    expectWeftError(
      () => ring.drain((f) => seen.push(f.slice())),
      'ERR_WEFT_CORRUPT_FRAME',
      /^corrupt frame header at ring index 32 \(data offset 32\): length 25, check 0x[0-9a-f]{8} \(expected 0x[0-9a-f]{8}\), 32 bytes published from there, at most 1016 bytes per frame$/,
    );
    // The frame before the corrupt one was delivered and consumed; the ring stays stuck after it.
    expect(seen).toEqual([makeFrame(0, 24)]);
    expect(() => ring.drain(() => undefined)).toThrow(/corrupt frame header at ring index 32/);
  });

  it('detects a header with a valid-looking huge length', () => {
    const ring = Ring.create(1024);
    ring.tryWrite(makeFrame(0, 8));
    ring.publish();
    const words = new Int32Array(ring.buffer, RING_DATA_OFFSET, 2);
    words[0] = 0x7fffffff;
    words[1] = 0;
    expectWeftError(() => ring.drain(() => undefined), 'ERR_WEFT_CORRUPT_FRAME', /length 2147483647/);
  });

  it('detects a stale header from an earlier lap', () => {
    const ring = Ring.create(64);
    ring.tryWrite(makeFrame(0, 8)); // index 0, footprint 16
    ring.publish();
    drainAll(ring);
    const staleHeader = new Int32Array(ring.buffer, RING_DATA_OFFSET, 2).slice();
    for (let i = 0; i < 3; i++) ring.tryWrite(makeFrame(i + 1, 8)); // indices 16, 32, 48
    ring.publish();
    drainAll(ring);
    ring.tryWrite(makeFrame(9, 8)); // index 64, data offset 0 again
    ring.publish();
    new Int32Array(ring.buffer, RING_DATA_OFFSET, 2).set(staleHeader);
    expectWeftError(() => ring.drain(() => undefined), 'ERR_WEFT_CORRUPT_FRAME', /at ring index 64 \(data offset 0\)/);
  });

  it('detects a corrupt head or tail index', () => {
    const ring = Ring.create(64);
    const ctl = new Int32Array(ring.buffer, 0, RING_DATA_OFFSET / 4);
    Atomics.store(ctl, RING_HEAD_I32, 4096);
    expectWeftError(
      () => ring.drain(() => undefined),
      'ERR_WEFT_CORRUPT_FRAME',
      'corrupt ring head index 4096: 4096 bytes ahead of tail 0 in a ring of capacity 64',
    );
    Atomics.store(ctl, RING_HEAD_I32, 0);
    const producer = Ring.attach(ring.buffer);
    producer.tryWrite(makeFrame(0, 8));
    producer.publish();
    // The tail may only move forward, up to what was published (16): 24 and -8 are both outside.
    Atomics.store(ctl, RING_TAIL_I32, 24);
    expectWeftError(
      () => producer.hasRoomFor(1),
      'ERR_WEFT_CORRUPT_FRAME',
      'corrupt ring tail index 24: outside the range from 0 (last seen) to 16 (published)',
    );
    Atomics.store(ctl, RING_TAIL_I32, -8);
    expectWeftError(
      () => producer.hasRoomFor(1),
      'ERR_WEFT_CORRUPT_FRAME',
      'corrupt ring tail index 4294967288: outside the range from 0 (last seen) to 16 (published)',
    );
  });
});

describe('Ring: argument validation', () => {
  it.each([
    [100, 'ring capacity must be a power of two from 64 to 1073741824 bytes (got 100)'],
    [32, 'ring capacity must be a power of two from 64 to 1073741824 bytes (got 32)'],
    [2 ** 31, 'ring capacity must be a power of two from 64 to 1073741824 bytes (got 2147483648)'],
    [-64, 'ring capacity must be a power of two from 64 to 1073741824 bytes (got -64)'],
    [64.5, 'ring capacity must be a power of two from 64 to 1073741824 bytes (got 64.5)'],
    ['4096', 'ring capacity must be a power of two from 64 to 1073741824 bytes (got "4096")'],
  ])('Ring.create(%j)', (capacity, message) => {
    expectWeftError(() => Ring.create(capacity as number), 'ERR_WEFT_INVALID_ARG', message);
  });

  it('rejects buffers that are not rings', () => {
    expectWeftError(
      () => Ring.attach(new ArrayBuffer(1024) as unknown as SharedArrayBuffer),
      'ERR_WEFT_INVALID_ARG',
      'ring buffer must be a SharedArrayBuffer (got ArrayBuffer {})',
    );
    expectWeftError(
      () => Ring.attach(new SharedArrayBuffer(100)),
      'ERR_WEFT_INVALID_ARG',
      'ring buffer must be at least 320 bytes (got 100)',
    );
    expectWeftError(
      () => Ring.attach(new SharedArrayBuffer(1024)),
      'ERR_WEFT_INVALID_ARG',
      'ring buffer has no ring header (magic 0x00000000, expected 0x52544657); create it with Ring.create',
    );
    const grown = new SharedArrayBuffer(RING_DATA_OFFSET + 128);
    new Uint8Array(grown).set(new Uint8Array(Ring.create(64).buffer));
    expectWeftError(
      () => Ring.attach(grown),
      'ERR_WEFT_INVALID_ARG',
      'ring header says capacity 64, which does not match a buffer of 384 bytes',
    );
    const future = Ring.create(64).buffer;
    new Int32Array(future)[1] = 2;
    expectWeftError(() => Ring.attach(future), 'ERR_WEFT_INVALID_ARG', 'ring layout version 2 is not supported (expected 1)');
  });

  it('rejects a region outside the source', () => {
    const ring = Ring.create(64);
    expectWeftError(
      () => ring.tryWrite(new Uint8Array(10), 4, 12),
      'ERR_WEFT_INVALID_ARG',
      'frame range [4, 12) is not inside a source of Uint8Array(10)',
    );
    expectWeftError(
      () => ring.tryWrite(new Uint8Array(10), 6, 2),
      'ERR_WEFT_INVALID_ARG',
      'frame range [6, 2) is not inside a source of Uint8Array(10)',
    );
  });
});
