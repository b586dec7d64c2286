/**
 * msgpack framing for the transport. (User values are encoded by their value types, src/codec/types.ts.)
 *
 * ## Batch frames
 * A frame is ONE msgpack array of records (small arrays), encoded by {@link FrameEncoder} and
 * decoded by {@link FrameDecoder}. Of the variants measured by `native-bench/transport-framing.ts`
 * (figures in native-bench/README.md), one array per frame costs least.
 * - Records with shared structures buy nothing for tuples: a tuple has no keys to elide (a
 *   record id byte replaces an array header byte: same size) and the tuple<->object conversion
 *   costs. They would also pin a structure table into every thread and every snapshot.
 * - `unpackMultiple` over concatenated tuples decodes no faster than one array, and appending
 *   one `pack()` per tuple is the slowest encoder. One array per frame it is.
 * - For a frame of many records, copying it once into a fresh buffer, viewing the payloads in it
 *   and letting msgpackr decode its strings in bulk beats reading it in place with a copy per
 *   payload; for a frame of up to 1 KiB (16 messages of the bench's ~60 bytes) it is the other way
 *   round, so frames up to {@link SMALL_FRAME_BYTES} are read in place (see {@link FrameDecoder}).
 * - msgpackr sends every `Uint8Array` (payload) through its generic extension dispatch, about
 *   half of its encoding time. FrameEncoder writes the same bytes as msgpackr (tests compare them
 *   byte for byte, with a property test) for arrays, strings, numbers, booleans, null and
 *   `Uint8Array`, and defers to msgpackr for anything else, so frames stay plain msgpack that
 *   msgpackr (or any msgpack library) reads.
 * - FrameDecoder reads those values itself, from the ring's memory, in frames of up to
 *   {@link SMALL_FRAME_BYTES}, and leaves every other frame to msgpackr: a message's frame costs
 *   no view, no copy of the frame and no msgpackr call, and decodes as msgpackr decodes it.
 *
 * ## Payloads never alias reused memory
 * A ring frame is shared memory that the producer overwrites once the drain ends, and msgpackr's
 * native decoder rejects SharedArrayBuffer views anyway (it throws `source must be an
 * ArrayBuffer` once a frame ends 140+ bytes into one). A small frame is read in place and each of
 * its payloads is a copy of its own; msgpackr decodes a larger one from a fresh, private copy, and
 * each of its payloads is a view of that copy, which nothing ever writes again. The cost of the
 * latter: a payload kept alive keeps its whole frame (at most the ring capacity) alive; copy a
 * payload (`payload.slice()`) before storing it for long.
 */
import { MSGPACK_NUMBER_MAX_BYTES, readFloat64BE, writeMsgpackNumber } from '../codec/msgpack-number.js';
import type { FixedWriter } from '../codec/types.js';
import { Packr, Unpackr } from 'msgpackr';
import { WeftError, describe } from '../core/errors.js';
import type { NamedRecords, NameTable } from './names.js';

// ---------------------------------------------------------------------------------------------
// Batch frames
// ---------------------------------------------------------------------------------------------

/**
 * A record as frames carry it: a small array of msgpack-able scalars and `Uint8Array` payloads
 * (the engine's records are defined in src/contract/envelope.ts: an `Envelope` per message).
 */
export type FrameRecord = readonly unknown[];

/** Initial size of a FrameEncoder's buffer; it doubles when a frame needs more. */
const INITIAL_ENCODE_BYTES = 64 * 1024;

