import { expect } from 'vitest';
import { WeftError } from '../../src/errors.js';

/** Calls `fn` and returns the WeftError it threw, asserting it is one with `code` (and `message`, when given). */
export function expectWeftError(fn: () => unknown, code: string, message?: string | RegExp): WeftError {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(thrown).toBeInstanceOf(WeftError);
  expect((thrown as WeftError).code).toBe(code);
  if (typeof message === 'string') expect((thrown as WeftError).message).toBe(message);
  else if (message !== undefined) expect((thrown as WeftError).message).toMatch(message);
  return thrown as WeftError;
}
