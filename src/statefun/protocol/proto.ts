/**
 * The StateFun request-reply protocol's two envelopes, `ToFunction` (runtime → function) and
 * `FromFunction` (function → runtime), encoded and decoded by hand on top of src/codec/protobuf.ts.
 *
 * Field numbers come from apache/flink-statefun `statefun-sdk-protos/.../sdk/request-reply.proto`
 * (package `io.statefun.sdk.reqreply`):
 *
 * ```
 * Address            namespace=1 type=2 id=3                                  (strings)
 * TypedValue         typename=1 (string) has_value=2 (bool) value=3 (bytes)
 * ToFunction         invocation=100 (oneof request)
 *   PersistedValue          state_name=1 state_value=2
 *   Invocation              caller=1 argument=2
 *   InvocationBatchRequest  target=1 state=2 (repeated) invocations=3 (repeated)
 * FromFunction       invocation_result=100 | incomplete_invocation_context=101 (oneof response)
 *   PersistedValueMutation  mutation_type=1 (DELETE=0, MODIFY=1) state_name=2 state_value=3
 *   Invocation              target=1 argument=2
 *   DelayedInvocation       is_cancellation_request=10 cancellation_token=11 delay_in_ms=1 (int64)
 *                           target=2 argument=3
 *   EgressMessage           egress_namespace=1 egress_type=2 argument=3
 *   InvocationResponse      state_mutations=1 outgoing_messages=2 delayed_invocations=3
 *                           outgoing_egresses=4 (all repeated)
 *   ExpirationSpec          mode=1 (NONE=0, AFTER_WRITE=1, AFTER_INVOKE=2) expire_after_millis=2 (int64)
 *   PersistedValueSpec      state_name=1 expiration_spec=2 type_typename=3
 *   IncompleteInvocationContext  missing_values=1 (repeated)
 * ```
 *
 * Encoding follows proto3 and writes fields in DECLARATION order, omitting scalars that hold their
 * default and writing every present sub-message (even an empty one): exactly what the official JS
 * SDK's generated classes write, so the interop tests can compare bytes. (Declaration order differs
 * from field-number order only in DelayedInvocation, whose fields 10 and 11 come first; any
 * conforming parser accepts fields in any order.)
 *
 * Decoding is a protobuf parse: unknown fields are skipped; a known field number with an unexpected
 * wire type is skipped as unknown too (what Java's generated parsers, i.e. the StateFun runtime,
 * do); a repeated singular scalar keeps its last value; a repeated singular sub-message MERGES into
 * the earlier one (protobuf's rule); oneof members replace each other. Malformed input (truncated
 * fields, over-long varints, bad UTF-8, an unknown mutation type, a 64-bit number beyond 2^53)
 * throws `WeftError('ERR_WEFT_PROTOCOL')` naming the message and offset, never anything else:
 * every loop consumes input, nesting is fixed by the schema, so hostile bytes cannot hang it.
 * An unknown ExpirationSpec mode reads as NONE, as the runtime reads it.
 */
import { WeftError } from '../../core/errors.js';
import { ProtoReader, ProtoWriter, WireType, type WireTypeValue } from '../../codec/protobuf.js';

// ---------------------------------------------------------------------------------------------
// Message shapes
// ---------------------------------------------------------------------------------------------

/** `io.statefun.sdk.reqreply.Address`: a function instance. The function type is `namespace/type`. */
export interface PbAddress {
  namespace: string;
  type: string;
  id: string;
}

/** `TypedValue`: bytes with their typename. `hasValue: false` means "no value" (absent state). */
export interface TypedValue {
  typename: string;
  hasValue: boolean;
  /** The encoded value. Decoded values are views into the input: copy them to keep them. */
  value: Uint8Array;
}

/** `ToFunction.PersistedValue`: one state value the runtime holds for the function. */
export interface PersistedValue {
  stateName: string;
  stateValue: TypedValue | null;
}

/** `ToFunction.Invocation`: one message to the target, with its sender when a function sent it. */
export interface ToFunctionInvocation {
  caller: PbAddress | null;
  argument: TypedValue | null;
}

/** `ToFunction.InvocationBatchRequest`: messages for one address, with its state. */
export interface InvocationBatchRequest {
  target: PbAddress | null;
  state: PersistedValue[];
  invocations: ToFunctionInvocation[];
}

