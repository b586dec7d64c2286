import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { WeftError } from '../../src/core/errors.js';
import { expectWeftError } from '../helpers/index.js';
import {
  type FromFunction,
  type InvocationResponse,
  type PbAddress,
  type PersistedValueSpec,
  type ToFunction,
  type TypedValue,
  decodeFromFunction,
  decodeKafkaProducerRecord,
  decodeKinesisEgressRecord,
  decodeToFunction,
  encodeFromFunction,
  encodeKafkaProducerRecord,
  encodeKinesisEgressRecord,
  encodeToFunction,
  splitStatefunTypename,
  canonicalStatefunTypename,
} from '../../src/statefun/protocol/proto.js';
import { ProtoWriter, WireType } from '../../src/codec/protobuf.js';
import {
  sdkDecodeFromFunction,
  sdkDecodeKafka,
  sdkDecodeKinesis,
  sdkDecodeToFunction,
  sdkEncodeFromFunction,
  sdkEncodeKafka,
  sdkEncodeKinesis,
  sdkEncodeToFunction,
} from '../fixtures/statefun-sdk.js';

// ---------------------------------------------------------------------------------------------
// Arbitraries: every message of the protocol, with empty/default fields as likely as set ones.
// ---------------------------------------------------------------------------------------------

const text = fc.oneof(fc.constant(''), fc.string({ unit: 'grapheme', maxLength: 12 }), fc.string({ maxLength: 40 }));
const bytes = fc.oneof(fc.constant(new Uint8Array(0)), fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ minLength: 128, maxLength: 300 }));
const address: fc.Arbitrary<PbAddress> = fc.record({ namespace: text, type: text, id: text });
const typedValue: fc.Arbitrary<TypedValue> = fc.record({ typename: text, hasValue: fc.boolean(), value: bytes });
const opt = <T>(a: fc.Arbitrary<T>): fc.Arbitrary<T | null> => fc.option(a, { nil: null });
const int64 = fc.oneof(fc.constant(0), fc.integer(), fc.maxSafeInteger(), fc.maxSafeNat());

const toFunction: fc.Arbitrary<ToFunction> = fc.record({
  invocation: opt(
    fc.record({
      target: opt(address),
      state: fc.array(fc.record({ stateName: text, stateValue: opt(typedValue) }), { maxLength: 5 }),
      invocations: fc.array(fc.record({ caller: opt(address), argument: opt(typedValue) }), { maxLength: 5 }),
    }),
  ),
});

const invocationResponse: fc.Arbitrary<InvocationResponse> = fc.record({
  stateMutations: fc.array(
    fc.record({ mutationType: fc.constantFrom('DELETE' as const, 'MODIFY' as const), stateName: text, stateValue: opt(typedValue) }),
    { maxLength: 4 },
  ),
  outgoingMessages: fc.array(fc.record({ target: opt(address), argument: opt(typedValue) }), { maxLength: 4 }),
  delayedInvocations: fc.array(
    fc.record({
      isCancellationRequest: fc.boolean(),
      cancellationToken: text,
      delayInMs: int64,
      target: opt(address),
      argument: opt(typedValue),
    }),
    { maxLength: 4 },
  ),
  outgoingEgresses: fc.array(fc.record({ egressNamespace: text, egressType: text, argument: opt(typedValue) }), { maxLength: 4 }),
});

const valueSpec: fc.Arbitrary<PersistedValueSpec> = fc.record({
  stateName: text,
  expirationSpec: opt(fc.record({ mode: fc.constantFrom('NONE' as const, 'AFTER_WRITE' as const, 'AFTER_INVOKE' as const), expireAfterMillis: int64 })),
  typeTypename: text,
});

const fromFunction: fc.Arbitrary<FromFunction> = fc.oneof(
  invocationResponse.map((result): FromFunction => ({ kind: 'invocation-result', result })),
  fc.array(valueSpec, { maxLength: 5 }).map((missingValues): FromFunction => ({ kind: 'incomplete-invocation-context', missingValues })),
  fc.constant<FromFunction>({ kind: 'empty' }),
);

const RUNS = 300;

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}

function protocolError(fn: () => unknown): WeftError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(WeftError);
    expect((err as WeftError).code).toBe('ERR_WEFT_PROTOCOL');
    return err as WeftError;
  }
  throw new Error('expected ERR_WEFT_PROTOCOL, nothing was thrown');
}

