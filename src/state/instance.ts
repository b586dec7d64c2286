/**
 * One function instance's state, as the shard holds it in memory: a slot per declared state name
 * with the value's encoded bytes (what a snapshot writes and what a read decodes) and the time it
 * was written (for `expireAfterWrite`), plus the time of the instance's last invocation (for
 * `expireAfterCall`).
 *
 * Values are kept ENCODED: an assignment encodes once (which also validates it and fixes its size),
 * a snapshot reuses those bytes, and a read of an object value decodes a fresh copy, so user code
 * that mutates what it read cannot change stored state behind the engine's back. Immutable values
 * (numbers, strings, booleans) keep their decoded form too and are handed out as is.
 */
import { Unpackr } from 'msgpackr';
import { fixedWriterOf } from '../codec/types.js';
import { FrameEncoder } from '../transport/framing.js';
import { WeftError } from '../core/errors.js';

export class Slot {
  /** Encoded value; null until first needed when the slot was written with an immutable value. */
  #bytes: Uint8Array | null;
  /** Encodes `decoded` on demand (immutable values written by a function). */
  #encoder: ((value: unknown) => Uint8Array) | null;
  /**
   * When the value was written (ms since the epoch). Initialized here, not only in the
   * constructor: a field declared without a value is defined as `undefined` first (ES2022 class
   * fields), which makes V8 give it the tagged representation, and then every write of a
   * timestamp allocated a heap number that the shard's scavenges copied, one per changed slot
   * (issue 13). Starting as a small integer, it becomes a double field whose box is updated in place.
   */
  writtenAt = 0;
  /** Decoded value, kept only for immutable types. */
  decoded: unknown;
  hasDecoded: boolean;
  /**
   * The value's typename when it is not implied by a declared spec: state of remote (StateFun)
   * functions, whose specs weft learns at run time. null for weft functions.
   */
  typename: string | null;
  /** Bumped by every {@link assign}: tells "written again" apart from "the same slot". */
  version = 0;

  constructor(bytes: Uint8Array | null, writtenAt: number, decoded: unknown, hasDecoded: boolean, typename: string | null = null, encoder: ((value: unknown) => Uint8Array) | null = null) {
    this.#bytes = bytes;
    this.#encoder = encoder;
    this.writtenAt = writtenAt;
    this.decoded = decoded;
    this.hasDecoded = hasDecoded;
    this.typename = typename;
  }

  /**
   * The encoded value. An immutable value (a number, a string, a boolean) is kept decoded only,
   * and encoded when something needs its bytes — typically a snapshot. The bytes are not kept:
   * a small typed array costs about 200 bytes of heap, more than the value and its slot together,
   * and re-encoding a primitive for the next snapshot is cheap.
   */
  get bytes(): Uint8Array {
    return this.#bytes ?? (this.#encoder as (value: unknown) => Uint8Array)(this.decoded);
  }

  /** The encoder {@link bytes} would call (the value is kept decoded only), or null when the bytes are kept. */
  get lazyEncoder(): ((value: unknown) => Uint8Array) | null {
    return this.#bytes === null ? this.#encoder : null;
  }

  /** Keeps only the decoded form of an immutable value read from bytes (see {@link bytes}). */
  settle(value: unknown, encoder: (value: unknown) => Uint8Array): void {
    this.decoded = value;
    this.hasDecoded = true;
    this.#bytes = null;
    this.#encoder = encoder;
  }

  /** Takes an immutable value in place (a function wrote it; encoded on demand, see {@link bytes}). */
  setImmutable(value: unknown, writtenAt: number, encoder: (value: unknown) => Uint8Array): void {
    this.#bytes = null;
    this.#encoder = encoder;
    this.writtenAt = writtenAt;
    this.decoded = value;
    this.hasDecoded = true;
    this.typename = null;
    this.version++;
  }

  /** Takes `other`'s value in place (the long-lived slot stays; only the short-lived one dies). */
  assign(other: Slot): void {
    this.#bytes = other.#bytes;
    this.#encoder = other.#encoder;
    this.writtenAt = other.writtenAt;
    this.decoded = other.decoded;
    this.hasDecoded = other.hasDecoded;
    this.typename = other.typename;
    this.version++;
  }
}

/**
 * An idempotency key the instance applied (src/core/idempotency.ts): when, and the reply of the
 * invocation that applied it (typename and payload; null when it did not reply).
 */
export type AppliedKey = [at: number, typename: string | null, payload: Uint8Array | null];