/** `ToFunction`: the request body the runtime POSTs. `invocation` is null when the oneof is unset. */
export interface ToFunction {
  invocation: InvocationBatchRequest | null;
}

/** `PersistedValueMutation.MutationType`. */
export type MutationType = 'DELETE' | 'MODIFY';

/** `FromFunction.PersistedValueMutation`. DELETE carries no value. */
export interface PersistedValueMutation {
  mutationType: MutationType;
  stateName: string;
  stateValue: TypedValue | null;
}

/** `FromFunction.Invocation`: a message the function sends. */
export interface FromFunctionInvocation {
  target: PbAddress | null;
  argument: TypedValue | null;
}

/**
 * `FromFunction.DelayedInvocation`: a delayed message, or (with `isCancellationRequest`) the
 * cancellation of the delayed message sent with `cancellationToken`.
 */
export interface DelayedInvocation {
  isCancellationRequest: boolean;
  /** Empty string when none (proto3 has no null strings). */
  cancellationToken: string;
  delayInMs: number;
  target: PbAddress | null;
  argument: TypedValue | null;
}

/** `FromFunction.EgressMessage`: a record for the egress `egressNamespace/egressType`. */
export interface EgressMessage {
  egressNamespace: string;
  egressType: string;
  argument: TypedValue | null;
}

/** `FromFunction.InvocationResponse`: the effects of a batch. */
export interface InvocationResponse {
  stateMutations: PersistedValueMutation[];
  outgoingMessages: FromFunctionInvocation[];
  delayedInvocations: DelayedInvocation[];
  outgoingEgresses: EgressMessage[];
}

/** `ExpirationSpec.ExpireMode`. AFTER_INVOKE is weft's `expireAfterCall`. */
export type ExpireMode = 'NONE' | 'AFTER_WRITE' | 'AFTER_INVOKE';

/** `FromFunction.ExpirationSpec`: a state value's time-to-live. */
export interface ExpirationSpec {
  mode: ExpireMode;
  expireAfterMillis: number;
}

/** `FromFunction.PersistedValueSpec`: a state the function declares. */
export interface PersistedValueSpec {
  stateName: string;
  expirationSpec: ExpirationSpec | null;
  typeTypename: string;
}

/**
 * `FromFunction`: either the batch's effects, or the list of declared states the request lacked
 * (the runtime then registers them and sends the batch again), or nothing (`kind: 'empty'`, a
 * valid but useless message that callers treat as an error).
 */
export type FromFunction =
  | { kind: 'invocation-result'; result: InvocationResponse }
  | { kind: 'incomplete-invocation-context'; missingValues: PersistedValueSpec[] }
  | { kind: 'empty' };

/** The Kafka egress record (`io.statefun.sdk.egress.KafkaProducerRecord`). */
export interface KafkaProducerRecord {
  key: string;
  valueBytes: Uint8Array;
  topic: string;
}

/** The Kinesis egress record (`io.statefun.sdk.egress.KinesisEgressRecord`). */
export interface KinesisEgressRecord {
  partitionKey: string;
  valueBytes: Uint8Array;
  stream: string;
  explicitHashKey: string;
}

// ---------------------------------------------------------------------------------------------
// Field numbers
// ---------------------------------------------------------------------------------------------

const TYPED_VALUE = { typename: 1, hasValue: 2, value: 3 } as const;
const TO_FUNCTION = { invocation: 100 } as const;
const PERSISTED_VALUE = { stateName: 1, stateValue: 2 } as const;
/** ToFunction.Invocation (`address` is its caller) and FromFunction.Invocation (its target) alike. */
const INVOCATION = { address: 1, argument: 2 } as const;
const BATCH = { target: 1, state: 2, invocations: 3 } as const;
const FROM_FUNCTION = { invocationResult: 100, incompleteInvocationContext: 101 } as const;
const MUTATION = { mutationType: 1, stateName: 2, stateValue: 3 } as const;
const DELAYED = { isCancellationRequest: 10, cancellationToken: 11, delayInMs: 1, target: 2, argument: 3 } as const;
const EGRESS = { egressNamespace: 1, egressType: 2, argument: 3 } as const;
const RESPONSE = { stateMutations: 1, outgoingMessages: 2, delayedInvocations: 3, outgoingEgresses: 4 } as const;
const EXPIRATION = { mode: 1, expireAfterMillis: 2 } as const;
const VALUE_SPEC = { stateName: 1, expirationSpec: 2, typeTypename: 3 } as const;
const INCOMPLETE = { missingValues: 1 } as const;

