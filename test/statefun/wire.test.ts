/**
 * Protobuf wire primitives: property tests (encode -> decode identity, bytes equal to
 * google-protobuf's BinaryWriter, the reference implementation the StateFun JS SDK ships with)
 * and adversarial input (truncated or random bytes only ever throw ERR_WEFT_PROTOCOL, and stop).
 */
import { createRequire } from 'node:module';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { WeftError } from '../../src/core/errors.js';
import { expectWeftError } from '../helpers/index.js';
import {
  ProtoReader,
  ProtoWriter,
  WireType,
  decodeUtf8,
  makeTag,
  tagField,
  tagWireType,
  unzigzag32,
  unzigzag64,
  varint32Size,
  zigzag32,
  zigzag64,
} from '../../src/codec/protobuf.js';

interface JspbWriter {
  writeInt32(f: number, v: number): void;
  writeUint32(f: number, v: number): void;
  writeSint32(f: number, v: number): void;
  writeInt64String(f: number, v: string): void;
  writeUint64String(f: number, v: string): void;
  writeSint64String(f: number, v: string): void;
  writeFixed32(f: number, v: number): void;
  writeSfixed32(f: number, v: number): void;
  writeFixed64String(f: number, v: string): void;
  writeSfixed64String(f: number, v: string): void;
  writeDouble(f: number, v: number): void;
  writeBool(f: number, v: boolean): void;
  writeString(f: number, v: string): void;
  writeBytes(f: number, v: Uint8Array): void;
  getResultBuffer(): Uint8Array;
}
const jspb = createRequire(import.meta.url)('google-protobuf') as { BinaryWriter: new () => JspbWriter };

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

function reference(write: (w: JspbWriter) => void): string {
  const w = new jspb.BinaryWriter();
  write(w);
  return hex(w.getResultBuffer());
}

function mine(write: (w: ProtoWriter) => void): Uint8Array {
  const w = new ProtoWriter(16);
  write(w);
  return w.finish();
}

function expectProtocolError(fn: () => unknown, message?: string): void {
  expectWeftError(fn, 'ERR_WEFT_PROTOCOL', message);
}

const int64 = fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n });
const uint64 = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
const safeInt = fc.maxSafeInteger();
const uint32 = fc.integer({ min: 0, max: 2 ** 32 - 1 });
const int32 = fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 });

describe('zigzag', () => {
  it('maps small magnitudes to small codes', () => {
    expect([0, -1, 1, -2, 2].map(zigzag32)).toEqual([0, 1, 2, 3, 4]);
    expect(zigzag32(2 ** 31 - 1)).toBe(2 ** 32 - 2);
    expect(zigzag32(-(2 ** 31))).toBe(2 ** 32 - 1);
    expect(zigzag64(-1n)).toBe(1n);
    expect(zigzag64(-(2n ** 63n))).toBe(2n ** 64n - 1n);
  });

  it('inverts', () => {
    fc.assert(
      fc.property(int32, (n) => {
        expect(unzigzag32(zigzag32(n))).toBe(n);
      }),
    );
    fc.assert(
      fc.property(int64, (n) => {
        expect(unzigzag64(zigzag64(n))).toBe(n);
      }),
    );
  });
});

