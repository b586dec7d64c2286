/**
 * Value types: how a JS value becomes bytes (state, messages, egress records) and back.
 *
 * The six primitives are Apache Flink StateFun's: same typenames, same bytes, so values cross to
 * StateFun functions in any SDK unchanged. Each is a one-field protobuf "wrapper" message
 * (types.proto of StateFun, checked against the official JS SDK 3.3.0 and the Java SDK):
 *
 * | weft          | typename                   | wrapper field 1 | bytes for a non-default value      |
 * |---------------|----------------------------|-----------------|-----------------------------------|
 * | type.int()    | io.statefun.types/int      | sfixed32        | 0d + 4 bytes LE                   |
 * | type.long()   | io.statefun.types/long     | sfixed64        | 09 + 8 bytes LE                   |
 * | type.float()  | io.statefun.types/float    | float           | 0d + IEEE single LE               |
 * | type.double() | io.statefun.types/double   | double          | 09 + IEEE double LE               |
 * | type.bool()   | io.statefun.types/bool     | bool            | 08 01                             |
 * | type.string() | io.statefun.types/string   | string          | 0a + varint length + UTF-8        |
 *
 * proto3 omits a field holding its default, so 0, false and "" encode to ZERO bytes, exactly as
 * every StateFun SDK writes them (and every SDK reads empty bytes as the default). Decoding is a
 * protobuf parse: unknown fields are skipped and the last occurrence of field 1 wins, so weft
 * reads whatever a conforming encoder wrote; field 1 with the wrong wire type is an error
 * (the JS SDK refuses it too, as do the Java SDK's int, long, bool and string readers).
 *
 * Where the official JS SDK's bytes are not what protobuf specifies, weft follows the standard
 * (the SDK still reads weft's bytes, as the nearest value it can represent):
 * - float rounding: the JS SDK rounds ties away from zero; weft rounds to nearest-even like IEEE
 *   754, Java and Python. Only values exactly halfway between two float32s differ (one ulp).
 * - -0 (float, double): the JS SDK cannot hold -0 (writes nothing, reads +0 whatever it gets);
 *   weft writes the sign bit, as proto3 specifies for -0, so -0 survives weft, Java and Python.
 * NaN is written with the JS SDK's bit pattern (0x7fffffff / 0x7fffffffffffffff); any NaN reads
 * back as NaN.
 *
 * Beyond the primitives: `bytes` (io.statefun.types/raw, the bytes themselves), `json`
 * (UTF-8 JSON text, the same bytes as the JS SDK's JsonType), `msgpack` (standard MessagePack,
 * the default for untyped values) and `custom`.
 */
import { Packr } from 'msgpackr';
import { LIMITS, isWellFormed, validateTypename } from '../core/address.js';
import { WeftError, describe } from '../core/errors.js';
import { MSGPACK_NUMBER_MAX_BYTES, readFloat64BE, writeMsgpackNumber } from './msgpack-number.js';
import { ProtoReader, ProtoWriter, WireType, decodeUtf8, type WireTypeValue } from './protobuf.js';

/**
 * A value type: a typename plus the codec between JS values of type `T` and bytes.
 * Create them with {@link type}; the engine only uses the members below.
 */
export interface ValueType<T = unknown> {
  /** `<namespace>/<name>`, carried next to the bytes (StateFun's `TypedValue.typename`). */
  readonly typename: string;
  /** Which factory made it: `int`, `long`, `float`, `double`, `bool`, `string`, `bytes`, `json`, `msgpack` or `custom`. */
  readonly kind: ValueTypeKind;
  /**
   * True when decoded values are immutable JS primitives: the engine may decode once and hand the
   * same value to every read. False when values are objects: each read must decode a fresh copy,
   * because user code may mutate what it got.
   */
  readonly immutable: boolean;
  /**
   * Validates `value` and encodes it. Throws ERR_WEFT_TYPE_MISMATCH (wrong JS type or range),
   * ERR_WEFT_UNSERIALIZABLE (a part msgpack/JSON cannot carry, with its path) or
   * ERR_WEFT_TOO_LARGE; messages start with `path` (default `value`), e.g. `ctx.state.balance`.
   *
   * The returned bytes belong to the caller: weft never writes to them again. Mid-sized results
   * are views into a shared slab ({@link allocEncoded}): use `byteOffset`/`byteLength`, and never
   * transfer their `.buffer`.
   */
  encode(value: T, path?: string): Uint8Array;
  /**
   * Decodes bytes written by `encode` (or by a StateFun SDK for the same typename). Throws
   * ERR_WEFT_PROTOCOL when the bytes are malformed, ERR_WEFT_TYPE_MISMATCH when they hold a value
   * this JS representation cannot (a long beyond 2^53 for `type.long()`). Never keeps a reference
   * to `bytes`: the caller may reuse them.
   */
  decode(bytes: Uint8Array): T;
  /** Validates without encoding (same errors as `encode`). */
  check(value: unknown, path?: string): asserts value is T;
}

export type ValueTypeKind = 'int' | 'long' | 'float' | 'double' | 'bool' | 'string' | 'bytes' | 'json' | 'msgpack' | 'custom';

/** The value a {@link ValueType} carries. */
export type ValueOf<V> = V extends ValueType<infer T> ? T : never;

/** Typenames of the built-in types. */
export const TYPENAMES = Object.freeze({
  int: 'io.statefun.types/int',
  long: 'io.statefun.types/long',
  float: 'io.statefun.types/float',
  double: 'io.statefun.types/double',
  bool: 'io.statefun.types/bool',
  string: 'io.statefun.types/string',
  /**
   * No StateFun SDK (Java, Python, JS, Go) defines a bytes type; `io.statefun.types/raw` is the
   * name StateFun's own runtime tests give a raw remote value. The payload is the bytes
   * themselves, so any SDK reads it with a pass-through custom type of that name.
   */
  bytes: 'io.statefun.types/raw',
  /** The JS SDK's JsonType has no default name (it takes one); this is weft's. */
  json: 'weft.types/json',
  msgpack: 'weft.types/msgpack',
} as const);

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

function mismatch(path: string, expected: string, typename: string, value: unknown): WeftError {
  return new WeftError('ERR_WEFT_TYPE_MISMATCH', `${path} must be ${expected} for ${typename} (got ${describe(value)})`);
}

function tooLarge(path: string, bytes: number, typename: string, atLeast = false): WeftError {
  return new WeftError(
    'ERR_WEFT_TOO_LARGE',
    `${path} encodes to ${atLeast ? 'at least ' : ''}${bytes} bytes as ${typename}, over the limit of ${LIMITS.maxValueBytes} (LIMITS.maxValueBytes)`,
  );
}

function malformed(typename: string, detail: string, cause?: unknown): WeftError {
  return new WeftError('ERR_WEFT_PROTOCOL', `bytes are not a valid ${typename} value: ${detail}`, { cause });
}

// ---------------------------------------------------------------------------------------------
// Output memory
// ---------------------------------------------------------------------------------------------

