/**
 * The function module: `defineModule` validates and freezes what a user declares (functions,
 * their state specs, egresses, the compute file, extra value types), and the public TypeScript
 * types user functions are written against (`Context`, `Message`).
 *
 * These are interfaces only: the engine (src/shard/) and the test harness implement `Context`
 * and `Message`; this file is what they agree on with user code.
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  DEAD_LETTERS_EGRESS,
  RESERVED_NAMESPACE,
  splitTypename,
  validateStateName,
  validateTypename,
  type Address,
} from '../core/address.js';
import { WeftError, describe } from '../core/errors.js';
import { BUILTIN_TYPES, isValueType, type ValueOf, type ValueType } from '../codec/types.js';

export type { Address } from '../core/address.js';
export type { CustomCodec, ValueOf, ValueType, ValueTypeKind } from '../codec/types.js';

// ---------------------------------------------------------------------------------------------
// What users write
// ---------------------------------------------------------------------------------------------

/** A state declaration with a time-to-live. Set at most one of the two TTLs. */
export interface StateDeclWithOptions<T = unknown> {
  readonly type: ValueType<T>;
  /** Milliseconds after the last write of this value when it expires (reads as `undefined`). */
  readonly expireAfterWrite?: number;
  /** Milliseconds after the last invocation of this instance when it expires. */
  readonly expireAfterCall?: number;
}

/** One entry of a function's `state`: a value type, or a type with a TTL. */
export type StateDecl<T = unknown> = ValueType<T> | StateDeclWithOptions<T>;

/** The JS value of a state declaration. */
export type StateValue<D> = D extends { readonly type: infer V } ? ValueOf<V> : ValueOf<D>;

/**
 * `ctx.state` for state values `S` (state name -> value type, e.g. `{ balance: number }`): each
 * property reads as the value or `undefined`; assigning stores, assigning `undefined` deletes.
 */
export type State<S> = { -readonly [K in keyof S]: S[K] | undefined };

/**
 * Options of `ctx.send`, `ctx.egress`, `ctx.reply`. (Not named SendOptions: that is the host's
 * `weft.send` options type in the public index.)
 */
export interface ValueOptions<T = unknown> {
  /** The value type (default `type.msgpack()`): decides the typename and the bytes. */
  readonly type?: ValueType<T>;
}

/** Options of `ctx.sendAfter`. */
export interface SendAfterOptions<T = unknown> extends ValueOptions<T> {
  /**
   * Names this delayed message for `ctx.cancelDelayed(token)`. Scoped to the sending address;
   * reusing a token that is still pending throws ERR_WEFT_DUPLICATE_TOKEN.
   */
  readonly cancellationToken?: string;
}

/**
 * The invocation context a function receives. `S` maps the function's state names to their
 * value types (`{ balance: number }`), so `ctx.state` is typed; `E` is the module's egress names.
 * `defineModule` infers both: user code needs no annotations.
 *
 * Every effect (state writes, sends, delayed messages, egress, reply) takes effect together when
 * the function returns or its promise resolves; if it throws, none do. Values are validated and
 * encoded at the call that passes them, so a bad value throws right there.
 */
export interface Context<S = Record<string, unknown>, E extends string = string> {
  /** This instance's address. */
  readonly self: Address;
  /** The sending function's address; `undefined` for messages from the host. */
  readonly caller: Address | undefined;
  /** The declared state: read a value (or `undefined`), assign to store, assign `undefined` to delete. */
  readonly state: State<S>;
  /** Sends a message to a function (this one included). `opts.type` picks the value type. */
  send<T = unknown>(to: Address, value: NoInfer<T>, opts?: ValueOptions<T>): void;
  /** Sends a durable delayed message, due `delayMs` milliseconds after this invocation commits. */
  sendAfter<T = unknown>(delayMs: number, to: Address, value: NoInfer<T>, opts?: SendAfterOptions<T>): void;
  /** Cancels a delayed message this instance sent with `token`; a no-op once it has fired. */
  cancelDelayed(token: string): void;
  /** Records a value to a declared egress. */
  egress<T = unknown>(name: E, value: NoInfer<T>, opts?: ValueOptions<T>): void;
  /** Answers the current message: resolves the host's `request()`, or is sent to the calling function. */
  reply<T = unknown>(value: NoInfer<T>, opts?: ValueOptions<T>): void;
  /** Runs a stateless task (a named export of the module's `compute` file) on the compute pool. */
  compute<R = unknown>(task: string, input: unknown): Promise<R>;
  /**
   * The invocation's time in ms since the Unix epoch: the engine's clock (wall time in the
   * engine, virtual time in the test harness), the same instant TTLs and `sendAfter` use.
   */
  now(): number;
}

