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
import { Packr, Unpackr } from 'msgpackr';
import { WeftError } from '../errors.js';

export class Slot {
  bytes: Uint8Array;
  writtenAt: number;
  /** Decoded value, kept only for immutable types. */
  decoded: unknown;
  hasDecoded: boolean;

  constructor(bytes: Uint8Array, writtenAt: number, decoded: unknown, hasDecoded: boolean) {
    this.bytes = bytes;
    this.writtenAt = writtenAt;
    this.decoded = decoded;
    this.hasDecoded = hasDecoded;
  }
}

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
  /** An invocation holds this instance (possibly across an await): the cache must not drop it. */
  busy = false;
  /** CLOCK reference bit for the bounded cache. */
  ref = true;
  /** Epoch of the snapshot that holds the latest change (0: only the folded base holds it). */
  writeEpoch = 0;

  constructor(key: string, type: string, id: string, kg: number) {
    this.key = key;
    this.type = type;
    this.id = id;
    this.kg = kg;
  }

  get isEmpty(): boolean {
    return this.slots.size === 0;
  }
}

// The record format is part of the on-disk format: [version, calledAt, name, bytes, writtenAt, ...].
const RECORD_VERSION = 1;
const packr = new Packr({ useRecords: false, moreTypes: false });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });

/** Encodes an instance's slots for its partition; `null` when it holds nothing (delete the record). */
export function encodeInstance(inst: Instance): Uint8Array | null {
  if (inst.slots.size === 0) return null;
  const arr: unknown[] = [RECORD_VERSION, inst.calledAt];
  for (const [name, slot] of inst.slots) arr.push(name, slot.bytes, slot.writtenAt);
  return packr.pack(arr);
}

/** Decodes a record written by {@link encodeInstance} into `inst` (replacing its slots). */
export function decodeInstanceInto(inst: Instance, bytes: Uint8Array): Instance {
  const arr = unpackr.unpack(bytes) as unknown[];
  if (!Array.isArray(arr) || arr[0] !== RECORD_VERSION || (arr.length - 2) % 3 !== 0) {
    throw new WeftError('ERR_WEFT_DATA_DIR', `state record of ${inst.type}/${inst.id} has an unknown format (version ${String(Array.isArray(arr) ? arr[0] : arr)})`);
  }
  inst.slots.clear();
  inst.calledAt = arr[1] as number;
  for (let i = 2; i < arr.length; i += 3) {
    const b = arr[i + 1] as Uint8Array;
    inst.slots.set(arr[i] as string, new Slot(new Uint8Array(b.buffer, b.byteOffset, b.byteLength), arr[i + 2] as number, undefined, false));
  }
  return inst;
}

/** The raw record as plain data, for `query` across threads and for `weft inspect`. */
export interface InstanceRecord {
  calledAt: number;
  slots: Array<[name: string, bytes: Uint8Array, writtenAt: number]>;
}

export function toRecord(inst: Instance): InstanceRecord {
  const slots: InstanceRecord['slots'] = [];
  for (const [name, slot] of inst.slots) slots.push([name, slot.bytes, slot.writtenAt]);
  return { calledAt: inst.calledAt, slots };
}

export function decodeRecord(bytes: Uint8Array): InstanceRecord {
  const inst = decodeInstanceInto(new Instance('', '?', '?', 0), bytes);
  return toRecord(inst);
}
