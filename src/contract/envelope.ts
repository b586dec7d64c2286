/**
 * The records that travel through the rings, as small arrays (msgpack packs arrays of scalars
 * compactly and quickly; objects would repeat their keys in every frame). Every thread's input
 * arrives as a sequence of these, in ring order, so a checkpoint barrier can sit between any two.
 *
 * An {@link Envelope} is also how a message waits in a mailbox, a spill queue or a snapshot: it is
 * plain data, so capturing a mailbox for a checkpoint is copying an array.
 */
import { FrameEncoder } from '../transport/framing.js';
import type { NameTable } from '../transport/names.js';

/** Kinds of records. Values are part of the on-disk snapshot format: never renumber. */
export const enum Kind {
  /** A message to a function: {@link Envelope}. main→shard, shard→shard. */
  Msg = 0,
  /** Checkpoint barrier `[Kind.Barrier, epoch]`. Every ring. */
  Barrier = 1,
  /** The coordinator committed an epoch: `[Kind.Committed, epoch]`. main→shard. */
  Committed = 2,
  /** `[Kind.Query, requestId, type, id]`. main→shard. */
  Query = 3,
  /** `[Kind.QueryResult, requestId, record | null]`. shard→main. */
  QueryResult = 4,
  /** `[Kind.Reply, requestId, typename, payload]`: a function answered a host request; the typename as its name-table index when it has one. shard→main. */
  Reply = 5,
  /** `[Kind.Egress, name, typename, payload]`; the typename as its name-table index when it has one. shard→main. */
  Egress = 6,
  /**
   * `[Kind.Ack, watermark, pending]`: every host message with hseq < watermark has completed,
   * except the hseqs in `pending` (messages of paused remote addresses, usually none). shard→main.
   */
  Ack = 7,
  /** `[Kind.Done, epoch, stats]`: this shard's part of `epoch` is written (PENDING). shard→main. */
  Done = 8,
  /** `[Kind.Close]`: finish and release resources. main→shard. */
  Close = 9,
  /** `[Kind.Compute, callId, task, input]`: run a compute task. shard→main. */
  Compute = 11,
  /** `[Kind.ComputeResult, callId, ok, value | serializedError]`: main→shard. */
  ComputeResult = 12,
  /** `[Kind.ReplyError, requestId, serializedError]`: a host request's message was dead-lettered. shard→main. */
  ReplyError = 13,
}

/**
 * A message to a function.
 *
 * `hseq` is the host sequence number (> 0) of a message the host sent, 0 otherwise: the owning
 * shard reports a low watermark of completed host messages (Kind.Ack) so the host can resolve
 * `send()` once the message's invocation is part of a committed checkpoint.
 * `replyTo` is the host request id (> 0) awaiting `ctx.reply`, 0 when none.
 * `idempotencyKey` is present only on host messages sent with one (src/core/idempotency.ts) and on
 * the delayed message that purges such a key: a message without a key has 9 fields, so the
 * dispatcher's test for one is a length check.
 */
export type Envelope = [kind: Kind.Msg, ...fields: MessageFields, replyTo: number, hseq: number, idempotencyKey?: string];

/** What a message record carries after its kind: its target, its caller, and its value with its typename. */
export type MessageFields = [
  targetType: string,
  targetId: string,
  callerType: string | null,
  callerId: string | null,
  typename: string,
  payload: Uint8Array,
];

export const E_TARGET_TYPE = 1;
export const E_TARGET_ID = 2;
export const E_CALLER_TYPE = 3;
export const E_CALLER_ID = 4;
export const E_TYPENAME = 5;
export const E_PAYLOAD = 6;
export const E_REPLY_TO = 7;
export const E_HSEQ = 8;
export const E_IDEMPOTENCY_KEY = 9;

export function envelope(
  targetType: string,
  targetId: string,
  callerType: string | null,
  callerId: string | null,
  typename: string,
  payload: Uint8Array,
  replyTo = 0,
  hseq = 0,
  idempotencyKey?: string,
): Envelope {
  if (idempotencyKey !== undefined) return [Kind.Msg, targetType, targetId, callerType, callerId, typename, payload, replyTo, hseq, idempotencyKey];
  return [Kind.Msg, targetType, targetId, callerType, callerId, typename, payload, replyTo, hseq];
}

/** Bytes an envelope adds to a frame, roughly: used to cut batches into frames of bounded size. */
export function envelopeWeight(e: Envelope): number {
  return e[E_PAYLOAD].byteLength + e[E_TARGET_TYPE].length + e[E_TARGET_ID].length + 48 + (e.length > E_IDEMPOTENCY_KEY ? (e[E_IDEMPOTENCY_KEY] as string).length * 3 : 0);
}


/** Envelope fields that carry wire names (transport/names.ts): function types and the typename. */
export const ENVELOPE_NAME_FIELDS: readonly number[] = [E_TARGET_TYPE, E_CALLER_TYPE, E_TYPENAME];

/**
 * The frame encoder of one thread's rings: messages' function types and typenames found in
 * `names` travel as their table index. Decoded envelopes get their strings back with
 * {@link resolveNames}.
 */
export function wireEncoder(names: NameTable): FrameEncoder {
  return new FrameEncoder({ table: names, tag: Kind.Msg, fields: ENVELOPE_NAME_FIELDS });
}

/**
 * Turns the name indexes of a decoded message record back into the table's strings (in place).
 * @throws WeftError `ERR_WEFT_CORRUPT_FRAME` for an index outside the table.
 */
export function resolveNames(rec: unknown[], names: NameTable): Envelope {
  if (typeof rec[E_TARGET_TYPE] !== 'string') rec[E_TARGET_TYPE] = names.resolve(rec[E_TARGET_TYPE]);
  if (typeof rec[E_TYPENAME] !== 'string') rec[E_TYPENAME] = names.resolve(rec[E_TYPENAME]);
  if (typeof rec[E_CALLER_TYPE] === 'number') rec[E_CALLER_TYPE] = names.resolve(rec[E_CALLER_TYPE]);
  return rec as Envelope;
}