describe('ProtoWriter matches google-protobuf byte for byte', () => {
  it('32-bit varints', () => {
    fc.assert(
      fc.property(int32, uint32, (i, u) => {
        expect(hex(mine((w) => w.tag(1, WireType.VARINT).int32(i).tag(2, WireType.VARINT).uint32(u).tag(3, WireType.VARINT).sint32(i)))).toBe(
          reference((w) => {
            w.writeInt32(1, i);
            w.writeUint32(2, u);
            w.writeSint32(3, i);
          }),
        );
        expect(varint32Size(u)).toBe(mine((w) => w.uint32(u)).length);
      }),
    );
  });

  it('64-bit varints, as bigint and as safe numbers', () => {
    fc.assert(
      fc.property(int64, uint64, (i, u) => {
        expect(
          hex(mine((w) => w.tag(1, WireType.VARINT).int64Big(i).tag(2, WireType.VARINT).uint64Big(u).tag(3, WireType.VARINT).sint64Big(i))),
        ).toBe(
          reference((w) => {
            w.writeInt64String(1, i.toString());
            w.writeUint64String(2, u.toString());
            w.writeSint64String(3, i.toString());
          }),
        );
      }),
    );
    fc.assert(
      fc.property(safeInt, (n) => {
        expect(hex(mine((w) => w.int64(n)))).toBe(hex(mine((w) => w.int64Big(BigInt(n)))));
        expect(hex(mine((w) => w.sint64(n)))).toBe(hex(mine((w) => w.sint64Big(BigInt(n)))));
        if (n >= 0) expect(hex(mine((w) => w.uint64(n)))).toBe(hex(mine((w) => w.uint64Big(BigInt(n)))));
      }),
    );
  });

  it('fixed-width fields, floats and bools', () => {
    fc.assert(
      // NaN excluded: google-protobuf writes 0x7fff..., the writer V8's canonical NaN; both are NaN.
      fc.property(uint32, int32, uint64, int64, fc.double({ noNaN: true }), fc.boolean(), (u, i, ul, il, d, b) => {
        expect(
          hex(
            mine((w) =>
              w
                .tag(1, WireType.I32)
                .fixed32(u)
                .tag(2, WireType.I32)
                .sfixed32(i)
                .tag(3, WireType.I64)
                .fixed64Big(ul)
                .tag(4, WireType.I64)
                .sfixed64Big(il)
                .tag(5, WireType.I64)
                .double(d)
                .tag(6, WireType.VARINT)
                .bool(b),
            ),
          ),
        ).toBe(
          reference((w) => {
            w.writeFixed32(1, u);
            w.writeSfixed32(2, i);
            w.writeFixed64String(3, ul.toString());
            w.writeSfixed64String(4, il.toString());
            w.writeDouble(5, d);
            w.writeBool(6, b);
          }),
        );
      }),
    );
    fc.assert(
      fc.property(safeInt, (n) => {
        expect(hex(mine((w) => w.sfixed64(n)))).toBe(hex(mine((w) => w.sfixed64Big(BigInt(n)))));
        if (n >= 0) expect(hex(mine((w) => w.fixed64(n)))).toBe(hex(mine((w) => w.fixed64Big(BigInt(n)))));
      }),
    );
  });

  it('strings and bytes, across every length-prefix boundary', () => {
    const strings = fc.oneof(
      fc.string({ unit: 'grapheme', maxLength: 200 }),
      fc.string({ unit: 'grapheme-ascii', minLength: 40, maxLength: 20_000 }),
      fc.constantFrom('é'.repeat(42), 'é'.repeat(43), '€'.repeat(42), '€'.repeat(43), 'x'.repeat(63), 'x'.repeat(64), 'x'.repeat(127), 'x'.repeat(128), 'x'.repeat(10_000), 'x'.repeat(16_384), 'x'.repeat(50_000), '😀'.repeat(31), '😀'.repeat(32)),
    );
    fc.assert(
      fc.property(strings, fc.uint8Array({ maxLength: 300 }), (s, b) => {
        expect(hex(mine((w) => w.tag(1, WireType.LEN).string(s).tag(2, WireType.LEN).bytes(b)))).toBe(
          reference((w) => {
            w.writeString(1, s);
            w.writeBytes(2, b);
          }),
        );
      }),
      { numRuns: 500 },
    );
  });

  it('encodes lone surrogates as U+FFFD, like TextEncoder', () => {
    for (const s of ['\ud800', 'a\udc00b', 'x'.repeat(70) + '\ud800', '\ud83d']) {
      const bytes = mine((w) => w.string(s));
      const utf8 = new TextEncoder().encode(s);
      expect(hex(bytes)).toBe(hex(mine((w) => w.bytes(utf8))));
    }
  });
});

