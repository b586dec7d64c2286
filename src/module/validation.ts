/**
 * Checks shared by every entry that accepts a message — the host facade (`weft.send`), the
 * invocation context (`ctx.send`) and the test harness — so they refuse the same input with the
 * same code and the same words. `label` names the call (`weft.send`, `ctx.sendAfter`, ...).
 */
import { validateAddress, type Address } from '../core/address.js';
import { WeftError, describe } from '../core/errors.js';
import type { ValueType } from './definition.js';
import { isValueType, sharedOneBytePayload } from '../codec/types.js';
import type { RuntimeModule } from './runtime.js';

/** The target of a message: a well-formed address of a function the module (or a remote endpoint) serves. */
export function checkTarget(module: RuntimeModule, to: unknown, label: string): Address {
  const a = to as Address;
  // Fast path first: the full validation (and its message) only when something looks off.
  if (typeof to !== 'object' || to === null || typeof a.type !== 'string' || typeof a.id !== 'string' || a.id.length === 0 || a.id.length > 256) {
    validateAddress(to, `${label} address`);
  }
  if (!module.isKnownFunction(a.type)) {
    validateAddress(to, `${label} address`);
    throw new WeftError('ERR_WEFT_UNKNOWN_FUNCTION', `${label}: no function of type ${describe(a.type)} is defined (address ${describe(to)})`);
  }
  return a;
}

/** Encodes a message value with `type`, enforcing `maxMessageBytes` (the hot path: no tuple). */
export function encodePayload(type: ValueType<unknown>, value: unknown, label: string, maxMessageBytes: number): Uint8Array {
  const payload = type.encode(value, label);
  if (payload.byteLength > maxMessageBytes) {
    throw new WeftError('ERR_WEFT_TOO_LARGE', `${label} encodes to ${payload.byteLength} bytes, over the limit of ${maxMessageBytes} (maxMessageBytes)`);
  }
  return payload;
}

/**
 * {@link encodePayload}, except that a one-byte msgpack value is a SHARED array
 * (sharedOneBytePayload): only for payloads copied before user code can see them — main's ingress
 * and `ctx.send` (Dispatcher.route copies it for a local target).
 */
export function encodeSharedPayload(type: ValueType<unknown>, value: unknown, label: string, maxMessageBytes: number): Uint8Array {
  return sharedOneBytePayload(type, value) ?? encodePayload(type, value, label, maxMessageBytes);
}

/**
 * `${label} value`, made once per label: labels are literals at the call sites, and building the
 * path on every message allocates a string per send only for an error message that is rare.
 */
const valuePaths = new Map<string, string>();
function valuePath(label: string): string {
  let path = valuePaths.get(label);
  if (path === undefined) {
    path = `${label} value`;
    valuePaths.set(label, path);
  }
  return path;
}

/** Encodes a message value with its type (default msgpack), enforcing `maxMessageBytes`. */
export function encodeMessage(module: RuntimeModule, value: unknown, type: ValueType<unknown> | undefined, label: string, maxMessageBytes: number): [typename: string, payload: Uint8Array] {
  const t = valueType(module, type, label);
  return [t.typename, encodePayload(t, value, valuePath(label), maxMessageBytes)];
}

/** `opts.type` of a call, or the module's default; anything that is not a `type.*` value is refused. */
export function valueType(module: RuntimeModule, type: unknown, label: string): ValueType<unknown> {
  if (type === undefined) return module.defaultType;
  if (!isValueType(type)) {
    throw new WeftError('ERR_WEFT_INVALID_ARG', `${label}: opts.type must be a value type made with type.* (got ${describe(type)})`);
  }
  return type;
}
