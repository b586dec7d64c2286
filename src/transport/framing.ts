/**
 * msgpack framing for the transport. (User values are encoded by their value types, src/codec/types.ts.)
 *
 * ## Batch frames
 * A frame is ONE msgpack array of records (small arrays), encoded by {@link FrameEncoder} and
 * decoded by msgpackr's `unpack` from a private copy. Of the variants measured by
 * `native-bench/transport-framing.ts` (figures in native-bench/README.md), this one costs least:
 * 244 ns per message encoded and decoded, against 381 ns for msgpackr alone.
 * - Records with shared structures buy nothing for tuples: a tuple has no keys to elide (a
 *   record id byte replaces an array header byte: same size) and the tuple<->object conversion
 *   costs. They would also pin a structure table into every thread and every snapshot.
 * - `unpackMultiple` over concatenated tuples decodes no faster than one array, and appending
 *   one `pack()` per tuple is the slowest encoder. One array per frame it is.
 * - For a frame of many records, copying it once into a fresh buffer beats decoding a reused
 *   scratch with msgpackr's `copyBuffers` (one allocation per frame instead of one per payload);
 *   for a frame of a record or two (request load) it is the other way round, so frames up to
 *   {@link SMALL_FRAME_BYTES} are decoded from a reused scratch (see {@link FrameDecoder}).
 * - msgpackr sends every `Uint8Array` (payload) through its generic extension dispatch, about
 *   half of its encoding time. FrameEncoder writes the same bytes as msgpackr (tests compare them
 *   byte for byte, with a property test) for arrays, strings, numbers, booleans, null and
 *   `Uint8Array`, and defers to msgpackr for anything else, so frames stay plain msgpack that
 *   msgpackr (or any msgpack library) reads.
 *
 * ## Payloads never alias reused memory
 * A ring frame is a view of shared memory that the producer overwrites once the drain ends, and
 * msgpackr's native decoder rejects SharedArrayBuffer views anyway (it throws `source must be an
 * ArrayBuffer` once a frame ends 140+ bytes into one). `FrameDecoder` therefore copies the frame
 * first. A small frame goes into the decoder's reused scratch buffer and each of its payloads is
 * a copy of its own; a larger one goes into a fresh, private `Uint8Array`, and each of its
 * payloads is a view of that copy, which nothing ever writes again. The cost of the latter: a
 * payload kept alive keeps its whole frame (at most the ring capacity) alive; copy a payload
 * (`payload.slice()`) before storing it for long.
 */
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
 * The frame may be a view of ring memory, valid only during the drain callback, so it is copied
 * first (msgpackr also rejects views of a SharedArrayBuffer), and the records stay valid after
 * the callback:
 * - a frame of up to {@link SMALL_FRAME_BYTES} (a message or two: request load) is copied into
 *   this decoder's scratch buffer, reused from frame to frame, and each binary field (payload)
 *   of the result is a copy of its own (msgpackr's `copyBuffers`);
 * - a larger frame is copied into a fresh buffer of its own, and its payloads are views of that
 *   copy, which nothing writes again.
 * A typed array costs ~210 bytes of heap, a view ~100, and msgpackr caches a DataView on each
 * buffer it reads: for one or two payloads, copies of their own cost less than a buffer per frame
 * and views; for more, views do.
 *
 * Never views of a buffer shared by frames: payloads reach user code (a reply or message of a type
 * the module does not know is its raw bytes), which may keep them or transfer their buffer, which
 * would keep or detach every other frame's bytes with it.
 */
export class FrameDecoder {
  readonly #views = new Unpackr({ useRecords: false });
  readonly #copies = new Unpackr({ useRecords: false, copyBuffers: true });
  readonly #scratch = new Uint8Array(SMALL_FRAME_BYTES);

  /**
   * @returns the records of `frame`, in order.
   * @throws WeftError `ERR_WEFT_CORRUPT_FRAME` when the bytes are not a frame of records.
   */
  decode(frame: Uint8Array): unknown[][] {
    const n = frame.length;
    let records: unknown;
    try {
      if (n <= SMALL_FRAME_BYTES) {
        const scratch = this.#scratch;
        scratch.set(frame);
        // Only the frame's n bytes: the scratch may hold a longer earlier frame after them.
        records = this.#copies.unpack(scratch, n);
      } else {
        // A plain, non-shared copy (frame.slice() would not copy if frame were a Buffer).
        const bytes = new Uint8Array(n);
        bytes.set(frame);
        records = this.#views.unpack(bytes);
      }
    } catch (error) {
      throw new WeftError('ERR_WEFT_CORRUPT_FRAME', `frame of ${n} bytes is not valid msgpack`, {
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

/** Frames up to this size are decoded from a reused buffer, their payloads copied (see FrameDecoder). */
export const SMALL_FRAME_BYTES = 128;

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
