/**
 * `queueMicrotask` without its per-call cost. Node's queueMicrotask makes an AsyncResource and a
 * bound function for every call; main schedules a flush per batch of host sends, which under an
 * open-loop load is nearly one per request (issue 13: a tenth of what main allocated per request).
 * A callback made with {@link guarded} runs as the reaction of one resolved promise instead.
 */
const RESOLVED = Promise.resolve();

/**
 * Wraps `fn` once, for {@link microtask}: an exception it throws becomes an uncaught exception
 * (as it would from queueMicrotask), not an unhandled rejection; it is raised from the next tick,
 * after the microtasks already queued.
 */
export function guarded(fn: () => void): () => void {
  return () => {
    try {
      fn();
    } catch (err) {
      process.nextTick(rethrow, err);
    }
  };
}

/** Runs `fn` (made with {@link guarded}) in a microtask, as queueMicrotask does. */
export function microtask(fn: () => void): void {
  void RESOLVED.then(fn);
}

function rethrow(err: unknown): never {
  throw err;
}
