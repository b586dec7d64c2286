/**
 * msgpack framing for the transport, and the default msgpack type for user values.
 *
 * ## Batch frames: the measured decision
 * A frame is ONE msgpack array of records (small arrays), encoded by {@link FrameEncoder} and
 * decoded by msgpackr's `unpack` from a private copy. Figures from
 * `native-bench/transport-framing.ts` (2-vCPU KVM guest, Node 20.20, msgpackr 1.12.1, native
 * acceleration on; 256 engine message tuples of ~60 bytes per frame; medians of 5 runs, ns per
 * message; one run — other runs on this shared machine moved every row by ~10% together):
 * ```
 *   variant                                                   bytes  encode  decode  total
 *   msgpackr Packr, one array per frame; decode a fresh copy   59.5    261     121     381
 *     same, decode into a reused scratch with copyBuffers      59.5    260     152     412
 *   shared-structure records, tuple<->object conversion        59.5    324     127     451
 *   shared-structure records, objects only (no conversion)     59.5    309     117     426
 *   concatenated tuples (array body), unpackMultiple           59.5    259     130     389
 *   one pack() per tuple appended to a frame, unpackMultiple   59.5    338     132     470
 *   chosen: FrameEncoder + msgpackr unpack of a fresh copy     59.5    122     121     244
 * ```
 * - Records with shared structures buy nothing for tuples: a tuple has no keys to elide (a
 *   record id byte replaces an array header byte: same size) and the tuple<->object conversion
 *   costs. They would also pin a structure table into every thread and every snapshot.
 * - `unpackMultiple` over concatenated tuples decodes no faster than one array, and appending
 *   one `pack()` per tuple is the slowest encoder. One array per frame it is.
 * - Copying the frame once into a fresh buffer beats decoding a reused scratch with msgpackr's
 *   `copyBuffers` (one allocation per frame instead of one per payload).
 * - msgpackr spends ~110 ns on every `Uint8Array` (payload) in its generic extension dispatch,
 *   half of all encoding time. FrameEncoder writes the same bytes as msgpackr (tests compare them
 *   byte for byte, with a property test) for arrays, strings, numbers, booleans, null and
 *   `Uint8Array`, and defers to msgpackr for anything else: 2x faster encoding, and frames stay
 *   plain msgpack that msgpackr (or any msgpack library) reads.
 *
 * ## Payloads never alias reused memory
 * A ring frame is a view of shared memory that the producer overwrites once the drain ends, and
 * msgpackr's native decoder rejects SharedArrayBuffer views anyway (NOTES.md). `FrameDecoder`
 * therefore copies the frame into a fresh, private `Uint8Array` first and decodes that; each
 * decoded payload is a `Uint8Array` view of that copy, which nothing ever writes again. The cost
 * of this choice: a payload kept alive keeps its whole frame (at most the ring capacity) alive;
 * copy a payload (`payload.slice()`) before storing it for long.
 *
 * ## User values (`packValue` / `unpackValue`)
 * Plain msgpack (objects are msgpack maps, readable by any msgpack library) plus msgpackr's
 * `moreTypes` extensions. Round trip, exactly:
 * - `null`, booleans, strings, numbers (`NaN`, `±Infinity`; but `-0` decodes as `0`),
 *   `bigint` of any size (64-bit ones as msgpack int64, larger ones as a msgpackr extension);
 * - arrays (holes decode as `undefined`; non-index properties are not part of the value);
 * - plain objects (own enumerable string keys; a null prototype decodes as `Object.prototype`);
 * - `undefined`, inside objects and arrays too: kept, as msgpackr's fixext(0) "undefined" (so
 *   `{ a: undefined }` comes back with an `a` key);
 * - `Uint8Array` and the other typed arrays, `DataView`, `ArrayBuffer` as themselves; `Buffer` as
 *   `Buffer`. Decoded binary data is always a fresh copy, never a view of the input bytes.
 * - `Date` (including invalid dates), `RegExp`, `Set`, and `Map` (any keys; a weft extension,
 *   see {@link MAP_EXTENSION_TYPE}).
 * Shared references are duplicated (the value is a tree after decoding).
 *
 * Everything else throws `ERR_WEFT_UNSERIALIZABLE` naming the path of the first offender
 * (`message value.items[2].cb is a function`): functions, symbols, cycles, class instances
 * (their prototype would be lost), `Error`s (stack and own properties would be lost), `WeakMap`,
 * `Promise`, boxed primitives, objects with an own `__proto__` key (msgpackr renames it on
 * decode), nesting deeper than {@link MAX_VALUE_DEPTH}. Symbol-keyed and non-enumerable
 * properties are not part of the value, as with `structuredClone` and JSON.
 *
 * Why a walk before packing: msgpackr silently turns functions into `undefined`, class instances
 * into plain objects, `Map`s into objects (on decode) and `Error`s into arrays; only functions
 * and symbols could be caught inside msgpackr's pack. The walk is kept cheap: it builds no path
 * strings and allocates nothing; only when it finds trouble does a second, slower walk compute
 * the path for the message, and only when it finds a `Map` is the value copied (a Map must be
 * wrapped to survive, see {@link MAP_EXTENSION_TYPE}). Measured (same bench, several runs on
 * this busy machine): packValue vs msgpackr's pack with the same options costs +3-9% on a number,
 * +9-16% on `{ amount: 42 }` (~100 -> ~112 ns) and +5-37% on a 17-value nested object
 * (~340 -> ~450 ns).
 */