// Owned output memory. V8 keeps typed arrays of up to 64 bytes on its heap (about 25 ns to
// make) but gives larger ones an off-heap backing store (about 250 ns each, measured on a
// 2-vCPU guest: as much as packing a small message). So mid-sized results are carved
// from 8 KiB slabs, the way Node's Buffer pool works. A view is never written again once handed
// out; it shares its slab's ArrayBuffer, so it must not be transferred, and a view kept for long
// keeps its (at most 8 KiB) slab alive. Larger results amortize their own allocation.
const ON_HEAP_MAX = 64;
const POOLED_MAX = 512;
const SLAB_BYTES = 8192;
let slab = new Uint8Array(0);
/**
 * The encoding of every protobuf default value (0, false, ""): one shared empty array, since
 * nothing can be written into zero bytes. Saves an allocation per message carrying a zero.
 */
const EMPTY = new Uint8Array(0);
let slabUsed = 0;

/** Memory for `n` bytes of encoded output: exact for small and large sizes, pooled in between. */
export function allocEncoded(n: number): Uint8Array {
  if (n <= ON_HEAP_MAX || n > POOLED_MAX) return new Uint8Array(n);
  if (slabUsed + n > slab.length) {
    slab = new Uint8Array(SLAB_BYTES);
    slabUsed = 0;
  }
  const view = slab.subarray(slabUsed, slabUsed + n);
  slabUsed += n;
  return view;
}

// ---------------------------------------------------------------------------------------------
// Protobuf wrapper helpers
// ---------------------------------------------------------------------------------------------

// One scratch per thread: float bit patterns in explicit little-endian order.
const scratchBuf = new ArrayBuffer(8);
const scratch = new DataView(scratchBuf);
const scratchBytes = new Uint8Array(scratchBuf);
// Shared by every string encode on this thread; `finish()` hands out a copy.
const writer = new ProtoWriter(1024);

const TAG_VARINT_1 = 0x08;
const TAG_I64_1 = 0x09;
const TAG_LEN_1 = 0x0a;
const TAG_I32_1 = 0x0d;

/**
 * The slow path of every wrapper decode: a full protobuf parse that skips unknown fields and keeps
 * the last occurrence of field 1 (the fast paths handle the canonical single-field layouts).
 */
function parseWrapper<T>(bytes: Uint8Array, wireType: WireTypeValue, typename: string, read: (r: ProtoReader) => T, dflt: T): T {
  const r = new ProtoReader(bytes);
  let value = dflt;
  while (!r.done) {
    const tag = r.tag();
    if (tag >>> 3 !== 1) {
      r.skip(tag);
    } else if ((tag & 7) !== wireType) {
      throw malformed(typename, `field 1 has wire type ${tag & 7}, expected ${wireType}`);
    } else {
      value = read(r);
    }
  }
  return value;
}

const readSfixed32 = (r: ProtoReader): number => r.sfixed32();
const readSfixed64Big = (r: ProtoReader): bigint => r.sfixed64Big();
const readFloat = (r: ProtoReader): number => r.float();
const readDouble = (r: ProtoReader): number => r.double();
const readBool = (r: ProtoReader): boolean => r.bool();
const readString = (r: ProtoReader): string => r.string();

function freezeType<T>(t: ValueType<T>): ValueType<T> {
  return Object.freeze(t);
}

// ---------------------------------------------------------------------------------------------
// int: sfixed32
// ---------------------------------------------------------------------------------------------

const INT_RULE = 'an integer in [-2147483648, 2147483647]';

function checkInt(value: unknown, path = 'value'): asserts value is number {
  if (typeof value !== 'number' || (value | 0) !== value) throw mismatch(path, INT_RULE, TYPENAMES.int, value);
}

function writeInt(value: number, out: Uint8Array, at: number): void {
  out[at] = TAG_I32_1;
  // Typed-array stores keep the low 8 bits: two's complement little-endian for negatives.
  out[at + 1] = value;
  out[at + 2] = value >> 8;
  out[at + 3] = value >> 16;
  out[at + 4] = value >> 24;
}

const INT: ValueType<number> = freezeType({
  typename: TYPENAMES.int,
  kind: 'int',
  immutable: true,
  check: checkInt,
  encode(value: number, path?: string): Uint8Array {
    checkInt(value, path);
    if (value === 0) return EMPTY;
    const out = new Uint8Array(5);
    writeInt(value, out, 0);
    return out;
  },
  decode(bytes: Uint8Array): number {
    if (bytes.length === 0) return 0;
    if (bytes.length === 5 && bytes[0] === TAG_I32_1) {
      return bytes[1]! | (bytes[2]! << 8) | (bytes[3]! << 16) | (bytes[4]! << 24);
    }
    return parseWrapper(bytes, WireType.I32, TYPENAMES.int, readSfixed32, 0);
  },
});

// ---------------------------------------------------------------------------------------------
// long: sfixed64, as a safe-integer number (default) or as a bigint
// ---------------------------------------------------------------------------------------------

const TWO_32 = 4294967296;
const LONG_NUMBER_RULE = 'a safe integer (|n| <= 2^53 - 1; use type.long({ as: \'bigint\' }) for all 64 bits)';
const LONG_BIGINT_RULE = 'a bigint in [-2^63, 2^63 - 1]';
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

function checkLongNumber(value: unknown, path = 'value'): asserts value is number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) throw mismatch(path, LONG_NUMBER_RULE, TYPENAMES.long, value);
}

function checkLongBigint(value: unknown, path = 'value'): asserts value is bigint {
  if (typeof value !== 'bigint' || value < INT64_MIN || value > INT64_MAX) {
    throw mismatch(path, LONG_BIGINT_RULE, TYPENAMES.long, value);
  }
}

function long64Bytes(lo: number, hi: number): Uint8Array {
  const out = new Uint8Array(9);
  writeLong64(lo, hi, out, 0);
  return out;
}

function writeLong64(lo: number, hi: number, out: Uint8Array, at: number): void {
  out[at] = TAG_I64_1;
  out[at + 1] = lo;
  out[at + 2] = lo >>> 8;
  out[at + 3] = lo >>> 16;
  out[at + 4] = lo >>> 24;
  out[at + 5] = hi;
  out[at + 6] = hi >>> 8;
  out[at + 7] = hi >>> 16;
  out[at + 8] = hi >>> 24;
}

/** Reads a long as a bigint: the canonical 9-byte layout directly, anything else by parsing. */
function decodeLongBig(bytes: Uint8Array): bigint {
  if (bytes.length === 0) return 0n;
  if (bytes.length === 9 && bytes[0] === TAG_I64_1) {
    const lo = (bytes[1]! | (bytes[2]! << 8) | (bytes[3]! << 16) | (bytes[4]! << 24)) >>> 0;
    const hi = bytes[5]! | (bytes[6]! << 8) | (bytes[7]! << 16) | (bytes[8]! << 24);
    return (BigInt(hi) << 32n) | BigInt(lo);
  }
  return parseWrapper(bytes, WireType.I64, TYPENAMES.long, readSfixed64Big, 0n);
}

