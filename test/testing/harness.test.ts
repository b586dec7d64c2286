import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { WeftError, defineModule, type } from '../../src/index.js';
import { createTestHarness, type TestHarness } from '../../src/testing/index.js';
import bank from '../fixtures/bank.js';

const acct = (id: string) => ({ type: 'bank/account', id });
const T0 = Date.UTC(2024, 0, 1);

async function rejection(p: Promise<unknown>): Promise<WeftError> {
  const err = await p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WeftError);
  return err as WeftError;
}

function thrown(f: () => unknown): WeftError {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(WeftError);
    return err as WeftError;
  }
  throw new Error('expected a throw');
}

let h: TestHarness;
afterEach(async () => {
  await h?.close();
});

describe('deposits, transfers and cycles', () => {
  it('keeps per-address order and answers requests', async () => {
    h = await createTestHarness(bank);
    expect(h.now()).toBe(T0);
    await expect(h.request(acct('a'), { op: 'deposit', amount: 5 })).resolves.toBe(5);
    const sends: Array<Promise<void>> = [];
    for (let i = 0; i < 200; i++) sends.push(h.send(acct('order'), { op: 'deposit', amount: 1, seq: i }));
    await Promise.all(sends);
    expect(await h.query(acct('order'))).toEqual({ balance: 200, seen: Array.from({ length: 200 }, (_, i) => i) });
    await expect(h.request(acct('a'), { op: 'get' })).resolves.toBe(5);
    expect(await h.query(acct('never'))).toBeUndefined();
  });

  it('runs a transfer and everything it caused before send resolves', async () => {
    h = await createTestHarness(bank);
    await h.send(acct('src'), { op: 'deposit', amount: 100 });
    for (let i = 0; i < 10; i++) await h.send(acct('src'), { op: 'transfer', amount: 3, to: `dst-${i % 3}` });
    expect(await h.query(acct('src'))).toEqual({ balance: 70 });
    expect(await h.query(acct('dst-0'))).toEqual({ balance: 12 });
    expect(await h.query(acct('dst-1'))).toEqual({ balance: 9 });
    expect(await h.query(acct('dst-2'))).toEqual({ balance: 9 });
    const audit = h.egress('bank/audit');
    expect(audit).toHaveLength(10);
    expect(audit[0]).toEqual({ from: 'src', to: 'dst-0', amount: 3 });
    expect(audit[9]).toEqual({ from: 'src', to: 'dst-0', amount: 3 });
    // Records are decoded afresh on every call: mutating one does not change the harness.
    (audit[0] as { amount: number }).amount = 1000;
    expect(h.egress('bank/audit')[0]).toEqual({ from: 'src', to: 'dst-0', amount: 3 });
    // The engine's record shape: { id, value, ack() }, ids distinct, values as egress() gives them.
    const records = h.egressRecords('bank/audit');
    expect(records.map((r) => r.value)).toEqual(h.egress('bank/audit'));
    expect(new Set(records.map((r) => r.id)).size).toBe(10);
    await expect(records[0]!.ack()).resolves.toBeUndefined();
  });

  it('runs message cycles to the end', async () => {
    h = await createTestHarness(bank);
    await h.send({ type: 'test/pingpong', id: 'a-1' }, 101);
    expect(await h.query({ type: 'test/pingpong', id: 'a-1' })).toEqual({ hits: 51 });
    expect(await h.query({ type: 'test/pingpong', id: 'b-1' })).toEqual({ hits: 51 });
    expect(h.egress('bank/audit')).toEqual([{ done: 'b-1' }]);
  });

  it('routes ctx.reply to a calling function, with ctx.caller set', async () => {
    const mod = defineModule({
      functions: {
        'qa/asker': {
          state: { answer: type.json<unknown>() },
          fn(ctx, msg) {
            if (ctx.caller === undefined) ctx.send({ type: 'qa/oracle', id: 'o' }, msg.value);
            else ctx.state.answer = { from: ctx.caller, value: msg.value };
          },
        },
        'qa/oracle': {
          fn(ctx, msg) {
            ctx.reply((msg.value as number) * 2);
          },
        },
      },
    });
    h = await createTestHarness(mod);
    await h.send({ type: 'qa/asker', id: 'x' }, 21);
    expect(await h.query({ type: 'qa/asker', id: 'x' })).toEqual({ answer: { from: { type: 'qa/oracle', id: 'o' }, value: 42 } });
  });
});

