/**
 * FrameDecoder reads the values FrameEncoder writes itself straight from ring memory and leaves
 * every other frame to msgpackr (src/transport/framing.ts). Whatever the bytes, its answer must be
 * msgpackr's: the same records, or ERR_WEFT_CORRUPT_FRAME where msgpackr fails or finds no frame of
 * records. And the records must own their memory: the ring's bytes are overwritten after the drain.
 */
import fc from 'fast-check';
import { Packr, Unpackr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { WeftError } from '../../src/core/errors.js';
import { FrameDecoder, FrameEncoder, SMALL_FRAME_BYTES } from '../../src/transport/framing.js';
import { Ring } from '../../src/transport/ring.js';
import { frameField } from '../helpers/frame-fields.js';

const reference = new Packr({ useRecords: false });
const referenceDecoder = new Unpackr({ useRecords: false });

/** What msgpackr makes of `bytes` (a private copy): the records, or 'corrupt' where the decoder must refuse. */
function msgpackrVerdict(bytes: Uint8Array): unknown[][] | 'corrupt' {
  let out: unknown;
  try {
    out = referenceDecoder.unpack(new Uint8Array(bytes));
  } catch {
    return 'corrupt';
  }
  if (!Array.isArray(out) || !out.every((r) => Array.isArray(r))) return 'corrupt';
  return out as unknown[][];
}

/** What the decoder makes of `bytes` placed `offset` bytes into shared memory (as a ring holds them). */
function decoderVerdict(decoder: FrameDecoder, bytes: Uint8Array, offset: number): unknown[][] | 'corrupt' {
  const shared = new Uint8Array(new SharedArrayBuffer(offset + bytes.length + 16));
  shared.fill(0xee);
  shared.set(bytes, offset);
  try {
    const n = decoder.decodeAt(shared, offset, offset + bytes.length);
    const records = decoder.records.slice(0, n);
    // Overwrite the frame, as the producer does once the drain ends: the records keep their values.
    const kept = ownCopy(records);
    shared.fill(0xee);
    expect(records).toEqual(kept);
    return records as unknown[][];
  } catch (e) {
    expect(e).toBeInstanceOf(WeftError);
    expect((e as WeftError).code).toBe('ERR_WEFT_CORRUPT_FRAME');
    return 'corrupt';
  }
}

/** A deep copy that copies payloads into memory of their own (structuredClone would share a SharedArrayBuffer). */
function ownCopy(value: unknown): unknown {
  if (value instanceof Uint8Array) return Uint8Array.from(value);
  return Array.isArray(value) ? value.map(ownCopy) : value;
}

function payloadsOf(value: unknown, out: Uint8Array[] = []): Uint8Array[] {
  if (value instanceof Uint8Array) out.push(value);
  else if (Array.isArray(value)) for (const v of value) payloadsOf(v, out);
  return out;
}

function hasNonAscii(value: unknown): boolean {
  if (typeof value === 'string') return /[^\x00-\x7f]/.test(value);
  return Array.isArray(value) && value.some(hasNonAscii);
}

const field = frameField;
const records = fc.oneof(fc.array(fc.array(field, { maxLength: 10 }), { maxLength: 4 }), fc.array(fc.array(field, { maxLength: 10 }), { maxLength: 40, size: 'max' }));

describe('FrameDecoder', () => {
  it("decodes FrameEncoder's frames from shared memory as msgpackr does, in place unless a string goes beyond ASCII (property)", () => {
    const encoder = new FrameEncoder();
    const decoder = new FrameDecoder();
    fc.assert(
      fc.property(records, fc.nat(64), (recs, offset) => {
        const frame = encoder.encode(recs);
        const slowBefore = decoder.slowFrames;
        const out = decoderVerdict(decoder, frame, offset);
        expect(out).toEqual(msgpackrVerdict(frame));
        expect(out).toEqual(recs);
        // A small frame goes to msgpackr only for a string beyond ASCII.
        expect(decoder.slowFrames - slowBefore).toBe(frame.length <= SMALL_FRAME_BYTES && hasNonAscii(recs) ? 1 : 0);
        const payloads = payloadsOf(out);
        for (const p of payloads) expect(p.buffer).not.toBeInstanceOf(SharedArrayBuffer);
        // A small frame's payloads are copies of their own; a larger frame's share one private copy.
        if (frame.length <= SMALL_FRAME_BYTES) expect(new Set(payloads.map((p) => p.buffer)).size).toBe(payloads.length);
        else if (payloads.length > 0) expect(new Set(payloads.map((p) => p.buffer)).size).toBe(1);
      }),
      { numRuns: 400 },
    );
  });

  it('reads every number, string, binary and array format in place, at the bounds a small frame can hold', () => {
    const encoder = new FrameEncoder();
    const decoder = new FrameDecoder();
    const numbers = [0, 1, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, -1, -32, -33, -128, -129, -32768, -32769, -(2 ** 31), -(2 ** 31) - 1];
    const more = [0.5, -1.25, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, Number.MAX_VALUE, Number.MIN_VALUE, Infinity, -Infinity, NaN];
    const lengths = [0, 1, 15, 16, 17, 31, 32, 63, 64, 65, 255, 256, 600];
    const cases: unknown[][][] = [
      [numbers, more],
      [[true, false, null]],
      ...lengths.map((n) => [['abcdefghij'.repeat(Math.ceil(n / 10) + 1).slice(0, n)]]),
      ...lengths.map((n) => [[new Uint8Array(n).map((_, i) => i * 7)]]),
      [[new Array(15).fill(1), new Array(16).fill(2), new Array(300).fill(3)]],
      // The frame's own record count, beyond a fixarray.
      new Array(16).fill([1]),
      new Array(300).fill([2]),
    ];
    // The 32-bit headers, which FrameEncoder writes only for what no small frame holds: valid
    // msgpack all the same.
    const wide = Uint8Array.from([0x91, 0x93, 0xdb, 0, 0, 0, 3, 0x61, 0x62, 0x63, 0xc6, 0, 0, 0, 2, 1, 2, 0xdd, 0, 0, 0, 1, 0x05]);
    for (const recs of cases) {
      const frame = encoder.encode(recs).slice();
      expect(frame.length).toBeLessThanOrEqual(SMALL_FRAME_BYTES);
      expect(decoderVerdict(decoder, frame, 7)).toEqual(msgpackrVerdict(frame));
      expect(decoderVerdict(decoder, frame, 7)).toEqual(recs);
    }
    expect(decoderVerdict(decoder, wide, 7)).toEqual([['abc', new Uint8Array([1, 2]), [5]]]);
    expect(decoder.slowFrames).toBe(0);
    // Larger frames are msgpackr's; they decode the same.
    for (const recs of [[['x'.repeat(65536), new Uint8Array(65536)]], new Array(65536).fill([3])]) {
      const frame = encoder.encode(recs).slice();
      expect(decoderVerdict(decoder, frame, 7)).toEqual(recs);
    }
  });

  it('hands small frames with values only msgpackr writes (maps, 64-bit integers, extensions, float32) or strings beyond ASCII to msgpackr', () => {
    const decoder = new FrameDecoder();
    const float32 = new Packr({ useRecords: false, useFloat32: 1 });
    const frames = [
      reference.pack([[0, { amount: 3, who: 'ann' }]]),
      reference.pack([[1, 2n ** 60n, -(2n ** 60n)]]),
      reference.pack([[2, new Date(1_700_000_000_000)]]),
      float32.pack([[3, 1.5]]),
      reference.pack([[4, 'café']]),
      reference.pack([[4, `${'a'.repeat(70)}é`]]),
      reference.pack([[5, 'ok'], [6, [1, { deep: true }]]]),
    ];
    for (const [i, frame] of frames.entries()) {
      expect(decoderVerdict(decoder, frame, 3)).toEqual(msgpackrVerdict(frame));
      expect(decoder.slowFrames).toBe(i + 1);
    }
  });

  it('gives damaged frames the verdict msgpackr gives them: its records, or ERR_WEFT_CORRUPT_FRAME (property)', () => {
    const encoder = new FrameEncoder();
    const decoder = new FrameDecoder();
    const ascii = fc.array(fc.array(fc.oneof(fc.string({ unit: 'grapheme-ascii', maxLength: 100, size: 'max' }), fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.uint8Array({ maxLength: 40, size: 'max' })), { maxLength: 9 }), { minLength: 1, maxLength: 6 });
    fc.assert(
      fc.property(ascii, fc.array(fc.tuple(fc.nat(4096), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }), fc.nat(4096), fc.nat(32), (recs, edits, cut, offset) => {
        const frame = encoder.encode(recs).slice();
        const bytes = frame.slice(0, 1 + (cut % frame.length));
        for (const [at, v] of edits) bytes[at % bytes.length] = v;
        expect(decoderVerdict(decoder, bytes, offset)).toEqual(msgpackrVerdict(bytes));
      }),
      { numRuns: 3000 },
    );
    // Random bytes, too.
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 300, size: 'max' }), (bytes) => {
        expect(decoderVerdict(decoder, bytes, 1)).toEqual(msgpackrVerdict(bytes));
      }),
      { numRuns: 3000 },
    );
  });

  it('refuses an empty frame and a frame with bytes after its records, naming the size', () => {
    const decoder = new FrameDecoder();
    const shared = new Uint8Array(new SharedArrayBuffer(64));
    expect(() => decoder.decodeAt(shared, 5, 5)).toThrow(expect.objectContaining({ code: 'ERR_WEFT_CORRUPT_FRAME', message: 'frame of 0 bytes is not valid msgpack' }));
    const frame = new FrameEncoder().encode([[1, 2]]);
    shared.set(frame, 0);
    shared[frame.length] = 0x07;
    expect(() => decoder.decodeAt(shared, 0, frame.length + 1)).toThrow(expect.objectContaining({ code: 'ERR_WEFT_CORRUPT_FRAME', message: `frame of ${frame.length + 1} bytes is not valid msgpack` }));
    expect(decoder.decodeAt(shared, 0, frame.length)).toBe(1);
    expect(decoder.records).toEqual([[1, 2]]);
  });

  it('reuses the list of records, never the records: a longer frame leaves nothing behind in it', () => {
    const encoder = new FrameEncoder();
    const decoder = new FrameDecoder();
    const long = encoder.encode([[1, 'a'], [2, 'b'], [3, 'c']]).slice();
    expect(decoder.decodeAt(long, 0, long.length)).toBe(3);
    const first = decoder.records[0];
    const short = encoder.encode([[9, 'z']]).slice();
    expect(decoder.decodeAt(short, 0, short.length)).toBe(1);
    expect(decoder.records).toEqual([[9, 'z']]);
    expect(first).toEqual([1, 'a']);
    // decode() hands out an array of its own, and keeps no larger frame's records.
    const own = decoder.decode(long);
    decoder.decodeAt(short, 0, short.length);
    expect(own).toEqual([[1, 'a'], [2, 'b'], [3, 'c']]);
    const large = encoder.encode([[4, new Uint8Array(2 * SMALL_FRAME_BYTES)]]).slice();
    expect(decoder.decode(large)[0]![0]).toBe(4);
    expect(decoder.records.length).toBe(0);
  });

  it("lets go of a larger frame's records once released, and of everything when a frame is refused", () => {
    const encoder = new FrameEncoder();
    const decoder = new FrameDecoder();
    const large = encoder.encode([[1, new Uint8Array(4096)]]).slice();
    expect(decoder.decodeAt(large, 0, large.length)).toBe(1);
    const payload = decoder.records[0]![1] as Uint8Array;
    // Its payload views the frame's copy, which the list of records would keep alive.
    expect(payload.buffer.byteLength).toBeGreaterThan(payload.length);
    decoder.release();
    expect(decoder.records.length).toBe(0);
    expect(payload.length).toBe(4096);
    // A small frame's records hold nothing else: release() keeps them.
    const small = encoder.encode([[2, 'b'], [3, 'c']]).slice();
    expect(decoder.decodeAt(small, 0, small.length)).toBe(2);
    decoder.release();
    expect(decoder.records).toEqual([[2, 'b'], [3, 'c']]);
    // A refused frame leaves nothing behind: not the records read before the damage, nor the last frame's.
    const damaged = small.slice(0, small.length - 1);
    expect(() => decoder.decodeAt(damaged, 0, damaged.length)).toThrow(expect.objectContaining({ code: 'ERR_WEFT_CORRUPT_FRAME' }));
    expect(decoder.records.length).toBe(0);
  });

  it('reads frames in place from a ring through drainAt, also a frame split at the ring’s end', () => {
    const ring = Ring.create(4096);
    const encoder = new FrameEncoder();
    const decoder = new FrameDecoder();
    const shared = new Uint8Array(ring.buffer);
    const sent: unknown[][][] = [];
    const got: unknown[][][] = [];
    let inPlace = 0;
    let split = 0;
    const onFrame = (bytes: Uint8Array, start: number, end: number): void => {
      if (bytes.buffer === ring.buffer) inPlace++;
      else split++;
      const n = decoder.decodeAt(bytes, start, end);
      got.push(decoder.records.slice(0, n));
    };
    // Frames of ~100 bytes through a 4 KiB ring: about one in forty wraps around its end.
    for (let i = 0; i < 400; i++) {
      const recs = [[0, 3, `user-${i}`, null, null, 5, new Uint8Array(40).fill(i & 0xff), i, i + 1]];
      sent.push(recs);
      expect(ring.tryWrite(encoder.encode(recs))).toBe(true);
      ring.publish();
      expect(ring.drainAt(onFrame)).toBe(1);
    }
    expect(got).toEqual(sent);
    expect(split).toBeGreaterThan(0);
    expect(inPlace).toBeGreaterThan(split);
    expect(shared.buffer).toBe(ring.buffer);
    expect(decoder.slowFrames).toBe(0);
  });
});