/**
 * Encodes batches of records into frames: ONE msgpack array of arrays per frame.
 *
 * It writes standard msgpack itself for what records are made of — arrays, strings, numbers,
 * booleans, null and `Uint8Array` payloads — and hands anything else (objects, bigint, Date, ...)
 * to msgpackr. The bytes are those msgpackr would write for the same records; it is faster
 * because msgpackr routes every `Uint8Array` through its extension machinery (about half of
 * encoding a message; see the module header). msgpackr decodes the frames.
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
/** Records between two calls of FrameEncoder.encode's `progress` (a power of two). */
export const PROGRESS_EVERY = 4096;

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
   * frame; the result is valid until the next `encode` call. `progress` (unnamed records only) is
   * called every {@link PROGRESS_EVERY} records: a shard's heartbeat during a large snapshot.
   * `count`: only the first `count` records (an outbound reuses its array).
   */
  encode(records: readonly unknown[], progress?: () => void, count = records.length): Uint8Array {
    this.#pos = 0;
    this.#arrayHeader(count);
    if (this.#names === null) {
      if (progress === undefined) for (let i = 0; i < count; i++) this.#value(records[i]);
      else {
        for (let i = 0; i < count; i++) {
          this.#value(records[i]);
          if ((i & (PROGRESS_EVERY - 1)) === PROGRESS_EVERY - 1) progress();
        }
      }
    } else {
      for (let i = 0; i < count; i++) {
        const r = records[i];
        if (Array.isArray(r) && r[0] === this.#namedTag) this.#namedRecord(r, this.#names);
        else this.#value(r);
      }
    }
    return this.#bytes.subarray(0, this.#pos);
  }

  /**
   * Starts an array of exactly `length` elements, written one at a time ({@link append},
   * {@link appendFixed}) at the start of this encoder's buffer; {@link written} hands out the
   * bytes. Values as {@link encode} takes them, without wire names.
   */
  startArray(length: number): void {
    this.#pos = 0;
    this.#arrayHeader(length);
  }

  /**
   * Appends `value` encoded by `writer` as a binary field: the bytes {@link append} writes for
   * `type.encode(value)`, written in place. Throws what `writer.length` throws for a bad value.
   */
  appendFixed(writer: FixedWriter, value: unknown): void {
    const n = writer.length(value);
    // Fixed encodings are a few bytes: a bin8 header.
    if (n > 0xff) throw new Error(`a fixed encoding of ${n} bytes does not fit a bin8 field`);
    this.#ensure(2 + n);
    const buf = this.#buf;
    buf[this.#pos++] = 0xc4;
    buf[this.#pos++] = n;
    writer.write(value, buf, this.#pos);
    this.#pos += n;
    this.#appended++;
  }

  /** The bytes written since {@link startArray}; valid until the next call on this encoder. */
  written(): Uint8Array {
    return this.#bytes.subarray(0, this.#pos);
  }

  /**
   * Starts an array whose elements are appended one at a time ({@link append}), for a caller that
   * produces them over time (a snapshot's state records, captured in slices); {@link endArray}
   * writes its length. Values as {@link encode} takes them, without wire names. The bytes stay in
   * this encoder until endArray hands them out; any other call on it in between starts over.
   */
  beginArray(): void {
    // An array32 header, filled in by endArray.
    this.#pos = 5;
    this.#appended = 0;
  }

  /** Appends one element to the array {@link beginArray} started. */
  append(value: unknown): void {
    this.#value(value);
    this.#appended++;
  }

  /**
   * Appends one element to the array {@link beginArray} started: the array `[...head, bytes]`
   * where `bytes` is what `tail` wrote since its {@link startArray} — the bytes
   * `append([...head, tail.written()])` writes, copied from `tail`'s buffer without a view or an
   * array per element (a capture appends one per changed instance).
   */
  appendWith(head: readonly unknown[], tail: FrameEncoder): void {
    if (tail === this) throw new Error('FrameEncoder.appendWith: tail must be another encoder');
    this.#arrayHeader(head.length + 1);
    for (let i = 0; i < head.length; i++) this.#value(head[i]);
    const length = tail.#pos;
    this.#binHeader(length);
    // A loop for the usual small record (Buffer#copy and a subarray each allocate a view).
    this.#copyIn(tail.#buf, length, 256);
    this.#appended++;
  }

  /** Ends the array {@link beginArray} started; the bytes are valid until the next call on this encoder. */
  endArray(): Uint8Array {
    const n = this.#appended;
    const buf = this.#buf;
    buf[0] = 0xdd;
    this.#view.setUint32(1, n);
    return this.#bytes.subarray(0, this.#pos);
  }

  #appended = 0;

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
    this.#ensure(MSGPACK_NUMBER_MAX_BYTES);
    this.#pos += writeMsgpackNumber(n, this.#buf, this.#view, this.#pos);
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
    this.#binHeader(length);
    // Tiny payloads: a loop beats TypedArray#set's fixed cost.
    this.#copyIn(bytes, length, 16);
  }

  /**
   * Copies `from[0..length)` to the write position (room ensured): byte by byte up to `loopMax`
   * bytes, with TypedArray#set beyond.
   */
  #copyIn(from: Uint8Array, length: number, loopMax: number): void {
    const buf = this.#buf;
    const at = this.#pos;
    if (length <= loopMax) {
      for (let i = 0; i < length; i++) buf[at + i] = from[i] as number;
    } else {
      buf.set(length === from.length ? from : from.subarray(0, length), at);
    }
    this.#pos = at + length;
  }

  /** A bin header for `length` bytes, with room ensured for them after it. */
  #binHeader(length: number): void {
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
  }
}