describe('failures, retries and dead letters in virtual time', () => {
  it('applies nothing of a failing invocation, retries with backoff, then dead-letters it', async () => {
    h = await createTestHarness(bank, { retryBackoffMs: 10, maxAttempts: 3 });
    await h.send(acct('bomb'), { op: 'deposit', amount: 7 });
    await h.send(acct('bomb'), { op: 'boom' });
    // A later message to the same address waits behind the retries, to keep arrival order.
    await h.send(acct('bomb'), { op: 'deposit', amount: 1 });
    expect(h.deadLetters()).toEqual([]);
    expect(await h.query(acct('bomb'))).toEqual({ balance: 7 });
    // Attempt 2 runs at +10, attempt 3 at +10+20 = +30.
    await h.advance(29);
    expect(h.deadLetters()).toEqual([]);
    expect(await h.query(acct('bomb'))).toEqual({ balance: 7 });
    await h.advance(1);
    const letters = h.deadLetters();
    expect(letters).toHaveLength(1);
    const [letter] = letters;
    expect(letter!.target).toEqual(acct('bomb'));
    expect(letter!.caller).toBeNull();
    expect(letter!.typename).toBe('weft.types/msgpack');
    expect(letter!.value).toEqual({ op: 'boom' });
    expect(letter!.error).toBeInstanceOf(Error);
    expect(letter!.error.message).toBe('boom at bomb');
    expect(letter!.attempts).toBe(3);
    expect(letter!.at).toBe(T0 + 30);
    // Nothing of the failed invocation happened; the message behind it then ran.
    expect(await h.query(acct('bomb'))).toEqual({ balance: 8 });
    expect(await h.query(acct('victim'))).toBeUndefined();
    expect(h.now()).toBe(T0 + 30);
  });

  it('retries at once with retryBackoffMs 0, and keeps the error code in the dead letter', async () => {
    h = await createTestHarness(bank, { retryBackoffMs: 0, maxAttempts: 3 });
    await h.send(acct('dup'), { op: 'schedule', delayMs: 1000, amount: 1, token: 't' });
    // Reusing a pending token throws inside the function: all three attempts run within send().
    await h.send(acct('dup'), { op: 'schedule', delayMs: 1000, amount: 1, token: 't' });
    const [letter] = h.deadLetters();
    expect(letter!.error).toBeInstanceOf(WeftError);
    expect((letter!.error as WeftError).code).toBe('ERR_WEFT_DUPLICATE_TOKEN');
    expect(letter!.attempts).toBe(3);
    expect(letter!.at).toBe(T0);
    expect(h.pendingTimers()).toHaveLength(1);
  });

  it('rejects a request whose message waits for a retry, naming advance()', async () => {
    h = await createTestHarness(bank);
    const err = await rejection(h.request(acct('r'), { op: 'boom' }));
    expect(err.code).toBe('ERR_WEFT_TIMEOUT');
    expect(err.message).toBe('weft.request to bank/account/r got no reply: the test harness ran until quiescent and its message failed and is waiting for a retry, which only advance() can run');
    const none = await rejection(h.request(acct('r2'), { op: 'cancel', token: 'none' }));
    expect(none.code).toBe('ERR_WEFT_NO_REPLY');
    expect(none.message).toBe('the invocation of bank/account/r2 ended without calling ctx.reply');
    await h.advance(1000);
    expect(h.deadLetters()).toHaveLength(1);
  });

  it('rejects a request with the function error once its message is dead-lettered, as the engine does', async () => {
    h = await createTestHarness(bank, { maxAttempts: 1 });
    const err = await h.request(acct('x'), { op: 'boom' }).catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toBe('boom at x');
  });
});

