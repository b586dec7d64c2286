/**
 * A shard's state partition: ONE LMDB environment (lmdb-js) holding the durable part of the
 * shard's key groups — instance state, delayed messages (timers), checkpoint epochs written but
 * not yet committed (pending) and a little metadata.
 *
 * ```
 *   <path>/data.mdb, lock.mdb          (directory 0700, files 0600)
 *   sub-database  key (ordered-binary array)          value
 *   state         [kg, type, id]                      encoded state record (bytes)
 *   timers        [kg, due, seq]                      encoded delayed message (bytes)
 *   pending       [epoch, kind, ...rest]              checkpoint entry (bytes)
 *   meta          string                              msgpack value
 *   egress        [name, epoch, seq]                  committed egress record awaiting its ack
 *                                                     (the data dir's meta store only: src/host/egress.ts)
 * ```
 * The key group comes first, so one key group is one contiguous key range in `state` and `timers`:
 * rescaling moves whole ranges between partitions ({@link Partition.copyKeyGroupsFrom}).
 *
 * ## Writes: one queue, one transaction in flight, a committed PREFIX of the calls
 * `write(ops => ...)` records and validates the ops synchronously (copying the value bytes, so the
 * caller may reuse its buffers at once), then queues them. The partition keeps at most ONE LMDB
 * transaction in flight: when it commits, every write queued meanwhile goes into the next one
 * (group commit, like a database's log flusher). Each call's ops land in one transaction, calls
 * commit in call order, and — the property the checkpoint protocol leans on — the committed
 * calls are always a PREFIX of the calls made: when a commit fails, that call and everything
 * queued behind it are rejected and never reach LMDB, and the partition refuses further writes.
 * (Letting lmdb-js pipeline several transactions would let a later one commit after an earlier
 * one failed.) It also makes range deletes exact: `deletePendingEpoch(e)` lists the keys when its
 * transaction is built, when nothing else is in flight, from the committed data plus the puts of
 * earlier ops in the same transaction.
 *
 * The transaction runs on lmdb-js's write thread: ops go in as `db.batch()` instructions (the
 * puts themselves and the commit happen off the calling thread; the calling thread only encodes
 * keys into the instruction buffer). `transactionSync` is never used — see "close" below.
 *
 * ## Durability
 * - `'fsync'`: opened with `overlappingSync: false` (plain LMDB): the write thread's
 *   `mdb_txn_commit` fdatasyncs the data pages and writes the meta page with O_DSYNC before the
 *   commit returns, and the batch promise resolves only after that — so a resolved `write()` is on
 *   the disk. lmdb-js's default `overlappingSync` moves the sync after the lock and reports it
 *   through `db.flushed`; that buys pipelining of several transactions, which the
 *   single-transaction queue above does not use, and its recovery picks a meta page by boot id.
 *   Plain commits are as fast, so the simpler contract wins and `db.flushed` is not needed.
 * - `'process'`: `noSync`: the commit writes the pages into the OS page cache (pwrite) and
 *   returns without fdatasync. A SIGKILLed process loses nothing the kernel already has, so a
 *   resolved write survives the process (tested with SIGKILL); a power loss may lose recent
 *   commits or, LMDB warns, corrupt the file.
 *
 * ## Flags and map size, and why
 * - `mapSizeBytes` (default 256 MiB) is only the INITIAL map: lmdb-js grows the map itself when a
 *   write transaction needs more pages (to about twice the used size, rounded to 256 KiB), keeping
 *   the old mappings until close so readers on other threads stay valid. The map is address
 *   space, not disk: without a writemap the file grows only with the data. A larger start just
 *   saves early remaps.
 * - `useWritemap` off: a stray write into the map could corrupt the file, and it makes the file as
 *   large as the map. `noMemInit` off: the little speed it buys is not worth writing stale heap
 *   bytes into a file that outlives the process. `compression: false`: records are already msgpack,
 *   and LZ4 would cost every `getState`. `encoding: 'binary'` on every sub-database (meta values
 *   are packed here with msgpackr, so the format does not depend on lmdb-js's encoder settings).
 * - Every Partition of a path opens it with the same flags: lmdb-js shares one environment among
 *   the threads of a process (matched by inode) and refuses mismatched sync flags.
 *
 * ## Reads
 * `getState` is `getBinary` (a Node Buffer, i.e. a Uint8Array): it copies the value out of
 * LMDB's reused buffer (`getBinaryFast` returns that buffer itself, valid only until the next
 * read; large values can even come back as views of the map). The copy is what makes the bytes
 * safe to keep; for 100-byte values it halves the raw read rate (0.9-1.0 against 1.75-2.0 M/s).
 * Reads see committed data only: a write is visible once its promise resolves. Another thread
 * sharing the environment sees it after its read snapshot renews (next timer turn, or `refresh()`).
 * Range reads (`states`, `timers`, `pendingEntries`) read in chunks of {@link SCAN_CHUNK} entries,
 * each chunk a complete cursor pass, so no LMDB cursor is ever left open while user code runs —
 * an iterator suspended across an `await` cannot pin a snapshot or outlive `close()` (its next
 * chunk then throws ERR_WEFT_CLOSED). The price: entries committed during an iteration may or may
 * not be seen; each key is still seen at most once, in key order.
 *
 * ## close(): the deadlock, and the safe order
 * With lmdb 3.5.6 (reproduced by native-bench/partition.ts `--repro-deadlock`),
 * `transactionSync(cb)` whose callback returns a promise — e.g. `() => db.put(k, v)`, since
 * `put` inside a transaction returns a resolved promise — keeps the environment's write lock
 * until a microtask commits it; a `db.close()` in the same turn runs `cleanupStrayTxns`, which
 * locks the same non-recursive mutex on the same thread: a self-deadlock, for ever. The safe
 * order used here:
 *   1. refuse new reads and writes (ERR_WEFT_CLOSED);
 *   2. let every accepted write settle (the queue drains; nothing is dropped);
 *   3. yield one macrotask, so no lmdb-js continuation is left on the stack or in the microtask queue;
 *   4. close the ROOT database only. Sub-databases are never closed: `Database.close()` calls
 *      `mdb_dbi_close`, which invalidates the handle for every thread sharing the environment
 *      (closing the root closes the environment, or drops this thread's reference to it).
 * With no `transactionSync` at all, no write lock is ever held by the calling thread, so step 4
 * cannot block on one. A regression test closes under load many times in a child process.
 *
 * ## Other lmdb-js 3.5.6 hazards found, and what this module does about them
 * - Any `mdb_env_open` failure (a `data.mdb` that is not LMDB or of another data format, a
 *   `lock.mdb` it cannot open) makes lmdb-js free its ExtendedEnv twice: SIGSEGV, the whole
 *   process; and a `data.mdb` shorter than its meta page says is SIGBUS at the first read past
 *   its end. {@link lmdbFileProblem} checks the files with plain reads first (every open) and
 *   refuses such files with ERR_WEFT_DATA_DIR; {@link lmdbTreeProblem} checks the page structure
 *   (data-dir.ts runs it at start and `weft inspect --verify`).
 * - With event-turn batching, a failed commit rejects a promise lmdb-js created for the turn and
 *   never handed out: an unhandled rejection, which ends the process. Off (`eventTurnBatching:
 *   false`); each write is an explicit `batch`, atomic by itself.
 * - A worker thread stopped by `Worker.terminate()` while issuing a batch of more than 1000
 *   instructions left lmdb-js's write thread (already started on the partial batch) waiting for
 *   the rest for ever: `terminate()` never resolved and the write lock stayed taken. The write
 *   thread now starts only on a complete batch (`batchStartThreshold`); tested by terminating
 *   writing workers at varying points.
 * - A failed commit is reported twice: as the batch's rejection and with `console.error` on
 *   stderr from lmdb-js itself (not suppressible without patching lmdb-js).
 *
 * ## Cost
 * The partition costs the calling thread about twice a raw `db.batch` per op (validating and
 * copying each op, then the same instruction encoding), and buys validation before anything
 * reaches LMDB, caller-owned buffers, the prefix guarantee and exact range deletes. The
 * measurements behind this header are in native-bench/README.md ("Design measurements kept
 * from source comments"); native-bench/partition.ts reproduces them.
 */
import { accessSync, closeSync, constants, fstatSync, lstatSync, mkdirSync, openSync, readSync, statSync, statfsSync } from 'node:fs';
import { join, resolve as resolvePath } from 'node:path';
import { open as openLmdb, type Database, type Key, type RootDatabase, type RootDatabaseOptions } from 'lmdb';
import { Packr } from 'msgpackr';
import { WeftError, describe } from '../core/errors.js';
import type { Durability } from '../contract/options.js';

/** Options of {@link Partition.open}. */
export interface PartitionOptions {
  /**
   * `'fsync'`: a write's promise resolves once its transaction is on the disk (survives power
   * loss). `'process'`: once it is in the OS page cache (survives a killed process, not a power
   * loss). Every opener of one path in one process must use the same value.
   */
  durability: Durability;
  /**
   * Initial size of the memory map, in bytes. The map grows automatically when the data needs
   * more, so this is not a limit. Default 268435456 (256 MiB).
   */
  mapSizeBytes?: number;
  /** Open without write access; the partition must exist. `write()` is refused. Default `false`. */
  readOnly?: boolean;
  /**
   * The caller has just checked this path's page structure ({@link lmdbTreeProblem}): skip that
   * walk (the cheap meta-page checks still run). Default `false`. Read-only opens never walk: they
   * may read an environment another process is writing, whose freed pages can be reused while a
   * walk reads them (the walk is no LMDB reader), which would look like damage.
   */
  structureChecked?: boolean;
}

/** A key of the `pending` sub-database: `[epoch, kind, ...rest]`. */
export type PendingKey = readonly [epoch: number, kind: number, ...rest: Array<string | number>];

/** One instance's state record, from {@link Partition.states}. */
export interface StateEntry {
  readonly kg: number;
  readonly type: string;
  readonly id: string;
  readonly value: Uint8Array;
}