export class Instance {
  readonly key: string;
  readonly type: string;
  readonly id: string;
  readonly kg: number;
  readonly slots = new Map<string, Slot>();
  /** Time of the last completed invocation (0: never). */
  calledAt = 0;
  /** Changed since the last snapshot took it. */
  dirty = false;
  /** A snapshot took this instance and has not encoded it yet (see InstanceCache.beginCapture). */
  capturing = false;
  /** Epoch of the last snapshot that captured this instance (0: none since it was loaded). */
  capturedEpoch = 0;
  /** An invocation holds this instance (possibly across an await): the cache must not drop it. */
  busy = false;
  /** Dropped from the cache: holders must look the instance up again. */
  evicted = false;
  /** CLOCK reference bit for the bounded cache. */
  ref = true;
  /**
   * Idempotency keys applied within the retention window, with their replies; null when none.
   * Kept in the instance's record with its state (checkpointed with the invocations' effects),
   * but not state: listing, inspect and `ctx.state` do not see it.
   */
  applied: Map<string, AppliedKey> | null = null;
  /** `ctx.self`, frozen, made on first use. */
  self: Readonly<{ type: string; id: string }> | undefined = undefined;

  constructor(key: string, type: string, id: string, kg: number) {
    this.key = key;
    this.type = type;
    this.id = id;
    this.kg = kg;
  }

  get isEmpty(): boolean {
    return this.slots.size === 0 && (this.applied === null || this.applied.size === 0);
  }
}

// The record format is part of the on-disk format:
//   v1: [1, calledAt, name, bytes, writtenAt, ...]
//   v2: [2, calledAt, name, bytes, writtenAt, typename | null, ...]   (written when a slot has a typename)
//   v3: [3, calledAt, [key, at, replyTypename | null, replyPayload | null, ...], name, bytes, writtenAt, typename | null, ...]
//       (written when the instance holds applied idempotency keys)
const RECORD_V1 = 1;
const RECORD_V2 = 2;
const RECORD_V3 = 3;
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });

/**
 * Encodes an instance's slots for its partition; `null` when it holds nothing (delete the record).
 * The bytes are a view of a reused buffer, valid until the next call: copy them to keep them.
 */
export function encodeInstanceView(inst: Instance): Uint8Array | null {
  return encodeInstanceInto(inst)?.written() ?? null;
}

/**
 * {@link encodeInstanceView} left in a reused encoder (its `written()` bytes; valid until the next
 * call), for a caller that copies them on (StatesCapture.addWritten); `null` when the instance
 * holds nothing.
 */
export function encodeInstanceInto(inst: Instance): FrameEncoder | null {
  const applied = inst.applied;
  const keys = applied !== null && applied.size > 0;
  if (inst.slots.size === 0 && !keys) return null;
  // Written straight into the encoder, field by field: a capture encodes thousands of instances
  // per checkpoint. Map#forEach with hoisted callbacks (entries() allocated an iterator and a pair
  // per slot); no record array (refilling one allocated its storage, and boxed every timestamp);
  // a fixed-width value written in place (slot.bytes makes a typed array for it).
  recordTyped = keys;
  inst.slots.forEach(noteTyped);
  const enc = recordEncoder;
  enc.startArray(2 + (keys ? 1 : 0) + inst.slots.size * (recordTyped ? 4 : 3));
  enc.append(keys ? RECORD_V3 : recordTyped ? RECORD_V2 : RECORD_V1);
  enc.append(inst.calledAt);
  if (keys) {
    const flat: unknown[] = [];
    for (const [key, [at, typename, payload]] of applied) flat.push(key, at, typename, payload);
    enc.append(flat);
  }
  // (A slot's bytes may come from a custom type's encoder, which may throw: the next call starts
  // the encoder over.)
  inst.slots.forEach(writeSlot);
  // FrameEncoder writes the bytes msgpackr writes for arrays of scalars and byte arrays, without
  // msgpackr's per-Uint8Array extension dispatch (framing.ts).
  return enc;
}

/** Whether the record encodeInstanceView is writing is typed. */
let recordTyped = false;
const noteTyped = (slot: Slot): void => {
  if (slot.typename !== null) recordTyped = true;
};
const writeSlot = (slot: Slot, name: string): void => {
  const enc = recordEncoder;
  enc.append(name);
  const lazy = slot.lazyEncoder;
  const fixed = lazy === null ? undefined : fixedWriterOf(lazy);
  if (fixed !== undefined) enc.appendFixed(fixed, slot.decoded);
  else enc.append(slot.bytes);
  enc.append(slot.writtenAt);
  if (recordTyped) enc.append(slot.typename);
};

