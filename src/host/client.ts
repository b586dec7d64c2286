/**
 * What a service needs to talk to stateful functions, whichever engine runs them: the embedded
 * engine ({@link Weft}) and the Restate client (`connectRestate` in `weft/restate`) both satisfy
 * it, so a service can be written against `WeftClient` and switch engines by configuration.
 */
import type { Address } from '../core/address.js';
import type { RequestOptions, SendOptions } from './weft.js';

export interface WeftClient {
  /** Sends a one-way message; resolves once the engine has durably taken it. */
  send(to: Address, value: unknown, opts?: SendOptions): Promise<void>;
  /** Sends a message and resolves with the target's `ctx.reply` value. */
  request(to: Address, value: unknown, opts?: RequestOptions): Promise<unknown>;
  /** Releases the client (for the embedded engine: closes it). */
  close(): Promise<void>;
}
