/**
 * `weft/statefun`: interop with Apache Flink StateFun over its HTTP request-reply protocol.
 *
 * - {@link statefunHandler}: serve a weft function module to a StateFun cluster.
 * - {@link RemoteFunctionClient}: call functions written with any StateFun SDK (what the engine's
 *   `remote` option uses).
 * - Kafka and Kinesis egress records in the form StateFun's generic egresses expect.
 * - The protocol codec itself, for tools and tests.
 */
import { WeftError, describe } from '../core/errors.js';
import type { ValueType } from '../module/definition.js';
import { type } from '../codec/types.js';
import {
  KAFKA_PRODUCER_RECORD_TYPENAME,
  KINESIS_EGRESS_RECORD_TYPENAME,
  decodeKafkaProducerRecord,
  decodeKinesisEgressRecord,
  encodeKafkaProducerRecord,
  encodeKinesisEgressRecord,
  type KafkaProducerRecord,
  type KinesisEgressRecord,
  type TypedValue,
} from './protocol/proto.js';

export { statefunHandler, createStatefunInvoker, STATEFUN_HANDLER_DEFAULTS } from './handler.js';
export type { StatefunHandlerOptions, StatefunInvoker } from './handler.js';
export { RemoteFunctionClient, REMOTE_CLIENT_DEFAULTS } from './protocol/remote-client.js';
export type { RemoteCall, RemoteResult, RemoteDelayed, RemoteFunctionClientOptions, StateSpecInfo, RemoteValue } from './protocol/remote-client.js';
export {
  encodeToFunction,
  decodeToFunction,
  encodeFromFunction,
  decodeFromFunction,
  KAFKA_PRODUCER_RECORD_TYPENAME,
  KINESIS_EGRESS_RECORD_TYPENAME,
} from './protocol/proto.js';
export type {
  ToFunction,
  FromFunction,
  InvocationBatchRequest,
  InvocationResponse,
  PersistedValue,
  PersistedValueMutation,
  PersistedValueSpec,
  ExpirationSpec,
  ExpireMode,
  MutationType,
  DelayedInvocation,
  EgressMessage,
  FromFunctionInvocation,
  ToFunctionInvocation,
  PbAddress,
  TypedValue,
} from './protocol/proto.js';

// ---------------------------------------------------------------------------------------------
// Kafka and Kinesis egress records
// ---------------------------------------------------------------------------------------------

/** A record for a StateFun Kafka egress, as a function writes it. */
export interface KafkaRecord {
  /** The Kafka topic. Required, non-empty. */
  readonly topic: string;
  /** The record key; absent or empty for none. */
  readonly key?: string;
  /** The record value: bytes as they are, or a string as UTF-8. */
  readonly value: Uint8Array | string;
}

/** A record for a StateFun Kinesis egress, as a function writes it. */
export interface KinesisRecord {
  /** The Kinesis stream. Required, non-empty. */
  readonly stream: string;
  /** The partition key. Required, non-empty. */
  readonly partitionKey: string;
  /** An explicit hash key; absent or empty for none. */
  readonly explicitHashKey?: string;
  /** The record data: bytes as they are, or a string as UTF-8. */
  readonly value: Uint8Array | string;
}

const utf8 = new TextEncoder();

function nonEmpty(value: unknown, what: string): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new WeftError('ERR_WEFT_TYPE_MISMATCH', `${what} must be a non-empty string (got ${describe(value)})`);
  }
  return value;
}

function optionalString(value: unknown, what: string): string {
  if (value === undefined) return '';
  if (typeof value !== 'string') throw new WeftError('ERR_WEFT_TYPE_MISMATCH', `${what} must be a string when given (got ${describe(value)})`);
  return value;
}

function recordBytes(value: unknown, what: string): Uint8Array {
  if (value instanceof Uint8Array) return value;
  if (typeof value === 'string') return utf8.encode(value);
  throw new WeftError('ERR_WEFT_TYPE_MISMATCH', `${what} must be a Uint8Array or a string (got ${describe(value)}); encode other values first, or pass valueType`);
}

function checkRecord(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || value instanceof Uint8Array || Array.isArray(value)) {
    throw new WeftError('ERR_WEFT_TYPE_MISMATCH', `${what} must be an object (got ${describe(value)})`);
  }
  return value as Record<string, unknown>;
}

/**
 * The value type of an egress record: an object of string fields and a `value` (bytes, or a
 * string as UTF-8), encoded as the protobuf record whose `valueBytes` is that value. `strings`
 * lists the string fields in the record's order: required ones must be non-empty; optional ones
 * may be absent, travel as '' then, and are left out of a decoded record when empty.
 */
function egressRecordType<R, P>(
  typename: string,
  what: string,
  strings: ReadonlyArray<readonly [name: string, rule: 'required' | 'optional']>,
  encode: (record: P) => Uint8Array,
  decode: (bytes: Uint8Array) => P,
): ValueType<R> {
  return type.custom<R>(typename, {
    serialize(value) {
      const r = checkRecord(value, what);
      const rec: Record<string, unknown> = {};
      for (const [name, rule] of strings) rec[name] = (rule === 'required' ? nonEmpty : optionalString)(r[name], `${what} ${name}`);
      rec['valueBytes'] = recordBytes(r['value'], `${what} value`);
      return encode(rec as P);
    },
    deserialize(bytes) {
      const rec = decode(bytes) as Record<string, unknown>;
      const out: Record<string, unknown> = {};
      for (const [name, rule] of strings) if (rule === 'required') out[name] = rec[name];
      // A copy: decoded bytes are views of an input the engine may reuse.
      out['value'] = (rec['valueBytes'] as Uint8Array).slice();
      for (const [name, rule] of strings) if (rule === 'optional' && rec[name] !== '') out[name] = rec[name];
      return out as R;
    },
  });
}

