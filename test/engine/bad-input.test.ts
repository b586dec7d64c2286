import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WeftError, type DeadLetter, type Weft } from '../../src/index.js';
import { fixture, startEngine, takeValues } from './helpers.js';

describe('bad input gets a typed error naming the value, and breaks nothing', () => {
  let weft: Weft;
  let cleanup: () => Promise<void>;
  beforeAll(async () => {
    ({ weft, cleanup } = await startEngine({ module: fixture('bank'), shards: 2, retryBackoffMs: 1, maxAttempts: 2 }));
  });
  afterAll(async () => {
    await cleanup();
  });

  const ok = async (): Promise<void> => {
    await expect(weft.request({ type: 'test/bad', id: 'ok' }, 'ok')).resolves.toBeTypeOf('number');
  };
  const code = async (p: Promise<unknown> | (() => unknown)): Promise<WeftError> => {
    try {
      await (typeof p === 'function' ? p() : p);
    } catch (e) {
      expect(e).toBeInstanceOf(WeftError);
      return e as WeftError;
    }
    throw new Error('expected an error');
  };

  it('host calls', async () => {
    let e = await code(weft.send({ type: 'no/such', id: 'x' }, 1));
    expect(e.code).toBe('ERR_WEFT_UNKNOWN_FUNCTION');
    expect(e.message).toContain('"no/such"');
    e = await code(weft.send({ type: 'nonamespace', id: 'x' }, 1));
    expect(e.code).toBe('ERR_WEFT_INVALID_ADDRESS');
    expect(e.message).toContain('"nonamespace"');
    e = await code(weft.send({ type: 'bank/account', id: '' }, 1));
    expect(e.code).toBe('ERR_WEFT_INVALID_ADDRESS');
    e = await code(weft.send('bank/account' as never, 1));
    expect(e.code).toBe('ERR_WEFT_INVALID_ADDRESS');
    expect(e.message).toContain('"bank/account"');
    e = await code(weft.send({ type: 'bank/account', id: 'a' }, { cb: () => 1 }));
    expect(e.code).toBe('ERR_WEFT_UNSERIALIZABLE');
    expect(e.message).toContain('cb');
    e = await code(weft.send({ type: 'bank/account', id: 'a' }, 'x'.repeat(600 * 1024)));
    expect(e.code).toBe('ERR_WEFT_TOO_LARGE');
    expect(e.message).toContain('maxMessageBytes');
    e = await code(() => weft.egress('bank/nope'));
    expect(e.code).toBe('ERR_WEFT_UNKNOWN_EGRESS');
    expect(e.message).toContain('"bank/nope"');
    e = await code(weft.query({ type: 'no/such', id: 'x' }));
    expect(e.code).toBe('ERR_WEFT_UNKNOWN_FUNCTION');
    e = await code(weft.request({ type: 'bank/account', id: 'a' }, 1, { timeoutMs: -5 }));
    expect(e.code).toBe('ERR_WEFT_INVALID_ARG');
    expect(e.message).toContain('-5');
    e = await code(weft.send({ type: 'bank/account', id: 'a' }, 1, { type: 'int' as never }));
    expect(e.code).toBe('ERR_WEFT_INVALID_ARG');
    expect(e.message).toBe('weft.send: opts.type must be a value type made with type.* (got "int")');
    e = await code(() => weft.metrics('json' as 'prometheus'));
    expect(e.code).toBe('ERR_WEFT_INVALID_ARG');
    await ok();
  });

  it('calls inside a function fail that invocation only, with the error in its dead letter', async () => {
    const dead = weft.egress('weft/dead-letters');
    const cases: Array<[string, string, string]> = [
      ['state', 'ERR_WEFT_UNKNOWN_STATE', '"nope"'],
      ['egress', 'ERR_WEFT_UNKNOWN_EGRESS', '"bank/nope"'],
      ['function', 'ERR_WEFT_UNSERIALIZABLE', 'cb'],
      ['unknown', 'ERR_WEFT_UNKNOWN_FUNCTION', '"no/such"'],
      ['address', 'ERR_WEFT_INVALID_ADDRESS', 'id'],
      ['big', 'ERR_WEFT_TOO_LARGE', 'maxMessageBytes'],
      ['int', 'ERR_WEFT_TYPE_MISMATCH', '"not a number"'],
      ['compute', 'ERR_WEFT_COMPUTE', 'no compute file'],
    ];
    for (const [what] of cases) await weft.send({ type: 'test/bad', id: what }, what);
    const letters = (await takeValues(dead, cases.length)) as DeadLetter[];
    for (const [what, errCode, named] of cases) {
      const letter = letters.find((l) => l.target.id === what);
      expect(letter, what).toBeDefined();
      expect((letter!.error as WeftError).code, what).toBe(errCode);
      expect(letter!.error.message, what).toContain(named);
      // Deterministic errors are dead-lettered at once; a compute failure is retried.
      expect(letter!.attempts, what).toBe(errCode === 'ERR_WEFT_COMPUTE' ? 2 : 1);
      expect(await weft.query({ type: 'test/bad', id: what })).toBeUndefined();
    }
    await ok();
  });
});