const LONG_NUMBER: ValueType<number> = freezeType({
  typename: TYPENAMES.long,
  kind: 'long',
  immutable: true,
  check: checkLongNumber,
  encode(value: number, path?: string): Uint8Array {
    checkLongNumber(value, path);
    if (value === 0) return EMPTY;
    // ToUint32 is modulo 2^32 and floor division keeps the sign: two's complement halves.
    return long64Bytes(value >>> 0, Math.floor(value / TWO_32));
  },
  decode(bytes: Uint8Array): number {
    if (bytes.length === 9 && bytes[0] === TAG_I64_1) {
      const lo = (bytes[1]! | (bytes[2]! << 8) | (bytes[3]! << 16) | (bytes[4]! << 24)) >>> 0;
      const hi = bytes[5]! | (bytes[6]! << 8) | (bytes[7]! << 16) | (bytes[8]! << 24);
      // Exact while safe; rounding is monotone, so an unsafe value cannot round into range.
      const n = hi * TWO_32 + lo;
      if (Number.isSafeInteger(n)) return n;
    }
    const big = decodeLongBig(bytes);
    if (big < -9007199254740991n || big > 9007199254740991n) {
      throw new WeftError(
        'ERR_WEFT_TYPE_MISMATCH',
        `${TYPENAMES.long} value ${big} is outside the safe integer range of a JS number; read it with type.long({ as: 'bigint' })`,
      );
    }
    return Number(big);
  },
});

const LONG_BIGINT: ValueType<bigint> = freezeType({
  typename: TYPENAMES.long,
  kind: 'long',
  immutable: true,
  check: checkLongBigint,
  encode(value: bigint, path?: string): Uint8Array {
    checkLongBigint(value, path);
    if (value === 0n) return EMPTY;
    const u = BigInt.asUintN(64, value);
    return long64Bytes(Number(u & 0xffffffffn), Number(u >> 32n));
  },
  decode: decodeLongBig,
});

// ---------------------------------------------------------------------------------------------
// float / double
// ---------------------------------------------------------------------------------------------

const FLT_MAX = 3.4028234663852886e38;
const FLOAT_RULE = 'a number within the float32 range (finite values up to ±3.4028234663852886e+38, ±Infinity or NaN)';

function checkFloat(value: unknown, path = 'value'): asserts value is number {
  // Finite doubles beyond FLT_MAX would silently become Infinity; the JS SDK refuses them too.
  if (typeof value !== 'number' || (Math.abs(value) > FLT_MAX && Number.isFinite(value))) {
    throw mismatch(path, FLOAT_RULE, TYPENAMES.float, value);
  }
}

function checkDouble(value: unknown, path = 'value'): asserts value is number {
  if (typeof value !== 'number') throw mismatch(path, 'a number', TYPENAMES.double, value);
}

const FLOAT: ValueType<number> = freezeType({
  typename: TYPENAMES.float,
  kind: 'float',
  immutable: true,
  check: checkFloat,
  encode(value: number, path?: string): Uint8Array {
    checkFloat(value, path);
    if (value === 0 && !Object.is(value, -0)) return EMPTY;
    const out = new Uint8Array(5);
    out[0] = TAG_I32_1;
    if (value !== value) {
      // NaN: the JS SDK's pattern, so weft's bytes equal the SDK's for every non-tie value.
      out[1] = 0xff;
      out[2] = 0xff;
      out[3] = 0xff;
      out[4] = 0x7f;
      return out;
    }
    scratch.setFloat32(0, value, true);
    out[1] = scratchBytes[0]!;
    out[2] = scratchBytes[1]!;
    out[3] = scratchBytes[2]!;
    out[4] = scratchBytes[3]!;
    return out;
  },
  decode(bytes: Uint8Array): number {
    if (bytes.length === 0) return 0;
    if (bytes.length === 5 && bytes[0] === TAG_I32_1) {
      scratchBytes[0] = bytes[1]!;
      scratchBytes[1] = bytes[2]!;
      scratchBytes[2] = bytes[3]!;
      scratchBytes[3] = bytes[4]!;
      return scratch.getFloat32(0, true);
    }
    return parseWrapper(bytes, WireType.I32, TYPENAMES.float, readFloat, 0);
  },
});

function writeDouble(value: number, out: Uint8Array, at: number): void {
  out[at] = TAG_I64_1;
  if (value !== value) {
    out.fill(0xff, at + 1, at + 8);
    out[at + 8] = 0x7f;
    return;
  }
  scratch.setFloat64(0, value, true);
  for (let i = 0; i < 8; i++) out[at + 1 + i] = scratchBytes[i] as number;
}

const DOUBLE: ValueType<number> = freezeType({
  typename: TYPENAMES.double,
  kind: 'double',
  immutable: true,
  check: checkDouble,
  encode(value: number, path?: string): Uint8Array {
    checkDouble(value, path);
    if (value === 0 && !Object.is(value, -0)) return EMPTY;
    const out = new Uint8Array(9);
    writeDouble(value, out, 0);
    return out;
  },
  decode(bytes: Uint8Array): number {
    if (bytes.length === 0) return 0;
    if (bytes.length === 9 && bytes[0] === TAG_I64_1) {
      for (let i = 0; i < 8; i++) scratchBytes[i] = bytes[i + 1]!;
      return scratch.getFloat64(0, true);
    }
    return parseWrapper(bytes, WireType.I64, TYPENAMES.double, readDouble, 0);
  },
});

// ---------------------------------------------------------------------------------------------
// bool, string, bytes
// ---------------------------------------------------------------------------------------------

function checkBool(value: unknown, path = 'value'): asserts value is boolean {
  if (typeof value !== 'boolean') throw mismatch(path, 'a boolean', TYPENAMES.bool, value);
}

const BOOL: ValueType<boolean> = freezeType({
  typename: TYPENAMES.bool,
  kind: 'bool',
  immutable: true,
  check: checkBool,
  encode(value: boolean, path?: string): Uint8Array {
    checkBool(value, path);
    return value ? Uint8Array.of(TAG_VARINT_1, 1) : EMPTY;
  },
  decode(bytes: Uint8Array): boolean {
    if (bytes.length === 0) return false;
    if (bytes.length === 2 && bytes[0] === TAG_VARINT_1 && bytes[1]! < 0x80) return bytes[1] !== 0;
    return parseWrapper(bytes, WireType.VARINT, TYPENAMES.bool, readBool, false);
  },
});

function checkString(value: unknown, path = 'value'): asserts value is string {
  if (typeof value !== 'string') throw mismatch(path, 'a string', TYPENAMES.string, value);
  // A lone surrogate has no UTF-8 form: it would arrive as U+FFFD (Java SDK) or as bytes that
  // are not UTF-8 at all (JS SDK). Refuse it rather than store a different string.
  if (!isWellFormed(value)) throw mismatch(path, 'a well-formed string (no lone surrogates)', TYPENAMES.string, value);
}

