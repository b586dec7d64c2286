/**
 * defineModule: the normalized, frozen definition the engine reads, and every validation error
 * with its exact message (messages name the offending value).
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { MODULE_DEFINITION, defineModule, isModuleDefinition, type ModuleDefinition } from '../../src/module/definition.js';
import { BUILTIN_TYPES, type } from '../../src/codec/types.js';
import { expectWeftError } from '../helpers/index.js';


/** defineModule without its compile-time checks, for feeding it what JS users might. */
const define = (def: unknown): ModuleDefinition => defineModule(def as never);

const noop = (): void => {};
const RULE = 'must be "<namespace>/<name>" using letters, digits, "_", "-" and "."';

describe('defineModule result', () => {
  const fn = (): void => {};
  const Money = type.custom<bigint>('bank.types/money', {
    serialize: (v) => new TextEncoder().encode(String(v)),
    deserialize: (b) => BigInt(new TextDecoder().decode(b)),
  });
  const def = defineModule({
    functions: {
      'bank/account': {
        state: {
          balance: type.int(),
          history: { type: type.json<number[]>(), expireAfterWrite: 86_400_000 },
          session: { type: type.string(), expireAfterCall: 60_000 },
          limit: Money,
        },
        fn,
      },
      'bank/stateless': { fn: noop },
    },
    egresses: ['bank/audit', 'bank/alerts'],
    compute: new URL('./tasks.js', import.meta.url),
    types: [type.json('bank.types/transfer')],
  });

  it('keeps functions in declaration order with normalized state specs', () => {
    expect(def.functions).toBeInstanceOf(Map);
    expect([...def.functions.keys()]).toEqual(['bank/account', 'bank/stateless']);
    const account = def.functionSpec('bank/account');
    expect(account?.typename).toBe('bank/account');
    expect(account?.fn).toBe(fn);
    expect(account?.specs).toEqual([
      { name: 'balance', type: type.int() },
      { name: 'history', type: type.json(), expireAfterWrite: 86_400_000 },
      { name: 'session', type: type.string(), expireAfterCall: 60_000 },
      { name: 'limit', type: Money },
    ]);
    // Absent TTLs are absent, not `undefined` (exactOptionalPropertyTypes readers rely on it).
    expect(Object.keys(account!.specs[0]!)).toEqual(['name', 'type']);
    expect(account?.stateSpec('history')?.expireAfterWrite).toBe(86_400_000);
    expect(account?.stateSpec('nope')).toBeUndefined();
    expect(def.functionSpec('bank/stateless')?.specs).toEqual([]);
    expect(def.functionSpec('bank/none')).toBeUndefined();
  });

  it('always has the dead-letters egress', () => {
    expect([...def.egresses]).toEqual(['bank/audit', 'bank/alerts', 'weft/dead-letters']);
    expect(def.hasEgress('bank/audit')).toBe(true);
    expect(def.hasEgress('weft/dead-letters')).toBe(true);
    expect(def.hasEgress('bank/other')).toBe(false);
    expect(defineModule({ functions: {} }).hasEgress('weft/dead-letters')).toBe(true);
  });

  it('normalizes compute to a file: URL', () => {
    expect(def.compute?.href).toBe(new URL('./tasks.js', import.meta.url).href);
    expect(defineModule({ functions: {}, compute: 'file:///srv/tasks.js' }).compute?.href).toBe('file:///srv/tasks.js');
    expect(defineModule({ functions: {}, compute: './tasks.js' }).compute?.href).toBe(pathToFileURL(resolve('./tasks.js')).href);
    expect(defineModule({ functions: {} }).compute).toBeUndefined();
    // A copy: mutating the caller's URL later changes nothing.
    const url = new URL('file:///a.js');
    const d = defineModule({ functions: {}, compute: url });
    url.pathname = '/b.js';
    expect(d.compute?.href).toBe('file:///a.js');
  });

  it('finds types by typename: declared first, then built-ins', () => {
    expect(def.typeByName('io.statefun.types/int')).toBe(type.int());
    expect(def.typeByName('bank.types/money')).toBe(Money);
    expect(def.typeByName('bank.types/transfer')).toBe(type.json('bank.types/transfer'));
    expect(def.typeByName('weft.types/msgpack')).toBe(type.msgpack());
    expect(def.typeByName('io.statefun.types/raw')).toBe(type.bytes());
    expect(def.typeByName('other/thing')).toBeUndefined();
    expect([...def.types.keys()].sort()).toEqual(
      ['bank.types/money', 'bank.types/transfer', 'io.statefun.types/int', 'io.statefun.types/string', 'weft.types/json'].sort(),
    );
    for (const [name, t] of BUILTIN_TYPES) expect(defineModule({ functions: {} }).typeByName(name)).toBe(t);
  });

  it('lets a declared type take over a built-in typename (bigint longs decode as bigint)', () => {
    const d = defineModule({ functions: { 'a/b': { state: { n: type.long({ as: 'bigint' }) }, fn: noop } } });
    expect(d.typeByName('io.statefun.types/long')).toBe(type.long({ as: 'bigint' }));
  });

  it('is frozen, including its collections', () => {
    expect(Object.isFrozen(def)).toBe(true);
    expect(Object.isFrozen(def.functionSpec('bank/account'))).toBe(true);
    expect(Object.isFrozen(def.functionSpec('bank/account')?.specs)).toBe(true);
    expect(Object.isFrozen(def.functionSpec('bank/account')?.specs[1])).toBe(true);
    const functions = def.functions as Map<string, unknown>;
    expectWeftError(() => functions.set('x/y', {}), 'ERR_WEFT_INVALID_ARG', 'functions of a module definition is read-only');
    expectWeftError(() => functions.delete('bank/account'), 'ERR_WEFT_INVALID_ARG', 'functions of a module definition is read-only');
    expectWeftError(() => (def.egresses as Set<string>).add('x/y'), 'ERR_WEFT_INVALID_ARG', 'egresses of a module definition is read-only');
    expectWeftError(() => (def.egresses as Set<string>).clear(), 'ERR_WEFT_INVALID_ARG', 'egresses of a module definition is read-only');
    expectWeftError(() => (def.types as Map<string, unknown>).clear(), 'ERR_WEFT_INVALID_ARG', 'types of a module definition is read-only');
    expect(def.functions.size).toBe(2);
  });

  it('is recognizable across copies of weft', () => {
    expect(isModuleDefinition(def)).toBe(true);
    expect(MODULE_DEFINITION).toBe(Symbol.for('weft.ModuleDefinition'));
    expect(isModuleDefinition({ functions: new Map() })).toBe(false);
    expect(isModuleDefinition(null)).toBe(false);
  });
});

