/**
 * The data dir's lock: an exclusive `flock(2)` on `<dataDir>/LOCK`, held on an open file
 * descriptor for the engine's whole life.
 *
 * Why flock and not a PID file: the kernel owns the lock and releases it when the descriptor is
 * closed — by `close()`, or by the process dying in any way (SIGKILL, OOM, a crash). Nothing is
 * inferred from a file's contents, so PID namespaces (two containers on one volume, both pid 1),
 * pid reuse, a stale file left by a killed engine and two engines starting at once cannot let two
 * engines in. A PID file checked with "is that pid alive" fails all four (issue 12).
 *
 * - The lock is per open file description: two engines in ONE process open the file twice and
 *   the second is refused too.
 * - The file is never deleted. Deleting it would let the next engine lock a NEW inode while an old
 *   engine still holds the old one; after locking, the inode of the descriptor is compared with
 *   the path's, in case something else replaced the file meanwhile.
 * - The holder writes `pid`, `host` and start time into the file after it has the lock, for error
 *   messages and `weft inspect` only: that text is never used to decide anything.
 * - Node has no flock: it comes from `fs-ext-extra-prebuilt` (a native addon that ships prebuilt
 *   binaries and loads them at run time, so no install script or compiler is needed). It is
 *   loaded on first use, so a platform without a binary fails with a clear ERR_WEFT_DATA_DIR.
 * - flock works on local file systems and (Linux emulates it with POSIX locks) on NFS.
 *
 * The descriptor is opened with O_CLOEXEC (libuv's default): child processes do not inherit it,
 * so a child that outlives the engine cannot keep the lock.
 */
import { closeSync, constants, fstatSync, ftruncateSync, openSync, readSync, statSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { WeftError, describe } from '../core/errors.js';

interface FsExt {
  flockSync(fd: number, flags: 'exnb' | 'un'): number;
}

let fsExt: FsExt | undefined;

function flock(fd: number, flags: 'exnb' | 'un'): void {
  if (fsExt === undefined) {
    try {
      fsExt = createRequire(import.meta.url)('fs-ext-extra-prebuilt') as FsExt;
    } catch (cause) {
      throw new WeftError('ERR_WEFT_DATA_DIR', `cannot lock data dirs on this platform (${process.platform}-${process.arch}, Node ${process.version}): the flock binding fs-ext-extra-prebuilt did not load: ${(cause as Error).message}`, { cause });
    }
  }
  fsExt.flockSync(fd, flags);
}

/** Lock files held by engines of THIS process (for the error message only). */
const heldHere = new Set<string>();

/** The holder's note in LOCK: informative only. */
export interface LockHolder {
  pid: number;
  host: string;
  since: string;
}

function readHolder(fd: number): LockHolder | undefined {
  try {
    const buf = Buffer.alloc(512);
    const n = readSync(fd, buf, 0, buf.length, 0);
    const parsed = JSON.parse(buf.subarray(0, n).toString('utf8')) as Partial<LockHolder>;
    if (typeof parsed.pid === 'number' && typeof parsed.host === 'string' && typeof parsed.since === 'string') return { pid: parsed.pid, host: parsed.host, since: parsed.since };
  } catch {
    /* empty, partly written or not ours: unknown */
  }
  return undefined;
}

/** Reads the holder note of `<dir>/LOCK` (without locking), if it has one. */
export function lockNote(dir: string): LockHolder | undefined {
  let fd: number;
  try {
    fd = openSync(join(dir, 'LOCK'), constants.O_RDONLY);
  } catch {
    return undefined;
  }
  try {
    return readHolder(fd);
  } finally {
    closeSync(fd);
  }
}

export function describeHolder(h: LockHolder | undefined): string {
  return h === undefined ? 'holder unknown' : `held by pid ${h.pid} on host ${describe(h.host)} since ${h.since}`;
}

/** An exclusive flock on `<dir>/LOCK`, released by {@link DirLock.release} or by the process ending. */
export class DirLock {
  readonly path: string;
  #fd: number | undefined;

  private constructor(path: string, fd: number) {
    this.path = path;
    this.#fd = fd;
  }

  /**
   * Takes the lock of data dir `dir` without waiting. Throws ERR_WEFT_DATA_DIR naming the dir when
   * another engine (in any process, container or namespace) holds it, with the holder's note when
   * it has one, and when the lock file cannot be opened or locked.
   */
  static acquire(dir: string): DirLock {
    const path = join(dir, 'LOCK');
    // A replaced LOCK file (see the module comment) is retried a few times; more means something
    // keeps replacing it.
    for (let attempt = 0; attempt < 3; attempt++) {
      let fd: number;
      try {
        fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
      } catch (cause) {
        throw new WeftError('ERR_WEFT_DATA_DIR', `cannot lock data dir ${describe(dir)}: cannot open its lock file ${describe(path)} for writing (${(cause as Error).message})`, { cause });
      }
      try {
        flock(fd, 'exnb');
      } catch (cause) {
        const code = (cause as NodeJS.ErrnoException).code;
        const holder = readHolder(fd);
        closeSync(fd);
        if (code === 'EAGAIN' || code === 'EWOULDBLOCK') {
          const here = heldHere.has(path) ? ' (another engine in this process)' : '';
          throw new WeftError('ERR_WEFT_DATA_DIR', `data dir ${describe(dir)} is already in use by another weft engine${here}: ${describe(path)} is locked (${describeHolder(holder)})`, { cause });
        }
        if (cause instanceof WeftError) throw cause;
        throw new WeftError('ERR_WEFT_DATA_DIR', `cannot lock data dir ${describe(dir)}: flock on ${describe(path)} failed (${code ?? 'error'}: ${(cause as Error).message})`, { cause });
      }
      let same = false;
      try {
        same = fstatSync(fd).ino === statSync(path).ino;
      } catch {
        same = false;
      }
      if (!same) {
        closeSync(fd);
        continue;
      }
      try {
        const note = Buffer.from(JSON.stringify({ pid: process.pid, host: hostname(), since: new Date().toISOString() }));
        ftruncateSync(fd, 0);
        writeSync(fd, note, 0, note.length, 0);
      } catch {
        /* the note is informative only (a full disk must not stop a start that needs no space) */
      }
      heldHere.add(path);
      return new DirLock(path, fd);
    }
    throw new WeftError('ERR_WEFT_DATA_DIR', `cannot lock data dir ${describe(dir)}: its lock file ${describe(path)} was replaced while locking it, three times`);
  }

  /** Releases the lock. The file stays (see the module comment). Idempotent. */
  release(): void {
    const fd = this.#fd;
    if (fd === undefined) return;
    this.#fd = undefined;
    heldHere.delete(this.path);
    try {
      ftruncateSync(fd, 0);
    } catch {
      /* informative only */
    }
    // Closing the descriptor releases the flock (it is the only descriptor of this open file).
    closeSync(fd);
  }
}