const STRING: ValueType<string> = freezeType({
  typename: TYPENAMES.string,
  kind: 'string',
  immutable: true,
  check: checkString,
  encode(value: string, path = 'value'): Uint8Array {
    checkString(value, path);
    if (value.length === 0) return EMPTY;
    if (value.length > LIMITS.maxValueBytes) throw tooLarge(path, value.length, TYPENAMES.string, true);
    const out = writer.reset().uint32(TAG_LEN_1).string(value).finish(allocEncoded);
    if (out.length > LIMITS.maxValueBytes) throw tooLarge(path, out.length, TYPENAMES.string);
    return out;
  },
  decode(bytes: Uint8Array): string {
    const n = bytes.length;
    if (n === 0) return '';
    // Canonical short layout: 0a, a one-byte length, the text.
    if (bytes[0] === TAG_LEN_1 && n >= 2 && bytes[1]! < 0x80 && bytes[1] === n - 2) return decodeUtf8(bytes, 2, n);
    return parseWrapper(bytes, WireType.LEN, TYPENAMES.string, readString, '');
  },
});

function checkBytes(value: unknown, path = 'value'): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) throw mismatch(path, 'a Uint8Array', TYPENAMES.bytes, value);
}

/** A plain Uint8Array copy (not a Buffer, not a view of a larger buffer). */
function copyBytes(src: Uint8Array): Uint8Array {
  const out = new Uint8Array(src.length);
  out.set(src);
  return out;
}

const BYTES: ValueType<Uint8Array> = freezeType({
  typename: TYPENAMES.bytes,
  kind: 'bytes',
  immutable: false,
  check: checkBytes,
  encode(value: Uint8Array, path = 'value'): Uint8Array {
    checkBytes(value, path);
    if (value.length > LIMITS.maxValueBytes) throw tooLarge(path, value.length, TYPENAMES.bytes);
    // A copy: the caller may keep mutating its array after handing it over.
    const out = allocEncoded(value.length);
    out.set(value);
    return out;
  },
  // Decoded values go to user code, which may transfer them: an exact, unshared copy.
  decode: copyBytes,
});

// ---------------------------------------------------------------------------------------------
// json / msgpack: checking what the encoding can carry
// ---------------------------------------------------------------------------------------------

/**
 * Thrown inside the walk and caught at its top: each container frame it unwinds through adds its
 * key (and object), so the happy path pays nothing for paths or cycle detection.
 */
class WalkFailure {
  readonly keys: Array<string | number> = [];
  readonly objs: object[] = [];
  constructor(
    readonly code: 'ERR_WEFT_UNSERIALIZABLE' | 'ERR_WEFT_TOO_LARGE',
    /** What is wrong, after the path: `is a function`. */
    readonly problem: string,
    /** Said after "which <typename> cannot carry", e.g. `; use an array`. */
    readonly hint = '',
    /** Set for depth overflows: the walk may have been going round a cycle. */
    readonly depthOverflow = false,
  ) {}
}

const JSON_MODE = 1;
const MSGPACK_MODE = 2;
type WalkMode = typeof JSON_MODE | typeof MSGPACK_MODE;

const UINT64_MAX = 2n ** 64n - 1n;
const IDENT_RE = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

function formatPath(root: string, keys: ReadonlyArray<string | number>): string {
  let p = root;
  for (const k of keys) {
    if (typeof k === 'number') p += `[${k}]`;
    else p += IDENT_RE.test(k) ? `.${k}` : `[${JSON.stringify(k)}]`;
  }
  return p;
}

function article(name: string): string {
  // "a Uint8Array" but "an Int8Array" / "an ArrayBuffer": U is read "you" in these names.
  return /^[AEIO]/.test(name) ? `an ${name}` : `a ${name}`;
}

/** Why a non-plain object cannot travel, or undefined when it can. */
function objectProblem(o: object, proto: object | null, mode: WalkMode): WalkFailure | undefined {
  if (mode === MSGPACK_MODE) {
    // Date round-trips through the standard timestamp extension; Uint8Array/Buffer through bin
    // (decoded as a Buffer, which is a Uint8Array).
    if (proto === Date.prototype || proto === Uint8Array.prototype || proto === Buffer.prototype) return undefined;
  }
  if (o instanceof Map) return new WalkFailure('ERR_WEFT_UNSERIALIZABLE', 'is a Map', '; use a plain object or an array of [key, value] pairs');
  if (o instanceof Set) return new WalkFailure('ERR_WEFT_UNSERIALIZABLE', 'is a Set', '; use an array');
  if (o instanceof Date) {
    return mode === JSON_MODE
      ? new WalkFailure('ERR_WEFT_UNSERIALIZABLE', 'is a Date', ' (it would arrive as a string); use an ISO string or epoch milliseconds')
      : new WalkFailure('ERR_WEFT_UNSERIALIZABLE', `is an instance of ${o.constructor.name}`, ' (it would arrive as a plain Date)');
  }
  if (ArrayBuffer.isView(o) || o instanceof ArrayBuffer || o instanceof SharedArrayBuffer) {
    const name = (proto as { constructor?: { name?: string } } | null)?.constructor?.name ?? 'binary view';
    const ok = mode === MSGPACK_MODE ? '; use a Uint8Array' : '; use an array of numbers or a base64 string';
    return new WalkFailure('ERR_WEFT_UNSERIALIZABLE', `is ${article(name)}`, ok);
  }
  const ctor = (proto as { constructor?: { name?: string } } | null)?.constructor?.name || 'an anonymous class';
  return new WalkFailure(
    'ERR_WEFT_UNSERIALIZABLE',
    `is an instance of ${ctor}`,
    ' (its prototype and methods would be lost); use a plain object',
  );
}

/**
 * The size estimate of a leaf (one byte per value plus string lengths), after checking it: throws
 * a {@link WalkFailure} for a leaf the encoding cannot carry unchanged.
 */
function leaf(v: unknown, mode: WalkMode, top: boolean, inArray: boolean): number {
  switch (typeof v) {
    case 'number':
      if (mode === JSON_MODE && !Number.isFinite(v)) {
        throw new WalkFailure('ERR_WEFT_UNSERIALIZABLE', `is ${v}`, ' (it would arrive as null)');
      }
      return 1;
    case 'string':
      // JSON escapes lone surrogates (and gets them back); msgpack would turn them into U+FFFD.
      if (mode === MSGPACK_MODE && !isWellFormed(v)) {
        throw new WalkFailure('ERR_WEFT_UNSERIALIZABLE', 'is a string with a lone surrogate', ' (it would arrive changed)');
      }
      return 1 + v.length;
    case 'boolean':
      return 1;
    case 'undefined':
      // msgpackr carries undefined; JSON drops it from objects (reading the key still gives
      // undefined, so that is allowed) but turns it into null in arrays and fails at the top.
      if (mode === JSON_MODE && (inArray || top)) {
        throw new WalkFailure('ERR_WEFT_UNSERIALIZABLE', 'is undefined', inArray ? ' (it would arrive as null)' : '');
      }
      return 1;
    case 'bigint':
      if (mode === JSON_MODE) throw new WalkFailure('ERR_WEFT_UNSERIALIZABLE', 'is a bigint');
      if (v < INT64_MIN || v > UINT64_MAX) {
        throw new WalkFailure('ERR_WEFT_UNSERIALIZABLE', 'is a bigint outside [-2^63, 2^64 - 1]');
      }
      return 9;
    case 'function':
      throw new WalkFailure('ERR_WEFT_UNSERIALIZABLE', 'is a function');
    case 'symbol':
      throw new WalkFailure('ERR_WEFT_UNSERIALIZABLE', 'is a symbol');
    default:
      // null (objects never reach here)
      return 1;
  }
}