describe('delayed messages and TTL', () => {
  it('fires delayed messages at their due times, in order, and cancels them', async () => {
    h = await createTestHarness(bank);
    const id = acct('timers');
    await h.send(id, { op: 'schedule', delayMs: 60, amount: 1, seq: 2 });
    await h.send(id, { op: 'schedule', delayMs: 20, amount: 1, seq: 1 });
    await h.send(id, { op: 'schedule', delayMs: 40, amount: 100, seq: 99, token: 'tok' });
    await h.send(id, { op: 'cancel', token: 'tok' });
    await h.send(id, { op: 'schedule', delayMs: 80, amount: 1, seq: 3, token: 'tok' });
    expect(h.pendingTimers()).toEqual([
      { due: T0 + 20, target: id, sender: id, typename: 'weft.types/msgpack', value: { op: 'deposit', amount: 1, seq: 1 }, cancellationToken: null },
      { due: T0 + 60, target: id, sender: id, typename: 'weft.types/msgpack', value: { op: 'deposit', amount: 1, seq: 2 }, cancellationToken: null },
      { due: T0 + 80, target: id, sender: id, typename: 'weft.types/msgpack', value: { op: 'deposit', amount: 1, seq: 3 }, cancellationToken: 'tok' },
    ]);
    await h.advance(19);
    expect(await h.query(id)).toBeUndefined();
    await h.advance(1);
    expect(await h.query(id)).toEqual({ balance: 1, seen: [1] });
    await h.advance(59);
    expect(await h.query(id)).toEqual({ balance: 2, seen: [1, 2] });
    // Cancelling after it fired is a no-op; cancelling before it fires drops it.
    await h.send(id, { op: 'cancel', token: 'tok' });
    await h.advance(10_000);
    expect(await h.query(id)).toEqual({ balance: 2, seen: [1, 2] });
    expect(h.pendingTimers()).toEqual([]);
    expect(h.now()).toBe(T0 + 10_079);
  });

  it('fires, within one advance, what a fired message schedules inside the window', async () => {
    const mod = defineModule({
      functions: {
        'tick/chain': {
          state: { hits: type.int() },
          fn(ctx, msg) {
            ctx.state.hits = (ctx.state.hits ?? 0) + 1;
            const left = msg.value as number;
            if (left > 0) ctx.sendAfter(10, ctx.self, left - 1);
          },
        },
      },
    });
    h = await createTestHarness(mod, { startTime: 1 });
    const c = { type: 'tick/chain', id: 'c' };
    await h.send(c, 5);
    await h.advance(49);
    expect(await h.query(c)).toEqual({ hits: 5 });
    await h.advance(1);
    expect(await h.query(c)).toEqual({ hits: 6 });
    expect(h.now()).toBe(51);
  });

  it('expires after write and after call, to the millisecond', async () => {
    h = await createTestHarness(bank);
    const to = { type: 'test/ttl', id: 't' };
    await expect(h.request(to, { set: true })).resolves.toEqual({ w: 'written', c: 'called' });
    await h.advance(999);
    // A call at +999: `c` is kept alive by calls, `w` is not.
    await expect(h.request(to, {})).resolves.toEqual({ w: 'written', c: 'called' });
    await h.advance(1);
    await expect(h.request(to, {})).resolves.toEqual({ w: null, c: 'called' });
    expect(await h.query(to)).toEqual({ c: 'called' });
    await h.advance(999);
    // A query is not a call: it does not keep `c` alive.
    expect(await h.query(to)).toEqual({ c: 'called' });
    await h.advance(1);
    expect(await h.query(to)).toBeUndefined();
    await expect(h.request(to, {})).resolves.toEqual({ w: null, c: null });
  });
});

