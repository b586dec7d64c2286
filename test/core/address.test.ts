/**
 * Addresses, typenames, ids, state names and the key-group hash. Validation messages are asserted
 * exactly: they are part of the contract (they name the bad value).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DEAD_LETTERS_EGRESS,
  LIMITS,
  addressKey,
  hash32,
  hashAddress,
  isValidTypename,
  keyGroupOf,
  parseAddressKey,
  splitTypename,
  validateAddress,
  validateId,
  validateStateName,
  validateTypename,
} from '../../src/core/address.js';
import { expectWeftError } from '../helpers/index.js';


const RULE = 'must be "<namespace>/<name>" using letters, digits, "_", "-" and "."';

describe('LIMITS', () => {
  it('is frozen with the documented values', () => {
    expect(Object.isFrozen(LIMITS)).toBe(true);
    expect(LIMITS).toEqual({
      maxTypenameBytes: 256,
      maxIdBytes: 1024,
      maxStateNameLength: 128,
      maxValueBytes: 256 * 1024 * 1024,
      maxValueDepth: 512,
    });
    expect(DEAD_LETTERS_EGRESS).toBe('weft/dead-letters');
  });
});

describe('validateTypename', () => {
  it('accepts <namespace>/<name> with dots, dashes, underscores and digits', () => {
    for (const t of ['bank/account', 'io.statefun.types/int', 'a/b', 'my-ns_2/fn.v2', 'A1/B2', 'x'.repeat(127) + '/' + 'y'.repeat(128)]) {
      expect(() => validateTypename(t)).not.toThrow();
      expect(isValidTypename(t)).toBe(true);
    }
  });

  it('refuses anything else, naming the value', () => {
    const cases: Array<[unknown, string]> = [
      ['bank', '"bank"'],
      ['/account', '"/account"'],
      ['bank/', '"bank/"'],
      ['a/b/c', '"a/b/c"'],
      ['bank account/x', '"bank account/x"'],
      ['bänk/x', '"bänk/x"'],
      ['a/b\0', '"a/b\\u0000"'],
      ['', '""'],
      [5, '5'],
      [undefined, 'undefined'],
    ];
    for (const [value, shown] of cases) {
      expectWeftError(() => validateTypename(value, 'function typename'), 'ERR_WEFT_INVALID_TYPENAME', `function typename ${RULE} (got ${shown})`);
      expect(isValidTypename(value)).toBe(false);
    }
    expectWeftError(() => validateTypename('nope'), 'ERR_WEFT_INVALID_TYPENAME', `typename ${RULE} (got "nope")`);
  });

  it('refuses typenames over LIMITS.maxTypenameBytes with ERR_WEFT_TOO_LARGE', () => {
    const long = 'a/' + 'b'.repeat(255);
    expectWeftError(
      () => validateTypename(long, 'egresses[0]'),
      'ERR_WEFT_TOO_LARGE',
      `egresses[0] must be at most 256 bytes (got 257: "a/${'b'.repeat(75)}...")`,
    );
    expect(isValidTypename(long)).toBe(false);
  });

  it('splits at the slash', () => {
    expect(splitTypename('io.statefun.types/int')).toEqual({ namespace: 'io.statefun.types', name: 'int' });
  });
});

describe('validateId', () => {
  it('accepts any non-empty well-formed string up to 1024 UTF-8 bytes', () => {
    for (const id of ['a', 'user 42', 'é😀', '\0', 'tab\tand\nnewline', 'x'.repeat(1024), 'é'.repeat(512), '😀'.repeat(256)]) {
      expect(() => validateId(id)).not.toThrow();
    }
  });

  it('refuses empty, non-string, too long and lone-surrogate ids', () => {
    expectWeftError(() => validateId(''), 'ERR_WEFT_INVALID_ADDRESS', 'id must be a non-empty string (got "")');
    expectWeftError(() => validateId(42, 'address.id'), 'ERR_WEFT_INVALID_ADDRESS', 'address.id must be a non-empty string (got 42)');
    expectWeftError(
      () => validateId('x'.repeat(1025)),
      'ERR_WEFT_TOO_LARGE',
      `id must be at most 1024 bytes of UTF-8 (got 1025: "${'x'.repeat(77)}...")`,
    );
    // 513 two-byte characters: 513 UTF-16 units but 1026 bytes.
    expectWeftError(
      () => validateId('é'.repeat(513)),
      'ERR_WEFT_TOO_LARGE',
      `id must be at most 1024 bytes of UTF-8 (got 1026: "${'é'.repeat(77)}...")`,
    );
    expectWeftError(() => validateId('a\udc00'), 'ERR_WEFT_INVALID_ADDRESS', 'id must not contain lone surrogates (got "a\\udc00")');
  });

  it('refuses U+0000-U+0004 in ids of 64 or more characters (the key encoding would cut them short), allows them in shorter ones', () => {
    for (const c of ['\u0000', '\u0001', '\u0004']) {
      expect(() => validateId('y'.repeat(62) + c)).not.toThrow();
      expectWeftError(() => validateId('y'.repeat(63) + c), 'ERR_WEFT_INVALID_ADDRESS', /^id of 64 or more characters must not contain U\+0000-U\+0004 \(got "y{63}/);
    }
    expect(() => validateId('y'.repeat(70) + '\u0005')).not.toThrow();
  });
});

describe('validateAddress', () => {
  it('accepts { type, id } (and ignores extra properties)', () => {
    expect(() => validateAddress({ type: 'bank/account', id: 'alice' })).not.toThrow();
    expect(() => validateAddress({ type: 'bank/account', id: 'alice', namespace: 'bank' })).not.toThrow();
  });

  it('names what is wrong and where', () => {
    expectWeftError(() => validateAddress('bank/account'), 'ERR_WEFT_INVALID_ADDRESS', 'address must be an object { type, id } (got "bank/account")');
    expectWeftError(() => validateAddress(null, 'ctx.send address'), 'ERR_WEFT_INVALID_ADDRESS', 'ctx.send address must be an object { type, id } (got null)');
    expectWeftError(
      () => validateAddress({ type: 'account', id: 'a' }, 'ctx.send address'),
      'ERR_WEFT_INVALID_ADDRESS',
      `ctx.send address.type ${RULE} (got "account")`,
    );
    expectWeftError(() => validateAddress({ id: 'a' }), 'ERR_WEFT_INVALID_ADDRESS', `address.type ${RULE} (got undefined)`);
    expectWeftError(() => validateAddress({ type: 'a/b', id: 7 }), 'ERR_WEFT_INVALID_ADDRESS', 'address.id must be a non-empty string (got 7)');
    expectWeftError(() => validateAddress({ type: 'a/b', id: '' }), 'ERR_WEFT_INVALID_ADDRESS', 'address.id must be a non-empty string (got "")');
    expectWeftError(
      () => validateAddress({ type: 'a/' + 'b'.repeat(300), id: 'x' }),
      'ERR_WEFT_TOO_LARGE',
      `address.type must be at most 256 bytes (got 302: "a/${'b'.repeat(75)}...")`,
    );
  });
});

describe('validateStateName', () => {
  it('accepts identifiers', () => {
    for (const n of ['balance', '_x', 'A1_b', 'x'.repeat(128)]) expect(() => validateStateName(n, 'bank/account')).not.toThrow();
  });

  it('refuses others with ERR_WEFT_UNKNOWN_STATE', () => {
    expectWeftError(
      () => validateStateName('1x', 'bank/account'),
      'ERR_WEFT_UNKNOWN_STATE',
      'state name "1x" of function "bank/account" must match /^[A-Za-z_][A-Za-z0-9_]*$/',
    );
    for (const bad of ['', 'a-b', 'a b', 'é']) {
      expectWeftError(
        () => validateStateName(bad, 'a/b'),
        'ERR_WEFT_UNKNOWN_STATE',
        `state name ${JSON.stringify(bad)} of function "a/b" must match /^[A-Za-z_][A-Za-z0-9_]*$/`,
      );
    }
    expectWeftError(
      () => validateStateName('x'.repeat(129), 'a/b'),
      'ERR_WEFT_UNKNOWN_STATE',
      `state name "${'x'.repeat(77)}..." of function "a/b" must be at most 128 characters (got 129)`,
    );
  });
});

describe('addressKey', () => {
  it('round-trips, also for ids containing the separator', () => {
    fc.assert(
      fc.property(fc.constantFrom('bank/account', 'a/b', 'io.x/y-z'), fc.string({ minLength: 1 }), (type, id) => {
        expect(parseAddressKey(addressKey(type, id))).toEqual({ type, id });
      }),
    );
    expect(addressKey('a/b', 'c')).toBe('a/b\0c');
    expect(parseAddressKey('a/b\0\0c')).toEqual({ type: 'a/b', id: '\0c' });
    expectWeftError(() => parseAddressKey('a/b'), 'ERR_WEFT_INVALID_ADDRESS', 'address key "a/b" has no "\\0" separator');
  });
});

describe('hash32 / keyGroupOf', () => {
  it('is frozen: these vectors decide where stored state lives', () => {
    expect(hash32('')).toBe(3954623016);
    expect(hash32('a')).toBe(2141232806);
    expect(hash32('ab')).toBe(1395310093);
    expect(hash32('abc')).toBe(1515432033);
    expect(hash32('hello world')).toBe(2567962440);
    expect(hash32('bank/account\0alice')).toBe(3833075667);
    expect(hash32('é😀')).toBe(1603020659);
    expect(keyGroupOf('bank/account', 'alice', 128)).toBe(3833075667 % 128);
  });

  it('hashAddress(type, id) equals hash32(type + "\\0" + id) for odd, even and empty parts', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 20 }), fc.string({ maxLength: 20 }), (type, id) => {
        expect(hashAddress(type, id)).toBe(hash32(`${type}\0${id}`));
      }),
      { numRuns: 2_000 },
    );
    for (const [t, i] of [['', ''], ['a', ''], ['ab', ''], ['', 'x'], ['a', 'x'], ['ab', 'xy'], ['abc', 'xyz']]) {
      expect(hashAddress(t!, i!)).toBe(hash32(`${t}\0${i}`));
    }
  });

  it('returns unsigned 32-bit integers and key groups in range', () => {
    fc.assert(
      fc.property(fc.string(), fc.string({ minLength: 1 }), fc.integer({ min: 1, max: 65_536 }), (type, id, groups) => {
        const h = hashAddress(type, id);
        expect(Number.isInteger(h) && h >= 0 && h < 2 ** 32).toBe(true);
        const g = keyGroupOf(type, id, groups);
        expect(g >= 0 && g < groups).toBe(true);
      }),
    );
  });

  it('spreads 100k ids evenly over 128 key groups (chi-square, deterministic data)', () => {
    // 127 degrees of freedom: mean 127, standard deviation ~16. 200 is ~4.6 sd: a failure here
    // means the hash is biased, not that the test was unlucky (the data is fixed).
    const families: Array<[string, (i: number) => string]> = [
      ['user-N', (i) => `user-${i}`],
      ['N', (i) => String(i)],
      ['hex', (i) => ((i * 2654435761) >>> 0).toString(16).padStart(8, '0')],
      ['long prefix', (i) => `tenant-0001/orders/2024-01-01/${i}`],
    ];
    const groups = 128;
    const n = 100_000;
    for (const [name, id] of families) {
      const counts = new Array<number>(groups).fill(0);
      for (let i = 0; i < n; i++) counts[keyGroupOf('bank/account', id(i), groups)]!++;
      const expected = n / groups;
      const chi = counts.reduce((acc, c) => acc + (c - expected) ** 2 / expected, 0);
      expect(chi, `${name}: chi-square ${chi.toFixed(1)}`).toBeLessThan(200);
      expect(Math.min(...counts), name).toBeGreaterThan(expected * 0.85);
      expect(Math.max(...counts), name).toBeLessThan(expected * 1.15);
    }
  });

  it('separates the same id under different types', () => {
    let same = 0;
    for (let i = 0; i < 10_000; i++) if (keyGroupOf('a/x', String(i), 128) === keyGroupOf('a/y', String(i), 128)) same++;
    // Independent placement would collide in 1/128 of the cases (~78).
    expect(same).toBeLessThan(150);
  });
});
