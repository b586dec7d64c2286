/**
 * Addresses, typenames, ids, state names and their limits; plus the hash that places an address
 * in a key group. Everything here is pure and cheap, because the router and every shard call it
 * on each message.
 */
import { WeftError, describe } from './errors.js';

/** A function instance: its function typename and its id. */
export interface Address {
  /** The function typename, `<namespace>/<name>`. */
  readonly type: string;
  /** The instance id: any non-empty, well-formed string up to {@link LIMITS.maxIdBytes} UTF-8 bytes. */
  readonly id: string;
}

/**
 * Size limits of names and values. They are part of the contract (documented in the README) and
 * the same on every thread. Raising one later is compatible; lowering one may strand data.
 */
export const LIMITS = Object.freeze({
  /**
   * Typenames (function types, egress names, value typenames): 256 bytes. Typenames are ASCII
   * (see {@link validateTypename}), so bytes = characters. They prefix every stored key and
   * travel with every message, so they stay short.
   */
  maxTypenameBytes: 256,
  /** Instance ids: 1024 bytes of UTF-8. Long enough for composite keys, short for LMDB keys (max 1978 bytes). */
  maxIdBytes: 1024,
  /** State names: 128 characters of `[A-Za-z0-9_]`. */
  maxStateNameLength: 128,
  /**
   * The absolute ceiling of one encoded value, in bytes (256 MiB). The engine's configurable
   * `maxMessageBytes` / `maxStateValueBytes` are the limits users meet; this one only stops a
   * value type from building something no limit could ever admit.
   */
  maxValueBytes: 256 * 1024 * 1024,
  /** Nesting depth of a json/msgpack value. msgpackr recurses per level; this keeps a worker's stack safe. */
  maxValueDepth: 512,
} as const);

/** The namespace weft keeps for itself: no user function or egress may use it. */
export const RESERVED_NAMESPACE = 'weft';

/** The egress that always exists: failed messages land here after their retries. */
export const DEAD_LETTERS_EGRESS = 'weft/dead-letters';

const TYPENAME_RE = /^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+$/;
const TYPENAME_RULE = 'must be "<namespace>/<name>" using letters, digits, "_", "-" and "."';
const STATE_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

// String.prototype.isWellFormed exists on Node >= 20 (V8 11.1) but not in the ES2023 lib typings.
const wellFormed = (String.prototype as unknown as { isWellFormed: (this: string) => boolean }).isWellFormed;

/** True when `s` has no lone surrogate, i.e. survives UTF-8 encoding unchanged. */
export function isWellFormed(s: string): boolean {
  return wellFormed.call(s);
}

/** True when `s` is a valid typename (non-throwing form of {@link validateTypename}). */
export function isValidTypename(s: unknown): s is string {
  return typeof s === 'string' && s.length <= LIMITS.maxTypenameBytes && TYPENAME_RE.test(s);
}

/**
 * The problem with a would-be typename, or undefined when it is valid. Shared by every validator
 * so the rule reads the same in every message.
 */
function typenameProblem(s: unknown, what: string): { code: 'ERR_WEFT_TOO_LARGE' | 'bad'; message: string } | undefined {
  if (typeof s !== 'string') return { code: 'bad', message: `${what} ${TYPENAME_RULE} (got ${describe(s)})` };
  if (s.length > LIMITS.maxTypenameBytes) {
    return {
      code: 'ERR_WEFT_TOO_LARGE',
      message: `${what} must be at most ${LIMITS.maxTypenameBytes} bytes (got ${s.length}: ${describe(s)})`,
    };
  }
  if (!TYPENAME_RE.test(s)) return { code: 'bad', message: `${what} ${TYPENAME_RULE} (got ${describe(s)})` };
  return undefined;
}

/**
 * Checks a typename: `<namespace>/<name>`, exactly one `/`, both parts non-empty, made of ASCII
 * letters, digits, `_`, `-` and `.` (so `io.statefun.types/int` is valid), at most
 * {@link LIMITS.maxTypenameBytes}. StateFun itself also accepts `/` inside the namespace; weft
 * does not, which keeps a `namespace/*` pattern unambiguous.
 *
 * Throws ERR_WEFT_INVALID_TYPENAME, or ERR_WEFT_TOO_LARGE when it is too long. `what` names the
 * value in the message, e.g. `function typename` or `egresses[0]`.
 */