describe('ProtoWriter', () => {
  it('nests length-delimited sub-messages with fork/join', () => {
    const out = mine((w) =>
      w
        .tag(3, WireType.LEN)
        .fork()
        .tag(1, WireType.VARINT)
        .uint32(150)
        .join()
        .tag(4, WireType.LEN)
        .fork()
        .join(),
    );
    // The protobuf guide's example (field 3 holding { a: 150 }), then an empty sub-message.
    expect(hex(out)).toBe('1a03089601' + '2200');
    // A sub-message longer than 127 bytes needs a two-byte prefix: content shifts right.
    const big = new Uint8Array(200).fill(7);
    const nested = mine((w) => w.tag(1, WireType.LEN).fork().tag(2, WireType.LEN).fork().raw(big).join().join());
    const r = new ProtoReader(nested);
    expect(tagField(r.tag())).toBe(1);
    const sub = r.sub();
    expect(tagField(sub.tag())).toBe(2);
    expect(hex(sub.bytes())).toBe(hex(big));
    expect(sub.done && r.done).toBe(true);
  });

  it('builds the same bytes for random nested messages as writing the parts separately', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 8 }), (parts) => {
        const viaFork = mine((w) => {
          for (const p of parts) w.tag(1, WireType.LEN).fork().raw(p).join();
        });
        const direct = mine((w) => {
          for (const p of parts) w.tag(1, WireType.LEN).bytes(p);
        });
        expect(hex(viaFork)).toBe(hex(direct));
      }),
    );
  });

  it('hands out copies and reuses its buffer after reset', () => {
    const w = new ProtoWriter(16);
    const a = w.uint32(1).finish();
    w.reset().uint32(2);
    const b = w.finish();
    expect([...a]).toEqual([1]);
    expect([...b]).toEqual([2]);
    expect(a.buffer).not.toBe(b.buffer);
    expect(w.length).toBe(1);
  });

  it('finishes into memory from a caller-supplied allocator', () => {
    const pool = new Uint8Array(64);
    let used = 0;
    const alloc = (n: number): Uint8Array => {
      const view = pool.subarray(used, used + n);
      used += n;
      return view;
    };
    const w = new ProtoWriter();
    const a = w.uint32(300).finish(alloc);
    const b = w.reset().string('hi').finish(alloc);
    expect(hex(a)).toBe('ac02');
    expect(hex(b)).toBe('026869');
    expect(a.buffer).toBe(pool.buffer);
    expect(b.byteOffset).toBe(2);
  });

  it('grows from a tiny buffer', () => {
    const w = new ProtoWriter(1);
    for (let i = 0; i < 1000; i++) w.tag(1, WireType.LEN).fork().string('héllo').join();
    const r = new ProtoReader(w.finish());
    let n = 0;
    while (!r.done) {
      r.tag();
      expect(r.sub().string()).toBe('héllo');
      n++;
    }
    expect(n).toBe(1000);
  });

  it('refuses arguments it cannot encode exactly', () => {
    const w = new ProtoWriter();
    const cases: Array<[() => unknown, string]> = [
      [() => w.tag(0, WireType.VARINT), 'protobuf field number must be an integer in [1, 536870911] (got 0)'],
      [() => w.tag(2 ** 29, WireType.VARINT), 'protobuf field number must be an integer in [1, 536870911] (got 536870912)'],
      [() => w.uint64(-1), 'uint64 value must be a non-negative safe integer (got -1); use uint64Big'],
      [() => w.int64(2 ** 53), 'int64 value must be a safe integer (got 9007199254740992); use int64Big'],
      [() => w.sint64(0.5), 'sint64 value must be a safe integer (got 0.5); use sint64Big'],
      [() => w.fixed64(2 ** 60), `fixed64 value must be a non-negative safe integer (got ${2 ** 60}); use fixed64Big`],
      [() => w.uint64Big(-1n), 'uint64 value must be in [0, 2^64 - 1] (got -1)'],
      [() => w.int64Big(2n ** 63n), 'int64 value must be in [-2^63, 2^63 - 1] (got 9223372036854775808)'],
      [() => new ProtoWriter().join(), 'ProtoWriter.join() without a matching fork()'],
      [() => new ProtoWriter().fork().finish(), 'ProtoWriter.finish() with 1 unjoined fork()'],
    ];
    for (const [fn, message] of cases) {
      expect(fn).toThrow(message);
      try {
        fn();
      } catch (err) {
        expect((err as WeftError).code).toBe('ERR_WEFT_INVALID_ARG');
      }
    }
  });
});

