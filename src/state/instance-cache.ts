/**
 * The shard's bounded cache of hot instances, backed by its LMDB partition.
 *
 * Eviction is CLOCK (second chance): a hit sets the instance's reference bit; the sweep walks from
 * the oldest entry, clearing bits and re-queueing referenced instances, and evicts the first ones
 * that are unreferenced AND safe to drop: not dirty (changed since the last snapshot took it) and
 * not held by an invocation. So dirty state always stays in memory until a snapshot takes it, and
 * the cache may exceed its target size while many instances wait for the next barrier.
 *
 * A snapshot's records reach the partition's base only when their epoch is folded (after the
 * commit, see checkpoint/participant.ts); until then a read of the base would miss them. The
 * cache therefore keeps the latest unfolded record of every instance a snapshot took — the same
 * bytes the snapshot holds anyway — and a miss reads that before the base. An evicted instance
 * costs a map entry until its fold, not the whole decoded instance: with slow folds (a big store
 * changing fast), pinning instances until folded let the cache grow to many times its size.
 */
import { Instance, decodeInstanceInto, encodeInstance, type InstanceStore } from './instance.js';

/** Reads an instance's record from the partition base. */
export type RecordLoader = (kg: number, type: string, id: string) => Uint8Array | undefined;

/** One state change of a snapshot: the record to write, or `null` to delete it. */
export type StateChange = [kg: number, type: string, id: string, record: Uint8Array | null];

export class InstanceCache implements InstanceStore {
  readonly #map = new Map<string, Instance>();
  readonly #load: RecordLoader;
  /** key → [epoch, record | null (deleted)]: the latest record a snapshot took, until folded. */
  readonly #unfolded = new Map<string, [epoch: number, record: Uint8Array | null]>();
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
    for (const [key, entry] of this.#unfolded) if (entry[0] <= epoch) this.#unfolded.delete(key);
  }

  /** Instances whose latest record waits for a fold (metrics and tests). */
  get unfoldedCount(): number {
    return this.#unfolded.size;
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
    const unfolded = this.#unfolded.get(key);
    const bytes = unfolded === undefined ? this.#load(kg, type, id) : unfolded[1];
    if (bytes !== undefined && bytes !== null) decodeInstanceInto(inst, bytes);
    // Evict BEFORE adding: a sweep could otherwise drop the very instance it is about to return
    // (its reference bit cleared by the first pass), and the caller's changes would be lost.
    if (this.#map.size >= this.capacity && !this.#stalled) this.#evict();
    this.#map.set(key, inst);
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
   * record (or null: delete). The instances are clean again (evictable); their records are kept
   * until `epoch` is folded.
   */
  takeChanges(epoch: number): StateChange[] {
    const out: StateChange[] = [];
    for (const inst of this.#dirty) {
      inst.dirty = false;
      const record = encodeInstance(inst);
      out.push([inst.kg, inst.type, inst.id, record]);
      this.#unfolded.set(inst.key, [epoch, record]);
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
    this.#unfolded.clear();
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
        } else if (inst.dirty || inst.busy) {
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
    // Two full passes that could not reach the target mean most entries are dirty or busy:
    // sweeping again on every miss would be quadratic, so wait for the next snapshot.
    if (map.size > target) this.#stalled = true;
  }
}
