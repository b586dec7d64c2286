/**
 * Helpers shared by the test suites: typed-error assertions and bounded waits. Every wait in a
 * test is bounded, so a hang fails with a message naming what did not happen.
 */
import { expect } from 'vitest';
import { WeftError } from '../../src/core/errors.js';

function checkWeftError(thrown: unknown, code: string, message?: string | RegExp): WeftError {
  expect(thrown).toBeInstanceOf(WeftError);
  const err = thrown as WeftError;
  expect(err.code).toBe(code);
  if (typeof message === 'string') expect(err.message).toBe(message);
  else if (message !== undefined) expect(err.message).toMatch(message);
  return err;
}

/** Calls `fn` and returns the WeftError it threw, asserting it is one with `code` (and `message`, when given). */
export function expectWeftError(fn: () => unknown, code: string, message?: string | RegExp): WeftError {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  return checkWeftError(thrown, code, message);
}

/** Awaits `p` (or calls `fn` and awaits it) and returns the WeftError it rejected with, as {@link expectWeftError}. */
export async function expectWeftRejection(p: Promise<unknown> | (() => unknown), code: string, message?: string | RegExp): Promise<WeftError> {
  let thrown: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (err) {
    thrown = err;
  }
  return checkWeftError(thrown, code, message);
}

/** Rejects if `p` does not settle within `ms` (a bound on a wait, not a timing assertion). */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Waits until `cond()` holds, checking every `everyMs`; rejects after `ms` (a bound on a wait, not a timing assertion). */
export async function until(cond: () => boolean, ms: number, what: string, everyMs = 10): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`${what}: not reached within ${ms} ms`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
