/**
 * The function module as the dispatcher uses it: each function compiled once into a flat form
 * (spec list, TTL flags, a state-view class with one accessor per declared name), so the hot path
 * does a Map lookup and nothing else to find what it needs.
 */
import { WeftError, describe } from '../core/errors.js';
import { isModuleDefinition, type ModuleDefinition, type ValueType } from './definition.js';
import { BUILTIN_TYPES, boundEncoder, type as builtinTypes } from '../codec/types.js';

export interface CompiledSpec {
  readonly name: string;
  readonly type: ValueType<unknown>;
  /** ms, 0 = no TTL */
  readonly expireAfterWrite: number;
  /** ms, 0 = no TTL */
  readonly expireAfterCall: number;
  /** `type.encode` bound once: what a lazily encoded slot calls. */
  readonly encode: (value: unknown) => Uint8Array;
  /** `ctx.state.<name>`: the path errors name, made once rather than on every write. */
  readonly path: string;
}

/** What a state view reads and writes through: implemented by the invocation context. */
export interface StateAccess {
  readState(spec: CompiledSpec): unknown;
  writeState(spec: CompiledSpec, value: unknown): void;
}

export type StateViewClass = new (access: StateAccess) => object;

export interface CompiledFunction {
  readonly typename: string;
  readonly fn: (ctx: never, msg: never) => unknown;
  readonly specs: readonly CompiledSpec[];
  readonly specByName: ReadonlyMap<string, CompiledSpec>;
  readonly StateView: StateViewClass;
  /** Some spec expires after call: every invocation must record its time. */
  readonly hasCallTtl: boolean;
  /** Some spec expires (after write or after call): its instances need TTL sweeps. */
  readonly hasTtl: boolean;
}

export interface RuntimeModule {
  readonly definition: ModuleDefinition;
  readonly functions: ReadonlyMap<string, CompiledFunction>;
  readonly egresses: ReadonlySet<string>;
  /** The default type of untyped values. */
  readonly defaultType: ValueType<unknown>;
  /** The type to decode a typename with, when the module knows it. */
  typeOf(typename: string): ValueType<unknown> | undefined;
  /** True when `type` names a function this module (or a remote endpoint) serves. */
  isKnownFunction(type: string): boolean;
  /** Some function declares a state TTL (else no TTL sweep is ever needed). */
  readonly hasTtl: boolean;
}

const DEAD_LETTERS = 'weft/dead-letters';

function unknownNameTrap(typename: string, specs: readonly CompiledSpec[]): object {
  // The prototype of every state view's prototype: property lookups reach it only for names the
  // function did NOT declare (declared names are accessors one level down), so known names cost
  // a plain accessor call and unknown ones get a clear error instead of silently being dropped.
  const declared = specs.map((s) => JSON.stringify(s.name)).join(', ') || 'none';
  const fail = (name: string, op: string): never => {
    throw new WeftError('ERR_WEFT_UNKNOWN_STATE', `ctx.state.${name} ${op}: ${describe(name)} is not a declared state name of ${describe(typename)} (declared: ${declared})`);
  };
  return new Proxy(Object.create(null) as object, {
    get(_t, prop) {
      // Symbols and 'then' are probed by inspection, await and JSON; they are simply absent.
      if (typeof prop === 'symbol' || prop === 'then' || prop === 'toJSON') return undefined;
      return fail(prop, 'read');
    },
    set(_t, prop) {
      return fail(String(prop), 'write');
    },
    defineProperty(_t, prop) {
      return fail(String(prop), 'write');
    },
  });
}

function compileStateView(typename: string, specs: readonly CompiledSpec[]): StateViewClass {
  // One class per function with a real accessor per declared name: reads and writes are plain
  // property accesses (fast, enumerable, typed). The context sits in a private field: private
  // fields bypass the prototype chain, so storing it never meets the unknown-name trap below.
  class StateView {
    readonly #access: StateAccess;
    constructor(a: StateAccess) {
      this.#access = a;
    }
    static accessOf(view: StateView): StateAccess {
      return view.#access;
    }
  }
  Object.setPrototypeOf(StateView.prototype, unknownNameTrap(typename, specs));
  for (const spec of specs) {
    Object.defineProperty(StateView.prototype, spec.name, {
      enumerable: true,
      get(this: StateView) {
        return StateView.accessOf(this).readState(spec);
      },
      set(this: StateView, value: unknown) {
        StateView.accessOf(this).writeState(spec, value);
      },
    });
  }
  Object.defineProperty(StateView, 'name', { value: `State(${typename})` });
  return StateView as unknown as StateViewClass;
}