/**
 * A message whose fields are all strings or bytes: each field's property, number and kind, in
 * declaration order. {@link writeFlat} and {@link readFlat} encode and decode any of them.
 */
interface Flat<T> {
  readonly fields: ReadonlyArray<FlatField<T>>;
  readonly byNumber: ReadonlyMap<number, FlatField<T>>;
}
type FlatField<T> = readonly [name: keyof T & string, field: number, kind: 'string' | 'bytes'];

function flat<T>(...fields: Array<FlatField<T>>): Flat<T> {
  return { fields, byNumber: new Map(fields.map((f) => [f[1], f])) };
}

const ADDRESS = flat<PbAddress>(['namespace', 1, 'string'], ['type', 2, 'string'], ['id', 3, 'string']);
const KAFKA = flat<KafkaProducerRecord>(['key', 1, 'string'], ['valueBytes', 2, 'bytes'], ['topic', 3, 'string']);
const KINESIS = flat<KinesisEgressRecord>(['partitionKey', 1, 'string'], ['valueBytes', 2, 'bytes'], ['stream', 3, 'string'], ['explicitHashKey', 4, 'string']);

const MUTATION_TYPES: readonly MutationType[] = ['DELETE', 'MODIFY'];
const EXPIRE_MODES: readonly ExpireMode[] = ['NONE', 'AFTER_WRITE', 'AFTER_INVOKE'];

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

// One writer per thread: every encode below runs to completion synchronously, and `finish()` hands
// out a copy, so sharing it is safe and saves a buffer per message.
const writer = new ProtoWriter(4096);

function str(w: ProtoWriter, field: number, s: string): void {
  if (s.length > 0) w.tag(field, WireType.LEN).string(s);
}

function bytesField(w: ProtoWriter, field: number, b: Uint8Array): void {
  if (b.length > 0) w.tag(field, WireType.LEN).bytes(b);
}

function int64Field(w: ProtoWriter, field: number, n: number, what: string): void {
  if (!Number.isSafeInteger(n)) {
    throw new WeftError('ERR_WEFT_INVALID_ARG', `${what} must be a safe integer (got ${n})`);
  }
  if (n !== 0) w.tag(field, WireType.VARINT).int64(n);
}

function writeFlat<T>(w: ProtoWriter, schema: Flat<T>, msg: T): ProtoWriter {
  for (const [name, field, kind] of schema.fields) {
    if (kind === 'string') str(w, field, msg[name] as string);
    else bytesField(w, field, msg[name] as Uint8Array);
  }
  return w;
}

function writeAddress(w: ProtoWriter, field: number, a: PbAddress | null): void {
  if (a === null) return;
  w.tag(field, WireType.LEN).fork();
  writeFlat(w, ADDRESS, a);
  w.join();
}

function writeTypedValue(w: ProtoWriter, field: number, v: TypedValue | null): void {
  if (v === null) return;
  w.tag(field, WireType.LEN).fork();
  str(w, TYPED_VALUE.typename, v.typename);
  if (v.hasValue) w.tag(TYPED_VALUE.hasValue, WireType.VARINT).bool(true);
  bytesField(w, TYPED_VALUE.value, v.value);
  w.join();
}

function writeBatch(w: ProtoWriter, b: InvocationBatchRequest): void {
  writeAddress(w, BATCH.target, b.target);
  for (const s of b.state) {
    w.tag(BATCH.state, WireType.LEN).fork();
    str(w, PERSISTED_VALUE.stateName, s.stateName);
    writeTypedValue(w, PERSISTED_VALUE.stateValue, s.stateValue);
    w.join();
  }
  for (const inv of b.invocations) writeInvocation(w, BATCH.invocations, inv.caller, inv.argument);
}

function writeInvocation(w: ProtoWriter, field: number, address: PbAddress | null, argument: TypedValue | null): void {
  w.tag(field, WireType.LEN).fork();
  writeAddress(w, INVOCATION.address, address);
  writeTypedValue(w, INVOCATION.argument, argument);
  w.join();
}

