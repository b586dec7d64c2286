/**
 * The data directory: its format version, its lock, the coordinator's metadata store, and where
 * each shard's partition lives.
 *
 *   <dataDir>/
 *     LOCK                     flock'd by the engine using the dir for its whole life (dir-lock.ts)
 *     meta/                    LMDB: format, keyGroups, shards, layout, committedEpoch, dirId,
 *                              createdLayout, checkpoint history, committed egress records not
 *                              yet acknowledged (src/host/egress.ts)
 *     partitions-<layout>/shard-<i>/   one LMDB environment per shard; records its identity
 *
 * Changing the shard count writes a new `partitions-<layout+1>` generation and switches `layout`
 * in meta in one durable write (see repartition.ts), so a crash mid-way leaves the old generation
 * in force and the new one as garbage to remove.
 *
 * ## A damaged dir is refused, never half-loaded
 * Meta records what must exist: the layout whose partitions were created (`createdLayout`), its
 * shard count and key groups, and the dir's random id. Each partition records its identity (dir
 * id, layout, shard, shards, key groups) and its epochs. At every start, BEFORE any LMDB file is
 * mapped for writing and before anything is deleted, {@link verifyLayout} checks each expected
 * partition: present, files readable and writable and consistent with LMDB's own meta pages
 * (partition.ts `lmdbFileProblem`; a short file would be SIGBUS), then (opened read-only) identity
 * and last epoch against meta (see {@link partitionEpochProblem}). Anything missing, truncated or
 * disagreeing is ERR_WEFT_DATA_DIR naming the file and what is wrong, and nothing is changed.
 * Only a dir that verified has its other layouts removed. `weft inspect --verify` runs the same.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { WeftError, describe } from '../core/errors.js';
import { Partition, lmdbFileProblem, lmdbTreeProblem, packMeta, type WriteOps } from '../state/partition.js';
import { DirLock } from './dir-lock.js';
import type { Durability } from '../contract/options.js';
import { META_FOLDED_EPOCH } from '../state/checkpoint-format.js';

/** Bumped when the on-disk format changes incompatibly; a dir of another version is refused. */
export const FORMAT_VERSION = 1;

export interface CheckpointInfo {
  epoch: number;
  /** ms since epoch, when committed */
  at: number;
  /** bytes written by all shards for this epoch */
  bytes: number;
  /** changed instances written */
  states: number;
  /** ms from trigger to commit */
  ms: number;
}

export interface DataDirMeta {
  format: number;
  keyGroups: number;
  shards: number;
  layout: number;
  committedEpoch: number;
}

const HISTORY = 100;
/** Key groups of a new data dir when `options.keyGroups` is not given. */
export const DEFAULT_KEY_GROUPS = 128;
/** Partition metadata key of the partition's identity ({@link PartitionIdentity}). */
export const META_IDENTITY = 'identity';

/**
 * What a partition records about itself when it is created, and what meta expects of it: which
 * data dir (a random id made at the dir's first start), which layout generation, which shard of
 * how many, with how many key groups.
 */
export interface PartitionIdentity {
  dir: string;
  layout: number;
  shard: number;
  shards: number;
  keyGroups: number;
}

/** What this start asks of the data dir (from the options). */
export interface DataDirRequest {
  /** `options.keyGroups`, or undefined when not given (the dir's, or the default for a new dir). */
  keyGroups: number | undefined;
  shards: number;
  /** `shards` came from 'auto' or `{ perCore }`: capped at the key groups instead of refused. */
  shardsAuto: boolean;
  durability: Durability;
}

function damaged(path: string, what: string): WeftError {
  return new WeftError('ERR_WEFT_DATA_DIR', `data dir ${describe(path)} is damaged: ${what}; not starting (nothing was changed or deleted)`);
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0;
}

/** The `partitions-<n>` generations present in `path`. */
function layoutsIn(path: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync(path)) {
    const m = /^partitions-(\d+)$/.exec(name);
    if (m !== null) out.push(Number(m[1]));
  }
  return out.sort((a, b) => a - b);
}