type Field =
  | { kind: 'uint32'; v: number }
  | { kind: 'int32'; v: number }
  | { kind: 'sint32'; v: number }
  | { kind: 'int64'; v: bigint }
  | { kind: 'uint64'; v: bigint }
  | { kind: 'sint64'; v: bigint }
  | { kind: 'fixed32'; v: number }
  | { kind: 'sfixed32'; v: number }
  | { kind: 'fixed64'; v: bigint }
  | { kind: 'sfixed64'; v: bigint }
  | { kind: 'float'; v: number }
  | { kind: 'double'; v: number }
  | { kind: 'bool'; v: boolean }
  | { kind: 'string'; v: string }
  | { kind: 'bytes'; v: Uint8Array };

const field: fc.Arbitrary<Field> = fc.oneof(
  uint32.map((v) => ({ kind: 'uint32' as const, v })),
  int32.map((v) => ({ kind: 'int32' as const, v })),
  int32.map((v) => ({ kind: 'sint32' as const, v })),
  int64.map((v) => ({ kind: 'int64' as const, v })),
  uint64.map((v) => ({ kind: 'uint64' as const, v })),
  int64.map((v) => ({ kind: 'sint64' as const, v })),
  uint32.map((v) => ({ kind: 'fixed32' as const, v })),
  int32.map((v) => ({ kind: 'sfixed32' as const, v })),
  uint64.map((v) => ({ kind: 'fixed64' as const, v })),
  int64.map((v) => ({ kind: 'sfixed64' as const, v })),
  fc.float({ noNaN: true }).map((v) => ({ kind: 'float' as const, v })),
  fc.double({ noNaN: true }).map((v) => ({ kind: 'double' as const, v })),
  fc.boolean().map((v) => ({ kind: 'bool' as const, v })),
  fc.string({ unit: 'grapheme', maxLength: 100 }).map((v) => ({ kind: 'string' as const, v })),
  fc.uint8Array({ maxLength: 200 }).map((v) => ({ kind: 'bytes' as const, v })),
);

const WIRE: Record<Field['kind'], (typeof WireType)[keyof typeof WireType]> = {
  uint32: WireType.VARINT,
  int32: WireType.VARINT,
  sint32: WireType.VARINT,
  int64: WireType.VARINT,
  uint64: WireType.VARINT,
  sint64: WireType.VARINT,
  bool: WireType.VARINT,
  fixed32: WireType.I32,
  sfixed32: WireType.I32,
  float: WireType.I32,
  fixed64: WireType.I64,
  sfixed64: WireType.I64,
  double: WireType.I64,
  string: WireType.LEN,
  bytes: WireType.LEN,
};

function writeField(w: ProtoWriter, n: number, f: Field): void {
  w.tag(n, WIRE[f.kind]);
  switch (f.kind) {
    case 'uint32': w.uint32(f.v); break;
    case 'int32': w.int32(f.v); break;
    case 'sint32': w.sint32(f.v); break;
    case 'int64': w.int64Big(f.v); break;
    case 'uint64': w.uint64Big(f.v); break;
    case 'sint64': w.sint64Big(f.v); break;
    case 'fixed32': w.fixed32(f.v); break;
    case 'sfixed32': w.sfixed32(f.v); break;
    case 'fixed64': w.fixed64Big(f.v); break;
    case 'sfixed64': w.sfixed64Big(f.v); break;
    case 'float': w.float(f.v); break;
    case 'double': w.double(f.v); break;
    case 'bool': w.bool(f.v); break;
    case 'string': w.string(f.v); break;
    case 'bytes': w.bytes(f.v); break;
  }
}