/**
 * Encodes a `ToFunction` request body.
 *
 * @example
 * ```ts
 * const body = encodeToFunction({
 *   invocation: {
 *     target: { namespace: 'shop', type: 'cart', id: 'c-1' },
 *     state: [{ stateName: 'items', stateValue: { typename: 'io.statefun.types/int', hasValue: false, value: new Uint8Array(0) } }],
 *     invocations: [{ caller: null, argument: { typename: 'io.statefun.types/string', hasValue: true, value: type.string().encode('add') } }],
 *   },
 * });
 * ```
 */
export function encodeToFunction(msg: ToFunction): Uint8Array {
  const w = writer.reset();
  if (msg.invocation !== null) {
    w.tag(TO_FUNCTION.invocation, WireType.LEN).fork();
    writeBatch(w, msg.invocation);
    w.join();
  }
  return w.finish();
}

function writeResponse(w: ProtoWriter, r: InvocationResponse): void {
  for (const m of r.stateMutations) {
    const type = MUTATION_TYPES.indexOf(m.mutationType);
    if (type < 0) throw new WeftError('ERR_WEFT_INVALID_ARG', `PersistedValueMutation.mutationType must be DELETE or MODIFY (got ${String(m.mutationType)})`);
    w.tag(RESPONSE.stateMutations, WireType.LEN).fork();
    if (type !== 0) w.tag(MUTATION.mutationType, WireType.VARINT).int32(type);
    str(w, MUTATION.stateName, m.stateName);
    writeTypedValue(w, MUTATION.stateValue, m.stateValue);
    w.join();
  }
  for (const o of r.outgoingMessages) writeInvocation(w, RESPONSE.outgoingMessages, o.target, o.argument);
  for (const d of r.delayedInvocations) {
    w.tag(RESPONSE.delayedInvocations, WireType.LEN).fork();
    if (d.isCancellationRequest) w.tag(DELAYED.isCancellationRequest, WireType.VARINT).bool(true);
    str(w, DELAYED.cancellationToken, d.cancellationToken);
    int64Field(w, DELAYED.delayInMs, d.delayInMs, 'DelayedInvocation.delayInMs');
    writeAddress(w, DELAYED.target, d.target);
    writeTypedValue(w, DELAYED.argument, d.argument);
    w.join();
  }
  for (const e of r.outgoingEgresses) {
    w.tag(RESPONSE.outgoingEgresses, WireType.LEN).fork();
    str(w, EGRESS.egressNamespace, e.egressNamespace);
    str(w, EGRESS.egressType, e.egressType);
    writeTypedValue(w, EGRESS.argument, e.argument);
    w.join();
  }
}

function writeValueSpec(w: ProtoWriter, s: PersistedValueSpec): void {
  w.tag(INCOMPLETE.missingValues, WireType.LEN).fork();
  str(w, VALUE_SPEC.stateName, s.stateName);
  if (s.expirationSpec !== null) {
    w.tag(VALUE_SPEC.expirationSpec, WireType.LEN).fork();
    const mode = EXPIRE_MODES.indexOf(s.expirationSpec.mode);
    if (mode < 0) throw new WeftError('ERR_WEFT_INVALID_ARG', `ExpirationSpec.mode must be one of ${EXPIRE_MODES.join(', ')} (got ${String(s.expirationSpec.mode)})`);
    if (mode !== 0) w.tag(EXPIRATION.mode, WireType.VARINT).int32(mode);
    int64Field(w, EXPIRATION.expireAfterMillis, s.expirationSpec.expireAfterMillis, 'ExpirationSpec.expireAfterMillis');
    w.join();
  }
  str(w, VALUE_SPEC.typeTypename, s.typeTypename);
  w.join();
}

/**
 * Encodes a `FromFunction` response body.
 *
 * @example
 * ```ts
 * const body = encodeFromFunction({
 *   kind: 'incomplete-invocation-context',
 *   missingValues: [{ stateName: 'seen', typeTypename: 'io.statefun.types/int', expirationSpec: null }],
 * });
 * ```
 */
export function encodeFromFunction(msg: FromFunction): Uint8Array {
  const w = writer.reset();
  if (msg.kind === 'invocation-result') {
    w.tag(FROM_FUNCTION.invocationResult, WireType.LEN).fork();
    writeResponse(w, msg.result);
    w.join();
  } else if (msg.kind === 'incomplete-invocation-context') {
    w.tag(FROM_FUNCTION.incompleteInvocationContext, WireType.LEN).fork();
    for (const s of msg.missingValues) writeValueSpec(w, s);
    w.join();
  } else if (msg.kind !== 'empty') {
    throw new WeftError('ERR_WEFT_INVALID_ARG', `FromFunction.kind must be 'invocation-result', 'incomplete-invocation-context' or 'empty' (got ${String((msg as { kind: unknown }).kind)})`);
  }
  return w.finish();
}