/** Reads and type-checks meta's record of the dir. Throws ERR_WEFT_DATA_DIR when it does not verify. */
export function readDirMeta(path: string, meta: Partition): DataDirMeta & { dirId: string | undefined; createdLayout: number | undefined } {
  const format = meta.getMeta('format');
  if (format !== FORMAT_VERSION) {
    throw new WeftError('ERR_WEFT_DATA_DIR', `data dir ${describe(path)} has format version ${describe(format)}; this weft reads version ${FORMAT_VERSION} only`);
  }
  const keyGroups = meta.getMeta('keyGroups');
  const shards = meta.getMeta('shards');
  const layout = meta.getMeta('layout');
  const committedEpoch = meta.getMeta('committedEpoch') ?? 0;
  const dirId = meta.getMeta('dirId');
  const createdLayout = meta.getMeta('createdLayout');
  if (!isCount(keyGroups) || keyGroups < 1) throw damaged(path, `meta's keyGroups is ${describe(keyGroups)}`);
  if (!isCount(shards) || shards < 1 || shards > keyGroups) throw damaged(path, `meta's shards is ${describe(shards)} (key groups: ${keyGroups})`);
  if (!isCount(layout) || layout < 1) throw damaged(path, `meta's layout is ${describe(layout)}`);
  if (!isCount(committedEpoch)) throw damaged(path, `meta's committedEpoch is ${describe(committedEpoch)}`);
  if (dirId !== undefined && typeof dirId !== 'string') throw damaged(path, `meta's dirId is ${describe(dirId)}`);
  if (createdLayout !== undefined && !isCount(createdLayout)) throw damaged(path, `meta's createdLayout is ${describe(createdLayout)}`);
  return { format, keyGroups, shards, layout, committedEpoch, dirId, createdLayout };
}

/**
 * The one fact a partition can be checked against meta with: the last epoch it holds. Every shard
 * writes PENDING(e) before epoch e commits, and folding PENDING(e) into the base records e as the
 * folded epoch in the same transaction; so once meta has committed epoch C, each partition of the
 * layout holds PENDING(C) or has folded C: its newest epoch at or below C is exactly C. Epochs
 * above C (written, never committed) are allowed: recovery drops them.
 */
export function partitionEpochProblem(p: Partition, committedEpoch: number): string | undefined {
  const folded = p.getMeta(META_FOLDED_EPOCH) ?? 0;
  if (!isCount(folded)) return `its folded epoch is ${describe(folded)}`;
  if (folded > committedEpoch) return `it has folded epoch ${folded}, but meta's last committed epoch is ${committedEpoch} (meta is older than the partition)`;
  let last = folded;
  for (const e of p.pendingEpochs()) if (e <= committedEpoch && e > last) last = e;
  if (last !== committedEpoch) return `its last checkpoint is epoch ${last}, but meta committed epoch ${committedEpoch} (the partition lost data or is older than meta)`;
  return undefined;
}

function identityProblem(found: unknown, expected: PartitionIdentity): string | undefined {
  if (typeof found !== 'object' || found === null) return `it has no identity record (${describe(found)})`;
  const f = found as Record<string, unknown>;
  const diffs: string[] = [];
  for (const k of ['dir', 'layout', 'shard', 'shards', 'keyGroups'] as const) {
    if (f[k] !== expected[k]) diffs.push(`${k} ${describe(f[k])} (meta expects ${describe(expected[k])})`);
  }
  return diffs.length === 0 ? undefined : `it records ${diffs.join(', ')}`;
}

/**
 * Verifies the partitions of meta's current layout, before any of them is opened for writing:
 * files first (exist, open for reading and writing, sizes agree with LMDB's meta pages; see
 * {@link lmdbFileProblem}), then, opened read-only, each one's identity and last epoch against
 * meta. Throws ERR_WEFT_DATA_DIR naming the file and what is wrong. Returns the partition count
 * checked. `stampable`: partitions of a layout that meta does not yet record as created (a new
 * dir, or one from a weft before identity records) may be missing (when nothing was committed)
 * and get no identity check; the caller then stamps them.
 */
