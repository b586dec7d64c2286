/**
 * Durable egress: committed egress records wait in the data dir until the host acknowledges them.
 *
 * WHERE A RECORD LIVES, AND WHY THAT IS CONSISTENT
 * A shard sends each egress record to main on its shard→main ring before the BARRIER(e) that ends
 * the invocation's epoch, so when every shard has reported DONE(e), main holds all of epoch e's
 * records (host/commit-gate.ts, by epoch). The coordinator's commit of e writes them into the data
 * dir's meta store (sub-database `egress`, key `[name, e, seq]`) IN THE SAME LMDB TRANSACTION as
 * `committedEpoch = e` (DataDir.commit). So a record is durable exactly when the invocation that
 * produced it is: a crash before that transaction loses both (the invocation runs again and
 * produces the record again, in a later epoch), a crash after it keeps both. Nothing is written
 * for an epoch that never commits, and a committed epoch is never rolled back.
 *
 * The store is main's, not a shard partition's: rescaling (repartition.ts) re-partitions the
 * shards' key groups and never touches it, so records and their ids survive any shard-count
 * change unchanged. An id is `"<epoch>.<seq>"`: `seq` numbers the records of epoch `e` in the
 * order main received them. Committed epochs are unique and increasing for the life of the data
 * dir, so an id names one record for ever (across restarts and rescales).
 *
 * An acknowledgement deletes the record in a later, separate transaction (batched: one per
 * macrotask). A crash before that transaction is durable delivers the record again at the next
 * start: delivery to the host is at-least-once, and a consumer that remembers the ids it has
 * processed gets each record's effect exactly once.
 *
 * MEMORY
 * Each egress keeps at most {@link WINDOW} records ({@link WINDOW_BYTES}) in memory, read ahead for
 * its iterators; the rest stay on disk and are read in chunks as iterators catch up. Commits append to the window
 * directly while the egress is caught up (no read back).
 *
 * DELIVERY
 * `iterator()` hands each record to one iterator at a time, in id order. With `autoAck` (the
 * default), asking for the next record acknowledges the previous one; `record.ack()` acknowledges
 * explicitly (idempotent). When an iterator ends early — `break`, `return`, or an exception in the
 * `for await` body (JavaScript calls `return()` in all three) — the records it holds unacknowledged
 * go back to the front of the egress and are delivered again, to the next iterator that asks. So
 * a crash, an exception or a `break` before the record's work is done never loses it; acknowledge
 * with `record.ack()` before a `break` when the record is done.
 *
 * BACKLOG
 * A user egress reports `full` while its unacknowledged records NOT held by an iterator number
 * `maxBacklog` or more (host sends wait: backpressure, bounded in time by host/router.ts). Held records
 * do not count: a consumer that awaits a host send before it acknowledges the record it holds
 * (a `for await` loop with autoAck) would otherwise wait for itself. `weft/dead-letters` instead
 * deletes its oldest records not held by an iterator past `maxBacklog` (counted in `dropped`, one
 * warning), so dead letters nobody reads never stall the engine.
 */
import { setImmediate } from 'node:timers';
import { WeftError } from '../core/errors.js';
import type { EgressEntry, Partition, WriteOps } from '../state/partition.js';
import { quietDeferred, type Deferred } from '../internal/deferred.js';
import { Fifo } from '../internal/fifo.js';

/** A committed egress record, as `weft.egress(name)` yields it. */
export interface EgressRecord<T = unknown> {
  /**
   * Stable for the life of the data dir, across restarts and shard-count changes: a record
   * delivered again after a crash carries the same id. `"<epoch>.<seq>"`.
   */
  readonly id: string;
  readonly value: T;
  /**
   * Acknowledges the record: it is deleted from the data dir and never delivered again.
   * Idempotent. The promise resolves once the deletion is durable (a crash before that delivers
   * the record again); it rejects with ERR_WEFT_CLOSED when the engine closed first (then the
   * record is delivered again at the next start). Awaiting it is optional.
   */
  ack(): Promise<void>;
}

/** Options of `weft.egress(name, options)`. */
export interface EgressIteratorOptions {
  /**
   * Asking for the next record acknowledges the previous one. Default true. With false, records
   * are acknowledged only by `record.ack()`; those not acknowledged when the iterator ends are
   * delivered again.
   */
  autoAck?: boolean;
}

