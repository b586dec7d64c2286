/**
 * kafkaRecordType / kinesisRecordType (src/statefun/index.ts): the value types of StateFun egress
 * records, validated field by field on encode, optional fields left out of decoded records when
 * empty, `value` decoded as a private copy of the bytes.
 */
import { describe, expect, it } from 'vitest';
import { kafkaRecordType, kinesisRecordType } from '../../src/statefun/index.js';
import { expectWeftError } from '../helpers/index.js';

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

const refusal = (fn: () => unknown): string => expectWeftError(fn, 'ERR_WEFT_TYPE_MISMATCH').message;

describe('kafkaRecordType', () => {
  const t = kafkaRecordType();
  const roundTrip = (v: unknown): unknown => t.decode(t.encode(v as never));

  it('round-trips records, a string value as UTF-8 and an empty key as absent', () => {
    expect(roundTrip({ topic: 't', key: 'k', value: 'v' })).toEqual({ topic: 't', key: 'k', value: utf8('v') });
    expect(Object.keys(roundTrip({ topic: 't', key: 'k', value: 'v' }) as object)).toEqual(['topic', 'value', 'key']);
    expect(roundTrip({ topic: 't', value: Uint8Array.of(1) })).toEqual({ topic: 't', value: Uint8Array.of(1) });
    expect(roundTrip({ topic: 't', key: '', value: '' })).toEqual({ topic: 't', value: new Uint8Array(0) });
  });

  it('refuses a bad field, naming it', () => {
    expect(refusal(() => t.encode({ topic: '', value: 'v' }))).toBe('Kafka egress record topic must be a non-empty string (got "")');
    expect(refusal(() => t.encode({ topic: 't', key: 3, value: 'v' } as never))).toBe('Kafka egress record key must be a string when given (got 3)');
    expect(refusal(() => t.encode({ topic: 't', value: 3 } as never))).toBe('Kafka egress record value must be a Uint8Array or a string (got 3); encode other values first, or pass valueType');
    expect(refusal(() => t.encode(null as never))).toBe('Kafka egress record must be an object (got null)');
    expect(refusal(() => t.encode([1] as never))).toBe('Kafka egress record must be an object (got array(1))');
  });
});

describe('kinesisRecordType', () => {
  const t = kinesisRecordType();
  const roundTrip = (v: unknown): unknown => t.decode(t.encode(v as never));

  it('round-trips records, an empty explicit hash key as absent', () => {
    const full = roundTrip({ stream: 's', partitionKey: 'p', explicitHashKey: 'h', value: 'v' });
    expect(full).toEqual({ stream: 's', partitionKey: 'p', explicitHashKey: 'h', value: utf8('v') });
    expect(Object.keys(full as object)).toEqual(['stream', 'partitionKey', 'value', 'explicitHashKey']);
    expect(roundTrip({ stream: 's', partitionKey: 'p', value: 'v' })).toEqual({ stream: 's', partitionKey: 'p', value: utf8('v') });
  });

  it('refuses a bad field, naming it', () => {
    expect(refusal(() => t.encode({ stream: 's', value: 'v' } as never))).toBe('Kinesis egress record partitionKey must be a non-empty string (got undefined)');
    expect(refusal(() => t.encode({ stream: 's', partitionKey: 'p', explicitHashKey: 1, value: 'v' } as never))).toBe('Kinesis egress record explicitHashKey must be a string when given (got 1)');
    expect(refusal(() => t.encode('x' as never))).toBe('Kinesis egress record must be an object (got "x")');
  });
});
