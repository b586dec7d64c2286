/**
 * The harness's instance store: every instance lives in a Map for the harness's lifetime. The
 * engine's store is a bounded cache over an LMDB partition; both hand the dispatcher the same
 * {@link Instance} objects (slots of encoded bytes), so reads, writes and TTLs behave the same.
 */
import { Instance, type InstanceStore } from '../state/instance.js';

export class MemoryInstanceStore implements InstanceStore {
  readonly #map = new Map<string, Instance>();

  get(key: string, type: string, id: string, kg: number): Instance {
    let inst = this.#map.get(key);
    if (inst === undefined) {
      inst = new Instance(key, type, id, kg);
      this.#map.set(key, inst);
    }
    return inst;
  }

  /** Nothing to snapshot: the Map is the only copy. */
  markDirty(inst: Instance): void {
    inst.dirty = true;
  }

  /** Nothing is ever captured for a snapshot: nothing to do before a change. */
  willChange(_inst: Instance): void {}

  /** Every instance ever touched (for `instances`). */
  all(): IterableIterator<Instance> {
    return this.#map.values();
  }

  /** The instance if it was ever touched, without creating it (for `query`). */
  peek(key: string): Instance | undefined {
    return this.#map.get(key);
  }
}