/**
 * Records each egress keeps in memory ahead of its iterators, at most (and at most
 * {@link WINDOW_BYTES} of payload): a consumer that keeps up is served from memory; one that
 * falls further behind reads the rest back from disk, {@link READ_CHUNK} records at a time.
 */
export const WINDOW = 4096;
export const WINDOW_BYTES = 16 * 1024 * 1024;
const READ_CHUNK = 512;

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();
/** A module has few typenames: each is encoded once. */
const typenameBytes = new Map<string, Uint8Array>();

/** Stored value: `[u16 typename length][typename UTF-8][payload]`. */
export function encodeEgressValue(typename: string, payload: Uint8Array): Uint8Array {
  let t = typenameBytes.get(typename);
  if (t === undefined) {
    t = textEncoder.encode(typename);
    if (typenameBytes.size < 1024) typenameBytes.set(typename, t);
  }
  const out = new Uint8Array(2 + t.byteLength + payload.byteLength);
  out[0] = t.byteLength >>> 8;
  out[1] = t.byteLength & 0xff;
  out.set(t, 2);
  out.set(payload, 2 + t.byteLength);
  return out;
}

function decodeEgressValue(bytes: Uint8Array): [typename: string, payload: Uint8Array] {
  const n = ((bytes[0] ?? 0) << 8) | (bytes[1] ?? 0);
  if (bytes.byteLength < 2 + n) throw new WeftError('ERR_WEFT_DATA_DIR', `a stored egress record is truncated (${bytes.byteLength} bytes)`);
  // A plain Uint8Array of its own: LMDB hands out Buffers, and decoders that return a payload's
  // bytes (type.bytes(), a Kafka record's value) must give what a record released at commit gives.
  return [textDecoder.decode(bytes.subarray(2, 2 + n)), new Uint8Array(bytes.subarray(2 + n))];
}

/** The egress records of the data dir's meta store; acknowledgements are deleted in batches. */
export class EgressStore {
  readonly #partition: Partition;
  readonly #onError: (err: unknown) => void;
  #deletes: Array<[name: string, epoch: number, seq: number]> = [];
  /** Settles when the batch in #deletes is durable. */
  #batch: Deferred<void> | null = null;
  #scheduled = false;
  #writing: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(partition: Partition, onError: (err: unknown) => void) {
    this.#partition = partition;
    this.#onError = onError;
  }

  count(name: string): number {
    return this.#partition.countEgress(name);
  }

  read(name: string, after: readonly [number, number] | null, limit: number): EgressEntry[] {
    return this.#partition.egressRecords(name, after, limit);
  }

  /** Writes the records of a committing epoch (into the commit's own transaction). */
  static put(ops: WriteOps, records: ReadonlyArray<readonly [name: string, typename: string, payload: Uint8Array]>, epoch: number): void {
    for (let seq = 0; seq < records.length; seq++) {
      const [name, typename, payload] = records[seq]!;
      ops.putEgress(name, epoch, seq, encodeEgressValue(typename, payload));
    }
  }

  /** Deletes a record (batched with the others of this turn); resolves once that is durable. */
  delete(name: string, epoch: number, seq: number): Promise<void> {
    if (this.#closed) {
      // The record stays, and is delivered again at the next start.
      const refused = Promise.reject(new WeftError('ERR_WEFT_CLOSED', `egress ${JSON.stringify(name)} record ${epoch}.${seq} acknowledged after close(): it is delivered again at the next start`));
      refused.catch(() => {});
      return refused;
    }
    this.#deletes.push([name, epoch, seq]);
    // Acknowledging without awaiting is normal: never an unhandled rejection.
    if (this.#batch === null) this.#batch = quietDeferred();
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => {
        this.#scheduled = false;
        void this.flush();
      });
    }
    return this.#batch.promise;
  }

  /** Writes the acknowledgements made so far; resolves once they are durable. */
  flush(): Promise<void> {
    const deletes = this.#deletes;
    const batch = this.#batch;
    if (deletes.length > 0 && batch !== null) {
      this.#deletes = [];
      this.#batch = null;
      this.#writing = this.#partition
        .write((ops) => {
          for (const [name, epoch, seq] of deletes) ops.deleteEgress(name, epoch, seq);
        })
        .then(batch.resolve, (err: unknown) => {
          batch.reject(err);
          if (!this.#closed) this.#onError(err);
        });
    }
    return this.#writing;
  }

  /** Flushes, then ignores later acknowledgements (their records are delivered again at the next start). */
  async close(): Promise<void> {
    await this.flush();
    this.#closed = true;
  }
}

