import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { WeftError } from '../../src/core/errors.js';
import { decodeBatch, encodeBatch } from '../../src/transport/framing.js';
import { Ring } from '../../src/transport/ring.js';

describe('fuzz: the frame decoder and the ring survive arbitrary bytes', () => {
  it('decodeBatch on random bytes returns tuples or throws ERR_WEFT_CORRUPT_FRAME, nothing else', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
        try {
          const out = decodeBatch(bytes);
          expect(Array.isArray(out)).toBe(true);
          for (const t of out) expect(Array.isArray(t)).toBe(true);
        } catch (e) {
          expect(e).toBeInstanceOf(WeftError);
          expect((e as WeftError).code).toBe('ERR_WEFT_CORRUPT_FRAME');
        }
      }),
      { numRuns: 5000 },
    );
  });

  it('decodeBatch on mutated real frames never throws anything but ERR_WEFT_CORRUPT_FRAME', () => {
    const frame = encodeBatch([
      [0, 'bank/account', 'acct-1', null, null, 'weft.types/msgpack', new Uint8Array([1, 2, 3]), 0, 7],
      [1, 42],
    ]);
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(frame.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }), fc.nat(frame.length), (edits, cut) => {
        const bytes = frame.slice(0, Math.max(1, cut));
        for (const [at, v] of edits) if (at < bytes.length) bytes[at] = v;
        try {
          decodeBatch(bytes);
        } catch (e) {
          expect((e as WeftError).code).toBe('ERR_WEFT_CORRUPT_FRAME');
        }
      }),
      { numRuns: 5000 },
    );
  });

  it('a ring whose memory is scribbled on reports corruption instead of misreading or hanging', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(4096 + 255), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 16 }), (scribbles) => {
        const ring = Ring.create(4096);
        for (let i = 0; i < 20; i++) ring.tryWrite(new Uint8Array(40).fill(i));
        ring.publish();
        const bytes = new Uint8Array(ring.buffer);
        for (const [at, v] of scribbles) bytes[at % bytes.length] = v;
        let frames = 0;
        try {
          // Bounded: a ring of 4 KiB cannot hold more than a few hundred frames.
          for (let round = 0; round < 1000 && ring.drain(() => frames++, 64) > 0; round++);
        } catch (e) {
          expect(e).toBeInstanceOf(WeftError);
          expect(['ERR_WEFT_CORRUPT_FRAME', 'ERR_WEFT_INVALID_ARG']).toContain((e as WeftError).code);
        }
        expect(frames).toBeLessThanOrEqual(4096 / 8);
      }),
      { numRuns: 2000 },
    );
  });
});