export async function verifyLayout(path: string, info: DataDirMeta & { dirId: string | undefined; createdLayout: number | undefined }): Promise<void> {
  const { layout, shards, keyGroups, committedEpoch, dirId, createdLayout } = info;
  const created = createdLayout !== undefined;
  if (created && createdLayout !== layout) throw damaged(path, `meta's layout is ${layout}, but the partitions it created are layout ${createdLayout}`);
  if (created && dirId === undefined) throw damaged(path, 'meta has no dirId');
  const layoutDir = join(path, `partitions-${layout}`);
  // Nothing committed and nothing recorded: a dir whose first start did not finish creating its
  // partitions. Missing ones are created then.
  const required = created || committedEpoch > 0;
  let entries: string[] = [];
  try {
    entries = readdirSync(layoutDir);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (required) throw damaged(path, `${describe(layoutDir)}, the partitions of meta's layout ${layout} (${shards} shards, committed epoch ${committedEpoch}), ${code === 'ENOENT' ? 'is missing' : `cannot be read (${(cause as Error).message})`}`);
  }
  for (const name of entries) {
    const m = /^shard-(\d+)$/.exec(name);
    if (m !== null && Number(m[1]) >= shards) throw damaged(path, `${describe(join(layoutDir, name))} exists, but meta says layout ${layout} has ${shards} shards`);
  }
  for (let s = 0; s < shards; s++) {
    const dir = join(layoutDir, `shard-${s}`);
    const exists = entries.includes(`shard-${s}`);
    if (!exists) {
      if (required) throw damaged(path, `partition ${describe(dir)} is missing (meta's layout ${layout} has ${shards} shards, committed epoch ${committedEpoch})`);
      continue;
    }
    const problem = lmdbFileProblem(dir, { required, writable: true }) ?? lmdbTreeProblem(dir);
    if (problem !== undefined) throw damaged(path, problem);
    if (!required && isEmptyEnv(dir)) continue;
    // The structure was just checked: the shard workers (and this read-only open) skip the walk.
    const p = await Partition.open(dir, { durability: 'process', readOnly: true, structureChecked: true }).catch((err: unknown) => {
      throw damaged(path, err instanceof WeftError && err.code === 'ERR_WEFT_DATA_DIR' ? err.message : `partition ${describe(dir)} cannot be opened: ${(err as Error).message}`);
    });
    try {
      const id = created ? identityProblem(p.getMeta(META_IDENTITY), { dir: dirId as string, layout, shard: s, shards, keyGroups }) : undefined;
      if (id !== undefined) throw damaged(path, `partition ${describe(dir)} does not belong here: ${id}`);
      const epoch = partitionEpochProblem(p, committedEpoch);
      if (epoch !== undefined) throw damaged(path, `partition ${describe(dir)}: ${epoch}`);
    } catch (err) {
      if (err instanceof WeftError) throw err;
      throw damaged(path, `partition ${describe(dir)} cannot be read: ${(err as Error).message}`);
    } finally {
      await p.close();
    }
  }
}

function isEmptyEnv(dir: string): boolean {
  try {
    return statSync(join(dir, 'data.mdb')).size === 0;
  } catch {
    return true;
  }
}

export class DataDir {
  readonly path: string;
  readonly meta: Partition;
  readonly #lock: DirLock;
  #released = false;
  info: DataDirMeta;
  /** The data dir's id (meta `dirId`), recorded in each of its partitions. */
  readonly dirId: string;
  /** How many shards this start runs with (the request, capped at the key groups for 'auto'). */
  readonly shards: number;

  private constructor(path: string, meta: Partition, lock: DirLock, info: DataDirMeta, dirId: string, shards: number) {
    this.path = path;
    this.meta = meta;
    this.#lock = lock;
    this.info = info;
    this.dirId = dirId;
    this.shards = shards;
  }