describe('defineModule validation', () => {
  it('refuses a non-object and unknown keys (typos)', () => {
    expectWeftError(() => define(5), 'ERR_WEFT_INVALID_MODULE', 'defineModule() expects an object { functions, egresses?, compute?, types? } (got 5)');
    expectWeftError(() => define([]), 'ERR_WEFT_INVALID_MODULE', 'defineModule() expects an object { functions, egresses?, compute?, types? } (got array(0))');
    expectWeftError(
      () => define({ functions: {}, egress: ['bank/audit'] }),
      'ERR_WEFT_INVALID_MODULE',
      'defineModule() argument has unknown key "egress" (expected functions, egresses, compute, types)',
    );
    expectWeftError(
      () => define({ functions: {}, funtions: {} }),
      'ERR_WEFT_INVALID_MODULE',
      'defineModule() argument has unknown key "funtions" (expected functions, egresses, compute, types)',
    );
    expectWeftError(() => define({}), 'ERR_WEFT_INVALID_MODULE', 'defineModule() functions must be an object keyed by function typename (got undefined)');
    expectWeftError(
      () => define({ functions: [] }),
      'ERR_WEFT_INVALID_MODULE',
      'defineModule() functions must be an object keyed by function typename (got array(0))',
    );
  });

  it('checks function typenames', () => {
    expectWeftError(() => define({ functions: { account: { fn: noop } } }), 'ERR_WEFT_INVALID_TYPENAME', `function typename ${RULE} (got "account")`);
    expectWeftError(() => define({ functions: { 'a/b/c': { fn: noop } } }), 'ERR_WEFT_INVALID_TYPENAME', `function typename ${RULE} (got "a/b/c")`);
    expectWeftError(
      () => define({ functions: { 'weft/internal': { fn: noop } } }),
      'ERR_WEFT_INVALID_TYPENAME',
      'function typename "weft/internal" uses the reserved namespace "weft"',
    );
    expectWeftError(
      () => define({ functions: { [`a/${'b'.repeat(300)}`]: { fn: noop } } }),
      'ERR_WEFT_TOO_LARGE',
      `function typename must be at most 256 bytes (got 302: "a/${'b'.repeat(75)}...")`,
    );
  });

  it('checks function declarations', () => {
    expectWeftError(
      () => define({ functions: { 'bank/account': null } }),
      'ERR_WEFT_INVALID_MODULE',
      'function "bank/account" must be an object { state?, fn } (got null)',
    );
    expectWeftError(
      () => define({ functions: { 'bank/account': noop } }),
      'ERR_WEFT_INVALID_MODULE',
      'function "bank/account" must be an object { state?, fn } (got [function noop])',
    );
    expectWeftError(
      () => define({ functions: { 'bank/account': { states: {}, fn: noop } } }),
      'ERR_WEFT_INVALID_MODULE',
      'function "bank/account" has unknown key "states" (expected state, fn)',
    );
    expectWeftError(
      () => define({ functions: { 'bank/account': { state: {} } } }),
      'ERR_WEFT_INVALID_MODULE',
      'function "bank/account": fn must be a function (got undefined)',
    );
    expectWeftError(
      () => define({ functions: { 'bank/account': { fn: 'handler' } } }),
      'ERR_WEFT_INVALID_MODULE',
      'function "bank/account": fn must be a function (got "handler")',
    );
    expectWeftError(
      () => define({ functions: { 'bank/account': { state: [type.int()], fn: noop } } }),
      'ERR_WEFT_INVALID_MODULE',
      'function "bank/account": state must be an object of state declarations by name (got array(1))',
    );
  });

  it('checks state names and specs', () => {
    expectWeftError(
      () => define({ functions: { 'bank/account': { state: { '1x': type.int() }, fn: noop } } }),
      'ERR_WEFT_UNKNOWN_STATE',
      'state name "1x" of function "bank/account" must match /^[A-Za-z_][A-Za-z0-9_]*$/',
    );
    expectWeftError(
      () => define({ functions: { 'bank/account': { state: { balance: 5 }, fn: noop } } }),
      'ERR_WEFT_INVALID_MODULE',
      'state "balance" of function "bank/account" must be a value type (type.int(), type.json(), ...) or { type, expireAfterWrite?, expireAfterCall? } (got 5)',
    );
    expectWeftError(
      () => define({ functions: { 'bank/account': { state: { balance: type.int }, fn: noop } } }),
      'ERR_WEFT_INVALID_MODULE',
      'state "balance" of function "bank/account" must be a value type (type.int(), type.json(), ...) or { type, expireAfterWrite?, expireAfterCall? } (got [function int])',
    );
    expectWeftError(
      () => define({ functions: { 'bank/account': { state: { history: { type: type.json(), ttl: 5 } }, fn: noop } } }),
      'ERR_WEFT_INVALID_MODULE',
      'state "history" of function "bank/account" has unknown key "ttl" (expected type, expireAfterWrite, expireAfterCall)',
    );
    expectWeftError(
      () => define({ functions: { 'bank/account': { state: { history: { expireAfterWrite: 5 } }, fn: noop } } }),
      'ERR_WEFT_INVALID_MODULE',
      'state "history" of function "bank/account" must be a value type (type.int(), type.json(), ...) or { type, expireAfterWrite?, expireAfterCall? } (got {"expireAfterWrite":5})',
    );
  });

  it('checks TTLs: positive integer milliseconds, at most one kind', () => {
    for (const [bad, shown] of [
      [0, '0'],
      [-1, '-1'],
      [1.5, '1.5'],
      [Infinity, 'Infinity'],
      [NaN, 'NaN'],
      ['1000', '"1000"'],
      [2 ** 53, '9007199254740992'],
    ] as const) {
      expectWeftError(
        () => define({ functions: { 'bank/account': { state: { history: { type: type.json(), expireAfterWrite: bad } }, fn: noop } } }),
        'ERR_WEFT_INVALID_MODULE',
        `state "history" of function "bank/account": expireAfterWrite must be a positive integer number of milliseconds (got ${shown})`,
      );
    }
    expectWeftError(
      () => define({ functions: { 'bank/account': { state: { s: { type: type.int(), expireAfterCall: -5 } }, fn: noop } } }),
      'ERR_WEFT_INVALID_MODULE',
      'state "s" of function "bank/account": expireAfterCall must be a positive integer number of milliseconds (got -5)',
    );
    expectWeftError(
      () => define({ functions: { 'bank/account': { state: { history: { type: type.json(), expireAfterWrite: 1, expireAfterCall: 1 } }, fn: noop } } }),
      'ERR_WEFT_INVALID_MODULE',
      'state "history" of function "bank/account" may set expireAfterWrite or expireAfterCall, not both',
    );
    // An explicit undefined is the same as absent.
    const d = define({ functions: { 'a/b': { state: { s: { type: type.int(), expireAfterWrite: undefined } }, fn: noop } } });
    expect(d.functionSpec('a/b')?.specs[0]).toEqual({ name: 's', type: type.int() });
  });

  it('checks egresses', () => {
    expectWeftError(
      () => define({ functions: {}, egresses: 'bank/audit' }),
      'ERR_WEFT_INVALID_MODULE',
      'defineModule() egresses must be an array of egress names (got "bank/audit")',
    );
    expectWeftError(() => define({ functions: {}, egresses: ['bank/audit', 'audit'] }), 'ERR_WEFT_INVALID_TYPENAME', `egresses[1] ${RULE} (got "audit")`);
    expectWeftError(
      () => define({ functions: {}, egresses: ['bank/audit', 'bank/audit'] }),
      'ERR_WEFT_INVALID_MODULE',
      'egress "bank/audit" is declared twice (egresses[1])',
    );
    expectWeftError(
      () => define({ functions: {}, egresses: ['weft/dead-letters'] }),
      'ERR_WEFT_INVALID_TYPENAME',
      'egresses[0] "weft/dead-letters" uses the reserved namespace "weft"',
    );
  });

  it('checks compute', () => {
    const rule = 'defineModule() compute must be a file: URL or a non-empty path string';
    expectWeftError(() => define({ functions: {}, compute: 5 }), 'ERR_WEFT_INVALID_MODULE', `${rule} (got 5)`);
    expectWeftError(() => define({ functions: {}, compute: '' }), 'ERR_WEFT_INVALID_MODULE', `${rule} (got "")`);
    expectWeftError(() => define({ functions: {}, compute: 'http://example.com/t.js' }), 'ERR_WEFT_INVALID_MODULE', `${rule} (got "http://example.com/t.js")`);
    expectWeftError(
      () => define({ functions: {}, compute: new URL('https://example.com/t.js') }),
      'ERR_WEFT_INVALID_MODULE',
      `${rule} (got "https://example.com/t.js")`,
    );
  });

  it('checks extra types and typename conflicts', () => {
    expectWeftError(
      () => define({ functions: {}, types: type.int() }),
      'ERR_WEFT_INVALID_MODULE',
      'defineModule() types must be an array of value types (got {"typename":"io.statefun.types/int","kind":"int","immutable":true})',
    );
    expectWeftError(
      () => define({ functions: {}, types: [type.int(), { typename: 'a/b' }] }),
      'ERR_WEFT_INVALID_MODULE',
      'defineModule() types[1] must be a value type created by type.*() (got {"typename":"a/b"})',
    );
    expectWeftError(
      () =>
        define({
          functions: { 'f/g': { state: { a: type.json('app/x'), b: type.msgpack('app/x') }, fn: noop } },
        }),
      'ERR_WEFT_INVALID_MODULE',
      'value types conflict: typename "app/x" is used by two different types (state "a" of function "f/g" and state "b" of function "f/g"); use one type object per typename',
    );
    expectWeftError(
      () =>
        define({
          functions: { 'f/g': { state: { a: type.long() }, fn: noop } },
          types: [type.long({ as: 'bigint' })],
        }),
      'ERR_WEFT_INVALID_MODULE',
      'value types conflict: typename "io.statefun.types/long" is used by two different types (state "a" of function "f/g" and types[0]); use one type object per typename',
    );
    // The same type object used many times is no conflict.
    expect(() =>
      define({
        functions: { 'f/g': { state: { a: type.json<number>(), b: type.json<string>() }, fn: noop }, 'f/h': { state: { c: type.json() }, fn: noop } },
        types: [type.json(), type.int()],
      }),
    ).not.toThrow();
  });
});
