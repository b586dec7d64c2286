/**
 * Addresses the bench modules and the host agree on. `hopRing` lays ids out so that each id's
 * successor lives on ANOTHER shard (round-robin over shards), using weft's own router, so a chain
 * of hops crosses a shard boundary on every hop.
 */
import { keyGroupOf } from '../../src/core/address.js';

/** weft's default key-group count (the bench never changes it). */
export const KEY_GROUPS = 128;

export function shardOf(type: string, id: string, shards: number, keyGroups = KEY_GROUPS): number {
  return Math.floor((keyGroupOf(type, id, keyGroups) * shards) / keyGroups);
}

/** Ids `${prefix}${i}` for i = 0..count-1. */
export function ids(prefix: string, count: number): string[] {
  return Array.from({ length: count }, (_, i) => `${prefix}${i}`);
}

/**
 * `count` ids whose order alternates between shards 0, 1, ..., shards-1, 0, ...: the successor of
 * entry j is entry j+1 (cyclically), on the next shard. With one shard every hop is local.
 */
export function hopRing(type: string, count: number, shards: number): string[] {
  const perShard: string[][] = Array.from({ length: shards }, () => []);
  const want = Math.ceil(count / shards);
  for (let i = 0; perShard.some((p) => p.length < want); i++) {
    const id = `h${i}`;
    const s = shardOf(type, id, shards);
    const bucket = perShard[s] as string[];
    if (bucket.length < want) bucket.push(id);
  }
  const out: string[] = [];
  for (let j = 0; j < want; j++) for (let s = 0; s < shards; s++) out.push((perShard[s] as string[])[j] as string);
  return out.slice(0, want * shards);
}

/** id → the id after it in {@link hopRing}. */
export function successors(ring: readonly string[]): Map<string, string> {
  const next = new Map<string, string>();
  for (let j = 0; j < ring.length; j++) next.set(ring[j] as string, ring[(j + 1) % ring.length] as string);
  return next;
}

/** The shard count the chain module was started for: the host sets it before `Weft.start`. */
export const CHAIN_SHARDS_ENV = 'WEFT_BENCH_CHAIN_SHARDS';
/** Ids in the chain module's hop ring. */
export const CHAIN_IDS = 10_000;