  /**
   * Opens (creating if missing), locks and verifies a data dir. A dir that exists keeps its key
   * groups (a different `request.keyGroups` is refused) and reports its shard count in
   * `info.shards` (the caller repartitions when it differs from `shards`). Nothing is deleted
   * before the current layout verified; then older or unfinished layouts are removed.
   */
  static async open(path: string, request: DataDirRequest): Promise<DataDir> {
    try {
      mkdirSync(path, { recursive: true, mode: 0o700 });
    } catch (cause) {
      throw new WeftError('ERR_WEFT_DATA_DIR', `cannot create data dir ${describe(path)}: ${(cause as Error).message}`, { cause });
    }
    const lock = DirLock.acquire(path);
    let meta: Partition | undefined;
    try {
      const layouts = layoutsIn(path);
      const metaPath = join(path, 'meta');
      if (layouts.length > 0 && isEmptyEnv(metaPath)) {
        throw damaged(path, `${describe(join(metaPath, 'data.mdb'))} is missing or empty, but partitions-${layouts.join(', partitions-')} exist: the committed metadata is gone`);
      }
      if (!isEmptyEnv(metaPath)) {
        const problem = lmdbFileProblem(metaPath, { required: true, writable: true }) ?? lmdbTreeProblem(metaPath);
        if (problem !== undefined) throw damaged(path, problem);
      }
      meta = await Partition.open(metaPath, { durability: request.durability });
      let info: DataDirMeta & { dirId: string | undefined; createdLayout: number | undefined };
      if (meta.getMeta('format') === undefined) {
        if (layouts.length > 0) throw damaged(path, `meta has no format version, but partitions-${layouts.join(', partitions-')} exist`);
        const keyGroups = request.keyGroups ?? DEFAULT_KEY_GROUPS;
        const shards = effectiveShards(request, keyGroups, request.keyGroups === undefined ? `${keyGroups}, the default for a new data dir` : `${keyGroups}`);
        const fresh = { format: FORMAT_VERSION, keyGroups, shards, layout: 1, committedEpoch: 0, dirId: randomBytes(8).toString('hex') };
        await meta.write((ops) => {
          for (const [k, v] of Object.entries(fresh)) ops.putMeta(k, v);
        });
        info = { ...fresh, createdLayout: undefined };
      } else {
        info = readDirMeta(path, meta);
        if (request.keyGroups !== undefined && request.keyGroups !== info.keyGroups) {
          throw new WeftError('ERR_WEFT_INVALID_OPTION', `options.keyGroups is ${request.keyGroups}, but data dir ${describe(path)} was created with ${info.keyGroups} key groups, which cannot change; omit keyGroups or use another data dir`);
        }
        effectiveShards(request, info.keyGroups, `${info.keyGroups}, the data dir's`);
      }
      await verifyLayout(path, info);
      const dirId = info.dirId ?? randomBytes(8).toString('hex');
      if (info.createdLayout !== info.layout) {
        // Partitions meta does not yet record (a new dir, or one from a weft before identity
        // records): they verified (or do not exist yet and nothing was committed); stamp them.
        for (let s = 0; s < info.shards; s++) {
          await stampPartition(join(path, `partitions-${info.layout}`, `shard-${s}`), { dir: dirId, layout: info.layout, shard: s, shards: info.shards, keyGroups: info.keyGroups }, request.durability);
        }
        await meta.write((ops) => {
          ops.putMeta('dirId', dirId);
          ops.putMeta('createdLayout', info.layout);
        });
      }
      const { format, keyGroups, shards, layout, committedEpoch } = info;
      const dir = new DataDir(path, meta, lock, { format, keyGroups, shards, layout, committedEpoch }, dirId, effectiveShards(request, keyGroups, ''));
      dir.#removeStaleLayouts();
      return dir;
    } catch (err) {
      if (meta !== undefined) await meta.close().catch(() => {});
      lock.release();
      if (err instanceof WeftError) throw err;
      throw new WeftError('ERR_WEFT_DATA_DIR', `cannot open data dir ${describe(path)}: ${(err as Error).message}`, { cause: err });
    }
  }

  /**
   * Re-checks the current layout's files (not their contents) before the shards map them again
   * (a recovery inside the process): damage found since the start is an error, not a signal.
   */
  checkFiles(): void {
    for (let s = 0; s < this.info.shards; s++) {
      const problem = lmdbFileProblem(this.partitionPath(s), { required: true, writable: true }) ?? lmdbTreeProblem(this.partitionPath(s));
      if (problem !== undefined) throw damaged(this.path, problem);
    }
  }