describe('async functions', () => {
  it('keeps one invocation per address across awaits and waits for them', async () => {
    h = await createTestHarness(bank);
    const slow = h.request({ type: 'test/slow', id: 's' }, { tag: 'slow', waitMs: 20 });
    const fast = h.request({ type: 'test/slow', id: 's' }, { tag: 'second', waitMs: 0 });
    const other = h.request(acct('meanwhile'), { op: 'deposit', amount: 1 });
    await expect(slow).resolves.toEqual(['slow']);
    await expect(fast).resolves.toEqual(['slow', 'second']);
    await expect(other).resolves.toBe(1);
    expect(await h.query({ type: 'test/slow', id: 's' })).toEqual({ log: ['slow', 'second'] });
  });

  it('bounds quiescence: a promise that never settles, a cycle that never ends', async () => {
    const mod = defineModule({
      functions: {
        'stuck/forever': {
          async fn() {
            await new Promise(() => {});
          },
        },
        'stuck/loop': {
          fn(ctx) {
            ctx.send(ctx.self, 0);
          },
        },
      },
    });
    h = await createTestHarness(mod, { settleTimeoutMs: 50 });
    const err = await rejection(h.send({ type: 'stuck/forever', id: 'x' }, 1));
    expect(err.code).toBe('ERR_WEFT_TIMEOUT');
    expect(err.message).toContain('1 async invocation(s) still awaiting');
    expect(err.message).toContain('stuck/forever/x');
    const h2 = await createTestHarness(mod, { settleTimeoutMs: 50 });
    const loop = await rejection(h2.send({ type: 'stuck/loop', id: 'y' }, 1));
    expect(loop.code).toBe('ERR_WEFT_TIMEOUT');
    expect(loop.message).toContain('stuck/loop/y');
    await h2.close();
  });
});

describe('module loading and compute', () => {
  const dist = (name: string) => new URL(`../../dist/test/fixtures/${name}.js`, import.meta.url);

  it('loads a module file by URL or path', async () => {
    h = await createTestHarness(dist('bank'));
    await expect(h.request(acct('u'), { op: 'deposit', amount: 2 })).resolves.toBe(2);
    const byPath = await createTestHarness(fileURLToPath(dist('bank')));
    await expect(byPath.request(acct('u'), { op: 'deposit', amount: 3 })).resolves.toBe(3);
    await byPath.close();
    const err = await rejection(createTestHarness(dist('no-such-module')));
    expect(err.code).toBe('ERR_WEFT_INVALID_MODULE');
  });

  it('runs compute tasks in-process on copies, and dead-letters a failing one', async () => {
    h = await createTestHarness(dist('harness-compute'), { maxAttempts: 1 });
    const calc = { type: 'calc/run', id: 'c' };
    await expect(h.request(calc, { task: 'square', input: 12 })).resolves.toBe(144);
    await expect(h.request(calc, { task: 'scribble', input: { items: [1, 2] } })).resolves.toBe(3);
    await h.send(calc, { task: 'fail', input: null });
    await h.send(calc, { task: 'nope', input: null });
    const letters = h.deadLetters();
    expect(letters.map((l) => l.error.message)).toEqual([
      'task failed on purpose',
      'ctx.compute: the compute file has no task named "nope" (its tasks: "fail", "scribble", "square")',
    ]);
    expect((letters[1]!.error as WeftError).code).toBe('ERR_WEFT_COMPUTE');
    expect(await h.query(calc)).toEqual({ last: 3 });
  });

  it('rejects ctx.compute when the module has no compute file', async () => {
    const mod = defineModule({
      functions: {
        'calc/none': {
          async fn(ctx) {
            await ctx.compute('anything', 1);
          },
        },
      },
    });
    h = await createTestHarness(mod, { maxAttempts: 1 });
    await h.send({ type: 'calc/none', id: 'n' }, 1);
    expect((h.deadLetters()[0]!.error as WeftError).code).toBe('ERR_WEFT_COMPUTE');
  });
});

