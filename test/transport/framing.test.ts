import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { WeftError } from '../../src/errors.js';
import {
  FrameDecoder,
  FrameEncoder,
  MAX_VALUE_DEPTH,
  type MessageTuple,
  decodeBatch,
  encodeBatch,
  packValue,
  unpackValue,
} from '../../src/transport/framing.js';
import { Ring } from '../../src/transport/ring.js';

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

function tuple(i: number): MessageTuple {
  return [0, 'bank/account', `acct-${i}`, i % 2 ? 'bank/teller' : null, i % 2 ? `t-${i}` : null, 'bank/deposit', packValue({ amount: i })];
}

describe('batch frames', () => {
  it('round-trips a batch of message tuples', () => {
    const batch: MessageTuple[] = Array.from({ length: 300 }, (_, i) => tuple(i));
    batch.push([1, 'a/b', 'x', null, null, 'a/t', new Uint8Array(0), 42], [2, 'a/b', 'y', null, null, 'a/t', new Uint8Array(3), 'req-1']);
    const decoded = decodeBatch(encodeBatch(batch));
    // packValue returns Buffers; decoded payloads are plain Uint8Arrays.
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
    const scalar = fc.oneof(
      fc.string({ unit: 'grapheme', maxLength: 80 }),
      fc.string({ unit: 'binary', maxLength: 80 }),
      fc.integer(),
      // -0 is written as integer 0, by msgpackr and by FrameEncoder alike.
      fc.double().map((d) => (Object.is(d, -0) ? 0 : d)),
      fc.maxSafeInteger(),
      fc.boolean(),
      fc.constant(null),
      fc.uint8Array({ maxLength: 300 }),
    );
    const field = fc.oneof({ weight: 5, arbitrary: scalar }, { weight: 1, arbitrary: fc.array(scalar, { maxLength: 20 }) });
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
    expect(payloads.map((p) => unpackValue(p))).toEqual(batch.map((_, i) => ({ amount: i })));
    for (const p of payloads) {
      expect(p).toBeInstanceOf(Uint8Array);
      expect(p.buffer).not.toBeInstanceOf(SharedArrayBuffer);
    }
    // Two decodes of the same bytes never share memory either.
    const frame = encodeBatch(batch).slice();
    const a = decodeBatch(frame)[0]?.[6] as Uint8Array;
    const b = decodeBatch(frame)[0]?.[6] as Uint8Array;
    expect(a.buffer).not.toBe(b.buffer);
    expect(a.buffer).not.toBe(frame.buffer);
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

describe('packValue / unpackValue', () => {
  const roundTrips: Array<[string, unknown]> = [
    ['numbers', [0, -1, 1.5, 2 ** 53, -(2 ** 40), Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]],
    ['strings', ['', 'ascii', 'é😀', 'x'.repeat(1000)]],
    ['booleans and null', [true, false, null]],
    ['nested arrays and objects', { a: [1, { b: [2, [3]] }], 'odd key': { '': 0 } }],
    ['objects with a "constructor" key', { constructor: 'x', nested: JSON.parse('{"constructor": {"a": 1}}') as unknown }],
    ['undefined inside objects and arrays', { a: undefined, list: [1, undefined, 3] }],
    ['top-level undefined', undefined],
    ['Date', { at: new Date(1_700_000_000_123), before: new Date(-5_000), invalid: new Date(Number.NaN) }],
    ['Map with any keys', new Map<unknown, unknown>([[1, 'one'], ['k', { v: new Map([[{ obj: 'key' }, [1]]]) }], [null, true]])],
    ['Set', new Set([1, 'two', new Set([3])])],
    ['Maps inside Sets inside arrays', [new Set([new Map([['a', 1]])]), { m: new Map() }]],
    ['bigint', { small: 5n, negative: -5n, i64max: 2n ** 63n - 1n, u64: 2n ** 64n - 1n, huge: 2n ** 200n, neg: -(2n ** 100n) }],
    ['RegExp', /ab+c/gi],
    ['typed arrays', { f: new Float64Array([1.5, -2]), i: new Int32Array([-1, 2]), c: new Uint8ClampedArray([9]) }],
    ['ArrayBuffer and DataView', { ab: new Uint8Array([1, 2]).buffer, dv: new DataView(new Uint8Array([3, 4]).buffer) }],
  ];

  it.each(roundTrips)('round-trips %s', (_name, value) => {
    expect(unpackValue(packValue(value))).toEqual(value);
  });

  it('keeps Buffer as Buffer and Uint8Array as Uint8Array, copied out of the input', () => {
    const value = { buf: Buffer.from([1, 2, 3]), u8: new Uint8Array([4, 5]) };
    const bytes = packValue(value);
    const input = new Uint8Array(bytes);
    const out = unpackValue(input) as { buf: Buffer; u8: Uint8Array };
    expect(Buffer.isBuffer(out.buf)).toBe(true);
    expect(Buffer.isBuffer(out.u8)).toBe(false);
    expect(out.u8).toBeInstanceOf(Uint8Array);
    input.fill(0);
    expect([...out.buf]).toEqual([1, 2, 3]);
    expect([...out.u8]).toEqual([4, 5]);
  });

  it('keeps undefined as an own key', () => {
    const out = unpackValue(packValue({ a: undefined })) as object;
    expect(Object.keys(out)).toEqual(['a']);
  });

  it('decodes -0 as 0 and null-prototype objects as plain objects (documented)', () => {
    expect(Object.is(unpackValue(packValue(-0)), 0)).toBe(true);
    const bare = Object.assign(Object.create(null) as object, { a: 1 });
    const out = unpackValue(packValue(bare)) as object;
    expect(out).toEqual({ a: 1 });
    expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
  });

  it('decodes from shared memory', () => {
    const value = { text: 'long enough to leave the short-string path '.repeat(10), n: 1 };
    const bytes = packValue(value);
    const shared = new Uint8Array(new SharedArrayBuffer(bytes.length + 200), 200);
    shared.set(bytes);
    expect(unpackValue(shared)).toEqual(value);
  });

  it('returns bytes that later packs do not overwrite', () => {
    const first = packValue({ first: 1 });
    const copy = first.slice();
    for (let i = 0; i < 2000; i++) packValue({ filler: i, s: 'x'.repeat(100) });
    encodeBatch([[1, 'frame']]);
    expect(first).toEqual(copy);
  });

  class Account {
    balance = 1;
    deposit(): void {
      this.balance++;
    }
  }
  const circular: Record<string, unknown> = { list: [] };
  (circular.list as unknown[]).push({ back: circular });
  const deep: Record<string, unknown> = {};
  let cursor = deep;
  for (let i = 0; i < MAX_VALUE_DEPTH + 5; i++) cursor = cursor.next = {};
  const protoKey = JSON.parse('{"ok": 1, "__proto__": {"x": 1}}') as unknown;

  const failures: Array<[string, unknown, string, string?]> = [
    ['a nested function', { items: [1, 2, { cb: () => 1 }] }, 'message value.items[2].cb is a function', 'message value'],
    ['a top-level function', function named() {}, 'value is a function'],
    ['a symbol', { s: Symbol('x') }, 'value.s is a symbol'],
    ['a cycle', circular, 'value.list[0].back is a circular reference to value'],
    ['a class instance', { acct: new Account() }, 'value.acct is an instance of Account; only plain objects, arrays, Map, Set, Date, RegExp, typed arrays, ArrayBuffer and primitives are serializable'],
    ['an Error', [new TypeError('boom')], 'value[0] is an Error; errors are not serializable (stack and own properties would be lost): send { name, message } instead'],
    ['a WeakMap', { w: new WeakMap() }, 'value.w is an instance of WeakMap; only plain objects, arrays, Map, Set, Date, RegExp, typed arrays, ArrayBuffer and primitives are serializable'],
    ['a Promise', { p: Promise.resolve(1) }, 'value.p is an instance of Promise; only plain objects, arrays, Map, Set, Date, RegExp, typed arrays, ArrayBuffer and primitives are serializable'],
    ['a boxed string', { s: new String('s') }, 'value.s is an instance of String; only plain objects, arrays, Map, Set, Date, RegExp, typed arrays, ArrayBuffer and primitives are serializable'],
    ['a SharedArrayBuffer', { sab: new SharedArrayBuffer(8) }, 'value.sab is an instance of SharedArrayBuffer; only plain objects, arrays, Map, Set, Date, RegExp, typed arrays, ArrayBuffer and primitives are serializable'],
    ['an own __proto__ key', { nested: protoKey }, 'value.nested has an own "__proto__" key, which msgpack decoding would not restore'],
    ['a function as a Map value', new Map([['k', () => 1]]), 'value.get("k") is a function'],
    ['a function as a Map key', new Map<unknown, unknown>([[1, 1], [() => 1, 2]]), 'value.keys()[1] is a function'],
    ['a symbol in a Set', { s: new Set([1, Symbol('y')]) }, 'value.s.values()[1] is a symbol'],
    ['a fake constructor', { constructor: Array, length: 2 }, 'value.constructor is a function'],
    ['an odd key', { 'odd key': { 'x-y': Symbol('z') } }, 'value["odd key"]["x-y"] is a symbol'],
    ['deep nesting', deep, `value${'.next'.repeat(MAX_VALUE_DEPTH)} is nested more than ${MAX_VALUE_DEPTH} levels deep`],
  ];

  it.each(failures)('rejects %s, naming its path', (_name, value, message, label) => {
    const error = caught(() => (label === undefined ? packValue(value) : packValue(value, label)));
    expect(error.code).toBe('ERR_WEFT_UNSERIALIZABLE');
    expect(error.message).toBe(message);
  });

  it('accepts deep-but-allowed nesting and shared (acyclic) references', () => {
    const shared = { x: 1 };
    expect(unpackValue(packValue({ a: shared, b: [shared] }))).toEqual({ a: { x: 1 }, b: [{ x: 1 }] });
    let nested: unknown = 'leaf';
    for (let i = 0; i < MAX_VALUE_DEPTH - 1; i++) nested = [nested];
    expect(unpackValue(packValue(nested))).toEqual(nested);
  });

  it('ignores inherited enumerable properties, as msgpackr does', () => {
    const proto = Object.prototype as Record<string, unknown>;
    proto.polluted = () => 'nope';
    try {
      expect(unpackValue(packValue({ a: 1 }))).toEqual({ a: 1 });
    } finally {
      delete proto.polluted;
    }
  });

  it('rejects bytes that are not msgpack', () => {
    const error = caught(() => unpackValue(new Uint8Array([0xa5, 0x61])));
    expect(error.code).toBe('ERR_WEFT_CORRUPT_FRAME');
    expect(error.message).toBe('value of 2 bytes is not valid msgpack');
  });
});
