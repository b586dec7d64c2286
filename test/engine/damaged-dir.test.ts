/**
 * A damaged data dir is refused, never half-loaded, never a signal (issue 12, section 2). A dir
 * with 50 accounts totalling 12750 is committed once; each case damages a copy and starts an
 * engine on it in a CHILD process (so a SIGBUS or SIGSEGV would show as the child's signal, not
 * end the test run): the start must be refused with ERR_WEFT_DATA_DIR naming the file and what is
 * wrong, and nothing in the dir may be deleted or changed by the refused start.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, openSync, readdirSync, rmSync, statSync, symlinkSync, truncateSync, writeSync, closeSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Weft, WeftError } from '../../src/index.js';
import { Partition } from '../../src/state/partition.js';
import { fixture, removeDir, tempDir } from './helpers.js';
import { killSpawned, startEngineChild } from '../helpers/engine-child.js';

const ACCOUNTS = 50;
const TOTAL = 12750; // 10 + 20 + ... + 500
const SHARDS = 4;
const base = tempDir('weft-damage-base-');
const dirs: string[] = [];

beforeAll(async () => {
  const weft = await Weft.start({ module: fixture('bank'), dataDir: base, shards: SHARDS, durability: 'process' });
  await Promise.all(Array.from({ length: ACCOUNTS }, (_, i) => weft.send({ type: 'bank/account', id: `acct-${i}` }, { op: 'deposit', amount: 10 * (i + 1) })));
  await weft.close();
}, 60_000);
afterAll(() => removeDir(base));
afterEach(() => {
  killSpawned();
  for (const d of dirs.splice(0)) removeDir(d);
});

/** A fresh copy of the committed dir. */
function copy(): string {
  const d = tempDir('weft-damage-');
  dirs.push(d);
  cpSync(base, d, { recursive: true });
  return d;
}

const part = (dir: string, shard: number): string => join(dir, 'partitions-1', `shard-${shard}`);

/** Every path in the dir with its size, except LOCK (whose note a start rewrites). */
function listing(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      const st = statSync(p, { throwIfNoEntry: false });
      if (name === 'LOCK' && d === dir) continue;
      out.push(`${relative(dir, p)}${st?.isFile() === true ? ` ${st.size}` : ''}`);
      if (st?.isDirectory() === true) walk(p);
    }
  };
  walk(dir);
  return out.sort();
}

async function setMeta(dir: string, key: string, value: unknown): Promise<void> {
  const meta = await Partition.open(join(dir, 'meta'), { durability: 'process' });
  await meta.write((ops) => ops.putMeta(key, value));
  await meta.close();
}

/** Starts an engine on `dir` in a child: it must be refused with ERR_WEFT_DATA_DIR, the dir unchanged. */
async function expectRefused(dir: string, message: RegExp, args: string[] = ['--shards', String(SHARDS)], prefix?: string[]): Promise<string> {
  const before = listing(dir);
  const { c, result } = await startEngineChild(dir, { args, ...(prefix === undefined ? {} : { prefix }) });
  const exit = await c.exited;
  expect(exit.signal, `the child died by a signal: ${JSON.stringify(result)}`).toBe(null);
  expect(result).toMatchObject({ event: 'refused', code: 'ERR_WEFT_DATA_DIR' });
  expect(result.message as string).toMatch(message);
  expect(listing(dir)).toEqual(before);
  return result.message as string;
}

/** Starts an engine on `dir` in a child; it must start and hold all 50 accounts. */
async function expectIntact(dir: string): Promise<void> {
  const { c, result } = await startEngineChild(dir, { args: ['--shards', String(SHARDS)] });
  expect(result.event, JSON.stringify(result)).toBe('started');
  c.send(`total ${ACCOUNTS}`);
  expect(await c.next('total')).toMatchObject({ total: TOTAL, read: ACCOUNTS });
  c.send('close');
  await c.next('closed');
}