function readField(r: ProtoReader, f: Field): unknown {
  switch (f.kind) {
    case 'uint32': return r.uint32();
    case 'int32': return r.int32();
    case 'sint32': return r.sint32();
    case 'int64': return r.int64Big();
    case 'uint64': return r.uint64Big();
    case 'sint64': return r.sint64Big();
    case 'fixed32': return r.fixed32();
    case 'sfixed32': return r.sfixed32();
    case 'fixed64': return r.fixed64Big();
    case 'sfixed64': return r.sfixed64Big();
    case 'float': return r.float();
    case 'double': return r.double();
    case 'bool': return r.bool();
    case 'string': return r.string();
    case 'bytes': return r.bytes();
  }
}

/** Reads every field of a message, skipping each (what a codec does with unknown fields). */
function skipAll(bytes: Uint8Array): number {
  const r = new ProtoReader(bytes);
  let n = 0;
  while (!r.done) {
    r.skip(r.tag());
    n++;
  }
  return n;
}

describe('ProtoReader', () => {
  it('reads back what the writer wrote (random messages)', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 1, max: 2 ** 29 - 1 }), field), { maxLength: 20 }), (fields) => {
        const bytes = mine((w) => {
          for (const [n, f] of fields) writeField(w, n, f);
        });
        const r = new ProtoReader(bytes);
        for (const [n, f] of fields) {
          const tag = r.tag();
          expect(tagField(tag)).toBe(n);
          expect(tagWireType(tag)).toBe(WIRE[f.kind]);
          const v = readField(r, f);
          if (f.kind === 'float') expect(v).toBe(Math.fround(f.v));
          else if (f.kind === 'bytes') expect(hex(v as Uint8Array)).toBe(hex(f.v));
          else expect(v).toEqual(f.v);
        }
        expect(r.done).toBe(true);
        expect(skipAll(bytes)).toBe(fields.length);
      }),
      { numRuns: 500 },
    );
  });

  it('reads 64-bit values as numbers when safe, and refuses to round otherwise', () => {
    fc.assert(
      fc.property(safeInt, (n) => {
        expect(new ProtoReader(mine((w) => w.int64(n))).int64()).toBe(n);
        expect(new ProtoReader(mine((w) => w.sint64(n))).sint64()).toBe(n);
        expect(new ProtoReader(mine((w) => w.sfixed64(n))).sfixed64()).toBe(n);
        if (n >= 0) {
          expect(new ProtoReader(mine((w) => w.uint64(n))).uint64()).toBe(n);
          expect(new ProtoReader(mine((w) => w.fixed64(n))).fixed64()).toBe(n);
        }
      }),
    );
    const unsafe = 'value 9007199254740992 at offset 0 is outside the safe integer range of a JS number; read it as a bigint';
    expectProtocolError(() => new ProtoReader(mine((w) => w.uint64Big(2n ** 53n))).uint64(), `uint64 ${unsafe}`);
    expectProtocolError(() => new ProtoReader(mine((w) => w.int64Big(2n ** 53n))).int64(), `int64 ${unsafe}`);
    expectProtocolError(() => new ProtoReader(mine((w) => w.sint64Big(2n ** 53n))).sint64(), `sint64 ${unsafe}`);
    expectProtocolError(
      () => new ProtoReader(mine((w) => w.sint64Big(-(2n ** 53n)))).sint64(),
      'sint64 value -9007199254740992 at offset 0 is outside the safe integer range of a JS number; read it as a bigint',
    );
    expectProtocolError(() => new ProtoReader(mine((w) => w.fixed64Big(2n ** 53n))).fixed64(), `fixed64 ${unsafe}`);
    expectProtocolError(() => new ProtoReader(mine((w) => w.sfixed64Big(2n ** 53n))).sfixed64(), `sfixed64 ${unsafe}`);
  });

  it('truncates a 64-bit varint to its low 32 bits for uint32/int32 (protobuf semantics)', () => {
    const bytes = mine((w) => w.int64Big(-2n));
    expect(bytes.length).toBe(10);
    expect(new ProtoReader(bytes).int32()).toBe(-2);
    expect(new ProtoReader(bytes).uint32()).toBe(2 ** 32 - 2);
  });

  it('returns bytes as a view of the input', () => {
    const bytes = mine((w) => w.bytes(Uint8Array.from([1, 2, 3])));
    const view = new ProtoReader(bytes).bytes();
    expect(view.buffer).toBe(bytes.buffer);
  });

  it('reads within its range only', () => {
    const bytes = Uint8Array.from([0xff, 0x08, 0x01, 0xff]);
    const r = new ProtoReader(bytes, 1, 3);
    expect(tagField(r.tag())).toBe(1);
    expect(r.uint32()).toBe(1);
    expect(r.done).toBe(true);
    expectProtocolError(() => r.uint32(), 'truncated protobuf input: varint at offset 3 runs past the end');
    expect(() => new ProtoReader(bytes, 2, 9)).toThrow('ProtoReader range [2, 9) is outside the input (4 bytes)');
  });

  it('skips groups, nested, and refuses unbalanced ones', () => {
    // field 5 start-group { field 1 varint 1; field 6 start-group { field 2 I32 } end 6 } end 5; field 7 varint
    const w = new ProtoWriter();
    w.tag(5, WireType.SGROUP).tag(1, WireType.VARINT).uint32(1).tag(6, WireType.SGROUP).tag(2, WireType.I32).fixed32(9);
    w.tag(6, WireType.EGROUP).tag(5, WireType.EGROUP).tag(7, WireType.VARINT).uint32(3);
    const r = new ProtoReader(w.finish());
    r.skip(r.tag());
    expect(tagField(r.tag())).toBe(7);
    expect(r.uint32()).toBe(3);

    const bad = mine((x) => x.tag(5, WireType.SGROUP).tag(6, WireType.EGROUP));
    expectProtocolError(() => skipAll(bad), 'unexpected protobuf end-group for field 6 before offset 2');
    expectProtocolError(() => skipAll(mine((x) => x.tag(5, WireType.EGROUP))), 'unexpected protobuf end-group for field 5 before offset 1');
    const deep = mine((x) => {
      for (let i = 0; i < 65; i++) x.tag(1, WireType.SGROUP);
    });
    expectProtocolError(() => skipAll(deep), 'protobuf groups nested deeper than 64 at offset 65');
  });

  it('refuses malformed keys and varints with exact messages', () => {
    expectProtocolError(() => new ProtoReader(Uint8Array.from([0x0e])).tag(), 'invalid protobuf wire type 6 at offset 0');
    expectProtocolError(() => new ProtoReader(Uint8Array.from([0x07])).tag(), 'invalid protobuf wire type 7 at offset 0');
    expectProtocolError(() => new ProtoReader(Uint8Array.from([0x00])).tag(), 'invalid protobuf field number 0 at offset 0');
    expectProtocolError(
      () => new ProtoReader(new Uint8Array(11).fill(0x80)).uint64Big(),
      'malformed protobuf varint at offset 0: longer than 10 bytes',
    );
    expectProtocolError(
      () => new ProtoReader(new Uint8Array(11).fill(0x80)).uint32(),
      'malformed protobuf varint at offset 0: longer than 10 bytes',
    );
    expectProtocolError(
      () => new ProtoReader(Uint8Array.from([0x0a, 0x05, 0x61])).skip(new ProtoReader(Uint8Array.from([0x0a])).tag()),
    );
    const r = new ProtoReader(Uint8Array.from([0x0a, 0x05, 0x61]));
    r.tag();
    expectProtocolError(() => r.string(), 'truncated protobuf input: string at offset 1 declares 5 bytes, 1 left');
    expectProtocolError(() => new ProtoReader(Uint8Array.from([1, 2, 3])).double(), 'truncated protobuf input: double at offset 0 needs 8 bytes, 3 left');
    expectProtocolError(() => new ProtoReader(Uint8Array.from([1, 2, 3])).fixed32(), 'truncated protobuf input: fixed32 at offset 0 needs 4 bytes, 3 left');
  });

  it('decodes UTF-8 strictly', () => {
    expect(decodeUtf8(Uint8Array.from([0xef, 0xbb, 0xbf, 0x61]), 0, 4)).toBe('\ufeffa');
    expectProtocolError(() => decodeUtf8(Uint8Array.from([0x61, 0xc3]), 0, 2), 'malformed UTF-8 in protobuf string at offset 0');
    expectProtocolError(() => decodeUtf8(Uint8Array.from([0xed, 0xa0, 0x80]), 0, 3));
  });
});