/** msgpackr for the record fields FrameEncoder does not write itself (plain msgpack maps). */
const fallbackPackr = new Packr({ useRecords: false });

/**
 * Decodes frames from {@link FrameEncoder} back into records, in one pass.
 *
 * A frame of up to {@link SMALL_FRAME_BYTES} (request load: a message or a few per frame) is read
 * in place, straight from the bytes it is given, which may be ring memory ({@link decodeAt} takes
 * the ring's bytes and the frame's bounds): no view, no copy of the frame, no msgpackr call. It
 * reads what FrameEncoder writes itself — arrays, ASCII strings, numbers, booleans, null and
 * binary fields — and each binary field (payload) of the result is a copy of its own.
 *
 * msgpackr decodes every other frame, from a private copy:
 * - a larger frame (a batch): msgpackr decodes its strings in bulk with its native extension,
 *   which beats reading them one by one (native-bench/README.md, "Batch frames"); its payloads
 *   are views of the frame's copy, which nothing writes again;
 * - a small frame holding a map, an extension or a 64-bit integer (what FrameEncoder hands to
 *   msgpackr), a string beyond ASCII (msgpackr's decoding of malformed UTF-8 depends on the
 *   string's length and on its native extension: only msgpackr reproduces it), or bytes that are
 *   not a frame of records (its verdict is the error's cause).
 * So every frame decodes exactly as msgpackr decodes it (a property test compares them on real
 * and on damaged frames).
 *
 * Never views of a buffer shared by frames: payloads reach user code (a reply or message of a type
 * the module does not know is its raw bytes), which may keep them or transfer their buffer, which
 * would keep or detach every other frame's bytes with it.
 */
export class FrameDecoder {
  readonly #views = new Unpackr({ useRecords: false });
  readonly #copies = new Unpackr({ useRecords: false, copyBuffers: true });
  /** The bytes being read, the read position and the frame's end. */
  #src: Uint8Array = EMPTY;
  #pos = 0;
  #end = 0;
  /** A Buffer over #src's memory, for a long ASCII string; made when the frame holds one. */
  #text: Buffer | null = null;
  /** The records of the last {@link decodeAt}, reused from frame to frame. */
  readonly #out: unknown[][] = [];

  /**
   * @returns the records of `frame`, in order: a new array.
   * @throws WeftError `ERR_WEFT_CORRUPT_FRAME` when the bytes are not a frame of records.
   */
  decode(frame: Uint8Array): unknown[][] {
    const n = this.decodeAt(frame, 0, frame.length);
    const records = this.#out.slice(0, n);
    this.release();
    return records;
  }

  /**
   * Decodes the frame `bytes[start, end)` into {@link records}, and returns how many it holds.
   * The records themselves are new (keep them); the array that lists them is this decoder's,
   * reused by its next decode.
   * @throws WeftError `ERR_WEFT_CORRUPT_FRAME` when the bytes are not a frame of records.
   */
  decodeAt(bytes: Uint8Array, start: number, end: number): number {
    const out = this.#out;
    let count = -1;
    if (end - start <= SMALL_FRAME_BYTES) {
      this.#src = bytes;
      this.#pos = start;
      this.#end = end;
      try {
        count = this.#frame(out);
      } catch {
        // A value left to msgpackr, or bytes that are not a frame of records: msgpackr decodes the
        // frame again, and its verdict (records, or the error) is the decoder's.
        this.#slowFrames++;
      } finally {
        // Let go of the source (a ring, or a caller's frame) until the next decode.
        this.#src = EMPTY;
        this.#text = null;
      }
    }
    if (count < 0) {
      try {
        count = this.#msgpackr(bytes, start, end, out);
      } catch (error) {
        // Nothing of a refused frame (or of an earlier one) stays reachable from here.
        out.length = 0;
        throw error;
      }
      // A larger frame's payloads view a copy of the whole frame: hold it no longer than the
      // caller's loop over these records (release()).
      this.#holdsCopy = end - start > SMALL_FRAME_BYTES;
    }
    // Records of an earlier, longer frame must not stay reachable from here.
    if (out.length > count) out.length = count;
    return count;
  }

  /**
   * Forgets the records of the last decode when they hold a frame's copy (a frame larger than
   * {@link SMALL_FRAME_BYTES}): call once done with {@link records}, so that an idle consumer does
   * not keep its last large frame alive. The records themselves stay valid.
   */
  release(): void {
    if (this.#holdsCopy) {
      this.#out.length = 0;
      this.#holdsCopy = false;
    }
  }

