import { describe as suite, expect, it } from 'vitest';
import { WeftError, deserializeError, describe, isWeftError, serializeError } from '../../src/core/errors.js';

suite('WeftError', () => {
  it('carries a literal code, a message and a cause', () => {
    const cause = new TypeError('inner');
    const err = new WeftError('ERR_WEFT_TIMEOUT', 'request to "a/b" timed out after 5 ms', { cause });
    expect(err).toBeInstanceOf(Error);
    expect(err.name).toBe('WeftError');
    expect(err.code).toBe('ERR_WEFT_TIMEOUT');
    expect(err.message).toBe('request to "a/b" timed out after 5 ms');
    expect(err.cause).toBe(cause);
    expect(isWeftError(err, 'ERR_WEFT_TIMEOUT')).toBe(true);
    expect(isWeftError(err, 'ERR_WEFT_CLOSED')).toBe(false);
    expect(isWeftError(new Error('x'))).toBe(false);
  });

  it('crosses a boundary as plain data and is rebuilt with code, stack and cause', () => {
    const err = new WeftError('ERR_WEFT_UNKNOWN_EGRESS', 'egress "x/y" is not declared', { cause: new RangeError('r') });
    const plain = JSON.parse(JSON.stringify(serializeError(err)));
    const back = deserializeError(plain);
    expect(back).toBeInstanceOf(WeftError);
    expect((back as WeftError).code).toBe('ERR_WEFT_UNKNOWN_EGRESS');
    expect(back.message).toBe(err.message);
    expect(back.stack).toBe(err.stack);
    expect((back.cause as Error).name).toBe('RangeError');
    expect((back.cause as Error).message).toBe('r');
  });

  it('serializes thrown non-errors and foreign codes', () => {
    expect(serializeError('boom').message).toBe('non-error thrown: boom');
    expect(serializeError({ a: 1 }).message).toBe('non-error thrown: {"a":1}');
    const e = Object.assign(new Error('sys'), { code: 'ENOENT' });
    const back = deserializeError(serializeError(e)) as Error & { code: string };
    expect(back).not.toBeInstanceOf(WeftError);
    expect(back.code).toBe('ENOENT');
  });

  it('describes values briefly and never throws', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(describe(-1)).toBe('-1');
    expect(describe('auto')).toBe('"auto"');
    expect(describe(undefined)).toBe('undefined');
    expect(describe(null)).toBe('null');
    expect(describe(() => 1)).toMatch(/^\[function/);
    expect(describe(cyclic)).toBe('[object Object]');
    expect(describe({ shards: 3 })).toBe('{"shards":3}');
    expect(describe(new Uint8Array(4))).toBe('Uint8Array(4)');
    expect(describe('x'.repeat(200)).length).toBeLessThan(90);
  });
});
