/**
 * Wire names: strings every message repeats (function types, typenames) travel through the rings
 * as small integers instead.
 *
 * Every engine message names its target's function type and its value's typename; written out,
 * they are most of a small message's bytes, the encoder copies them character by character, and
 * the decoder allocates a fresh string for each, which every Map lookup on the shard then hashes
 * again. A table of the names the module declares, made once by main and handed to every shard
 * at boot, turns each into a 1-byte msgpack fixint on the wire and into the SAME interned string
 * object after decoding (its hash cached, equality a pointer compare).
 *
 * Frames stay plain msgpack: a named field holds either an int (an index into the table) or a
 * string (a name outside the table: remote StateFun types, typenames the module does not
 * declare). The table is a property of one running engine — main and its shard workers — and is
 * never written to disk: snapshots store envelopes with their strings (checkpoint/participant.ts),
 * and main's resend log is decoded with the same table it was encoded with.
 */
import { WeftError, describe } from '../core/errors.js';

/** At most this many names: indexes stay within msgpack's uint16. */
export const MAX_WIRE_NAMES = 0xffff;

export class NameTable {
  readonly names: readonly string[];
  readonly #index: ReadonlyMap<string, number>;

  constructor(names: readonly string[]) {
    if (names.length > MAX_WIRE_NAMES) {
      throw new WeftError('ERR_WEFT_INVALID_ARG', `a name table holds at most ${MAX_WIRE_NAMES} names (got ${names.length})`);
    }
    const index = new Map<string, number>();
    for (let i = 0; i < names.length; i++) {
      const name = names[i];
      if (typeof name !== 'string') throw new WeftError('ERR_WEFT_INVALID_ARG', `name table entry ${i} is ${describe(name)}, not a string`);
      if (index.has(name)) throw new WeftError('ERR_WEFT_INVALID_ARG', `name table entry ${i} repeats ${describe(name)}`);
      index.set(name, i);
    }
    this.names = names;
    this.#index = index;
  }

  /** The index of `name`, or -1 when the table does not hold it (it then travels as a string). */
  indexOf(name: string): number {
    return this.#index.get(name) ?? -1;
  }

  /** The field `name` travels as: its index when the table holds it, else the string itself ({@link resolve} reads it back). */
  field(name: string): number | string {
    const i = this.#index.get(name);
    return i === undefined ? name : i;
  }

  /**
   * The name a decoded field holds: the table's string for an index, the field itself for a
   * string (or null).
   * @throws WeftError `ERR_WEFT_CORRUPT_FRAME` for an index outside the table or any other value.
   */
  resolve(field: unknown): string | null {
    if (typeof field === 'string' || field === null) return field;
    const name = typeof field === 'number' ? this.names[field] : undefined;
    if (name === undefined) {
      throw new WeftError('ERR_WEFT_CORRUPT_FRAME', `frame holds name index ${describe(field)}, outside the name table of ${this.names.length} names`);
    }
    return name;
  }
}

/** Which records carry names, and in which fields: for {@link FrameEncoder}'s `names` option. */
export interface NamedRecords {
  readonly table: NameTable;
  /** Records whose first element equals this tag carry names... */
  readonly tag: number;
  /** ...in these positions (each a string, or null). */
  readonly fields: readonly number[];
}
