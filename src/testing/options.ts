/**
 * Options of {@link createTestHarness}: the engine's invocation and limit options (same names,
 * defaults and validation messages as `Weft.start`), plus what only a virtual clock needs.
 */
import { WeftError, describe } from '../core/errors.js';
import { intOption, resolveInvocationSettings, type InvocationSettings } from '../contract/options.js';

/** Options of `createTestHarness`. Every field is documented with its unit and default. */
export interface TestHarnessOptions {
  /**
   * Virtual time at start, in ms since the Unix epoch (what `ctx` effects, dead letters' `at` and
   * TTLs see). A positive integer: the engine records "never invoked" as time 0, so a clock
   * starting at 0 would make `expireAfterCall` forget the first call.
   * Default 1_704_067_200_000 (2024-01-01T00:00:00Z), fixed so that runs are reproducible.
   */
  startTime?: number;
  /** Attempts of an invocation whose function throws, before its message is dead-lettered. Default 3 (as the engine). */
  maxAttempts?: number;
  /** Backoff before the first retry, in VIRTUAL ms, doubling each attempt: retries fire on `advance()`. Default 10 (as the engine). */
  retryBackoffMs?: number;
  /** Largest encoded message value, in bytes. Default 512 KiB (as the engine). */
  maxMessageBytes?: number;
  /** Largest encoded state value, in bytes. Default 1 MiB (as the engine). */
  maxStateValueBytes?: number;
  /**
   * How long, in REAL ms, one `send`/`request`/`advance`/`idle` may take to reach quiescence before
   * it rejects with ERR_WEFT_TIMEOUT: async functions awaiting something that never settles, or
   * a message cycle that never ends. Default 30_000.
   */
  settleTimeoutMs?: number;
  /**
   * How long, in VIRTUAL ms, an address remembers an idempotency key it applied (as the engine's
   * option; expired keys are purged on `advance()`). Default 86_400_000 (24 h, as the engine).
   */
  idempotencyRetentionMs?: number;
}

/** The harness's invocation settings (no deadline), and what only the harness has. */
export interface ResolvedHarnessOptions extends InvocationSettings {
  readonly startTime: number;
  readonly settleTimeoutMs: number;
}

export const HARNESS_DEFAULTS = Object.freeze({
  startTime: Date.UTC(2024, 0, 1),
  settleTimeoutMs: 30_000,
});

/** Largest time a JS Date can hold (ms since the epoch). */
const MAX_TIME = 8_640_000_000_000_000;

const KNOWN = new Set(['startTime', 'maxAttempts', 'retryBackoffMs', 'maxMessageBytes', 'maxStateValueBytes', 'settleTimeoutMs', 'idempotencyRetentionMs']);

function bad(message: string): WeftError<'ERR_WEFT_INVALID_OPTION'> {
  return new WeftError('ERR_WEFT_INVALID_OPTION', message);
}

export function resolveHarnessOptions(options: unknown): ResolvedHarnessOptions {
  if (options === undefined) options = {};
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw bad(`createTestHarness options must be an object (got ${describe(options)})`);
  }
  const o = options as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (!KNOWN.has(key)) throw bad(`unknown option ${describe(key)}`);
  }
  // The engine's validation (contract/options.ts), so a message reads the same in both.
  const startTime = intOption('startTime', o.startTime, HARNESS_DEFAULTS.startTime, 1, MAX_TIME);
  return Object.freeze({
    startTime,
    ...resolveInvocationSettings(o),
    settleTimeoutMs: intOption('settleTimeoutMs', o.settleTimeoutMs, HARNESS_DEFAULTS.settleTimeoutMs, 1),
  });
}