import { Packr, Unpackr, addExtension } from 'msgpackr';
import { WeftError, describe } from '../errors.js';
import type { NamedRecords, NameTable } from './names.js';

// ---------------------------------------------------------------------------------------------
// Batch frames
// ---------------------------------------------------------------------------------------------

/**
 * The main record shape crossing a ring, one engine message:
 * `[kind, targetType, targetId, callerType, callerId, typename, payload, extra?]`.
 * `payload` is the already-encoded message value; `extra` is kind-specific. Frames carry any
 * arrays of msgpack-able scalars (other record kinds are shorter); this type documents the
 * common one and types the benchmarks.
 */
export type MessageTuple = [
  kind: number,
  targetType: string,
  targetId: string,
  callerType: string | null,
  callerId: string | null,
  typename: string,
  payload: Uint8Array,
  extra?: number | string | null,
];

/** A record as frames carry it: a small array (see {@link MessageTuple}). */
export type FrameRecord = readonly unknown[];

/** Initial size of a FrameEncoder's buffer; it doubles when a frame needs more. */
const INITIAL_ENCODE_BYTES = 64 * 1024;

/**
 * Encodes batches of records into frames: ONE msgpack array of arrays per frame.
 *
 * It writes standard msgpack itself for what records are made of — arrays, strings, numbers,
 * booleans, null and `Uint8Array` payloads — and hands anything else (objects, bigint, Date, ...)
 * to msgpackr. The bytes are those msgpackr would write for the same records; it is faster
 * because msgpackr routes every `Uint8Array` through its extension machinery (~110 ns each,
 * about half of encoding a message; see the figures above). msgpackr decodes the frames.
 *
 * `encode` returns a view of this encoder's buffer, overwritten by its next `encode`: write it
 * into the ring right away, or copy it (`frame.slice()`) to keep it. That reuse keeps the
 * encoder free of per-frame allocations.
 *
 * @example
 * ```ts
 * const encoder = new FrameEncoder();
 * const frame = encoder.encode(records);
 * if (!ring.tryWrite(frame)) spill.push(frame.slice());
 * ```
 */
