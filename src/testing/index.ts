/**
 * `weft/testing`: run a function module in-process, on a virtual clock, without threads or a data
 * dir, with the engine's invocation semantics.
 *
 * @example
 * ```ts
 * import { createTestHarness } from 'weft/testing';
 * import functions from '../src/functions.js';
 *
 * const h = await createTestHarness(functions);
 * await h.send({ type: 'shop/cart', id: 'c1' }, { add: 'apple' });
 * await h.advance(60_000);                     // fire what falls due within a minute
 * console.log(await h.query({ type: 'shop/cart', id: 'c1' }), h.egress('shop/orders'), h.deadLetters());
 * await h.close();
 * ```
 */
export { createTestHarness } from './harness.js';
export type { TestHarness, PendingTimer } from './harness.js';
export type { TestHarnessOptions } from './options.js';
export type { Address, DeadLetter, SendOptions, RequestOptions, InstancesOptions, InstanceEntry } from '../index.js';
