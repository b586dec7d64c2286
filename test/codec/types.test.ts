/**
 * Value types: every built-in round-trips, and the StateFun primitives are byte-for-byte what the
 * official StateFun JS SDK (apache-flink-statefun 3.3.0, the dev dependency) produces, with the two
 * documented exceptions (float ties, -0), each pinned by its own test.
 */
import { createRequire } from 'node:module';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Packr } from 'msgpackr';
import { LIMITS } from '../../src/core/address.js';
import { WeftError } from '../../src/core/errors.js';
import { BUILTIN_TYPES, DEFAULT_TYPE, TYPENAMES, boundEncoder, fixedWriter, fixedWriterOf, isValueType, sharedOneBytePayload, type, type ValueType } from '../../src/codec/types.js';
import { expectWeftError } from '../helpers/index.js';

// The SDK is CommonJS: its Type classes live in dist/types.js, and the generated protobuf wrappers
// (including LongWrapper and DoubleWrapper, which the JS SDK has no Type for) in types_pb.js.
const require = createRequire(import.meta.url);
interface SdkType<T> {
  typename: string;
  serialize(v: T): Uint8Array;
  deserialize(b: Buffer): T;
}
interface Wrapper<T> {
  setValue(v: T): void;
  getValue(): T;
  serializeBinary(): Uint8Array;
}
interface WrapperClass<T> {
  new (): Wrapper<T>;
  deserializeBinary(b: Uint8Array): Wrapper<T>;
}
const sdk = require('apache-flink-statefun/dist/types.js') as {
  INT_TYPE: SdkType<number>;
  FLOAT_TYPE: SdkType<number>;
  BOOL_TYPE: SdkType<boolean>;
  STRING_TYPE: SdkType<string>;
  JsonType: new (typename: string) => SdkType<unknown>;
};
const pb = require('apache-flink-statefun/dist/generated/types_pb.js') as {
  LongWrapper: WrapperClass<number>;
  DoubleWrapper: WrapperClass<number>;
};

function sdkBytes<T>(W: WrapperClass<T>, v: T): Uint8Array {
  const w = new W();
  w.setValue(v);
  return w.serializeBinary();
}

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');


/** Encodes, compares with the SDK's bytes, decodes both ways. */
function checkAgainstSdk<T>(t: ValueType<T>, v: T, reference: Uint8Array, sdkDecode: (b: Uint8Array) => T): void {
  const mine = t.encode(v);
  expect(hex(mine)).toBe(hex(reference));
  expect(Object.is(t.decode(reference), v) || t.decode(reference) === v).toBe(true);
  const back = sdkDecode(mine);
  expect(Object.is(back, v)).toBe(true);
}

describe('typenames', () => {
  it('uses StateFun names for the primitives and weft names for json/msgpack', () => {
    expect(type.int().typename).toBe('io.statefun.types/int');
    expect(type.long().typename).toBe('io.statefun.types/long');
    expect(type.long({ as: 'bigint' }).typename).toBe('io.statefun.types/long');
    expect(type.float().typename).toBe('io.statefun.types/float');
    expect(type.double().typename).toBe('io.statefun.types/double');
    expect(type.bool().typename).toBe('io.statefun.types/bool');
    expect(type.string().typename).toBe('io.statefun.types/string');
    expect(type.bytes().typename).toBe('io.statefun.types/raw');
    expect(type.json().typename).toBe('weft.types/json');
    expect(type.msgpack().typename).toBe('weft.types/msgpack');
    expect(type.json('app/entry').typename).toBe('app/entry');
    // The SDK agrees on the four it exports.
    expect(sdk.INT_TYPE.typename).toBe(TYPENAMES.int);
    expect(sdk.FLOAT_TYPE.typename).toBe(TYPENAMES.float);
    expect(sdk.BOOL_TYPE.typename).toBe(TYPENAMES.bool);
    expect(sdk.STRING_TYPE.typename).toBe(TYPENAMES.string);
  });

  it('returns one object per factory call signature, so modules can detect real conflicts', () => {
    expect(type.int()).toBe(type.int());
    expect(type.json()).toBe(type.json());
    expect(type.json('app/x')).toBe(type.json('app/x'));
    expect(type.msgpack('app/x')).not.toBe(type.json('app/x'));
    expect(type.long()).not.toBe(type.long({ as: 'bigint' }));
    expect(type.long({ as: 'number' })).toBe(type.long());
    expect(DEFAULT_TYPE).toBe(type.msgpack());
  });

  it('marks primitives immutable and object-valued types mutable', () => {
    for (const t of [type.int(), type.long(), type.long({ as: 'bigint' }), type.float(), type.double(), type.bool(), type.string()]) {
      expect(t.immutable).toBe(true);
    }
    for (const t of [type.bytes(), type.json(), type.msgpack()]) expect(t.immutable).toBe(false);
  });

  it('freezes type objects', () => {
    expect(Object.isFrozen(type.int())).toBe(true);
    expect(Object.isFrozen(type.json())).toBe(true);
  });

  it('lists the built-ins by typename', () => {
    expect([...BUILTIN_TYPES.keys()].sort()).toEqual(
      [
        'io.statefun.types/bool',
        'io.statefun.types/double',
        'io.statefun.types/float',
        'io.statefun.types/int',
        'io.statefun.types/long',
        'io.statefun.types/raw',
        'io.statefun.types/string',
        'weft.types/json',
        'weft.types/msgpack',
      ].sort(),
    );
    expect(BUILTIN_TYPES.get(TYPENAMES.long)).toBe(type.long());
    expect(isValueType(type.int())).toBe(true);
    expect(isValueType({ typename: 'a/b' })).toBe(false);
    expect(isValueType(null)).toBe(false);
  });

  it('validates typenames given to json/msgpack/custom', () => {
    expectWeftError(
      () => type.json('nope'),
      'ERR_WEFT_INVALID_TYPENAME',
      'type.json() typename must be "<namespace>/<name>" using letters, digits, "_", "-" and "." (got "nope")',
    );
    expectWeftError(
      () => type.msgpack(''),
      'ERR_WEFT_INVALID_TYPENAME',
      'type.msgpack() typename must be "<namespace>/<name>" using letters, digits, "_", "-" and "." (got "")',
    );
    expectWeftError(
      () => type.long({ as: 'string' as 'number' }),
      'ERR_WEFT_INVALID_ARG',
      "type.long() options.as must be 'number' or 'bigint' (got \"string\")",
    );
  });
});

