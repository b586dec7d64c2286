/**
 * State TTL, in one place: a value expires `expireAfterWrite` ms after it was written, or
 * `expireAfterCall` ms after the instance's last completed invocation (0 or absent: never).
 * An instance never invoked (`calledAt` 0) has no call to expire after.
 */
export interface TtlSpec {
  readonly expireAfterWrite?: number;
  readonly expireAfterCall?: number;
}

export function isExpired(spec: TtlSpec, writtenAt: number, calledAt: number, now: number): boolean {
  const w = spec.expireAfterWrite ?? 0;
  if (w > 0 && now - writtenAt >= w) return true;
  const c = spec.expireAfterCall ?? 0;
  return c > 0 && calledAt > 0 && now - calledAt >= c;
}

/** A TTL that never expires: what a value has whose spec is not known yet (a remote function's). */
export const NEVER_EXPIRES: TtlSpec = Object.freeze({});

/**
 * Whether a stored state value is live at `now`: declared (`spec` is its name's spec; undefined
 * when the function declares no such state any more) and not expired. The one rule by which
 * queries, listings and Restate reads leave values out, as a function reading its state does.
 */
export function isLive<T extends TtlSpec>(spec: T | undefined, writtenAt: number, calledAt: number, now: number): spec is T {
  return spec !== undefined && !isExpired(spec, writtenAt, calledAt, now);
}

/**
 * The slots of one stored record (`[name, value, writtenAt, ...]`, an instance record's layout)
 * that are live at `now` ({@link isLive}), in their order; `specOf` gives each name's spec.
 */
export function liveSlots<S extends readonly [name: string, value: unknown, writtenAt: number, ...rest: unknown[]]>(
  slots: readonly S[],
  calledAt: number,
  specOf: (name: string) => TtlSpec | undefined,
  now: number,
): S[] {
  return slots.filter(([name, , writtenAt]) => isLive(specOf(name), writtenAt, calledAt, now));
}
