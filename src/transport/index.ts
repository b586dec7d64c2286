/**
 * The transport layer, for weft's own use (not part of the public API): SPSC byte rings on
 * SharedArrayBuffer, per-thread doorbells, and msgpack framing. See each module for the
 * protocol; `doorbell.ts` shows the drain-and-sleep loop every consumer thread runs.
 */
export { Ring, type FrameHandler } from './ring.js';
export { Doorbell, type WakeReason } from './doorbell.js';
export {
  FrameDecoder,
  FrameEncoder,
  MAP_EXTENSION_TYPE,
  MAX_VALUE_DEPTH,
  decodeBatch,
  encodeBatch,
  packValue,
  unpackValue,
  type FrameRecord,
  type MessageTuple,
} from './framing.js';
export { NameTable, MAX_WIRE_NAMES, type NamedRecords } from './names.js';
export { FRAME_HEADER_BYTES, MAX_RING_CAPACITY, MIN_RING_CAPACITY, frameFootprint } from './layout.js';