  /** The identity a partition of this dir records (see {@link PartitionIdentity}). */
  identity(shard: number, layout: number, shards: number): PartitionIdentity {
    return { dir: this.dirId, layout, shard, shards, keyGroups: this.info.keyGroups };
  }

  partitionsDir(layout = this.info.layout): string {
    return join(this.path, `partitions-${layout}`);
  }

  partitionPath(shard: number, layout = this.info.layout): string {
    return join(this.partitionsDir(layout), `shard-${shard}`);
  }

  /** Removes layouts other than the current one (called once the current one verified). */
  #removeStaleLayouts(): void {
    for (const layout of layoutsIn(this.path)) if (layout !== this.info.layout) rmSync(this.partitionsDir(layout), { recursive: true, force: true });
  }

  /**
   * Records a committed epoch durably (per the durability mode) with its figures. `also` adds ops
   * to the same transaction: the epoch's egress records (src/host/egress.ts), durable exactly when the
   * epoch is.
   */
  async commit(info: CheckpointInfo, also?: (ops: WriteOps) => void): Promise<void> {
    // The history is kept in memory (this engine is its only writer): read once, not per commit.
    // Each entry is kept packed too, and the list is written from those: packing all 100 entries
    // again cost main ~20 µs more per commit (20 commits a second at the default interval).
    const old = this.#loadHistory();
    const history = old.slice(-(HISTORY - 1));
    const packed = (this.#historyPacked as Uint8Array[]).slice(-(HISTORY - 1));
    history.push(info);
    packed.push(packMeta(info));
    await this.meta.write((ops) => {
      ops.putMeta('committedEpoch', info.epoch);
      ops.putMetaList('checkpoints', packed);
      also?.(ops);
    });
    this.#history = history;
    this.#historyPacked = packed;
    this.info = { ...this.info, committedEpoch: info.epoch };
  }

  #loadHistory(): CheckpointInfo[] {
    if (this.#history === undefined) {
      this.#history = (this.meta.getMeta('checkpoints') as CheckpointInfo[] | undefined) ?? [];
      this.#historyPacked = this.#history.map(packMeta);
    }
    return this.#history;
  }

  #history: CheckpointInfo[] | undefined;
  /** `#history`'s entries, each packed (see commit). */
  #historyPacked: Uint8Array[] | undefined;

  /** The latest committed checkpoint's figures, if any. */
  lastCheckpoint(): CheckpointInfo | undefined {
    return this.#loadHistory().at(-1);
  }

  /** Switches to a new partition layout (after repartitioning) in one durable write. */
  async switchLayout(layout: number, shards: number): Promise<void> {
    await this.meta.write((ops) => {
      ops.putMeta('layout', layout);
      ops.putMeta('shards', shards);
      ops.putMeta('createdLayout', layout);
    });
    const old = this.info.layout;
    this.info = { ...this.info, layout, shards };
    rmSync(this.partitionsDir(old), { recursive: true, force: true });
  }

  async close(): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    try {
      await this.meta.close();
    } finally {
      this.#lock.release();
    }
  }
}

/**
 * The shard count a start runs with: the requested one, which may not exceed the key groups (a
 * shard owns whole key groups). An explicit count above them is refused; 'auto' is capped.
 */
function effectiveShards(request: DataDirRequest, keyGroups: number, whose: string): number {
  if (request.shards <= keyGroups) return request.shards;
  if (request.shardsAuto) return keyGroups;
  throw new WeftError('ERR_WEFT_INVALID_OPTION', `options.shards is ${request.shards}, more than the key groups (${whose}): each shard owns at least one key group; use at most ${keyGroups} shards${whose.includes('default') ? ' or pass keyGroups' : ''}`);
}

/** Creates (or opens) a partition of a layout meta does not yet record, and records its identity. */
async function stampPartition(path: string, identity: PartitionIdentity, durability: Durability): Promise<void> {
  const p = await Partition.open(path, { durability });
  try {
    await p.write((ops) => ops.putMeta(META_IDENTITY, identity));
  } finally {
    await p.close();
  }
}

export { stampPartition };