describe('int (sfixed32 wrapper)', () => {
  const t = type.int();
  const sdkDecode = (b: Uint8Array) => sdk.INT_TYPE.deserialize(Buffer.from(b));

  it('matches the SDK byte for byte on edge values', () => {
    for (const v of [1, -1, 2 ** 31 - 1, -(2 ** 31), 255, 256, -256, 123456789, 0]) {
      checkAgainstSdk(t, v, sdk.INT_TYPE.serialize(v), sdkDecode);
    }
    expect(hex(t.encode(0))).toBe('');
    expect(hex(t.encode(1))).toBe('0d01000000');
    expect(hex(t.encode(-1))).toBe('0dffffffff');
  });

  it('matches the SDK on random int32', () => {
    fc.assert(
      fc.property(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), (v) => {
        expect(hex(t.encode(v))).toBe(hex(sdk.INT_TYPE.serialize(v)));
        expect(t.decode(t.encode(v))).toBe(v);
      }),
    );
  });

  it('encodes -0 as 0', () => {
    expect(t.encode(-0).length).toBe(0);
  });

  it('refuses non-int32 values, naming the value and the type', () => {
    const rule = 'must be an integer in [-2147483648, 2147483647] for io.statefun.types/int';
    expectWeftError(() => t.encode(1.5), 'ERR_WEFT_TYPE_MISMATCH', `value ${rule} (got 1.5)`);
    expectWeftError(() => t.encode('x' as unknown as number), 'ERR_WEFT_TYPE_MISMATCH', `value ${rule} (got "x")`);
    expectWeftError(() => t.encode(2 ** 31), 'ERR_WEFT_TYPE_MISMATCH', `value ${rule} (got 2147483648)`);
    expectWeftError(() => t.encode(NaN), 'ERR_WEFT_TYPE_MISMATCH', `value ${rule} (got NaN)`);
    expectWeftError(() => t.encode(5n as unknown as number), 'ERR_WEFT_TYPE_MISMATCH', `value ${rule} (got 5n)`);
    expectWeftError(() => t.encode(1.5, 'ctx.state.balance'), 'ERR_WEFT_TYPE_MISMATCH', `ctx.state.balance ${rule} (got 1.5)`);
    expectWeftError(() => t.check(null), 'ERR_WEFT_TYPE_MISMATCH', `value ${rule} (got null)`);
    expect(() => t.check(7)).not.toThrow();
  });

  it('decodes like a protobuf parser: unknown fields skipped, the last field 1 wins', () => {
    expect(t.decode(Uint8Array.from([0x10, 0x05, 0x0d, 1, 0, 0, 0]))).toBe(1);
    expect(t.decode(Uint8Array.from([0x0d, 1, 0, 0, 0, 0x0d, 2, 0, 0, 0]))).toBe(2);
    expect(t.decode(Uint8Array.from([0x0d, 1, 0, 0, 0, 0x1a, 0x01, 0x41]))).toBe(1);
  });

  it('throws ERR_WEFT_PROTOCOL on malformed bytes', () => {
    expectWeftError(
      () => t.decode(Uint8Array.from([0x0d, 1, 0])),
      'ERR_WEFT_PROTOCOL',
      'truncated protobuf input: sfixed32 at offset 1 needs 4 bytes, 2 left',
    );
    expectWeftError(
      () => t.decode(Uint8Array.from([0x08, 0x05])),
      'ERR_WEFT_PROTOCOL',
      'bytes are not a valid io.statefun.types/int value: field 1 has wire type 0, expected 5',
    );
  });
});