describe('a damaged data dir is refused with ERR_WEFT_DATA_DIR, nothing deleted', () => {
  it('starts intact when undamaged (the baseline)', async () => {
    await expectIntact(copy());
  });

  it("one shard's data.mdb truncated to 0", async () => {
    const dir = copy();
    truncateSync(join(part(dir, 1), 'data.mdb'), 0);
    await expectRefused(dir, /partitions-1\/shard-1\/data\.mdb" is empty \(0 bytes\): its data is gone/);
  });

  it("one shard's data.mdb cut to half", async () => {
    const dir = copy();
    const file = join(part(dir, 2), 'data.mdb');
    truncateSync(file, Math.floor(statSync(file).size / 2));
    await expectRefused(dir, /shard-2\/data\.mdb" is truncated: \d+ bytes, but (tree|overflow) page \d+ \(in use, of 4096 bytes\) lies past its end/);
  });

  it('one partition folder deleted', async () => {
    const dir = copy();
    rmSync(part(dir, 3), { recursive: true });
    await expectRefused(dir, /partition ".*partitions-1\/shard-3" is missing \(meta's layout 1 has 4 shards, committed epoch \d+\)/);
  });

  it('all partitions deleted', async () => {
    const dir = copy();
    rmSync(join(dir, 'partitions-1'), { recursive: true });
    await expectRefused(dir, /partitions-1", the partitions of meta's layout 1 \(4 shards, committed epoch \d+\), is missing/);
  });

  it('meta layout changed: refused, and the partitions are NOT deleted', async () => {
    const dir = copy();
    await setMeta(dir, 'layout', 2);
    await expectRefused(dir, /meta's layout is 2, but the partitions it created are layout 1/);
    expect(existsSync(join(part(dir, 0), 'data.mdb'))).toBe(true);
    // Undo the damage: everything is still there.
    await setMeta(dir, 'layout', 1);
    await expectIntact(dir);
  });

  it('meta shards changed (4 → 2, 4 → 8)', async () => {
    const dir = copy();
    await setMeta(dir, 'shards', 2);
    await expectRefused(dir, /partitions-1\/shard-2" exists, but meta says layout 1 has 2 shards/);
    await setMeta(dir, 'shards', 8);
    await expectRefused(dir, /shard-0" does not belong here: it records shards 4 \(meta expects 8\)/);
    await setMeta(dir, 'shards', 4);
    await expectIntact(dir);
  });

  it('meta keyGroups changed (128 → 64)', async () => {
    const dir = copy();
    await setMeta(dir, 'keyGroups', 64);
    await expectRefused(dir, /shard-0" does not belong here: it records keyGroups 128 \(meta expects 64\)/);
  });

  it("meta's committed epoch ahead of a partition (the partition lost its last checkpoint)", async () => {
    const dir = copy();
    const meta = await Partition.open(join(dir, 'meta'), { durability: 'process' });
    const committed = meta.getMeta('committedEpoch') as number;
    await meta.close();
    await setMeta(dir, 'committedEpoch', committed + 3);
    await expectRefused(dir, new RegExp(`its last checkpoint is epoch ${committed}, but meta committed epoch ${committed + 3}`));
  });

  it("meta's data.mdb emptied while partitions exist", async () => {
    const dir = copy();
    truncateSync(join(dir, 'meta', 'data.mdb'), 0);
    await expectRefused(dir, /meta\/data\.mdb" is missing or empty, but partitions-1 exist: the committed metadata is gone/);
  });

  it("every page of a shard's data.mdb overwritten: refused, not SIGBUS/SIGSEGV", async () => {
    const dir = copy();
    const file = join(part(dir, 1), 'data.mdb');
    const size = statSync(file).size;
    const fd = openSync(file, 'r+');
    let seed = 12345;
    const page = Buffer.alloc(4096);
    for (let off = 2 * 4096; off < size; off += 4096) {
      for (let i = 0; i < page.length; i++) page[i] = (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
      writeSync(fd, page, 0, page.length, off);
    }
    closeSync(fd);
    await expectRefused(dir, /shard-1\/data\.mdb": (page \d+ is damaged|the \S+ tree root)/);
  });

  it('random pages overwritten: refused when they are in use, intact when they were free pages; never a signal', async () => {
    let seed = 777;
    const rand = (n: number): number => (seed = (seed * 1103515245 + 12345) >>> 0) % n;
    let refused = 0;
    for (let trial = 0; trial < 6; trial++) {
      const dir = copy();
      const file = join(part(dir, trial % SHARDS), 'data.mdb');
      const pages = statSync(file).size / 4096;
      const fd = openSync(file, 'r+');
      const page = Buffer.alloc(4096);
      for (let k = 0; k < 3; k++) {
        for (let i = 0; i < page.length; i++) page[i] = rand(256);
        writeSync(fd, page, 0, page.length, (2 + rand(pages - 2)) * 4096);
      }
      closeSync(fd);
      const { c, result } = await startEngineChild(dir, { args: ['--shards', String(SHARDS)] });
      if (result.event === 'refused') {
        refused++;
        expect(result).toMatchObject({ code: 'ERR_WEFT_DATA_DIR' });
        expect(result.message as string).toMatch(/data\.mdb": page \d+ is damaged/);
        expect((await c.exited).signal).toBe(null);
      } else {
        // Only free pages were hit: every account is there.
        expect(result.event).toBe('started');
        c.send(`total ${ACCOUNTS}`);
        expect(await c.next('total')).toMatchObject({ total: TOTAL, read: ACCOUNTS });
        c.send('close');
        await c.next('closed');
        expect((await c.exited).signal).toBe(null);
      }
    }
    expect(refused).toBeGreaterThan(0);
  }, 60_000);

  it('lock.mdb a directory, or a dangling symbolic link: refused, not SIGSEGV', async () => {
    const dir = copy();
    rmSync(join(part(dir, 1), 'lock.mdb'));
    mkdirSync(join(part(dir, 1), 'lock.mdb'));
    await expectRefused(dir, /shard-1\/lock\.mdb" is not a regular file/);
    const dir2 = copy();
    rmSync(join(part(dir2, 2), 'lock.mdb'));
    symlinkSync(join(dir2, 'nowhere'), join(part(dir2, 2), 'lock.mdb'));
    await expectRefused(dir2, /shard-2\/lock\.mdb" is a dangling symbolic link/);
  });

  const asNobody = process.getuid?.() === 0 && spawnSync('setpriv', ['--version']).status === 0;
  it.skipIf(!asNobody)(`lock.mdb not openable by the engine's user (engine run as nobody): refused, not SIGSEGV${asNobody ? '' : ' (skipped: needs root and setpriv to run the engine as another user)'}`, async () => {
    const dir = copy();
    // The engine's user owns the dir, all but one shard's lock.mdb (root's, mode 0600).
    spawnSync('chown', ['-R', '65534:65534', dir]);
    const lock = join(part(dir, 1), 'lock.mdb');
    spawnSync('chown', ['0:0', lock]);
    chmodSync(lock, 0o600);
    await expectRefused(dir, /shard-1\/lock\.mdb" cannot be opened for reading and writing \(EACCES/, ['--shards', String(SHARDS)], ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups']);
  });

  it('a dir from a weft before identity records (no dirId, createdLayout or partition identity) still starts, with everything', async () => {
    const dir = copy();
    const meta = await Partition.open(join(dir, 'meta'), { durability: 'process' });
    await meta.write((ops) => {
      ops.deleteMeta('dirId');
      ops.deleteMeta('createdLayout');
    });
    await meta.close();
    for (let s = 0; s < SHARDS; s++) {
      const p = await Partition.open(part(dir, s), { durability: 'process' });
      await p.write((ops) => ops.deleteMeta('identity'));
      await p.close();
    }
    await expectIntact(dir);
    // It is now recorded: a deleted partition is refused from here on.
    rmSync(part(dir, 0), { recursive: true });
    await expectRefused(dir, /shard-0" is missing/);
  });
});

describe('keyGroups and shards options against the data dir', () => {
  it('refuses a keyGroups that differs from the data dir, and shards above the key groups', async () => {
    const dir = copy();
    const err = await Weft.start({ module: fixture('bank'), dataDir: dir, shards: SHARDS, keyGroups: 64, durability: 'process' }).catch((e: unknown) => e);
    expect((err as WeftError).code).toBe('ERR_WEFT_INVALID_OPTION');
    expect((err as WeftError).message).toBe(`options.keyGroups is 64, but data dir "${dir}" was created with 128 key groups, which cannot change; omit keyGroups or use another data dir`);
    const fresh = (): string => {
      const d = tempDir();
      dirs.push(d);
      return d;
    };
    const many = await Weft.start({ module: fixture('bank'), dataDir: fresh(), shards: 200, durability: 'process' }).catch((e: unknown) => e);
    expect((many as WeftError).code).toBe('ERR_WEFT_INVALID_OPTION');
    expect((many as WeftError).message).toBe('options.shards is 200, more than the key groups (128, the default for a new data dir): each shard owns at least one key group; use at most 128 shards or pass keyGroups');
    const both = await Weft.start({ module: fixture('bank'), dataDir: fresh(), shards: 5, keyGroups: 4, durability: 'process' }).catch((e: unknown) => e);
    expect((both as WeftError).code).toBe('ERR_WEFT_INVALID_OPTION');
    expect((both as WeftError).message).toBe('options.shards is 5, more than options.keyGroups (4): each shard owns at least one key group');
    // The same keyGroups as the dir's is fine, and so is none.
    const ok = await Weft.start({ module: fixture('bank'), dataDir: dir, shards: SHARDS, keyGroups: 128, durability: 'process' });
    await expect(ok.request({ type: 'bank/account', id: 'acct-0' }, { op: 'get' })).resolves.toBe(10);
    await ok.close();
  });

  it("caps shards: 'auto' at the data dir's key groups", async () => {
    const dir = tempDir();
    dirs.push(dir);
    const weft = await Weft.start({ module: fixture('bank'), dataDir: dir, shards: { perCore: 4 }, keyGroups: 1, durability: 'process' });
    try {
      expect(weft.metrics().shards).toHaveLength(1);
    } finally {
      await weft.close();
    }
  });
});

const canMount = (() => {
  const probe = tempDir('weft-mount-probe-');
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', probe], { encoding: 'utf8' });
  if (r.status === 0) spawnSync('umount', [probe]);
  rmSync(probe, { recursive: true, force: true });
  return r.status === 0 ? undefined : `mount -t tmpfs is not permitted here: ${(r.stderr ?? r.error?.message ?? '').trim()}`;
})();

describe('disk full', () => {
  it.skipIf(canMount !== undefined)(`says ENOSPC and names the dir, and loses nothing acknowledged${canMount === undefined ? '' : ` (skipped: ${canMount})`}`, async () => {
    const mnt = tempDir('weft-full-');
    dirs.push(mnt);
    expect(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', mnt]).status).toBe(0);
    try {
      const dataDir = join(mnt, 'data');
      const weft = await Weft.start({ module: fixture('bank'), dataDir, shards: 2, durability: 'process', checkpointIntervalMs: 10 });
      const acked: string[] = [];
      let failure: unknown;
      // test/slow keeps each message's tag in its state: 64 KiB per instance fills 3 MiB quickly.
      const tag = 'x'.repeat(64 * 1024);
      for (let i = 0; i < 200 && failure === undefined; i++) {
        const id = `full-${i}`;
        try {
          await weft.send({ type: 'test/slow', id }, { tag, waitMs: 0 });
          acked.push(id);
        } catch (err) {
          failure = err;
        }
      }
      expect(failure, 'the disk never filled up').toBeInstanceOf(WeftError);
      const msg = (failure as WeftError).message;
      expect(msg).toContain('ENOSPC');
      expect(msg).toContain(mnt);
      await weft.close();
      // Room again: everything acknowledged is there.
      expect(spawnSync('mount', ['-o', 'remount,size=64m', mnt]).status).toBe(0);
      const again = await Weft.start({ module: fixture('bank'), dataDir, shards: 2, durability: 'process' });
      try {
        expect(acked.length).toBeGreaterThan(0);
        for (const id of acked) expect(((await again.query({ type: 'test/slow', id }))?.log as string[] | undefined)?.length, id).toBe(1);
      } finally {
        await again.close();
      }
    } finally {
      spawnSync('umount', ['-l', mnt]);
    }
  }, 120_000);
});