/** One delayed message, from {@link Partition.timers}. */
export interface TimerEntry {
  readonly kg: number;
  /** When it is due, in epoch milliseconds. */
  readonly due: number;
  /** Tie-breaker among timers due at the same millisecond. */
  readonly seq: number;
  readonly value: Uint8Array;
}

/** One committed egress record, from {@link Partition.egressRecords}. */
export interface EgressEntry {
  readonly epoch: number;
  readonly seq: number;
  readonly value: Uint8Array;
}

/** One entry of an uncommitted checkpoint epoch, from {@link Partition.pendingEntries}. */
export interface PendingEntry {
  readonly key: PendingKey;
  readonly value: Uint8Array;
}

/**
 * The operations of one {@link Partition.write} call. They are validated as they are called (an
 * invalid one throws, and then nothing of the call is written) and applied in call order, in one
 * transaction. Value bytes are copied when the op is recorded.
 */
export interface WriteOps {
  /** Sets an instance's state record. */
  putState(kg: number, type: string, id: string, value: Uint8Array): void;
  /** Removes an instance's state record (a no-op if it has none). */
  deleteState(kg: number, type: string, id: string): void;
  /** Stores a delayed message due at `due` (epoch ms); `seq` orders timers due at the same ms. */
  putTimer(kg: number, due: number, seq: number, value: Uint8Array): void;
  /** Removes a delayed message (a no-op if absent). */
  deleteTimer(kg: number, due: number, seq: number): void;
  /** Stores an entry of checkpoint epoch `key[0]`. */
  putPending(key: PendingKey, value: Uint8Array): void;
  /** Removes every pending entry of `epoch`: committed ones and ones put earlier in this call or by earlier calls. */
  deletePendingEpoch(epoch: number): void;
  /** Sets a metadata value (anything msgpack carries; not `undefined`). Keys starting with `partition/` are reserved. */
  putMeta(key: string, value: unknown): void;
  /**
   * Sets a metadata value to a list whose items were each packed by {@link packMeta}: stores what
   * `putMeta(key, items)` would, without packing the items again (a list rewritten often, one item
   * changing at a time).
   */
  putMetaList(key: string, packedItems: readonly Uint8Array[]): void;
  /** Removes a metadata value. */
  deleteMeta(key: string): void;
  /** Removes all state and timers of key group `kg` (committed or put earlier in this or earlier calls). */
  deleteKeyGroup(kg: number): void;
  /** Stores egress record `[name, epoch, seq]`. */
  putEgress(name: string, epoch: number, seq: number, value: Uint8Array): void;
  /** Removes egress record `[name, epoch, seq]` (a no-op if absent). */
  deleteEgress(name: string, epoch: number, seq: number): void;
}

/** The on-disk format this module writes, stored under {@link FORMAT_KEY}. */
export const PARTITION_FORMAT_VERSION = 1;
const FORMAT_KEY = 'partition/format';
const RESERVED_META_PREFIX = 'partition/';

const DEFAULT_MAP_SIZE = 256 * 1024 * 1024;
const MAX_KEY_GROUP = 0xffff_ffff;
const MAX_PENDING_REST = 8;
/** Entries read per cursor pass by the range iterators; small enough to keep a chunk in cache. */
const SCAN_CHUNK = 512;
/** Entries per write when copying or deleting key groups, to bound memory. */
const COPY_CHUNK = 4096;
/** A transaction takes queued calls up to this many ops (a larger single call goes alone). */
const MAX_GROUP_OPS = 100_000;
/** Value bytes are copied into arenas growing from MIN_ARENA_BYTES to ARENA_BYTES per write call; bigger values get their own copy. */
const MIN_ARENA_BYTES = 1024;
const ARENA_BYTES = 64 * 1024;
const EMPTY = new Uint8Array(0);

// LMDB data file layout, as lmdb-js 3 writes it (see checkDataFile).
const PAGE_FLAGS_OFFSET = 18;
const P_META = 0x08;
const META_MAGIC_OFFSET = 24;
const META_VERSION_OFFSET = 28;
/** `mm_psize` is `mm_dbs[FREE_DBI].md_pad`, the first field of the first MDB_db. */
const META_PAGE_SIZE_OFFSET = 48;
// MDB_meta after the page header: magic u32 @24, version u32 @28, address @32, mapsize @40,
// mm_dbs[FREE] @48 (48 bytes, md_root last), mm_dbs[MAIN] @96, mm_last_pg @144, mm_txnid @152.
const META_MAP_SIZE_OFFSET = 40;
const META_FREE_ROOT_OFFSET = 88;
const META_MAIN_ROOT_OFFSET = 136;
const META_LAST_PAGE_OFFSET = 144;
const META_TXNID_OFFSET = 152;
const META_READ_BYTES = 160;
const P_INVALID = 0xffff_ffff_ffff_ffffn;
/** lmdbTreeProblem reads files up to this size whole, larger ones page by page. */
const WHOLE_READ_BYTES = 64 * 1024 * 1024;
const PAGE_HEADER_BYTES = 24;
const NODE_HEADER_BYTES = 8;
/** An MDB_db record: pad u32, flags u16, depth u16, 4 counters, root (all 64-bit). */
const DB_RECORD_BYTES = 48;
const P_BRANCH = 0x01;
const P_LEAF = 0x02;
const P_OVERFLOW = 0x04;
const P_LEAF2 = 0x20;
const F_BIGDATA = 0x01;
const F_SUBDATA = 0x02;
const MDB_MAGIC = 0xbeefc0de;
const MDB_DATA_VERSION = 2;

const enum Db {
  State = 0,
  Timers = 1,
  Pending = 2,
  Meta = 3,
  /** Opened apart: a read-only open of a dir written before it existed finds none (no records). */
  Egress = 4,
}
const DB_NAMES = ['state', 'timers', 'pending', 'meta'] as const;
const EGRESS_DB = 'egress';

/** Marks a recorded op that deletes every key whose first element is `key` (a number). */
const PREFIX_DELETE: unique symbol = Symbol('prefix-delete');
type OpValue = Uint8Array | null | typeof PREFIX_DELETE;

/**
 * lmdb-js exposes these on every database at run time; its typings do not declare them.
 * `writeKey` encodes a key with the database's key encoder and returns the end offset.
 */
interface LmdbInternals {
  maxKeySize: number;
  writeKey(key: Key, target: Uint8Array, start: number): number;
}

/** Writable paths open in THIS thread (a second writer on one path would break the write queue's guarantees). */
const openForWrite = new Set<string>();

// useRecords: false writes plain msgpack maps, readable by any msgpack tool (`weft inspect`).
const metaPackr = new Packr({ useRecords: false, mapsAsObjects: true });

/**
 * `value` packed as metadata values are (for {@link WriteOps.putMetaList}).
 * @throws WeftError `ERR_WEFT_UNSERIALIZABLE` when msgpack cannot carry it (or it is undefined).
 */
export function packMeta(value: unknown): Uint8Array {
  if (value === undefined) throw new WeftError('ERR_WEFT_UNSERIALIZABLE', 'a meta value must not be undefined');
  try {
    return metaPackr.pack(value);
  } catch (cause) {
    throw new WeftError('ERR_WEFT_UNSERIALIZABLE', `meta value cannot be encoded as msgpack: ${describe(value)}`, { cause });
  }
}

/**
 * A msgpack array of items each packed by {@link packMeta}: its header (fixarray, array 16 or
 * array 32, the smallest that holds the count, as msgpackr writes it), then the items as they
 * are. The same bytes as `packMeta` of the unpacked list.
 */
export function packMetaList(items: readonly Uint8Array[]): Uint8Array {
  const n = items.length;
  const header = n < 16 ? 1 : n < 0x10000 ? 3 : 5;
  let length = header;
  for (const item of items) length += item.byteLength;
  const out = new Uint8Array(length);
  if (n < 16) out[0] = 0x90 | n;
  else if (n < 0x10000) {
    out[0] = 0xdc;
    out[1] = n >>> 8;
    out[2] = n & 0xff;
  } else {
    out[0] = 0xdd;
    new DataView(out.buffer).setUint32(1, n);
  }
  let at = header;
  for (const item of items) {
    out.set(item, at);
    at += item.byteLength;
  }
  return out;
}

type SubDb = Database<Uint8Array, Key>;
/** Indexed by {@link Db}. */
type SubDbs = readonly [SubDb, SubDb, SubDb, SubDb, SubDb | undefined];

interface QueuedWrite {
  readonly ops: Recorder;
  resolve(): void;
  reject(err: unknown): void;
}

/**
 * One LMDB environment: a shard's durable state. See the module comment for the layout, the
 * write queue and its guarantees, durability and the safe close order.
 *
 * @example
 * const p = await Partition.open('/data/weft/shard-0', { durability: 'fsync' });
 * await p.write((ops) => {
 *   ops.putState(7, 'bank/account', 'alice', record);
 *   ops.putMeta('foldedEpoch', 41);
 *   ops.deletePendingEpoch(41);
 * });
 * const bytes = p.getState(7, 'bank/account', 'alice');
 * await p.close();
 */
export class Partition {
  /** The environment's directory (absolute). */
  readonly path: string;
  readonly durability: Durability;
  readonly readOnly: boolean;

  readonly #root: RootDatabase<Uint8Array, Key>;
  readonly #dbs: SubDbs;
  /** `#dbs[Db.State]`, kept apart for the hot `getState`. */
  readonly #stateDb: SubDb;
  readonly #maxKeySize: number;
  readonly #queue: QueuedWrite[] = [];
  #inFlight = false;
  #failure: WeftError | undefined;
  #closed = false;
  #closePromise: Promise<void> | undefined;
  #drainWaiters: Array<() => void> = [];

  private constructor(path: string, options: Required<PartitionOptions>, root: RootDatabase<Uint8Array, Key>, dbs: SubDbs) {
    this.path = path;
    this.durability = options.durability;
    this.readOnly = options.readOnly;
    this.#root = root;
    this.#dbs = dbs;
    this.#stateDb = dbs[Db.State];
    this.#maxKeySize = (dbs[Db.State] as unknown as LmdbInternals).maxKeySize;
  }