/** A message as a function receives it. */
export interface Message {
  /** The typename of the value, e.g. `io.statefun.types/int`. */
  readonly typename: string;
  /** The value, decoded by the type the module knows for `typename` (msgpack when sent untyped). */
  readonly value: unknown;
  /** Decodes the value as `type`; throws ERR_WEFT_TYPE_MISMATCH when the typename differs. */
  as<T>(type: ValueType<T>): T;
  /** True when the message carries `type`'s typename; narrows `value`. */
  is<T>(type: ValueType<T>): this is TypedMessage<T>;
}

/** A {@link Message} known to carry a `T`. */
export interface TypedMessage<T> extends Message {
  readonly value: T;
}

/**
 * One function as declared in `defineModule({ functions })`; `S` maps state names to value types.
 *
 * Why the state is typed through its VALUES (`S[N]`) rather than as the declaration object:
 * TypeScript infers `S` by reverse-mapping `{ [N in keyof S]: StateDecl<S[N]> }`, which also
 * works for inline `{ type, expireAfterWrite }` objects. Inferring the declaration object and
 * mapping it afterwards loses those objects' types inside the reverse-mapped functions record
 * (measured with TS 5.9: `ctx.state.history` became `undefined`).
 */
export interface FunctionDecl<S, E extends string = string> {
  /** State declarations by name (`[A-Za-z_][A-Za-z0-9_]*`). */
  readonly state?: { readonly [N in keyof S]: StateDecl<S[N]> };
  /** The function: sync or async. One invocation per address at a time, in arrival order. */
  fn(ctx: Context<S, E>, msg: Message): void | Promise<void>;
}

/** The argument of {@link defineModule}. */
export interface ModuleDecl<F, E extends string> {
  /** Functions keyed by typename `<namespace>/<name>`. */
  readonly functions: { readonly [K in keyof F]: FunctionDecl<F[K], E> };
  /** Egress names (typenames) functions may record to; `weft/dead-letters` always exists. */
  readonly egresses?: readonly E[];
  /**
   * The file of stateless compute tasks (its named exports), run on a piscina pool: a `file:` URL
   * (e.g. `new URL('./tasks.js', import.meta.url)`) or a path, relative paths resolved against
   * the current directory when `defineModule` runs.
   */
  readonly compute?: URL | string;
  /**
   * Extra value types that arrive in messages but appear in no state spec, so that `msg.value`
   * can decode them by typename.
   */
  readonly types?: ReadonlyArray<ValueType<any>>;
}

// ---------------------------------------------------------------------------------------------
// What the engine reads
// ---------------------------------------------------------------------------------------------

/** A normalized state spec. */
export interface StateSpec {
  readonly name: string;
  readonly type: ValueType<unknown>;
  /** ms; absent when the value does not expire after writes. */
  readonly expireAfterWrite?: number;
  /** ms; absent when the value does not expire after calls. */
  readonly expireAfterCall?: number;
}

/** A normalized function. */
export interface FunctionSpec {
  readonly typename: string;
  /** State specs in declaration order. */
  readonly specs: readonly StateSpec[];
  /** The spec of a declared state name, or undefined. */
  stateSpec(name: string): StateSpec | undefined;
  /** The user function (the engine passes its own Context and Message). */
  readonly fn: (ctx: never, msg: never) => unknown;
}

/** The validated, frozen result of {@link defineModule}: what a module file default-exports. */
export interface ModuleDefinition {
  /** Functions by typename (a Map; read-only). */
  readonly functions: ReadonlyMap<string, FunctionSpec>;
  /** Declared egresses plus `weft/dead-letters` (a Set; read-only). */
  readonly egresses: ReadonlySet<string>;
  /** The compute file as a `file:` URL, or undefined. */
  readonly compute: URL | undefined;
  /** Value types the module declared (state specs and `types`), by typename. */
  readonly types: ReadonlyMap<string, ValueType<unknown>>;
  functionSpec(typename: string): FunctionSpec | undefined;
  hasEgress(name: string): boolean;
  /**
   * The type to decode a message of `typename` with: a type the module declared, else a
   * built-in type (the StateFun primitives, raw bytes, weft's json and msgpack), else undefined.
   */
  typeByName(typename: string): ValueType<unknown> | undefined;
}