// ---------------------------------------------------------------------------------------------

describe('ToFunction / FromFunction codec against the official SDK classes', () => {
  it('encodes ToFunction to the same bytes as the SDK, and each side decodes the other', () => {
    fc.assert(
      fc.property(toFunction, (msg) => {
        const ours = encodeToFunction(msg);
        const theirs = sdkEncodeToFunction(msg);
        expect(hex(ours)).toBe(hex(theirs));
        expect(sdkDecodeToFunction(ours)).toEqual(msg);
        expect(decodeToFunction(theirs)).toEqual(msg);
      }),
      { numRuns: RUNS },
    );
  });

  it('encodes FromFunction to the same bytes as the SDK, and each side decodes the other', () => {
    fc.assert(
      fc.property(fromFunction, (msg) => {
        const ours = encodeFromFunction(msg);
        const theirs = sdkEncodeFromFunction(msg);
        expect(hex(ours)).toBe(hex(theirs));
        expect(sdkDecodeFromFunction(ours)).toEqual(msg);
        expect(decodeFromFunction(theirs)).toEqual(msg);
      }),
      { numRuns: RUNS },
    );
  });

  it('encodes the Kafka and Kinesis egress records like the SDK', () => {
    fc.assert(
      fc.property(fc.record({ key: text, valueBytes: bytes, topic: text }), (rec) => {
        const ours = encodeKafkaProducerRecord(rec);
        expect(hex(ours)).toBe(hex(sdkEncodeKafka(rec)));
        expect(sdkDecodeKafka(ours)).toEqual(rec);
        expect(decodeKafkaProducerRecord(ours)).toEqual(rec);
      }),
      { numRuns: RUNS },
    );
    fc.assert(
      fc.property(fc.record({ partitionKey: text, valueBytes: bytes, stream: text, explicitHashKey: text }), (rec) => {
        const ours = encodeKinesisEgressRecord(rec);
        expect(hex(ours)).toBe(hex(sdkEncodeKinesis(rec)));
        expect(sdkDecodeKinesis(ours)).toEqual(rec);
        expect(decodeKinesisEgressRecord(ours)).toEqual(rec);
      }),
      { numRuns: RUNS },
    );
  });

  it('writes a DelayedInvocation in declaration order (fields 10, 11 before 1, 2, 3), as the SDK does', () => {
    const body = encodeFromFunction({
      kind: 'invocation-result',
      result: {
        stateMutations: [],
        outgoingMessages: [],
        delayedInvocations: [{ isCancellationRequest: true, cancellationToken: 't', delayInMs: 5, target: null, argument: null }],
        outgoingEgresses: [],
      },
    });
    // 100:LEN { 3:LEN { 10:VARINT 1, 11:LEN "t", 1:VARINT 5 } }
    expect(hex(body)).toBe('a20609' + '1a07' + '5001' + '5a0174' + '0805');
  });
});