/**
 * Checks a container (array, plain object, or a special object) and everything inside it; returns
 * a lower bound of its encoded size, so oversized values (and shared-reference DAGs that would
 * explode) stop early. Leaves are checked inline: most values are leaves, and a call per leaf is
 * what made this walk as slow as packing itself.
 */
function node(o: object, mode: WalkMode, depth: number): number {
  if (depth >= LIMITS.maxValueDepth) {
    throw new WalkFailure(
      'ERR_WEFT_UNSERIALIZABLE',
      `is nested more than ${LIMITS.maxValueDepth} levels deep`,
      ' (LIMITS.maxValueDepth)',
      true,
    );
  }
  let size = 1;
  if (Array.isArray(o)) {
    const arr = o as unknown[];
    let i = 0;
    try {
      for (; i < arr.length; i++) {
        const c = arr[i];
        size += typeof c === 'object' && c !== null ? node(c, mode, depth + 1) : leaf(c, mode, false, true);
        if (size > LIMITS.maxValueBytes) throw new WalkFailure('ERR_WEFT_TOO_LARGE', '');
      }
    } catch (f) {
      if (f instanceof WalkFailure) {
        f.keys.push(i);
        f.objs.push(o);
      }
      throw f;
    }
    return size;
  }
  const proto = Object.getPrototypeOf(o) as object | null;
  if (proto !== Object.prototype && proto !== null) {
    const problem = objectProblem(o, proto, mode);
    if (problem !== undefined) throw problem;
    return size + (o instanceof Uint8Array ? o.length : 8);
  }
  const rec = o as Record<string, unknown>;
  // for-in, not Object.keys: no array per object, and the same keys in the same order (a plain
  // object inherits no enumerable keys); it is also how msgpackr itself enumerates.
  let key = '';
  try {
    for (key in rec) {
      if (mode === MSGPACK_MODE) {
        // msgpackr renames "__proto__" (a prototype-pollution guard) and mangles lone surrogates.
        if (key === '__proto__') throw new WalkFailure('ERR_WEFT_UNSERIALIZABLE', 'is a "__proto__" key', ' (it would arrive renamed)');
        if (!isWellFormed(key)) throw new WalkFailure('ERR_WEFT_UNSERIALIZABLE', 'is a key with a lone surrogate', ' (it would arrive changed)');
      }
      const c = rec[key];
      size += key.length + (typeof c === 'object' && c !== null ? node(c, mode, depth + 1) : leaf(c, mode, false, false));
      if (size > LIMITS.maxValueBytes) throw new WalkFailure('ERR_WEFT_TOO_LARGE', '');
    }
  } catch (f) {
    if (f instanceof WalkFailure) {
      f.keys.push(key);
      f.objs.push(o);
    }
    throw f;
  }
  // Both encodings skip symbol keys: an enumerable one is data that would vanish.
  const symbols = Object.getOwnPropertySymbols(o);
  for (let i = 0; i < symbols.length; i++) {
    const sym = symbols[i]!;
    if (Object.prototype.propertyIsEnumerable.call(o, sym)) {
      const f = new WalkFailure('ERR_WEFT_UNSERIALIZABLE', `has a symbol key ${sym.toString()}`, ' (it would be dropped)');
      f.objs.push(o);
      throw f;
    }
  }
  return size;
}

/** Walks a value ({@link node} / {@link leaf}) and turns a failure into the WeftError users see. */
function checkCarriable(value: unknown, mode: WalkMode, typename: string, path: string): void {
  try {
    const size = typeof value === 'object' && value !== null ? node(value, mode, 0) : leaf(value, mode, true, false);
    if (size > LIMITS.maxValueBytes) throw new WalkFailure('ERR_WEFT_TOO_LARGE', '');
  } catch (f) {
    if (!(f instanceof WalkFailure)) throw f;
    // Frames pushed innermost first.
    const keys = f.keys.reverse();
    const objs = f.objs.reverse();
    if (f.code === 'ERR_WEFT_TOO_LARGE') {
      throw new WeftError(
        'ERR_WEFT_TOO_LARGE',
        `${path} encodes to more than ${LIMITS.maxValueBytes} bytes as ${typename} (LIMITS.maxValueBytes)`,
      );
    }
    if (f.depthOverflow) {
      // objs[i] is the container at depth i. The first one that reappears deeper is a cycle.
      const seen = new Map<object, number>();
      for (let j = 0; j < objs.length; j++) {
        const first = seen.get(objs[j]!);
        if (first !== undefined) {
          throw new WeftError(
            'ERR_WEFT_UNSERIALIZABLE',
            `${formatPath(path, keys.slice(0, j))} refers back to ${formatPath(path, keys.slice(0, first))} (a cycle), which ${typename} cannot carry`,
          );
        }
        seen.set(objs[j]!, j);
      }
      throw new WeftError(
        'ERR_WEFT_UNSERIALIZABLE',
        `${path} is nested more than ${LIMITS.maxValueDepth} levels deep, which ${typename} cannot carry (LIMITS.maxValueDepth)`,
      );
    }
    // A symbol-key failure is about the object itself: it pushed the object but no key.
    throw new WeftError('ERR_WEFT_UNSERIALIZABLE', `${formatPath(path, keys)} ${f.problem}, which ${typename} cannot carry${f.hint}`);
  }
}

// ---------------------------------------------------------------------------------------------
// json
// ---------------------------------------------------------------------------------------------

const utf8 = new TextEncoder();
// Reused for every json encode on this thread; the result is copied out exactly sized.
let jsonScratch = new Uint8Array(4096);
const jsonTypes = new Map<string, ValueType<unknown>>();

