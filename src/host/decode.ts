/**
 * Host-side decoding of what shards hand back: reply and egress values, dead letters, query
 * results. The engine's host facade (weft.ts and its helpers) and the test harness
 * (testing/harness.ts) decode the same way through these functions.
 */
import type { Address } from '../core/address.js';
import { deserializeError, type SerializedError } from '../core/errors.js';
import { DEAD_LETTER_EGRESS, type RuntimeModule } from '../module/runtime.js';
import type { InstanceRecord } from '../state/instance.js';

/** A record of the `weft/dead-letters` egress. */
export interface DeadLetter {
  target: Address;
  caller: Address | null;
  typename: string;
  /** The message value, decoded when the module knows its type. */
  value: unknown;
  error: Error;
  attempts: number;
  /** ms since the Unix epoch */
  at: number;
}

/** A value by its typename: decoded when the module knows the type, else the bytes. Throws when the bytes do not decode. */
export function decodeValue(module: RuntimeModule, typename: string, payload: Uint8Array): unknown {
  const t = module.typeOf(typename);
  return t === undefined ? payload : t.decode(payload);
}

/** {@link decodeValue}, or the bytes when they do not decode. */
export function decodeOrBytes(module: RuntimeModule, typename: string, payload: Uint8Array): unknown {
  try {
    return decodeValue(module, typename, payload);
  } catch {
    return payload;
  }
}

/** The {@link DeadLetter} of a decoded `weft/dead-letters` record (its message value decoded when it can be). */
export function deadLetterOf(module: RuntimeModule, raw: Record<string, unknown>): DeadLetter {
  const typename = raw.typename as string;
  return {
    target: raw.target as Address,
    caller: (raw.caller as Address | null) ?? null,
    typename,
    value: decodeOrBytes(module, typename, raw.payload as Uint8Array),
    error: deserializeError(raw.error as SerializedError),
    attempts: raw.attempts as number,
    at: raw.at as number,
  };
}

/**
 * The value of a record of egress `name` (a {@link DeadLetter} for `weft/dead-letters`); a record
 * that does not decode is handed over as its bytes, with a process warning.
 */
export function decodeEgressValue(module: RuntimeModule, name: string, typename: string, payload: Uint8Array): unknown {
  try {
    const value = decodeValue(module, typename, payload);
    return name === DEAD_LETTER_EGRESS ? deadLetterOf(module, value as Record<string, unknown>) : value;
  } catch (err) {
    process.emitWarning(`weft: egress ${name} record could not be decoded: ${(err as Error).message}`);
    return payload;
  }
}

/** A query's answer from an instance record of function type `type`: its state by spec name, or undefined when it holds none. */
export function decodeQueryResult(module: RuntimeModule, type: string, record: InstanceRecord | null): Record<string, unknown> | undefined {
  if (record === null) return undefined;
  const fn = module.functions.get(type);
  const out: Record<string, unknown> = {};
  for (const [name, bytes, , typename] of record.slots) {
    if (fn !== undefined) {
      const spec = fn.specByName.get(name);
      if (spec !== undefined) out[name] = spec.type.decode(bytes);
    } else {
      // A remote function's state: decoded by its typename when the module knows the type.
      out[name] = typename === null ? bytes : decodeValue(module, typename, bytes);
    }
  }
  return Object.keys(out).length === 0 ? undefined : out;
}