describe('adversarial input', () => {
  const message = fc.array(fc.tuple(fc.integer({ min: 1, max: 2 ** 29 - 1 }), field), { minLength: 1, maxLength: 10 }).map((fields) =>
    mine((w) => {
      for (const [n, f] of fields) writeField(w, n, f);
    }),
  );

  it('every truncation of a valid message throws ERR_WEFT_PROTOCOL or stops at a field boundary', () => {
    fc.assert(
      fc.property(message, (bytes) => {
        const fieldEnds = new Set<number>([0]);
        const r = new ProtoReader(bytes);
        while (!r.done) {
          r.skip(r.tag());
          fieldEnds.add(r.pos);
        }
        for (let cut = 0; cut < bytes.length; cut++) {
          const prefix = bytes.subarray(0, cut);
          if (fieldEnds.has(cut)) {
            expect(() => skipAll(prefix)).not.toThrow();
          } else {
            expectProtocolError(() => skipAll(prefix));
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  it('random bytes only ever throw ERR_WEFT_PROTOCOL, and every read stays in bounds', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.nat({ max: 16 }), (bytes, pad) => {
        // Parse a window in the middle of a larger buffer: nothing may read the padding.
        const buf = new Uint8Array(bytes.length + 2 * pad).fill(0x80);
        buf.set(bytes, pad);
        const r = new ProtoReader(buf, pad, pad + bytes.length);
        try {
          while (!r.done) {
            const tag = r.tag();
            if (tagWireType(tag) === WireType.LEN && tagField(tag) % 2 === 0) {
              // Also exercise the typed reads on whatever is there.
              r.sub();
            } else {
              r.skip(tag);
            }
            expect(r.pos).toBeLessThanOrEqual(pad + bytes.length);
          }
        } catch (err) {
          expect((err as WeftError).code).toBe('ERR_WEFT_PROTOCOL');
        }
      }),
      { numRuns: 5_000 },
    );
  });

  it('a huge declared length cannot make a read go past the end', () => {
    const bytes = mine((w) => w.tag(1, WireType.LEN).uint64(2 ** 40));
    const r = new ProtoReader(bytes);
    r.tag();
    expectProtocolError(() => r.bytes(), 'truncated protobuf input: length-delimited field at offset 1 declares 1099511627776 bytes, 0 left');
  });

  it('keys and tags agree', () => {
    expect(makeTag(1, WireType.LEN)).toBe(0x0a);
    expect(makeTag(2 ** 29 - 1, WireType.I32)).toBe(0xfffffffd);
    expect(tagField(0xfffffffd)).toBe(2 ** 29 - 1);
    expect(tagWireType(0xfffffffd)).toBe(5);
  });
});