const enum At {
  Window = 0,
  Out = 1,
  Acked = 2,
}

interface Entry {
  readonly epoch: number;
  readonly seq: number;
  readonly typename: string;
  readonly payload: Uint8Array;
  at: At;
  holder: IteratorState | null;
  /** Handed out before (and given back unacknowledged). */
  again: boolean;
  /** Settles when the acknowledgement is durable. */
  acked?: Promise<void>;
}

interface IteratorState {
  readonly autoAck: boolean;
  readonly held: Set<Entry>;
  last: Entry | null;
  done: boolean;
  waiting: ((r: IteratorResult<EgressRecord>) => void) | null;
}

export interface EgressChannelOptions {
  maxBacklog: number;
  /** Past `maxBacklog`, delete the oldest instead of reporting `full` (dead letters). */
  dropOldest: boolean;
  decode(typename: string, payload: Uint8Array): unknown;
  /** `full` changed (possibly from within the constructor). */
  onFull(full: boolean, channel: EgressChannel): void;
}

/** One egress: its backlog count, its in-memory window and its iterators. */
export class EgressChannel {
  readonly name: string;
  /** Committed records not yet acknowledged (on disk, in the window, or held by iterators). */
  backlog: number;
  /** Records deleted unacknowledged by the dead-letter bound. */
  dropped = 0;
  /** Records handed out again after an iterator gave them back. */
  redelivered = 0;
  /** Records held by iterators (handed out, not yet acknowledged): part of `backlog`, not of `full`. */
  #held = 0;
  readonly #store: EgressStore;
  readonly #opts: EgressChannelOptions;
  readonly #window = new Fifo<Entry>();
  /** Payload bytes of the records in the window (approximate: given-back ones are not re-counted). */
  #windowBytes = 0;
  /** Highest key read into the window (from disk or a commit). */
  #tail: [number, number] | null = null;
  /** The disk may hold records after #tail. */
  #behind = true;
  readonly #waiting: IteratorState[] = [];
  #ended = false;
  #full = false;

  constructor(name: string, store: EgressStore, opts: EgressChannelOptions) {
    this.name = name;
    this.#store = store;
    this.#opts = opts;
    this.backlog = store.count(name);
    this.#checkBacklog();
  }

  get full(): boolean {
    return this.#full;
  }

