/**
 * Requests without a reply, double replies, deterministic errors and user errors: what a caller
 * sees, in the harness (the same dispatcher the engine runs; user-code.test.ts checks the engine).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { WeftError } from '../../src/index.js';
import { createTestHarness, type TestHarness } from '../../src/testing/index.js';

let h: TestHarness;
afterEach(async () => {
  await h?.close();
});

const module = async (): Promise<URL> => new URL('../../dist/test/fixtures/user-code.js', import.meta.url);
const cell = (id: string) => ({ type: 'uc/cell', id });

async function rejection(p: Promise<unknown>): Promise<WeftError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WeftError);
  return err as WeftError;
}

describe('replies and errors a caller sees', () => {
  it('a request whose invocation ends without ctx.reply is rejected with ERR_WEFT_NO_REPLY naming the address; its effects apply', async () => {
    h = await createTestHarness(await module());
    const err = await rejection(h.request(cell('quiet'), { op: 'no-reply' }));
    expect(err.code).toBe('ERR_WEFT_NO_REPLY');
    expect(err.message).toBe('the invocation of uc/cell/quiet ended without calling ctx.reply');
    expect(await h.query(cell('quiet'))).toEqual({ n: 1 });
    expect(h.deadLetters()).toEqual([]);
  });

  it('a second ctx.reply in one invocation is an error, not an overwrite', async () => {
    h = await createTestHarness(await module());
    const err = await rejection(h.request(cell('twice'), { op: 'reply-twice' }));
    expect(err.code).toBe('ERR_WEFT_INVALID_ARG');
    expect(err.message).toBe('ctx.reply called twice in one invocation of uc/cell/twice: an invocation answers once');
  });

  it('dead-letters deterministic errors at once, without retries', async () => {
    h = await createTestHarness(await module(), { maxAttempts: 3, retryBackoffMs: 1 });
    const cases = [
      ['wrong-type', 'ERR_WEFT_TYPE_MISMATCH'],
      ['unknown-state', 'ERR_WEFT_UNKNOWN_STATE'],
      ['send-unknown', 'ERR_WEFT_UNKNOWN_FUNCTION'],
    ] as const;
    for (const [op, code] of cases) {
      const err = await rejection(h.request(cell(op), { op }));
      expect(err.code).toBe(code);
    }
    const letters = h.deadLetters();
    expect(letters.map((l) => [l.target.id, (l.error as WeftError).code, l.attempts])).toEqual(cases.map(([op, code]) => [op, code, 1]));
    expect(h.pendingTimers()).toEqual([]);
  });

  it("a user function's error reaches request() and the dead letter as ERR_WEFT_USER_CODE with its message and cause", async () => {
    h = await createTestHarness(await module(), { maxAttempts: 1 });
    const err = await rejection(h.request(cell('thrower'), { op: 'throw' }));
    expect(err.code).toBe('ERR_WEFT_USER_CODE');
    expect(err.message).toBe('user boom');
    const cause = err.cause as Error;
    expect(cause.name).toBe('RangeError');
    expect(cause.message).toBe('user boom');
    expect((cause.cause as Error).message).toBe('root cause');
    const [letter] = h.deadLetters();
    expect(letter!.attempts).toBe(1);
    expect((letter!.error as WeftError).code).toBe('ERR_WEFT_USER_CODE');
    expect(letter!.error.message).toBe('user boom');
  });
});
