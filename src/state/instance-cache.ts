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
 * commit, see checkpoint/participant.ts); until then a read of the base would miss them. An
 * instance evicted before the fold of the epoch that last captured it therefore leaves its record
 * behind (encoded at eviction: an evictable instance is clean, so it still holds what the capture
 * took), and a miss reads that before the base. An evicted instance costs a map entry until its
 * fold, not the whole decoded instance: with slow folds (a big store changing fast), pinning
 * instances until folded let the cache grow to many times its size. Instances that stay cached
 * keep nothing but their captured epoch: the records a snapshot captured live in its encoded
 * bytes (StatesCapture), not as one JS object each for the garbage collector to copy.
 *
 * ## Capture: copy on write
 * A snapshot needs every dirty instance as it was at the barrier. Encoding them all at once held a
 * shard for milliseconds (1,250 instances: 1-5 ms; GC pauses landed in it too), so
 * {@link InstanceCache.beginCapture} only takes the dirty list; the records are encoded later, in
 * slices between loop turns ({@link InstanceCache.captureSome}), and an instance about to change
 * before its turn is encoded first ({@link InstanceCache.willChange}, which every mutation calls).
 * Instances waiting to be captured are pinned like dirty ones.
 */
import { Instance, decodeInstanceInto, encodeInstance, encodeInstanceInto, type InstanceStore } from './instance.js';
import { StatesCapture, decodeStates } from './checkpoint-format.js';

/** Reads an instance's record from the partition base. */
export type RecordLoader = (kg: number, type: string, id: string) => Uint8Array | undefined;

/** One state change of a snapshot: the record to write, or `null` to delete it. */
export type StateChange = [kg: number, type: string, id: string, record: Uint8Array | null];

export class InstanceCache implements InstanceStore {
  readonly #map = new Map<string, Instance>();
  readonly #load: RecordLoader;
  /** key → [epoch, record | null (deleted)]: an evicted instance's last captured record, until folded. */
  readonly #unfolded = new Map<string, [epoch: number, record: Uint8Array | null]>();
  #dirty: Instance[] = [];
  /** The instances of the capture in progress (see beginCapture), from #captureAt on not yet looked at. */
  #capture: Instance[] = [];
  #captureAt = 0;
  #captureEpoch = 0;
  /** The capture's records so far (what beginCapture returned). */
  #captured: StatesCapture | null = null;
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
   * Takes the changes since the last snapshot for epoch `epoch`, encoded at once and decoded
   * back: each dirty instance's record (or null: delete). {@link beginCapture}, then
   * {@link finishCapture}.
   */
  takeChanges(epoch: number): StateChange[] {
    const capture = this.beginCapture(epoch);
    this.finishCapture();
    return decodeStates(capture.finish());
  }

  /**
   * Starts the capture of epoch `epoch`: the instances changed since the last snapshot, as they
   * are now. Returns where their records go — each instance's record (or null: delete), complete
   * (and finished) once {@link captureSome} returns true or {@link finishCapture} returns. The
   * instances are clean again (evictable once captured). An earlier capture still in progress is
   * finished first.
   */
  beginCapture(epoch: number): StatesCapture {
    this.finishCapture();
    const list = this.#dirty;
    for (let i = 0; i < list.length; i++) {
      const inst = list[i] as Instance;
      inst.dirty = false;
      inst.capturing = true;
    }
    this.#dirty = [];
    // A sweep that found nothing to evict may find the instances this capture will free.
    this.#stalled = false;
    this.#capture = list;
    this.#captureAt = 0;
    this.#captureEpoch = epoch;
    const capture = new StatesCapture();
    this.#captured = capture;
    this.#done();
    return capture;
  }

  /** A capture has instances left to encode. */
  get capturing(): boolean {
    return this.#captureAt < this.#capture.length;
  }

  /**
   * Encodes the capture's next instances until `deadline` (a `performance.now()` time) has passed
   * (looking at the clock every CAPTURE_CLOCK_EVERY). Returns true when the capture is complete.
   */
  captureSome(deadline: number): boolean {
    const list = this.#capture;
    let i = this.#captureAt;
    while (i < list.length) {
      const end = Math.min(list.length, i + CAPTURE_CLOCK_EVERY);
      for (; i < end; i++) {
        const inst = list[i] as Instance;
        if (inst.capturing) this.#captureOne(inst);
      }
      if (performance.now() >= deadline) break;
    }
    this.#captureAt = i;
    return this.#done();
  }

  /** Encodes what is left of the capture in progress (if any). */
  finishCapture(): void {
    this.captureSome(Number.POSITIVE_INFINITY);
  }

  willChange(inst: Instance): void {
    if (inst.capturing) this.#captureOne(inst);
  }

  #done(): boolean {
    if (this.#captureAt < this.#capture.length) return false;
    if (this.#capture.length > 0) {
      this.#capture = [];
      this.#captureAt = 0;
      // Captured instances became evictable.
      this.#stalled = false;
    }
    // The capture's bytes are complete: hand them over (this frees the shared encoder).
    this.#captured?.finish();
    this.#captured = null;
    return true;
  }

  #captureOne(inst: Instance): void {
    inst.capturing = false;
    inst.capturedEpoch = this.#captureEpoch;
    const record = encodeInstanceInto(inst);
    const captured = this.#captured as StatesCapture;
    if (record === null) captured.add(inst.kg, inst.type, inst.id, null);
    else captured.addWritten(inst.kg, inst.type, inst.id, record);
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
    for (const inst of this.#capture) inst.capturing = false;
    this.#capture = [];
    this.#captureAt = 0;
    this.#captured?.finish();
    this.#captured = null;
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
        } else if (inst.dirty || inst.busy || inst.capturing) {
          requeue.push(inst);
        } else {
          map.delete(inst.key);
          // Its last captured epoch is not folded yet: the base would be stale until it is.
          if (inst.capturedEpoch > this.#foldedEpoch) this.#unfolded.set(inst.key, [inst.capturedEpoch, encodeInstance(inst)]);
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

/** Instances encoded between two looks at the clock while capturing. */
const CAPTURE_CLOCK_EVERY = 32;