/**
 * Encodes a Kafka egress record (the payload of {@link KAFKA_PRODUCER_RECORD_TYPENAME}).
 *
 * @example
 * ```ts
 * const bytes = encodeKafkaProducerRecord({ topic: 'orders', key: 'o-1', valueBytes: new TextEncoder().encode('{}') });
 * ```
 */
export function encodeKafkaProducerRecord(r: KafkaProducerRecord): Uint8Array {
  return writeFlat(writer.reset(), KAFKA, r).finish();
}

/**
 * Encodes a Kinesis egress record (the payload of {@link KINESIS_EGRESS_RECORD_TYPENAME}).
 *
 * @example
 * ```ts
 * const bytes = encodeKinesisEgressRecord({ stream: 'clicks', partitionKey: 'u-7', explicitHashKey: '', valueBytes: data });
 * ```
 */
export function encodeKinesisEgressRecord(r: KinesisEgressRecord): Uint8Array {
  return writeFlat(writer.reset(), KINESIS, r).finish();
}

/** The typename StateFun's Kafka egress expects for a record (a protobuf `Any`-style URL). */
export const KAFKA_PRODUCER_RECORD_TYPENAME = 'type.googleapis.com/io.statefun.sdk.egress.KafkaProducerRecord';
/** The typename StateFun's Kinesis egress expects for a record. */
export const KINESIS_EGRESS_RECORD_TYPENAME = 'type.googleapis.com/io.statefun.sdk.egress.KinesisEgressRecord';

// ---------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------

/**
 * Reads the fields of one message: `field` is called for every field whose wire type is the one
 * `expect` names for its number; every other field is skipped.
 */
function readFields(r: ProtoReader, expect: (field: number) => WireTypeValue | undefined, field: (n: number) => void): void {
  while (!r.done) {
    const tag = r.tag();
    const n = tag >>> 3;
    if (expect(n) === (tag & 7)) field(n);
    else r.skip(tag);
  }
}

function enumValue<T>(r: ProtoReader, values: readonly T[], what: string): T {
  const at = r.pos;
  const n = r.int32();
  const v = values[n];
  if (v === undefined) throw new WeftError('ERR_WEFT_PROTOCOL', `unknown ${what} ${n} at offset ${at}`);
  return v;
}

function int64Value(r: ProtoReader, what: string): number {
  try {
    return r.int64();
  } catch (err) {
    throw new WeftError('ERR_WEFT_PROTOCOL', `${what}: ${(err as Error).message}`, { cause: err });
  }
}

/** Wire types by field number for a message whose fields are all length-delimited. */
function allLen(fields: Readonly<Record<string, number>>): Readonly<Record<number, WireTypeValue>> {
  const out: Record<number, WireTypeValue> = {};
  for (const n of Object.values(fields)) out[n] = WireType.LEN;
  return out;
}

const BATCH_WIRE = allLen(BATCH);
const PERSISTED_VALUE_WIRE = allLen(PERSISTED_VALUE);
const INVOCATION_WIRE = allLen(INVOCATION);
const EGRESS_WIRE = allLen(EGRESS);
const RESPONSE_WIRE = allLen(RESPONSE);
const VALUE_SPEC_WIRE = allLen(VALUE_SPEC);

/** Reads a {@link Flat} message's fields into `into` (a repeated field keeps its last value). */
function readFlat<T>(r: ProtoReader, schema: Flat<T>, into: T): T {
  const out = into as Record<string, unknown>;
  readFields(
    r,
    (n) => (schema.byNumber.has(n) ? WireType.LEN : undefined),
    (n) => {
      const [name, , kind] = schema.byNumber.get(n) as FlatField<T>;
      out[name] = kind === 'string' ? r.string() : r.bytes();
    },
  );
  return into;
}

function readAddress(r: ProtoReader, into: PbAddress | null): PbAddress {
  return readFlat(r, ADDRESS, into ?? { namespace: '', type: '', id: '' });
}

const TYPED_VALUE_WIRE: Record<number, WireTypeValue> = {
  [TYPED_VALUE.typename]: WireType.LEN,
  [TYPED_VALUE.hasValue]: WireType.VARINT,
  [TYPED_VALUE.value]: WireType.LEN,
};

