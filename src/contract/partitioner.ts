/**
 * The router's pure half: which shard owns an address. The same function runs on every thread
 * (main routes host messages, shards route function-to-function messages), so they always agree.
 *
 *   keyGroup = hash32(type + "\0" + id) % keyGroups      (keyGroups fixed at the data dir's first start)
 *   shard    = floor(keyGroup * shards / keyGroups)
 *
 * Key groups are the unit of state placement: a shard owns a contiguous range of them, and
 * restarting with another shard count moves whole key groups between partitions (Flink's design).
 */
import { keyGroupOf } from '../core/address.js';

export { keyGroupOf };

export function shardOfKeyGroup(keyGroup: number, shards: number, keyGroups: number): number {
  return Math.floor((keyGroup * shards) / keyGroups);
}

/** The half-open range `[start, end)` of key groups a shard owns. */
export function keyGroupRange(shard: number, shards: number, keyGroups: number): [start: number, end: number] {
  return [Math.ceil((shard * keyGroups) / shards), Math.ceil(((shard + 1) * keyGroups) / shards)];
}

/** A routing function bound to one layout: `(type, id) → shard`, with the key group on the side. */
export class Partitioner {
  readonly shards: number;
  readonly keyGroups: number;

  constructor(shards: number, keyGroups: number) {
    this.shards = shards;
    this.keyGroups = keyGroups;
  }

  keyGroup(type: string, id: string): number {
    return keyGroupOf(type, id, this.keyGroups);
  }

  shardOf(keyGroup: number): number {
    return Math.floor((keyGroup * this.shards) / this.keyGroups);
  }
}