export class FrameEncoder {
  // The same memory three ways: Buffer for its native UTF-8 write, DataView for wide numbers,
  // and a plain Uint8Array to hand out — its slice() copies (Buffer#slice would not).
  #buf: Buffer = Buffer.allocUnsafeSlow(INITIAL_ENCODE_BYTES);
  #view = new DataView(this.#buf.buffer, this.#buf.byteOffset, this.#buf.byteLength);
  #bytes = new Uint8Array(this.#buf.buffer, this.#buf.byteOffset, this.#buf.byteLength);
  #pos = 0;
  readonly #names: NameTable | null;
  readonly #namedTag: number;
  /** `#namedField[i]`: position i of a named record may hold a table name. */
  readonly #namedField: readonly boolean[];
  /** Per named position, the last name looked up and its index. */
  readonly #lastName: string[];
  readonly #lastIndex: number[];

  /**
   * @param named records that carry wire names (see names.ts): their string fields found in the
   * table are written as the name's index. Without it, every string is written out.
   */
  constructor(named?: NamedRecords) {
    this.#names = named?.table ?? null;
    this.#namedTag = named?.tag ?? -1;
    const mask: boolean[] = [];
    for (const f of named?.fields ?? []) mask[f] = true;
    this.#namedField = Array.from(mask, (b) => b === true);
    this.#lastName = this.#namedField.map(() => '');
    this.#lastIndex = this.#namedField.map(() => -1);
  }

  /**
   * Encodes `records` (each a {@link FrameRecord}; anything else fails in the decoder) as one
   * frame; the result is valid until the next `encode` call.
   */
  encode(records: readonly unknown[]): Uint8Array {
    this.#pos = 0;
    this.#arrayHeader(records.length);
    if (this.#names === null) {
      for (let i = 0; i < records.length; i++) this.#value(records[i]);
    } else {
      for (let i = 0; i < records.length; i++) {
        const r = records[i];
        if (Array.isArray(r) && r[0] === this.#namedTag) this.#namedRecord(r, this.#names);
        else this.#value(r);
      }
    }
    return this.#bytes.subarray(0, this.#pos);
  }

  #namedRecord(record: FrameRecord, names: NameTable): void {
    const mask = this.#namedField;
    this.#arrayHeader(record.length);
    for (let i = 0; i < record.length; i++) {
      const v = record[i];
      if (i < mask.length && mask[i] === true && typeof v === 'string') {
        // Each position mostly repeats its previous name (one function type, one typename).
        let n: number;
        if (v === this.#lastName[i]) n = this.#lastIndex[i] as number;
        else {
          n = names.indexOf(v);
          this.#lastName[i] = v;
          this.#lastIndex[i] = n;
        }
        if (n >= 0) {
          this.#number(n);
          continue;
        }
      }
      this.#value(v);
    }
  }

  #ensure(bytes: number): void {
    const need = this.#pos + bytes;
    if (need <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < need) size *= 2;
    const grown = Buffer.allocUnsafeSlow(size);
    this.#buf.copy(grown, 0, 0, this.#pos);
    this.#buf = grown;
    this.#view = new DataView(grown.buffer, grown.byteOffset, grown.byteLength);
    this.#bytes = new Uint8Array(grown.buffer, grown.byteOffset, grown.byteLength);
  }

