/**
 * The Restate mapping without a server: name mapping, the wire shapes (typed values round-trip),
 * one invocation's buffered effects, lazy TTL expiry (checked against the test harness, which
 * runs the engine's dispatcher), delayed-message tokens, option checks and the missing-peer error.
 * The real server is exercised by test/interop/restate.test.ts (`npm run test:interop`).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type, type Address, type Weft, type WeftClient } from '../../src/index.js';
import {
  META_KEY,
  decodeEffects,
  decodeMeta,
  decodeReply,
  decodeWireMessage,
  emptyMeta,
  encodeEffects,
  encodeMeta,
  encodeReply,
  encodeWireMessage,
  planCommit,
  runInvocation,
  type LoadedState,
  type Meta,
} from '../../src/restate/invocation.js';
import { defaultRestateName, restateNameProblem, restateNames } from '../../src/restate/names.js';
import { loadPeer } from '../../src/restate/peer.js';
import { valueSerde } from '../../src/restate/serde.js';
import type { Serde } from '@restatedev/restate-sdk';
import { restateObjects } from '../../src/restate/endpoint.js';
import { connectRestate } from '../../src/restate/client.js';
import { compileModule, type CompiledFunction } from '../../src/module/runtime.js';
import { isExpired } from '../../src/core/ttl.js';
import { createTestHarness } from '../../src/testing/index.js';
import bank from '../fixtures/bank.js';
import { expectWeftError } from '../helpers/index.js';

const runtime = compileModule(bank);
const fnOf = (t: string): CompiledFunction => runtime.functions.get(t) as CompiledFunction;
const limits = { maxMessageBytes: 512 * 1024, maxStateValueBytes: 1024 * 1024 };
const noCompute = async (): Promise<never> => {
  throw new Error('no compute here');
};
/** Bytes as arrays: Buffer and Uint8Array compare alike. */
const plain = (x: unknown): unknown =>
  JSON.parse(
    JSON.stringify(x, function (this: Record<string, unknown>, k: string, v: unknown) {
      const o = this[k];
      return o instanceof Uint8Array ? Array.from(o) : v;
    }),
  );
const empty = (): LoadedState => ({ values: new Map(), meta: emptyMeta() });
const wire = (value: unknown, caller: Address | null = null) => {
  const t = runtime.defaultType;
  return { typename: t.typename, payload: t.encode(value), caller };
};

describe('function type → Restate name', () => {
  it('replaces the slash with a dot, and checks names as restate-server 1.7 does', () => {
    expect(defaultRestateName('example/greeter')).toBe('example.greeter');
    expect(defaultRestateName('com.acme/cart-v2')).toBe('com.acme.cart-v2');
    // Accepted and refused by a real restate-server 1.7.12 on registration.
    for (const ok of ['a.b', 'a-b.c_d', '_a.b', 'openapi.x', 'a..b', 'a.b.']) expect(restateNameProblem(ok)).toBeNull();
    for (const bad of ['1x.y', '-a', 'a b', 'a:b', 'é.x', '_.x', '__x']) expect(restateNameProblem(bad)).toMatch(/must start with a letter/);
    for (const reserved of ['restate.x', 'Restatex', 'RESTATE_y']) expect(restateNameProblem(reserved)).toMatch(/reserved/);
  });

  it('refuses types that collide or have no valid name, and takes explicit names instead', () => {
    expectWeftError(() => restateNames(['a.b/c', 'a/b.c'], undefined, 'test'), 'ERR_WEFT_INVALID_OPTION', /"a.b\/c" and "a\/b.c" both map to the Restate name "a.b.c"/);
    expectWeftError(() => restateNames(['restate/x'], undefined, 'test'), 'ERR_WEFT_INVALID_OPTION', /"restate\/x" maps to the Restate name "restate.x".*reserved/);
    expectWeftError(() => restateNames(['9lives/cat'], undefined, 'test'), 'ERR_WEFT_INVALID_OPTION', /serviceNames option/);
    expect(restateNames(['a.b/c', 'a/b.c', 'restate/x'], { 'a/b.c': 'a_b_c', 'restate/x': 'rx' }, 'test')).toEqual(
      new Map([
        ['a.b/c', 'a.b.c'],
        ['a/b.c', 'a_b_c'],
        ['restate/x', 'rx'],
      ]),
    );
    expectWeftError(() => restateNames(['a/b'], { 'a/c': 'x' }, 'test'), 'ERR_WEFT_INVALID_OPTION', /"a\/c", which is not a function type/);
    expectWeftError(() => restateNames(['a/b'], { 'a/b': 'x/y' }, 'test'), 'ERR_WEFT_INVALID_OPTION', /Restate name "x\/y"/);
  });
});

