/**
 * The shard's bounded cache of hot instances, backed by its LMDB partition.
 *
 * Eviction is CLOCK (second chance): a hit sets the instance's reference bit; the sweep walks from
 * the oldest entry, clearing bits and re-queueing referenced instances, and evicts the first ones
 * that are unreferenced AND safe to drop (no invocation holds them). An instance is safe to drop only when the partition's
 * BASE already holds its latest value: not dirty (changed since the last snapshot), and its last
 * snapshot epoch folded into the base (until then the value sits in a pending epoch that a read
 * of the base would miss). So dirty state always stays in memory until checkpointed, and the cache
 * may exceed its target size while many instances wait for a checkpoint.
 */
import type { InstanceStore } from '../shard/dispatcher.js';
import { Instance, decodeInstanceInto, encodeInstance } from './instance.js';

/** Reads an instance's record from the partition base. */
export type RecordLoader = (kg: number, type: string, id: string) => Uint8Array | undefined;

/** One state change of a snapshot: the record to write, or `null` to delete it. */
export type StateChange = [kg: number, type: string, id: string, record: Uint8Array | null];

export class InstanceCache implements InstanceStore {
  readonly #map = new Map<string, Instance>();
  readonly #load: RecordLoader;
  #dirty: Instance[] = [];
  readonly capacity: number;
  #foldedEpoch = 0;
  /** The last sweep found too few evictable instances: wait for a snapshot or fold to free some. */
  #stalled = false;
  hits = 0;
  misses = 0;
  evictions = 0;

  constructor(capacity: number, load: RecordLoader) {
    this.capacity = capacity;
    this.#load = load;
  }

  get size(): number {
    return this.#map.size;
  }

  /** Highest epoch folded into the partition base: instances of epochs up to it may be evicted. */
  get foldedEpoch(): number {
    return this.#foldedEpoch;
  }

  set foldedEpoch(epoch: number) {
    this.#foldedEpoch = epoch;
    this.#stalled = false;
  }

  get dirtyCount(): number {
    return this.#dirty.length;
  }

  get(key: string, type: string, id: string, kg: number): Instance {
    let inst = this.#map.get(key);
    if (inst !== undefined) {
      inst.ref = true;
      this.hits++;
      return inst;
    }
    this.misses++;
    inst = new Instance(key, type, id, kg);
    const bytes = this.#load(kg, type, id);
    if (bytes !== undefined) decodeInstanceInto(inst, bytes);
    this.#map.set(key, inst);
    if (this.#map.size > this.capacity && !this.#stalled) this.#evict();
    return inst;
  }

  /** The instance if cached; does not load. */
  peek(key: string): Instance | undefined {
    return this.#map.get(key);
  }

  markDirty(inst: Instance): void {
    if (!inst.dirty) {
      inst.dirty = true;
      this.#dirty.push(inst);
    }
  }

  /**
   * Takes the changes since the last snapshot for epoch `epoch`: each dirty instance's encoded
   * record (or null: delete). The instances are clean again but pinned until `epoch` is folded.
   */
  takeChanges(epoch: number): StateChange[] {
    const out: StateChange[] = [];
    for (const inst of this.#dirty) {
      inst.dirty = false;
      inst.writeEpoch = epoch;
      out.push([inst.kg, inst.type, inst.id, encodeInstance(inst)]);
    }
    this.#dirty = [];
    this.#stalled = false;
    return out;
  }

  /** Every instance in memory (for sweeping TTL and inspection). */
  values(): IterableIterator<Instance> {
    return this.#map.values();
  }

  /** Drops everything (after a recovery reloads from the partition). */
  clear(): void {
    for (const inst of this.#map.values()) inst.evicted = true;
    this.#map.clear();
    this.#dirty = [];
  }

  #evict(): void {
    // Evict in batches (1/16 of capacity) so the sweep's cost is amortized over many misses.
    const target = this.capacity - (this.capacity >> 4);
    const map = this.#map;
    // Two passes at most: the first clears reference bits (second chance), the second may then
    // evict what the first spared.
    for (let pass = 0; pass < 2 && map.size > target; pass++) {
      const requeue: Instance[] = [];
      for (const inst of map.values()) {
        if (map.size <= target) break;
        if (inst.ref) {
          inst.ref = false;
          requeue.push(inst);
        } else if (inst.dirty || inst.busy || inst.writeEpoch > this.#foldedEpoch) {
          requeue.push(inst);
        } else {
          map.delete(inst.key);
          inst.evicted = true;
          this.evictions++;
        }
      }
      // Move referenced and pinned instances to the young end.
      for (const inst of requeue) {
        map.delete(inst.key);
        map.set(inst.key, inst);
      }
    }
    // Two full passes that could not reach the target mean most entries are pinned by pending
    // snapshots: sweeping again on every miss would be quadratic, so wait for the next snapshot.
    if (map.size > target) this.#stalled = true;
  }
}