const EMPTY = new Uint8Array(0);

function readTypedValue(r: ProtoReader, into: TypedValue | null): TypedValue {
  const v = into ?? { typename: '', hasValue: false, value: EMPTY };
  readFields(
    r,
    (n) => TYPED_VALUE_WIRE[n],
    (n) => {
      if (n === TYPED_VALUE.typename) v.typename = r.string();
      else if (n === TYPED_VALUE.hasValue) v.hasValue = r.bool();
      else v.value = r.bytes();
    },
  );
  return v;
}

function readBatch(r: ProtoReader, into: InvocationBatchRequest | null): InvocationBatchRequest {
  const b = into ?? { target: null, state: [], invocations: [] };
  readFields(
    r,
    (n) => BATCH_WIRE[n],
    (n) => {
      if (n === BATCH.target) {
        b.target = readAddress(r.sub(), b.target);
      } else if (n === BATCH.state) {
        const s: PersistedValue = { stateName: '', stateValue: null };
        const sr = r.sub();
        readFields(
          sr,
          (m) => PERSISTED_VALUE_WIRE[m],
          (m) => {
            if (m === PERSISTED_VALUE.stateName) s.stateName = sr.string();
            else s.stateValue = readTypedValue(sr.sub(), s.stateValue);
          },
        );
        b.state.push(s);
      } else {
        const [caller, argument] = readInvocation(r.sub());
        b.invocations.push({ caller, argument });
      }
    },
  );
  return b;
}

/** Prefixes a protocol error with the message being decoded; other errors are bugs and pass. */
function decoding<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof WeftError && err.code === 'ERR_WEFT_PROTOCOL') {
      throw new WeftError('ERR_WEFT_PROTOCOL', `malformed ${what}: ${err.message}`, { cause: err.cause });
    }
    throw err;
  }
}

/**
 * Decodes a `ToFunction` request body. Byte fields are views into `bytes`.
 * Throws ERR_WEFT_PROTOCOL on malformed input.
 *
 * @example
 * ```ts
 * const { invocation } = decodeToFunction(body);
 * if (invocation === null) throw new Error('no batch');
 * console.log(invocation.target, invocation.invocations.length);
 * ```
 */
export function decodeToFunction(bytes: Uint8Array): ToFunction {
  return decoding('ToFunction', () => {
    const r = new ProtoReader(bytes);
    const msg: ToFunction = { invocation: null };
    readFields(
      r,
      (n) => (n === TO_FUNCTION.invocation ? WireType.LEN : undefined),
      () => {
        msg.invocation = readBatch(r.sub(), msg.invocation);
      },
    );
    return msg;
  });
}

const MUTATION_WIRE: Record<number, WireTypeValue> = {
  [MUTATION.mutationType]: WireType.VARINT,
  [MUTATION.stateName]: WireType.LEN,
  [MUTATION.stateValue]: WireType.LEN,
};

const DELAYED_WIRE: Record<number, WireTypeValue> = {
  [DELAYED.isCancellationRequest]: WireType.VARINT,
  [DELAYED.cancellationToken]: WireType.LEN,
  [DELAYED.delayInMs]: WireType.VARINT,
  [DELAYED.target]: WireType.LEN,
  [DELAYED.argument]: WireType.LEN,
};

function readMutation(r: ProtoReader): PersistedValueMutation {
  const m: PersistedValueMutation = { mutationType: 'DELETE', stateName: '', stateValue: null };
  readFields(
    r,
    (n) => MUTATION_WIRE[n],
    (n) => {
      if (n === MUTATION.mutationType) m.mutationType = enumValue(r, MUTATION_TYPES, 'PersistedValueMutation.mutation_type');
      else if (n === MUTATION.stateName) m.stateName = r.string();
      else m.stateValue = readTypedValue(r.sub(), m.stateValue);
    },
  );
  return m;
}

/** Reads an Invocation, ToFunction's or FromFunction's: its address (caller or target) and argument. */
function readInvocation(r: ProtoReader): [address: PbAddress | null, argument: TypedValue | null] {
  let address: PbAddress | null = null;
  let argument: TypedValue | null = null;
  readFields(
    r,
    (n) => INVOCATION_WIRE[n],
    (n) => {
      if (n === INVOCATION.address) address = readAddress(r.sub(), address);
      else argument = readTypedValue(r.sub(), argument);
    },
  );
  return [address, argument];
}