describe('long (sfixed64 wrapper)', () => {
  const t = type.long();
  const tb = type.long({ as: 'bigint' });
  const sdkDecode = (b: Uint8Array) => pb.LongWrapper.deserializeBinary(b).getValue();

  it('matches the SDK byte for byte on safe integers', () => {
    const values = [1, -1, 2 ** 31, -(2 ** 31) - 1, 2 ** 32, -(2 ** 32), 2 ** 53 - 1, -(2 ** 53 - 1), 123456789012, 0];
    for (const v of values) checkAgainstSdk(t, v, sdkBytes(pb.LongWrapper, v), sdkDecode);
    expect(hex(t.encode(-1))).toBe('09ffffffffffffffff');
  });

  it('matches the SDK on random safe integers', () => {
    fc.assert(
      fc.property(fc.maxSafeInteger(), (v) => {
        expect(hex(t.encode(v))).toBe(hex(sdkBytes(pb.LongWrapper, v)));
        expect(t.decode(t.encode(v))).toBe(v);
        expect(tb.decode(t.encode(v))).toBe(BigInt(v));
      }),
    );
  });

  it('carries the full 64-bit range as bigint, in the same layout as the Java SDK', () => {
    expect(hex(tb.encode(2n ** 63n - 1n))).toBe('09ffffffffffffff7f');
    expect(hex(tb.encode(-(2n ** 63n)))).toBe('090000000000000080');
    expect(hex(tb.encode(0n))).toBe('');
    fc.assert(
      fc.property(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), (v) => {
        const bytes = tb.encode(v);
        expect(tb.decode(bytes)).toBe(v);
        if (v >= -(2n ** 53n) + 1n && v <= 2n ** 53n - 1n) expect(hex(bytes)).toBe(hex(t.encode(Number(v))));
      }),
    );
  });

  it('refuses to round: unsafe numbers are rejected on encode and on decode', () => {
    const rule = "must be a safe integer (|n| <= 2^53 - 1; use type.long({ as: 'bigint' }) for all 64 bits) for io.statefun.types/long";
    expectWeftError(() => t.encode(2 ** 53), 'ERR_WEFT_TYPE_MISMATCH', `value ${rule} (got 9007199254740992)`);
    expectWeftError(() => t.encode(0.5), 'ERR_WEFT_TYPE_MISMATCH', `value ${rule} (got 0.5)`);
    expectWeftError(() => t.encode(1n as unknown as number), 'ERR_WEFT_TYPE_MISMATCH', `value ${rule} (got 1n)`);
    expectWeftError(
      () => t.decode(tb.encode(2n ** 53n + 1n)),
      'ERR_WEFT_TYPE_MISMATCH',
      "io.statefun.types/long value 9007199254740993 is outside the safe integer range of a JS number; read it with type.long({ as: 'bigint' })",
    );
    expectWeftError(
      () => tb.encode(2n ** 63n),
      'ERR_WEFT_TYPE_MISMATCH',
      'value must be a bigint in [-2^63, 2^63 - 1] for io.statefun.types/long (got 9223372036854775808n)',
    );
    expectWeftError(
      () => tb.encode(1 as unknown as bigint),
      'ERR_WEFT_TYPE_MISMATCH',
      'value must be a bigint in [-2^63, 2^63 - 1] for io.statefun.types/long (got 1)',
    );
  });

  it('decodes non-canonical layouts through the parser', () => {
    const bytes = Uint8Array.from([0x10, 0x01, 0x09, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    expect(t.decode(bytes)).toBe(-1);
    expect(tb.decode(bytes)).toBe(-1n);
  });
});

describe('float (float wrapper)', () => {
  const t = type.float();
  const sdkDecode = (b: Uint8Array) => sdk.FLOAT_TYPE.deserialize(Buffer.from(b));

  it('matches the SDK byte for byte on edge values', () => {
    const FLT_MAX = 3.4028234663852886e38;
    const values = [1, -1, 0.5, Infinity, -Infinity, FLT_MAX, -FLT_MAX, 1.401298464324817e-45, 2 ** -126, 16777216];
    for (const v of values) checkAgainstSdk(t, v, sdk.FLOAT_TYPE.serialize(v), sdkDecode);
    expect(hex(t.encode(0))).toBe('');
    // NaN: the SDK's bit pattern, and NaN reads back.
    expect(hex(t.encode(NaN))).toBe(hex(sdk.FLOAT_TYPE.serialize(NaN)));
    expect(hex(t.encode(NaN))).toBe('0dffffff7f');
    expect(t.decode(t.encode(NaN))).toBeNaN();
    expect(t.decode(Uint8Array.from([0x0d, 0, 0, 0xc0, 0x7f]))).toBeNaN();
  });

  it('rounds to float32 like the SDK (values that are not exact ties)', () => {
    for (const v of [0.1, 1.1, -3.3, 1e-40, 1e-46, -1e-46, 3.14159265358979, 1e30]) {
      expect(hex(t.encode(v))).toBe(hex(sdk.FLOAT_TYPE.serialize(v)));
      expect(t.decode(t.encode(v))).toBe(Math.fround(v));
    }
    // A tiny nonzero value rounds to a float32 zero but is still written (the SDK tests the double).
    expect(hex(t.encode(1e-46))).toBe('0d00000000');
  });

  it('differs from the SDK only on exact ties, where it rounds to even as IEEE 754 (and Java) do', () => {
    // 16777217 = 2^24 + 1 is halfway between the float32s 16777216 and 16777218.
    expect(hex(t.encode(16777217))).toBe('0d0000804b');
    expect(hex(sdk.FLOAT_TYPE.serialize(16777217))).toBe('0d0100804b');
    expect(t.decode(t.encode(16777217))).toBe(16777216);
    expect(sdkDecode(t.encode(16777217))).toBe(16777216);

    const bits = new DataView(new ArrayBuffer(4));
    fc.assert(
      fc.property(fc.double({ min: -3.4028234663852886e38, max: 3.4028234663852886e38, noNaN: true }), (v) => {
        const mine = t.encode(v);
        const theirs = sdk.FLOAT_TYPE.serialize(v);
        if (hex(mine) === hex(theirs)) return;
        // Not equal: must be an exact tie, resolved to the neighbour with an even mantissa.
        const a = t.decode(mine);
        const b = sdkDecode(theirs);
        expect(Math.abs(v - a)).toBe(Math.abs(v - b));
        bits.setFloat32(0, a);
        expect(bits.getUint32(0) & 1).toBe(0);
      }),
      { numRuns: 20_000 },
    );
  });

  it('keeps -0 as proto3 specifies (the JS SDK cannot represent -0 and reads it as 0 either way)', () => {
    expect(hex(t.encode(-0))).toBe('0d00000080');
    expect(hex(sdk.FLOAT_TYPE.serialize(-0))).toBe('');
    expect(Object.is(t.decode(t.encode(-0)), -0)).toBe(true);
    expect(sdkDecode(t.encode(-0))).toBe(0);
  });

  it('refuses values beyond the float32 range, which would silently become Infinity', () => {
    const rule =
      'must be a number within the float32 range (finite values up to ±3.4028234663852886e+38, ±Infinity or NaN) for io.statefun.types/float';
    expectWeftError(() => t.encode(3.5e38), 'ERR_WEFT_TYPE_MISMATCH', `value ${rule} (got 3.5e+38)`);
    expectWeftError(() => t.encode(-1e39), 'ERR_WEFT_TYPE_MISMATCH', `value ${rule} (got -1e+39)`);
    expectWeftError(() => t.encode('1' as unknown as number), 'ERR_WEFT_TYPE_MISMATCH', `value ${rule} (got "1")`);
  });
});

describe('double (double wrapper)', () => {
  const t = type.double();
  const sdkDecode = (b: Uint8Array) => pb.DoubleWrapper.deserializeBinary(b).getValue();

  it('matches the SDK byte for byte', () => {
    const values = [1.1, -1, 0.1, 5e-324, -5e-324, Number.MAX_VALUE, -Number.MAX_VALUE, Infinity, -Infinity, Math.PI, 0];
    for (const v of values) checkAgainstSdk(t, v, sdkBytes(pb.DoubleWrapper, v), sdkDecode);
    expect(hex(t.encode(NaN))).toBe(hex(sdkBytes(pb.DoubleWrapper, NaN)));
    expect(t.decode(t.encode(NaN))).toBeNaN();
    fc.assert(
      fc.property(fc.double({ noNaN: true }), (v) => {
        if (Object.is(v, -0)) return;
        expect(hex(t.encode(v))).toBe(hex(sdkBytes(pb.DoubleWrapper, v)));
        expect(Object.is(t.decode(t.encode(v)), v)).toBe(true);
      }),
      { numRuns: 5_000 },
    );
  });

  it('keeps -0 as proto3 specifies (the JS SDK reads it as 0 either way)', () => {
    expect(hex(t.encode(-0))).toBe('090000000000000080');
    expect(hex(sdkBytes(pb.DoubleWrapper, -0))).toBe('');
    expect(Object.is(t.decode(t.encode(-0)), -0)).toBe(true);
    expect(sdkDecode(t.encode(-0))).toBe(0);
  });

  it('refuses non-numbers', () => {
    expectWeftError(
      () => t.encode(1n as unknown as number),
      'ERR_WEFT_TYPE_MISMATCH',
      'value must be a number for io.statefun.types/double (got 1n)',
    );
  });
});

describe('bool (bool wrapper)', () => {
  const t = type.bool();
  const sdkDecode = (b: Uint8Array) => sdk.BOOL_TYPE.deserialize(Buffer.from(b));

  it('matches the SDK byte for byte', () => {
    checkAgainstSdk(t, true, sdk.BOOL_TYPE.serialize(true), sdkDecode);
    checkAgainstSdk(t, false, sdk.BOOL_TYPE.serialize(false), sdkDecode);
    expect(hex(t.encode(true))).toBe('0801');
    expect(hex(t.encode(false))).toBe('');
  });

  it('reads any non-zero varint as true, as protobuf does', () => {
    expect(t.decode(Uint8Array.from([0x08, 0x02]))).toBe(true);
    expect(t.decode(Uint8Array.from([0x08, 0x00]))).toBe(false);
    expect(t.decode(Uint8Array.from([0x08, 0x80, 0x01]))).toBe(true);
  });

  it('refuses non-booleans', () => {
    expectWeftError(
      () => t.encode(1 as unknown as boolean),
      'ERR_WEFT_TYPE_MISMATCH',
      'value must be a boolean for io.statefun.types/bool (got 1)',
    );
  });
});

describe('string (string wrapper)', () => {
  const t = type.string();
  const sdkDecode = (b: Uint8Array) => sdk.STRING_TYPE.deserialize(Buffer.from(b));

  it('matches the SDK byte for byte', () => {
    const values = [
      '',
      'a',
      'hello world',
      'é',
      '€',
      '😀',
      'mixed ascii, ünïcødé and 😀 emoji',
      '\u0000',
      '\ufeffstarts with a BOM',
      'x'.repeat(63),
      'x'.repeat(64),
      'é'.repeat(42),
      'é'.repeat(43),
      'x'.repeat(127),
      'x'.repeat(128),
      'ab😀'.repeat(5000),
      'y'.repeat(300_000),
    ];
    for (const v of values) checkAgainstSdk(t, v, sdk.STRING_TYPE.serialize(v), sdkDecode);
  });

  it('matches the SDK on random well-formed strings', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 300 }), (v) => {
        expect(hex(t.encode(v))).toBe(hex(sdk.STRING_TYPE.serialize(v)));
        expect(t.decode(t.encode(v))).toBe(v);
      }),
      { numRuns: 2_000 },
    );
  });

  it('refuses lone surrogates, which have no UTF-8 form', () => {
    expectWeftError(
      () => t.encode('a\ud800'),
      'ERR_WEFT_TYPE_MISMATCH',
      'value must be a well-formed string (no lone surrogates) for io.statefun.types/string (got "a\\ud800")',
    );
    expectWeftError(() => t.encode(5 as unknown as string), 'ERR_WEFT_TYPE_MISMATCH', 'value must be a string for io.statefun.types/string (got 5)');
  });

  it('refuses malformed UTF-8', () => {
    expectWeftError(() => t.decode(Uint8Array.from([0x0a, 0x01, 0xff])), 'ERR_WEFT_PROTOCOL', 'malformed UTF-8 in protobuf string at offset 2');
  });
});