describe('wire shapes', () => {
  it('round-trips every typed value with its typename and caller', () => {
    const cases: Array<[ReturnType<typeof type.int>, unknown]> = [
      [type.int(), -42],
      [type.long(), 2 ** 40],
      [type.float(), 1.5],
      [type.double(), Math.PI],
      [type.bool(), true],
      [type.string(), 'héllo'],
      [type.bytes(), new Uint8Array([0, 1, 255])],
      [type.json<{ a: number[] }>(), { a: [1, 2] }],
      [type.msgpack<unknown>(), { nested: [1, 'x', null, new Uint8Array([9])] }],
    ] as never;
    for (const [t, value] of cases) {
      const bytes = encodeWireMessage({ typename: t.typename, payload: t.encode(value as never), caller: { type: 'bank/account', id: 'x' } });
      const back = decodeWireMessage(bytes);
      expect(back.typename).toBe(t.typename);
      expect(back.caller).toEqual({ type: 'bank/account', id: 'x' });
      expect(plain(t.decode(back.payload))).toEqual(plain(value));
    }
    fc.assert(
      fc.property(fc.jsonValue(), fc.option(fc.string({ minLength: 1, maxLength: 20 }), { nil: null }), (value, id) => {
        const t = type.json<unknown>();
        const m = decodeWireMessage(encodeWireMessage({ typename: t.typename, payload: t.encode(value), caller: id === null ? null : { type: 'a/b', id } }));
        expect(t.decode(m.payload)).toEqual(JSON.parse(JSON.stringify(value)));
        expect(m.caller).toEqual(id === null ? null : { type: 'a/b', id });
      }),
    );
    expect(decodeReply(encodeReply(null))).toBeNull();
    expect(plain(decodeReply(encodeReply(['weft/msgpack', new Uint8Array([1, 2])])))).toEqual(['weft/msgpack', [1, 2]]);
  });

  it('gives Restate code a Serde with the bytes weft stores', async () => {
    // Assignable to the SDK's own Serde type: usable with ctx.get / ctx.set / ctx.run.
    const balance: Serde<number> = valueSerde(type.int());
    const fx = await runInvocation(runtime, fnOf('bank/account'), { type: 'bank/account', id: 'a' }, empty(), wire({ op: 'deposit', amount: 15 }), 1, limits, noCompute);
    const stored = fx.writes.find(([n]) => n === 'balance')?.[1] as Uint8Array;
    expect(balance.serialize(15)).toEqual(stored);
    expect(balance.deserialize(stored)).toBe(15);
    const json = valueSerde(type.json<{ a: number[] }>());
    expect(json.deserialize(json.serialize({ a: [1, 2] }))).toEqual({ a: [1, 2] });
    expect(() => balance.serialize('x' as never)).toThrow(expect.objectContaining({ code: 'ERR_WEFT_TYPE_MISMATCH' }) as unknown as Error);
    expectWeftError(() => valueSerde({} as never), 'ERR_WEFT_INVALID_ARG', /valueSerde takes a weft value type/);
  });

  it('refuses what is not a weft message', () => {
    expectWeftError(() => decodeWireMessage(new TextEncoder().encode('{"name":"Ada"}')), 'ERR_WEFT_PROTOCOL', /msgpack array \[typename, payload, callerType, callerId\]/);
    expectWeftError(() => decodeWireMessage(encodeReply(['t/x', new Uint8Array(1)])), 'ERR_WEFT_PROTOCOL', /msgpack array/);
  });

  it('keeps no bookkeeping record when there is nothing to keep', () => {
    expect(encodeMeta(emptyMeta())).toBeNull();
    const meta: Meta = { c: 5, w: { a: 3 }, t: { tok: ['inv_1', 99] } };
    expect(decodeMeta(encodeMeta(meta))).toEqual(meta);
    expect(decodeMeta(null)).toEqual(emptyMeta());
    expect(META_KEY).toContain(':');
  });
});