/**
 * Marks module definitions. `Symbol.for`, not a local symbol, so the mark survives when the user
 * module and the engine load different copies of weft (src vs dist, two installs).
 */
export const MODULE_DEFINITION = Symbol.for('weft.ModuleDefinition');

/** True when `x` is a value returned by {@link defineModule} (of any copy of weft). */
export function isModuleDefinition(x: unknown): x is ModuleDefinition {
  return typeof x === 'object' && x !== null && (x as Record<symbol, unknown>)[MODULE_DEFINITION] === true;
}

// ---------------------------------------------------------------------------------------------
// Read-only collections: real Map/Set (the engine may check `instanceof Map`) that refuse writes.
// ---------------------------------------------------------------------------------------------

function readOnly(what: string): WeftError {
  return new WeftError('ERR_WEFT_INVALID_ARG', `${what} of a module definition is read-only`);
}

class FrozenMap<K, V> extends Map<K, V> {
  readonly #what: string;
  constructor(what: string, entries: Iterable<readonly [K, V]>) {
    super();
    // Map's own set, bypassing the override below, fills it once.
    for (const [k, v] of entries) Map.prototype.set.call(this, k, v);
    this.#what = what;
    Object.freeze(this);
  }
  override set(): this {
    throw readOnly(this.#what);
  }
  override delete(): boolean {
    throw readOnly(this.#what);
  }
  override clear(): void {
    throw readOnly(this.#what);
  }
}

class FrozenSet<T> extends Set<T> {
  readonly #what: string;
  constructor(what: string, values: Iterable<T>) {
    super();
    for (const v of values) Set.prototype.add.call(this, v);
    this.#what = what;
    Object.freeze(this);
  }
  override add(): this {
    throw readOnly(this.#what);
  }
  override delete(): boolean {
    throw readOnly(this.#what);
  }
  override clear(): void {
    throw readOnly(this.#what);
  }
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

function invalid(message: string): WeftError {
  return new WeftError('ERR_WEFT_INVALID_MODULE', message);
}

const MODULE_KEYS = ['functions', 'egresses', 'compute', 'types'];
const FUNCTION_KEYS = ['state', 'fn'];
const STATE_DECL_KEYS = ['type', 'expireAfterWrite', 'expireAfterCall'];

function isPlainObject(x: unknown): x is Record<string, unknown> {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return false;
  const proto = Object.getPrototypeOf(x) as unknown;
  return proto === Object.prototype || proto === null;
}

/** Refuses keys outside `allowed`, so a typo (`egress:`, `states:`) is an error, not ignored. */
function checkKeys(obj: object, allowed: readonly string[], what: string): void {
  for (const key of Object.keys(obj)) {
    if (!allowed.includes(key)) {
      throw invalid(`${what} has unknown key ${JSON.stringify(key)} (expected ${allowed.join(', ')})`);
    }
  }
}

function checkNotReserved(name: string, what: string): void {
  if (splitTypename(name).namespace === RESERVED_NAMESPACE) {
    throw new WeftError(
      'ERR_WEFT_INVALID_TYPENAME',
      `${what} ${JSON.stringify(name)} uses the reserved namespace ${JSON.stringify(RESERVED_NAMESPACE)}`,
    );
  }
}

function checkTtl(value: unknown, key: string, what: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw invalid(`${what}: ${key} must be a positive integer number of milliseconds (got ${describe(value)})`);
  }
  return value;
}

/** Records which declaration introduced each typename, to report conflicts by name. */
class TypeRegistry {
  readonly #types = new Map<string, { type: ValueType<unknown>; where: string }>();

  add(type: ValueType<unknown>, where: string): void {
    const seen = this.#types.get(type.typename);
    if (seen === undefined) {
      this.#types.set(type.typename, { type, where });
    } else if (seen.type !== type) {
      // Two codecs for one typename: a message of that typename could not be decoded
      // unambiguously. type.* factories return one object per typename, so this is a real clash.
      throw invalid(
        `value types conflict: typename ${JSON.stringify(type.typename)} is used by two different types (${seen.where} and ${where}); use one type object per typename`,
      );
    }
  }

  entries(): Iterable<readonly [string, ValueType<unknown>]> {
    return [...this.#types].map(([name, { type }]) => [name, type] as const);
  }
}

function normalizeState(fnName: string, name: string, decl: unknown, registry: TypeRegistry): StateSpec {
  validateStateName(name, fnName);
  const what = `state ${JSON.stringify(name)} of function ${JSON.stringify(fnName)}`;
  let spec: StateSpec;
  if (isValueType(decl)) {
    spec = Object.freeze({ name, type: decl });
  } else if (isPlainObject(decl) && isValueType(decl['type'])) {
    checkKeys(decl, STATE_DECL_KEYS, what);
    const expireAfterWrite = checkTtl(decl['expireAfterWrite'], 'expireAfterWrite', what);
    const expireAfterCall = checkTtl(decl['expireAfterCall'], 'expireAfterCall', what);
    if (expireAfterWrite !== undefined && expireAfterCall !== undefined) {
      throw invalid(`${what} may set expireAfterWrite or expireAfterCall, not both`);
    }
    const s: { name: string; type: ValueType<unknown>; expireAfterWrite?: number; expireAfterCall?: number } = {
      name,
      type: decl['type'],
    };
    if (expireAfterWrite !== undefined) s.expireAfterWrite = expireAfterWrite;
    if (expireAfterCall !== undefined) s.expireAfterCall = expireAfterCall;
    spec = Object.freeze(s);
  } else {
    throw invalid(
      `${what} must be a value type (type.int(), type.json(), ...) or { type, expireAfterWrite?, expireAfterCall? } (got ${describe(decl)})`,
    );
  }
  registry.add(spec.type, what);
  return spec;
}

function normalizeFunction(typename: string, decl: unknown, registry: TypeRegistry): FunctionSpec {
  validateTypename(typename, 'function typename');
  checkNotReserved(typename, 'function typename');
  const what = `function ${JSON.stringify(typename)}`;
  if (!isPlainObject(decl)) throw invalid(`${what} must be an object { state?, fn } (got ${describe(decl)})`);
  checkKeys(decl, FUNCTION_KEYS, what);
  const fn = decl['fn'];
  if (typeof fn !== 'function') throw invalid(`${what}: fn must be a function (got ${describe(fn)})`);
  const state = decl['state'];
  const specs: StateSpec[] = [];
  if (state !== undefined) {
    if (!isPlainObject(state)) {
      throw invalid(`${what}: state must be an object of state declarations by name (got ${describe(state)})`);
    }
    for (const name of Object.keys(state)) specs.push(normalizeState(typename, name, state[name], registry));
  }
  const byName = new Map(specs.map((s) => [s.name, s]));
  return Object.freeze({
    typename,
    specs: Object.freeze(specs),
    stateSpec: (name: string) => byName.get(name),
    fn: fn as FunctionSpec['fn'],
  });
}

function normalizeCompute(compute: unknown): URL | undefined {
  if (compute === undefined) return undefined;
  const bad = (): WeftError =>
    invalid(`defineModule() compute must be a file: URL or a non-empty path string (got ${describe(compute instanceof URL ? compute.href : compute)})`);
  let url: URL;
  if (compute instanceof URL) {
    // A copy: URL objects are mutable and this definition is frozen.
    url = new URL(compute.href);
  } else if (typeof compute === 'string' && compute.length > 0) {
    // "file:..." and anything shaped like "scheme://..." is a URL (so "http://..." is refused
    // rather than read as a relative path); everything else, "C:\\..." included, is a path.
    if (compute.startsWith('file:') || /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(compute)) {
      try {
        url = new URL(compute);
      } catch {
        throw bad();
      }
    } else {
      url = pathToFileURL(resolve(compute));
    }
  } else {
    throw bad();
  }
  if (url.protocol !== 'file:') throw bad();
  return url;
}

/**
 * Declares a function module: its functions (by typename) with their state, the egresses they may
 * write to, an optional compute file and extra message types. Validates everything up front and
 * returns a frozen {@link ModuleDefinition}, which the module file default-exports.
 *
 * State types are inferred per function: with `balance: type.int()`, `ctx.state.balance` is
 * `number | undefined` in the editor, and assigning a string is a type error.
 *
 * Throws ERR_WEFT_INVALID_MODULE (shape, unknown keys, TTLs, duplicate egresses, conflicting
 * types), ERR_WEFT_INVALID_TYPENAME (function/egress names), ERR_WEFT_UNKNOWN_STATE (state names);
 * each message names the offending value.
 *
 * @example
 * ```ts
 * import { defineModule, type } from 'weft';
 *
 * interface Entry { at: number; amount: number }
 *
 * export default defineModule({
 *   functions: {
 *     'bank/account': {
 *       state: {
 *         balance: type.int(),
 *         history: { type: type.json<Entry[]>(), expireAfterWrite: 86_400_000 },
 *       },
 *       async fn(ctx, msg) {
 *         const amount = msg.as(type.int());
 *         const balance = (ctx.state.balance ?? 0) + amount;   // number
 *         ctx.state.balance = balance;
 *         ctx.state.history = [...(ctx.state.history ?? []), { at: Date.now(), amount }];
 *         ctx.egress('bank/audit', { account: ctx.self.id, balance });
 *         ctx.reply(balance, { type: type.int() });
 *       },
 *     },
 *   },
 *   egresses: ['bank/audit'],
 *   compute: new URL('./tasks.js', import.meta.url),
 * });
 * ```
 */
export function defineModule<F, const E extends string = never>(
  definition: ModuleDecl<F, E>,
): ModuleDefinition {
  if (!isPlainObject(definition)) {
    throw invalid(`defineModule() expects an object { functions, egresses?, compute?, types? } (got ${describe(definition)})`);
  }
  checkKeys(definition, MODULE_KEYS, 'defineModule() argument');
  const raw = definition as Record<string, unknown>;
  const registry = new TypeRegistry();

  const functionsDecl = raw['functions'];
  if (!isPlainObject(functionsDecl)) {
    throw invalid(`defineModule() functions must be an object keyed by function typename (got ${describe(functionsDecl)})`);
  }
  const functions: Array<[string, FunctionSpec]> = [];
  for (const typename of Object.keys(functionsDecl)) {
    functions.push([typename, normalizeFunction(typename, functionsDecl[typename], registry)]);
  }

  const egressDecl = raw['egresses'];
  const egresses: string[] = [];
  if (egressDecl !== undefined) {
    if (!Array.isArray(egressDecl)) {
      throw invalid(`defineModule() egresses must be an array of egress names (got ${describe(egressDecl)})`);
    }
    const seen = new Set<string>();
    egressDecl.forEach((name: unknown, i) => {
      validateTypename(name, `egresses[${i}]`);
      checkNotReserved(name, `egresses[${i}]`);
      if (seen.has(name)) throw invalid(`egress ${JSON.stringify(name)} is declared twice (egresses[${i}])`);
      seen.add(name);
      egresses.push(name);
    });
  }
  egresses.push(DEAD_LETTERS_EGRESS);

  const compute = normalizeCompute(raw['compute']);

  const typesDecl = raw['types'];
  if (typesDecl !== undefined) {
    if (!Array.isArray(typesDecl)) {
      throw invalid(`defineModule() types must be an array of value types (got ${describe(typesDecl)})`);
    }
    typesDecl.forEach((t: unknown, i) => {
      if (!isValueType(t)) throw invalid(`defineModule() types[${i}] must be a value type created by type.*() (got ${describe(t)})`);
      registry.add(t, `types[${i}]`);
    });
  }

  const functionMap = new FrozenMap<string, FunctionSpec>('functions', functions);
  const egressSet = new FrozenSet<string>('egresses', egresses);
  const declaredTypes = new FrozenMap<string, ValueType<unknown>>('types', registry.entries());

  return Object.freeze({
    [MODULE_DEFINITION]: true,
    functions: functionMap,
    egresses: egressSet,
    compute,
    types: declaredTypes,
    functionSpec: (typename: string) => functionMap.get(typename),
    hasEgress: (name: string) => egressSet.has(name),
    typeByName: (typename: string) => declaredTypes.get(typename) ?? BUILTIN_TYPES.get(typename),
  });
}
