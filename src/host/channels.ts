import { channel } from 'node:diagnostics_channel';

/**
 * `diagnostics_channel` events, published on the main thread (subscribe with
 * `diagnostics_channel.subscribe(name, fn)`):
 * - `weft:checkpoint` `{ epoch, ms, bytes, states }` when a checkpoint commits;
 * - `weft:recovery` `{ shard, error, committedEpoch }` when a failed shard triggers a rollback;
 * - `weft:dead-letter` the {@link DeadLetter} as it is handed to the host;
 * - `weft:late-context` `{ shard, address, method }` when a function's `ctx` was used after its
 *   invocation ended (a forgotten `await`): the call had no effect (metrics `lateContextCalls`);
 * - `weft:uncaught-error` `{ shard, error }` when user code left behind by a function threw in a
 *   shard outside any invocation (a timer or callback): reported, not fatal (metrics
 *   `uncaughtErrors`);
 * - `weft:poison` the {@link DeadLetter} of a message that was isolated because its invocation
 *   ended or stalled its shard (metrics `poisonMessages` counts them when isolated).
 */
export const channels = Object.freeze({
  checkpoint: channel('weft:checkpoint'),
  recovery: channel('weft:recovery'),
  deadLetter: channel('weft:dead-letter'),
  lateContext: channel('weft:late-context'),
  uncaughtError: channel('weft:uncaught-error'),
  poison: channel('weft:poison'),
});