export function validateTypename(s: unknown, what = 'typename'): asserts s is string {
  const p = typenameProblem(s, what);
  if (p !== undefined) throw new WeftError(p.code === 'bad' ? 'ERR_WEFT_INVALID_TYPENAME' : p.code, p.message);
}

/** Splits a valid typename at its `/`. */
export function splitTypename(typename: string): { namespace: string; name: string } {
  const slash = typename.indexOf('/');
  return { namespace: typename.slice(0, slash), name: typename.slice(slash + 1) };
}

/**
 * Checks an instance id: a non-empty string of at most {@link LIMITS.maxIdBytes} UTF-8 bytes,
 * without lone surrogates (the id is UTF-8 on disk and on the StateFun wire, where a lone
 * surrogate would turn into U+FFFD and silently name another instance). Any other character,
 * control characters and `\0` included, is allowed: StateFun peers may use them, and
 * {@link addressKey} stays unambiguous because typenames cannot contain `\0`. One exception:
 * an id of {@link LONG_ID_UNITS} or more UTF-16 units must not contain U+0000–U+0004. The
 * storage's key encoding (ordered-binary, under lmdb-js) escapes those characters only in
 * shorter strings; in a longer one they read back as key separators, so range reads (listing,
 * re-partitioning on a shard-count change) would cut the id short and lose its state.
 *
 * Throws ERR_WEFT_INVALID_ADDRESS, or ERR_WEFT_TOO_LARGE.
 */
export function validateId(id: unknown, what = 'id'): asserts id is string {
  if (typeof id !== 'string' || id.length === 0) {
    throw new WeftError('ERR_WEFT_INVALID_ADDRESS', `${what} must be a non-empty string (got ${describe(id)})`);
  }
  // Each UTF-16 unit is 1..3 UTF-8 bytes: short ids need no byte count at all.
  if (id.length * 3 > LIMITS.maxIdBytes) {
    const bytes = Buffer.byteLength(id, 'utf8');
    if (bytes > LIMITS.maxIdBytes) {
      throw new WeftError(
        'ERR_WEFT_TOO_LARGE',
        `${what} must be at most ${LIMITS.maxIdBytes} bytes of UTF-8 (got ${bytes}: ${describe(id)})`,
      );
    }
  }
  if (!wellFormed.call(id)) {
    throw new WeftError('ERR_WEFT_INVALID_ADDRESS', `${what} must not contain lone surrogates (got ${describe(id)})`);
  }
  if (id.length >= LONG_ID_UNITS && KEY_SEPARATOR_CHARS.test(id)) {
    throw new WeftError(
      'ERR_WEFT_INVALID_ADDRESS',
      `${what} of ${LONG_ID_UNITS} or more characters must not contain U+0000-U+0004 (got ${describe(id)}): stored keys could not keep it intact`,
    );
  }
}

/** Ids at least this long (UTF-16 units) are stored unescaped: see {@link validateId}. */
export const LONG_ID_UNITS = 64;
const KEY_SEPARATOR_CHARS = /[\u0000-\u0004]/;

/**
 * Checks an address `{ type, id }`: `type` a valid typename, `id` a valid id (extra properties are
 * ignored). Throws ERR_WEFT_INVALID_ADDRESS, or ERR_WEFT_TOO_LARGE for an over-long part; the
 * message names `what`, e.g. `ctx.send address.type must be ...`.
 */
export function validateAddress(addr: unknown, what = 'address'): asserts addr is Address {
  if (typeof addr !== 'object' || addr === null) {
    throw new WeftError('ERR_WEFT_INVALID_ADDRESS', `${what} must be an object { type, id } (got ${describe(addr)})`);
  }
  const a = addr as { type?: unknown; id?: unknown };
  const p = typenameProblem(a.type, `${what}.type`);
  if (p !== undefined) throw new WeftError(p.code === 'bad' ? 'ERR_WEFT_INVALID_ADDRESS' : p.code, p.message);
  validateId(a.id, `${what}.id`);
}

/**
 * Checks a state name: `[A-Za-z_][A-Za-z0-9_]*`, at most {@link LIMITS.maxStateNameLength}
 * characters. Throws ERR_WEFT_UNKNOWN_STATE (the code for malformed or undeclared state names).
 */
