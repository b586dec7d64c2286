/**
 * Type-level tests: `tsc --noEmit` (npm run typecheck) proves them; vitest runs the file so the
 * definitions below are also valid at runtime. `@ts-expect-error` lines fail the type check if
 * the error they expect disappears.
 */
import { describe, expectTypeOf, it } from 'vitest';
import type { Address } from '../../src/core/address.js';
import {
  defineModule,
  type Context,
  type Message,
  type ModuleDefinition,
  type State,
  type StateValue,
  type TypedMessage,
} from '../../src/module/definition.js';
import { type, type ValueType } from '../../src/codec/types.js';

interface Entry {
  at: number;
  amount: number;
}

describe('defineModule state inference', () => {
  it('types ctx.state per function, without annotations', () => {
    const def = defineModule({
      functions: {
        'bank/account': {
          state: {
            balance: type.int(),
            history: { type: type.json<Entry[]>(), expireAfterWrite: 86_400_000 },
            big: type.long({ as: 'bigint' }),
            blob: type.bytes(),
            anything: type.msgpack(),
          },
          async fn(ctx, msg) {
            expectTypeOf(ctx.state.balance).toEqualTypeOf<number | undefined>();
            expectTypeOf(ctx.state.history).toEqualTypeOf<Entry[] | undefined>();
            expectTypeOf(ctx.state.big).toEqualTypeOf<bigint | undefined>();
            expectTypeOf(ctx.state.blob).toEqualTypeOf<Uint8Array | undefined>();
            expectTypeOf(ctx.state.anything).toEqualTypeOf<unknown>();
            expectTypeOf(msg).toEqualTypeOf<Message>();
            expectTypeOf(ctx.self).toEqualTypeOf<Address>();
            expectTypeOf(ctx.caller).toEqualTypeOf<Address | undefined>();

            ctx.state.balance = 5;
            ctx.state.balance = undefined; // deletes
            ctx.state.history = [{ at: 1, amount: 2 }];
            // @ts-expect-error a string is not an int state
            ctx.state.balance = 'x';
            // @ts-expect-error the json type fixes the element shape
            ctx.state.history = [{ at: 'now' }];
            // @ts-expect-error undeclared state name
            ctx.state.nope = 1;
            await Promise.resolve();
          },
        },
        'bank/stateless': {
          fn(ctx) {
            expectTypeOf(ctx.state).toEqualTypeOf<{}>();
            // @ts-expect-error a function without state has no state names
            ctx.state.balance = 1;
          },
        },
      },
    });
    expectTypeOf(def).toEqualTypeOf<ModuleDefinition>();
  });

  it('types egress names from the egresses list', () => {
    defineModule({
      functions: {
        'a/b': {
          fn(ctx) {
            ctx.egress('bank/audit', { ok: true });
            // @ts-expect-error not a declared egress
            ctx.egress('bank/audt', 1);
          },
        },
      },
      egresses: ['bank/audit'],
    });
    defineModule({
      functions: {
        'a/b': {
          fn(ctx) {
            // @ts-expect-error no egresses declared
            ctx.egress('bank/audit', 1);
          },
        },
      },
    });
  });

  it('checks a value against opts.type', () => {
    defineModule({
      functions: {
        'a/b': {
          fn(ctx, msg) {
            const to = { type: 'a/b', id: '1' };
            ctx.send(to, { any: 'thing' });
            ctx.send(to, 5, { type: type.int() });
            // @ts-expect-error a string sent as an int
            ctx.send(to, 'x', { type: type.int() });
            ctx.sendAfter(1000, to, 'hi', { type: type.string(), cancellationToken: 't' });
            // @ts-expect-error a number sent as a string
            ctx.sendAfter(1000, to, 1, { type: type.string() });
            ctx.reply(1n, { type: type.long({ as: 'bigint' }) });
            // @ts-expect-error long defaults to number
            ctx.reply(1n, { type: type.long() });
            ctx.cancelDelayed('t');

            expectTypeOf(msg.as(type.int())).toEqualTypeOf<number>();
            expectTypeOf(msg.as(type.json<Entry>())).toEqualTypeOf<Entry>();
            expectTypeOf(msg.value).toEqualTypeOf<unknown>();
            if (msg.is(type.string())) {
              expectTypeOf(msg).toMatchTypeOf<TypedMessage<string>>();
              expectTypeOf(msg.value).toEqualTypeOf<string>();
            }
            expectTypeOf(ctx.compute('resize', { w: 1 })).toEqualTypeOf<Promise<unknown>>();
            expectTypeOf(ctx.compute<number>('sum', [1, 2])).toEqualTypeOf<Promise<number>>();
          },
        },
      },
    });
  });
});

describe('exported helper types', () => {
  it('maps declarations to values', () => {
    expectTypeOf<StateValue<ValueType<number>>>().toEqualTypeOf<number>();
    expectTypeOf<StateValue<{ type: ValueType<string>; expireAfterCall: 5 }>>().toEqualTypeOf<string>();
    expectTypeOf<State<{ a: boolean }>>().toEqualTypeOf<{ a: boolean | undefined }>();
    expectTypeOf<Context<{ a: boolean }>['state']['a']>().toEqualTypeOf<boolean | undefined>();
  });

  it('keeps ValueType<T> assignable to ValueType<unknown> and not the reverse', () => {
    expectTypeOf(type.int()).toMatchTypeOf<ValueType<unknown>>();
    expectTypeOf<ValueType<unknown>>().not.toMatchTypeOf<ValueType<number>>();
  });

  it('rejects malformed definitions at compile time', () => {
    // These throw at runtime too; the lambdas are never called.
    // @ts-expect-error fn is required
    const missingFn = () => defineModule({ functions: { 'a/b': { state: {} } } });
    // @ts-expect-error a state spec must be a value type
    const badSpec = () => defineModule({ functions: { 'a/b': { state: { x: 5 }, fn() {} } } });
    expectTypeOf(missingFn).toBeFunction();
    expectTypeOf(badSpec).toBeFunction();
  });
});
