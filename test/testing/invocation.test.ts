/**
 * One invocation's buffered effects, through the dispatcher the engine runs (the harness drives
 * it on virtual time). The dispatcher reuses effect records and mailbox queues between
 * invocations: these tests would fail if anything leaked from one invocation into another.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { WeftError, defineModule, type, type Context } from '../../src/index.js';
import { createTestHarness, type TestHarness } from '../../src/testing/index.js';

let h: TestHarness;
afterEach(async () => {
  await h?.close();
});

const stashed: Context[] = [];

const module = defineModule({
  egresses: ['test/out'],
  functions: {
    'test/cell': {
      state: { n: type.int(), obj: type.json<{ items: number[] }>(), label: type.string() },
      fn(ctx, msg) {
        const op = msg.value as { op: string; v?: number };
        switch (op.op) {
          case 'stash':
            stashed.push(ctx as unknown as Context);
            ctx.state.n = 1;
            return;
          case 'write-read': {
            // Reads see this invocation's own writes, immutable and encoded alike.
            ctx.state.n = (ctx.state.n ?? 0) + (op.v ?? 1);
            ctx.state.n = (ctx.state.n as number) * 10;
            const obj = ctx.state.obj ?? { items: [] };
            obj.items.push(op.v ?? 1);
            ctx.state.obj = obj;
            ctx.state.label = `n=${ctx.state.n as number}`;
            ctx.reply([ctx.state.n, ctx.state.obj, ctx.state.label]);
            return;
          }
          case 'delete':
            ctx.state.n = 5;
            ctx.state.n = undefined;
            ctx.reply(ctx.state.n === undefined);
            return;
          case 'fail':
            ctx.state.n = 999;
            ctx.state.label = 'failed';
            ctx.send({ type: 'test/cell', id: 'victim' }, { op: 'write-read', v: 1000 });
            throw new Error('boom');
          case 'get':
            ctx.reply([ctx.state.n ?? null, ctx.state.label ?? null]);
            return;
          case 'use-stashed':
            // A context kept from an ended invocation, used while this one runs synchronously.
            (stashed[0] as unknown as { reply(v: unknown): void }).reply('late');
            ctx.reply('not reached');
            return;
          default:
            throw new Error(`unknown op ${op.op}`);
        }
      },
    },
    'test/relay': {
      // Forwards small ints to test/mutator with ctx.send (one-byte payloads).
      fn(ctx, msg) {
        ctx.send({ type: 'test/mutator', id: 'm' }, msg.value);
      },
    },
    'test/mutator': {
      state: { seen: type.json<number[]>() },
      fn(ctx, msg) {
        const seen = ctx.state.seen ?? [];
        seen.push(msg.value as number);
        ctx.state.seen = seen;
        // Code that reaches the message bytes (the runtime getter behind StateFun forwarding) and
        // scribbles over them must not change any other message.
        (msg as unknown as { payload: Uint8Array }).payload[0] = 0x7f;
      },
    },
    'test/echo': {
      // Answers with its message's value (one-byte values are shared arrays until copied).
      fn(ctx, msg) {
        ctx.reply(msg.value);
      },
    },
    'test/raw-echo': {
      // Answers with a type the module does not declare: the caller gets the reply's bytes.
      fn(ctx, msg) {
        ctx.reply(msg.value, { type: type.msgpack('test/undeclared') });
      },
    },
    'test/asker': {
      // Asks test/echo (its reply comes back as a message) and scribbles over the reply's bytes.
      state: { seen: type.json<unknown[]>() },
      fn(ctx, msg) {
        if (ctx.caller === undefined) {
          ctx.send({ type: 'test/echo', id: 'e' }, msg.value);
          return;
        }
        const seen = ctx.state.seen ?? [];
        seen.push(msg.value);
        ctx.state.seen = seen;
        (msg as unknown as { payload: Uint8Array }).payload[0] = 0x7f;
      },
    },
    'test/thenable': {
      state: { n: type.int() },
      // Returns a hand-made thenable that calls back twice: the invocation must complete once.
      fn(ctx) {
        ctx.state.n = (ctx.state.n ?? 0) + 1;
        return {
          then(onFulfilled: () => void) {
            onFulfilled();
            onFulfilled();
          },
        } as unknown as Promise<void>;
      },
    },
    'test/log': {
      state: { seen: type.json<number[]>() },
      fn(ctx, msg) {
        const seen = ctx.state.seen ?? [];
        seen.push(msg.value as number);
        ctx.state.seen = seen;
      },
    },
  },
});

const cell = (id: string) => ({ type: 'test/cell', id });

describe('buffered effects of one invocation', () => {
  it('a context kept past its invocation does nothing (reported, never thrown from a callback), and never touches a later invocation', async () => {
    stashed.length = 0;
    h = await createTestHarness(module, { maxAttempts: 1 });
    await h.send(cell('a'), { op: 'stash' });
    const old = stashed[0] as Context & { state: Record<string, unknown> };
    // A later invocation runs with effects the dispatcher may have recycled from the first one.
    await expect(h.request(cell('b'), { op: 'write-read', v: 2 })).resolves.toEqual([20, { items: [2] }, 'n=20']);
    // Outside any invocation (a timer, a callback, here the test itself) a throw would be
    // uncaught: the calls do nothing and are reported.
    expect(old.state.n).toBeUndefined();
    old.state.n = 7;
    old.send(cell('b'), { op: 'get' });
    old.reply(1);
    old.egress('test/out', 1);
    old.sendAfter(5, cell('b'), { op: 'get' });
    old.cancelDelayed('t');
    await expect(old.compute('x', 1)).rejects.toMatchObject({ code: 'ERR_WEFT_INVOCATION_ENDED' });
    const a = { type: 'test/cell', id: 'a' };
    expect(h.lateContextCalls()).toEqual(
      ['state.n read', 'state.n write', 'send', 'reply', 'egress', 'sendAfter', 'cancelDelayed', 'compute'].map((method) => ({ address: a, method })),
    );
    await h.idle();
    expect(h.pendingTimers()).toEqual([]);
    expect(await h.query(cell('a'))).toEqual({ n: 1 });
    expect(await h.query(cell('b'))).toEqual({ n: 20, obj: { items: [2] }, label: 'n=20' });
    expect(h.egress('test/out')).toEqual([]);
    // Called while another function runs synchronously, it throws there: that invocation fails.
    const err = await h.request(cell('c'), { op: 'use-stashed' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(WeftError);
    expect((err as WeftError).code).toBe('ERR_WEFT_INVOCATION_ENDED');
    expect((err as WeftError).message).toMatch(/ctx\.reply\(\) called after the invocation of test\/cell\/a ended/);
    expect(h.lateContextCalls().at(-1)).toEqual({ address: a, method: 'reply' });
  });

  it('reads see the invocation\'s own writes; a delete after a write deletes', async () => {
    h = await createTestHarness(module);
    await expect(h.request(cell('c'), { op: 'write-read', v: 1 })).resolves.toEqual([10, { items: [1] }, 'n=10']);
    await expect(h.request(cell('c'), { op: 'write-read', v: 2 })).resolves.toEqual([120, { items: [1, 2] }, 'n=120']);
    await expect(h.request(cell('c'), { op: 'delete' })).resolves.toBe(true);
    expect(await h.query(cell('c'))).toEqual({ obj: { items: [1, 2] }, label: 'n=120' });
  });

  it('a failed invocation leaves nothing behind, for its own retry or any other invocation', async () => {
    h = await createTestHarness(module, { maxAttempts: 2, retryBackoffMs: 1 });
    await h.request(cell('d'), { op: 'write-read', v: 3 });
    await h.send(cell('d'), { op: 'fail' });
    await h.advance(10);
    await h.idle();
    expect(h.deadLetters()).toHaveLength(1);
    await expect(h.request(cell('d'), { op: 'get' })).resolves.toEqual([30, 'n=30']);
    // Other addresses (run with recycled effects) see none of the failed writes or sends.
    for (let i = 0; i < 20; i++) await expect(h.request(cell(`e${i}`), { op: 'get' })).resolves.toEqual([null, null]);
    expect(await h.query(cell('victim'))).toBeUndefined();
  });

  it('keeps per-address order through bursts larger than a kept mailbox queue, and after it empties', async () => {
    h = await createTestHarness(module);
    const log = { type: 'test/log', id: 'x' };
    let next = 0;
    for (const burst of [1, 200, 3, 1000, 1, 65, 64]) {
      const sends: Array<Promise<void>> = [];
      for (let i = 0; i < burst; i++) sends.push(h.send(log, next++));
      await Promise.all(sends);
    }
    expect(await h.query(log)).toEqual({ seen: Array.from({ length: next }, (_, i) => i) });
  });

  it("a function that writes into its message's bytes changes no other message", async () => {
    h = await createTestHarness(module);
    for (const v of [1, 2, 1, 0, -1, 1, true, null, 1]) await h.send({ type: 'test/relay', id: 'r' }, v);
    expect(await h.query({ type: 'test/mutator', id: 'm' })).toEqual({ seen: [1, 2, 1, 0, -1, 1, true, null, 1] });
  });

  it("a function that writes into the bytes of a reply it got changes no other reply", async () => {
    h = await createTestHarness(module);
    const values = [1, 2, 1, 0, -1, 1, true, null, false, 1];
    for (const v of values) await h.send({ type: 'test/asker', id: 'a' }, v);
    expect(await h.query({ type: 'test/asker', id: 'a' })).toEqual({ seen: values });
    // Host requests answered with the same one-byte values, after the scribbling.
    for (const v of values) await expect(h.request({ type: 'test/echo', id: 'e' }, v)).resolves.toBe(v);
  });

  it('bytes a request resolves with (a reply of an undeclared type) are its own: writing into them changes no later reply, also of a repeated idempotency key', async () => {
    h = await createTestHarness(module);
    const raw = { type: 'test/raw-echo', id: 'r' };
    const a = (await h.request(raw, 5)) as Uint8Array;
    expect([...a]).toEqual([5]);
    a[0] = 9;
    const b = (await h.request(raw, 5)) as Uint8Array;
    expect(b).not.toBe(a);
    expect([...b]).toEqual([5]);
    await expect(h.request({ type: 'test/echo', id: 'e' }, 5)).resolves.toBe(5);
    // A duplicate of an applied idempotency key gets the kept reply: a copy of it.
    const first = (await h.request(raw, 'hello', { idempotencyKey: 'k' })) as Uint8Array;
    const again = (await h.request(raw, 'hello', { idempotencyKey: 'k' })) as Uint8Array;
    again[1] = 0x41;
    const third = (await h.request(raw, 'hello', { idempotencyKey: 'k' })) as Uint8Array;
    expect(third).not.toBe(again);
    expect([...third]).toEqual([...first]);
  });

  it('a thenable that calls back twice completes its invocation once', async () => {
    h = await createTestHarness(module);
    const t = { type: 'test/thenable', id: 't' };
    await Promise.all(Array.from({ length: 5 }, () => h.send(t, 0)));
    expect(await h.query(t)).toEqual({ n: 5 });
    // Recycled effects are not shared between two later invocations.
    await expect(h.request(cell('after'), { op: 'write-read', v: 4 })).resolves.toEqual([40, { items: [4] }, 'n=40']);
    expect(await h.query(cell('other'))).toBeUndefined();
  });
});