function makeJson(typename: string): ValueType<unknown> {
  const check = (value: unknown, path = 'value'): void => {
    // Primitives need no walk; strings need none for JSON either (it escapes lone surrogates).
    if (typeof value === 'string' || typeof value === 'boolean' || value === null) return;
    if (typeof value === 'number' && Number.isFinite(value)) return;
    checkCarriable(value, JSON_MODE, typename, path);
  };
  return freezeType<unknown>({
    typename,
    kind: 'json',
    immutable: false,
    check,
    encode(value: unknown, path = 'value'): Uint8Array {
      check(value, path);
      // The JS SDK's JsonType writes Buffer.from(JSON.stringify(v)): the same UTF-8 bytes.
      const text = JSON.stringify(value);
      if (text.length > LIMITS.maxValueBytes) throw tooLarge(path, text.length, typename, true);
      // JSON.stringify escapes lone surrogates, so the text is well-formed: <= 3 bytes per unit.
      if (jsonScratch.length < text.length * 3) jsonScratch = new Uint8Array(Math.max(text.length * 3, 2 * jsonScratch.length));
      const { written } = utf8.encodeInto(text, jsonScratch);
      if (written > LIMITS.maxValueBytes) throw tooLarge(path, written, typename);
      const out = allocEncoded(written);
      out.set(jsonScratch.subarray(0, written));
      return out;
    },
    decode(bytes: Uint8Array): unknown {
      const text = decodeUtf8(bytes, 0, bytes.length);
      try {
        return JSON.parse(text) as unknown;
      } catch (err) {
        throw malformed(typename, (err as Error).message, err);
      }
    },
  });
}

// ---------------------------------------------------------------------------------------------
// msgpack
// ---------------------------------------------------------------------------------------------

/**
 * The msgpack codec, and why each option:
 * - `useRecords: false`: plain MessagePack maps, not msgpackr's record extension, so any
 *   MessagePack library (a Python or Go StateFun function) reads weft.types/msgpack.
 * - `mapsAsObjects: true`: maps decode as plain objects (they came from plain objects; JS Maps are
 *   refused by the check rather than silently turned into objects).
 * - `variableMapSize: true`: fixmap/map16/map32 by size: 2 bytes less for small objects, and no
 *   65535-key ceiling.
 * - `int64AsType: 'bigint'`: msgpackr writes numbers beyond 32 bits as float64, so int64/uint64
 *   only come from bigints (or another language's integers): decoding them as bigint makes bigints
 *   round-trip and never loses a digit.
 * - `copyBuffers: true`: decoded Uint8Arrays are copies, never views of the input, which the
 *   engine reuses (ring frames, LMDB pages).
 * - `moreTypes` stays off: Set/Map/typed-array extensions are msgpackr-only; the check refuses
 *   those values instead.
 * - `encodeUndefinedAsNil` stays off: undefined round-trips (msgpackr's fixext convention).
 */
const packr = new Packr({
  useRecords: false,
  mapsAsObjects: true,
  variableMapSize: true,
  int64AsType: 'bigint',
  copyBuffers: true,
  moreTypes: false,
});

const msgpackTypes = new Map<string, ValueType<unknown>>();

/** The single msgpack byte of `value` (positive/negative fixint, nil, false, true), or -1. */
function oneByte(value: unknown): number {
  if (typeof value === 'number') {
    // -0 is written by msgpackr as an int 0 as well (see framing.ts: -0 decodes as 0).
    if ((value | 0) === value && value >= -32 && value < 128) return value & 0xff;
    return -1;
  }
  if (value === null) return 0xc0;
  if (value === false) return 0xc2;
  if (value === true) return 0xc3;
  return -1;
}

/**
 * A built-in type whose encoding is a few bytes of known size, written straight into a caller's
 * buffer (a snapshot's record) without the typed array `encode` returns. A snapshot encodes every
 * changed instance's values: for an int that array was most of what the capture allocated.
 */
export interface FixedWriter {
  /** Validates `value` as `encode` does; the length of its encoding (0 for the default value). */
  length(value: unknown, path?: string): number;
  /** Writes the `length(value)` bytes `encode(value)` returns, at `out[at]`. */
  write(value: unknown, out: Uint8Array, at: number): void;
}

const FIXED_INT: FixedWriter = {
  length(value: unknown, path?: string): number {
    checkInt(value, path);
    return value === 0 ? 0 : 5;
  },
  write(value: unknown, out: Uint8Array, at: number): void {
    if (value !== 0) writeInt(value as number, out, at);
  },
};

const FIXED_LONG: FixedWriter = {
  length(value: unknown, path?: string): number {
    checkLongNumber(value, path);
    return value === 0 ? 0 : 9;
  },
  write(value: unknown, out: Uint8Array, at: number): void {
    const v = value as number;
    if (v !== 0) writeLong64(v >>> 0, Math.floor(v / TWO_32), out, at);
  },
};

const FIXED_DOUBLE: FixedWriter = {
  length(value: unknown, path?: string): number {
    checkDouble(value, path);
    return value === 0 && !Object.is(value, -0) ? 0 : 9;
  },
  write(value: unknown, out: Uint8Array, at: number): void {
    const v = value as number;
    if (!(v === 0 && !Object.is(v, -0))) writeDouble(v, out, at);
  },
};

const FIXED_BOOL: FixedWriter = {
  length(value: unknown, path?: string): number {
    checkBool(value, path);
    return value ? 2 : 0;
  },
  write(value: unknown, out: Uint8Array, at: number): void {
    if (value) {
      out[at] = TAG_VARINT_1;
      out[at + 1] = 1;
    }
  },
};

/** The {@link FixedWriter} of `type`, or undefined when its encoding is not of a small known size. */
export function fixedWriter(type: ValueType<unknown>): FixedWriter | undefined {
  if (type === (INT as ValueType<unknown>)) return FIXED_INT;
  if (type === (LONG_NUMBER as ValueType<unknown>)) return FIXED_LONG;
  if (type === (DOUBLE as ValueType<unknown>)) return FIXED_DOUBLE;
  if (type === (BOOL as ValueType<unknown>)) return FIXED_BOOL;
  return undefined;
}

const fixedByEncoder = new WeakMap<(value: unknown) => Uint8Array, FixedWriter>();

/**
 * `type.encode` bound once: what a lazily encoded state value keeps (state/instance.ts Slot). When
 * the type has a {@link FixedWriter}, {@link fixedWriterOf} finds it from the function.
 */
export function boundEncoder(type: ValueType<unknown>): (value: unknown) => Uint8Array {
  const encode = (value: unknown): Uint8Array => type.encode(value);
  const fixed = fixedWriter(type);
  if (fixed !== undefined) fixedByEncoder.set(encode, fixed);
  return encode;
}

/** The {@link FixedWriter} of a function made by {@link boundEncoder}, if its type has one. */
export function fixedWriterOf(encode: (value: unknown) => Uint8Array): FixedWriter | undefined {
  return fixedByEncoder.get(encode);
}

/**
 * A number's msgpack bytes (the bytes msgpackr writes: codec/msgpack-number.ts), without its
 * per-call setup and the copy out of its shared buffer. A reply or message carrying a number is
 * common, and msgpackr cost ~190 ns and a few hundred bytes of garbage for one.
 */
function packNumber(v: number): Uint8Array {
  return numberScratch.slice(0, writeMsgpackNumber(v, numberScratch, numberView, 0));
}
const numberScratch = new Uint8Array(MSGPACK_NUMBER_MAX_BYTES);
const numberView = new DataView(numberScratch.buffer);

