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