function readDelayed(r: ProtoReader): DelayedInvocation {
  const d: DelayedInvocation = { isCancellationRequest: false, cancellationToken: '', delayInMs: 0, target: null, argument: null };
  readFields(
    r,
    (n) => DELAYED_WIRE[n],
    (n) => {
      if (n === DELAYED.isCancellationRequest) d.isCancellationRequest = r.bool();
      else if (n === DELAYED.cancellationToken) d.cancellationToken = r.string();
      else if (n === DELAYED.delayInMs) d.delayInMs = int64Value(r, 'DelayedInvocation.delay_in_ms');
      else if (n === DELAYED.target) d.target = readAddress(r.sub(), d.target);
      else d.argument = readTypedValue(r.sub(), d.argument);
    },
  );
  return d;
}

function readEgress(r: ProtoReader): EgressMessage {
  const e: EgressMessage = { egressNamespace: '', egressType: '', argument: null };
  readFields(
    r,
    (n) => EGRESS_WIRE[n],
    (n) => {
      if (n === EGRESS.egressNamespace) e.egressNamespace = r.string();
      else if (n === EGRESS.egressType) e.egressType = r.string();
      else e.argument = readTypedValue(r.sub(), e.argument);
    },
  );
  return e;
}

function readResponse(r: ProtoReader, into: InvocationResponse | null): InvocationResponse {
  const res = into ?? { stateMutations: [], outgoingMessages: [], delayedInvocations: [], outgoingEgresses: [] };
  readFields(
    r,
    (n) => RESPONSE_WIRE[n],
    (n) => {
      const sub = r.sub();
      if (n === RESPONSE.stateMutations) {
        res.stateMutations.push(readMutation(sub));
      } else if (n === RESPONSE.outgoingMessages) {
        const [target, argument] = readInvocation(sub);
        res.outgoingMessages.push({ target, argument });
      } else if (n === RESPONSE.delayedInvocations) {
        res.delayedInvocations.push(readDelayed(sub));
      } else {
        res.outgoingEgresses.push(readEgress(sub));
      }
    },
  );
  return res;
}

const EXPIRATION_WIRE: Record<number, WireTypeValue> = {
  [EXPIRATION.mode]: WireType.VARINT,
  [EXPIRATION.expireAfterMillis]: WireType.VARINT,
};

function readExpiration(r: ProtoReader, into: ExpirationSpec | null): ExpirationSpec {
  const e = into ?? { mode: 'NONE', expireAfterMillis: 0 };
  readFields(
    r,
    (n) => EXPIRATION_WIRE[n],
    (n) => {
      // The runtime reads a mode it does not know (protobuf's UNRECOGNIZED) as NONE: its switch
      // over the mode falls through to "no expiration" for anything but AFTER_WRITE/AFTER_INVOKE.
      if (n === EXPIRATION.mode) e.mode = EXPIRE_MODES[r.int32()] ?? 'NONE';
      else e.expireAfterMillis = int64Value(r, 'ExpirationSpec.expire_after_millis');
    },
  );
  return e;
}

function readValueSpec(r: ProtoReader): PersistedValueSpec {
  const s: PersistedValueSpec = { stateName: '', expirationSpec: null, typeTypename: '' };
  readFields(
    r,
    (n) => VALUE_SPEC_WIRE[n],
    (n) => {
      if (n === VALUE_SPEC.stateName) s.stateName = r.string();
      else if (n === VALUE_SPEC.expirationSpec) s.expirationSpec = readExpiration(r.sub(), s.expirationSpec);
      else s.typeTypename = r.string();
    },
  );
  return s;
}

/**
 * Decodes a `FromFunction` response body. Byte fields are views into `bytes`.
 * Throws ERR_WEFT_PROTOCOL on malformed input.
 *
 * @example
 * ```ts
 * const msg = decodeFromFunction(body);
 * if (msg.kind === 'incomplete-invocation-context') {
 *   for (const spec of msg.missingValues) console.log('register', spec.stateName, spec.typeTypename);
 * }
 * ```
 */