  /**
   * Opens (creating if needed, unless `readOnly`) the partition at `path`: a directory, created
   * with mode 0700. Throws ERR_WEFT_INVALID_ARG for bad options and ERR_WEFT_DATA_DIR when the
   * directory or its files cannot be used (permissions, not LMDB, another format version, already
   * open for writing in this thread), naming the path and carrying LMDB's error as `cause`.
   */
  static async open(path: string, options: PartitionOptions): Promise<Partition> {
    if (typeof path !== 'string' || path.length === 0) {
      throw new WeftError('ERR_WEFT_INVALID_ARG', `partition path must be a non-empty string (got ${describe(path)})`);
    }
    const opts = validateOptions(options);
    const abs = resolvePath(path);
    if (!opts.readOnly && openForWrite.has(abs)) {
      throw new WeftError('ERR_WEFT_DATA_DIR', `partition ${describe(abs)} is already open for writing in this thread`);
    }
    try {
      if (opts.readOnly) statSync(abs);
      else mkdirSync(abs, { recursive: true, mode: 0o700 });
    } catch (cause) {
      throw dataDirError(abs, opts.readOnly ? 'cannot open' : 'cannot create', cause);
    }
    checkDataFile(abs, opts.readOnly, opts.structureChecked || opts.readOnly);
    let root: RootDatabase<Uint8Array, Key> | undefined;
    let partition: Partition;
    try {
      const lmdbOptions: RootDatabaseOptions & { permissionsMode: number; batchStartThreshold: number } = {
        noSubdir: false, // the path is a directory even when its name has a dot
        maxDbs: 8, // four used; room for more sub-databases without changing how environments are opened
        mapSize: opts.mapSizeBytes,
        overlappingSync: false,
        noSync: opts.durability === 'process',
        readOnly: opts.readOnly,
        useWritemap: false,
        noMemInit: false,
        compression: false,
        encoding: 'binary',
        cache: false,
        // Each write() is an explicit batch (one transaction by itself). Event-turn batching would
        // add a turn-wide block whose commit promise lmdb-js discards: when a commit fails, that
        // promise's rejection is unhandled and ends the process.
        eventTurnBatching: false,
        // lmdb-js starts its write thread on a batch after 1000 instructions, before the batch is
        // complete. If this thread is then stopped (Worker.terminate() mid-write), the write
        // thread waits for the batch's end for ever, holding the environment's write lock, and
        // terminate() never finishes (reproduced; test "terminated at arbitrary points"). Start
        // it only once the batch is whole.
        batchStartThreshold: 0x7fffffff,
        permissionsMode: 0o600,
      };
      root = openLmdb<Uint8Array, Key>(abs, lmdbOptions);
      const named = DB_NAMES.map((name) => {
        // openDB returns undefined for a missing sub-database in read-only mode.
        const db = root?.openDB<Uint8Array, Key>(name, { encoding: 'binary', compression: false, cache: false }) as Database<Uint8Array, Key> | undefined;
        if (db === undefined) throw new Error(`sub-database "${name}" is missing: not a weft partition`);
        return db;
      });
      const egress = root.openDB<Uint8Array, Key>(EGRESS_DB, { encoding: 'binary', compression: false, cache: false }) as Database<Uint8Array, Key> | undefined;
      const dbs = [...named, egress] as unknown as SubDbs;
      partition = new Partition(abs, opts, root, dbs);
    } catch (cause) {
      if (root !== undefined) await root.close().catch(() => undefined);
      throw dataDirError(abs, 'cannot open', cause);
    }
    if (!opts.readOnly) openForWrite.add(abs);
    try {
      await partition.#checkFormat();
    } catch (err) {
      await partition.close().catch(() => undefined);
      throw err;
    }
    return partition;
  }

  /**
   * Makes the next read see the latest commit. Only needed when ANOTHER thread writes this path
   * (e.g. a read-only observer): lmdb-js keeps a thread's read snapshot until its next timer turn,
   * so a commit made elsewhere may not be visible before that. This partition's own writes are
   * visible as soon as their promises resolve.
   */
  refresh(): void {
    this.#assertOpen();
    try {
      this.#root.resetReadTxn();
    } catch (cause) {
      throw dataDirError(this.path, 'cannot read', cause);
    }
  }

