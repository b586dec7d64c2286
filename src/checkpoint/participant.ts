/**
 * The shard's side of the checkpoint protocol (the coordinator's side is coordinator.ts; the
 * whole protocol is explained there). In short, for epoch `e`:
 *
 *   1. On the FIRST BARRIER(e) to arrive on any inbound ring, take the snapshot: the state records
 *      changed since the last one (incremental), the timer changes, and every mailbox — queued
 *      messages and the messages of invocations still running (they will run again on recovery).
 *      Then forward BARRIER(e) on every outbound ring (behind everything sent before it).
 *   2. Until BARRIER(e) arrives on an inbound ring, every message arriving on that ring was in
 *      flight at the snapshot: record it (it is also processed as usual; its effects belong to
 *      the next epoch, and recovery replays it).
 *   3. When BARRIER(e) has arrived on every inbound ring, write the snapshot — delta, mailboxes,
 *      recorded in-flight messages, timer changes — as PENDING(e) in ONE partition transaction,
 *      and report DONE(e) once it is durable.
 *   4. On COMMITTED(e) from the coordinator, fold PENDING(e) into the partition base (a later,
 *      separate transaction: if it is lost in a crash, recovery folds again from PENDING(e)).
 *   5. Recovery: fold every pending epoch up to the last committed one, drop the later ones,
 *      reload timers, and replay the committed mailbox before any new input.
 */
import { setImmediate } from 'node:timers';
import { WeftError } from '../core/errors.js';
import type { Envelope } from '../contract/envelope.js';
import { META_FOLDED_EPOCH, META_MAILBOX, META_TIMER_SEQ, PendingKind, StatesReader, decodeEnvelopes, decodePendingMeta, decodeStates, decodeTimer, encodeEnvelopes, encodePendingMeta, encodeTimer, SnapshotEncoder, type StatesCapture } from '../state/checkpoint-format.js';
import type { StateChange } from '../state/instance-cache.js';
import type { Partition, WriteOps } from '../state/partition.js';
import type { Timer, TimerDelta } from '../timers/timer-service.js';

/** What a shard captures at the first barrier of an epoch. */
export interface Snapshot {
  readonly epoch: number;
  /** The state records captured at the barrier (complete once the hooks say captured()). */
  readonly states: StatesCapture;
  readonly timers: TimerDelta;
  /** Emptied once a later committed snapshot supersedes it (see dropMailbox). */
  mailbox: Envelope[];
  inflight: Envelope[];
  readonly timerSeq: number;
  bytes: number;
  /** The mailbox and in-flight messages, encoded once for PENDING and reused by the fold. */
  mailboxBytes?: Uint8Array | undefined;
}

export interface ParticipantHooks {
  /** Capture state delta, timer delta and mailboxes (step 1). */
  takeSnapshot(epoch: number): Omit<Snapshot, 'inflight' | 'bytes'>;
  /** Forward BARRIER(epoch) on every outbound ring, after reporting the host-ack watermark. */
  forwardBarrier(epoch: number): void;
  /** PENDING(epoch) is durable. */
  done(epoch: number, snapshot: Snapshot, writeMs: number): void;
  /** PENDING(epoch) is folded into the base. */
  folded(epoch: number): void;
  /** A partition write failed: the shard cannot go on. */
  fatal(err: unknown): void;
  /**
   * The snapshot's state records are all encoded (the cache captures them in slices, copy on
   * write): until then its PENDING write waits (see Participant.resume).
   */
  captured(): boolean;
  /** Encodes the rest of the snapshot's state records now. */
  finishCapture(): void;
  /**
   * Called every few thousand records of a snapshot's encode (and between a fold's slices), which
   * run synchronously on the shard's event loop: bumps the shard's heartbeat, so main's watchdog
   * never takes a large checkpoint for a blocked loop (ControlBlock.beat).
   */
  beat(): void;
}

