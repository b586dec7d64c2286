/**
 * One engine per data dir, enforced by the kernel (issue 12, section 1): engines in separate
 * processes, in separate PID namespaces (both pid 1), starting at once over a stale LOCK, and
 * churning open/close, never share a data dir; a refused engine gets ERR_WEFT_DATA_DIR.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { DataDir } from '../../src/checkpoint/data-dir.js';
import { Weft, WeftError } from '../../src/index.js';
import { fixture, removeDir, tempDir, within } from '../engine/helpers.js';
import { engineChild, killSpawned, startEngineChild, type EngineChild } from '../helpers/engine-child.js';

const dirs: string[] = [];
const children: ChildProcess[] = [];
afterEach(() => {
  killSpawned();
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const d of dirs.splice(0)) removeDir(d);
});

function newDir(): string {
  const d = tempDir('weft-lock-');
  dirs.push(d);
  return d;
}

async function startChild(dataDir: string, prefix?: string[]): Promise<{ c: EngineChild; result: Record<string, unknown> }> {
  return startEngineChild(dataDir, prefix === undefined ? {} : { prefix });
}

const CHURN = 800;
const TRIES = 20;
const UNSHARE = ['unshare', '--pid', '--fork', '--mount-proc', '--kill-child'];
function unshareProblem(): string | undefined {
  const r = spawnSync(UNSHARE[0]!, [...UNSHARE.slice(1), 'true'], { encoding: 'utf8' });
  if (r.error !== undefined) return `unshare is not available: ${r.error.message}`;
  if (r.status !== 0) return `unshare --pid is not permitted here: ${r.stderr.trim()}`;
  return undefined;
}
const noUnshare = unshareProblem();

describe('the data dir lock (flock, held by the kernel)', () => {
  it('refuses a second engine in the same process, names the dir and the holder, keeps the LOCK file on close', async () => {
    const dataDir = newDir();
    const weft = await Weft.start({ module: fixture('bank'), dataDir, shards: 1, durability: 'process' });
    try {
      const err = await Weft.start({ module: fixture('bank'), dataDir, shards: 1, durability: 'process' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WeftError);
      expect((err as WeftError).code).toBe('ERR_WEFT_DATA_DIR');
      expect((err as WeftError).message).toContain(`data dir "${dataDir}" is already in use by another weft engine (another engine in this process)`);
      expect((err as WeftError).message).toContain(`held by pid ${process.pid}`);
      // The refused start changed nothing: the running engine still works.
      await weft.send({ type: 'bank/account', id: 'a' }, { op: 'deposit', amount: 5 });
    } finally {
      await weft.close();
    }
    // The lock file stays (only the kernel lock goes), emptied of its note.
    expect(existsSync(join(dataDir, 'LOCK'))).toBe(true);
    expect(readFileSync(join(dataDir, 'LOCK'), 'utf8')).toBe('');
    const again = await Weft.start({ module: fixture('bank'), dataDir, shards: 1, durability: 'process' });
    await expect(again.request({ type: 'bank/account', id: 'a' }, { op: 'get' })).resolves.toBe(5);
    await again.close();
  });

  it('says clearly when the lock file cannot be opened (no raw ENOENT)', async () => {
    const dataDir = newDir();
    const { mkdirSync } = await import('node:fs');
    mkdirSync(join(dataDir, 'LOCK'));
    const err = await DataDir.open(dataDir, { keyGroups: undefined, shards: 1, shardsAuto: false, durability: 'process' }).catch((e: unknown) => e);
    expect((err as WeftError).code).toBe('ERR_WEFT_DATA_DIR');
    expect((err as WeftError).message).toMatch(/^cannot lock data dir ".*": cannot open its lock file ".*LOCK" for writing \(EISDIR/);
  });

  it('refuses an engine in another process while one runs, and lets one in after the holder is SIGKILLed', async () => {
    const dataDir = newDir();
    const a = await startChild(dataDir);
    expect(a.result.event).toBe('started');
    const b = await startChild(dataDir);
    expect(b.result).toMatchObject({ event: 'refused', code: 'ERR_WEFT_DATA_DIR' });
    expect(b.result.message).toContain(`data dir "${dataDir}" is already in use by another weft engine`);
    expect(b.result.message).toContain(`held by pid ${a.c.proc.pid}`);
    a.c.proc.kill('SIGKILL');
    await a.c.exited;
    // The stale LOCK file (with A's note) does not matter: the kernel released A's lock.
    expect(readFileSync(join(dataDir, 'LOCK'), 'utf8')).toContain(`"pid":${a.c.proc.pid}`);
    const c = await startChild(dataDir);
    expect(c.result.event).toBe('started');
    c.c.send('close');
    expect((await c.c.next('closed')).event).toBe('closed');
  });

  it.skipIf(noUnshare !== undefined)(`refuses an engine in another PID namespace, also when both are pid 1${noUnshare === undefined ? '' : ` (skipped: ${noUnshare})`}`, async () => {
    const dataDir = newDir();
    // A in the host namespace, B in its own (a rolling update of two containers on one volume).
    const a = await startChild(dataDir);
    expect(a.result.event).toBe('started');
    const b = await startChild(dataDir, UNSHARE);
    expect(b.result).toMatchObject({ event: 'refused', code: 'ERR_WEFT_DATA_DIR' });
    a.c.send('close');
    await a.c.next('closed');

    // Both pid 1 in their own namespaces.
    const a1 = await startChild(dataDir, UNSHARE);
    expect(a1.result).toMatchObject({ event: 'started', pid: 1 });
    a1.c.send('deposit acct 7');
    expect((await a1.c.next('acked')).event).toBe('acked');
    const b1 = await startChild(dataDir, UNSHARE);
    expect(b1.result).toMatchObject({ event: 'refused', code: 'ERR_WEFT_DATA_DIR' });
    expect(b1.result.message).toContain('held by pid 1');
    a1.c.send('close');
    await a1.c.next('closed');
    // A's close() released only its own lock: the next engine (pid 1 again) gets the dir, and a
    // third beside it is still refused.
    const c1 = await startChild(dataDir, UNSHARE);
    expect(c1.result.event).toBe('started');
    const d1 = await startChild(dataDir, UNSHARE);
    expect(d1.result).toMatchObject({ event: 'refused', code: 'ERR_WEFT_DATA_DIR' });
    c1.c.send('close');
    await c1.c.next('closed');
    // Nothing A acknowledged was lost.
    const weft = await Weft.start({ module: fixture('bank'), dataDir, shards: 1, durability: 'process' });
    await expect(weft.request({ type: 'bank/account', id: 'acct' }, { op: 'get' })).resolves.toBe(7);
    await weft.close();
  }, 120_000);

  it(`lets exactly one of two engines starting at once over a stale LOCK in, every time (${TRIES} tries)`, async () => {
    const dataDir = newDir();
    // A stale LOCK from a SIGKILLed engine to begin with.
    const first = await startChild(dataDir);
    expect(first.result.event).toBe('started');
    first.c.proc.kill('SIGKILL');
    await first.c.exited;
    for (let t = 0; t < TRIES; t++) {
      // Both take the lock the way Weft.start does first (DataDir.open), released by one 'go'.
      const pair = [0, 1].map(() => engineChild(dataDir, { fixture: 'lock-hold-child' }));
      for (const c of pair) expect((await c.next('loaded')).event).toBe('loaded');
      for (const c of pair) c.send('go');
      const results = await Promise.all(pair.map((c) => c.next('started or refused')));
      for (const [i, r] of results.entries()) if (r.event !== 'started') expect(r, `try ${t}, child ${i}`).toMatchObject({ event: 'refused', code: 'ERR_WEFT_DATA_DIR' });
      expect(results.filter((r) => r.event === 'started').length, `try ${t}: ${JSON.stringify(results)}`).toBe(1);
      // The winner dies without closing: the next try starts over a stale LOCK again.
      for (const c of pair) c.proc.kill('SIGKILL');
      await Promise.all(pair.map((c) => c.exited));
    }
    // And an engine starts on the dir the last winner left.
    const last = await startChild(dataDir);
    expect(last.result.event).toBe('started');
    last.c.send('close');
    await last.c.next('closed');
  }, 120_000);

  it('never lets two processes hold the dir at once under open/close churn, and refuses only with ERR_WEFT_DATA_DIR', async () => {
    const dataDir = newDir();
    const marker = join(dataDir, 'held-marker');
    // One open/close first, so the churn runs on an existing dir (and its LOCK file).
    await (await DataDir.open(dataDir, { keyGroups: undefined, shards: 1, shardsAuto: false, durability: 'process' })).close();
    const procs = [0, 1].map(() => spawn(process.execPath, [fileURLToPath(fixture('lock-churn-child')), dataDir, marker, String(CHURN)], { stdio: ['pipe', 'pipe', 'inherit'] }));
    children.push(...procs);
    // Both loaded (the churn child prints "loaded" first), then both go at once.
    await within(Promise.all(procs.map((p) => new Promise((r) => p.stdout.once('data', r)))), 30_000, 'churn children loading');
    for (const p of procs) p.stdin.write('go\n');
    const runs = procs.map(
      (proc) =>
        new Promise<Record<string, unknown>>((resolve, reject) => {
          let out = '';
          proc.stdout.on('data', (b: Buffer) => (out += b.toString()));
          proc.on('exit', () => {
            try {
              resolve(JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as Record<string, unknown>);
            } catch (err) {
              reject(new Error(`churn child printed ${JSON.stringify(out)}: ${(err as Error).message}`));
            }
          });
        }),
    );
    const results = await within(Promise.all(runs), 90_000, 'churn');
    for (const r of results) {
      expect(r).not.toHaveProperty('overlap');
      expect(r).not.toHaveProperty('badError');
      expect((r.held as number) + (r.refused as number)).toBe(CHURN);
    }
    // Both got the dir many times: the churn really interleaved.
    expect(results.every((r) => (r.held as number) > 0), JSON.stringify(results)).toBe(true);
  }, 120_000);
});
