/**
 * Protocol Buffers wire-format primitives, hand-written so that weft's built-in value types and
 * the StateFun request-reply codec need no protobuf library.
 *
 * What the wire format looks like (https://protobuf.dev/programming-guides/encoding/):
 *
 * ```
 *   message  := field*
 *   field    := key value
 *   key      := varint( field_number << 3 | wire_type )
 *   value    := varint                          wire type 0 (VARINT: int32/64, uint32/64, sint*, bool, enum)
 *             | 8 bytes little-endian           wire type 1 (I64: fixed64, sfixed64, double)
 *             | varint(length) length*byte      wire type 2 (LEN: string, bytes, sub-message, packed)
 *             | field* key(EGROUP)              wire type 3/4 (SGROUP/EGROUP: proto2 groups, skip only)
 *             | 4 bytes little-endian           wire type 5 (I32: fixed32, sfixed32, float)
 * ```
 *
 * Integers are plain JS numbers wherever that is exact: 32-bit values always, 64-bit values when
 * they are safe integers (|n| <= 2^53 - 1); the `...Big` variants carry the full 64-bit range as
 * bigint. 64-bit varints are built from two 32-bit halves, so the number path never allocates a
 * bigint.
 *
 * Reads are bounds-checked: truncated or malformed input throws `WeftError('ERR_WEFT_PROTOCOL')`
 * naming the offset; a read never goes past `end` and every loop consumes at least one byte, so
 * hostile input cannot make a reader hang.
 */
import { WeftError } from '../core/errors.js';

/** Protobuf wire types. */
export const WireType = Object.freeze({
  VARINT: 0,
  I64: 1,
  LEN: 2,
  SGROUP: 3,
  EGROUP: 4,
  I32: 5,
} as const);
export type WireTypeValue = (typeof WireType)[keyof typeof WireType];

/** The largest field number protobuf allows (2^29 - 1). */
export const MAX_FIELD_NUMBER = 0x1fffffff;

/** Nesting bound for skipping groups, so crafted input cannot exhaust the stack or loop long. */
const MAX_GROUP_DEPTH = 64;

const TWO_32 = 4294967296;

/** Builds a field key (tag): `field << 3 | wireType`, as an unsigned 32-bit number. */
export function makeTag(field: number, wireType: WireTypeValue): number {
  return ((field << 3) | wireType) >>> 0;
}

/** The field number of a key returned by {@link ProtoReader.tag}. */
export function tagField(tag: number): number {
  return tag >>> 3;
}

/** The wire type of a key returned by {@link ProtoReader.tag}. */
export function tagWireType(tag: number): WireTypeValue {
  return (tag & 7) as WireTypeValue;
}

/** Bytes a varint of the unsigned 32-bit value `n` takes (1..5). */
export function varint32Size(n: number): number {
  n >>>= 0;
  if (n < 0x80) return 1;
  if (n < 0x4000) return 2;
  if (n < 0x200000) return 3;
  if (n < 0x10000000) return 4;
  return 5;
}

/** ZigZag-encodes a 32-bit signed integer (sint32): 0,-1,1,-2 -> 0,1,2,3. */
export function zigzag32(n: number): number {
  return ((n << 1) ^ (n >> 31)) >>> 0;
}

/** Inverse of {@link zigzag32}. */
export function unzigzag32(n: number): number {
  return (n >>> 1) ^ -(n & 1);
}

/** ZigZag-encodes a 64-bit signed bigint (sint64). */
export function zigzag64(n: bigint): bigint {
  return BigInt.asUintN(64, (n << 1n) ^ (n >> 63n));
}

/** Inverse of {@link zigzag64}. */
export function unzigzag64(n: bigint): bigint {
  n = BigInt.asUintN(64, n);
  return (n >> 1n) ^ -(n & 1n);
}

function protocolError(message: string): WeftError<'ERR_WEFT_PROTOCOL'> {
  return new WeftError('ERR_WEFT_PROTOCOL', message);
}

function invalidArg(message: string): WeftError<'ERR_WEFT_INVALID_ARG'> {
  return new WeftError('ERR_WEFT_INVALID_ARG', message);
}

