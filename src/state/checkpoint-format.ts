/**
 * The records a checkpoint leaves in a partition: the PENDING entries of an epoch (state changes,
 * timer changes, mailboxes) and the meta keys a fold maintains. Part of the on-disk format: the
 * participant writes and folds them, recovery, repartitioning, `weft inspect` and instance
 * listing read them.
 */
import { Packr, Unpackr } from 'msgpackr';
import { FrameEncoder } from '../transport/framing.js';
import type { Envelope } from '../contract/envelope.js';
import type { StateChange } from './instance-cache.js';
import type { Timer } from '../timers/timer-service.js';

/**
 * Kinds of entries under `pending[epoch, kind, ...]`. Part of the on-disk format: never renumber.
 * 1 and 2 are reserved: development builds used them for one entry per changed instance; no
 * release ever wrote them, and nothing reads them.
 */
export const enum PendingKind {
  /** `[e, TimerPut, kg, due, seq]` → encoded timer ({@link encodeTimer}). */
  TimerPut = 3,
  /** `[e, TimerDelete, kg, due, seq]` → empty. */
  TimerDelete = 4,
  /** `[e, Mailbox]` → the mailbox and in-flight messages ({@link encodeEnvelopes}). */
  Mailbox = 5,
  /** `[e, Meta]` → {@link encodePendingMeta}. */
  Meta = 6,
  /**
   * `[e, States]` → every state change of the epoch in ONE value: a msgpack array of
   * `[kg, type, id, record | null]`. One put, and one delete when the epoch is folded, instead
   * of one per changed instance (for 100k changed instances, a PENDING write of ~27 ms instead
   * of ~123 ms).
   */
  States = 7,
}

export const META_FOLDED_EPOCH = 'foldedEpoch';
export const META_MAILBOX = 'mailbox';
export const META_TIMER_SEQ = 'timerSeq';

const packr = new Packr({ useRecords: false, moreTypes: false });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });

/** The epoch's `[e, Meta]` entry: the timer sequence to continue from. */
export function encodePendingMeta(timerSeq: number): Uint8Array {
  return packr.pack({ timerSeq });
}

export function decodePendingMeta(bytes: Uint8Array): { timerSeq: number } {
  return unpackr.unpack(bytes) as { timerSeq: number };
}

export function encodeTimer(t: Pick<Timer, 'env' | 'senderKey' | 'token'>): Uint8Array {
  return packr.pack([t.env, t.senderKey, t.token]);
}

export function decodeTimer(kg: number, due: number, seq: number, bytes: Uint8Array): Omit<Timer, 'cancelled'> {
  const [env, senderKey, token] = unpackr.unpack(bytes) as [Envelope, string, string | null];
  return { kg, due, seq, env, senderKey, token };
}

/**
 * Encodes snapshot values into a private copy, all at once ({@link encode}) or an element at a
 * time ({@link begin}, {@link append}, {@link end}: for work done in slices). The FrameEncoder
 * keeps its buffer for the next snapshot, unless an unusually large value grew it past
 * {@link KEEP_BYTES}.
 */
export class SnapshotEncoder {
  static readonly KEEP_BYTES = 8 * 1024 * 1024;
  #encoder: FrameEncoder | undefined;

  encode(records: readonly unknown[], progress?: () => void): Uint8Array {
    this.#encoder ??= new FrameEncoder();
    return this.#keep(this.#encoder.encode(records, progress));
  }

