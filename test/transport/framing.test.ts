import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { WeftError } from '../../src/core/errors.js';
import {
  FrameDecoder,
  SMALL_FRAME_BYTES,
  FrameEncoder,
  type FrameRecord,
  decodeBatch,
  encodeBatch,
} from '../../src/transport/framing.js';
import { Ring } from '../../src/transport/ring.js';
import { frameField } from '../helpers/frame-fields.js';
import { fixedWriter, type, type FixedWriter, type ValueType } from '../../src/codec/types.js';

const reference = new Packr({ useRecords: false });

function caught(fn: () => unknown): WeftError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(WeftError);
    return error as WeftError;
  }
  throw new Error('expected a WeftError, nothing was thrown');
}

function tuple(i: number): FrameRecord {
  return [0, 'bank/account', `acct-${i}`, i % 2 ? 'bank/teller' : null, i % 2 ? `t-${i}` : null, 'bank/deposit', reference.pack({ amount: i })];
}

describe('batch frames', () => {
  it('round-trips a batch of message tuples', () => {
    const batch: FrameRecord[] = Array.from({ length: 300 }, (_, i) => tuple(i));
    batch.push([1, 'a/b', 'x', null, null, 'a/t', new Uint8Array(0), 42], [2, 'a/b', 'y', null, null, 'a/t', new Uint8Array(3), 'req-1']);
    const decoded = decodeBatch(encodeBatch(batch));
    // Packr returns Buffers; decoded payloads are plain Uint8Arrays.
    expect(decoded).toEqual(batch.map((t) => t.map((f) => (f instanceof Uint8Array ? new Uint8Array(f) : f))));
  });

  const edgeValues: unknown[] = [
    0, 1, 127, 128, 255, 256, 65_535, 65_536, 2 ** 32 - 1, 2 ** 32, 2 ** 53, -1, -32, -33, -128, -129, -32_768,
    -32_769, -(2 ** 31), -(2 ** 31) - 1, 1.5, -0.25, Number.NaN, Number.POSITIVE_INFINITY, -0, true, false, null,
    undefined, '', 'a', 'x'.repeat(31), 'x'.repeat(32), 'é'.repeat(20), 'é'.repeat(200), '😀 emoji', 'y'.repeat(70),
    'z'.repeat(256), 'w'.repeat(70_000), '\ud800 lone', `${'\ud800'.repeat(70)}`, new Uint8Array([1, 2, 3]),
    new Uint8Array(300), new Uint8Array(70_000), Buffer.from('buf'), [1, [2, [3, 'deep']]], { an: 'object', n: 1 },
    12n, new Date(0), Array.from({ length: 20 }, (_, i) => i),
  ];

  it('writes the same bytes msgpackr writes, for every kind of field', () => {
    const encoder = new FrameEncoder();
    for (const value of edgeValues) {
      const records = [[7, value]];
      expect(Buffer.from(encoder.encode(records)).equals(reference.pack(records)), String(value).slice(0, 40)).toBe(true);
    }
    const many = Array.from({ length: 70_000 }, (_, i) => [i]);
    expect(Buffer.from(encoder.encode(many)).equals(reference.pack(many))).toBe(true);
  });

  it('writes the same bytes msgpackr writes (property)', () => {
    const field = frameField;
    const encoder = new FrameEncoder();
    const decoder = new FrameDecoder();
    fc.assert(
      fc.property(fc.array(fc.array(field, { maxLength: 10 }), { maxLength: 40 }), (records) => {
        const frame = encoder.encode(records);
        expect(Buffer.from(frame).equals(reference.pack(records))).toBe(true);
        expect(decoder.decode(frame)).toEqual(records);
      }),
      { numRuns: 300 },
    );
  });

  it('decodes from ring memory into payloads that do not alias it', () => {
    const ring = Ring.create(1 << 16);
    const batch = Array.from({ length: 64 }, (_, i) => tuple(i));
    ring.tryWrite(encodeBatch(batch));
    ring.publish();
    let decoded: unknown[][] = [];
    ring.drain((frame) => {
      expect(frame.buffer).toBeInstanceOf(SharedArrayBuffer);
      decoded = decodeBatch(frame);
    });
    // The producer reuses the space: scribble over all of it.
    new Uint8Array(ring.buffer).fill(0xee);
    const payloads = decoded.map((t) => t[6] as Uint8Array);
    expect(payloads.map((p) => reference.unpack(p))).toEqual(batch.map((_, i) => ({ amount: i })));
    for (const p of payloads) {
      expect(p).toBeInstanceOf(Uint8Array);
      expect(p.buffer).not.toBeInstanceOf(SharedArrayBuffer);
    }
    // Two decodes of the same bytes never share memory, and no payload is a view of the frame
    // passed in: user code may keep one or transfer its buffer.
    const frame = encodeBatch(batch).slice();
    expect(frame.length).toBeGreaterThan(SMALL_FRAME_BYTES);
    const a = decodeBatch(frame)[0]?.[6] as Uint8Array;
    const b = decodeBatch(frame)[0]?.[6] as Uint8Array;
    expect(a.buffer).not.toBe(b.buffer);
    expect(a.buffer).not.toBe(frame.buffer);
    // A small frame (a message or two) is read in place: each of its payloads is a copy of its
    // own, so a kept payload keeps nothing else alive.
    const small = new FrameEncoder().encode([tuple(1), tuple(2)]).slice();
    expect(small.length).toBeLessThanOrEqual(SMALL_FRAME_BYTES);
    const [r1, r2] = decodeBatch(small);
    const c = r1?.[6] as Uint8Array;
    const c2 = r2?.[6] as Uint8Array;
    const d = decodeBatch(small)[0]?.[6] as Uint8Array;
    expect(c.buffer).not.toBe(d.buffer);
    expect(c.buffer).not.toBe(c2.buffer);
    expect(c.byteOffset).toBe(0);
    expect(c.buffer.byteLength).toBe(c.byteLength);
    expect(reference.unpack(c2)).toEqual({ amount: 2 });
    // Transferring one payload's buffer detaches nothing another decode returned, and the decoder
    // goes on.
    const own = c.buffer as ArrayBuffer;
    structuredClone(own, { transfer: [own] });
    expect(c.byteLength).toBe(0);
    expect(reference.unpack(d)).toEqual({ amount: 1 });
    expect(reference.unpack(decodeBatch(small)[0]?.[6] as Uint8Array)).toEqual({ amount: 1 });
  });

  it('decodes a small frame after a longer one, and refuses it truncated although its bytes go on after the cut', () => {
    const decoder = new FrameDecoder();
    const longer = new FrameEncoder().encode([tuple(1), tuple(2)]).slice();
    expect(longer.length).toBeLessThanOrEqual(SMALL_FRAME_BYTES);
    expect(decoder.decode(longer).length).toBe(2);
    const short = new FrameEncoder().encode([tuple(7)]).slice();
    expect(reference.unpack(decoder.decode(short)[0]?.[6] as Uint8Array)).toEqual({ amount: 7 });
    // Truncated: refused, although the rest of its bytes follow the cut in the same buffer (a frame
    // read in place is read up to its end only).
    for (let cut = 1; cut < short.length; cut++) expect(caught(() => decoder.decode(short.subarray(0, cut))).code).toBe('ERR_WEFT_CORRUPT_FRAME');
    // Large frames and small ones alternate.
    const big = new FrameEncoder().encode([[1, new Uint8Array(300_000).fill(9)]]).slice();
    const [[, bytes]] = decoder.decode(big) as [[number, Uint8Array]];
    expect(bytes.length).toBe(300_000);
    expect(bytes.every((x) => x === 9)).toBe(true);
    expect(reference.unpack(decoder.decode(short)[0]?.[6] as Uint8Array)).toEqual({ amount: 7 });
  });

  it('rejects every truncated frame and the empty frame, and goes on decoding', () => {
    const decoder = new FrameDecoder();
    const whole = new FrameEncoder().encode([[1, 2], [3, 4]]).slice();
    expect(decoder.decode(whole)).toEqual([[1, 2], [3, 4]]);
    for (let cut = 1; cut < whole.length; cut++) {
      const e = caught(() => decoder.decode(whole.subarray(0, cut)));
      expect(e.code).toBe('ERR_WEFT_CORRUPT_FRAME');
    }
    const empty = caught(() => decoder.decode(new Uint8Array(0)));
    expect(empty.message).toBe('frame of 0 bytes is not valid msgpack');
    // The decoder still works after the refusals.
    expect(decoder.decode(whole)).toEqual([[1, 2], [3, 4]]);
  });

  it('writes an array element by element, fixed-width values in place, as msgpackr writes the array', () => {
    const encoder = new FrameEncoder();
    const int = type.int() as ValueType<unknown>;
    const fixed = fixedWriter(int) as FixedWriter;
    encoder.startArray(5);
    encoder.append(1);
    encoder.append('two');
    encoder.appendFixed(fixed, 300);
    encoder.appendFixed(fixed, 0);
    encoder.append(1_796_000_000_123);
    expect(encoder.written()).toEqual(new Uint8Array(reference.pack([1, 'two', int.encode(300), int.encode(0), 1_796_000_000_123])));
    // Starting over forgets what was written.
    encoder.startArray(0);
    expect(encoder.written()).toEqual(new Uint8Array(reference.pack([])));
    const long = Array.from({ length: 40 }, (_, i) => i * 1000);
    encoder.startArray(long.length);
    for (const v of long) encoder.append(v);
    expect(encoder.written()).toEqual(new Uint8Array(reference.pack(long)));
  });

  it("appends [...head, another encoder's bytes] as msgpackr writes it, for every bin header size", () => {
    const outer = new FrameEncoder();
    const tail = new FrameEncoder();
    const heads: unknown[][] = [[], [7, 'bank/account', 'ünïcode'], Array.from({ length: 20 }, (_, i) => i)];
    for (const size of [0, 1, 16, 17, 255, 256, 65_535, 65_536, 70_000]) {
      tail.startArray(1);
      tail.append(new Uint8Array(size).fill(size & 0xff));
      const bytes = tail.written().slice();
      for (const head of heads) {
        outer.beginArray();
        outer.appendWith(head, tail);
        outer.append(1);
        const got = outer.endArray().slice();
        expect(reference.unpack(got.slice())).toEqual([[...head, bytes], 1]);
        // The same bytes append writes for the element as an array holding a view.
        outer.beginArray();
        outer.append([...head, bytes]);
        outer.append(1);
        expect(got).toEqual(outer.endArray());
      }
    }
    expect(() => outer.appendWith([], outer)).toThrow(/another encoder/);
  });

  it('reuses the encoder buffer (the frame is valid until the next encode)', () => {
    const encoder = new FrameEncoder();
    const first = encoder.encode([[1, 'one']]);
    const copy = first.slice();
    encoder.encode([[2, 'two']]);
    expect(first.buffer).toBe(encoder.encode([[3]]).buffer);
    expect(copy).toEqual(new Uint8Array(reference.pack([[1, 'one']])));
  });

  it('rejects bytes that are not a frame of records', () => {
    const e1 = caught(() => decodeBatch(new Uint8Array([0x92, 0x01])));
    expect(e1.code).toBe('ERR_WEFT_CORRUPT_FRAME');
    expect(e1.message).toBe('frame of 2 bytes is not valid msgpack');
    const e2 = caught(() => decodeBatch(reference.pack({ not: 'records' })));
    expect(e2.code).toBe('ERR_WEFT_CORRUPT_FRAME');
    expect(e2.message).toBe('frame decodes to {"not":"records"}, not an array of records');
    const e3 = caught(() => decodeBatch(reference.pack([[1], 'two'])));
    expect(e3.message).toBe('frame record 1 is "two", not an array');
  });
});