  /** Records of this egress were committed in `epoch` (already durable). */
  committed(records: ReadonlyArray<readonly [epoch: number, seq: number, typename: string, payload: Uint8Array]>): void {
    for (const [epoch, seq, typename, payload] of records) {
      this.backlog++;
      // Already read from disk (a reader refilled between the write and this call).
      if (this.#tail !== null && (epoch < this.#tail[0] || (epoch === this.#tail[0] && seq <= this.#tail[1]))) continue;
      if (!this.#behind && this.#window.size < WINDOW && this.#windowBytes < WINDOW_BYTES) {
        this.#window.push({ epoch, seq, typename, payload, at: At.Window, holder: null, again: false });
        this.#windowBytes += payload.byteLength;
        this.#tail = [epoch, seq];
      } else this.#behind = true;
    }
    this.#checkBacklog();
    this.#serve();
  }

  end(): void {
    this.#ended = true;
    for (const it of this.#waiting.splice(0)) {
      const w = it.waiting;
      it.waiting = null;
      w?.({ value: undefined, done: true });
    }
  }

  iterator(options?: EgressIteratorOptions): AsyncIterableIterator<EgressRecord> {
    const it: IteratorState = { autoAck: options?.autoAck ?? true, held: new Set(), last: null, done: false, waiting: null };
    const iterator: AsyncIterableIterator<EgressRecord> = {
      next: () => {
        if (it.waiting !== null) return Promise.reject(new WeftError('ERR_WEFT_INVALID_ARG', `weft.egress(${JSON.stringify(this.name)}): next() called while the previous next() is pending`));
        if (it.autoAck && it.last !== null) void this.#ack(it.last);
        it.last = null;
        if (it.done || this.#ended) return Promise.resolve({ value: undefined, done: true });
        const e = this.#take();
        if (e !== undefined) return Promise.resolve({ value: this.#handOut(it, e), done: false });
        return new Promise((resolve) => {
          it.waiting = resolve;
          this.#waiting.push(it);
        });
      },
      return: () => {
        this.#close(it);
        return Promise.resolve({ value: undefined, done: true });
      },
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }

  /** The iterator ends: what it holds unacknowledged goes back to the front, for redelivery. */
  #close(it: IteratorState): void {
    if (it.done) return;
    it.done = true;
    it.last = null;
    if (it.waiting !== null) {
      const w = it.waiting;
      it.waiting = null;
      const i = this.#waiting.indexOf(it);
      if (i >= 0) this.#waiting.splice(i, 1);
      w({ value: undefined, done: true });
    }
    if (it.held.size === 0) return;
    const back = [...it.held].sort((a, b) => a.epoch - b.epoch || a.seq - b.seq);
    it.held.clear();
    for (const e of back) {
      e.at = At.Window;
      e.holder = null;
      e.again = true;
    }
    this.#held -= back.length;
    this.#checkFull();
    const merged = [...back, ...this.#window.toArray()].sort((a, b) => a.epoch - b.epoch || a.seq - b.seq);
    this.#window.clear();
    for (const e of merged) this.#window.push(e);
    for (const e of back) this.#windowBytes += e.payload.byteLength;
    this.#serve();
  }

  #handOut(it: IteratorState, e: Entry): EgressRecord {
    e.at = At.Out;
    e.holder = it;
    it.held.add(e);
    it.last = e;
    this.#held++;
    this.#checkFull();
    if (e.again) this.redelivered++;
    const value = this.#opts.decode(e.typename, e.payload);
    return { id: `${e.epoch}.${e.seq}`, value, ack: () => this.#ack(e) };
  }

  #ack(e: Entry): Promise<void> {
    if (e.at === At.Acked) return e.acked ?? Promise.resolve();
    if (e.at === At.Out) this.#held--;
    e.at = At.Acked;
    e.holder?.held.delete(e);
    e.holder = null;
    this.backlog--;
    e.acked = this.#store.delete(this.name, e.epoch, e.seq);
    this.#checkBacklog();
    return e.acked;
  }

  /** The oldest record waiting in the window (refilled from disk), or undefined. */
  #take(): Entry | undefined {
    for (;;) {
      for (let e = this.#window.shift(); e !== undefined; e = this.#window.shift()) {
        this.#windowBytes -= e.payload.byteLength;
        if (e.at === At.Window) return e;
      }
      if (!this.#behind) return undefined;
      this.#refill();
      if (this.#window.size === 0) return undefined;
    }
  }

  #refill(): void {
    const rows = this.#store.read(this.name, this.#tail, READ_CHUNK);
    if (rows.length < READ_CHUNK) this.#behind = false;
    this.#window.clear();
    this.#windowBytes = 0;
    for (const row of rows) {
      const [typename, payload] = decodeEgressValue(row.value);
      this.#windowBytes += payload.byteLength;
      this.#window.push({ epoch: row.epoch, seq: row.seq, typename, payload, at: At.Window, holder: null, again: false });
      this.#tail = [row.epoch, row.seq];
    }
  }

  #serve(): void {
    while (this.#waiting.length > 0) {
      const e = this.#take();
      if (e === undefined) return;
      const it = this.#waiting.shift()!;
      const w = it.waiting!;
      it.waiting = null;
      w({ value: this.#handOut(it, e), done: false });
    }
  }

  #checkBacklog(): void {
    const { maxBacklog, dropOldest } = this.#opts;
    if (dropOldest) {
      let excess = this.backlog - maxBacklog;
      while (excess > 0) {
        const e = this.#take();
        if (e === undefined) break; // every record left is held by an iterator
        e.at = At.Acked;
        this.backlog--;
        void this.#store.delete(this.name, e.epoch, e.seq);
        if (this.dropped++ === 0) {
          process.emitWarning(`weft: egress ${JSON.stringify(this.name)} holds ${maxBacklog} unacknowledged records (egressMaxBacklog); deleting the oldest. Read it with weft.egress(name).`);
        }
        excess--;
      }
      return;
    }
    this.#checkFull();
  }

  #checkFull(): void {
    if (this.#opts.dropOldest) return;
    const full = this.backlog - this.#held >= this.#opts.maxBacklog;
    if (full !== this.#full) {
      this.#full = full;
      this.#opts.onFull(full, this);
    }
  }
}