  /** Starts an array appended an element at a time; nothing else may use this encoder until {@link end}. */
  begin(): void {
    (this.#encoder ??= new FrameEncoder()).beginArray();
  }

  append(value: unknown): void {
    (this.#encoder as FrameEncoder).append(value);
  }

  /** Appends `[...head, what tail wrote]` (FrameEncoder.appendWith). */
  appendWith(head: readonly unknown[], tail: FrameEncoder): void {
    (this.#encoder as FrameEncoder).appendWith(head, tail);
  }

  /** The array {@link begin} started, as a private copy. */
  end(): Uint8Array {
    return this.#keep((this.#encoder as FrameEncoder).endArray());
  }

  #keep(view: Uint8Array): Uint8Array {
    const bytes = view.slice();
    if (bytes.byteLength > SnapshotEncoder.KEEP_BYTES) this.#encoder = undefined;
    return bytes;
  }
}

const statesEncoder = new SnapshotEncoder();
const envelopesEncoder = new SnapshotEncoder();

/** An epoch's state changes as one value (PendingKind.States); `progress`: see FrameEncoder.encode. */
export function encodeStates(states: readonly StateChange[], progress?: () => void): Uint8Array {
  return statesEncoder.encode(states, progress);
}

/**
 * An epoch's state changes as one PendingKind.States value, built a change at a time while the
 * shard captures them (InstanceCache.beginCapture): the same bytes {@link encodeStates} would write
 * for the same changes (apart from a 5-byte array header), kept as bytes and not as JS objects,
 * so a snapshot waiting for its fold leaves nothing for the garbage collector to trace or copy.
 * One capture at a time per thread uses the shared encoder (a second one throws until the first is
 * finished); {@link finish} hands the bytes over and frees it.
 */
export class StatesCapture {
  #bytes: Uint8Array | null = null;
  #count = 0;

  /** Starts a capture; the one still open on this thread, if any, must have been finished. */
  constructor() {
    if (captureOwner !== null) throw new Error('a StatesCapture is still open on this thread: finish it first');
    captureOwner = this;
    captureEncoder.begin();
  }

  /** Appends one change: `record` is copied (null: the instance holds nothing, delete it). */
  add(kg: number, type: string, id: string, record: Uint8Array | null): void {
    if (this.#bytes !== null) throw new Error('StatesCapture.add after finish');
    const change = captureScratch;
    change[0] = kg;
    change[1] = type;
    change[2] = id;
    change[3] = record;
    captureEncoder.append(change);
    change[3] = null;
    this.#count++;
  }

  /**
   * Appends one change whose record is what `record` wrote since its startArray (the bytes
   * {@link add} writes for `record.written()`, copied without a view per instance).
   */
  addWritten(kg: number, type: string, id: string, record: FrameEncoder): void {
    if (this.#bytes !== null) throw new Error('StatesCapture.addWritten after finish');
    const head = captureHead;
    head[0] = kg;
    head[1] = type;
    head[2] = id;
    captureEncoder.appendWith(head, record);
    this.#count++;
  }

  /** Changes added so far. */
  get count(): number {
    return this.#count;
  }

  /** The encoded changes (a private copy); no more can be added. */
  finish(): Uint8Array {
    if (this.#bytes === null) {
      this.#bytes = captureEncoder.end();
      captureOwner = null;
    }
    return this.#bytes;
  }
}

const captureEncoder = new SnapshotEncoder();
/** The key of the change StatesCapture.addWritten appends (one array, reused). */
const captureHead: [kg: number, type: string, id: string] = [0, '', ''];
/** The change StatesCapture.add appends (one array, reused). */
const captureScratch: StateChange = [0, '', '', null];
/** The capture using captureEncoder now (one at a time per thread). */
let captureOwner: StatesCapture | null = null;

/**
 * Reads a PendingKind.States value one change at a time, without decoding it all at once (a fold
 * merges many epochs in slices). After {@link next} returns true, the fields hold the change;
 * `record` is a view of the value's bytes.
 */
export class StatesReader {
  readonly #b: Buffer;
  readonly #dv: DataView;
  #at = 0;
  #left: number;
  kg = 0;
  type = '';
  id = '';
  record: Uint8Array | null = null;

  constructor(bytes: Uint8Array) {
    this.#b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.#dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.#left = this.#arrayLength();
  }

  /** Changes not read yet. */
  get remaining(): number {
    return this.#left;
  }

  /** Where the next change {@link next} reads starts: a position for {@link readAt}. */
  get position(): number {
    return this.#at;
  }

  /**
   * Reads the change that starts at `position` (one {@link position} gave before a {@link next})
   * into the fields again, as {@link next} did then. For a reader done with {@link next}: the
   * count of changes {@link next} has left does not move.
   */
  readAt(position: number): void {
    if (!(Number.isInteger(position) && position >= 0 && position < this.#b.byteLength)) {
      throw new RangeError(`pending state change position ${position} is outside the value's ${this.#b.byteLength} bytes`);
    }
    this.#at = position;
    this.#change();
  }

  next(): boolean {
    if (this.#left === 0) return false;
    this.#left--;
    this.#change();
    return true;
  }

  /**
   * {@link next} for a reader that needs the keys only: `kg`, `type` and `id` are read, the
   * record is stepped over (`record` is null: no view made). A fold reads every change of its
   * epochs to find each instance's latest, and writes only those (read again with {@link readAt}).
   */
  nextKey(): boolean {
    if (this.#left === 0) return false;
    this.#left--;
    this.#key();
    this.#skipRecord();
    this.record = null;
    return true;
  }

  #change(): void {
    this.#key();
    this.record = this.#binOrNil();
  }

  #key(): void {
    if (this.#arrayLength() !== 4) throw new TypeError('a pending state change is not [kg, type, id, record]');
    this.kg = this.#uint();
    this.type = this.#str(true);
    this.id = this.#str(false);
  }

  #byte(): number {
    if (this.#at >= this.#b.byteLength) throw new TypeError('pending state changes end early');
    return this.#b[this.#at++] as number;
  }

  #arrayLength(): number {
    const t = this.#byte();
    if ((t & 0xf0) === 0x90) return t & 0x0f;
    if (t === 0xdc) return this.#be(2);
    if (t === 0xdd) return this.#be(4);
    throw new TypeError(`pending state changes: expected an array, found byte 0x${t.toString(16)}`);
  }

  #be(n: 1 | 2 | 4): number {
    const at = this.#at;
    if (at + n > this.#b.byteLength) throw new TypeError('pending state changes end early');
    this.#at = at + n;
    return n === 1 ? (this.#b[at] as number) : n === 2 ? this.#dv.getUint16(at) : this.#dv.getUint32(at);
  }

  #uint(): number {
    const t = this.#byte();
    if (t < 0x80) return t;
    if (t === 0xcc) return this.#be(1);
    if (t === 0xcd) return this.#be(2);
    if (t === 0xce) return this.#be(4);
    throw new TypeError(`pending state changes: expected a key group, found byte 0x${t.toString(16)}`);
  }

  /** Reads a string; `repeats`: likely the same as the last one read with it (a type). */
  #str(repeats: boolean): string {
    const t = this.#byte();
    const n = (t & 0xe0) === 0xa0 ? t & 0x1f : t === 0xd9 ? this.#be(1) : t === 0xda ? this.#be(2) : t === 0xdb ? this.#be(4) : -1;
    if (n < 0) throw new TypeError(`pending state changes: expected a string, found byte 0x${t.toString(16)}`);
    const at = this.#at;
    const b = this.#b;
    if (at + n > b.byteLength) throw new TypeError('pending state changes end early');
    this.#at = at + n;
    // Types repeat from change to change: the last one read is compared byte for byte first.
    const last = this.#lastStr;
    if (repeats && n === this.#lastLength && last !== '') {
      const from = this.#lastAt;
      let same = true;
      for (let i = 0; i < n; i++) {
        if (b[at + i] !== b[from + i]) {
          same = false;
          break;
        }
      }
      if (same) {
        this.#lastAt = at;
        return last;
      }
    }
    const s = b.toString('utf8', at, at + n);
    if (repeats) {
      this.#lastStr = s;
      this.#lastAt = at;
      this.#lastLength = n;
    }
    return s;
  }

  /** The last repeating string #str read, its bytes' position and length. */
  #lastStr = '';
  #lastAt = 0;
  #lastLength = -1;

  #binOrNil(): Uint8Array | null {
    const n = this.#recordLength();
    if (n < 0) return null;
    const at = this.#at;
    this.#at = at + n;
    return new Uint8Array(this.#b.buffer, this.#b.byteOffset + at, n);
  }

  #skipRecord(): void {
    const n = this.#recordLength();
    if (n > 0) this.#at += n;
  }

  /** The length of the record that starts here (its header read), checked to fit; -1 for nil. */
  #recordLength(): number {
    const t = this.#byte();
    if (t === 0xc0) return -1;
    const n = t === 0xc4 ? this.#be(1) : t === 0xc5 ? this.#be(2) : t === 0xc6 ? this.#be(4) : -1;
    if (n < 0) throw new TypeError(`pending state changes: expected a record, found byte 0x${t.toString(16)}`);
    if (this.#at + n > this.#b.byteLength) throw new TypeError('pending state changes end early');
    return n;
  }
}

/** Decodes {@link encodeStates}; byte fields are views of `bytes`. */
export function decodeStates(bytes: Uint8Array): StateChange[] {
  const states = unpackr.unpack(bytes) as StateChange[];
  if (!Array.isArray(states)) throw new TypeError('pending state changes are not an array');
  return states;
}

/**
 * Mailboxes as one msgpack array of envelopes. FrameEncoder writes the bytes msgpackr's pack
 * writes for arrays of scalars and byte arrays, at about twice the speed (framing.ts): a snapshot
 * packs every queued message, tens of thousands per epoch under load.
 */
export function encodeEnvelopes(envs: Envelope[], progress?: () => void): Uint8Array {
  return envelopesEncoder.encode(envs, progress);
}

export function decodeEnvelopes(bytes: Uint8Array | undefined): Envelope[] {
  if (bytes === undefined || bytes.byteLength === 0) return [];
  const envs = unpackr.unpack(bytes) as Envelope[];
  for (const e of envs) {
    const p = e[6] as Uint8Array;
    // msgpackr may hand back Buffers; the engine's payloads are plain Uint8Array views.
    if (!(p instanceof Uint8Array)) throw new TypeError('snapshot envelope payload is not bytes');
  }
  return envs;
}
