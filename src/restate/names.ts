/**
 * How a weft function type (`<namespace>/<name>`, each part of `[A-Za-z0-9_.-]`) is named as a
 * Restate virtual object.
 *
 * Restate service names (checked against restate-server 1.7 on registration) must match
 * `^([a-zA-Z]|_[a-zA-Z0-9])[a-zA-Z0-9._-]*$` — no `/` (a name is a path segment of the ingress URL,
 * `/<service>/<key>/<handler>`), a letter or `_` + letter/digit first — and may not start with
 * `restate` in any case (reserved: META0005). The default mapping replaces the one `/` with `.`:
 * `example/greeter` → `example.greeter`, `com.acme/cart` → `com.acme.cart`.
 *
 * That mapping is readable but not injective on its own (`a.b/c` and `a/b.c` both give `a.b.c`),
 * and some weft names have no valid image (`1x/y` starts with a digit, `restate/x` is
 * reserved, `_.a/b` has `_` before a dot). Both cases are refused when the endpoint (or client) is built, naming the types; the
 * `serviceNames` option then gives those types explicit names. The same option must be passed to
 * the endpoint and to every client, since both sides compute the mapping.
 */
import { WeftError, describe } from '../core/errors.js';

/** Restate's rule for service names, as the server enforces it on registration. */
const RESTATE_NAME = /^([a-zA-Z]|_[a-zA-Z0-9])[a-zA-Z0-9._-]*$/;
const RESERVED = /^restate/i;

/** The default Restate name of a weft function type: its `/` becomes `.`. */
export function defaultRestateName(typename: string): string {
  return typename.replace('/', '.');
}

/** Why `name` is not a valid Restate service name, or null when it is. */
export function restateNameProblem(name: string): string | null {
  if (!RESTATE_NAME.test(name)) return 'must start with a letter (or "_" and a letter or digit) and contain only letters, digits, "_", "." and "-"';
  if (RESERVED.test(name)) return 'must not start with "restate" in any case (reserved by the Restate server)';
  return null;
}

/**
 * The name of every function type of a module, checked: each valid for Restate, no two alike.
 * `overrides` maps function types to explicit names (from the `serviceNames` option); an
 * override for a type the module does not define is refused (a typo would otherwise go unnoticed).
 */
export function restateNames(types: Iterable<string>, overrides: Readonly<Record<string, string>> | undefined, label: string): Map<string, string> {
  const all = [...types];
  if (overrides !== undefined) {
    if (typeof overrides !== 'object' || overrides === null || Array.isArray(overrides)) {
      throw new WeftError('ERR_WEFT_INVALID_OPTION', `${label} serviceNames must be an object mapping function types to Restate names (got ${describe(overrides)})`);
    }
    for (const [type, name] of Object.entries(overrides)) {
      if (!all.includes(type)) throw new WeftError('ERR_WEFT_INVALID_OPTION', `${label} serviceNames names ${describe(type)}, which is not a function type of the module`);
      if (typeof name !== 'string') throw new WeftError('ERR_WEFT_INVALID_OPTION', `${label} serviceNames[${JSON.stringify(type)}] must be a string (got ${describe(name)})`);
    }
  }
  const byType = new Map<string, string>();
  const byName = new Map<string, string>();
  for (const type of all) {
    const name = overrides?.[type] ?? defaultRestateName(type);
    const problem = restateNameProblem(name);
    if (problem !== null) {
      throw new WeftError(
        'ERR_WEFT_INVALID_OPTION',
        `${label}: function type ${describe(type)} maps to the Restate name ${describe(name)}, which ${problem}; give it a valid name with the serviceNames option`,
      );
    }
    const other = byName.get(name);
    if (other !== undefined) {
      throw new WeftError(
        'ERR_WEFT_INVALID_OPTION',
        `${label}: function types ${describe(other)} and ${describe(type)} both map to the Restate name ${describe(name)}; give one of them another name with the serviceNames option`,
      );
    }
    byName.set(name, type);
    byType.set(type, name);
  }
  return byType;
}

/** The handler every weft virtual object exposes: it takes one message. */
export const HANDLER = 'invoke';