/**
 * The number `bytes` hold when they are exactly one msgpack uint 8/16/32, int 8/16/32 or float64
 * (what {@link packNumber} writes for a number of more than one byte), else undefined: decoded without msgpackr, whose `unpack` makes
 * a DataView (and adds a property) for every new array it is given — every payload is one.
 */
function unpackNumber(bytes: Uint8Array): number | undefined {
  const b = bytes[0] as number;
  switch (bytes.length) {
    case 2:
      if (b === 0xcc) return bytes[1] as number;
      if (b === 0xd0) return ((bytes[1] as number) << 24) >> 24;
      return undefined;
    case 3:
      if (b === 0xcd) return ((bytes[1] as number) << 8) | (bytes[2] as number);
      if (b === 0xd1) return ((((bytes[1] as number) << 8) | (bytes[2] as number)) << 16) >> 16;
      return undefined;
    case 5: {
      if (b !== 0xce && b !== 0xd2) return undefined;
      const v = ((bytes[1] as number) << 24) | ((bytes[2] as number) << 16) | ((bytes[3] as number) << 8) | (bytes[4] as number);
      return b === 0xce ? v >>> 0 : v;
    }
    case 9:
      return b === 0xcb ? readFloat64BE(bytes, 1) : undefined;
    default:
      return undefined;
  }
}

let sharedOneBytes: Uint8Array[] | undefined;

/**
 * The encoded bytes of a one-byte msgpack value (small int, boolean, null) as a SHARED array, or
 * undefined for any other type or value. Only for payloads that get copied before any user code
 * sees them: main's ingress (into a ring frame) and `ctx.send` (into a frame, or copied by
 * Dispatcher.route for a local target). One fresh typed array per message was half of everything
 * main allocated per send. Nothing may write to the result.
 */
export function sharedOneBytePayload(type: ValueType<unknown>, value: unknown): Uint8Array | undefined {
  if (type.kind !== 'msgpack') return undefined;
  const one = oneByte(value);
  if (one < 0) return undefined;
  sharedOneBytes ??= Array.from({ length: 256 }, (_, b) => Uint8Array.of(b));
  return sharedOneBytes[one];
}

/** `bytes` is one of the shared arrays {@link sharedOneBytePayload} hands out. */
export function isSharedPayload(bytes: Uint8Array): boolean {
  return bytes.length === 1 && sharedOneBytes !== undefined && sharedOneBytes[bytes[0] as number] === bytes;
}

function makeMsgpack(typename: string): ValueType<unknown> {
  const check = (value: unknown, path = 'value'): void => {
    // The fast path: primitives (other than odd strings and bigints) need no walk.
    switch (typeof value) {
      case 'number':
      case 'boolean':
      case 'undefined':
        return;
      case 'string':
        if (isWellFormed(value)) return;
        break;
      case 'object':
        if (value === null) return;
        break;
      default:
        break;
    }
    checkCarriable(value, MSGPACK_MODE, typename, path);
  };
  return freezeType<unknown>({
    typename,
    kind: 'msgpack',
    immutable: false,
    check,
    encode(value: unknown, path = 'value'): Uint8Array {
      // One-byte values (small ints, booleans, null): the bytes msgpackr writes, without its
      // per-call setup. A fresh array each time: payloads are handed to user code (msg.payload).
      const one = oneByte(value);
      if (one >= 0) return Uint8Array.of(one);
      if (typeof value === 'number') return packNumber(value);
      check(value, path);
      let packed: Uint8Array;
      try {
        packed = packr.pack(value);
      } catch (err) {
        throw new WeftError('ERR_WEFT_UNSERIALIZABLE', `${path} cannot be encoded as ${typename}: ${(err as Error).message}`, { cause: err });
      }
      if (packed.length > LIMITS.maxValueBytes) throw tooLarge(path, packed.length, typename);
      // msgpackr returns a view of its module-wide buffer, which every Packr on this thread
      // shares and which another one may be told to reuse (useBuffer): copy out before any other
      // code runs.
      const out = allocEncoded(packed.length);
      out.set(packed);
      return out;
    },
    decode(bytes: Uint8Array): unknown {
      if (bytes.length === 1) {
        const b = bytes[0] as number;
        if (b < 0x80) return b;
        if (b >= 0xe0) return b - 0x100;
        if (b === 0xc0) return null;
        if (b === 0xc2) return false;
        if (b === 0xc3) return true;
      } else {
        const n = unpackNumber(bytes);
        if (n !== undefined) return n;
      }
      // msgpackr's native decoder rejects views of a SharedArrayBuffer: copy those.
      const src = bytes.buffer instanceof SharedArrayBuffer ? copyBytes(bytes) : bytes;
      try {
        return packr.unpack(src) as unknown;
      } catch (err) {
        throw malformed(typename, (err as Error).message, err);
      }
    },
  });
}

// ---------------------------------------------------------------------------------------------
// custom
// ---------------------------------------------------------------------------------------------

/** The codec of a {@link type.custom} type. */
export interface CustomCodec<T> {
  /** Encodes a value. Must return bytes it will not modify afterwards. Throw to refuse a value. */
  serialize(value: T): Uint8Array;
  /** Decodes bytes from `serialize`. Must not keep a reference to `bytes` (the engine reuses them). */
  deserialize(bytes: Uint8Array): T;
  /** Values are immutable primitives (decode once, share); default false (decode per read). */
  immutable?: boolean;
}

function makeCustom<T>(typename: string, codec: CustomCodec<T>): ValueType<T> {
  validateTypename(typename, 'type.custom() typename');
  const where = `type.custom(${JSON.stringify(typename)})`;
  if (typeof codec !== 'object' || codec === null) {
    throw new WeftError('ERR_WEFT_INVALID_ARG', `${where} codec must be an object { serialize, deserialize } (got ${describe(codec)})`);
  }
  const { serialize, deserialize, immutable = false } = codec;
  if (typeof serialize !== 'function') {
    throw new WeftError('ERR_WEFT_INVALID_ARG', `${where} serialize must be a function (got ${describe(serialize)})`);
  }
  if (typeof deserialize !== 'function') {
    throw new WeftError('ERR_WEFT_INVALID_ARG', `${where} deserialize must be a function (got ${describe(deserialize)})`);
  }
  if (typeof immutable !== 'boolean') {
    throw new WeftError('ERR_WEFT_INVALID_ARG', `${where} immutable must be a boolean (got ${describe(immutable)})`);
  }
  const encode = (value: T, path = 'value'): Uint8Array => {
    let out: unknown;
    try {
      out = serialize(value);
    } catch (err) {
      if (err instanceof WeftError) throw err;
      throw new WeftError('ERR_WEFT_UNSERIALIZABLE', `${path} cannot be serialized as ${typename}: ${(err as Error)?.message ?? String(err)}`, { cause: err });
    }
    if (!(out instanceof Uint8Array)) {
      throw new WeftError('ERR_WEFT_UNSERIALIZABLE', `${where} serialize must return a Uint8Array (got ${describe(out)})`);
    }
    if (out.length > LIMITS.maxValueBytes) throw tooLarge(path, out.length, typename);
    return out;
  };
  return freezeType<T>({
    typename,
    kind: 'custom',
    immutable,
    // A custom type knows its values only through its serializer: checking is encoding.
    check(value: unknown, path?: string): asserts value is T {
      encode(value as T, path);
    },
    encode,
    decode(bytes: Uint8Array): T {
      try {
        return deserialize(bytes);
      } catch (err) {
        if (err instanceof WeftError) throw err;
        throw malformed(typename, (err as Error)?.message ?? String(err), err);
      }
    },
  });
}

