/**
 * The data directory: its format version, its lock, the coordinator's metadata store, and where
 * each shard's partition lives.
 *
 *   <dataDir>/
 *     LOCK                     pid of the engine using the dir (a second engine is refused)
 *     meta/                    LMDB: format, keyGroups, shards, layout, committedEpoch, checkpoint history,
 *                              committed egress records not yet acknowledged (src/egress.ts)
 *     partitions-<layout>/shard-<i>/   one LMDB environment per shard
 *
 * Changing the shard count writes a new `partitions-<layout+1>` generation and switches `layout`
 * in meta in one durable write (see repartition.ts), so a crash mid-way leaves the old generation
 * in force and the new one as garbage to remove.
 */
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, readdirSync, unlinkSync, writeSync, constants } from 'node:fs';
import { join } from 'node:path';
import { WeftError, describe } from '../errors.js';
import { Partition, type WriteOps } from '../state/partition.js';

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
const openDirs = new Set<string>();

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class DataDir {
  readonly path: string;
  readonly meta: Partition;
  #lockPath: string;
  #released = false;
  info: DataDirMeta;

  private constructor(path: string, meta: Partition, lockPath: string, info: DataDirMeta) {
    this.path = path;
    this.meta = meta;
    this.#lockPath = lockPath;
    this.info = info;
  }

  /**
   * Opens (creating if missing) and locks a data dir. `keyGroups` and `shards` are what this start
   * asks for; a dir that already exists keeps its key groups, and reports its shard count in
   * `info.shards` (the caller repartitions when it differs).
   */
  static async open(path: string, keyGroups: number, shards: number, durability: 'fsync' | 'process'): Promise<DataDir> {
    try {
      mkdirSync(path, { recursive: true, mode: 0o700 });
    } catch (cause) {
      throw new WeftError('ERR_WEFT_DATA_DIR', `cannot create data dir ${describe(path)}: ${(cause as Error).message}`, { cause });
    }
    const lockPath = join(path, 'LOCK');
    DataDir.#lock(path, lockPath);
    let meta: Partition | undefined;
    try {
      meta = await Partition.open(join(path, 'meta'), { durability });
      const format = meta.getMeta('format') as number | undefined;
      let info: DataDirMeta;
      if (format === undefined) {
        info = { format: FORMAT_VERSION, keyGroups, shards, layout: 1, committedEpoch: 0 };
        await meta.write((ops) => {
          for (const [k, v] of Object.entries(info)) ops.putMeta(k, v);
        });
      } else {
        if (format !== FORMAT_VERSION) {
          throw new WeftError('ERR_WEFT_DATA_DIR', `data dir ${describe(path)} has format version ${describe(format)}; this weft reads version ${FORMAT_VERSION} only`);
        }
        info = {
          format,
          keyGroups: meta.getMeta('keyGroups') as number,
          shards: meta.getMeta('shards') as number,
          layout: meta.getMeta('layout') as number,
          committedEpoch: (meta.getMeta('committedEpoch') as number | undefined) ?? 0,
        };
      }
      const dir = new DataDir(path, meta, lockPath, info);
      dir.#removeStaleLayouts();
      return dir;
    } catch (err) {
      if (meta !== undefined) await meta.close().catch(() => {});
      DataDir.#unlock(path, lockPath);
      if (err instanceof WeftError) throw err;
      throw new WeftError('ERR_WEFT_DATA_DIR', `cannot open data dir ${describe(path)}: ${(err as Error).message}`, { cause: err });
    }
  }

  static #lock(path: string, lockPath: string): void {
    if (openDirs.has(path)) {
      throw new WeftError('ERR_WEFT_DATA_DIR', `data dir ${describe(path)} is already in use by another engine in this process`);
    }
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(lockPath, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, 0o600);
        writeSync(fd, String(process.pid));
        closeSync(fd);
        openDirs.add(path);
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
          throw new WeftError('ERR_WEFT_DATA_DIR', `cannot lock data dir ${describe(path)}: ${(err as Error).message}`, { cause: err });
        }
        const pid = Number(readFileSync(lockPath, 'utf8').trim());
        if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) {
          throw new WeftError('ERR_WEFT_DATA_DIR', `data dir ${describe(path)} is locked by process ${pid} (another weft engine is using it)`);
        }
        // A lock left by a process that died (or by this process's earlier, crashed engine).
        unlinkSync(lockPath);
      }
    }
    throw new WeftError('ERR_WEFT_DATA_DIR', `cannot lock data dir ${describe(path)}`);
  }

  static #unlock(path: string, lockPath: string): void {
    openDirs.delete(path);
    try {
      unlinkSync(lockPath);
    } catch {
      /* already gone */
    }
  }

  partitionsDir(layout = this.info.layout): string {
    return join(this.path, `partitions-${layout}`);
  }

  partitionPath(shard: number, layout = this.info.layout): string {
    return join(this.partitionsDir(layout), `shard-${shard}`);
  }

  #removeStaleLayouts(): void {
    for (const name of readdirSync(this.path)) {
      const m = /^partitions-(\d+)$/.exec(name);
      if (m !== null && Number(m[1]) !== this.info.layout) rmSync(join(this.path, name), { recursive: true, force: true });
    }
  }

  /**
   * Records a committed epoch durably (per the durability mode) with its figures. `also` adds ops
   * to the same transaction: the epoch's egress records (src/egress.ts), durable exactly when the
   * epoch is.
   */
  async commit(info: CheckpointInfo, also?: (ops: WriteOps) => void): Promise<void> {
    // The history is kept in memory (this engine is its only writer): read once, not per commit.
    this.#history ??= (this.meta.getMeta('checkpoints') as CheckpointInfo[] | undefined) ?? [];
    const history = this.#history.slice(-(HISTORY - 1));
    history.push(info);
    await this.meta.write((ops) => {
      ops.putMeta('committedEpoch', info.epoch);
      ops.putMeta('checkpoints', history);
      also?.(ops);
    });
    this.#history = history;
    this.info = { ...this.info, committedEpoch: info.epoch };
  }

  #history: CheckpointInfo[] | undefined;

  /** The latest committed checkpoint's figures, if any. */
  lastCheckpoint(): CheckpointInfo | undefined {
    this.#history ??= (this.meta.getMeta('checkpoints') as CheckpointInfo[] | undefined) ?? [];
    return this.#history.at(-1);
  }

  /** Switches to a new partition layout (after repartitioning) in one durable write. */
  async switchLayout(layout: number, shards: number): Promise<void> {
    await this.meta.write((ops) => {
      ops.putMeta('layout', layout);
      ops.putMeta('shards', shards);
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
      DataDir.#unlock(this.path, this.#lockPath);
    }
  }
}
