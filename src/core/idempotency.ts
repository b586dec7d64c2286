/**
 * Idempotency keys of host messages (`weft.send` / `weft.request` with `{ idempotencyKey }`), as
 * Restate has them: a message whose key its target address has already applied within the
 * retention window (`idempotencyRetentionMs`) is not applied again, and a request gets the first
 * invocation's reply again. The shard that owns the address keeps its keys with the address's
 * state (state/instance.ts), so they are committed in the same checkpoint as the effects of the
 * invocation that applied them; see shard/dispatcher.ts for how they are looked up and purged.
 */
import { WeftError, describe } from './errors.js';

/** Longest idempotency key, in UTF-16 code units. */
export const MAX_IDEMPOTENCY_KEY_LENGTH = 256;

/** Default retention window of idempotency keys: 24 hours. */
export const DEFAULT_IDEMPOTENCY_RETENTION_MS = 24 * 3600 * 1000;

/** Longest retention window accepted: 30 days. */
export const MAX_IDEMPOTENCY_RETENTION_MS = 30 * 24 * 3600 * 1000;

/**
 * Caller type of the delayed message that purges one key once its window has passed (function
 * types in the `weft/` namespace are reserved, so no host or function message has it).
 */
export const IDEMPOTENCY_PURGE_CALLER = 'weft/idempotency';

/**
 * Typename of the delayed message that purges one key once its window has passed. It never
 * reaches a function (the dispatcher consumes it); the `weft/` namespace is reserved.
 */
export const IDEMPOTENCY_PURGE_TYPENAME = 'weft/idempotency-expired';

/**
 * Checks `opts.idempotencyKey` of `what` (`weft.send`, `weft.request`): undefined, or a non-empty
 * string of at most {@link MAX_IDEMPOTENCY_KEY_LENGTH} characters.
 * @throws WeftError `ERR_WEFT_INVALID_ARG` naming the bad value.
 */
export function checkIdempotencyKey(key: unknown, what: string): string | undefined {
  if (key === undefined) return undefined;
  if (typeof key !== 'string' || key.length === 0 || key.length > MAX_IDEMPOTENCY_KEY_LENGTH) {
    const shown = typeof key === 'string' && key.length > 64 ? `a string of ${key.length} characters` : describe(key);
    throw new WeftError('ERR_WEFT_INVALID_ARG', `${what} idempotencyKey must be a non-empty string of at most ${MAX_IDEMPOTENCY_KEY_LENGTH} characters (got ${shown})`);
  }
  return key;
}