export class Participant {
  readonly #partition: Partition;
  readonly #hooks: ParticipantHooks;
  /** Per inbound ring: BARRIER(current) not yet received. */
  readonly #awaiting: boolean[];
  #awaitingCount = 0;
  #current: Snapshot | null = null;
  /** Snapshots written as PENDING, waiting for COMMITTED, by epoch. */
  readonly #unfolded = new Map<number, Snapshot>();
  /** Highest epoch whose barrier this shard has seen. */
  lastEpoch = 0;
  lastCommitted = 0;

  /**
   * @param phase this shard's place in the fold cycle, 0 to FOLD_EVERY - 1 (the function
   * `foldPhase` below gives it): shards given different phases fold at different commits.
   */
  constructor(partition: Partition, inboundRings: number, hooks: ParticipantHooks, lastCommitted: number, phase = 0) {
    if (!Number.isInteger(phase) || phase < 0 || phase >= FOLD_EVERY) {
      throw new RangeError(`fold phase must be an integer from 0 to ${FOLD_EVERY - 1} (got ${String(phase)})`);
    }
    this.#partition = partition;
    this.#hooks = hooks;
    this.#awaiting = new Array<boolean>(inboundRings).fill(false);
    this.lastCommitted = lastCommitted;
    this.lastEpoch = lastCommitted;
    this.#foldPhase = phase;
  }

  readonly #foldPhase: number;

  /** Messages from inbound ring `ring` must be recorded as in flight right now. */
  isRecording(ring: number): boolean {
    return this.#current !== null && this.#awaiting[ring] === true;
  }

  record(env: Envelope): void {
    this.#current?.inflight.push(env);
  }

  /**
   * BARRIER(epoch) arrived on inbound ring `ring`. `ringsInUse` marks the rings that carry
   * barriers (all of them in a full mesh; a shard's ring to itself does not exist).
   */
  onBarrier(ring: number, epoch: number, ringsInUse: readonly boolean[]): void {
    if (this.#current === null || this.#current.epoch !== epoch) {
      if (epoch <= this.lastEpoch) return; // a duplicate from before a recovery: ignore
      // The previous snapshot still waits for its capture: finish it, its PENDING goes first.
      if (this.#waiting !== null) {
        this.#hooks.finishCapture();
        this.resume();
      }
      const snap = this.#hooks.takeSnapshot(epoch);
      this.#current = { ...snap, inflight: [], bytes: 0 };
      this.lastEpoch = epoch;
      this.#awaitingCount = 0;
      for (let i = 0; i < this.#awaiting.length; i++) {
        const wait = ringsInUse[i] === true && i !== ring;
        this.#awaiting[i] = wait;
        if (wait) this.#awaitingCount++;
      }
      this.#hooks.forwardBarrier(epoch);
    } else if (this.#awaiting[ring] === true) {
      this.#awaiting[ring] = false;
      this.#awaitingCount--;
    }
    if (this.#awaitingCount === 0) this.#complete();
  }

  #complete(): void {
    const snap = this.#current as Snapshot;
    this.#current = null;
    if (!this.#hooks.captured()) {
      this.#waiting = snap;
      return;
    }
    this.#write(snap);
  }

  /** The capture is complete: a snapshot waiting for it is written now. */
  resume(): void {
    const snap = this.#waiting;
    if (snap === null) return;
    this.#waiting = null;
    this.#write(snap);
  }

  /** A snapshot complete (every barrier in) whose state records are still being captured. */
  #waiting: Snapshot | null = null;