// One scratch view per thread converts between IEEE floats and their bit patterns with explicit
// little-endian order, portable to big-endian hosts, without a DataView per call.
const scratch = new DataView(new ArrayBuffer(8));
const utf8Encoder = new TextEncoder();
// fatal: malformed UTF-8 is a protocol error, not silently U+FFFD (Java's protobuf parser rejects
// it too). ignoreBOM: a leading U+FEFF is data and must survive a round trip.
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Strings shorter than this are UTF-8 encoded/decoded in JS: cheaper than a native call. */
const SHORT_STRING = 64;

/**
 * A growable protobuf writer. Its buffer is reused across {@link reset} calls; {@link finish}
 * returns a fresh copy that the caller owns, so one writer per thread can serve every encode.
 *
 * Writers do not validate field semantics (that is the caller's schema); they do refuse numbers
 * that cannot be encoded exactly (e.g. a non-safe-integer for a 64-bit field) with
 * ERR_WEFT_INVALID_ARG, because writing them would silently corrupt data.
 */
export class ProtoWriter {
  #buf: Uint8Array;
  #pos = 0;
  /** Start offsets of open {@link fork}s, innermost last. */
  readonly #forks: number[] = [];

  constructor(initialCapacity = 256) {
    this.#buf = new Uint8Array(Math.max(16, initialCapacity));
  }

  /** Bytes written so far. */
  get length(): number {
    return this.#pos;
  }

  /** Forgets the content (and any open forks), keeping the buffer for reuse. */
  reset(): this {
    this.#pos = 0;
    this.#forks.length = 0;
    return this;
  }

  #ensure(extra: number): void {
    const need = this.#pos + extra;
    if (need <= this.#buf.length) return;
    let cap = this.#buf.length * 2;
    while (cap < need) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.#buf.subarray(0, this.#pos));
    this.#buf = next;
  }

