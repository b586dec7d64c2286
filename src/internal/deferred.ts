/** A promise with its settle functions (Node 20 has no `Promise.withResolvers`). */
export interface Deferred<T> {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (err: unknown) => void;
}

/**
 * A {@link Deferred} whose rejection is never unhandled: for promises the caller may drop (a
 * fire-and-forget send, an acknowledgement nobody awaits). Awaiting callers still get the
 * rejection.
 */
export function quietDeferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => {});
  return { promise, resolve, reject };
}
