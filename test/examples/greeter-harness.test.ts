/**
 * The greeter example through weft/testing: its module definition (the TypeScript source, as an
 * application's own tests would import it) runs in-process on a virtual clock, so replies, state
 * and egress records are checked right after each call, in order, without an engine or a build.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { WeftError } from '../../src/index.js';
import { createTestHarness, type TestHarness } from '../../src/testing/index.js';
import greeter from '../../examples/greeter/functions.js';

const GREETINGS = 'example/greetings';
const at = (id: string) => ({ type: 'example/greeter', id });

let h: TestHarness;
afterEach(async () => {
  await h?.close();
});

describe('examples/greeter through the test harness', () => {
  it('replies, counts visits per id and records every greeting', async () => {
    h = await createTestHarness(greeter);
    await expect(h.request(at('ada'), { name: 'Ada' })).resolves.toBe('Hello, Ada!');
    await expect(h.request(at('grace'), { name: 'Grace' })).resolves.toBe('Hello, Grace!');
    await expect(h.request(at('ada'), { name: 'Ada' })).resolves.toBe('Hello again, Ada! That makes 2 visits.');
    // The count is per id, not per name: a new id starts from empty state.
    await expect(h.request(at('ada-2'), { name: 'Ada' })).resolves.toBe('Hello, Ada!');

    expect(await h.query(at('ada'))).toEqual({ visits: 2 });
    expect(await h.query(at('grace'))).toEqual({ visits: 1 });
    expect(await h.query(at('nobody'))).toBeUndefined();
    // One shard, in-process: the records are in the order the invocations ran.
    expect(h.egress(GREETINGS)).toEqual([
      { id: 'ada', visits: 1, greeting: 'Hello, Ada!' },
      { id: 'grace', visits: 1, greeting: 'Hello, Grace!' },
      { id: 'ada', visits: 2, greeting: 'Hello again, Ada! That makes 2 visits.' },
      { id: 'ada-2', visits: 1, greeting: 'Hello, Ada!' },
    ]);
    expect(h.deadLetters()).toEqual([]);
    expect(h.pendingTimers()).toEqual([]);
  });

  it('records the greeting of a fire-and-forget send, whose reply nobody reads', async () => {
    h = await createTestHarness(greeter);
    for (let i = 0; i < 3; i++) await h.send(at('linus'), { name: 'Linus' });
    expect(await h.query(at('linus'))).toEqual({ visits: 3 });
    expect(h.egress(GREETINGS).map((r) => (r as { greeting: string }).greeting)).toEqual([
      'Hello, Linus!',
      'Hello again, Linus! That makes 2 visits.',
      'Hello again, Linus! That makes 3 visits.',
    ]);
  });

  it('applies none of a failing invocation: no visit, no greeting, a dead letter after the retries', async () => {
    h = await createTestHarness(greeter, { maxAttempts: 3, retryBackoffMs: 50 });
    await h.request(at('ada'), { name: 'Ada' });
    // `null` has no `name` to destructure: the function throws before it writes anything, and
    // would throw the same way on every retry.
    await h.send(at('ada'), null);
    expect(h.deadLetters()).toEqual([]);
    // The retries wait 50 then 100 virtual ms: only the clock lets them run, to the millisecond.
    await h.advance(149);
    expect(h.deadLetters()).toEqual([]);
    await h.advance(1);
    const [letter, ...more] = h.deadLetters();
    expect(more).toEqual([]);
    expect(letter).toMatchObject({ target: at('ada'), caller: null, value: null, attempts: 3 });
    expect(letter!.error).toBeInstanceOf(Error);
    expect(letter!.error.message).toContain('name');

    expect(await h.query(at('ada'))).toEqual({ visits: 1 });
    expect(h.egress(GREETINGS)).toEqual([{ id: 'ada', visits: 1, greeting: 'Hello, Ada!' }]);
    // Processing goes on after a dead letter.
    await expect(h.request(at('ada'), { name: 'Ada' })).resolves.toBe('Hello again, Ada! That makes 2 visits.');
  });

  it('refuses what the module does not declare, with the engine\'s errors', async () => {
    h = await createTestHarness(greeter);
    const err = await h.request({ type: 'example/farewell', id: 'ada' }, { name: 'Ada' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WeftError);
    expect((err as WeftError).code).toBe('ERR_WEFT_UNKNOWN_FUNCTION');
    expect(() => h.egress('example/farewells')).toThrow(expect.objectContaining({ code: 'ERR_WEFT_UNKNOWN_EGRESS' }));
  });
});