export function validateStateName(name: unknown, functionType: string): asserts name is string {
  if (typeof name !== 'string' || !STATE_NAME_RE.test(name)) {
    throw new WeftError(
      'ERR_WEFT_UNKNOWN_STATE',
      `state name ${describe(name)} of function ${describe(functionType)} must match ${STATE_NAME_RE}`,
    );
  }
  if (name.length > LIMITS.maxStateNameLength) {
    throw new WeftError(
      'ERR_WEFT_UNKNOWN_STATE',
      `state name ${describe(name)} of function ${describe(functionType)} must be at most ${LIMITS.maxStateNameLength} characters (got ${name.length})`,
    );
  }
}

/**
 * The Map key of an address: `type + "\0" + id`. Unambiguous because typenames cannot contain
 * `\0`; {@link parseAddressKey} splits it at the first `\0`.
 */
export function addressKey(type: string, id: string): string {
  return `${type}\0${id}`;
}

/** Inverse of {@link addressKey}. */
export function parseAddressKey(key: string): Address {
  const sep = key.indexOf('\0');
  if (sep < 0) throw new WeftError('ERR_WEFT_INVALID_ADDRESS', `address key ${describe(key)} has no "\\0" separator`);
  return { type: key.slice(0, sep), id: key.slice(sep + 1) };
}

// ---------------------------------------------------------------------------------------------
// hash32: MurmurHash3 (x86, 32-bit) over UTF-16 code units, two units per 32-bit block.
//
// Why this hash: it runs on every routed message on every thread, so it must be cheap in JS
// (Math.imul, no allocation, no UTF-8 encoding) and well mixed in its LOW bits, because the key
// group is `hash % keyGroups`; Murmur3's final avalanche gives that, plain FNV-1a does not.
//
// It is PERSISTENT: key groups decide which LMDB partition holds an instance's state, so
// changing anything below (seed, block layout, the length fed to the finaliser) re-homes every
// stored instance. Treat the test vectors in test/core/address.test.ts as frozen.
// ---------------------------------------------------------------------------------------------

const SEED = 0x9747b28c;
const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;

function mixK(k: number): number {
  k = Math.imul(k, C1);
  k = (k << 15) | (k >>> 17);
  return Math.imul(k, C2);
}

function mixH(h: number, k: number): number {
  h ^= mixK(k);
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

function fmix(h: number, units: number): number {
  h ^= units;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A deterministic, well-distributed unsigned 32-bit hash of a string, identical on every thread. */
export function hash32(s: string): number {
  const n = s.length;
  let h = SEED;
  let i = 0;
  for (; i + 1 < n; i += 2) h = mixH(h, s.charCodeAt(i) | (s.charCodeAt(i + 1) << 16));
  if (i < n) h ^= mixK(s.charCodeAt(i));
  return fmix(h, n);
}

/**
 * The hash state after a type's units (and, for an odd-length type, the separator): messages
 * mostly go to the type the previous one went to, so its half of the hash is computed once.
 */
let prefixType = '';
let prefixHash = SEED;

/**
 * `hash32(type + "\0" + id)` without building the concatenated string (a fresh string per routed
 * message is measurable garbage). The units of `type`, a 0 unit and the units of `id` are fed
 * as one stream, so the result is bit-for-bit the hash of the concatenation.
 */
export function hashAddress(type: string, id: string): number {
  const na = type.length;
  const nb = id.length;
  let h: number;
  if (type === prefixType) {
    h = prefixHash;
  } else {
    h = SEED;
    let i = 0;
    for (; i + 1 < na; i += 2) h = mixH(h, type.charCodeAt(i) | (type.charCodeAt(i + 1) << 16));
    // Odd-length type: its last unit and the separator (0) form one block.
    if (i < na) h = mixH(h, type.charCodeAt(i));
    prefixType = type;
    prefixHash = h;
  }
  let j: number;
  if ((na & 1) === 1) {
    j = 0;
  } else if (nb > 0) {
    // Even-length type: the separator opens a block that the first id unit closes.
    h = mixH(h, id.charCodeAt(0) << 16);
    j = 1;
  } else {
    h ^= mixK(0);
    return fmix(h, na + 1);
  }
  for (; j + 1 < nb; j += 2) h = mixH(h, id.charCodeAt(j) | (id.charCodeAt(j + 1) << 16));
  if (j < nb) h ^= mixK(id.charCodeAt(j));
  return fmix(h, na + 1 + nb);
}

/**
 * The key group of an address: `hash32(type + "\0" + id) % keyGroups`. `keyGroups` must be a
 * positive integer (the router validates it once; this runs per message and does not).
 */
export function keyGroupOf(type: string, id: string, keyGroups: number): number {
  return hashAddress(type, id) % keyGroups;
}