export function decodeFromFunction(bytes: Uint8Array): FromFunction {
  return decoding('FromFunction', () => {
    const r = new ProtoReader(bytes);
    let msg: FromFunction = { kind: 'empty' };
    readFields(
      r,
      (n) => (n === FROM_FUNCTION.invocationResult || n === FROM_FUNCTION.incompleteInvocationContext ? WireType.LEN : undefined),
      (n) => {
        const sub = r.sub();
        if (n === FROM_FUNCTION.invocationResult) {
          // A oneof member seen twice merges; another member replaces it.
          msg = { kind: 'invocation-result', result: readResponse(sub, msg.kind === 'invocation-result' ? msg.result : null) };
        } else {
          const missingValues = msg.kind === 'incomplete-invocation-context' ? msg.missingValues : [];
          readFields(
            sub,
            (m) => (m === INCOMPLETE.missingValues ? WireType.LEN : undefined),
            () => {
              missingValues.push(readValueSpec(sub.sub()));
            },
          );
          msg = { kind: 'incomplete-invocation-context', missingValues };
        }
      },
    );
    return msg;
  });
}

/**
 * Decodes a Kafka egress record; throws ERR_WEFT_PROTOCOL on malformed input.
 *
 * @example
 * ```ts
 * const { topic, key, valueBytes } = decodeKafkaProducerRecord(typedValue.value);
 * ```
 */
export function decodeKafkaProducerRecord(bytes: Uint8Array): KafkaProducerRecord {
  return decoding('KafkaProducerRecord', () => readFlat(new ProtoReader(bytes), KAFKA, { key: '', valueBytes: EMPTY, topic: '' }));
}

/**
 * Decodes a Kinesis egress record; throws ERR_WEFT_PROTOCOL on malformed input.
 *
 * @example
 * ```ts
 * const { stream, partitionKey, valueBytes } = decodeKinesisEgressRecord(typedValue.value);
 * ```
 */
export function decodeKinesisEgressRecord(bytes: Uint8Array): KinesisEgressRecord {
  return decoding('KinesisEgressRecord', () => readFlat(new ProtoReader(bytes), KINESIS, { partitionKey: '', valueBytes: EMPTY, stream: '', explicitHashKey: '' }));
}

/**
 * Splits a StateFun typename into namespace and name the way the StateFun runtime's
 * `TypeName.parseFrom` does: Java's `String.split("/")` (which drops trailing empty strings) must
 * yield exactly two parts, so the typename has exactly one `/` (a trailing `/` is dropped, as
 * there: `'a/b/'` reads as `a/b`). Anything else (`'a/b/c'`, `'plain'`, `'a/'`) throws
 * ERR_WEFT_INVALID_TYPENAME, as the runtime throws on it.
 *
 * @example
 * ```ts
 * splitStatefunTypename('com.example/greeter'); // { namespace: 'com.example', name: 'greeter' }
 * splitStatefunTypename('a/b/c');               // throws ERR_WEFT_INVALID_TYPENAME
 * ```
 */
export function splitStatefunTypename(typename: string): { namespace: string; name: string } {
  const parts = typename.split('/');
  while (parts.length > 0 && parts[parts.length - 1] === '') parts.pop();
  // Java's split of "" is [""], one part; JavaScript's is [""] too, popped above to none: both fail.
  if (parts.length !== 2) {
    throw new WeftError('ERR_WEFT_INVALID_TYPENAME', `invalid StateFun typename ${JSON.stringify(typename)}: it must be <namespace>/<name> (exactly one "/")`);
  }
  return { namespace: parts[0] as string, name: parts[1] as string };
}

/**
 * The canonical form of a StateFun typename (`namespace/name`, as `TypeName.parseFrom` reads it);
 * the empty typename is the runtime's "io.statefun.types/unset". Throws ERR_WEFT_INVALID_TYPENAME
 * like {@link splitStatefunTypename}.
 */
export function canonicalStatefunTypename(typename: string): string {
  if (typename === '') return UNSET_TYPENAME;
  const { namespace, name } = splitStatefunTypename(typename);
  return `${namespace}/${name}`;
}

/** The typename the runtime gives a state whose spec or value names none. */
export const UNSET_TYPENAME = 'io.statefun.types/unset';

/**
 * The typename of a protocol address: `namespace/type`.
 *
 * @example
 * ```ts
 * addressTypename({ namespace: 'shop', type: 'cart', id: 'c-1' }); // 'shop/cart'
 * ```
 */
export function addressTypename(a: PbAddress): string {
  return `${a.namespace}/${a.type}`;
}