  /**
   * A read view of ONE committed LMDB transaction: everything read through it sees the partition
   * exactly as it was when the view was taken (LMDB read transactions are snapshots), however
   * long it is kept and whatever commits meanwhile — unlike the chunked range reads above. The
   * view starts at the latest commit of ANY thread (the thread's cached read snapshot is renewed
   * first). Release it: LMDB cannot reuse the pages a live snapshot still sees, so a view kept
   * while the engine writes makes the file grow. Every view is released by {@link close}.
   */
  snapshot(): PartitionSnapshot {
    this.#assertOpen();
    let txn: LmdbTxn;
    try {
      this.#root.resetReadTxn();
      txn = (this.#root as unknown as { useReadTransaction(): LmdbTxn }).useReadTransaction();
    } catch (cause) {
      throw dataDirError(this.path, 'cannot read', cause);
    }
    const snap = new PartitionSnapshot(this.path, this.#dbs, txn, (s) => this.#snapshots.delete(s));
    this.#snapshots.add(snap);
    return snap;
  }

  readonly #snapshots = new Set<PartitionSnapshot>();

  /** Whether {@link close} has been called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * An instance's state record, or `undefined`. The bytes (a Node Buffer) are a copy the caller
   * may keep. Synchronous; sees committed writes only.
   */
  getState(kg: number, type: string, id: string): Uint8Array | undefined {
    this.#assertOpen();
    checkKeyGroup(kg);
    checkString('type', type);
    checkString('id', id);
    try {
      return this.#stateDb.getBinary([kg, type, id]);
    } catch (cause) {
      throw dataDirError(this.path, 'cannot read', cause);
    }
  }

  /** A metadata value, or `undefined`. */
  getMeta(key: string): unknown {
    this.#assertOpen();
    checkString('meta key', key);
    let bytes: Uint8Array | undefined;
    try {
      bytes = this.#dbs[Db.Meta].getBinary(key);
    } catch (cause) {
      throw dataDirError(this.path, 'cannot read', cause);
    }
    return bytes === undefined ? undefined : metaPackr.unpack(bytes);
  }

  /** The state records of key group `kg` (or of all key groups, by key group), in key order. */
  *states(kg?: number): Generator<StateEntry, void, undefined> {
    const [start, end] = this.#kgRange(kg);
    for (const { key, value } of this.#scan(Db.State, start, end)) {
      const k = key as [number, string, string];
      yield { kg: k[0], type: k[1], id: k[2], value };
    }
  }

  /**
   * The delayed messages of key group `kg` (or of all key groups, key group by key group), each
   * key group's in due order (`due`, then `seq`). With `dueBeforeMs`, only those due earlier.
   */
  *timers(kg?: number, options?: { dueBeforeMs?: number }): Generator<TimerEntry, void, undefined> {
    const before = options?.dueBeforeMs;
    if (before !== undefined && !Number.isFinite(before)) {
      throw new WeftError('ERR_WEFT_INVALID_ARG', `dueBeforeMs must be a finite number (got ${describe(before)})`);
    }
    if (kg === undefined) {
      for (const g of this.#distinctFirst(Db.Timers)) yield* this.timers(g, options);
      return;
    }
    const [start, end] = this.#kgRange(kg);
    for (const { key, value } of this.#scan(Db.Timers, start, before === undefined ? end : [kg, before])) {
      const k = key as [number, number, number];
      yield { kg: k[0], due: k[1], seq: k[2], value };
    }
  }

  /** The entries of pending epoch `epoch` (or of all, by epoch), in key order. */
  *pendingEntries(epoch?: number): Generator<PendingEntry, void, undefined> {
    let start: Key = [0];
    let end: Key | undefined;
    if (epoch !== undefined) {
      checkEpoch(epoch);
      start = [epoch];
      end = [epoch + 1];
    }
    this.#assertOpen();
    for (const { key, value } of this.#scan(Db.Pending, start, end)) yield { key: key as unknown as PendingKey, value };
  }

  /**
   * Up to `limit` records of egress `name` in key order (epoch, then seq), after `after` (exclusive)
   * or from the first. The bytes are copies the caller may keep.
   */
  egressRecords(name: string, after: readonly [epoch: number, seq: number] | null, limit: number): EgressEntry[] {
    this.#assertOpen();
    checkString('egress name', name);
    const db = this.#dbs[Db.Egress];
    if (db === undefined) return [];
    const out: EgressEntry[] = [];
    try {
      const start: Key = after === null ? [name] : [name, after[0], after[1]];
      for (const { key, value } of db.getRange({ start, end: [name, Number.MAX_SAFE_INTEGER], exclusiveStart: after !== null, limit })) {
        const k = key as [string, number, number];
        out.push({ epoch: k[1], seq: k[2], value: Uint8Array.prototype.slice.call(value) });
      }
    } catch (cause) {
      throw dataDirError(this.path, 'cannot read', cause);
    }
    return out;
  }

  /** Every egress that holds records, with how many, in name order. */
  egressCounts(): Array<{ name: string; records: number }> {
    this.#assertOpen();
    const db = this.#dbs[Db.Egress];
    if (db === undefined) return [];
    const out: Array<{ name: string; records: number }> = [];
    let from: Key = [''];
    try {
      for (;;) {
        let name: string | undefined;
        for (const key of db.getKeys({ start: from, limit: 1 })) name = (key as unknown[])[0] as string;
        if (name === undefined) return out;
        out.push({ name, records: this.#count(Db.Egress, [name], [name, Number.MAX_SAFE_INTEGER]) });
        from = [name, Number.MAX_SAFE_INTEGER];
      }
    } catch (cause) {
      throw dataDirError(this.path, 'cannot read', cause);
    }
  }

  /** How many records egress `name` holds. */
  countEgress(name: string): number {
    this.#assertOpen();
    checkString('egress name', name);
    if (this.#dbs[Db.Egress] === undefined) return 0;
    return this.#count(Db.Egress, [name], [name, Number.MAX_SAFE_INTEGER]);
  }

  /** The epochs that have pending entries, ascending. */
  pendingEpochs(): number[] {
    this.#assertOpen();
    return this.#distinctFirst(Db.Pending);
  }

  /** The key groups that hold any state or timer, ascending. */
  keyGroups(): number[] {
    this.#assertOpen();
    const all = new Set([...this.#distinctFirst(Db.State), ...this.#distinctFirst(Db.Timers)]);
    return [...all].sort((a, b) => a - b);
  }

  /** How many state records key group `kg` (or the partition) holds. */
  countState(kg?: number): number {
    const [start, end] = this.#kgRange(kg);
    return this.#count(Db.State, start, end);
  }

  /** How many delayed messages key group `kg` (or the partition) holds. */
  countTimers(kg?: number): number {
    const [start, end] = this.#kgRange(kg);
    return this.#count(Db.Timers, start, end);
  }

  /** How many pending entries epoch `epoch` (or the partition) holds. */
  countPending(epoch?: number): number {
    if (epoch === undefined) {
      this.#assertOpen();
      return this.#count(Db.Pending, [0], undefined);
    }
    checkEpoch(epoch);
    this.#assertOpen();
    return this.#count(Db.Pending, [epoch], [epoch + 1]);
  }

  /**
   * Applies the ops recorded by `build` atomically, in one transaction, after every earlier
   * call's. Resolves when the transaction is committed and as durable as the partition's
   * `durability` says. Rejects with the error `build` threw (or an op's validation error) and
   * writes nothing of this call; rejects with ERR_WEFT_DATA_DIR if the commit fails — then this
   * call, every call queued behind it and every later call are refused, so the committed calls
   * are always a prefix of the calls made. ERR_WEFT_CLOSED after {@link close}.
   */
  write(build: (ops: WriteOps) => void): Promise<void> {
    const refused = this.#writeRefusal();
    if (refused !== undefined) return Promise.reject(refused);
    if (typeof build !== 'function') {
      return Promise.reject(new WeftError('ERR_WEFT_INVALID_ARG', `write() needs a function that records the ops (got ${describe(build)})`));
    }
    let ops: Recorder;
    try {
      ops = this.#record(true, build);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#enqueue(ops);
  }

  /**
   * Makes this partition's data of `keyGroups` (state and timers) an exact copy of `source`'s:
   * for each key group, first deletes what this partition holds, then copies in chunks of
   * {@link COPY_CHUNK} entries (each one transaction). Not atomic as a whole, but idempotent: after
   * a crash, run it again. Pending entries are not copied (they are not keyed by key group: fold
   * or drop them before rescaling). `source` must not be written meanwhile.
   * @returns how many state records and timers were copied.
   */
  async copyKeyGroupsFrom(source: Partition, keyGroups: Iterable<number>): Promise<{ states: number; timers: number }> {
    if (!(source instanceof Partition) || source === this) {
      throw new WeftError('ERR_WEFT_INVALID_ARG', `copyKeyGroupsFrom needs another open Partition (got ${describe(source)})`);
    }
    const groups = checkKeyGroupList(keyGroups);
    const refused = this.#writeRefusal();
    if (refused !== undefined) throw refused;
    source.#assertOpen();
    let states = 0;
    let timers = 0;
    for (const kg of groups) {
      await this.#enqueue(this.#record(true, (ops) => ops.deleteKeyGroup(kg)));
      for (const db of [Db.State, Db.Timers] as const) {
        let chunk: Array<{ key: Key; value: Uint8Array }> = [];
        const flush = async (): Promise<void> => {
          const entries = chunk;
          chunk = [];
          // Values from a range read are fresh copies: hand them over without copying again.
          await this.#enqueue(this.#record(false, (ops) => {
            for (const e of entries) ops.raw(db, e.key, e.value);
          }));
        };
        for (const entry of source.#scan(db, [kg], [kg + 1])) {
          chunk.push(entry);
          if (db === Db.State) states++;
          else timers++;
          if (chunk.length === COPY_CHUNK) await flush();
        }
        if (chunk.length > 0) await flush();
      }
    }
    return { states, timers };
  }

  /** Removes all state and timers of `keyGroups` (one transaction), e.g. from a rescale's source. */
  async deleteKeyGroups(keyGroups: Iterable<number>): Promise<void> {
    const groups = checkKeyGroupList(keyGroups);
    await this.write((ops) => {
      for (const kg of groups) ops.deleteKeyGroup(kg);
    });
  }

  /**
   * Closes the partition: refuses new calls at once (ERR_WEFT_CLOSED), lets every accepted write
   * commit, then closes the environment in the order the module comment explains. Calling it
   * again returns the same promise. Afterwards the path can be opened again, in this thread or
   * another.
   */
  close(): Promise<void> {
    if (this.#closePromise !== undefined) return this.#closePromise;
    this.#closed = true;
    for (const snap of [...this.#snapshots]) snap.release();
    this.#closePromise = (async () => {
      try {
        await this.#drained();
        // No lmdb-js continuation (commit resolution, read-txn reset) may still be pending when
        // the environment goes away: let one macrotask pass.
        await new Promise<void>((resolve) => setImmediate(resolve));
        // Only the root: see the module comment on why sub-databases are never closed.
        await this.#root.close();
      } catch (cause) {
        throw dataDirError(this.path, 'cannot close', cause);
      } finally {
        if (!this.readOnly) openForWrite.delete(this.path);
      }
    })();
    return this.#closePromise;
  }

  async #checkFormat(): Promise<void> {
    const format = this.getMeta(FORMAT_KEY);
    if (format === PARTITION_FORMAT_VERSION) return;
    if (format !== undefined) {
      throw new WeftError('ERR_WEFT_DATA_DIR', `partition ${describe(this.path)} has format version ${describe(format)}; this weft reads version ${PARTITION_FORMAT_VERSION}`);
    }
    if (this.readOnly) {
      throw new WeftError('ERR_WEFT_DATA_DIR', `partition ${describe(this.path)} is not initialised (no format version)`);
    }
    await this.#enqueue(this.#record(true, (ops) => ops.putMetaReserved(FORMAT_KEY, PARTITION_FORMAT_VERSION)));
  }

  /** Runs `build` on a fresh recorder and seals it (also when `build` throws). */
  #record(copyValues: boolean, build: (ops: Recorder) => void): Recorder {
    const ops = new Recorder(this.#maxKeySize, this.#dbs[Db.State] as unknown as LmdbInternals, copyValues);
    try {
      build(ops);
    } finally {
      ops.seal();
    }
    return ops;
  }

  #assertOpen(): void {
    if (this.#closed) throw new WeftError('ERR_WEFT_CLOSED', `partition ${describe(this.path)} is closed`);
  }

  #writeRefusal(): WeftError | undefined {
    if (this.#closed) return new WeftError('ERR_WEFT_CLOSED', `partition ${describe(this.path)} is closed`);
    if (this.readOnly) return new WeftError('ERR_WEFT_INVALID_ARG', `partition ${describe(this.path)} is open read-only`);
    if (this.#failure !== undefined) return this.#refusedAfterFailure();
    return undefined;
  }

  #refusedAfterFailure(): WeftError {
    return new WeftError('ERR_WEFT_DATA_DIR', `partition ${describe(this.path)} refuses writes after a failed commit`, { cause: this.#failure });
  }

  #enqueue(ops: Recorder): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ ops, resolve, reject });
      this.#pump();
    });
  }

  /** Starts the next transaction if none is in flight: every queued call, up to MAX_GROUP_OPS ops. */
  #pump(): void {
    if (this.#inFlight) return;
    if (this.#queue.length === 0) {
      this.#notifyDrained();
      return;
    }
    let count = 0;
    let n = 0;
    while (n < this.#queue.length) {
      const size = (this.#queue[n] as QueuedWrite).ops.length;
      if (n > 0 && count + size > MAX_GROUP_OPS) break;
      count += size;
      n++;
    }
    const group = this.#queue.splice(0, n);
    this.#inFlight = true;
    let committed: Promise<unknown>;
    try {
      const expansions = this.#expandPrefixDeletes(group);
      const dbs = this.#dbs;
      // Nothing in this callback can throw for validated input: a throw here would still commit
      // the instructions already queued (lmdb-js ends the batch in a `finally`).
      committed = this.#root.batch(() => {
        for (const w of group) {
          const ops = w.ops;
          const expanded = expansions.get(ops);
          for (let i = 0; i < ops.length; i++) {
            const db = dbs[ops.dbs[i] as Db] as SubDb;
            const value = ops.values[i];
            if (value === null) void db.remove(ops.keys[i] as Key);
            else if (value === PREFIX_DELETE) {
              for (const key of expanded?.get(i) ?? []) void db.remove(key);
            } else void db.put(ops.keys[i] as Key, value as Uint8Array);
          }
        }
      });
    } catch (cause) {
      committed = Promise.reject(cause instanceof Error ? cause : new Error(String(cause)));
    }
    committed.then(
      () => {
        this.#inFlight = false;
        for (const w of group) w.resolve();
        this.#pump();
      },
      (err: unknown) => {
        void this.#onCommitFailed(group, err);
      },
    );
  }

  async #onCommitFailed(group: QueuedWrite[], err: unknown): Promise<void> {
    // lmdb-js rejects with "Commit failed (see commitError for details)" and the LMDB error in a
    // second promise; that promise must get a handler or the process sees an unhandled rejection.
    let cause = err;
    const detail = (err as { commitError?: Promise<unknown> } | null)?.commitError;
    if (detail !== undefined) cause = await detail.then(() => err, (e: unknown) => e);
    this.#failure = commitError(this.path, cause);
    const rest = this.#queue.splice(0);
    this.#inFlight = false;
    for (const w of group) w.reject(this.#failure);
    for (const w of rest) w.reject(this.#refusedAfterFailure());
    this.#notifyDrained();
  }

  /**
   * Lists the keys each prefix delete of the group removes, as they exist NOW: committed ones
   * (nothing else is in flight, and lmdb-js renews the read snapshot on each commit) plus those
   * put by earlier ops of this same group. Keyed by recorder, then op index.
   */
  #expandPrefixDeletes(group: QueuedWrite[]): Map<Recorder, Map<number, Key[]>> {
    const expansions = new Map<Recorder, Map<number, Key[]>>();
    for (let g = 0; g < group.length; g++) {
      const ops = (group[g] as QueuedWrite).ops;
      if (!ops.hasPrefixDeletes) continue;
      const mine = new Map<number, Key[]>();
      expansions.set(ops, mine);
      for (let i = 0; i < ops.length; i++) {
        if (ops.values[i] !== PREFIX_DELETE) continue;
        const db = ops.dbs[i] as Db;
        const prefix = ops.keys[i] as number;
        const doomed: Key[] = [];
        // Earlier puts of this group: in earlier calls, then earlier in this call.
        for (let h = 0; h <= g; h++) {
          const earlier = (group[h] as QueuedWrite).ops;
          const stop = h === g ? i : earlier.length;
          for (let j = 0; j < stop; j++) {
            const v = earlier.values[j];
            if (earlier.dbs[j] === db && v !== null && v !== PREFIX_DELETE && (earlier.keys[j] as unknown[])[0] === prefix) doomed.push(earlier.keys[j] as Key);
          }
        }
        for (const key of (this.#dbs[db] as SubDb).getKeys({ start: [prefix], end: [prefix + 1] })) doomed.push(key);
        mine.set(i, doomed);
      }
    }
    return expansions;
  }

  #drained(): Promise<void> {
    if (!this.#inFlight && this.#queue.length === 0) return Promise.resolve();
    return new Promise<void>((resolve) => this.#drainWaiters.push(resolve));
  }

  #notifyDrained(): void {
    if (this.#inFlight || this.#queue.length > 0) return;
    const waiters = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const w of waiters) w();
  }

  #kgRange(kg: number | undefined): [Key, Key | undefined] {
    this.#assertOpen();
    if (kg === undefined) return [[0], undefined];
    checkKeyGroup(kg);
    return [[kg], [kg + 1]];
  }

  /**
   * Reads `[start, end)` in chunks, each a complete cursor pass (see the module comment), and
   * continues after the last key read.
   */
  *#scan(db: Db, start: Key, end: Key | undefined): Generator<{ key: Key; value: Uint8Array }, void, undefined> {
    let from = start;
    let exclusive = false;
    for (;;) {
      this.#assertOpen();
      const chunk: Array<{ key: Key; value: Uint8Array }> = [];
      try {
        const range = (this.#dbs[db] as SubDb).getRange(end === undefined ? { start: from, exclusiveStart: exclusive, limit: SCAN_CHUNK } : { start: from, end, exclusiveStart: exclusive, limit: SCAN_CHUNK });
        for (const entry of range) chunk.push({ key: entry.key, value: entry.value });
      } catch (cause) {
        throw dataDirError(this.path, 'cannot read', cause);
      }
      yield* chunk;
      const last = chunk[chunk.length - 1];
      if (chunk.length < SCAN_CHUNK || last === undefined) return;
      from = last.key;
      exclusive = true;
    }
  }

  /** The distinct first key elements (key groups, epochs) of a sub-database, by skipping. */
  #distinctFirst(db: Db): number[] {
    this.#assertOpen();
    const out: number[] = [];
    let from: Key = [0];
    try {
      for (;;) {
        let first: number | undefined;
        for (const key of (this.#dbs[db] as SubDb).getKeys({ start: from, limit: 1 })) first = (key as unknown[])[0] as number;
        if (first === undefined) return out;
        out.push(first);
        from = [first + 1];
      }
    } catch (cause) {
      throw dataDirError(this.path, 'cannot read', cause);
    }
  }

  #count(db: Db, start: Key, end: Key | undefined): number {
    try {
      return (this.#dbs[db] as SubDb).getCount(end === undefined ? { start } : { start, end });
    } catch (cause) {
      throw dataDirError(this.path, 'cannot read', cause);
    }
  }
}

/** `getBinary` in a given read transaction (lmdb-js takes the option; its typings do not declare it). */
function getBinaryIn(db: SubDb, key: Key, transaction: LmdbTxn): Uint8Array | undefined {
  return (db.getBinary as unknown as (this: SubDb, k: Key, o: { transaction: LmdbTxn }) => Uint8Array | undefined).call(db, key, { transaction });
}

/** lmdb-js's read transaction object (its typings declare `done` only). */
interface LmdbTxn {
  done(): void;
}

/**
 * One read transaction of a partition (see {@link Partition.snapshot}). Reads are synchronous and
 * see the snapshot; ERR_WEFT_CLOSED once released (by {@link release} or the partition's close).
 */
export class PartitionSnapshot {
  readonly path: string;
  readonly #dbs: SubDbs;
  #txn: LmdbTxn | undefined;
  readonly #onRelease: (s: PartitionSnapshot) => void;

  constructor(path: string, dbs: SubDbs, txn: LmdbTxn, onRelease: (s: PartitionSnapshot) => void) {
    this.path = path;
    this.#dbs = dbs;
    this.#txn = txn;
    this.#onRelease = onRelease;
  }

  get released(): boolean {
    return this.#txn === undefined;
  }

  /** Ends the read transaction (idempotent). */
  release(): void {
    const txn = this.#txn;
    if (txn === undefined) return;
    this.#txn = undefined;
    this.#onRelease(this);
    txn.done();
  }

  /** An instance's state record in this snapshot (a copy), or `undefined`. */
  getState(kg: number, type: string, id: string): Uint8Array | undefined {
    const transaction = this.#use();
    try {
      return getBinaryIn(this.#dbs[Db.State], [kg, type, id], transaction);
    } catch (cause) {
      throw dataDirError(this.path, 'cannot read', cause);
    }
  }

  /** A metadata value in this snapshot, or `undefined`. */
  getMeta(key: string): unknown {
    const transaction = this.#use();
    let bytes: Uint8Array | undefined;
    try {
      bytes = getBinaryIn(this.#dbs[Db.Meta], key, transaction);
    } catch (cause) {
      throw dataDirError(this.path, 'cannot read', cause);
    }
    return bytes === undefined ? undefined : metaPackr.unpack(bytes);
  }

  /** The epochs with pending entries in this snapshot, ascending. */
  pendingEpochs(): number[] {
    const transaction = this.#use();
    const out: number[] = [];
    let from: Key = [0];
    try {
      for (;;) {
        let first: number | undefined;
        for (const key of this.#dbs[Db.Pending].getKeys({ start: from, limit: 1, transaction } as never)) first = (key as unknown[])[0] as number;
        if (first === undefined) return out;
        out.push(first);
        from = [first + 1];
      }
    } catch (cause) {
      throw dataDirError(this.path, 'cannot read', cause);
    }
  }

  /** The entries of pending epoch `epoch` of the given kinds in this snapshot, by kind, then key. */
  pendingEntries(epoch: number, kinds: readonly number[]): PendingEntry[] {
    checkEpoch(epoch);
    const transaction = this.#use();
    const out: PendingEntry[] = [];
    try {
      for (const kind of [...kinds].sort((a, b) => a - b)) {
        for (const { key, value } of this.#dbs[Db.Pending].getRange({ start: [epoch, kind], end: [epoch, kind + 1], transaction } as never)) {
          out.push({ key: key as unknown as PendingKey, value: value as Uint8Array });
        }
      }
    } catch (cause) {
      throw dataDirError(this.path, 'cannot read', cause);
    }
    return out;
  }

  /**
   * Up to `limit` ids of function type `type` in key group `kg`, in key order, starting at `from`
   * (after it when `exclusive`; from the type's first id when `from` is undefined).
   */
  stateIds(kg: number, type: string, from: string | undefined, exclusive: boolean, limit: number): string[] {
    const transaction = this.#use();
    const out: string[] = [];
    const start: Key = from === undefined ? [kg, type] : [kg, type, from];
    // Typenames are [A-Za-z0-9_.-/]: no other type's key sorts between [kg, type, *] and this.
    const end: Key = [kg, `${type}\u0001`];
    try {
      for (const key of this.#dbs[Db.State].getKeys({ start, end, exclusiveStart: exclusive && from !== undefined, limit, transaction } as never)) {
        const k = key as unknown as [number, string, string];
        if (k[1] === type && typeof k[2] === 'string') out.push(k[2]);
      }
    } catch (cause) {
      throw dataDirError(this.path, 'cannot read', cause);
    }
    return out;
  }

  /**
   * Like {@link stateIds}, with each id's record: up to `limit` entries, stopping early once their
   * values add up to `maxBytes` (at least one entry is read). The records are copied into ONE
   * buffer: record `i` is `data.subarray(offsets[i], offsets[i + 1])` (a chunk of many small
   * records then costs one object, not one per record). `more` is false when the type's range in
   * `kg` ended.
   */
  stateEntries(kg: number, type: string, from: string | undefined, exclusive: boolean, limit: number, maxBytes: number): { ids: string[]; data: Uint8Array; offsets: Uint32Array; more: boolean } {
    const transaction = this.#use();
    const ids: string[] = [];
    const values: Uint8Array[] = [];
    const start: Key = from === undefined ? [kg, type] : [kg, type, from];
    const end: Key = [kg, `${type}\u0001`];
    let bytes = 0;
    let more = false;
    try {
      for (const { key, value } of this.#dbs[Db.State].getRange({ start, end, exclusiveStart: exclusive && from !== undefined, limit, transaction } as never)) {
        const k = key as unknown as [number, string, string];
        if (k[1] !== type || typeof k[2] !== 'string') continue;
        ids.push(k[2]);
        values.push(value as Uint8Array);
        bytes += (value as Uint8Array).byteLength;
        if (ids.length === limit || bytes >= maxBytes) {
          more = true;
          break;
        }
      }
    } catch (cause) {
      throw dataDirError(this.path, 'cannot read', cause);
    }
    const data = new Uint8Array(bytes);
    const offsets = new Uint32Array(values.length + 1);
    let at = 0;
    for (let i = 0; i < values.length; i++) {
      const v = values[i] as Uint8Array;
      data.set(v, at);
      at += v.byteLength;
      offsets[i + 1] = at;
    }
    return { ids, data, offsets, more };
  }

  #use(): LmdbTxn {
    const txn = this.#txn;
    if (txn === undefined) throw new WeftError('ERR_WEFT_CLOSED', `snapshot of partition ${describe(this.path)} was released`);
    return txn;
  }
}

/**
 * Records and validates the ops of one write call (three parallel arrays: cheaper than an object
 * per op at 100k ops), copying value bytes into arenas so the caller keeps ownership of its own.
 */
class Recorder implements WriteOps {
  readonly dbs: Db[] = [];
  readonly keys: Array<Key | number> = [];
  readonly values: OpValue[] = [];
  /** Whether any op deletes by prefix (only those groups need the expansion pass). */
  hasPrefixDeletes = false;
  #sealed = false;
  #arena: Uint8Array = EMPTY;
  #arenaUsed = 0;
  /** Small calls get a small arena; each new one doubles, up to ARENA_BYTES. */
  #nextArenaBytes = MIN_ARENA_BYTES;
  readonly #maxKeySize: number;
  readonly #keyEncoder: LmdbInternals;
  readonly #copyValues: boolean;

  constructor(maxKeySize: number, keyEncoder: LmdbInternals, copyValues: boolean) {
    this.#maxKeySize = maxKeySize;
    this.#keyEncoder = keyEncoder;
    this.#copyValues = copyValues;
  }

  get length(): number {
    return this.dbs.length;
  }

  seal(): void {
    this.#sealed = true;
  }

  putState(kg: number, type: string, id: string, value: Uint8Array): void {
    this.#check();
    const key = this.#stateKey(kg, type, id);
    this.#push(Db.State, key, this.#value(value));
  }

  deleteState(kg: number, type: string, id: string): void {
    this.#check();
    this.#push(Db.State, this.#stateKey(kg, type, id), null);
  }

  putTimer(kg: number, due: number, seq: number, value: Uint8Array): void {
    this.#check();
    const key = timerKey(kg, due, seq);
    this.#push(Db.Timers, key, this.#value(value));
  }

  deleteTimer(kg: number, due: number, seq: number): void {
    this.#check();
    this.#push(Db.Timers, timerKey(kg, due, seq), null);
  }

  putPending(key: PendingKey, value: Uint8Array): void {
    this.#check();
    const k = this.#pendingKey(key);
    this.#push(Db.Pending, k, this.#value(value));
  }

  deletePendingEpoch(epoch: number): void {
    this.#check();
    checkEpoch(epoch);
    this.hasPrefixDeletes = true;
    this.#push(Db.Pending, epoch, PREFIX_DELETE);
  }

  putMeta(key: string, value: unknown): void {
    this.#check();
    checkMetaKey(key);
    this.putMetaReserved(key, value);
  }

  putMetaList(key: string, packedItems: readonly Uint8Array[]): void {
    this.#check();
    checkMetaKey(key);
    if (!Array.isArray(packedItems) || !packedItems.every((item) => item instanceof Uint8Array && item.byteLength > 0)) {
      throw new WeftError('ERR_WEFT_INVALID_ARG', `meta list for ${describe(key)} must be an array of packed items (non-empty Uint8Arrays from packMeta; got ${describe(packedItems)})`);
    }
    this.#checkKeySize(key, key.length, key.length * 3 + 2);
    // packMetaList makes a new buffer: it is the copy the recorded op keeps.
    this.#push(Db.Meta, key, packMetaList(packedItems));
  }

  deleteMeta(key: string): void {
    this.#check();
    checkMetaKey(key);
    this.#push(Db.Meta, key, null);
  }

  deleteKeyGroup(kg: number): void {
    this.#check();
    checkKeyGroup(kg);
    this.hasPrefixDeletes = true;
    this.#push(Db.State, kg, PREFIX_DELETE);
    this.#push(Db.Timers, kg, PREFIX_DELETE);
  }

  putEgress(name: string, epoch: number, seq: number, value: Uint8Array): void {
    this.#check();
    this.#push(Db.Egress, this.#egressKey(name, epoch, seq), this.#value(value));
  }

  deleteEgress(name: string, epoch: number, seq: number): void {
    this.#check();
    this.#push(Db.Egress, this.#egressKey(name, epoch, seq), null);
  }

  #egressKey(name: string, epoch: number, seq: number): Key {
    if (typeof name !== 'string' || name.length === 0) throw new WeftError('ERR_WEFT_INVALID_ARG', `egress name must be a non-empty string (got ${describe(name)})`);
    checkEpoch(epoch);
    if (!Number.isSafeInteger(seq) || seq < 0) throw new WeftError('ERR_WEFT_INVALID_ARG', `egress seq must be a non-negative integer (got ${describe(seq)})`);
    const key: Key = [name, epoch, seq];
    this.#checkKeySize(key, name.length + 4, 24 + 3 * name.length);
    return key;
  }

  /** putMeta without the reserved-prefix check, for the partition's own keys. */
  putMetaReserved(key: string, value: unknown): void {
    this.#check();
    if (value === undefined) {
      throw new WeftError('ERR_WEFT_INVALID_ARG', `meta value for ${describe(key)} must not be undefined (use deleteMeta)`);
    }
    let packed: Uint8Array;
    try {
      packed = metaPackr.pack(value);
    } catch (cause) {
      throw new WeftError('ERR_WEFT_UNSERIALIZABLE', `meta value for ${describe(key)} cannot be encoded as msgpack: ${describe(value)}`, { cause });
    }
    this.#checkKeySize(key, key.length, key.length * 3 + 2);
    this.#push(Db.Meta, key, this.#copy(packed));
  }

  /** An already validated entry (from a range read of another partition). */
  raw(db: Db, key: Key, value: Uint8Array): void {
    this.#push(db, key, value);
  }

  #check(): void {
    if (this.#sealed) throw new WeftError('ERR_WEFT_INVALID_ARG', 'write ops were used after the write() callback returned');
  }

  #push(db: Db, key: Key | number, value: OpValue): void {
    this.dbs.push(db);
    this.keys.push(key);
    this.values.push(value);
  }

  #stateKey(kg: number, type: string, id: string): Key {
    checkKeyGroup(kg);
    checkString('type', type);
    checkString('id', id);
    const key: Key = [kg, type, id];
    // ordered-binary: a number takes at most 10 bytes, a separator 1, a UTF-16 unit at most 3.
    this.#checkKeySize(key, type.length + id.length + 4, 12 + 3 * (type.length + id.length));
    return key;
  }

  #pendingKey(key: PendingKey): Key {
    if (!Array.isArray(key) || key.length < 2 || key.length > 2 + MAX_PENDING_REST) {
      throw new WeftError('ERR_WEFT_INVALID_ARG', `pending key must be an array [epoch, kind, ...rest] of 2 to ${2 + MAX_PENDING_REST} elements (got ${describe(key)})`);
    }
    checkEpoch(key[0]);
    const kind = key[1];
    if (!Number.isSafeInteger(kind) || kind < 0) {
      throw new WeftError('ERR_WEFT_INVALID_ARG', `pending key kind must be a non-negative integer (got ${describe(kind)})`);
    }
    let bound = 22;
    let least = 2;
    for (let i = 2; i < key.length; i++) {
      const part: unknown = key[i];
      if (typeof part === 'string') {
        bound += 3 * part.length + 1;
        least += part.length + 1;
      } else if (typeof part === 'number' && Number.isFinite(part)) bound += 11;
      else throw new WeftError('ERR_WEFT_INVALID_ARG', `pending key element ${i} must be a string or a finite number (got ${describe(part)})`);
    }
    // A copy: the caller may reuse its array.
    const copy = key.slice() as Key;
    this.#checkKeySize(copy, least, bound);
    return copy;
  }

  /**
   * Refuses keys longer than LMDB's limit. `lowerBound`/`upperBound` bracket the encoded size (a
   * UTF-16 unit takes 1 to 3 bytes): only keys between them are encoded to measure.
   */
  #checkKeySize(key: Key, lowerBound: number, upperBound: number): void {
    if (upperBound <= this.#maxKeySize) return;
    let size = lowerBound;
    if (lowerBound <= this.#maxKeySize) {
      // ordered-binary wants room past the end of its target (it builds a DataView one byte longer).
      const scratch = new Uint8Array(new ArrayBuffer(upperBound + 64), 0, upperBound + 32);
      try {
        size = this.#keyEncoder.writeKey(key, scratch, 0);
      } catch (cause) {
        throw new WeftError('ERR_WEFT_INVALID_ARG', `key ${describe(key)} cannot be encoded`, { cause });
      }
      if (size <= this.#maxKeySize) return;
    }
    throw new WeftError('ERR_WEFT_TOO_LARGE', `key ${describe(key)} takes ${size === lowerBound ? 'at least ' : ''}${size} bytes; LMDB keys are limited to ${this.#maxKeySize}`);
  }

  #value(value: Uint8Array): Uint8Array {
    if (!(value instanceof Uint8Array)) {
      throw new WeftError('ERR_WEFT_INVALID_ARG', `value must be a Uint8Array (got ${describe(value)})`);
    }
    return this.#copyValues ? this.#copy(value) : value;
  }

  /** Copies into the current arena (one ArrayBuffer for many small values: lmdb-js resolves its address once). */
  #copy(value: Uint8Array): Uint8Array {
    const n = value.byteLength;
    if (n === 0) return EMPTY;
    if (n > ARENA_BYTES / 4) return value.slice();
    if (this.#arenaUsed + n > this.#arena.byteLength) {
      while (this.#nextArenaBytes < n) this.#nextArenaBytes *= 2;
      this.#arena = Buffer.allocUnsafeSlow(this.#nextArenaBytes);
      this.#nextArenaBytes = Math.min(ARENA_BYTES, this.#nextArenaBytes * 2);
      this.#arenaUsed = 0;
    }
    const out = this.#arena.subarray(this.#arenaUsed, this.#arenaUsed + n);
    out.set(value);
    this.#arenaUsed += n;
    return out;
  }
}

/**
 * Checks a partition's files BEFORE lmdb-js maps them, so that damage is an ERR_WEFT_DATA_DIR in
 * the host and never a signal that ends the process:
 * - lmdb-js 3.5.6 crashes the whole process (SIGSEGV, a double free of its ExtendedEnv in
 *   `EnvWrap::openEnv`'s failure path) whenever `mdb_env_open` fails: a `data.mdb` that is not
 *   LMDB (MDB_INVALID, MDB_VERSION_MISMATCH), a `lock.mdb` it cannot open (a directory, a dangling
 *   link, no permission), a file it cannot open for writing.
 * - A `data.mdb` shorter than the pages its meta page says are in use is mapped anyway, and the
 *   first read of a page past the end of the file is SIGBUS.
 *
 * Checked, with plain reads: the file opens for reading (and writing, unless read-only); it holds
 * both meta pages (24-byte page header, little-endian, 64-bit); each has page flag P_META, magic
 * 0xBEEFC0DE, data format version 2 and the same page size (a power of two, 512-65536); the newer
 * one (by txnid, as LMDB picks it) has both tree roots within its last used page and a map size
 * covering that. The file may end before the last used page (free pages at the end need not have
 * been written before a crash): whether every page in use lies inside the file is
 * {@link lmdbTreeProblem}'s check, which {@link Partition.open} runs after this one. `lock.mdb`, if present, is a regular file that opens the same way; if
 * absent, the directory must be writable for LMDB to create it. An empty or missing `data.mdb` is
 * what a new environment starts from: allowed unless `required`.
 *
 * Returns a description of the first problem found, or undefined.
 */
export function lmdbFileProblem(dir: string, options: { required: boolean; writable: boolean }): string | undefined {
  const file = join(dir, 'data.mdb');
  const mode = options.writable ? constants.O_RDWR : constants.O_RDONLY;
  const access = options.writable ? 'reading and writing' : 'reading';
  let fd: number;
  try {
    fd = openSync(file, mode);
  } catch (cause) {
    const code = (cause as { code?: unknown }).code;
    if (code === 'ENOENT' && !options.required) return lockFileProblem(dir, options.writable);
    return `${describe(file)} cannot be opened for ${access} (${(cause as Error).message})`;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) return `${describe(file)} is not a regular file`;
    const size = st.size;
    if (size === 0) {
      if (options.required) return `${describe(file)} is empty (0 bytes): its data is gone`;
      return lockFileProblem(dir, options.writable);
    }
    const notLmdb = `${describe(file)} is not an LMDB data file of format version ${MDB_DATA_VERSION}; not opening it`;
    const head = Buffer.alloc(META_READ_BYTES);
    if (readSync(fd, head, 0, head.length, 0) !== head.length) return notLmdb;
    if (!isMetaPage(head)) return notLmdb;
    const pageSize = head.readUInt32LE(META_PAGE_SIZE_OFFSET);
    if (pageSize < 512 || pageSize > 65536 || (pageSize & (pageSize - 1)) !== 0) return notLmdb;
    if (size < 2 * pageSize) return `${describe(file)} is truncated: ${size} bytes, less than its two meta pages (${2 * pageSize} bytes)`;
    const second = Buffer.alloc(META_READ_BYTES);
    if (readSync(fd, second, 0, second.length, pageSize) !== second.length || !isMetaPage(second) || second.readUInt32LE(META_PAGE_SIZE_OFFSET) !== pageSize) {
      return `${describe(file)}: LMDB's second meta page (at byte ${pageSize}) is damaged`;
    }
    const newer = head.readBigUInt64LE(META_TXNID_OFFSET) >= second.readBigUInt64LE(META_TXNID_OFFSET) ? head : second;
    const txn = newer.readBigUInt64LE(META_TXNID_OFFSET);
    const lastPage = newer.readBigUInt64LE(META_LAST_PAGE_OFFSET);
    const need = (lastPage + 1n) * BigInt(pageSize);
    if (lastPage < 1n || need > BigInt(Number.MAX_SAFE_INTEGER)) return `${describe(file)}: LMDB's meta page of transaction ${txn} is damaged (last page ${lastPage})`;
    for (const [name, offset] of [['free-page', META_FREE_ROOT_OFFSET], ['main', META_MAIN_ROOT_OFFSET]] as const) {
      const root = newer.readBigUInt64LE(offset);
      if (root !== P_INVALID && (root < 2n || root > lastPage)) return `${describe(file)}: LMDB's meta page (transaction ${txn}) is damaged: its ${name} tree root ${root} is outside pages 2-${lastPage}`;
    }
    if (newer.readBigUInt64LE(META_MAP_SIZE_OFFSET) < need) return `${describe(file)}: LMDB's meta page (transaction ${txn}) is damaged: map size ${newer.readBigUInt64LE(META_MAP_SIZE_OFFSET)} is smaller than the ${need} bytes in use`;
  } catch (cause) {
    return `${describe(file)} cannot be read (${(cause as Error).message})`;
  } finally {
    closeSync(fd);
  }
  return lockFileProblem(dir, options.writable);
}

/**
 * Walks every B-tree page LMDB can reach from the newer meta page (the free-page tree, the main
 * tree and each sub-database's tree, with their overflow pages) and checks each one's structure
 * BEFORE LMDB maps the file: the page number in its header is its position, its flags are those
 * of a branch, leaf or overflow page, its node offsets and sizes stay inside the page, and every
 * page it refers to (child, overflow run, sub-database root) lies inside the pages in use. A page
 * overwritten with anything else is found (its header no longer names it), so LMDB is never
 * handed a structure that would make it read past a page or the file. Values are not checked
 * (LMDB has no checksums): damage inside a stored value that keeps the page structure intact is
 * not detected here; msgpack decoding of that value then fails or reads other data.
 * Reads each page in use once. Call after {@link lmdbFileProblem} passed. Returns the first problem.
 */
export function lmdbTreeProblem(dir: string): string | undefined {
  const file = join(dir, 'data.mdb');
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (cause) {
    // Missing: a new environment (whether it may be missing is lmdbFileProblem's to say).
    if ((cause as { code?: unknown }).code === 'ENOENT') return undefined;
    return `${describe(file)} cannot be opened for reading (${(cause as Error).message})`;
  }
  try {
    const head = Buffer.alloc(META_READ_BYTES);
    if (readSync(fd, head, 0, head.length, 0) !== head.length) return undefined;
    if (fstatSync(fd).size === 0) return undefined;
    const psize = head.readUInt32LE(META_PAGE_SIZE_OFFSET);
    const second = Buffer.alloc(META_READ_BYTES);
    readSync(fd, second, 0, second.length, psize);
    const meta = head.readBigUInt64LE(META_TXNID_OFFSET) >= second.readBigUInt64LE(META_TXNID_OFFSET) ? head : second;
    const last = Number(meta.readBigUInt64LE(META_LAST_PAGE_OFFSET));
    // Pages past the end of the file are allowed only if nothing refers to them: LMDB's last page
    // counts free pages at the end that a crash may have left unwritten ("the file may be shorter
    // if the freeDB lists the final pages", mdb.c). A page in use there is the SIGBUS case.
    const filePages = Math.floor(fstatSync(fd).size / psize);
    const truncated = (pgno: number, what: string): string => `${describe(file)} is truncated: ${filePages * psize} bytes, but ${what} page ${pgno} (in use, of ${psize} bytes) lies past its end`;
    // Files up to WHOLE_READ_BYTES are read in one go (one read instead of one per page).
    const whole = filePages * psize <= WHOLE_READ_BYTES ? Buffer.allocUnsafe(filePages * psize) : undefined;
    if (whole !== undefined && readSync(fd, whole, 0, whole.length, 0) !== whole.length) throw new Error('the file changed while it was read');
    let page = Buffer.alloc(psize);
    const seen = new Set<number>();
    const bad = (pgno: number, what: string): string => `${describe(file)}: page ${pgno} is damaged (${what})`;
    const read = (pgno: number): void => {
      if (whole !== undefined) page = whole.subarray(pgno * psize, (pgno + 1) * psize);
      else if (readSync(fd, page, 0, psize, pgno * psize) !== psize) throw new Error(`page ${pgno} cannot be read`);
    };
    // Iterative depth-first walk: [pgno, depth left].
    const stack: Array<[number, number]> = [];
    const pushRoot = (root: bigint, depth: number, what: string): string | undefined => {
      if (root === P_INVALID) return undefined;
      if (root < 2n || root > BigInt(last)) return `${describe(file)}: the ${what} tree root ${root} is outside pages 2-${last}`;
      if (depth < 1 || depth > 64) return `${describe(file)}: the ${what} tree has depth ${depth}`;
      stack.push([Number(root), depth]);
      return undefined;
    };
    let problem = pushRoot(meta.readBigUInt64LE(META_FREE_ROOT_OFFSET), meta.readUInt16LE(META_FREE_ROOT_OFFSET - 34), 'free-page') ?? pushRoot(meta.readBigUInt64LE(META_MAIN_ROOT_OFFSET), meta.readUInt16LE(META_MAIN_ROOT_OFFSET - 34), 'main');
    if (problem !== undefined) return problem;
    while (stack.length > 0) {
      const [pgno, depth] = stack.pop() as [number, number];
      if (seen.has(pgno)) return bad(pgno, 'reached twice');
      seen.add(pgno);
      if (pgno >= filePages) return truncated(pgno, 'tree');
      read(pgno);
      if (page.readBigUInt64LE(0) !== BigInt(pgno)) return bad(pgno, `its header names page ${page.readBigUInt64LE(0)}`);
      const flags = page.readUInt16LE(PAGE_FLAGS_OFFSET) & 0xff;
      const branch = flags === P_BRANCH;
      if (!branch && flags !== P_LEAF && flags !== (P_LEAF | P_LEAF2)) return bad(pgno, `page flags 0x${flags.toString(16)} in a tree`);
      if (branch !== depth > 1) return bad(pgno, `a ${branch ? 'branch' : 'leaf'} page at tree depth ${depth}`);
      const lower = page.readUInt16LE(PAGE_HEADER_BYTES - 4);
      const upper = page.readUInt16LE(PAGE_HEADER_BYTES - 2);
      if (lower > upper || PAGE_HEADER_BYTES + upper > psize) return bad(pgno, `free space bounds ${lower}-${upper}`);
      if (flags & P_LEAF2) continue;
      const n = lower >> 1;
      if (branch && n === 0) return bad(pgno, 'an empty branch page');
      for (let i = 0; i < n; i++) {
        const node = PAGE_HEADER_BYTES + page.readUInt16LE(PAGE_HEADER_BYTES + 2 * i);
        if (node < PAGE_HEADER_BYTES + lower || node + NODE_HEADER_BYTES > psize) return bad(pgno, `node ${i} starts outside the page`);
        const lo = page.readUInt16LE(node);
        const hi = page.readUInt16LE(node + 2);
        const nodeFlags = page.readUInt16LE(node + 4);
        const ksize = page.readUInt16LE(node + 6);
        const data = node + NODE_HEADER_BYTES + ksize;
        if (data > psize) return bad(pgno, `node ${i}'s key runs past the page`);
        if (branch) {
          const child = lo + hi * 0x10000 + nodeFlags * 0x1_0000_0000;
          if (child < 2 || child > last) return bad(pgno, `node ${i} points to page ${child}, outside pages 2-${last}`);
          stack.push([child, depth - 1]);
          continue;
        }
        const dsize = lo + hi * 0x10000;
        if (nodeFlags & F_BIGDATA) {
          if (data + 8 > psize) return bad(pgno, `node ${i}'s overflow reference runs past the page`);
          const ovf = Number(page.readBigUInt64LE(data));
          if (ovf < 2 || ovf > last) return bad(pgno, `node ${i} points to overflow page ${ovf}, outside pages 2-${last}`);
          if (ovf >= filePages) return truncated(ovf, 'overflow');
          let ovfPage = Buffer.alloc(PAGE_HEADER_BYTES);
          if (whole !== undefined) ovfPage = whole.subarray(ovf * psize, ovf * psize + PAGE_HEADER_BYTES);
          else readSync(fd, ovfPage, 0, PAGE_HEADER_BYTES, ovf * psize);
          const pages = ovfPage.readUInt32LE(PAGE_HEADER_BYTES - 4);
          if (ovfPage.readBigUInt64LE(0) !== BigInt(ovf) || (ovfPage.readUInt16LE(PAGE_FLAGS_OFFSET) & 0xff) !== P_OVERFLOW) return bad(ovf, 'not the overflow page a value refers to');
          if (pages < 1 || ovf + pages - 1 > last || dsize > pages * psize - PAGE_HEADER_BYTES) return bad(ovf, `an overflow run of ${pages} pages for ${dsize} bytes`);
          if (ovf + pages > filePages) return truncated(ovf + pages - 1, 'overflow');
          continue;
        }
        if (data + dsize > psize) return bad(pgno, `node ${i}'s value (${dsize} bytes) runs past the page`);
        if (nodeFlags & F_SUBDATA) {
          if (dsize < DB_RECORD_BYTES) return bad(pgno, `node ${i}'s sub-database record is ${dsize} bytes`);
          problem = pushRoot(page.readBigUInt64LE(data + DB_RECORD_BYTES - 8), page.readUInt16LE(data + 6), `sub-database ${JSON.stringify(page.subarray(node + NODE_HEADER_BYTES, data).toString('latin1'))}`);
          if (problem !== undefined) return problem;
        }
      }
    }
  } catch (cause) {
    return `${describe(file)} cannot be read (${(cause as Error).message})`;
  } finally {
    closeSync(fd);
  }
  return undefined;
}

function isMetaPage(page: Buffer): boolean {
  return (page.readUInt16LE(PAGE_FLAGS_OFFSET) & P_META) !== 0 && page.readUInt32LE(META_MAGIC_OFFSET) === MDB_MAGIC && (page.readUInt32LE(META_VERSION_OFFSET) & 0xffff) === MDB_DATA_VERSION;
}

function lockFileProblem(dir: string, writable: boolean): string | undefined {
  const file = join(dir, 'lock.mdb');
  let st;
  try {
    st = lstatSync(file);
  } catch {
    // Absent: LMDB creates it, in a directory it can write to.
    try {
      accessSync(dir, constants.W_OK | constants.X_OK);
      return undefined;
    } catch (cause) {
      return `${describe(dir)} has no lock.mdb and is not writable, so LMDB cannot create one (${String((cause as { code?: unknown }).code ?? 'error')})`;
    }
  }
  if (st.isSymbolicLink()) {
    try {
      st = statSync(file);
    } catch {
      return `${describe(file)} is a dangling symbolic link`;
    }
  }
  if (!st.isFile()) return `${describe(file)} is not a regular file`;
  try {
    closeSync(openSync(file, writable ? constants.O_RDWR : constants.O_RDONLY));
  } catch (cause) {
    return `${describe(file)} cannot be opened for ${writable ? 'reading and writing' : 'reading'} (${(cause as Error).message})`;
  }
  return undefined;
}

function checkDataFile(dir: string, readOnly: boolean, structureChecked: boolean): void {
  const problem = lmdbFileProblem(dir, { required: readOnly, writable: !readOnly }) ?? (structureChecked ? undefined : lmdbTreeProblem(dir));
  if (problem !== undefined) throw new WeftError('ERR_WEFT_DATA_DIR', `partition ${describe(dir)}: ${problem}`);
}

function timerKey(kg: number, due: number, seq: number): Key {
  checkKeyGroup(kg);
  if (!Number.isFinite(due)) throw new WeftError('ERR_WEFT_INVALID_ARG', `timer due must be a finite number of epoch ms (got ${describe(due)})`);
  if (!Number.isSafeInteger(seq) || seq < 0) throw new WeftError('ERR_WEFT_INVALID_ARG', `timer seq must be a non-negative integer (got ${describe(seq)})`);
  return [kg, due, seq];
}

function checkKeyGroup(kg: number): void {
  if (!Number.isInteger(kg) || kg < 0 || kg > MAX_KEY_GROUP) {
    throw new WeftError('ERR_WEFT_INVALID_ARG', `key group must be an integer in [0, ${MAX_KEY_GROUP}] (got ${describe(kg)})`);
  }
}

function checkKeyGroupList(keyGroups: Iterable<number>): number[] {
  if (keyGroups === null || typeof keyGroups !== 'object' || !(Symbol.iterator in keyGroups)) {
    throw new WeftError('ERR_WEFT_INVALID_ARG', `keyGroups must be an iterable of key groups (got ${describe(keyGroups)})`);
  }
  const groups = [...new Set(keyGroups)];
  for (const kg of groups) checkKeyGroup(kg);
  return groups.sort((a, b) => a - b);
}

function checkEpoch(epoch: number): void {
  if (!Number.isSafeInteger(epoch) || epoch < 0) {
    throw new WeftError('ERR_WEFT_INVALID_ARG', `epoch must be a non-negative integer (got ${describe(epoch)})`);
  }
}

function checkString(what: string, s: string): void {
  if (typeof s !== 'string') throw new WeftError('ERR_WEFT_INVALID_ARG', `${what} must be a string (got ${describe(s)})`);
}

function checkMetaKey(key: string): void {
  if (typeof key !== 'string' || key.length === 0) {
    throw new WeftError('ERR_WEFT_INVALID_ARG', `meta key must be a non-empty string (got ${describe(key)})`);
  }
  if (key.startsWith(RESERVED_META_PREFIX)) {
    throw new WeftError('ERR_WEFT_INVALID_ARG', `meta key ${describe(key)} is reserved (prefix "${RESERVED_META_PREFIX}")`);
  }
}

function validateOptions(options: PartitionOptions): Required<PartitionOptions> {
  if (options === null || typeof options !== 'object') {
    throw new WeftError('ERR_WEFT_INVALID_ARG', `partition options must be an object (got ${describe(options)})`);
  }
  const { durability, mapSizeBytes = DEFAULT_MAP_SIZE, readOnly = false, structureChecked = false } = options;
  if (durability !== 'fsync' && durability !== 'process') {
    throw new WeftError('ERR_WEFT_INVALID_ARG', `options.durability must be 'fsync' or 'process' (got ${describe(durability)})`);
  }
  if (!Number.isSafeInteger(mapSizeBytes) || mapSizeBytes < 65536) {
    throw new WeftError('ERR_WEFT_INVALID_ARG', `options.mapSizeBytes must be an integer of at least 65536 (got ${describe(mapSizeBytes)})`);
  }
  if (typeof readOnly !== 'boolean') {
    throw new WeftError('ERR_WEFT_INVALID_ARG', `options.readOnly must be a boolean (got ${describe(readOnly)})`);
  }
  if (typeof structureChecked !== 'boolean') {
    throw new WeftError('ERR_WEFT_INVALID_ARG', `options.structureChecked must be a boolean (got ${describe(structureChecked)})`);
  }
  return { durability, mapSizeBytes, readOnly, structureChecked };
}

/**
 * A failed commit, saying so when the file system is full: LMDB reports a short write as EIO
 * ("Input/output error", its own comment: "short write, filesystem full?"), and lmdb-js prints the
 * real errno on stderr only. With under {@link FULL_BYTES} free on the partition's file system, an
 * EIO or ENOSPC commit failure is reported as ENOSPC with the free bytes and the directory.
 */
function commitError(path: string, cause: unknown): WeftError {
  const detail = cause instanceof Error ? cause.message : String(cause);
  let free: number | undefined;
  try {
    const st = statfsSync(path);
    free = st.bavail * st.bsize;
  } catch {
    free = undefined;
  }
  const full = /ENOSPC|No space left/i.test(detail) || (/Input\/output error|EIO/.test(detail) && free !== undefined && free < FULL_BYTES);
  if (!full) return dataDirError(path, 'commit failed', cause);
  return new WeftError('ERR_WEFT_DATA_DIR', `partition ${describe(path)}: commit failed: ENOSPC: no space left on the file system of ${describe(path)} (${free ?? 'unknown'} bytes free; LMDB said: ${detail}). Nothing acknowledged is lost: free some space and start again`, { cause });
}

/** Free bytes under which a failed write is taken to be a full file system (see commitError). */
const FULL_BYTES = 16 * 1024 * 1024;

function dataDirError(path: string, what: string, cause: unknown): WeftError {
  if (cause instanceof WeftError && cause.code === 'ERR_WEFT_DATA_DIR') return cause;
  const detail = cause instanceof Error ? cause.message : String(cause);
  return new WeftError('ERR_WEFT_DATA_DIR', `partition ${describe(path)}: ${what}: ${detail}`, { cause });
}
