import fc from 'fast-check';
import { Unpackr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { Kind, envelope, resolveNames, wireEncoder, type Envelope } from '../../src/contract/envelope.js';
import { compileModule, wireNamesOf } from '../../src/module/runtime.js';
import { defineModule, type } from '../../src/index.js';
import { FrameEncoder, decodeBatch, encodeBatch } from '../../src/transport/framing.js';
import { NameTable } from '../../src/transport/names.js';
import { expectWeftError } from '../helpers/index.js';

const table = new NameTable(['bank/account', 'bank/audit', 'weft.types/int', 'weft.types/msgpack']);
const plain = new Unpackr({ useRecords: false });

function roundTrip(records: unknown[][]): unknown[][] {
  const frame = wireEncoder(table).encode(records);
  return decodeBatch(frame.slice()).map((r) => (r[0] === Kind.Msg ? resolveNames(r, table) : r));
}

describe('wire names', () => {
  it('sends table names as 1-byte indexes and gives back the same strings', () => {
    const env = envelope('bank/account', 'alice', 'bank/audit', 'x', 'weft.types/int', Uint8Array.of(7), 3, 9);
    const frame = wireEncoder(table).encode([env]);
    // Plain msgpack: any reader sees the indexes as ints.
    expect(plain.unpack(frame.slice())).toEqual([[Kind.Msg, 0, 'alice', 1, 'x', 2, Uint8Array.of(7), 3, 9]]);
    expect(frame.byteLength).toBe(encodeBatch([env]).byteLength - 'bank/account'.length - 'bank/audit'.length - 'weft.types/int'.length);
    const [back] = roundTrip([env]) as [Envelope];
    expect(back).toEqual(env);
    // The decoded names ARE the table's strings (interned: equality is a pointer compare).
    expect(back[1]).toBe(table.names[0]);
    expect(back[5]).toBe(table.names[2]);
  });

  it('writes names outside the table, ids and other records as strings', () => {
    const env = envelope('remote/fn', 'bank/account', null, null, 'com.example/Custom', Uint8Array.of(1));
    const other = [Kind.Egress, 'bank/account', 'weft.types/int', Uint8Array.of(2)];
    const frame = wireEncoder(table).encode([env, other]);
    // Byte for byte what the table-free encoder writes: nothing here is a named field in the table.
    expect(frame).toEqual(encodeBatch([env, other]));
    expect(roundTrip([env, other])).toEqual([env, other]);
  });

  it('round-trips any mix of known and unknown names', () => {
    const name = fc.oneof(fc.constantFrom(...table.names), fc.string({ maxLength: 20 }));
    fc.assert(
      fc.property(fc.array(fc.tuple(name, fc.string(), fc.option(name), name), { maxLength: 20 }), (rows) => {
        const envs = rows.map(([t, id, caller, typename]) => envelope(t, id, caller, caller === null ? null : 'c', typename, Uint8Array.of(1)));
        expect(roundTrip(envs)).toEqual(envs);
      }),
    );
  });

  it('sends a name outside a name-tagged record as its index when the table holds it (field), and resolve reads either back', () => {
    expect(table.field('weft.types/int')).toBe(2);
    expect(table.field('other/type')).toBe('other/type');
    for (const name of ['bank/account', 'weft.types/msgpack', 'not/in-table', '']) expect(table.resolve(table.field(name))).toBe(name);
  });

  it('refuses an index outside the table as a corrupt frame', () => {
    const rec = [Kind.Msg, 4, 'a', null, null, 0, Uint8Array.of(1), 0, 0];
    expectWeftError(() => resolveNames(rec, table), 'ERR_WEFT_CORRUPT_FRAME', /name index 4, outside the name table of 4 names/);
    expectWeftError(() => resolveNames([Kind.Msg, 'a', 'b', null, null, true, Uint8Array.of(1), 0, 0], table), 'ERR_WEFT_CORRUPT_FRAME');
  });

  it('refuses a table with repeated or non-string names, naming the entry', () => {
    expectWeftError(() => new NameTable(['a', 'b', 'a']), 'ERR_WEFT_INVALID_ARG', 'name table entry 2 repeats "a"');
    expectWeftError(() => new NameTable(['a', 5 as unknown as string]), 'ERR_WEFT_INVALID_ARG', /name table entry 1 is 5/);
  });

  it("an engine's table: its function types, then built-in and declared typenames, deterministic", () => {
    const custom = type.custom<string>('com.example/Text', { serialize: (s) => new TextEncoder().encode(s), deserialize: (b) => new TextDecoder().decode(b) });
    const def = defineModule({
      types: [custom],
      functions: {
        'z/last': { fn() {} },
        'a/first': { fn() {} },
      },
    });
    const names = wireNamesOf(compileModule(def));
    expect(names.slice(0, 2)).toEqual(['a/first', 'z/last']);
    expect(names).toContain('io.statefun.types/int');
    expect(names).toContain('weft.types/msgpack');
    expect(names).toContain('com.example/Text');
    expect(new Set(names).size).toBe(names.length);
    expect(wireNamesOf(compileModule(def))).toEqual(names);
  });

  it('a FrameEncoder without names writes every string', () => {
    const env = envelope('bank/account', 'alice', null, null, 'weft.types/int', Uint8Array.of(7));
    expect(new FrameEncoder().encode([env])).toEqual(encodeBatch([env]));
  });
});