describe('decoding follows protobuf rules', () => {
  it('skips unknown fields of every wire type, including groups', () => {
    fc.assert(
      fc.property(toFunction, fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 6 }), (msg, kinds) => {
        const w = new ProtoWriter();
        w.raw(encodeToFunction(msg));
        for (const [i, k] of kinds.entries()) {
          const field = 200 + i;
          if (k === 0) w.tag(field, WireType.VARINT).uint64(2 ** 40 + i);
          else if (k === 1) w.tag(field, WireType.I64).double(i);
          else if (k === 2) w.tag(field, WireType.LEN).bytes(new Uint8Array([1, 2, 3]));
          else if (k === 3) w.tag(field, WireType.I32).fixed32(i);
          else w.tag(field, WireType.SGROUP).tag(1, WireType.VARINT).uint32(1).tag(field, WireType.EGROUP);
        }
        expect(decodeToFunction(w.finish())).toEqual(msg);
      }),
      { numRuns: 100 },
    );
  });

  it('treats a known field with an unexpected wire type as unknown, like Java parsers', () => {
    // TypedValue with typename (field 1) sent as a varint, then a real typename.
    const w = new ProtoWriter();
    w.tag(100, WireType.LEN).fork();
    w.tag(1, WireType.VARINT).uint32(7); // target as varint: skipped
    w.tag(3, WireType.LEN).fork().tag(2, WireType.LEN).fork().tag(1, WireType.VARINT).uint32(1).tag(1, WireType.LEN).string('a/b').join().join();
    w.join();
    expect(decodeToFunction(w.finish())).toEqual({
      invocation: { target: null, state: [], invocations: [{ caller: null, argument: { typename: 'a/b', hasValue: false, value: new Uint8Array(0) } }] },
    });
  });

  it('merges a repeated singular sub-message and keeps the last scalar', () => {
    const w = new ProtoWriter();
    w.tag(100, WireType.LEN).fork();
    w.tag(1, WireType.LEN).fork().tag(1, WireType.LEN).string('ns').tag(3, WireType.LEN).string('first').join();
    w.tag(1, WireType.LEN).fork().tag(2, WireType.LEN).string('fn').tag(3, WireType.LEN).string('second').join();
    w.join();
    expect(decodeToFunction(w.finish()).invocation?.target).toEqual({ namespace: 'ns', type: 'fn', id: 'second' });
  });

  it('lets the last oneof member win', () => {
    const incomplete = encodeFromFunction({ kind: 'incomplete-invocation-context', missingValues: [{ stateName: 's', typeTypename: 'a/b', expirationSpec: null }] });
    const result = encodeFromFunction({ kind: 'invocation-result', result: { stateMutations: [], outgoingMessages: [], delayedInvocations: [], outgoingEgresses: [] } });
    expect(decodeFromFunction(Buffer.concat([incomplete, result])).kind).toBe('invocation-result');
    expect(decodeFromFunction(Buffer.concat([result, incomplete])).kind).toBe('incomplete-invocation-context');
  });

  it('reads an empty body as an empty message', () => {
    expect(decodeToFunction(new Uint8Array(0))).toEqual({ invocation: null });
    expect(decodeFromFunction(new Uint8Array(0))).toEqual({ kind: 'empty' });
  });
});

