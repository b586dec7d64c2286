/**
 * The engine's side of `weft.instances`: the main thread opens every shard's partition read-only
 * (lmdb-js shares one environment per file among the threads of a process, so this costs no
 * second map) and lists from one read snapshot per partition, all taken in the same synchronous
 * step as the committed epoch is read — see listing.ts for why that is exactly the committed
 * checkpoint, and for the order and memory of a listing.
 *
 * A listing holds its snapshots from its first `next()` until it ends, is broken out of
 * (`return()`), or the engine closes (its next `next()` then rejects with ERR_WEFT_CLOSED). An
 * iterator dropped half-way without `return()` is released when it is garbage-collected. It hands
 * the event loop back every few milliseconds, so listing a million ids does not stall the engine.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import { WeftError } from '../core/errors.js';
import type { RuntimeModule } from '../module/runtime.js';
import { Partition, type PartitionSnapshot } from './partition.js';
import type { Durability } from '../contract/options.js';
import { listCommitted, moduleStateReader, type InstanceEntry, type ResolvedInstancesOptions } from './listing.js';

/** Busy time after which a listing yields to the event loop (ms). */
const SLICE_MS = 4;

export interface ListerOptions {
  readonly partitionPaths: readonly string[];
  readonly durability: Durability;
  readonly keyGroups: number;
  readonly module: RuntimeModule;
  shardOf(kg: number): number;
  /** The committed epoch as the coordinator knows it (read synchronously with the snapshots). */
  committedEpoch(): number;
  /** Throws when the engine may not be used (closing, failed). */
  checkOpen(): void;
}

interface Active {
  snapshots: PartitionSnapshot[];
}

export class Lister {
  readonly #o: ListerOptions;
  #partitions: Promise<Partition[]> | undefined;
  readonly #active = new Set<Active>();
  #closed = false;
  readonly #registry = new FinalizationRegistry<Active>((active) => this.#release(active));

  constructor(options: ListerOptions) {
    this.#o = options;
  }

  /** Open listings (for tests and metrics). */
  get open(): number {
    return this.#active.size;
  }

  list(type: string, opts: ResolvedInstancesOptions): AsyncIterableIterator<string | InstanceEntry> {
    return this.#run(type, opts);
  }

  async *#run(type: string, opts: ResolvedInstancesOptions): AsyncGenerator<string | InstanceEntry, void, undefined> {
    const partitions = await this.#open();
    this.#o.checkOpen();
    if (this.#closed) throw closedError();
    // One synchronous step: the committed epoch and every shard's snapshot (see listing.ts).
    const committedEpoch = this.#o.committedEpoch();
    const active: Active = { snapshots: [] };
    try {
      for (const p of partitions) active.snapshots.push(p.snapshot());
    } catch (err) {
      this.#release(active);
      throw err;
    }
    this.#active.add(active);
    // Only the generator's frame holds `token`: a listing dropped half-way releases its snapshots when collected.
    const token = {};
    this.#registry.register(token, active, token);
    try {
      const view = { snapshots: active.snapshots, committedEpoch, keyGroups: this.#o.keyGroups, shardOf: this.#o.shardOf };
      const items = listCommitted(view, type, opts, moduleStateReader(this.#o.module, Date.now()));
      let sliceStart = performance.now();
      let n = 0;
      for (;;) {
        let next: IteratorResult<{ id: string; state: Record<string, unknown> | undefined }>;
        // Released by close() (or collected): no more ids, even those already read into memory.
        if (active.snapshots.length === 0) throw closedError();
        try {
          next = items.next();
        } catch (err) {
          if (this.#closed || (err instanceof WeftError && err.code === 'ERR_WEFT_CLOSED')) throw closedError();
          throw err;
        }
        if (next.done === true) return;
        const { id, state } = next.value;
        yield opts.withState ? { id, state: state as Record<string, unknown> } : id;
        if ((++n & 255) === 0 && performance.now() - sliceStart > SLICE_MS) {
          await nextTurn();
          sliceStart = performance.now();
        }
      }
    } finally {
      this.#registry.unregister(token);
      this.#release(active);
    }
  }

  #release(active: Active): void {
    this.#active.delete(active);
    for (const s of active.snapshots) s.release();
    active.snapshots = [];
  }

  #open(): Promise<Partition[]> {
    this.#partitions ??= (async () => {
      const opened: Partition[] = [];
      try {
        for (const path of this.#o.partitionPaths) opened.push(await Partition.open(path, { durability: this.#o.durability, readOnly: true }));
      } catch (err) {
        for (const p of opened) await p.close().catch(() => {});
        this.#partitions = undefined;
        throw err;
      }
      return opened;
    })();
    return this.#partitions;
  }

  /** Ends every open listing (their next `next()` rejects with ERR_WEFT_CLOSED) and closes the partitions. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const active of [...this.#active]) this.#release(active);
    const partitions = await this.#partitions?.catch(() => []);
    for (const p of partitions ?? []) await p.close();
  }
}

function closedError(): WeftError {
  return new WeftError('ERR_WEFT_CLOSED', 'weft.instances: the engine closed during the listing');
}
