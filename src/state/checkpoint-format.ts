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
 * Encodes snapshot values into a private copy. The FrameEncoder keeps its buffer for the next
 * snapshot, unless an unusually large value grew it past {@link KEEP_BYTES}.
 */
class SnapshotEncoder {
  static readonly KEEP_BYTES = 8 * 1024 * 1024;
  #encoder: FrameEncoder | undefined;

  encode(records: readonly unknown[], progress?: () => void): Uint8Array {
    this.#encoder ??= new FrameEncoder();
    const bytes = this.#encoder.encode(records, progress).slice();
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