  /** Frames small enough to read in place that msgpackr decoded instead (values FrameEncoder leaves to msgpackr, or bad bytes). */
  get slowFrames(): number {
    return this.#slowFrames;
  }

  #slowFrames = 0;
  #holdsCopy = false;

  /** The records the last {@link decodeAt} returned the count of; overwritten by the next decode. */
  get records(): readonly unknown[][] {
    return this.#out;
  }

  #frame(out: unknown[][]): number {
    const src = this.#src;
    if (this.#pos >= this.#end) throw new RangeError('empty frame');
    const count = this.#arrayLength(src[this.#pos++] as number);
    for (let i = 0; i < count; i++) {
      if (this.#pos >= this.#end) throw new RangeError('frame ends early');
      out[i] = this.#array(this.#arrayLength(src[this.#pos++] as number));
    }
    if (this.#pos !== this.#end) throw new Error(`${this.#end - this.#pos} bytes after the records`);
    return count;
  }

  /** The element count of the array whose first byte `b` is (its length bytes read); throws for anything else. */
  #arrayLength(b: number): number {
    if ((b & 0xf0) === 0x90) return b & 0x0f;
    if (b === 0xdc) return this.#uint(2);
    if (b === 0xdd) return this.#uint(4);
    throw OTHER;
  }

  #array(length: number): unknown[] {
    // Every element takes a byte at least.
    if (length > this.#end - this.#pos) throw new RangeError('frame ends early');
    const a = new Array<unknown>(length);
    for (let i = 0; i < length; i++) a[i] = this.#value();
    return a;
  }

  #value(): unknown {
    const src = this.#src;
    if (this.#pos >= this.#end) throw new RangeError('frame ends early');
    const b = src[this.#pos++] as number;
    if (b < 0x80) return b;
    if (b >= 0xe0) return b - 0x100;
    if (b >= 0xa0 && b < 0xc0) return this.#string(b & 0x1f);
    if ((b & 0xf0) === 0x90) return this.#array(b & 0x0f);
    switch (b) {
      case 0xc0:
        return null;
      case 0xc2:
        return false;
      case 0xc3:
        return true;
      case 0xc4:
        return this.#bin(this.#uint(1));
      case 0xc5:
        return this.#bin(this.#uint(2));
      case 0xc6:
        return this.#bin(this.#uint(4));
      case 0xcb:
        return this.#float64();
      case 0xcc:
        return this.#uint(1);
      case 0xcd:
        return this.#uint(2);
      case 0xce:
        return this.#uint(4);
      case 0xd0: {
        const v = this.#uint(1);
        return v < 0x80 ? v : v - 0x100;
      }
      case 0xd1: {
        const v = this.#uint(2);
        return v < 0x8000 ? v : v - 0x10000;
      }
      case 0xd2:
        return this.#uint(4) | 0;
      case 0xd9:
        return this.#string(this.#uint(1));
      case 0xda:
        return this.#string(this.#uint(2));
      case 0xdb:
        return this.#string(this.#uint(4));
      case 0xdc:
        return this.#array(this.#uint(2));
      case 0xdd:
        return this.#array(this.#uint(4));
      default:
        // Maps, extensions, float32, 64-bit integers: msgpackr's to decode.
        throw OTHER;
    }
  }

  /** A big-endian unsigned integer of `size` (1, 2 or 4) bytes. */
  #uint(size: number): number {
    const src = this.#src;
    const p = this.#pos;
    if (p + size > this.#end) throw new RangeError('frame ends early');
    this.#pos = p + size;
    if (size === 1) return src[p] as number;
    if (size === 2) return ((src[p] as number) << 8) | (src[p + 1] as number);
    return (((src[p] as number) << 24) | ((src[p + 1] as number) << 16) | ((src[p + 2] as number) << 8) | (src[p + 3] as number)) >>> 0;
  }

  #float64(): number {
    const src = this.#src;
    const p = this.#pos;
    if (p + 8 > this.#end) throw new RangeError('frame ends early');
    this.#pos = p + 8;
    return readFloat64BE(src, p);
  }

  #bin(length: number): Uint8Array {
    const src = this.#src;
    const p = this.#pos;
    if (p + length > this.#end) throw new RangeError('frame ends early');
    this.#pos = p + length;
    const out = new Uint8Array(length);
    if (length <= 16) for (let i = 0; i < length; i++) out[i] = src[p + i] as number;
    else out.set(src.subarray(p, p + length));
    return out;
  }

  #string(length: number): string {
    const src = this.#src;
    const p = this.#pos;
    const end = p + length;
    if (end > this.#end) throw new RangeError('frame ends early');
    this.#pos = end;
    if (length <= 64) {
      // ASCII (ids, names): String.fromCharCode, without a native call.
      const s = shortAscii(src, p, length);
      if (s !== null) return s;
      throw OTHER;
    }
    for (let i = p; i < end; i++) if ((src[i] as number) >= 0x80) throw OTHER;
    // ASCII: its latin1 decoding is its UTF-8 decoding.
    this.#text ??= Buffer.from(src.buffer, src.byteOffset, src.byteLength);
    return this.#text.toString('latin1', p, end);
  }

  /** The frame decoded by msgpackr (it holds values FrameDecoder leaves to msgpackr), checked as decodeAt checks it. */
  #msgpackr(bytes: Uint8Array, start: number, end: number, out: unknown[][]): number {
    const n = end - start;
    let records: unknown;
    try {
      // A plain, non-shared copy (a Buffer's slice would not copy). A small frame's payloads are
      // copies of their own, a larger one's views of this copy (see the class comment).
      const copy = new Uint8Array(n);
      copy.set(bytes.subarray(start, end));
      records = (n <= SMALL_FRAME_BYTES ? this.#copies : this.#views).unpack(copy);
    } catch (error) {
      throw new WeftError('ERR_WEFT_CORRUPT_FRAME', `frame of ${n} bytes is not valid msgpack`, { cause: error });
    }
    if (!Array.isArray(records)) {
      throw new WeftError('ERR_WEFT_CORRUPT_FRAME', `frame decodes to ${describe(records)}, not an array of records`);
    }
    for (let i = 0; i < records.length; i++) {
      if (!Array.isArray(records[i])) {
        throw new WeftError('ERR_WEFT_CORRUPT_FRAME', `frame record ${i} is ${describe(records[i])}, not an array`);
      }
      out[i] = records[i] as unknown[];
    }
    return records.length;
  }
}

/** `src[p, p + length)` as a string when every byte is ASCII, else null. */
function shortAscii(src: Uint8Array, p: number, length: number): string | null {
  if (length < 4) {
    if (length === 0) return '';
    const a = src[p] as number;
    if (length === 1) return a < 0x80 ? String.fromCharCode(a) : null;
    const b = src[p + 1] as number;
    if (length === 2) return (a | b) < 0x80 ? String.fromCharCode(a, b) : null;
    const c = src[p + 2] as number;
    return (a | b | c) < 0x80 ? String.fromCharCode(a, b, c) : null;
  }
  const a = src[p] as number;
  const b = src[p + 1] as number;
  const c = src[p + 2] as number;
  const d = src[p + 3] as number;
  if ((a | b | c | d) >= 0x80) return null;
  if (length < 8) {
    if (length === 4) return String.fromCharCode(a, b, c, d);
    const e = src[p + 4] as number;
    if (length === 5) return e < 0x80 ? String.fromCharCode(a, b, c, d, e) : null;
    const f = src[p + 5] as number;
    if (length === 6) return (e | f) < 0x80 ? String.fromCharCode(a, b, c, d, e, f) : null;
    const g = src[p + 6] as number;
    return (e | f | g) < 0x80 ? String.fromCharCode(a, b, c, d, e, f, g) : null;
  }
  const e = src[p + 4] as number;
  const f = src[p + 5] as number;
  const g = src[p + 6] as number;
  const h = src[p + 7] as number;
  if ((e | f | g | h) >= 0x80) return null;
  if (length === 8) return String.fromCharCode(a, b, c, d, e, f, g, h);
  const rest = shortAscii(src, p + 8, length - 8);
  return rest === null ? null : String.fromCharCode(a, b, c, d, e, f, g, h) + rest;
}

/** Thrown inside FrameDecoder for a value (or bytes) it leaves to msgpackr. */
const OTHER = new Error('decoded by msgpackr');
const EMPTY = new Uint8Array(0);

/** Frames up to this size are read in place, their payloads copied; larger ones go to msgpackr (see FrameDecoder). */
export const SMALL_FRAME_BYTES = 1024;

const defaultEncoder = new FrameEncoder();
const defaultDecoder = new FrameDecoder();

/**
 * {@link FrameEncoder.encode} with a per-thread default encoder: the frame is valid until the next
 * `encodeBatch` on this thread.
 */
export function encodeBatch(records: readonly unknown[], count = records.length): Uint8Array {
  return defaultEncoder.encode(records, undefined, count);
}

/** {@link FrameDecoder.decode} with a per-thread default decoder. */
export function decodeBatch(frame: Uint8Array): unknown[][] {
  return defaultDecoder.decode(frame);
}