describe('one invocation', () => {
  it('reads the loaded state synchronously, sees its own writes, and buffers every effect', async () => {
    const loaded: LoadedState = { values: new Map([['balance', type.int().encode(10)]]), meta: emptyMeta() };
    const before = new Uint8Array(loaded.values.get('balance') as Uint8Array);
    const fx = await runInvocation(runtime, fnOf('bank/account'), { type: 'bank/account', id: 'a' }, loaded, wire({ op: 'deposit', amount: 5, seq: 1 }), 1000, limits, noCompute);
    expect(fx.writes.map(([n, b]) => [n, b === null ? null : n === 'balance' ? type.int().decode(b) : type.json().decode(b)])).toEqual([
      ['balance', 15],
      ['seen', [1]],
    ]);
    expect(fx.reply?.[0]).toBe(runtime.defaultType.typename);
    expect(runtime.defaultType.decode(fx.reply?.[1] as Uint8Array)).toBe(15);
    // Nothing was applied to the loaded state: the endpoint applies the record at the end.
    expect(loaded.values.get('balance')).toEqual(before);
    expect(plain(decodeEffects(encodeEffects(fx)))).toEqual(plain(fx));

    const xfer = await runInvocation(runtime, fnOf('bank/account'), { type: 'bank/account', id: 'a' }, loaded, wire({ op: 'transfer', amount: 3, to: 'b' }), 1000, limits, noCompute);
    expect(xfer.sends.map(([t, id, tn, p]) => [t, id, tn, runtime.defaultType.decode(p)])).toEqual([['bank/account', 'b', runtime.defaultType.typename, { op: 'deposit', amount: 3 }]]);
    expect(xfer.egress.map(([n, , p]) => [n, runtime.defaultType.decode(p)])).toEqual([['bank/audit', { from: 'a', to: 'b', amount: 3 }]]);
  });

  it('applies nothing of a function that throws (its error is what the caller sees)', async () => {
    await expect(runInvocation(runtime, fnOf('bank/account'), { type: 'bank/account', id: 'p' }, empty(), wire({ op: 'boom' }), 1, limits, noCompute)).rejects.toThrow('boom at p');
    await expect(runInvocation(runtime, fnOf('test/bad'), { type: 'test/bad', id: 'p' }, empty(), wire('unknown'), 1, limits, noCompute)).rejects.toMatchObject({ code: 'ERR_WEFT_UNKNOWN_FUNCTION' });
  });

  it('refuses a token that is still pending, and reuses one whose message is due', async () => {
    const sched = wire({ op: 'schedule', delayMs: 50, amount: 1, seq: 1, token: 'tok' });
    const pending: LoadedState = { values: new Map(), meta: { c: 0, w: {}, t: { tok: ['inv_x', 2000] } } };
    await expect(runInvocation(runtime, fnOf('bank/account'), { type: 'bank/account', id: 'a' }, pending, sched, 1000, limits, noCompute)).rejects.toMatchObject({ code: 'ERR_WEFT_DUPLICATE_TOKEN' });
    const fx = await runInvocation(runtime, fnOf('bank/account'), { type: 'bank/account', id: 'a' }, pending, sched, 2000, limits, noCompute);
    expect(fx.timers.map(([d, t, id, , , token]) => [d, t, id, token])).toEqual([[50, 'bank/account', 'a', 'tok']]);
    // Due tokens are forgotten when the invocation commits; pending ones are kept.
    expect(planCommit(fnOf('bank/account'), pending, [], 2000).meta.t).toEqual({});
    expect(planCommit(fnOf('bank/account'), pending, [], 1999).meta.t).toEqual({ tok: ['inv_x', 2000] });
    const cancel = await runInvocation(runtime, fnOf('bank/account'), { type: 'bank/account', id: 'a' }, pending, wire({ op: 'cancel', token: 'tok' }), 1000, limits, noCompute);
    expect(cancel.timers.map(([, t, , , , token]) => [t, token])).toEqual([[null, 'tok']]);
  });
});