const KAFKA_TYPE = egressRecordType<KafkaRecord, KafkaProducerRecord>(
  KAFKA_PRODUCER_RECORD_TYPENAME,
  'Kafka egress record',
  [['topic', 'required'], ['key', 'optional']],
  encodeKafkaProducerRecord,
  decodeKafkaProducerRecord,
);

const KINESIS_TYPE = egressRecordType<KinesisRecord, KinesisEgressRecord>(
  KINESIS_EGRESS_RECORD_TYPENAME,
  'Kinesis egress record',
  [['stream', 'required'], ['partitionKey', 'required'], ['explicitHashKey', 'optional']],
  encodeKinesisEgressRecord,
  decodeKinesisEgressRecord,
);

/**
 * The value type of Kafka egress records (typename
 * `type.googleapis.com/io.statefun.sdk.egress.KafkaProducerRecord`, StateFun's
 * `KafkaProducerRecord` message): what a StateFun Kafka generic egress consumes. Pass it as the
 * type of `ctx.egress`, and list it in `defineModule({ types })` to read such records back from
 * `weft.egress()` as objects. Decoded records carry `value` as bytes.
 *
 * @example
 * ```ts
 * ctx.egress('shop/orders', { topic: 'orders', key: order.id, value: JSON.stringify(order) }, { type: kafkaRecordType() });
 * ```
 */
export function kafkaRecordType(): ValueType<KafkaRecord> {
  return KAFKA_TYPE;
}

/**
 * The value type of Kinesis egress records (typename
 * `type.googleapis.com/io.statefun.sdk.egress.KinesisEgressRecord`): see {@link kafkaRecordType}.
 *
 * @example
 * ```ts
 * ctx.egress('shop/clicks', { stream: 'clicks', partitionKey: user, value: payload }, { type: kinesisRecordType() });
 * ```
 */
export function kinesisRecordType(): ValueType<KinesisRecord> {
  return KINESIS_TYPE;
}

/** Encodes `value` for a record: with `valueType` when given, else bytes or a UTF-8 string. */
function encodeValue<T>(value: T, valueType: ValueType<T> | undefined, what: string): Uint8Array {
  if (valueType !== undefined) return valueType.encode(value, what);
  return recordBytes(value, what);
}

/**
 * The TypedValue a StateFun Kafka egress expects for one record, like the SDKs'
 * `kafkaEgressMessage`: typename `type.googleapis.com/io.statefun.sdk.egress.KafkaProducerRecord`,
 * value the encoded `KafkaProducerRecord { key, value_bytes, topic }`. `value` is encoded with
 * `valueType` when given (e.g. `type.json()`), else it must be bytes or a string (UTF-8).
 * For `ctx.egress` inside weft functions, use {@link kafkaRecordType}.
 *
 * @example
 * ```ts
 * const tv = kafkaEgressRecord({ topic: 'orders', key: 'o-1', value: { total: 12 }, valueType: type.json() });
 * // { typename: 'type.googleapis.com/io.statefun.sdk.egress.KafkaProducerRecord', hasValue: true, value: Uint8Array }
 * ```
 */
export function kafkaEgressRecord<T = Uint8Array | string>(record: { topic: string; key?: string; value: T; valueType?: ValueType<T> }): TypedValue {
  const r = checkRecord(record, 'kafkaEgressRecord() argument');
  const valueBytes = encodeValue(r['value'] as T, r['valueType'] as ValueType<T> | undefined, 'kafkaEgressRecord() value');
  return { typename: KAFKA_PRODUCER_RECORD_TYPENAME, hasValue: true, value: KAFKA_TYPE.encode({ topic: r['topic'] as string, key: r['key'] as string, value: valueBytes }) };
}

/**
 * The TypedValue a StateFun Kinesis egress expects for one record, like the SDKs'
 * `kinesisEgressMessage`: typename `type.googleapis.com/io.statefun.sdk.egress.KinesisEgressRecord`.
 * `value` as in {@link kafkaEgressRecord}. For `ctx.egress`, use {@link kinesisRecordType}.
 *
 * @example
 * ```ts
 * const tv = kinesisEgressRecord({ stream: 'clicks', partitionKey: 'user-7', value: 'clicked' });
 * ```
 */
export function kinesisEgressRecord<T = Uint8Array | string>(record: {
  stream: string;
  partitionKey: string;
  explicitHashKey?: string;
  value: T;
  valueType?: ValueType<T>;
}): TypedValue {
  const r = checkRecord(record, 'kinesisEgressRecord() argument');
  const valueBytes = encodeValue(r['value'] as T, r['valueType'] as ValueType<T> | undefined, 'kinesisEgressRecord() value');
  return {
    typename: KINESIS_EGRESS_RECORD_TYPENAME,
    hasValue: true,
    value: KINESIS_TYPE.encode({
      stream: r['stream'] as string,
      partitionKey: r['partitionKey'] as string,
      explicitHashKey: r['explicitHashKey'] as string,
      value: valueBytes,
    }),
  };
}
