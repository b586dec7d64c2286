/**
 * The message every variant of native-bench/transport.ts carries, and what its producer worker
 * is told at start.
 */
import type { MessagePort } from 'node:worker_threads';
import type { MessageFields } from '../src/contract/envelope.js';

/**
 * The benchmarks' engine message record:
 * `[kind, targetType, targetId, callerType, callerId, typename, payload, extra?]`, `payload` the
 * already-encoded message value, `extra` kind-specific.
 */
export type MessageTuple = [kind: number, ...fields: MessageFields, extra?: number | string | null];

/** Messages per frame (ring), per array (postMessage of arrays). */
export const BATCH = 256;

export type Variant = 'ring' | 'post-one' | 'post-object' | 'post-batch' | 'channel-one';

export interface BenchWorkerData {
  variant: Variant;
  ring?: SharedArrayBuffer;
  doorbell?: SharedArrayBuffer;
  /** Doorbell index of the producer (ring variant). */
  me?: number;
  /** Doorbell index of the consumer (ring variant). */
  consumer?: number;
  /** The producer's end of the MessageChannel (channel variant). */
  port?: MessagePort;
}

/** `42` as msgpack: the already-encoded payload of every message. Its own 1-byte buffer, so a
 * structured clone copies 1 byte, not a shared slab. */
const PAYLOAD = Uint8Array.of(0x2a);

const IDS = Array.from({ length: 1000 }, (_, i) => `acct-${i}`);

/**
 * Message `i`: an engine message tuple for `bank/account` `acct-<i % 1000>`, 37 bytes as msgpack.
 * Built fresh per message, as the engine builds one per send.
 */
export function makeTuple(i: number): MessageTuple {
  return [0, 'bank/account', IDS[i % 1000] as string, null, null, 'deposit', PAYLOAD];
}