  #arrayHeader(length: number): void {
    this.#ensure(5);
    const buf = this.#buf;
    if (length < 0x10) {
      buf[this.#pos++] = 0x90 | length;
    } else if (length < 0x10000) {
      buf[this.#pos++] = 0xdc;
      buf[this.#pos++] = length >> 8;
      buf[this.#pos++] = length & 0xff;
    } else {
      buf[this.#pos++] = 0xdd;
      this.#view.setUint32(this.#pos, length);
      this.#pos += 4;
    }
  }

  #array(array: FrameRecord): void {
    this.#arrayHeader(array.length);
    for (let i = 0; i < array.length; i++) this.#value(array[i]);
  }

  #value(value: unknown): void {
    switch (typeof value) {
      case 'string':
        this.#string(value);
        return;
      case 'number':
        this.#number(value);
        return;
      case 'boolean':
        this.#ensure(1);
        this.#buf[this.#pos++] = value ? 0xc3 : 0xc2;
        return;
      case 'object':
        if (value === null) {
          this.#ensure(1);
          this.#buf[this.#pos++] = 0xc0;
          return;
        }
        if (value.constructor === Array) {
          this.#array(value as unknown[]);
          return;
        }
        if (value instanceof Uint8Array) {
          this.#bin(value);
          return;
        }
        break;
    }
    // Everything else, exactly as msgpackr writes it.
    const bytes = fallbackPackr.pack(value);
    this.#ensure(bytes.length);
    this.#buf.set(bytes, this.#pos);
    this.#pos += bytes.length;
  }

  #number(n: number): void {
    this.#ensure(9);
    const buf = this.#buf;
    if (n >>> 0 === n) {
      if (n < 0x80) {
        buf[this.#pos++] = n;
      } else if (n < 0x100) {
        buf[this.#pos++] = 0xcc;
        buf[this.#pos++] = n;
      } else if (n < 0x10000) {
        buf[this.#pos++] = 0xcd;
        buf[this.#pos++] = n >> 8;
        buf[this.#pos++] = n & 0xff;
      } else {
        buf[this.#pos++] = 0xce;
        this.#view.setUint32(this.#pos, n);
        this.#pos += 4;
      }
    } else if (n >> 0 === n) {
      if (n >= -0x20) {
        buf[this.#pos++] = n & 0xff;
      } else if (n >= -0x80) {
        buf[this.#pos++] = 0xd0;
        buf[this.#pos++] = n & 0xff;
      } else if (n >= -0x8000) {
        buf[this.#pos++] = 0xd1;
        this.#view.setInt16(this.#pos, n);
        this.#pos += 2;
      } else {
        buf[this.#pos++] = 0xd2;
        this.#view.setInt32(this.#pos, n);
        this.#pos += 4;
      }
    } else {
      buf[this.#pos++] = 0xcb;
      this.#view.setFloat64(this.#pos, n);
      this.#pos += 8;
    }
  }

  #string(s: string): void {
    const length = s.length;
    // Guess the header from the UTF-16 length, write the bytes after it, and move them if the
    // UTF-8 length needs a bigger header (msgpackr's approach).
    const headerSize = length < 0x20 ? 1 : length < 0x100 ? 2 : length < 0x10000 ? 3 : 5;
    this.#ensure(headerSize + length * 3);
    const buf = this.#buf;
    const start = this.#pos;
    let at = start + headerSize;
    if (length < 0x40) {
      // Short strings: a JS loop beats the native call's fixed cost.
      for (let i = 0; i < length; i++) {
        let c = s.charCodeAt(i);
        if (c < 0x80) {
          buf[at++] = c;
        } else if (c < 0x800) {
          buf[at++] = (c >> 6) | 0xc0;
          buf[at++] = (c & 0x3f) | 0x80;
        } else if ((c & 0xfc00) === 0xd800 && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
          c = 0x10000 + ((c & 0x03ff) << 10) + (s.charCodeAt(++i) & 0x03ff);
          buf[at++] = (c >> 18) | 0xf0;
          buf[at++] = ((c >> 12) & 0x3f) | 0x80;
          buf[at++] = ((c >> 6) & 0x3f) | 0x80;
          buf[at++] = (c & 0x3f) | 0x80;
        } else {
          buf[at++] = (c >> 12) | 0xe0;
          buf[at++] = ((c >> 6) & 0x3f) | 0x80;
          buf[at++] = (c & 0x3f) | 0x80;
        }
      }
    } else {
      at += buf.write(s, at, 'utf8');
    }
    const bytes = at - start - headerSize;
    const need = bytes < 0x20 ? 1 : bytes < 0x100 ? 2 : bytes < 0x10000 ? 3 : 5;
    if (need !== headerSize) buf.copyWithin(start + need, start + headerSize, at);
    if (need === 1) {
      buf[start] = 0xa0 | bytes;
    } else if (need === 2) {
      buf[start] = 0xd9;
      buf[start + 1] = bytes;
    } else if (need === 3) {
      buf[start] = 0xda;
      buf[start + 1] = bytes >> 8;
      buf[start + 2] = bytes & 0xff;
    } else {
      buf[start] = 0xdb;
      this.#view.setUint32(start + 1, bytes);
    }
    this.#pos = start + need + bytes;
  }

  #bin(bytes: Uint8Array): void {
    const length = bytes.length;
    this.#ensure(5 + length);
    const buf = this.#buf;
    if (length < 0x100) {
      buf[this.#pos++] = 0xc4;
      buf[this.#pos++] = length;
    } else if (length < 0x10000) {
      buf[this.#pos++] = 0xc5;
      buf[this.#pos++] = length >> 8;
      buf[this.#pos++] = length & 0xff;
    } else {
      buf[this.#pos++] = 0xc6;
      this.#view.setUint32(this.#pos, length);
      this.#pos += 4;
    }
    if (length <= 16) {
      // Tiny payloads: a loop beats TypedArray#set's fixed cost.
      const at = this.#pos;
      for (let i = 0; i < length; i++) buf[at + i] = bytes[i] as number;
    } else {
      buf.set(bytes, this.#pos);
    }
    this.#pos += length;
  }
}

/** msgpackr for the record fields FrameEncoder does not write itself (plain msgpack maps). */
const fallbackPackr = new Packr({ useRecords: false });

/**
 * Decodes frames from {@link FrameEncoder} back into records, in one pass.
 *
 * The frame may be a view of ring memory, valid only during the drain callback: it is copied
 * into a fresh private buffer first, and binary fields (payloads) of the result are views of that
 * copy, which nothing writes again — they stay valid after the callback (module comment).
 */
export class FrameDecoder {
  readonly #unpackr = new Unpackr({ useRecords: false });

  /**
   * @returns the records of `frame`, in order.
   * @throws WeftError `ERR_WEFT_CORRUPT_FRAME` when the bytes are not a frame of records.
   */
  decode(frame: Uint8Array): unknown[][] {
    // A plain, non-shared copy (frame.slice() would not copy if frame were a Buffer).
    const bytes = new Uint8Array(frame.length);
    bytes.set(frame);
    let records: unknown;
    try {
      records = this.#unpackr.unpack(bytes);
    } catch (error) {
      throw new WeftError('ERR_WEFT_CORRUPT_FRAME', `frame of ${frame.length} bytes is not valid msgpack`, {
        cause: error,
      });
    }
    if (!Array.isArray(records)) {
      throw new WeftError('ERR_WEFT_CORRUPT_FRAME', `frame decodes to ${describe(records)}, not an array of records`);
    }
    for (let i = 0; i < records.length; i++) {
      if (!Array.isArray(records[i])) {
        throw new WeftError('ERR_WEFT_CORRUPT_FRAME', `frame record ${i} is ${describe(records[i])}, not an array`);
      }
    }
    return records as unknown[][];
  }
}

const defaultEncoder = new FrameEncoder();
const defaultDecoder = new FrameDecoder();

/**
 * {@link FrameEncoder.encode} with a per-thread default encoder: the frame is valid until the next
 * `encodeBatch` on this thread.
 */
export function encodeBatch(records: readonly unknown[]): Uint8Array {
  return defaultEncoder.encode(records);
}

/** {@link FrameDecoder.decode} with a per-thread default decoder. */
export function decodeBatch(frame: Uint8Array): unknown[][] {
  return defaultDecoder.decode(frame);
}

// ---------------------------------------------------------------------------------------------
// User values
// ---------------------------------------------------------------------------------------------

/**
 * msgpack extension type weft uses for `Map` (0x6d, 'm'). msgpackr reserves 0x42, 0x62, 0x65,
 * 0x69, 0x70, 0x72, 0x73, 0x74, 0x78 and 0 for its own extensions; nothing else in weft may use
 * this one. Registered (process-wide, per thread, as msgpackr extensions are) when this module
 * loads.
 */
export const MAP_EXTENSION_TYPE = 0x6d;

/** Values nested deeper than this many levels are rejected (and cycles are found this way). */
export const MAX_VALUE_DEPTH = 256;

/** Carries a Map through msgpackr as `[k0, v0, k1, v1, ...]`. Only this module creates them. */
class MapBox {
  constructor(readonly flat: unknown[]) {}
}

addExtension({
  Class: MapBox,
  type: MAP_EXTENSION_TYPE,
  write: (box: MapBox) => box.flat,
  read: (flat: unknown[]) => {
    const map = new Map<unknown, unknown>();
    for (let i = 0; i + 1 < flat.length; i += 2) map.set(flat[i], flat[i + 1]);
    return map;
  },
});

const valuePackr = new Packr({
  useRecords: false,
  moreTypes: true,
  // Reached only if a getter returns a function on the second read (the walk saw something
  // else): refuse rather than let msgpackr encode it as undefined.
  writeFunction: () => {
    throw new TypeError('a function appeared while packing');
  },
});
const valueUnpackr = new Unpackr({
  useRecords: false,
  moreTypes: true,
  // Binary data is copied out of the input: callers decode from reused buffers (LMDB reads).
  copyBuffers: true,
  int64AsType: 'bigint',
});

/** Constructors whose instances are carried whole (no walk inside). */
const LEAF_CLASSES: ReadonlySet<unknown> = new Set<unknown>([
  Date,
  RegExp,
  ArrayBuffer,
  DataView,
  Buffer,
  Int8Array,
  Uint8Array,
  Uint8ClampedArray,
  Int16Array,
  Uint16Array,
  Int32Array,
  Uint32Array,
  Float32Array,
  Float64Array,
  BigInt64Array,
  BigUint64Array,
]);

const HAS_MAP = 1;
const BAD = 2;
const hasOwn = Object.prototype.hasOwnProperty;

/** What an object is, for the walks below. */
const enum Kind {
  Plain,
  Array,
  Map,
  Set,
  /** Carried whole by msgpackr (Date, RegExp, typed arrays, ...): nothing inside to check. */
  Leaf,
  /** Anything else: a class instance, Error, Promise, WeakMap, boxed primitive, ... */
  Other,
}

/**
 * Classifies an object by what it is, the way msgpackr will treat it. `value.constructor` is only
 * a fast hint: a plain object may have an own `constructor` key (`{ constructor: 'x' }` from
 * JSON), so whenever the hint is not `Object`, the prototype decides.
 */
function kindOf(value: object): Kind {
  const ctor: unknown = value.constructor;
  if (ctor === Object) return Kind.Plain;
  if (!hasOwn.call(value, 'constructor')) {
    if (ctor === Array) return Kind.Array;
    if (LEAF_CLASSES.has(ctor)) return Kind.Leaf;
    if (ctor === Map) return Kind.Map;
    if (ctor === Set) return Kind.Set;
  }
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto === null || proto === Object.prototype) return Kind.Plain;
  // Object.prototype of another realm (a vm context): the end of a chain, with Object's methods.
  if (Object.getPrototypeOf(proto) === null && typeof (proto as { hasOwnProperty?: unknown }).hasOwnProperty === 'function') {
    return Kind.Plain;
  }
  return Kind.Other;
}

/**
 * The fast walk: returns 0 (plain data), HAS_MAP, or BAD. Builds no strings and allocates
 * nothing on plain data.
 */
function scan(value: unknown, depth: number): number {
  switch (typeof value) {
    case 'string':
    case 'number':
    case 'boolean':
    case 'undefined':
    case 'bigint':
      return 0;
    case 'object':
      break;
    default:
      return BAD;
  }
  if (value === null) return 0;
  if (depth >= MAX_VALUE_DEPTH) return BAD;
  let flags = 0;
  switch (kindOf(value)) {
    case Kind.Plain:
      return scanObject(value as Record<string, unknown>, depth);
    case Kind.Array: {
      const array = value as unknown[];
      for (let i = 0; i < array.length; i++) {
        flags |= scan(array[i], depth + 1);
        if (flags & BAD) return BAD;
      }
      return flags;
    }
    case Kind.Leaf:
      return 0;
    case Kind.Map:
      flags = HAS_MAP;
      for (const [k, v] of value as Map<unknown, unknown>) {
        flags |= scan(k, depth + 1) | scan(v, depth + 1);
        if (flags & BAD) return BAD;
      }
      return flags;
    case Kind.Set:
      for (const v of value as Set<unknown>) {
        flags |= scan(v, depth + 1);
        if (flags & BAD) return BAD;
      }
      return flags;
    default:
      return BAD;
  }
}

function scanObject(object: Record<string, unknown>, depth: number): number {
  let flags = 0;
  // No own-property test here (it costs a call per key): inherited enumerable keys, which only
  // exist when Object.prototype is polluted, are walked too. That can only raise a false alarm,
  // which packValue's precise second walk then clears.
  for (const key in object) {
    if (key === '__proto__') return BAD;
    flags |= scan(object[key], depth + 1);
    if (flags & BAD) return BAD;
  }
  return flags;
}

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;
const propertyPath = (path: string, key: string): string =>
  IDENTIFIER.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;

/**
 * The slow walk, run only after {@link scan} said BAD: finds the first offender with its path
 * and says what is wrong with it. `ancestors` holds the containers on the current path, so a
 * cycle is told apart from mere depth.
 */
function explain(value: unknown, path: string, ancestors: Map<object, string>): string | undefined {
  switch (typeof value) {
    case 'function':
      return `${path} is a function`;
    case 'symbol':
      return `${path} is a symbol`;
    case 'object':
      break;
    default:
      return undefined;
  }
  if (value === null) return undefined;
  const seenAt = ancestors.get(value);
  if (seenAt !== undefined) return `${path} is a circular reference to ${seenAt}`;
  if (ancestors.size >= MAX_VALUE_DEPTH) return `${path} is nested more than ${MAX_VALUE_DEPTH} levels deep`;
  const kind = kindOf(value);
  if (kind === Kind.Leaf) return undefined;
  ancestors.set(value, path);
  try {
    switch (kind) {
      case Kind.Array: {
        const array = value as unknown[];
        for (let i = 0; i < array.length; i++) {
          const found = explain(array[i], `${path}[${i}]`, ancestors);
          if (found !== undefined) return found;
        }
        return undefined;
      }
      case Kind.Map: {
        let i = 0;
        for (const [k, v] of value as Map<unknown, unknown>) {
          const found =
            explain(k, `${path}.keys()[${i}]`, ancestors) ?? explain(v, `${path}.get(${describe(k)})`, ancestors);
          if (found !== undefined) return found;
          i++;
        }
        return undefined;
      }
      case Kind.Set: {
        let i = 0;
        for (const v of value as Set<unknown>) {
          const found = explain(v, `${path}.values()[${i}]`, ancestors);
          if (found !== undefined) return found;
          i++;
        }
        return undefined;
      }
      case Kind.Plain: {
        const object = value as Record<string, unknown>;
        for (const key in object) {
          if (!hasOwn.call(object, key)) continue;
          if (key === '__proto__') {
            return `${path} has an own "__proto__" key, which msgpack decoding would not restore`;
          }
          const found = explain(object[key], propertyPath(path, key), ancestors);
          if (found !== undefined) return found;
        }
        return undefined;
      }
      default: {
        if (value instanceof Error) {
          return `${path} is an Error; errors are not serializable (stack and own properties would be lost): send { name, message } instead`;
        }
        const ctor: unknown = Object.getPrototypeOf(value)?.constructor;
        const name = typeof ctor === 'function' && ctor.name !== '' ? ctor.name : 'anonymous class';
        return (
          `${path} is an instance of ${name}; only plain objects, arrays, Map, Set, Date, RegExp, ` +
          'typed arrays, ArrayBuffer and primitives are serializable'
        );
      }
    }
  } finally {
    ancestors.delete(value);
  }
}

/** Copies the containers of `value` that lead to a Map, replacing each Map with a {@link MapBox}. */
function boxMaps(value: unknown): unknown {
  if (typeof value !== 'object' || value === null) return value;
  switch (kindOf(value)) {
    case Kind.Array:
      return (value as unknown[]).map(boxMaps);
    case Kind.Map: {
      const flat: unknown[] = [];
      for (const [k, v] of value as Map<unknown, unknown>) flat.push(boxMaps(k), boxMaps(v));
      return new MapBox(flat);
    }
    case Kind.Set:
      return new Set([...(value as Set<unknown>)].map(boxMaps));
    case Kind.Plain: {
      const object = value as Record<string, unknown>;
      const copy: Record<string, unknown> = {};
      for (const key in object) if (hasOwn.call(object, key)) copy[key] = boxMaps(object[key]);
      return copy;
    }
    default:
      return value;
  }
}

/**
 * Encodes a user value with weft's default msgpack type (see the module comment for exactly what
 * round-trips). The result is a `Buffer` view of msgpackr's encode slab, which msgpackr never
 * writes again (it moves on; RESET-mode packs elsewhere only rewind to their own start), so the
 * caller owns it. Being a Buffer, its `slice()` does not copy; a small payload kept for long keeps
 * its slab (8 KiB) alive — use `new Uint8Array(bytes)` to detach it. (Returning a plain
 * Uint8Array view instead cost ~35 ns per call, a third of packing a small value.)
 *
 * @param label how the value is named in errors, e.g. `'message value'` or `'state "balance"'`.
 * @throws WeftError `ERR_WEFT_UNSERIALIZABLE` naming the path of the first value that cannot be
 *   carried, e.g. `message value.items[2].cb is a function`.
 *
 * @example
 * ```ts
 * const bytes = packValue({ amount: 5, at: new Date() }, 'message value');
 * unpackValue(bytes); // { amount: 5, at: Date }
 * ```
 */
export function packValue(value: unknown, label = 'value'): Uint8Array {
  let flags = scan(value, 0);
  if (flags & BAD) {
    const reason = explain(value, label, new Map());
    if (reason !== undefined) throw new WeftError('ERR_WEFT_UNSERIALIZABLE', reason);
    // A false alarm from an inherited key (see scanObject): take the careful path, which copies
    // own keys only and boxes any Map on the way.
    flags = HAS_MAP;
  }
  try {
    return valuePackr.pack(flags & HAS_MAP ? boxMaps(value) : value);
  } catch (error) {
    throw new WeftError('ERR_WEFT_UNSERIALIZABLE', `${label} could not be packed: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

/**
 * Decodes bytes from {@link packValue}. Binary data in the result is copied, so `bytes` may be
 * reused or overwritten afterwards.
 * @throws WeftError `ERR_WEFT_CORRUPT_FRAME` when the bytes are not valid msgpack.
 */
export function unpackValue(bytes: Uint8Array): unknown {
  // A Buffer view (no copy) makes msgpack bin data decode as Buffer, as Buffers were packed.
  // Shared memory is copied first: msgpackr's native decoder rejects it (NOTES.md).
  const source =
    bytes.buffer instanceof SharedArrayBuffer
      ? Buffer.from(bytes)
      : Buffer.isBuffer(bytes)
        ? bytes
        : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  try {
    return valueUnpackr.unpack(source);
  } catch (error) {
    throw new WeftError('ERR_WEFT_CORRUPT_FRAME', `value of ${bytes.length} bytes is not valid msgpack`, {
      cause: error,
    });
  }
}
