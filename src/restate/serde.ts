/**
 * A weft value type as a Restate `Serde` (the SDK's serialization hook: `contentType`,
 * `serialize`, `deserialize`), for Restate code that reads or writes the values weft functions
 * keep: a declared state is stored under its name as exactly the bytes its type encodes, so
 * `ctx.get('balance', valueSerde(type.int()))` in a Restate handler reads a weft account's
 * balance. Structurally a `Serde<T>`: no SDK import is needed to make one.
 */
import { WeftError, describe } from '../core/errors.js';
import type { ValueType } from '../module/definition.js';
import { isValueType } from '../codec/types.js';

export interface ValueSerde<T> {
  readonly contentType: string;
  serialize(value: T): Uint8Array;
  deserialize(data: Uint8Array): T;
}

export function valueSerde<T>(type: ValueType<T>): ValueSerde<T> {
  if (!isValueType(type)) throw new WeftError('ERR_WEFT_INVALID_ARG', `valueSerde takes a weft value type (type.int(), type.json(), ...), got ${describe(type)}`);
  return {
    contentType: 'application/octet-stream',
    serialize: (value: T) => type.encode(value, 'valueSerde value'),
    deserialize: (data: Uint8Array) => type.decode(data),
  };
}
