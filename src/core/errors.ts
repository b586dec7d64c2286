/**
 * Every error weft raises is a {@link WeftError} with a stable, literal-typed `code`, so callers
 * can narrow on it (`if (err.code === 'ERR_WEFT_TIMEOUT')`). Messages name the offending value.
 * Errors cross threads as plain objects ({@link serializeError}) and are rebuilt on the other side
 * ({@link deserializeError}) with their code, message, stack and cause intact.
 */

/** The stable error codes, with what causes each. The README lists the same table. */
export const ErrorCodes = {
  /** An argument or option has the wrong type, range or shape. */
  ERR_WEFT_INVALID_ARG: 'invalid argument',
  /** An option passed to Weft.start is invalid. */
  ERR_WEFT_INVALID_OPTION: 'invalid option',
  /** A message was sent to a function type that no module (or remote endpoint) defines. */
  ERR_WEFT_UNKNOWN_FUNCTION: 'unknown function type',
  /** An address (`{ type, id }`) is malformed. */
  ERR_WEFT_INVALID_ADDRESS: 'invalid address',
  /** A typename is not of the form `<namespace>/<name>`. */
  ERR_WEFT_INVALID_TYPENAME: 'invalid typename',
  /** A state name is not declared in the function's `state` specs, or is malformed. */
  ERR_WEFT_UNKNOWN_STATE: 'unknown state name',
  /** An egress name is not declared in the module's `egresses`. */
  ERR_WEFT_UNKNOWN_EGRESS: 'unknown egress',
  /** A value cannot be carried by msgpack (function, symbol, cycle, ...) or by its declared type. */
  ERR_WEFT_UNSERIALIZABLE: 'value cannot be serialized',
  /** A value does not match the type it was declared or read as. */
  ERR_WEFT_TYPE_MISMATCH: 'type mismatch',
  /** A message, state value, id or typename exceeds its documented size limit. */
  ERR_WEFT_TOO_LARGE: 'value too large',
  /** A frame is larger than the ring that should carry it. */
  ERR_WEFT_FRAME_TOO_LARGE: 'frame too large for ring',
  /** A ring or frame header failed its integrity check. */
  ERR_WEFT_CORRUPT_FRAME: 'corrupt frame',
  /** The engine (or harness) is closed, or closing. */
  ERR_WEFT_CLOSED: 'closed',
  /**
   * The engine closed (or failed) before a committed message was applied: it waits for a paused
   * remote address, is kept in the data dir and is applied at the next start. Do not resend it.
   */
  ERR_WEFT_DEFERRED: 'committed; applied at the next start',
  /** A request or operation did not finish in time. */
  ERR_WEFT_TIMEOUT: 'timed out',
  /** A cancellation token is already used by a pending delayed message of the same sender. */
  ERR_WEFT_DUPLICATE_TOKEN: 'duplicate cancellation token',
  /** A function module could not be loaded or is invalid. */
  ERR_WEFT_INVALID_MODULE: 'invalid function module',
  /** The data directory is locked by another engine, or from an incompatible version. */
  ERR_WEFT_DATA_DIR: 'data directory unusable',
  /** A shard worker failed; the engine recovers from the last checkpoint. */
  ERR_WEFT_SHARD_FAILED: 'shard failed',
  /** User code threw: carried in dead letters and compute rejections. */
  ERR_WEFT_USER_CODE: 'user function failed',
  /** A compute task failed or the compute tier is not configured. */
  ERR_WEFT_COMPUTE: 'compute task failed',
  /** A StateFun protocol message is malformed or unexpected. */
  ERR_WEFT_PROTOCOL: 'protocol error',
  /** A remote (StateFun) function could not be reached or answered an error. */
  ERR_WEFT_REMOTE: 'remote function failed',
  /** A request's invocation ended without calling `ctx.reply`. */
  ERR_WEFT_NO_REPLY: 'no reply',
  /** A server is over a capacity limit (e.g. request bodies in flight); retry later. */
  ERR_WEFT_OVERLOADED: 'overloaded',
  /** A context method was used outside its invocation (after fn returned). */
  ERR_WEFT_INVOCATION_ENDED: 'invocation already ended',
  /** An optional peer dependency a feature needs (e.g. `@restatedev/restate-sdk` for `weft/restate`) is not installed. */
  ERR_WEFT_MISSING_PEER: 'optional peer dependency missing',
  /** An internal invariant broke: a bug in weft. */
  ERR_WEFT_INTERNAL: 'internal error',
} as const;

export type WeftErrorCode = keyof typeof ErrorCodes;

export interface WeftErrorOptions {
  cause?: unknown;
}

export class WeftError<C extends WeftErrorCode = WeftErrorCode> extends Error {
  override name = 'WeftError';
  readonly code: C;

  constructor(code: C, message: string, options?: WeftErrorOptions) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
  }
}

export function isWeftError(err: unknown, code?: WeftErrorCode): err is WeftError {
  return err instanceof WeftError && (code === undefined || err.code === code);
}

/** The plain shape an error takes when it crosses a thread or process boundary. */
export interface SerializedError {
  name: string;
  message: string;
  code?: string;
  stack?: string;
  cause?: SerializedError;
}

const MAX_CAUSE_DEPTH = 8;

export function serializeError(err: unknown, depth = 0): SerializedError {
  if (err instanceof Error) {
    const out: SerializedError = { name: err.name, message: err.message };
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string') out.code = code;
    if (typeof err.stack === 'string') out.stack = err.stack;
    if (err.cause !== undefined && depth < MAX_CAUSE_DEPTH) out.cause = serializeError(err.cause, depth + 1);
    return out;
  }
  let message: string;
  try {
    message = typeof err === 'string' ? err : JSON.stringify(err) ?? String(err);
  } catch {
    message = String(err);
  }
  return { name: 'Error', message: `non-error thrown: ${message}` };
}

/** Rebuilds an error from {@link serializeError}: a WeftError when the code is one of ours. */
export function deserializeError(s: SerializedError): Error {
  const cause = s.cause === undefined ? undefined : deserializeError(s.cause);
  let err: Error;
  if (s.code !== undefined && s.code in ErrorCodes) {
    err = new WeftError(s.code as WeftErrorCode, s.message, { cause });
  } else {
    err = new Error(s.message, cause === undefined ? undefined : { cause });
    err.name = s.name;
    if (s.code !== undefined) (err as Error & { code: string }).code = s.code;
  }
  if (s.stack !== undefined) err.stack = s.stack;
  return err;
}

/** Describes a value for an error message: short, type-revealing, never throws. */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'undefined':
      return 'undefined';
    case 'string': {
      const s = value.length > 80 ? `${value.slice(0, 77)}...` : value;
      return JSON.stringify(s);
    }
    case 'number':
    case 'boolean':
      return String(value);
    case 'bigint':
      return `${value}n`;
    case 'symbol':
      return value.toString();
    case 'function':
      return `[function ${value.name || 'anonymous'}]`;
    default: {
      if (Array.isArray(value)) return `array(${value.length})`;
      if (value instanceof Uint8Array) return `${value.constructor.name}(${value.byteLength})`;
      const ctor = (value as object).constructor?.name;
      try {
        const json = JSON.stringify(value);
        if (json !== undefined) {
          const short = json.length > 80 ? `${json.slice(0, 77)}...` : json;
          return ctor && ctor !== 'Object' ? `${ctor} ${short}` : short;
        }
      } catch {
        /* cyclic or throwing toJSON: fall through to the constructor name */
      }
      return `[object ${ctor ?? 'Object'}]`;
    }
  }
}