/** {@link encodeInstanceView}, copied out: bytes of their own. */
export function encodeInstance(inst: Instance): Uint8Array | null {
  return encodeInstanceView(inst)?.slice() ?? null;
}

const recordEncoder = new FrameEncoder();

/**
 * Records are decoded from a copy in this reused buffer. msgpackr caches a DataView on the array it
 * decodes (`source.dataView`): on a record the engine keeps (a snapshot's, until folded) that is
 * a DataView plus its buffer moved off the V8 heap, ~250 bytes per record, measured as most of a
 * shard's heap under a fast-changing 1M-instance working set. The byte fields of the result are
 * views of the scratch: {@link decodeInstanceInto} copies them.
 */
let scratch = Buffer.allocUnsafeSlow(4096);

function unpackRecord(bytes: Uint8Array): unknown {
  if (bytes.byteLength > scratch.byteLength) scratch = Buffer.allocUnsafeSlow(Math.max(bytes.byteLength, scratch.byteLength * 2));
  scratch.set(bytes, 0);
  return unpackr.unpack(scratch, bytes.byteLength);
}

/** Decodes a record written by {@link encodeInstance} into `inst` (replacing its slots). */
export function decodeInstanceInto(inst: Instance, bytes: Uint8Array): Instance {
  const arr = unpackRecord(bytes) as unknown[];
  const version = Array.isArray(arr) ? arr[0] : undefined;
  const stride = version === RECORD_V1 ? 3 : version === RECORD_V2 || version === RECORD_V3 ? 4 : 0;
  const first = version === RECORD_V3 ? 3 : 2;
  if (stride === 0 || (arr.length - first) % stride !== 0 || (first === 3 && !Array.isArray(arr[2]))) {
    throw new WeftError('ERR_WEFT_DATA_DIR', `state record of ${inst.type}/${inst.id} has an unknown format (version ${String(version)})`);
  }
  inst.slots.clear();
  inst.calledAt = arr[1] as number;
  inst.applied = null;
  if (first === 3) {
    const flat = arr[2] as unknown[];
    if (flat.length > 0) {
      const applied = new Map<string, AppliedKey>();
      for (let i = 0; i + 3 < flat.length; i += 4) {
        const payload = flat[i + 3] as Uint8Array | null;
        // Copied out of the scratch buffer (see unpackRecord).
        applied.set(flat[i] as string, [flat[i + 1] as number, flat[i + 2] as string | null, payload === null ? null : new Uint8Array(payload)]);
      }
      inst.applied = applied;
    }
  }
  for (let i = first; i < arr.length; i += stride) {
    const b = arr[i + 1] as Uint8Array;
    const typename = stride === 4 ? (arr[i + 3] as string | null) : null;
    // Copied out: the record's bytes come from LMDB as a Buffer, often a slice of an 8 KiB pool
    // slab, and a cached view would keep the whole slab alive for as long as the instance lives.
    inst.slots.set(arr[i] as string, new Slot(new Uint8Array(b), arr[i + 2] as number, undefined, false, typename));
  }
  return inst;
}

/** The raw record as plain data, for `query` across threads and for `weft inspect`. */
export interface InstanceRecord {
  calledAt: number;
  slots: Array<[name: string, bytes: Uint8Array, writtenAt: number, typename: string | null]>;
}

export function toRecord(inst: Instance): InstanceRecord {
  const slots: InstanceRecord['slots'] = [];
  for (const [name, slot] of inst.slots) slots.push([name, slot.bytes, slot.writtenAt, slot.typename]);
  return { calledAt: inst.calledAt, slots };
}

export function decodeRecord(bytes: Uint8Array): InstanceRecord {
  const inst = decodeInstanceInto(new Instance('', '?', '?', 0), bytes);
  return toRecord(inst);
}

/** Where state instances come from: the bounded LMDB-backed cache in shards, a Map in the harness. */
export interface InstanceStore {
  get(key: string, type: string, id: string, kg: number): Instance;
  /** The instance changed: it must be part of the next snapshot. */
  markDirty(inst: Instance): void;
  /**
   * The instance is about to change (its slots, applied keys or call time): called before every
   * mutation, so a snapshot still waiting to capture it takes it as it was (copy on write).
   */
  willChange(inst: Instance): void;
}