export function compileModule(
  definition: ModuleDefinition,
  remoteMatchers: ReadonlyArray<(type: string) => boolean> = [],
): RuntimeModule {
  const functions = new Map<string, CompiledFunction>();
  for (const [typename, f] of definition.functions) {
    const specs: CompiledSpec[] = f.specs.map((s) => ({
      name: s.name,
      type: s.type as ValueType<unknown>,
      expireAfterWrite: s.expireAfterWrite ?? 0,
      expireAfterCall: s.expireAfterCall ?? 0,
      encode: boundEncoder(s.type as ValueType<unknown>),
      path: `ctx.state.${s.name}`,
    }));
    functions.set(typename, {
      typename,
      fn: f.fn as CompiledFunction['fn'],
      specs,
      specByName: new Map(specs.map((s) => [s.name, s])),
      StateView: compileStateView(typename, specs),
      hasCallTtl: specs.some((s) => s.expireAfterCall > 0),
      hasTtl: specs.some((s) => s.expireAfterCall > 0 || s.expireAfterWrite > 0),
    });
  }
  const egresses = new Set(definition.egresses);
  egresses.add(DEAD_LETTERS);
  const defaultType = builtinTypes.msgpack() as ValueType<unknown>;
  // typename → type, memoized: decoding a message looks its type up on every invocation.
  const typeCache = new Map<string, ValueType<unknown> | undefined>();
  // Most messages carry the same typename as the one before: compare before hashing.
  let lastName = '';
  let lastType: ValueType<unknown> | undefined;
  const typeOf = (typename: string): ValueType<unknown> | undefined => {
    if (typename === lastName) return lastType;
    let t = typeCache.get(typename);
    if (t === undefined && !typeCache.has(typename)) {
      t = definition.typeByName(typename) as ValueType<unknown> | undefined;
      typeCache.set(typename, t);
    }
    lastName = typename;
    lastType = t;
    return t;
  };
  let lastKnown = '';
  return {
    definition,
    hasTtl: [...functions.values()].some((f) => f.hasTtl),
    functions,
    egresses,
    defaultType,
    typeOf,
    isKnownFunction: (type) => {
      // Every send asks; most ask about the type the previous one did.
      if (type === lastKnown) return true;
      const known = functions.has(type) || remoteMatchers.some((m) => m(type));
      if (known) lastKnown = type;
      return known;
    },
  };
}

/**
 * The wire names of an engine running `module` (transport/names.ts): its function types, then
 * the built-in and declared typenames, each group sorted. Main makes the list and hands it to
 * every shard at boot, so all threads of one engine share one table.
 */
export function wireNamesOf(module: RuntimeModule): string[] {
  const names = new Set<string>([...module.functions.keys()].sort());
  for (const t of [...BUILTIN_TYPES.keys(), ...module.definition.types.keys()].sort()) names.add(t);
  return [...names];
}

/** Loads a module file: its default export must be the value `defineModule` returned. */
export async function loadModule(url: string): Promise<ModuleDefinition> {
  let ns: { default?: unknown };
  try {
    ns = (await import(url)) as { default?: unknown };
  } catch (cause) {
    throw new WeftError('ERR_WEFT_INVALID_MODULE', `function module ${describe(url)} failed to load: ${(cause as Error)?.message ?? String(cause)}`, { cause });
  }
  const def = ns.default as ModuleDefinition | undefined;
  if (!isModuleDefinition(def)) {
    throw new WeftError('ERR_WEFT_INVALID_MODULE', `function module ${describe(url)} must default-export the value returned by defineModule() (got ${describe(def)})`);
  }
  return def as ModuleDefinition;
}

export const DEAD_LETTER_EGRESS = DEAD_LETTERS;