describe('malformed input', () => {
  it('never throws anything but ERR_WEFT_PROTOCOL on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (b) => {
        for (const decode of [decodeToFunction, decodeFromFunction, decodeKafkaProducerRecord, decodeKinesisEgressRecord]) {
          try {
            decode(b);
          } catch (err) {
            expect(err).toBeInstanceOf(WeftError);
            expect((err as WeftError).code).toBe('ERR_WEFT_PROTOCOL');
          }
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('never throws anything but ERR_WEFT_PROTOCOL on corrupted valid messages (flipped, inserted, truncated bytes)', () => {
    const corrupt = (valid: Uint8Array, edits: Array<[number, number, number]>, cut: number): Uint8Array => {
      const out = Array.from(valid);
      for (const [op, at, value] of edits) {
        if (out.length === 0) break;
        const i = at % out.length;
        if (op === 0) out[i] = value;
        else if (op === 1) out.splice(i, 0, value);
        else out.splice(i, 1);
      }
      return Uint8Array.from(out.slice(0, Math.max(0, out.length - cut)));
    };
    const edits = fc.array(fc.tuple(fc.integer({ min: 0, max: 2 }), fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 });
    fc.assert(
      fc.property(toFunction, fromFunction, edits, fc.nat({ max: 8 }), (to, from, e, cut) => {
        for (const [bad, decode] of [
          [corrupt(encodeToFunction(to), e, cut), decodeToFunction],
          [corrupt(encodeFromFunction(from), e, cut), decodeFromFunction],
        ] as const) {
          try {
            decode(bad);
          } catch (err) {
            expect(err).toBeInstanceOf(WeftError);
            expect((err as WeftError).code).toBe('ERR_WEFT_PROTOCOL');
          }
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('names the message and the problem', () => {
    const valid = encodeToFunction({ invocation: { target: { namespace: 'a', type: 'b', id: 'c' }, state: [], invocations: [] } });
    expect(protocolError(() => decodeToFunction(valid.subarray(0, valid.length - 1))).message).toMatch(/^malformed ToFunction: truncated protobuf input/);
    expect(protocolError(() => decodeToFunction(Uint8Array.of(0x00))).message).toMatch(/field number 0/);
    expect(protocolError(() => decodeToFunction(Uint8Array.of(0x0f))).message).toMatch(/wire type 7/);
    expect(protocolError(() => decodeFromFunction(Uint8Array.of(0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01))).message).toMatch(/longer than 10 bytes/);
  });

  it('refuses bad UTF-8, unknown mutation types and delays beyond 2^53', () => {
    const w = new ProtoWriter();
    w.tag(100, WireType.LEN).fork().tag(1, WireType.LEN).fork().tag(3, WireType.LEN).bytes(Uint8Array.of(0xc3, 0x28)).join().join();
    expect(protocolError(() => decodeToFunction(w.finish())).message).toMatch(/UTF-8/);

    w.reset().tag(100, WireType.LEN).fork().tag(1, WireType.LEN).fork().tag(1, WireType.VARINT).uint32(7).join().join();
    expect(protocolError(() => decodeFromFunction(w.finish())).message).toMatch(/unknown PersistedValueMutation.mutation_type 7/);


    w.reset().tag(100, WireType.LEN).fork().tag(3, WireType.LEN).fork().tag(1, WireType.VARINT).int64Big(2n ** 60n).join().join();
    expect(protocolError(() => decodeFromFunction(w.finish())).message).toMatch(/delay_in_ms/);
  });

  it('reads an unknown ExpirationSpec mode as NONE, as the runtime does (UNRECOGNIZED falls to "no expiration")', () => {
    const w = new ProtoWriter();
    // FromFunction.incomplete_invocation_context { missing_values { state_name "s", expiration_spec { mode 3, expire_after_millis 500 } } }
    w.tag(101, WireType.LEN).fork().tag(1, WireType.LEN).fork();
    w.tag(1, WireType.LEN).string('s');
    w.tag(2, WireType.LEN).fork().tag(1, WireType.VARINT).uint32(3).tag(2, WireType.VARINT).uint32(500).join();
    w.join().join();
    expect(decodeFromFunction(w.finish())).toEqual({
      kind: 'incomplete-invocation-context',
      missingValues: [{ stateName: 's', typeTypename: '', expirationSpec: { mode: 'NONE', expireAfterMillis: 500 } }],
    });
  });

  it('bounds nested groups instead of recursing', () => {
    const w = new ProtoWriter();
    for (let i = 0; i < 100_000; i++) w.tag(9, WireType.SGROUP);
    expect(protocolError(() => decodeToFunction(w.finish())).message).toMatch(/nested deeper/);
  });

  it('decodes a large batch without trouble', () => {
    const msg: ToFunction = {
      invocation: {
        target: { namespace: 'n', type: 't', id: 'i' },
        state: [],
        invocations: Array.from({ length: 20_000 }, (_, i) => ({ caller: null, argument: { typename: 'a/b', hasValue: true, value: Uint8Array.of(i & 255) } })),
      },
    };
    expect(decodeToFunction(encodeToFunction(msg))).toEqual(msg);
  });
});

describe('typenames', () => {
  // The runtime's TypeName.parseFrom: Java's String.split("/") (trailing empty strings dropped)
  // must give exactly two parts.
  it('splits at the one slash, like the StateFun runtime, and refuses anything else', () => {
    expect(splitStatefunTypename('com.example/fn')).toEqual({ namespace: 'com.example', name: 'fn' });
    expect(splitStatefunTypename('/fn')).toEqual({ namespace: '', name: 'fn' });
    expect(splitStatefunTypename('a/b/')).toEqual({ namespace: 'a', name: 'b' });
    for (const bad of ['a/b/c', 'plain', 'a/', '', '/', 'a//b']) {
      expectWeftError(() => splitStatefunTypename(bad), 'ERR_WEFT_INVALID_TYPENAME', `invalid StateFun typename ${JSON.stringify(bad)}: it must be <namespace>/<name> (exactly one "/")`);
    }
  });

  it('canonicalizes typenames as the runtime compares them; empty is io.statefun.types/unset', () => {
    expect(canonicalStatefunTypename('a/b/')).toBe('a/b');
    expect(canonicalStatefunTypename('')).toBe('io.statefun.types/unset');
    expectWeftError(() => canonicalStatefunTypename('a/b/c'), 'ERR_WEFT_INVALID_TYPENAME');
  });
});