  /**
   * Step 3: PENDING(e) in one transaction, DONE(e) once it is durable. The mailbox and in-flight
   * messages are encoded first, in slices (a saturated shard's mailbox took 13-17 ms to encode at
   * once); snapshots are written one after another, in epoch order.
   */
  #write(snap: Snapshot): void {
    const e = snap.epoch;
    this.#writing = this.#writing
      .then(async () => {
        const started = performance.now();
        const mailbox = await this.#encodeMailbox(snap.mailbox.concat(snap.inflight));
        snap.mailboxBytes = mailbox;
        let bytes = mailbox.byteLength;
        await this.#partition.write((ops) => {
          const states = snap.states.finish();
          if (snap.states.count > 0) {
            bytes += states.byteLength;
            ops.putPending([e, PendingKind.States], states);
          }
          for (const t of snap.timers.puts) {
            const b = encodeTimer(t);
            bytes += b.byteLength;
            ops.putPending([e, PendingKind.TimerPut, t.kg, t.due, t.seq], b);
          }
          for (const [kg, due, seq] of snap.timers.deletes) ops.putPending([e, PendingKind.TimerDelete, kg, due, seq], new Uint8Array(0));
          ops.putPending([e, PendingKind.Mailbox], mailbox);
          ops.putPending([e, PendingKind.Meta], encodePendingMeta(snap.timerSeq));
        });
        snap.bytes = bytes;
        this.#unfolded.set(e, snap);
        this.#hooks.done(e, snap, performance.now() - started);
      })
      .catch((err: unknown) => this.#hooks.fatal(err));
  }

  #writing: Promise<void> = Promise.resolve();
  /** Encodes mailboxes for #write (one snapshot at a time: the writes are chained). */
  readonly #mailboxEncoder = new SnapshotEncoder();

  /** `envs` as encodeEnvelopes writes them, a slice of at most FOLD_SLICE_MS at a time. */
  async #encodeMailbox(envs: readonly Envelope[]): Promise<Uint8Array> {
    const enc = this.#mailboxEncoder;
    enc.begin();
    const slice = new Slice();
    for (let i = 0; i < envs.length; i++) {
      enc.append(envs[i]);
      if (slice.over()) {
        this.#hooks.beat();
        await slice.yield();
      }
    }
    return enc.end();
  }

  /**
   * The coordinator committed `epoch`. Committed epochs are folded into the base in groups of
   * FOLD_EVERY (or at once when `urgent`: the cache needs evictable instances): an instance that
   * changed in several of them is written to the base once, with its latest record. Until then
   * they stay PENDING, which recovery folds anyway; nothing but eviction waits for a fold.
   *
   * A fold starts when the committed epoch passes the next multiple of FOLD_EVERY shifted by this
   * shard's fold phase: every shard commits every epoch, so shards with different phases fold at
   * different commits instead of all at once. (The count of waiting epochs reaches FOLD_EVERY
   * only at such a commit; it is checked as a guard.) After a restart the first fold may take
   * fewer epochs; a fold started otherwise (urgent, quiet, close) is back in phase at the next
   * turn. Folds at once kept the shards' threads, their commits on libuv's pool and the garbage
   * collector busy together every FOLD_EVERY checkpoints, and the requests arriving then waited
   * milliseconds for a core (issue 13).
   */
  onCommitted(epoch: number, urgent = false): void {
    if (epoch <= this.lastCommitted) return;
    const phase = this.#foldPhase;
    const turn = Math.floor((epoch + phase) / FOLD_EVERY) > Math.floor((this.lastCommitted + phase) / FOLD_EVERY);
    this.lastCommitted = epoch;
    for (const e of [...this.#unfolded.keys()].sort((a, b) => a - b)) {
      if (e > epoch) break;
      // A fold writes the mailbox of its last snapshot only: the earlier ones' can go now.
      const previous = this.#committedSnaps.at(-1);
      if (previous !== undefined) dropMailbox(previous);
      this.#committedSnaps.push(this.#unfolded.get(e) as Snapshot);
      this.#unfolded.delete(e);
    }
    if (this.#committedSnaps.length >= FOLD_EVERY || ((turn || urgent) && this.#committedSnaps.length > 0)) this.foldNow();
  }

  /**
   * Folds every committed, unfolded epoch into the base, in slices that each hold the shard's
   * thread for well under a millisecond (FOLD_SLICE_MS, FOLD_SLICE): the epochs' changes are read
   * newest first, and each instance's first one seen — its latest — is picked (by where it lies,
   * {@link FoldPicks}); the picks are sorted by key group and written in that order, in writes of
   * at most FOLD_SLICE records; up to FOLD_INFLIGHT of them wait for their commit at a time (the
   * partition commits what is queued together), and the loop yields to the event loop after
   * each. Then one transaction writes the timers and metadata and removes the PENDING entries.
   * Until that last one commits the folded epoch in the metadata stays where it was, so a crash
   * in between folds the epochs again from PENDING (rewriting the same records). Nothing per
   * change outlives its slice but the ids picked (until the writing starts) and three numbers in
   * typed arrays (a merge of the epochs into tuples before writing kept a tuple and a view per
   * instance alive for the whole fold, for the garbage collector to copy).
   *
   * One fold at a time: epochs committed meanwhile wait, and the next fold takes them all (so a
   * fold that falls behind writes each instance once for more epochs, instead of queueing folds
   * behind it). {@link foldLag} counts the committed epochs not folded yet; the shard stops
   * taking input while it is over MAX_FOLD_LAG.
   */
  foldNow(): void {
    if (this.#committedSnaps.length === 0) return;
    if (this.#foldingSnaps > 0) {
      this.#foldAgain = true;
      return;
    }
    const snaps = this.#committedSnaps;
    this.#committedSnaps = [];
    this.#foldingSnaps = snaps.length;
    this.#folding = this.#folding
      .then(() => this.#fold(snaps))
      .then(
        () => {
          this.#foldingSnaps = 0;
          this.#hooks.folded((snaps[snaps.length - 1] as Snapshot).epoch);
          if (this.#foldAgain || this.#committedSnaps.length >= FOLD_EVERY) {
            this.#foldAgain = false;
            this.foldNow();
          }
        },
        (err: unknown) => {
          this.#foldingSnaps = 0;
          this.#hooks.fatal(err);
        },
      );
  }

  /** Committed epochs not folded into the base yet (waiting, or in the fold running now). */
  get foldLag(): number {
    return this.#committedSnaps.length + this.#foldingSnaps;
  }

  async #fold(snaps: readonly Snapshot[]): Promise<void> {
    const beat = this.#hooks.beat;
    // Slices written and not yet committed, oldest first.
    const inflight: Array<Promise<void>> = [];
    const write = async (slice: readonly StateChange[]): Promise<void> => {
      beat();
      const p = this.#partition.write((ops) => writeStates(ops, slice, 0, slice.length));
      // Awaited below or at the end; a failure in between must not count as unhandled.
      p.catch(() => {});
      inflight.push(p);
      if (inflight.length >= FOLD_INFLIGHT) await inflight.shift();
      else await yieldToLoop();
    };
    const slice = new Slice();
    // 1. Each instance's latest change: the epochs read newest first, the first change of an
    // instance seen kept (by where it lies: its snapshot and position, and its key group).
    const picks = new FoldPicks();
    const readers: StatesReader[] = [];
    {
      // By type, then id: what was picked already (only needed over more than one epoch).
      const picked = snaps.length > 1 ? new Map<string, Set<string>>() : null;
      for (let s = snaps.length - 1; s >= 0; s--) {
        const states = (snaps[s] as Snapshot).states;
        if (states.count === 0) continue;
        const reader = new StatesReader(states.finish());
        readers[s] = reader;
        for (;;) {
          const at = reader.position;
          if (!reader.nextKey()) break;
          if (slice.over()) await slice.yield();
          if (picked !== null) {
            let ids = picked.get(reader.type);
            if (ids === undefined) {
              ids = new Set();
              picked.set(reader.type, ids);
            }
            if (ids.has(reader.id)) continue;
            ids.add(reader.id);
          }
          picks.add(s, at, reader.kg);
        }
      }
      // An async function's suspended frame keeps a block's variables: let go of the ids here.
      picked?.clear();
    }
    // 2. Written in key-group order (the partition's keys start with it), so that each
    // transaction's records share a few B-tree pages: in the order they changed, each record of a
    // transaction lay on a page of its own, which LMDB copied and wrote whole.
    const order = await picks.byKeyGroup(slice);
    let batch: StateChange[] = [];
    for (let i = 0; i < order.length; i++) {
      const k = order[i] as number;
      const reader = readers[picks.snapshot(k)] as StatesReader;
      reader.readAt(picks.position(k));
      batch.push([reader.kg, reader.type, reader.id, reader.record]);
      if (batch.length === FOLD_SLICE) {
        // write() yields to the event loop (or waits for a commit): a new slice starts.
        await write(batch);
        batch = [];
        slice.restart();
      }
    }
    if (batch.length > 0) await write(batch);
    await Promise.all(inflight);
    await this.#partition.write((ops) => foldRest(ops, snaps, beat));
  }

  /** Resolves once every fold started so far, and any it started in turn, has been written (or has failed: see hooks.fatal). */
  async whenFolded(): Promise<void> {
    for (;;) {
      const folding = this.#folding;
      await folding;
      if (this.#folding === folding && this.#foldingSnaps === 0) return;
    }
  }

  /** Epochs committed while a fold ran asked for another one (see foldNow). */
  #foldAgain = false;
  /** Epochs in the fold running now (0: none runs). */
  #foldingSnaps = 0;
  #committedSnaps: Snapshot[] = [];
  #folding: Promise<void> = Promise.resolve();
}

/**
 * Committed epochs folded together into the base (see Participant.onCommitted). An instance that
 * changes in every epoch is written to the base once per fold, so rarer folds write less: 16
 * instead of 4 cut ~6% of all CPU per message in workload (a). The records wait in memory
 * meanwhile (the cache folds at once when it is over its size, and recovery folds whatever is
 * pending).
 */
export const FOLD_EVERY = 16;

/**
 * The fold phase of shard `shard` of `shards` (see Participant.onCommitted): spread evenly over
 * the FOLD_EVERY commits of a fold cycle, rounded down (3 shards: 0, 5, 10). Over FOLD_EVERY
 * shards, some share a phase.
 */
export function foldPhase(shard: number, shards: number): number {
  return Math.floor((shard * FOLD_EVERY) / shards) % FOLD_EVERY;
}

/**
 * Most state records one fold write records. The shard's thread records each one (a copy of its
 * bytes) into lmdb-js's write instructions; the write commits on lmdb-js's thread, before or
 * together with the next ones (FOLD_INFLIGHT). Since the records go in key-group order, a write's
 * records share a few B-tree pages, so a larger write copies few more pages than a small one:
 * at 49k requests/s (two shards, 10,000 counters) 128 records took the shard 0.03-0.05 ms at the
 * median and 0.08-0.23 ms at p90 (32: 0.01 and 0.02-0.05 ms), and the other threads' CPU (the
 * commits) fell from 51-61 to 36-47 ms/s against 32 (six alternating pairs). A fold written in
 * the order the instances changed, 32 records to a write, each on a page of its own, cost the
 * other threads 70-77 ms/s. Few records per write also keep few dirty pages in process memory
 * until the commit.
 */
export const FOLD_SLICE = 128;
/** Longest stretch of a fold's reading (or a mailbox's encoding) before it yields to the event loop, ms. */
const FOLD_SLICE_MS = 0.5;
/**
 * Fold slices waiting for their commit at a time. Each one awaited before the next was recorded
 * made folds 6-7 times slower with durability 'fsync' (one disk sync per 64 records); queued ones
 * are committed together. A few only: the partition records a whole group in one step.
 */
const FOLD_INFLIGHT = 4;
/**
 * Committed epochs left unfolded past which the shard stops taking input (ShardLoop): their
 * snapshots wait in memory, and evicted instances' records with them, so folds that fall behind
 * the changes must slow the changes down, not let memory grow.
 */
export const MAX_FOLD_LAG = 64;
/** Changes read (or messages encoded) between two looks at the clock. */
const CLOCK_EVERY = 256;

/**
 * A stretch of checkpoint work done between loop turns: over() says, looking at the clock every
 * CLOCK_EVERY calls, when it has run FOLD_SLICE_MS; yield() then lets the event loop run and starts
 * the next stretch.
 */
class Slice implements Yielder {
  #start = performance.now();
  #calls = 0;

  over(): boolean {
    return (++this.#calls & (CLOCK_EVERY - 1)) === 0 && performance.now() - this.#start > FOLD_SLICE_MS;
  }

  async yield(): Promise<void> {
    await yieldToLoop();
    this.restart();
  }

  restart(): void {
    this.#start = performance.now();
  }
}

/** Where a long step of checkpoint work may let the event loop run ({@link Slice}; tests pass their own). */
export interface Yielder {
  /** True when the step has run long enough: call {@link yield} then. */
  over(): boolean;
  yield(): Promise<void>;
}

/**
 * The changes a fold writes, by where each lies — its snapshot's index in the fold and its
 * position in that snapshot's encoded changes ({@link StatesReader.readAt}) — and its key group:
 * three numbers in typed arrays per change, nothing per change for the collector to copy while
 * the fold runs.
 */
export class FoldPicks {
  #snapshot = new Uint32Array(1024);
  #position = new Uint32Array(1024);
  #kg = new Uint32Array(1024);
  #count = 0;
  #minKg = Number.POSITIVE_INFINITY;
  #maxKg = -1;

  add(snapshot: number, position: number, kg: number): void {
    if (kg >>> 0 !== kg) throw new RangeError(`a fold's key group must be an unsigned 32-bit integer (got ${kg})`);
    const n = this.#count;
    if (n === this.#kg.length) {
      this.#snapshot = grown(this.#snapshot);
      this.#position = grown(this.#position);
      this.#kg = grown(this.#kg);
    }
    this.#snapshot[n] = snapshot;
    this.#position[n] = position;
    this.#kg[n] = kg;
    this.#count = n + 1;
    if (kg < this.#minKg) this.#minKg = kg;
    if (kg > this.#maxKg) this.#maxKg = kg;
  }

  snapshot(i: number): number {
    return this.#snapshot[i] as number;
  }

  position(i: number): number {
    return this.#position[i] as number;
  }

  /**
   * The picks' indexes by key group (a counting sort: O(picks + key groups), stable), yielding
   * to the event loop whenever `slice` says so in both passes over the picks (a fold of a
   * million picks took 4-15 ms to sort in one step).
   */
  async byKeyGroup(slice: Yielder): Promise<Uint32Array> {
    const n = this.#count;
    const order = new Uint32Array(n);
    if (n === 0) return order;
    const kgs = this.#kg;
    const min = this.#minKg;
    // starts[g]: where key group min + g begins in the order (at most 32,768 key groups).
    const starts = new Uint32Array(this.#maxKg - min + 2);
    for (let i = 0; i < n; i++) {
      if (slice.over()) await slice.yield();
      const g = (kgs[i] as number) - min + 1;
      starts[g] = (starts[g] as number) + 1;
    }
    for (let g = 1; g < starts.length; g++) starts[g] = (starts[g] as number) + (starts[g - 1] as number);
    for (let i = 0; i < n; i++) {
      if (slice.over()) await slice.yield();
      const g = (kgs[i] as number) - min;
      order[starts[g] as number] = i;
      starts[g] = (starts[g] as number) + 1;
    }
    return order;
  }
}

function grown(a: Uint32Array<ArrayBuffer>): Uint32Array<ArrayBuffer> {
  const b = new Uint32Array(a.length * 2);
  b.set(a);
  return b;
}

/** Lets the event loop run (the shard loop's turns, I/O) before going on: a macrotask. */
function yieldToLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Frees a snapshot's mailbox (after it was written as PENDING, once a later one supersedes it). */
function dropMailbox(snap: Snapshot): void {
  snap.mailbox = [];
  snap.inflight = [];
  snap.mailboxBytes = undefined;
}

function writeStates(ops: WriteOps, states: readonly StateChange[], from: number, to: number): void {
  for (let i = from; i < to; i++) {
    const [kg, type, id, record] = states[i] as StateChange;
    if (record === null) ops.deleteState(kg, type, id);
    else ops.putState(kg, type, id, record);
  }
}

/**
 * The rest of a fold of consecutive committed snapshots, after their state records: timer puts
 * and deletes applied in epoch order (a timer put in one epoch and deleted in a later one is not
 * written at all); the mailbox, timer sequence and folded epoch of the last snapshot; and every
 * folded epoch's PENDING entries removed. Until this commits, the folded epoch in the metadata
 * stays where it was, so a crash in between folds the epochs again (rewriting the same records).
 */
function foldRest(ops: WriteOps, snaps: readonly Snapshot[], beat: () => void): void {
  const timers = new Map<string, { put: Timer | null; at: [number, number, number] }>();
  for (const snap of snaps) {
    for (const t of snap.timers.puts) timers.set(`${t.kg}:${t.due}:${t.seq}`, { put: t, at: [t.kg, t.due, t.seq] });
    for (const at of snap.timers.deletes) {
      const key = `${at[0]}:${at[1]}:${at[2]}`;
      // Put and deleted within the folded epochs: the base never had it, nothing to write.
      if (timers.get(key)?.put != null) timers.delete(key);
      else timers.set(key, { put: null, at });
    }
  }
  for (const { put, at } of timers.values()) {
    if (put !== null) ops.putTimer(at[0], at[1], at[2], encodeTimer(put));
    else ops.deleteTimer(at[0], at[1], at[2]);
  }
  const last = snaps[snaps.length - 1] as Snapshot;
  ops.putMeta(META_MAILBOX, last.mailboxBytes ?? encodeEnvelopes(last.mailbox.concat(last.inflight), beat));
  ops.putMeta(META_TIMER_SEQ, last.timerSeq);
  ops.putMeta(META_FOLDED_EPOCH, last.epoch);
  for (const snap of snaps) ops.deletePendingEpoch(snap.epoch);
}

/**
 * Brings a partition to the last committed epoch before a shard starts: folds the pending epochs
 * up to `committed` (in order) and drops the later ones, which no coordinator committed.
 * Returns what the shard must restore.
 */
export async function recoverPartition(partition: Partition, committed: number): Promise<{ mailbox: Envelope[]; timers: Array<Omit<Timer, 'cancelled'>>; timerSeq: number; folded: number }> {
  let folded = (partition.getMeta(META_FOLDED_EPOCH) as number | undefined) ?? 0;
  for (const epoch of partition.pendingEpochs()) {
    if (epoch > folded && epoch <= committed) {
      folded = epoch;
      await partition.write((ops) => {
        for (const { key, value } of partition.pendingEntries(epoch)) {
          const kind = key[1] as PendingKind;
          switch (kind) {
            case PendingKind.States: {
              const states = decodeStates(value);
              writeStates(ops, states, 0, states.length);
              break;
            }
            case PendingKind.TimerPut:
              ops.putTimer(key[2] as number, key[3] as number, key[4] as number, value);
              break;
            case PendingKind.TimerDelete:
              ops.deleteTimer(key[2] as number, key[3] as number, key[4] as number);
              break;
            case PendingKind.Mailbox:
              ops.putMeta(META_MAILBOX, value);
              break;
            case PendingKind.Meta: {
              const meta = decodePendingMeta(value);
              ops.putMeta(META_TIMER_SEQ, meta.timerSeq);
              break;
            }
            default:
              // 1 and 2: state changes one entry per instance, which development builds wrote
              // before PendingKind.States. Folding the epoch without them would lose committed
              // changes (and then delete the epoch): refuse it, and write nothing (this throws
              // inside the write's build, so the transaction is never made).
              if ((kind as number) === 1 || (kind as number) === 2) {
                throw new WeftError(
                  'ERR_WEFT_DATA_DIR',
                  `committed checkpoint epoch ${epoch} holds a PENDING entry of kind ${kind as number}, a per-instance format of development builds that this weft does not read; not recovering from it (the epoch is left as it is)`,
                );
              }
          }
        }
        ops.putMeta(META_FOLDED_EPOCH, epoch);
        ops.deletePendingEpoch(epoch);
      });
    } else {
      await partition.write((ops) => ops.deletePendingEpoch(epoch));
    }
  }
  const mailboxBytes = partition.getMeta(META_MAILBOX) as Uint8Array | undefined;
  const timers: Array<Omit<Timer, 'cancelled'>> = [];
  for (const { kg, due, seq, value } of partition.timers()) timers.push(decodeTimer(kg, due, seq, value));
  return {
    mailbox: decodeEnvelopes(mailboxBytes),
    timers,
    timerSeq: (partition.getMeta(META_TIMER_SEQ) as number | undefined) ?? 1,
    folded,
  };
}
