/**
 * weft — Stateful Functions for Node.js. The public surface (README.md, "Host API" and
 * "Functions"); internals are not exported.
 */
export { Weft, channels } from './weft.js';
export type { WeftOptions, SendOptions, RequestOptions, DeadLetter, WeftMetrics, ShardMetrics, InstancesOptions, InstanceEntry, EgressRecord, EgressIteratorOptions } from './weft.js';
export type { RemoteEndpointOptions } from './options.js';
export type { WeftClient } from './client.js';
export { defineModule } from './module.js';
export { type } from './state/types.js';
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
} from './module.js';
export { isModuleDefinition } from './module.js';
export { LIMITS } from './address.js';
export { WeftError, ErrorCodes, isWeftError } from './errors.js';
export type { WeftErrorCode, SerializedError } from './errors.js';