describe('errors', () => {
  it('validates like the engine, with the same codes and messages', async () => {
    h = await createTestHarness(bank, { maxMessageBytes: 1024 });
    let err = await rejection(h.send({ type: 'nope/x', id: 'a' }, 1));
    expect(err.code).toBe('ERR_WEFT_UNKNOWN_FUNCTION');
    expect(err.message).toBe('weft.send: no function of type "nope/x" is defined (address {"type":"nope/x","id":"a"})');
    err = await rejection(h.send({ type: 'bank/account', id: '' }, 1));
    expect(err.code).toBe('ERR_WEFT_INVALID_ADDRESS');
    err = await rejection(h.send(acct('a'), () => 1));
    expect(err.code).toBe('ERR_WEFT_UNSERIALIZABLE');
    err = await rejection(h.send(acct('a'), 'x'.repeat(2000)));
    expect(err.code).toBe('ERR_WEFT_TOO_LARGE');
    expect(err.message).toMatch(/^weft\.send value encodes to \d+ bytes, over the limit of 1024 \(maxMessageBytes\)$/);
    err = await rejection(h.request(acct('a'), 1, { timeoutMs: -1 }));
    expect(err.message).toBe('weft.request timeoutMs must be a positive number of ms (got -1)');
    err = await rejection(h.query({ type: 'nope/x', id: 'a' }));
    expect(err.message).toBe('weft.query: no function of type "nope/x" is defined');
    err = thrown(() => h.egress('bank/nope'));
    expect(err.code).toBe('ERR_WEFT_UNKNOWN_EGRESS');
    err = await rejection(h.advance(-1));
    expect(err.code).toBe('ERR_WEFT_INVALID_ARG');
    err = await rejection(h.advance(Number.NaN));
    expect(err.message).toBe('harness.advance ms must be a finite number >= 0 (got NaN)');
  });

  it('validates options and the module', async () => {
    let err = await rejection(createTestHarness(bank, { maxAttempts: 0 }));
    expect(err.code).toBe('ERR_WEFT_INVALID_OPTION');
    expect(err.message).toBe('options.maxAttempts must be an integer from 1 to 1000 (got 0)');
    err = await rejection(createTestHarness(bank, { startTime: 0 }));
    expect(err.message).toBe('options.startTime must be an integer from 1 to 8640000000000000 (got 0)');
    err = await rejection(createTestHarness(bank, { shards: 2 } as never));
    expect(err.message).toBe('unknown option "shards"');
    err = await rejection(createTestHarness(42 as never));
    expect(err.code).toBe('ERR_WEFT_INVALID_ARG');
    err = await rejection(createTestHarness(new URL('http://example.com/m.js')));
    expect(err.code).toBe('ERR_WEFT_INVALID_ARG');
    h = await createTestHarness(bank, { startTime: 5 });
    expect(h.now()).toBe(5);
  });

  it('refuses work after close, and close is idempotent', async () => {
    h = await createTestHarness(bank);
    await h.send(acct('c'), { op: 'deposit', amount: 1 });
    await Promise.all([h.close(), h.close()]);
    const err = await rejection(h.send(acct('c'), { op: 'deposit', amount: 1 }));
    expect(err.code).toBe('ERR_WEFT_CLOSED');
    expect(err.message).toBe('weft.send() called after close()');
    expect((await rejection(h.query(acct('c')))).code).toBe('ERR_WEFT_CLOSED');
    expect((await rejection(h.advance(1))).message).toBe('harness.advance() called after close()');
    expect(h.egress('bank/audit')).toEqual([]);
  });
});

describe('ctx.now()', () => {
  it('is the virtual clock in the harness', async () => {
    const { createTestHarness } = await import('../../src/testing/index.js');
    const { defineModule, type } = await import('../../src/index.js');
    const h = await createTestHarness(
      defineModule({
        functions: {
          'clock/stamp': {
            state: { at: type.double() },
            fn(ctx) {
              ctx.state.at = ctx.now();
              ctx.reply(ctx.now());
            },
          },
        },
      }),
      { startTime: 1_000_000 },
    );
    await expect(h.request({ type: 'clock/stamp', id: 'a' }, null)).resolves.toBe(1_000_000);
    await h.advance(250);
    await expect(h.request({ type: 'clock/stamp', id: 'a' }, null)).resolves.toBe(1_000_250);
    expect(await h.query({ type: 'clock/stamp', id: 'a' })).toEqual({ at: 1_000_250 });
    await h.close();
  });
});