describe('bytes (io.statefun.types/raw)', () => {
  const t = type.bytes();

  it('is the bytes themselves, copied both ways', () => {
    const input = Uint8Array.from([1, 2, 3]);
    const enc = t.encode(input);
    expect(hex(enc)).toBe('010203');
    input[0] = 9;
    expect(enc[0]).toBe(1);
    const big = new Uint8Array(16);
    const view = big.subarray(4, 7);
    view.set([7, 8, 9]);
    const dec = t.decode(view);
    expect(hex(dec)).toBe('070809');
    expect(dec.buffer).not.toBe(big.buffer);
    expect(dec.constructor).toBe(Uint8Array);
    expect(hex(t.encode(Buffer.from([5])))).toBe('05');
    expect(t.encode(new Uint8Array(0)).length).toBe(0);
  });

  it('refuses non-Uint8Array values', () => {
    expectWeftError(
      () => t.encode([1, 2] as unknown as Uint8Array),
      'ERR_WEFT_TYPE_MISMATCH',
      'value must be a Uint8Array for io.statefun.types/raw (got array(2))',
    );
  });
});

describe('json', () => {
  const t = type.json<unknown>();
  const sdkJson = new sdk.JsonType('weft.types/json');

  it('writes the same bytes as the SDK JsonType and reads its bytes', () => {
    const values: unknown[] = [
      { a: 1, b: [true, null, 'x'], c: { d: 'é😀' } },
      [1, 2, 3],
      'text',
      42,
      -0.5,
      null,
      false,
      { lone: '\ud800' },
      { nested: { deep: [[[]]] } },
    ];
    for (const v of values) {
      expect(hex(t.encode(v))).toBe(hex(sdkJson.serialize(v)));
      expect(t.decode(sdkJson.serialize(v))).toEqual(v);
      expect(sdkJson.deserialize(Buffer.from(t.encode(v)))).toEqual(v);
    }
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        expect(hex(t.encode(v))).toBe(hex(sdkJson.serialize(v)));
        expect(t.decode(t.encode(v))).toEqual(JSON.parse(JSON.stringify(v)));
      }),
      { numRuns: 500 },
    );
  });

  it('drops undefined object properties the JSON way (reading the key still gives undefined)', () => {
    expect(t.decode(t.encode({ a: 1, b: undefined }))).toEqual({ a: 1 });
  });

  it('refuses what JSON would change or drop, naming the path', () => {
    const cases: Array<[unknown, string]> = [
      [{ x: NaN }, 'value.x is NaN, which weft.types/json cannot carry (it would arrive as null)'],
      [[1, Infinity], 'value[1] is Infinity, which weft.types/json cannot carry (it would arrive as null)'],
      [{ when: new Date(0) }, 'value.when is a Date, which weft.types/json cannot carry (it would arrive as a string); use an ISO string or epoch milliseconds'],
      [[1, undefined], 'value[1] is undefined, which weft.types/json cannot carry (it would arrive as null)'],
      [undefined, 'value is undefined, which weft.types/json cannot carry'],
      [{ n: 1n }, 'value.n is a bigint, which weft.types/json cannot carry'],
      [{ m: new Map() }, 'value.m is a Map, which weft.types/json cannot carry; use a plain object or an array of [key, value] pairs'],
      [{ items: [0, 1, { cb: () => 1 }] }, 'value.items[2].cb is a function, which weft.types/json cannot carry'],
      [{ b: new Uint8Array(2) }, 'value.b is a Uint8Array, which weft.types/json cannot carry; use an array of numbers or a base64 string'],
      [{ 'a b': { [Symbol('k')]: 1 } }, 'value["a b"] has a symbol key Symbol(k), which weft.types/json cannot carry (it would be dropped)'],
    ];
    for (const [v, message] of cases) expectWeftError(() => t.encode(v), 'ERR_WEFT_UNSERIALIZABLE', message);
    const cyclic: { self?: unknown } = {};
    cyclic.self = cyclic;
    expectWeftError(() => t.encode(cyclic), 'ERR_WEFT_UNSERIALIZABLE', 'value.self refers back to value (a cycle), which weft.types/json cannot carry');
  });

  it('throws ERR_WEFT_PROTOCOL on bytes that are not JSON', () => {
    let err: unknown;
    try {
      t.decode(new TextEncoder().encode('{"a":'));
    } catch (e) {
      err = e;
    }
    expect((err as WeftError).code).toBe('ERR_WEFT_PROTOCOL');
    expect((err as WeftError).message).toMatch(/^bytes are not a valid weft\.types\/json value: /);
    expect((err as WeftError).cause).toBeInstanceOf(SyntaxError);
  });
});