// ---------------------------------------------------------------------------------------------
// The public factory
// ---------------------------------------------------------------------------------------------

function long(): ValueType<number>;
function long(options: { as: 'number' }): ValueType<number>;
function long(options: { as: 'bigint' }): ValueType<bigint>;
function long(options?: { as: 'number' | 'bigint' }): ValueType<number> | ValueType<bigint> {
  if (options === undefined) return LONG_NUMBER;
  const as: unknown = typeof options === 'object' && options !== null ? options.as : undefined;
  if (as === 'number') return LONG_NUMBER;
  if (as === 'bigint') return LONG_BIGINT;
  throw new WeftError('ERR_WEFT_INVALID_ARG', `type.long() options.as must be 'number' or 'bigint' (got ${describe(as)})`);
}

function cached(cache: Map<string, ValueType<unknown>>, typename: string | undefined, dflt: string, what: string, make: (t: string) => ValueType<unknown>): ValueType<unknown> {
  const name = typename ?? dflt;
  let t = cache.get(name);
  if (t === undefined) {
    validateTypename(name, `${what} typename`);
    t = make(name);
    cache.set(name, t);
  }
  return t;
}

/**
 * The built-in value types. The primitives are StateFun's (same typenames and bytes), so values
 * cross to StateFun functions in any language unchanged.
 *
 * Each factory returns the same object for the same arguments (`type.int() === type.int()`,
 * `type.json('a/b') === type.json('a/b')`), which is how a module tells "the same type used twice"
 * from "two types claiming one typename".
 *
 * @example
 * ```ts
 * import { defineModule, type } from 'weft';
 *
 * interface Entry { at: number; amount: number }
 * const Money = type.custom<bigint>('bank.types/money', {
 *   serialize: (v) => new TextEncoder().encode(v.toString()),
 *   deserialize: (b) => BigInt(new TextDecoder().decode(b)),
 *   immutable: true,
 * });
 *
 * export default defineModule({
 *   functions: {
 *     'bank/account': {
 *       state: {
 *         balance: type.long(),                                   // number | undefined
 *         history: { type: type.json<Entry[]>(), expireAfterWrite: 86_400_000 },
 *         limit: Money,                                           // bigint | undefined
 *       },
 *       fn(ctx, msg) {
 *         const amount = msg.as(type.int());
 *         ctx.state.balance = (ctx.state.balance ?? 0) + amount;
 *         ctx.send({ type: 'bank/audit', id: ctx.self.id }, amount, { type: type.int() });
 *       },
 *     },
 *   },
 * });
 * ```
 */
export const type = Object.freeze({
  /** 32-bit signed integer (`io.statefun.types/int`). */
  int: (): ValueType<number> => INT,
  /**
   * 64-bit signed integer (`io.statefun.types/long`). As a `number` by default: encoding accepts
   * safe integers only (|n| <= 2^53 - 1) and decoding a larger stored value throws rather than
   * round it. `type.long({ as: 'bigint' })` carries the full range as `bigint`. Both read and
   * write the same bytes.
   */
  long,
  /** IEEE single (`io.statefun.types/float`); a number rounds to float32 on the way. */
  float: (): ValueType<number> => FLOAT,
  /** IEEE double (`io.statefun.types/double`). */
  double: (): ValueType<number> => DOUBLE,
  /** Boolean (`io.statefun.types/bool`). */
  bool: (): ValueType<boolean> => BOOL,
  /** UTF-8 string (`io.statefun.types/string`); lone surrogates are refused. */
  string: (): ValueType<string> => STRING,
  /** Raw bytes (`io.statefun.types/raw`): the payload is the bytes themselves. */
  bytes: (): ValueType<Uint8Array> => BYTES,
  /**
   * JSON text in UTF-8 (default typename `weft.types/json`), byte-compatible with the StateFun JS
   * SDK's JsonType of the same typename. Carries plain objects, arrays, strings, finite numbers,
   * booleans and null; anything JSON would change (NaN, Date, Map, undefined in an array...) is
   * refused with its path.
   */
  json: <T = unknown>(typename?: string): ValueType<T> =>
    cached(jsonTypes, typename, TYPENAMES.json, 'type.json()', makeJson) as ValueType<T>,
  /**
   * Standard MessagePack (default typename `weft.types/msgpack`), the type of untyped values.
   * Carries what JSON does plus undefined, NaN/Infinity, bigint (64-bit), Date and Uint8Array.
   * Refused with its path: functions, symbols, cycles, Map/Set, class instances, other typed
   * arrays, lone surrogates, `__proto__` keys. -0 arrives as 0.
   */
  msgpack: <T = unknown>(typename?: string): ValueType<T> =>
    cached(msgpackTypes, typename, TYPENAMES.msgpack, 'type.msgpack()', makeMsgpack) as ValueType<T>,
  /** Your own codec under your own typename. */
  custom: makeCustom,
});

/** The type of values sent without `opts.type`. */
export const DEFAULT_TYPE: ValueType<unknown> = type.msgpack();

/** Every built-in type under its typename (long as `number`): what a receiver falls back on. */
export const BUILTIN_TYPES: ReadonlyMap<string, ValueType<unknown>> = new Map<string, ValueType<unknown>>(
  ([INT, LONG_NUMBER, FLOAT, DOUBLE, BOOL, STRING, BYTES, type.json(), DEFAULT_TYPE] as ValueType<unknown>[]).map((t) => [t.typename, t]),
);

const KINDS: ReadonlySet<string> = new Set<ValueTypeKind>(['int', 'long', 'float', 'double', 'bool', 'string', 'bytes', 'json', 'msgpack', 'custom']);

/** True when `x` has the shape of a {@link ValueType} (structural: works across copies of weft). */
export function isValueType(x: unknown): x is ValueType<unknown> {
  if (typeof x !== 'object' || x === null) return false;
  const t = x as Partial<Record<keyof ValueType, unknown>>;
  return (
    typeof t.typename === 'string' &&
    typeof t.kind === 'string' &&
    KINDS.has(t.kind) &&
    typeof t.immutable === 'boolean' &&
    typeof t.encode === 'function' &&
    typeof t.decode === 'function' &&
    typeof t.check === 'function'
  );
}
