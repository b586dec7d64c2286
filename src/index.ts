/**
 * weft — Stateful Functions for Node.js. The public surface (README.md, "Host API" and
 * "Functions"); internals are not exported.
 */
export { Weft } from './host/weft.js';
export { channels } from './host/channels.js';
export type { WeftOptions, SendOptions, RequestOptions, InstancesOptions, InstanceEntry, EgressRecord, EgressIteratorOptions } from './host/weft.js';
export type { DeadLetter } from './host/decode.js';
export type { WeftMetrics, ShardMetrics } from './host/metrics.js';
export type { RemoteEndpointOptions } from './contract/options.js';
export type { WeftClient } from './host/client.js';
export { defineModule } from './module/definition.js';
export { type } from './codec/types.js';
export type {
  Address,
  Context,
  Message,
  TypedMessage,
  ModuleDefinition,
  FunctionSpec,
  StateSpec,
  ValueType,
  CustomCodec,
  ValueOf,
  State,
  StateDecl,
  StateValue,
  ValueOptions,
  SendAfterOptions,
} from './module/definition.js';
export { isModuleDefinition } from './module/definition.js';
export { LIMITS } from './core/address.js';
export { WeftError, ErrorCodes, isWeftError } from './core/errors.js';
export type { WeftErrorCode, SerializedError } from './core/errors.js';