describe('msgpack', () => {
  const t = type.msgpack<unknown>();

  it('round-trips what msgpack carries', () => {
    const values: unknown[] = [
      null,
      undefined,
      true,
      0,
      -1,
      2 ** 40,
      1.5,
      NaN,
      Infinity,
      -Infinity,
      'é😀',
      '',
      123n,
      -(2n ** 63n),
      2n ** 64n - 1n,
      new Date(1_700_000_000_123),
      new Uint8Array([1, 2, 3]),
      { a: [1, { b: undefined, c: null }], d: { e: 'f' } },
      Object.assign(Object.create(null) as object, { k: 1 }),
      [[], {}, [[1]]],
    ];
    for (const v of values) expect(t.decode(t.encode(v))).toEqual(v);
    // JSON-like data, minus the two documented exceptions: "__proto__" keys are refused and
    // -0 arrives as 0 (checked separately below).
    const hasProtoKey = (v: unknown): boolean =>
      typeof v === 'object' && v !== null && (Object.hasOwn(v, '__proto__') || Object.values(v).some(hasProtoKey));
    const normalize = (v: unknown): unknown => JSON.parse(JSON.stringify(v)) as unknown;
    fc.assert(
      fc.property(
        fc.jsonValue().filter((v) => !hasProtoKey(v)),
        (v) => {
          expect(t.decode(t.encode(v))).toEqual(normalize(v));
        },
      ),
      { numRuns: 1_000 },
    );
  });

  it('returns bytes the caller owns, and decodes Uint8Arrays as copies', () => {
    const a = t.encode({ x: 1 });
    const b = t.encode({ y: 2 });
    expect(a.buffer).not.toBe(b.buffer);
    const bin = t.encode({ bin: new Uint8Array([1, 2, 3]) });
    const decoded = t.decode(bin) as { bin: Uint8Array };
    expect(decoded.bin.buffer).not.toBe(bin.buffer);
  });

  it('writes and reads numbers as msgpackr does, without it', () => {
    // The options weft's msgpack type gives msgpackr (src/codec/types.ts).
    const reference = new Packr({ useRecords: false, mapsAsObjects: true, variableMapSize: true, int64AsType: 'bigint', copyBuffers: true, moreTypes: false });
    const edges = [127, 128, 255, 256, 65_535, 65_536, 2 ** 32 - 1, 2 ** 32, -32, -33, -128, -129, -32_768, -32_769, -(2 ** 31), -(2 ** 31) - 1, 0.1, -2.5, 2 ** 53, Number.MAX_VALUE, Number.MIN_VALUE, NaN, Infinity, -Infinity];
    const check = (v: number): void => {
      const bytes = t.encode(v);
      expect([...bytes]).toEqual([...reference.pack(v)]);
      const back = t.decode(bytes) as number;
      expect(Object.is(back, v === 0 ? 0 : v)).toBe(true);
      // In place in shared memory (a ring), at an offset.
      const shared = new Uint8Array(new SharedArrayBuffer(bytes.length + 7));
      shared.set(bytes, 7);
      expect(Object.is(t.decode(shared.subarray(7)), back)).toBe(true);
    };
    for (const v of edges) check(v);
    fc.assert(fc.property(fc.oneof(fc.double(), fc.integer({ min: -(2 ** 31) - 10, max: 2 ** 32 + 10 }), fc.maxSafeInteger()), check), { numRuns: 2_000 });
    // What another writer may use for a number still decodes (by msgpackr): float32, uint64.
    expect(t.decode(Uint8Array.of(0xca, 0x3f, 0xc0, 0x00, 0x00))).toBe(1.5);
    expect(t.decode(Uint8Array.of(0xcf, 0, 0, 0, 1, 0, 0, 0, 0))).toBe(2n ** 32n);
    // A number's first byte with the wrong length is msgpackr's to refuse.
    expect(() => t.decode(Uint8Array.of(0xcb, 1, 2))).toThrow(WeftError);
  });

  it('normalizes -0 to 0 (msgpack has no negative zero integer)', () => {
    expect(Object.is(t.decode(t.encode(-0)), 0)).toBe(true);
  });

  it('decodes from a SharedArrayBuffer view', () => {
    const value = { text: 'x'.repeat(300), n: [1, 2, 3] };
    const bytes = t.encode(value);
    const sab = new Uint8Array(new SharedArrayBuffer(bytes.length + 200));
    sab.set(bytes, 150);
    expect(t.decode(sab.subarray(150, 150 + bytes.length))).toEqual(value);
  });

  it('refuses what msgpack cannot carry unchanged, naming the path', () => {
    class Point {
      constructor(readonly x = 1) {}
    }
    const cases: Array<[unknown, string]> = [
      [{ items: [0, 1, { cb: () => 1 }] }, 'value.items[2].cb is a function, which weft.types/msgpack cannot carry'],
      [() => 1, 'value is a function, which weft.types/msgpack cannot carry'],
      [{ s: Symbol('x') }, 'value.s is a symbol, which weft.types/msgpack cannot carry'],
      [{ m: new Map([[1, 2]]) }, 'value.m is a Map, which weft.types/msgpack cannot carry; use a plain object or an array of [key, value] pairs'],
      [[new Set([1])], 'value[0] is a Set, which weft.types/msgpack cannot carry; use an array'],
      [{ p: new Point() }, 'value.p is an instance of Point, which weft.types/msgpack cannot carry (its prototype and methods would be lost); use a plain object'],
      [{ f: new Float64Array(2) }, 'value.f is a Float64Array, which weft.types/msgpack cannot carry; use a Uint8Array'],
      [{ ab: new ArrayBuffer(2) }, 'value.ab is an ArrayBuffer, which weft.types/msgpack cannot carry; use a Uint8Array'],
      [{ s: 'a\udc00' }, 'value.s is a string with a lone surrogate, which weft.types/msgpack cannot carry (it would arrive changed)'],
      ['\ud800', 'value is a string with a lone surrogate, which weft.types/msgpack cannot carry (it would arrive changed)'],
      [{ ['k\ud800']: 1 }, 'value["k\\ud800"] is a key with a lone surrogate, which weft.types/msgpack cannot carry (it would arrive changed)'],
      [JSON.parse('{"a":{"__proto__":1}}'), 'value.a.__proto__ is a "__proto__" key, which weft.types/msgpack cannot carry (it would arrive renamed)'],
      [{ n: 2n ** 64n }, 'value.n is a bigint outside [-2^63, 2^64 - 1], which weft.types/msgpack cannot carry'],
      [-(2n ** 63n) - 1n, 'value is a bigint outside [-2^63, 2^64 - 1], which weft.types/msgpack cannot carry'],
      [{ e: new Error('x') }, 'value.e is an instance of Error, which weft.types/msgpack cannot carry (its prototype and methods would be lost); use a plain object'],
      [{ [Symbol.for('k')]: 1 }, 'value has a symbol key Symbol(k), which weft.types/msgpack cannot carry (it would be dropped)'],
    ];
    for (const [v, message] of cases) expectWeftError(() => t.encode(v), 'ERR_WEFT_UNSERIALIZABLE', message);
    expectWeftError(
      () => t.encode({ fn() {} }, 'ctx.send value'),
      'ERR_WEFT_UNSERIALIZABLE',
      'ctx.send value.fn is a function, which weft.types/msgpack cannot carry',
    );
  });

  it('ignores non-enumerable symbol keys (not data)', () => {
    const o = { a: 1 };
    Object.defineProperty(o, Symbol('meta'), { value: 1, enumerable: false });
    expect(t.decode(t.encode(o))).toEqual({ a: 1 });
  });

  it('finds cycles and reports where they close', () => {
    const root: { a: { b: unknown[] } } = { a: { b: [] } };
    root.a.b.push(1, root.a);
    expectWeftError(
      () => t.encode(root),
      'ERR_WEFT_UNSERIALIZABLE',
      'value.a.b[1] refers back to value.a (a cycle), which weft.types/msgpack cannot carry',
    );
    const self: unknown[] = [];
    self.push(self);
    expectWeftError(() => t.check(self), 'ERR_WEFT_UNSERIALIZABLE', 'value[0] refers back to value (a cycle), which weft.types/msgpack cannot carry');
  });

  it('allows shared (acyclic) references', () => {
    const shared = { x: 1 };
    expect(t.decode(t.encode([shared, shared]))).toEqual([{ x: 1 }, { x: 1 }]);
  });

  it('bounds nesting depth', () => {
    let deep: unknown = 1;
    for (let i = 0; i < LIMITS.maxValueDepth + 1; i++) deep = [deep];
    expectWeftError(
      () => t.encode(deep),
      'ERR_WEFT_UNSERIALIZABLE',
      `value is nested more than ${LIMITS.maxValueDepth} levels deep, which weft.types/msgpack cannot carry (LIMITS.maxValueDepth)`,
    );
    let ok: unknown = 1;
    for (let i = 0; i < LIMITS.maxValueDepth; i++) ok = [ok];
    expect(t.decode(t.encode(ok))).toEqual(ok);
  });

  it('stops a shared-reference explosion early with ERR_WEFT_TOO_LARGE', () => {
    // 2^40 paths through 40 small arrays: walking them all would never finish.
    let v: unknown = 'x'.repeat(1024);
    for (let i = 0; i < 40; i++) v = [v, v];
    const started = Date.now();
    expectWeftError(
      () => t.encode(v),
      'ERR_WEFT_TOO_LARGE',
      `value encodes to more than ${LIMITS.maxValueBytes} bytes as weft.types/msgpack (LIMITS.maxValueBytes)`,
    );
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('throws ERR_WEFT_PROTOCOL on malformed bytes', () => {
    expectWeftError(
      () => t.decode(Uint8Array.from([0x92, 0x01])),
      'ERR_WEFT_PROTOCOL',
      'bytes are not a valid weft.types/msgpack value: Unexpected end of MessagePack data',
    );
    expectWeftError(
      () => t.decode(new Uint8Array(0)),
      'ERR_WEFT_PROTOCOL',
      'bytes are not a valid weft.types/msgpack value: Unexpected end of MessagePack data',
    );
  });

  it('is standard MessagePack: plain maps, no msgpackr records', () => {
    expect(hex(t.encode({ a: 1 }))).toBe('81a16101');
    expect(hex(t.encode([1, 'x']))).toBe('9201a178');
  });
});

describe('custom', () => {
  const Money = type.custom<bigint>('bank.types/money', {
    serialize: (v) => new TextEncoder().encode(v.toString()),
    deserialize: (b) => BigInt(new TextDecoder().decode(b)),
    immutable: true,
  });

  it('uses the codec under its typename', () => {
    expect(Money.typename).toBe('bank.types/money');
    expect(Money.kind).toBe('custom');
    expect(Money.immutable).toBe(true);
    expect(Money.decode(Money.encode(12345678901234567890n))).toBe(12345678901234567890n);
  });

  it('wraps codec failures with the value, the path and the cause', () => {
    const cause = new Error('boom');
    const Bad = type.custom<number>('app/bad', {
      serialize: () => {
        throw cause;
      },
      deserialize: () => {
        throw new Error('nope');
      },
    });
    expectWeftError(() => Bad.encode(1, 'ctx.state.x'), 'ERR_WEFT_UNSERIALIZABLE', 'ctx.state.x cannot be serialized as app/bad: boom');
    expectWeftError(() => Bad.check(1), 'ERR_WEFT_UNSERIALIZABLE', 'value cannot be serialized as app/bad: boom');
    expectWeftError(() => Bad.decode(new Uint8Array(1)), 'ERR_WEFT_PROTOCOL', 'bytes are not a valid app/bad value: nope');
    const NotBytes = type.custom<number>('app/nb', { serialize: () => 'x' as unknown as Uint8Array, deserialize: () => 1 });
    expectWeftError(() => NotBytes.encode(1), 'ERR_WEFT_UNSERIALIZABLE', 'type.custom("app/nb") serialize must return a Uint8Array (got "x")');
  });

  it('lets WeftErrors from the codec through unchanged', () => {
    const own = new WeftError('ERR_WEFT_TYPE_MISMATCH', 'mine');
    const T = type.custom<number>('app/own', {
      serialize: () => {
        throw own;
      },
      deserialize: () => 1,
    });
    expect(() => T.encode(1)).toThrow(own);
  });

  it('validates its arguments', () => {
    expectWeftError(
      () => type.custom('bad', { serialize: () => new Uint8Array(), deserialize: () => 1 }),
      'ERR_WEFT_INVALID_TYPENAME',
      'type.custom() typename must be "<namespace>/<name>" using letters, digits, "_", "-" and "." (got "bad")',
    );
    expectWeftError(
      () => type.custom('a/b', { serialize: undefined as unknown as () => Uint8Array, deserialize: () => 1 }),
      'ERR_WEFT_INVALID_ARG',
      'type.custom("a/b") serialize must be a function (got undefined)',
    );
    expectWeftError(
      () => type.custom('a/b', null as unknown as { serialize: () => Uint8Array; deserialize: () => 1 }),
      'ERR_WEFT_INVALID_ARG',
      'type.custom("a/b") codec must be an object { serialize, deserialize } (got null)',
    );
  });
});

describe('encoded bytes', () => {
  it('are never overwritten by later encodes, whatever their size (pooled or not)', () => {
    const types: Array<[ValueType<unknown>, (i: number) => unknown]> = [
      [type.string() as ValueType<unknown>, (i) => `${i}:`.padEnd(i % 700, 'x')],
      [type.msgpack(), (i) => ({ i, pad: 'y'.repeat(i % 600) })],
      [type.json(), (i) => ({ i, pad: 'z'.repeat(i % 600) })],
      [type.bytes() as ValueType<unknown>, (i) => new Uint8Array(i % 900).fill(i & 0xff)],
    ];
    for (const [t, make] of types) {
      const kept = Array.from({ length: 3000 }, (_, i) => t.encode(make(i)));
      kept.forEach((bytes, i) => expect(t.decode(bytes)).toEqual(make(i)));
    }
  });

  it('are exact-sized views: byteLength is the encoding, whatever the backing buffer', () => {
    const s = 'x'.repeat(200);
    const bytes = type.string().encode(s);
    expect(bytes.byteLength).toBe(2 + 1 + 200);
    expect(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).equals(Buffer.from(sdk.STRING_TYPE.serialize(s)))).toBe(true);
  });
});

describe('size ceiling', () => {
  it('refuses values over LIMITS.maxValueBytes before building them', () => {
    const huge = 'x'.repeat(LIMITS.maxValueBytes + 1);
    expectWeftError(
      () => type.string().encode(huge),
      'ERR_WEFT_TOO_LARGE',
      `value encodes to at least ${LIMITS.maxValueBytes + 1} bytes as io.statefun.types/string, over the limit of ${LIMITS.maxValueBytes} (LIMITS.maxValueBytes)`,
    );
    expectWeftError(
      () => type.msgpack().encode({ s: huge }),
      'ERR_WEFT_TOO_LARGE',
      `value encodes to more than ${LIMITS.maxValueBytes} bytes as weft.types/msgpack (LIMITS.maxValueBytes)`,
    );
  });
});

describe('sharedOneBytePayload (main ingress)', () => {
  it('gives the bytes msgpack encodes for one-byte values, one shared array per value', () => {
    const m = type.msgpack();
    for (const v of [0, 1, 127, -1, -32, null, true, false]) {
      const shared = sharedOneBytePayload(m, v);
      expect(shared).toEqual(m.encode(v));
      expect(sharedOneBytePayload(m, v)).toBe(shared);
    }
  });

  it('declines other values and other types', () => {
    const m = type.msgpack();
    for (const v of [128, -33, 1.5, 'a', {}, [], undefined, 2 ** 40]) expect(sharedOneBytePayload(m, v)).toBeUndefined();
    expect(sharedOneBytePayload(type.int(), 1)).toBeUndefined();
    expect(sharedOneBytePayload(type.json(), 1)).toBeUndefined();
  });
});

describe('fixed writers (a snapshot writes fixed-width state values in place)', () => {
  /** What the writer puts in a buffer, surrounded by bytes it must leave alone. */
  function written(t: ValueType<unknown>, value: unknown): Uint8Array {
    const w = fixedWriter(t);
    if (w === undefined) throw new Error(`${t.typename} has no fixed writer`);
    const n = w.length(value);
    const out = new Uint8Array(n + 6).fill(0xaa);
    w.write(value, out, 3);
    expect(out.subarray(0, 3)).toEqual(new Uint8Array([0xaa, 0xaa, 0xaa]));
    expect(out.subarray(3 + n)).toEqual(new Uint8Array([0xaa, 0xaa, 0xaa]));
    return out.subarray(3, 3 + n);
  }

  it('write exactly the bytes encode returns (property, with the edge values)', () => {
    const int = type.int() as ValueType<unknown>;
    const long = type.long() as ValueType<unknown>;
    const double = type.double() as ValueType<unknown>;
    const bool = type.bool() as ValueType<unknown>;
    for (const v of [0, 1, -1, 2147483647, -2147483648]) expect(written(int, v)).toEqual(int.encode(v));
    for (const v of [0, 1, -1, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, 2 ** 32, -(2 ** 32)]) expect(written(long, v)).toEqual(long.encode(v));
    for (const v of [0, -0, NaN, Infinity, -Infinity, 1.5, -1e-300, Number.MAX_VALUE]) expect(written(double, v)).toEqual(double.encode(v));
    for (const v of [true, false]) expect(written(bool, v)).toEqual(bool.encode(v));
    fc.assert(
      fc.property(fc.integer({ min: -2147483648, max: 2147483647 }), fc.maxSafeInteger(), fc.double(), (i, l, d) => {
        expect(written(int, i)).toEqual(int.encode(i));
        expect(written(long, l)).toEqual(long.encode(l));
        expect(written(double, d)).toEqual(double.encode(d));
      }),
      { numRuns: 500 },
    );
  });

  it('refuse what encode refuses, with the same error', () => {
    const cases: Array<[ValueType<unknown>, unknown]> = [
      [type.int() as ValueType<unknown>, 2 ** 31],
      [type.int() as ValueType<unknown>, 1.5],
      [type.long() as ValueType<unknown>, 2 ** 53],
      [type.double() as ValueType<unknown>, 'x'],
      [type.bool() as ValueType<unknown>, 1],
    ];
    for (const [t, v] of cases) {
      let expected: unknown;
      try {
        t.encode(v, 'ctx.state.x');
      } catch (err) {
        expected = err;
      }
      expect(expected).toBeInstanceOf(WeftError);
      expectWeftError(() => fixedWriter(t)?.length(v, 'ctx.state.x'), (expected as WeftError).code, (expected as WeftError).message);
    }
  });

  it('exist for int, long (as a number), double and bool only; boundEncoder finds them from the function', () => {
    const withWriter = [type.int(), type.long(), type.double(), type.bool()] as ValueType<unknown>[];
    const without = [type.long({ as: 'bigint' }), type.float(), type.string(), type.bytes(), type.json('a/b'), DEFAULT_TYPE] as ValueType<unknown>[];
    for (const t of withWriter) {
      expect(fixedWriter(t)).toBeDefined();
      const encode = boundEncoder(t);
      expect(fixedWriterOf(encode)).toBe(fixedWriter(t));
    }
    for (const t of without) {
      expect(fixedWriter(t)).toBeUndefined();
      expect(fixedWriterOf(boundEncoder(t))).toBeUndefined();
    }
    const e = boundEncoder(type.int() as ValueType<unknown>);
    expect(e(7)).toEqual(type.int().encode(7));
  });
});