  /** Writes a varint at `at` without growing the buffer; the caller has reserved the room. */
  #varintAt(at: number, n: number): number {
    const buf = this.#buf;
    while (n > 0x7f) {
      buf[at++] = (n & 0x7f) | 0x80;
      n >>>= 7;
    }
    buf[at++] = n;
    return at;
  }

  /** Writes a field key. */
  tag(field: number, wireType: WireTypeValue): this {
    if (!Number.isInteger(field) || field < 1 || field > MAX_FIELD_NUMBER) {
      throw invalidArg(`protobuf field number must be an integer in [1, ${MAX_FIELD_NUMBER}] (got ${field})`);
    }
    return this.uint32(field * 8 + wireType);
  }

  /** Varint of the low 32 bits of `n`, unsigned (uint32, also keys and lengths). */
  uint32(n: number): this {
    this.#ensure(5);
    const buf = this.#buf;
    let pos = this.#pos;
    n >>>= 0;
    while (n > 0x7f) {
      buf[pos++] = (n & 0x7f) | 0x80;
      n >>>= 7;
    }
    buf[pos++] = n;
    this.#pos = pos;
    return this;
  }

  /** int32 semantics: a negative value is sign-extended to 64 bits, so it takes 10 bytes. */
  int32(n: number): this {
    n |= 0;
    return n >= 0 ? this.uint32(n) : this.#varint64(n >>> 0, 0xffffffff);
  }

  /** sint32: ZigZag, so small negative numbers stay small. */
  sint32(n: number): this {
    return this.uint32(zigzag32(n | 0));
  }

  bool(b: boolean): this {
    this.#ensure(1);
    this.#buf[this.#pos++] = b ? 1 : 0;
    return this;
  }

  /** Varint of a 64-bit value given as unsigned halves. */
  #varint64(lo: number, hi: number): this {
    this.#ensure(10);
    const buf = this.#buf;
    let pos = this.#pos;
    // Emit 7 bits at a time from the 64-bit value hi:lo, shifting across the halves.
    while (hi !== 0 || lo > 0x7f) {
      buf[pos++] = (lo & 0x7f) | 0x80;
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi >>>= 7;
    }
    buf[pos++] = lo;
    this.#pos = pos;
    return this;
  }

  /** uint64 varint of a non-negative safe integer. */
  uint64(n: number): this {
    if (!Number.isSafeInteger(n) || n < 0) {
      throw invalidArg(`uint64 value must be a non-negative safe integer (got ${n}); use uint64Big`);
    }
    return this.#varint64(n >>> 0, Math.floor(n / TWO_32) >>> 0);
  }

  /** int64 varint of a safe integer (negative values take 10 bytes, two's complement). */
  int64(n: number): this {
    if (!Number.isSafeInteger(n)) {
      throw invalidArg(`int64 value must be a safe integer (got ${n}); use int64Big`);
    }
    // ToUint32 is modulo 2^32 and floor division keeps the sign: together, two's complement.
    return this.#varint64(n >>> 0, Math.floor(n / TWO_32) >>> 0);
  }

  /** sint64 (ZigZag) varint of a safe integer. */
  sint64(n: number): this {
    if (!Number.isSafeInteger(n)) {
      throw invalidArg(`sint64 value must be a safe integer (got ${n}); use sint64Big`);
    }
    // ZigZag on the two's complement halves: (n << 1) ^ (n >> 63). Computing 2|n| - 1 as a
    // double would round for odd results above 2^53.
    const lo = n >>> 0;
    const hi = Math.floor(n / TWO_32) | 0;
    const mask = hi >> 31;
    return this.#varint64(((lo << 1) ^ mask) >>> 0, (((hi << 1) | (lo >>> 31)) ^ mask) >>> 0);
  }

  uint64Big(n: bigint): this {
    if (n < 0n || n > 0xffffffffffffffffn) throw invalidArg(`uint64 value must be in [0, 2^64 - 1] (got ${n})`);
    return this.#varint64(Number(n & 0xffffffffn), Number(n >> 32n));
  }

  int64Big(n: bigint): this {
    if (n < -0x8000000000000000n || n > 0x7fffffffffffffffn) {
      throw invalidArg(`int64 value must be in [-2^63, 2^63 - 1] (got ${n})`);
    }
    const u = BigInt.asUintN(64, n);
    return this.#varint64(Number(u & 0xffffffffn), Number(u >> 32n));
  }

  sint64Big(n: bigint): this {
    if (n < -0x8000000000000000n || n > 0x7fffffffffffffffn) {
      throw invalidArg(`sint64 value must be in [-2^63, 2^63 - 1] (got ${n})`);
    }
    const z = zigzag64(n);
    return this.#varint64(Number(z & 0xffffffffn), Number(z >> 32n));
  }

  #u32le(v: number): void {
    this.#ensure(4);
    const buf = this.#buf;
    const pos = this.#pos;
    buf[pos] = v;
    buf[pos + 1] = v >>> 8;
    buf[pos + 2] = v >>> 16;
    buf[pos + 3] = v >>> 24;
    this.#pos = pos + 4;
  }

  /** fixed32 / sfixed32: the low 32 bits of `n`, little-endian. */
  fixed32(n: number): this {
    this.#u32le(n >>> 0);
    return this;
  }

  sfixed32(n: number): this {
    this.#u32le(n | 0);
    return this;
  }

  /** IEEE single precision (rounds to nearest float32, ties to even). */
  float(n: number): this {
    scratch.setFloat32(0, n, true);
    this.#u32le(scratch.getUint32(0, true));
    return this;
  }

  /** Writes a raw 32-bit pattern, e.g. a specific NaN payload. */
  float32Bits(bits: number): this {
    this.#u32le(bits >>> 0);
    return this;
  }

  double(n: number): this {
    scratch.setFloat64(0, n, true);
    this.#u32le(scratch.getUint32(0, true));
    this.#u32le(scratch.getUint32(4, true));
    return this;
  }

  /** Writes a raw 64-bit pattern as two little-endian halves. */
  fixed64Bits(lo: number, hi: number): this {
    this.#u32le(lo >>> 0);
    this.#u32le(hi >>> 0);
    return this;
  }

  /** fixed64 of a non-negative safe integer. */
  fixed64(n: number): this {
    if (!Number.isSafeInteger(n) || n < 0) {
      throw invalidArg(`fixed64 value must be a non-negative safe integer (got ${n}); use fixed64Big`);
    }
    return this.fixed64Bits(n >>> 0, Math.floor(n / TWO_32));
  }

  /** sfixed64 of a safe integer, two's complement. */
  sfixed64(n: number): this {
    if (!Number.isSafeInteger(n)) {
      throw invalidArg(`sfixed64 value must be a safe integer (got ${n}); use sfixed64Big`);
    }
    return this.fixed64Bits(n >>> 0, Math.floor(n / TWO_32));
  }

  fixed64Big(n: bigint): this {
    if (n < 0n || n > 0xffffffffffffffffn) throw invalidArg(`fixed64 value must be in [0, 2^64 - 1] (got ${n})`);
    return this.fixed64Bits(Number(n & 0xffffffffn), Number(n >> 32n));
  }

  sfixed64Big(n: bigint): this {
    if (n < -0x8000000000000000n || n > 0x7fffffffffffffffn) {
      throw invalidArg(`sfixed64 value must be in [-2^63, 2^63 - 1] (got ${n})`);
    }
    const u = BigInt.asUintN(64, n);
    return this.fixed64Bits(Number(u & 0xffffffffn), Number(u >> 32n));
  }

  /** Raw bytes, no length prefix. */
  raw(bytes: Uint8Array): this {
    this.#ensure(bytes.length);
    this.#buf.set(bytes, this.#pos);
    this.#pos += bytes.length;
    return this;
  }

  /** Length-delimited bytes (`bytes` fields). */
  bytes(bytes: Uint8Array): this {
    return this.uint32(bytes.length).raw(bytes);
  }

  /**
   * Length-delimited UTF-8 (`string` fields). Lone surrogates become U+FFFD, as with
   * TextEncoder; callers that must not change a string check `isWellFormed()` first.
   */
  string(s: string): this {
    const units = s.length;
    if (units < SHORT_STRING) {
      // At most 3 bytes per UTF-16 unit: < 192 bytes, so the length prefix takes 1 or 2 bytes.
      this.#ensure(2 + units * 3);
      const buf = this.#buf;
      const start = this.#pos;
      const prefix = units * 3 < 0x80 ? 1 : 2;
      let pos = start + prefix;
      for (let i = 0; i < units; i++) {
        let c = s.charCodeAt(i);
        if (c < 0x80) {
          buf[pos++] = c;
        } else if (c < 0x800) {
          buf[pos++] = 0xc0 | (c >> 6);
          buf[pos++] = 0x80 | (c & 0x3f);
        } else {
          if (c >= 0xd800 && c <= 0xdfff) {
            const next = i + 1 < units ? s.charCodeAt(i + 1) : 0;
            if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
              c = 0x10000 + ((c - 0xd800) << 10) + (next - 0xdc00);
              i++;
              buf[pos++] = 0xf0 | (c >> 18);
              buf[pos++] = 0x80 | ((c >> 12) & 0x3f);
              buf[pos++] = 0x80 | ((c >> 6) & 0x3f);
              buf[pos++] = 0x80 | (c & 0x3f);
              continue;
            }
            c = 0xfffd;
          }
          buf[pos++] = 0xe0 | (c >> 12);
          buf[pos++] = 0x80 | ((c >> 6) & 0x3f);
          buf[pos++] = 0x80 | (c & 0x3f);
        }
      }
      const len = pos - start - prefix;
      if (prefix === 1) {
        buf[start] = len;
      } else if (len < 0x80) {
        // Reserved two prefix bytes but one suffices: shift the text down by one.
        buf.copyWithin(start + 1, start + 2, pos);
        buf[start] = len;
        pos--;
      } else {
        buf[start] = (len & 0x7f) | 0x80;
        buf[start + 1] = len >>> 7;
      }
      this.#pos = pos;
      return this;
    }
    // Long string: encode natively after a prefix sized for the worst case (3 bytes per unit),
    // then close the gap if the real length needs a shorter prefix.
    const maxBytes = units * 3;
    const prefix = varint32Size(maxBytes);
    this.#ensure(prefix + maxBytes);
    const start = this.#pos;
    const { written } = utf8Encoder.encodeInto(s, this.#buf.subarray(start + prefix));
    const actual = varint32Size(written);
    if (actual < prefix) this.#buf.copyWithin(start + actual, start + prefix, start + prefix + written);
    this.#pos = this.#varintAt(start, written) + written;
    return this;
  }

  /** Starts a length-delimited sub-message; end it with {@link join}. Forks nest. */
  fork(): this {
    this.#forks.push(this.#pos);
    return this;
  }

  /** Ends the innermost {@link fork}: its content gets its varint length prefix. */
  join(): this {
    const start = this.#forks.pop();
    if (start === undefined) throw invalidArg('ProtoWriter.join() without a matching fork()');
    const len = this.#pos - start;
    const prefix = varint32Size(len);
    this.#ensure(prefix);
    this.#buf.copyWithin(start + prefix, start, this.#pos);
    this.#varintAt(start, len);
    this.#pos = start + prefix + len;
    return this;
  }

  /**
   * A copy of the bytes written, owned by the caller; the writer keeps its buffer for reuse.
   * `alloc` provides the memory for the copy (default: a fresh exactly-sized Uint8Array), so a
   * caller with a buffer pool can avoid one allocation per message.
   */
  finish(alloc?: (length: number) => Uint8Array): Uint8Array {
    if (this.#forks.length !== 0) throw invalidArg(`ProtoWriter.finish() with ${this.#forks.length} unjoined fork()`);
    if (alloc === undefined) return this.#buf.slice(0, this.#pos);
    const out = alloc(this.#pos);
    out.set(this.#buf.subarray(0, this.#pos));
    return out;
  }
}

/**
 * A bounds-checked protobuf reader over `bytes[start, end)`. `pos` is public so codecs can
 * remember and restore positions; everything else is read through methods.
 */
export class ProtoReader {
  readonly buf: Uint8Array;
  readonly end: number;
  pos: number;

  constructor(bytes: Uint8Array, start = 0, end = bytes.length) {
    if (!(start >= 0 && start <= end && end <= bytes.length)) {
      throw invalidArg(`ProtoReader range [${start}, ${end}) is outside the input (${bytes.length} bytes)`);
    }
    this.buf = bytes;
    this.pos = start;
    this.end = end;
  }

  /** True when every byte has been consumed. */
  get done(): boolean {
    return this.pos >= this.end;
  }

  #need(n: number, what: string): void {
    if (this.end - this.pos < n) {
      throw protocolError(
        `truncated protobuf input: ${what} at offset ${this.pos} needs ${n} bytes, ${this.end - this.pos} left`,
      );
    }
  }

  /**
   * Reads a field key; validates the field number (>= 1) and wire type (0..5).
   * Split it with {@link tagField} / {@link tagWireType}.
   */
  tag(): number {
    const at = this.pos;
    const key = this.uint32();
    const wt = key & 7;
    if (wt > 5) throw protocolError(`invalid protobuf wire type ${wt} at offset ${at}`);
    if (key >>> 3 === 0) throw protocolError(`invalid protobuf field number 0 at offset ${at}`);
    return key;
  }

  /**
   * Reads a varint of up to 10 bytes and returns its low 32 bits, unsigned (protobuf truncates
   * int64 to int32 this way). More than 10 bytes is malformed.
   */
  uint32(): number {
    const buf = this.buf;
    let pos = this.pos;
    const end = this.end;
    // One-byte fast path: keys, small lengths and small numbers.
    if (pos < end) {
      const b = buf[pos]!;
      if (b < 0x80) {
        this.pos = pos + 1;
        return b;
      }
    }
    const start = pos;
    let result = 0;
    for (let shift = 0; shift < 70; shift += 7) {
      if (pos >= end) throw protocolError(`truncated protobuf input: varint at offset ${start} runs past the end`);
      const b = buf[pos++]!;
      if (shift < 32) result |= (b & 0x7f) << shift;
      if (b < 0x80) {
        this.pos = pos;
        return result >>> 0;
      }
    }
    throw protocolError(`malformed protobuf varint at offset ${start}: longer than 10 bytes`);
  }

  int32(): number {
    return this.uint32() | 0;
  }

  sint32(): number {
    return unzigzag32(this.uint32());
  }

  bool(): boolean {
    // Any non-zero varint is true (protobuf semantics; Java servers may send 0/1 of any width).
    const lo = this.#varint64();
    return lo !== 0 || this.#hi !== 0;
  }

  /** High half of the last {@link #varint64}, kept in a field so reads allocate nothing. */
  #hi = 0;

  /** Reads a 64-bit varint; returns the unsigned low half and leaves the high half in #hi. */
  #varint64(): number {
    const buf = this.buf;
    const end = this.end;
    const start = this.pos;
    let pos = start;
    let lo = 0;
    let hi = 0;
    for (let i = 0; i < 10; i++) {
      if (pos >= end) throw protocolError(`truncated protobuf input: varint at offset ${start} runs past the end`);
      const b = buf[pos++]!;
      const bits = b & 0x7f;
      if (i < 4) {
        lo |= bits << (7 * i);
      } else if (i === 4) {
        // Bits 28..34: the low 4 go to lo, the high 3 to hi.
        lo |= bits << 28;
        hi |= bits >>> 4;
      } else {
        // Bits beyond 64 (in a 10th byte) fall off, as in Java's parser.
        hi |= bits << (7 * i - 32);
      }
      if (b < 0x80) {
        this.pos = pos;
        this.#hi = hi >>> 0;
        return lo >>> 0;
      }
    }
    throw protocolError(`malformed protobuf varint at offset ${start}: longer than 10 bytes`);
  }

  #unsafe(kind: string, at: number, value: bigint): WeftError<'ERR_WEFT_PROTOCOL'> {
    return protocolError(
      `${kind} value ${value} at offset ${at} is outside the safe integer range of a JS number; read it as a bigint`,
    );
  }

  /** uint64 varint as a number; a value above 2^53 - 1 throws (use {@link uint64Big}). */
  uint64(): number {
    const at = this.pos;
    const lo = this.#varint64();
    const hi = this.#hi;
    if (hi >= 0x200000) throw this.#unsafe('uint64', at, (BigInt(hi) << 32n) | BigInt(lo));
    return hi * TWO_32 + lo;
  }

  /** int64 varint as a number; outside the safe range throws (use {@link int64Big}). */
  int64(): number {
    const at = this.pos;
    const lo = this.#varint64();
    const hi = this.#hi;
    // Exact while the result is safe; rounding is monotone, so an unsafe value never rounds
    // into the safe range and the check below is sound.
    const n = (hi | 0) * TWO_32 + lo;
    if (!Number.isSafeInteger(n)) throw this.#unsafe('int64', at, BigInt.asIntN(64, (BigInt(hi) << 32n) | BigInt(lo)));
    return n;
  }

  /** sint64 varint as a number; outside the safe range throws (use {@link sint64Big}). */
  sint64(): number {
    const at = this.pos;
    const zlo = this.#varint64();
    const zhi = this.#hi;
    // Undo ZigZag on the halves: n = (z >>> 1) ^ -(z & 1).
    const mask = -(zlo & 1);
    const lo = (((zlo >>> 1) | (zhi << 31)) ^ mask) >>> 0;
    const hi = ((zhi >>> 1) ^ mask) | 0;
    const n = hi * TWO_32 + lo;
    if (!Number.isSafeInteger(n)) throw this.#unsafe('sint64', at, BigInt.asIntN(64, (BigInt(hi) << 32n) | BigInt(lo)));
    return n;
  }

  uint64Big(): bigint {
    const lo = this.#varint64();
    return (BigInt(this.#hi) << 32n) | BigInt(lo);
  }

  int64Big(): bigint {
    return BigInt.asIntN(64, this.uint64Big());
  }

  sint64Big(): bigint {
    return unzigzag64(this.uint64Big());
  }

  #u32le(what: string): number {
    this.#need(4, what);
    const buf = this.buf;
    const p = this.pos;
    this.pos = p + 4;
    return (buf[p]! | (buf[p + 1]! << 8) | (buf[p + 2]! << 16) | (buf[p + 3]! << 24)) >>> 0;
  }

  fixed32(): number {
    return this.#u32le('fixed32');
  }

  sfixed32(): number {
    return this.#u32le('sfixed32') | 0;
  }

  float(): number {
    scratch.setUint32(0, this.#u32le('float'), true);
    return scratch.getFloat32(0, true);
  }

  double(): number {
    this.#need(8, 'double');
    scratch.setUint32(0, this.#u32le('double'), true);
    scratch.setUint32(4, this.#u32le('double'), true);
    return scratch.getFloat64(0, true);
  }

  /** fixed64 as a number; above 2^53 - 1 throws (use {@link fixed64Big}). */
  fixed64(): number {
    this.#need(8, 'fixed64');
    const at = this.pos;
    const lo = this.#u32le('fixed64');
    const hi = this.#u32le('fixed64');
    if (hi >= 0x200000) throw this.#unsafe('fixed64', at, (BigInt(hi) << 32n) | BigInt(lo));
    return hi * TWO_32 + lo;
  }

  /** sfixed64 as a number; outside the safe range throws (use {@link sfixed64Big}). */
  sfixed64(): number {
    this.#need(8, 'sfixed64');
    const at = this.pos;
    const lo = this.#u32le('sfixed64');
    const hi = this.#u32le('sfixed64') | 0;
    const n = hi * TWO_32 + lo;
    if (!Number.isSafeInteger(n)) throw this.#unsafe('sfixed64', at, (BigInt(hi) << 32n) | BigInt(lo));
    return n;
  }

  fixed64Big(): bigint {
    this.#need(8, 'fixed64');
    const lo = this.#u32le('fixed64');
    const hi = this.#u32le('fixed64');
    return (BigInt(hi) << 32n) | BigInt(lo);
  }

  sfixed64Big(): bigint {
    return BigInt.asIntN(64, this.fixed64Big());
  }

  /** Reads a length prefix and checks that many bytes remain; returns the length. */
  #len(what: string): number {
    const at = this.pos;
    const len = this.uint64();
    if (len > this.end - this.pos) {
      throw protocolError(
        `truncated protobuf input: ${what} at offset ${at} declares ${len} bytes, ${this.end - this.pos} left`,
      );
    }
    return len;
  }

  /**
   * Length-delimited bytes as a VIEW into the input (no copy). Copy it (`.slice()`) if you keep
   * it beyond the life of the input buffer.
   */
  bytes(): Uint8Array {
    const len = this.#len('length-delimited field');
    const start = this.pos;
    this.pos = start + len;
    return this.buf.subarray(start, start + len);
  }

  /** Length-delimited UTF-8; malformed UTF-8 throws ERR_WEFT_PROTOCOL. */
  string(): string {
    const at = this.pos;
    const len = this.#len('string');
    const start = this.pos;
    this.pos = start + len;
    return decodeUtf8(this.buf, start, start + len, at);
  }

  /** A reader over the next length-delimited field (a sub-message); this reader skips past it. */
  sub(): ProtoReader {
    const len = this.#len('sub-message');
    const start = this.pos;
    this.pos = start + len;
    return new ProtoReader(this.buf, start, start + len);
  }

  /** Skips the value of a field whose key (from {@link tag}) has been read. */
  skip(tag: number): void {
    let wt = tag & 7;
    let field = tag >>> 3;
    // Field numbers of the groups being skipped, innermost last: groups nest, and an explicit
    // stack bounds the work without recursion.
    const open: number[] = [];
    for (;;) {
      switch (wt) {
        case WireType.VARINT:
          this.#varint64();
          break;
        case WireType.I64:
          this.#need(8, 'fixed64 field');
          this.pos += 8;
          break;
        case WireType.LEN: {
          // Not `this.pos += this.#len()`: that reads pos before #len advances it past the prefix.
          const len = this.#len('length-delimited field');
          this.pos += len;
          break;
        }
        case WireType.I32:
          this.#need(4, 'fixed32 field');
          this.pos += 4;
          break;
        case WireType.SGROUP:
          if (open.length >= MAX_GROUP_DEPTH) {
            throw protocolError(`protobuf groups nested deeper than ${MAX_GROUP_DEPTH} at offset ${this.pos}`);
          }
          open.push(field);
          break;
        case WireType.EGROUP:
          if (open.pop() !== field) {
            throw protocolError(`unexpected protobuf end-group for field ${field} before offset ${this.pos}`);
          }
          break;
        default:
          throw protocolError(`invalid protobuf wire type ${wt} before offset ${this.pos}`);
      }
      if (open.length === 0) return;
      const next = this.tag();
      wt = next & 7;
      field = next >>> 3;
    }
  }
}

/**
 * Decodes `bytes[start, end)` as UTF-8, throwing ERR_WEFT_PROTOCOL on malformed input. Short
 * ASCII runs are decoded in JS (a native TextDecoder call costs more than the loop).
 */
export function decodeUtf8(bytes: Uint8Array, start: number, end: number, at = start): string {
  if (end - start < SHORT_STRING) {
    let s = '';
    let i = start;
    for (; i < end; i++) {
      const b = bytes[i]!;
      if (b >= 0x80) break;
      s += String.fromCharCode(b);
    }
    if (i === end) return s;
  }
  try {
    return utf8Decoder.decode(bytes.subarray(start, end));
  } catch (err) {
    throw new WeftError('ERR_WEFT_PROTOCOL', `malformed UTF-8 in protobuf string at offset ${at}`, { cause: err });
  }
}