describe('TTL on Restate (lazy, by stored write and call times)', () => {
  it('answers as the engine does, for any sequence of writes, reads and pauses', async () => {
    const ttl = fnOf('test/ttl');
    const self = { type: 'test/ttl', id: 'x' };
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(fc.integer({ min: 0, max: 1600 }), fc.boolean()), { minLength: 1, maxLength: 12 }), async (steps) => {
        const h = await createTestHarness(new URL('../../dist/test/fixtures/bank.js', import.meta.url));
        try {
          // What Restate would hold for this object between invocations.
          const store = new Map<string, Uint8Array>();
          let meta = emptyMeta();
          let now = 1_000_000;
          for (const [gap, set] of steps) {
            now += gap;
            await h.advance(gap);
            const loaded: LoadedState = { values: new Map(store), meta };
            const fx = await runInvocation(runtime, ttl, self, loaded, wire({ set }), now, limits, noCompute);
            const plan = planCommit(ttl, loaded, fx.writes, now);
            for (const [name, bytes] of plan.puts) store.set(name, bytes);
            for (const name of plan.clears) store.delete(name);
            meta = plan.meta;
            const got = runtime.defaultType.decode(fx.reply?.[1] as Uint8Array);
            expect(got).toEqual(await h.request(self, { set }));
          }
          // What is stored and not expired is what the engine's query shows.
          const live: Record<string, unknown> = {};
          for (const [name, bytes] of store) {
            const spec = ttl.specByName.get(name) as CompiledFunction['specs'][number];
            if (!isExpired(spec, meta.w[name] ?? 0, meta.c, now)) live[name] = spec.type.decode(bytes);
          }
          expect(Object.keys(live).length === 0 ? undefined : live).toEqual(await h.query(self));
        } finally {
          await h.close();
        }
      }),
      { numRuns: 40 },
    );
  });

  it('deletes values past their TTL at the next invocation, and keeps write times only for TTL states', () => {
    const ttl = fnOf('test/ttl');
    const loaded: LoadedState = {
      values: new Map([
        ['w', type.string().encode('old')],
        ['c', type.string().encode('old')],
      ]),
      meta: { c: 1000, w: { w: 1000, c: 1000 }, t: {} },
    };
    expect(planCommit(ttl, loaded, [], 1999)).toEqual({ puts: [], clears: [], meta: { c: 1999, w: { w: 1000, c: 1000 }, t: {} } });
    expect(planCommit(ttl, loaded, [], 2000)).toEqual({ puts: [], clears: ['w', 'c'], meta: { c: 2000, w: {}, t: {} } });
    const acct = planCommit(fnOf('bank/account'), empty(), [['balance', type.int().encode(1)]], 5);
    expect(acct.meta).toEqual(emptyMeta());
    expect(encodeMeta(acct.meta)).toBeNull();
  });
});

describe('options and the optional peer', () => {
  it('lets a service hold either engine as a WeftClient', () => {
    // Compile-time: the embedded engine is a WeftClient (the Restate client is one by its type).
    const asClient = (w: Weft): WeftClient => w;
    expect(typeof asClient).toBe('function');
  });

  it('names the missing package and how to install it', async () => {
    await expect(loadPeer('@restatedev/no-such-package', 'weft/restate')).rejects.toMatchObject({
      code: 'ERR_WEFT_MISSING_PEER',
      message: expect.stringContaining('npm install @restatedev/no-such-package@') as unknown as string,
    });
  });

  it('refuses bad options with the offending value', async () => {
    await expect(restateObjects(bank, {} as never)).rejects.toMatchObject({ code: 'ERR_WEFT_INVALID_OPTION', message: expect.stringContaining('options.egress must be a function') as unknown as string });
    await expect(restateObjects(bank, { egress: () => {}, retries: 3 } as never)).rejects.toMatchObject({ code: 'ERR_WEFT_INVALID_OPTION', message: expect.stringContaining('unknown key "retries"') as unknown as string });
    await expect(restateObjects(bank, { egress: () => {}, maxAttempts: 0 })).rejects.toMatchObject({ code: 'ERR_WEFT_INVALID_OPTION', message: expect.stringContaining('maxAttempts must be an integer of at least 1 (got 0)') as unknown as string });
    await expect(connectRestate({ url: 'not a url', module: bank })).rejects.toMatchObject({ code: 'ERR_WEFT_INVALID_OPTION' });
    const objects = await restateObjects(bank, { egress: () => {} });
    expect(objects.map((o) => o.name).sort()).toEqual(['bank.account', 'test.bad', 'test.pingpong', 'test.slow', 'test.ttl']);
  });
});
