import { spawn, spawnSync, type SpawnOptions } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import fc from 'fast-check';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { expectWeftRejection, within } from '../helpers/index.js';
import { PARTITION_FORMAT_VERSION, Partition, packMeta, packMetaList } from '../../src/state/partition.js';
import type { Durability } from '../../src/contract/options.js';

const CHILD = fileURLToPath(new URL('../../dist/test/fixtures/partition-child.js', import.meta.url));
const WORKER = new URL('../../dist/test/fixtures/partition-worker.js', import.meta.url);
/** Keys per batch written by the child fixture's `stream` and `commit-then-wait` modes. */
const BATCH_KEYS = 64;

const root = mkdtempSync(join(tmpdir(), 'weft-partition-'));
let dirCount = 0;
/** Whether uid 65534 (nobody) can read `file` (every ancestor traversable). */
function readableByNobody(file: string): boolean {
  const r = spawnSync(process.execPath, ['-e', `require('node:fs').accessSync(${JSON.stringify(file)}, 4)`], { uid: 65534, gid: 65534, timeout: 10_000 });
  return r.status === 0;
}

function freshPath(): string {
  return join(root, `p${dirCount++}`);
}
afterAll(() => rmSync(root, { recursive: true, force: true }));

const opened: Partition[] = [];
async function openP(path: string, durability: Durability = 'fsync', extra: { readOnly?: boolean; mapSizeBytes?: number } = {}): Promise<Partition> {
  const p = await Partition.open(path, { durability, ...extra });
  opened.push(p);
  return p;
}
afterEach(async () => {
  await Promise.all(opened.splice(0).map((p) => p.close()));
});

function bytes(...values: number[]): Uint8Array {
  return Uint8Array.from(values);
}

/** Reads return Node Buffers (a Uint8Array subclass): compare contents as plain Uint8Arrays. */
function plain(value: Uint8Array | undefined): Uint8Array | undefined {
  return value === undefined ? undefined : new Uint8Array(value);
}

function plainEntries<T extends { value: Uint8Array }>(entries: Iterable<T>): T[] {
  return [...entries].map((e) => ({ ...e, value: new Uint8Array(e.value) }));
}

interface ChildRun {
  lines: Array<Record<string, unknown>>;
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

function requireBuilt(file: string): void {
  if (!existsSync(file)) throw new Error(`${file} is missing: run \`npm run build\` before these tests`);
}

/**
 * Runs the child fixture, calling `onLine` for each JSON line it prints (it may kill the child).
 * Kills it with SIGKILL and rejects after `timeoutMs`: a deadlocked child cannot hang the run.
 */
function runChild(
  args: string[],
  options: { timeoutMs: number; onLine?: (msg: Record<string, unknown>, kill: () => void) => void; command?: string[]; spawn?: SpawnOptions },
): Promise<ChildRun> {
  requireBuilt(CHILD);
  const [cmd, ...pre] = options.command ?? [process.execPath, CHILD];
  return new Promise<ChildRun>((resolve, reject) => {
    const child = spawn(cmd as string, [...pre, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...options.spawn });
    const lines: Array<Record<string, unknown>> = [];
    let stderr = '';
    let buffered = '';
    const kill = (): void => {
      child.kill('SIGKILL');
    };
    const timer = setTimeout(() => {
      kill();
      reject(new Error(`child ${args.join(' ')} did not finish within ${options.timeoutMs} ms (deadlock?); output: ${JSON.stringify(lines)} ${stderr}`));
    }, options.timeoutMs);
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (chunk: string) => {
      buffered += chunk;
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (line.length === 0) continue;
        const msg = JSON.parse(line) as Record<string, unknown>;
        lines.push(msg);
        options.onLine?.(msg, kill);
      }
    });
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ lines, code, signal, stderr });
    });
  });
}

function startWorker(data: Record<string, unknown>): { worker: Worker; messages: Array<Record<string, unknown>>; next: () => Promise<Record<string, unknown>>; exited: Promise<number> } {
  requireBuilt(fileURLToPath(WORKER));
  const worker = new Worker(WORKER, { workerData: data });
  const messages: Array<Record<string, unknown>> = [];
  const waiting: Array<(m: Record<string, unknown>) => void> = [];
  let failure: unknown;
  const failWaiters: Array<(e: unknown) => void> = [];
  worker.on('message', (m: Record<string, unknown>) => {
    const w = waiting.shift();
    failWaiters.shift();
    if (w !== undefined) w(m);
    else messages.push(m);
  });
  worker.on('error', (err) => {
    failure = err;
    for (const f of failWaiters.splice(0)) f(err);
  });
  const exited = new Promise<number>((resolve) => worker.once('exit', resolve));
  const next = (): Promise<Record<string, unknown>> => {
    const queued = messages.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (failure !== undefined) return Promise.reject(failure);
    return within(
      new Promise<Record<string, unknown>>((resolve, reject) => {
        waiting.push(resolve);
        failWaiters.push(reject);
      }),
      30_000,
      `worker ${String(data.action)}`,
    );
  };
  return { worker, messages, next, exited: within(exited, 30_000, `worker ${String(data.action)} exit`) };
}

function u32(value: Uint8Array | undefined): number | undefined {
  return value === undefined ? undefined : new DataView(value.buffer, value.byteOffset, value.byteLength).getUint32(0);
}

describe.each(['fsync', 'process'] as const)('Partition (%s durability): round trips', (durability) => {
  it('stores, reads and deletes state records', async () => {
    const p = await openP(freshPath(), durability);
    const big = new Uint8Array(1024 * 1024).map((_, i) => i & 255);
    await p.write((ops) => {
      ops.putState(3, 'bank/account', 'alice', bytes(1, 2, 3));
      ops.putState(3, 'bank/account', 'bob', new Uint8Array(0));
      ops.putState(4, 'bank/account', 'alice', big);
      ops.putState(5, 'ünï/cödé', 'id with spaces, \u0000 and 😀', bytes(9));
    });
    expect(plain(p.getState(3, 'bank/account', 'alice'))).toEqual(bytes(1, 2, 3));
    expect(plain(p.getState(3, 'bank/account', 'bob'))).toEqual(new Uint8Array(0));
    expect(plain(p.getState(4, 'bank/account', 'alice'))).toEqual(big);
    expect(plain(p.getState(5, 'ünï/cödé', 'id with spaces, \u0000 and 😀'))).toEqual(bytes(9));
    expect(p.getState(3, 'bank/account', 'carol')).toBeUndefined();
    expect(p.getState(2, 'bank/account', 'alice')).toBeUndefined();
    await p.write((ops) => ops.deleteState(3, 'bank/account', 'alice'));
    expect(p.getState(3, 'bank/account', 'alice')).toBeUndefined();
    expect(p.countState()).toBe(3);
  });

  it('stores timers, pending entries and metadata', async () => {
    const p = await openP(freshPath(), durability);
    await p.write((ops) => {
      ops.putTimer(1, 1_700_000_000_000, 2, bytes(12));
      ops.putTimer(1, 1_700_000_000_000, 1, bytes(11));
      ops.putTimer(2, 5, 0, bytes(20));
      ops.putPending([7, 1, 3, 'bank/account', 'alice'], bytes(71));
      ops.putPending([7, 5], bytes(75));
      ops.putPending([8, 1, 0, 'a', 'b'], bytes(81));
      ops.putMeta('foldedEpoch', 6);
      ops.putMeta('keyGroups', { count: 128, list: [1, 2, 3], nested: { ok: true, name: 'x' } });
      ops.putMeta('mailbox', bytes(1, 2));
    });
    expect(plainEntries(p.timers(1))).toEqual([
      { kg: 1, due: 1_700_000_000_000, seq: 1, value: bytes(11) },
      { kg: 1, due: 1_700_000_000_000, seq: 2, value: bytes(12) },
    ]);
    expect([...p.timers()].map((t) => [t.kg, t.due, t.seq])).toEqual([
      [1, 1_700_000_000_000, 1],
      [1, 1_700_000_000_000, 2],
      [2, 5, 0],
    ]);
    expect(plainEntries(p.pendingEntries(7))).toEqual([
      { key: [7, 1, 3, 'bank/account', 'alice'], value: bytes(71) },
      { key: [7, 5], value: bytes(75) },
    ]);
    expect(p.pendingEpochs()).toEqual([7, 8]);
    expect(p.countPending()).toBe(3);
    expect(p.countPending(7)).toBe(2);
    expect(p.getMeta('foldedEpoch')).toBe(6);
    expect(p.getMeta('keyGroups')).toEqual({ count: 128, list: [1, 2, 3], nested: { ok: true, name: 'x' } });
    expect(new Uint8Array(p.getMeta('mailbox') as Uint8Array)).toEqual(bytes(1, 2));
    expect(p.getMeta('absent')).toBeUndefined();
    await p.write((ops) => {
      ops.deleteTimer(1, 1_700_000_000_000, 1);
      ops.deleteMeta('foldedEpoch');
      ops.deletePendingEpoch(7);
    });
    expect([...p.timers(1)].map((t) => t.seq)).toEqual([2]);
    expect(p.getMeta('foldedEpoch')).toBeUndefined();
    expect(p.pendingEpochs()).toEqual([8]);
    expect(p.keyGroups()).toEqual([1, 2]);
  });

  it('survives close and reopen in the same thread', async () => {
    const path = freshPath();
    const p = await Partition.open(path, { durability });
    await p.write((ops) => ops.putState(0, 'a/b', 'c', bytes(42)));
    await p.close();
    const again = await openP(path, durability);
    expect(plain(again.getState(0, 'a/b', 'c'))).toEqual(bytes(42));
    expect(again.getMeta('partition/format')).toBe(PARTITION_FORMAT_VERSION);
  });
});

describe('Partition: key order', () => {
  const kgArb = fc.integer({ min: 0, max: 40 });
  const strArb = fc.string({ unit: 'binary', maxLength: 12 });

  it('keeps each key group one contiguous range of state', async () => {
    const p = await openP(freshPath());
    await fc.assert(
      fc.asyncProperty(fc.uniqueArray(fc.tuple(kgArb, strArb, strArb), { maxLength: 60, selector: (k) => JSON.stringify(k) }), async (keys) => {
        await p.write((ops) => {
          for (const kg of p.keyGroups()) ops.deleteKeyGroup(kg);
          keys.forEach(([kg, type, id], i) => ops.putState(kg, type, id, bytes(i & 255)));
        });
        const groups = [...new Set(keys.map((k) => k[0]))].sort((a, b) => a - b);
        expect(p.keyGroups()).toEqual(groups);
        for (const kg of groups) {
          const got = [...p.states(kg)].map((e) => JSON.stringify([e.kg, e.type, e.id])).sort();
          const want = keys.filter((k) => k[0] === kg).map((k) => JSON.stringify(k)).sort();
          expect(got).toEqual(want);
          expect(p.countState(kg)).toBe(want.length);
        }
        expect([...p.states()].map((e) => e.kg)).toEqual(keys.map((k) => k[0]).sort((a, b) => a - b));
      }),
      { numRuns: 40 },
    );
  });

  it('yields timers in due order (due, then seq) per key group', async () => {
    const p = await openP(freshPath());
    const dueArb = fc.oneof(fc.integer({ min: 0, max: 2 ** 45 }), fc.double({ min: 0, max: 1e13, noNaN: true }));
    await fc.assert(
      fc.asyncProperty(fc.uniqueArray(fc.tuple(kgArb, dueArb, fc.integer({ min: 0, max: 2 ** 40 })), { maxLength: 80, selector: (k) => JSON.stringify(k) }), async (timers) => {
        await p.write((ops) => {
          for (const kg of p.keyGroups()) ops.deleteKeyGroup(kg);
          for (const [kg, due, seq] of timers) ops.putTimer(kg, due, seq, bytes(1));
        });
        for (const kg of new Set(timers.map((t) => t[0]))) {
          const want = timers
            .filter((t) => t[0] === kg)
            .sort((a, b) => a[1] - b[1] || a[2] - b[2])
            .map(([, due, seq]) => [due, seq]);
          expect([...p.timers(kg)].map((t) => [t.due, t.seq])).toEqual(want);
          const cut = want[Math.floor(want.length / 2)]?.[0] ?? 0;
          expect([...p.timers(kg, { dueBeforeMs: cut })].map((t) => [t.due, t.seq])).toEqual(want.filter(([due]) => (due as number) < cut));
        }
      }),
      { numRuns: 40 },
    );
  });

  it('iterates ranges longer than one read chunk, and stops with ERR_WEFT_CLOSED if closed meanwhile', async () => {
    const path = freshPath();
    const p = await Partition.open(path, { durability: 'process' });
    await p.write((ops) => {
      for (let i = 0; i < 1500; i++) ops.putState(9, 't/t', `id-${String(i).padStart(5, '0')}`, bytes(i & 255));
      ops.putState(10, 't/t', 'other', bytes(0));
    });
    const ids = [...p.states(9)].map((e) => e.id);
    expect(ids.length).toBe(1500);
    expect(ids).toEqual([...ids].sort());
    const it = p.states(9);
    for (let i = 0; i < 600; i++) it.next();
    await p.close();
    await expectWeftRejection(() => {
      for (let i = 0; i < 600; i++) it.next();
    }, 'ERR_WEFT_CLOSED');
  });
});

describe('Partition: writes', () => {
  it('applies the ops of one call atomically, or none of them when an op is invalid or the callback throws', async () => {
    const p = await openP(freshPath());
    await expectWeftRejection(
      p.write((ops) => {
        ops.putState(1, 'a/b', 'first', bytes(1));
        ops.putState(-1, 'a/b', 'bad', bytes(1));
      }),
      'ERR_WEFT_INVALID_ARG',
      /^key group must be an integer in \[0, 4294967295\] \(got -1\)$/,
    );
    await expect(
      p.write((ops) => {
        ops.putState(1, 'a/b', 'first', bytes(1));
        throw new RangeError('builder failed');
      }),
    ).rejects.toThrow('builder failed');
    expect(p.getState(1, 'a/b', 'first')).toBeUndefined();
    await p.write((ops) => ops.putState(1, 'a/b', 'later', bytes(2)));
    expect(plain(p.getState(1, 'a/b', 'later'))).toEqual(bytes(2));
  });

  it('commits calls in call order, each visible once its promise resolves', async () => {
    const p = await openP(freshPath());
    const order: number[] = [];
    const writes = Array.from({ length: 50 }, (_, i) =>
      p
        .write((ops) => {
          ops.putState(0, 'a/b', 'x', bytes(i));
          ops.putMeta('last', i);
        })
        .then(() => {
          order.push(i);
          expect(p.getMeta('last')).toBeGreaterThanOrEqual(i);
        }),
    );
    await Promise.all(writes);
    expect(order).toEqual([...Array(50).keys()]);
    expect(plain(p.getState(0, 'a/b', 'x'))).toEqual(bytes(49));
  });

  it('copies value bytes when recorded, so callers may reuse their buffers', async () => {
    const p = await openP(freshPath());
    const buf = bytes(1, 2, 3);
    const big = new Uint8Array(100_000).fill(7);
    const w = p.write((ops) => {
      ops.putState(0, 'a/b', 'small', buf);
      ops.putState(0, 'a/b', 'big', big);
    });
    buf.fill(0);
    big.fill(0);
    await w;
    expect(plain(p.getState(0, 'a/b', 'small'))).toEqual(bytes(1, 2, 3));
    expect(plain(p.getState(0, 'a/b', 'big'))).toEqual(new Uint8Array(100_000).fill(7));
  });

  it('returns read bytes that stay valid across later reads', async () => {
    const p = await openP(freshPath());
    await p.write((ops) => {
      for (let i = 0; i < 100; i++) ops.putState(0, 'a/b', `id-${i}`, new Uint8Array(64).fill(i));
    });
    const kept = Array.from({ length: 100 }, (_, i) => p.getState(0, 'a/b', `id-${i}`));
    for (let i = 0; i < 100; i++) p.getState(0, 'a/b', `id-${99 - i}`);
    kept.forEach((v, i) => expect(plain(v)).toEqual(new Uint8Array(64).fill(i)));
  });

  it('deletePendingEpoch removes committed entries, entries of calls still queued, and earlier ops of its own call', async () => {
    const p = await openP(freshPath());
    await p.write((ops) => {
      ops.putPending([3, 1, 'committed'], bytes(1));
      ops.putPending([4, 1, 'other epoch'], bytes(1));
    });
    const queued = p.write((ops) => ops.putPending([3, 1, 'queued'], bytes(2)));
    const folding = p.write((ops) => {
      ops.putPending([3, 1, 'same call, before'], bytes(3));
      ops.deletePendingEpoch(3);
      ops.putPending([3, 1, 'same call, after'], bytes(4));
    });
    await Promise.all([queued, folding]);
    expect([...p.pendingEntries()].map((e) => e.key)).toEqual([
      [3, 1, 'same call, after'],
      [4, 1, 'other epoch'],
    ]);
  });

  it('deleteKeyGroup removes state and timers of one key group only', async () => {
    const p = await openP(freshPath());
    await p.write((ops) => {
      for (const kg of [1, 2, 3]) {
        ops.putState(kg, 'a/b', 'x', bytes(kg));
        ops.putTimer(kg, 100, 0, bytes(kg));
      }
    });
    await p.deleteKeyGroups([2]);
    expect(p.keyGroups()).toEqual([1, 3]);
    expect(p.countTimers()).toBe(2);
  });

  it('copies key groups from another partition, replacing what the target held', async () => {
    const source = await openP(freshPath());
    const target = await openP(freshPath());
    await source.write((ops) => {
      for (let i = 0; i < 5000; i++) ops.putState(i % 4, 'a/b', `id-${i}`, bytes(i & 255, 1));
      for (let i = 0; i < 10; i++) ops.putTimer(i % 4, 1000 + i, i, bytes(i));
    });
    await target.write((ops) => {
      ops.putState(1, 'a/b', 'stale', bytes(0));
      ops.putState(3, 'a/b', 'untouched', bytes(3));
    });
    const copied = await target.copyKeyGroupsFrom(source, [1, 2]);
    expect(copied).toEqual({ states: 2500, timers: 5 });
    expect(target.getState(1, 'a/b', 'stale')).toBeUndefined();
    expect(plain(target.getState(3, 'a/b', 'untouched'))).toEqual(bytes(3));
    for (const kg of [1, 2]) {
      expect([...target.states(kg)]).toEqual([...source.states(kg)]);
      expect([...target.timers(kg)]).toEqual([...source.timers(kg)]);
    }
    expect(target.keyGroups()).toEqual([1, 2, 3]);
    await expectWeftRejection(() => target.copyKeyGroupsFrom(target, [1]), 'ERR_WEFT_INVALID_ARG');
  });

  it('validates arguments with messages that name the value', async () => {
    const p = await openP(freshPath());
    const cases: Array<[(ops: Parameters<Parameters<Partition['write']>[0]>[0]) => void, string, RegExp]> = [
      [(ops) => ops.putState(1.5, 'a', 'b', bytes()), 'ERR_WEFT_INVALID_ARG', /^key group must be an integer in \[0, 4294967295\] \(got 1\.5\)$/],
      [(ops) => ops.putState(1, 7 as unknown as string, 'b', bytes()), 'ERR_WEFT_INVALID_ARG', /^type must be a string \(got 7\)$/],
      [(ops) => ops.putState(1, 'a', 'b', [1] as unknown as Uint8Array), 'ERR_WEFT_INVALID_ARG', /^value must be a Uint8Array \(got array\(1\)\)$/],
      [(ops) => ops.putState(1, 'a', 'x'.repeat(3000), bytes()), 'ERR_WEFT_TOO_LARGE', /^key array\(3\) takes at least 3005 bytes; LMDB keys are limited to 1978$/],
      [(ops) => ops.putState(1, 'a', 'é'.repeat(1000), bytes()), 'ERR_WEFT_TOO_LARGE', /^key array\(3\) takes 20\d\d bytes; LMDB keys are limited to 1978$/],
      [(ops) => ops.putTimer(1, Number.NaN, 0, bytes()), 'ERR_WEFT_INVALID_ARG', /^timer due must be a finite number of epoch ms \(got NaN\)$/],
      [(ops) => ops.putTimer(1, 5, -1, bytes()), 'ERR_WEFT_INVALID_ARG', /^timer seq must be a non-negative integer \(got -1\)$/],
      [(ops) => ops.putPending([1] as unknown as [number, number], bytes()), 'ERR_WEFT_INVALID_ARG', /^pending key must be an array \[epoch, kind, \.\.\.rest\] of 2 to 10 elements \(got array\(1\)\)$/],
      [(ops) => ops.putPending([1, 1, true as unknown as string], bytes()), 'ERR_WEFT_INVALID_ARG', /^pending key element 2 must be a string or a finite number \(got true\)$/],
      [(ops) => ops.deletePendingEpoch(-2), 'ERR_WEFT_INVALID_ARG', /^epoch must be a non-negative integer \(got -2\)$/],
      [(ops) => ops.putMeta('partition/format', 2), 'ERR_WEFT_INVALID_ARG', /^meta key "partition\/format" is reserved \(prefix "partition\/"\)$/],
      [(ops) => ops.putMeta('k', undefined), 'ERR_WEFT_INVALID_ARG', /^meta value for "k" must not be undefined \(use deleteMeta\)$/],
      [(ops) => ops.putMeta('', 1), 'ERR_WEFT_INVALID_ARG', /^meta key must be a non-empty string \(got ""\)$/],
      [(ops) => ops.putMetaList('partition/x', []), 'ERR_WEFT_INVALID_ARG', /^meta key "partition\/x" is reserved \(prefix "partition\/"\)$/],
      [(ops) => ops.putMetaList('l', [new Uint8Array(0)]), 'ERR_WEFT_INVALID_ARG', /^meta list for "l" must be an array of packed items \(non-empty Uint8Arrays from packMeta; got array\(1\)\)$/],
      [(ops) => ops.putMetaList('l', 'x' as unknown as Uint8Array[]), 'ERR_WEFT_INVALID_ARG', /^meta list for "l" must be an array of packed items \(non-empty Uint8Arrays from packMeta; got "x"\)$/],
    ];
    for (const [build, code, message] of cases) await expectWeftRejection(p.write(build), code, message);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    await expectWeftRejection(p.write((ops) => ops.putMeta('c', cyclic)), 'ERR_WEFT_UNSERIALIZABLE', /^meta value for "c" cannot be encoded as msgpack/);
    await expectWeftRejection(p.write('nope' as unknown as () => void), 'ERR_WEFT_INVALID_ARG', /^write\(\) needs a function that records the ops \(got "nope"\)$/);
    let leaked: Parameters<Parameters<Partition['write']>[0]>[0] | undefined;
    await p.write((ops) => {
      leaked = ops;
    });
    expect(() => leaked?.putState(0, 'a', 'b', bytes())).toThrow('write ops were used after the write() callback returned');
    expect(() => p.getState(0, 'a', 1 as unknown as string)).toThrow('id must be a string (got 1)');
    await expectWeftRejection(Partition.open('', { durability: 'fsync' }), 'ERR_WEFT_INVALID_ARG', /^partition path must be a non-empty string \(got ""\)$/);
    await expectWeftRejection(Partition.open(freshPath(), { durability: 'sometimes' as Durability }), 'ERR_WEFT_INVALID_ARG', /^options\.durability must be 'fsync' or 'process' \(got "sometimes"\)$/);
    await expectWeftRejection(Partition.open(freshPath(), { durability: 'fsync', mapSizeBytes: 10 }), 'ERR_WEFT_INVALID_ARG', /^options\.mapSizeBytes must be an integer of at least 65536 \(got 10\)$/);
  });
});

describe('Partition: meta lists of packed items', () => {
  it('stores what putMeta of the unpacked list stores, at every header size', async () => {
    const p = await openP(freshPath(), 'process');
    // 0 and 15 items: fixarray; 16 and 100: array 16; 70,000: array 32.
    for (const n of [0, 1, 15, 16, 100, 70_000]) {
      const list = Array.from({ length: n }, (_, i) => (i % 3 === 0 ? { epoch: i, at: 1_700_000_000_000 + i, ms: i / 7 } : i % 3 === 1 ? `s${i}` : i));
      await p.write((ops) => {
        ops.putMetaList(`list-${n}`, list.map(packMeta));
        ops.putMeta(`plain-${n}`, list);
      });
      expect(p.getMeta(`list-${n}`)).toEqual(list);
      expect(p.getMeta(`list-${n}`)).toEqual(p.getMeta(`plain-${n}`));
    }
  });

  it('packMetaList writes the bytes packMeta writes for the list, at every header boundary', () => {
    const item = (i: number): unknown => (i % 3 === 0 ? { epoch: i, ms: i / 7 } : i % 3 === 1 ? `s${i}` : i);
    for (const n of [0, 1, 15, 16, 100, 65_535, 65_536, 70_000]) {
      const list = Array.from({ length: n }, (_, i) => item(i));
      expect(Buffer.from(packMetaList(list.map(packMeta))).equals(Buffer.from(packMeta(list))), `${n} items`).toBe(true);
    }
  });

  it('packMeta refuses what msgpack cannot carry, naming it', () => {
    expect(() => packMeta(undefined)).toThrow(/^a meta value must not be undefined$/);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => packMeta(cyclic)).toThrow(/^meta value cannot be encoded as msgpack: /);
  });
});

describe('Partition: close', () => {
  it('is harmless twice; afterwards every call fails with ERR_WEFT_CLOSED', async () => {
    const p = await Partition.open(freshPath(), { durability: 'fsync' });
    await p.write((ops) => ops.putState(0, 'a/b', 'c', bytes(1)));
    const first = p.close();
    expect(p.close()).toBe(first);
    await first;
    await p.close();
    expect(p.closed).toBe(true);
    const closed = /^partition ".*" is closed$/;
    await expectWeftRejection(p.write((ops) => ops.putState(0, 'a/b', 'c', bytes(1))), 'ERR_WEFT_CLOSED', closed);
    await expectWeftRejection(() => p.getState(0, 'a/b', 'c'), 'ERR_WEFT_CLOSED', closed);
    await expectWeftRejection(() => p.getMeta('x'), 'ERR_WEFT_CLOSED', closed);
    await expectWeftRejection(() => [...p.states(0)], 'ERR_WEFT_CLOSED', closed);
    await expectWeftRejection(() => [...p.timers()], 'ERR_WEFT_CLOSED', closed);
    await expectWeftRejection(() => p.pendingEpochs(), 'ERR_WEFT_CLOSED', closed);
    await expectWeftRejection(() => p.countState(), 'ERR_WEFT_CLOSED', closed);
    await expectWeftRejection(p.copyKeyGroupsFrom(await openP(freshPath()), [0]), 'ERR_WEFT_CLOSED', closed);
  });

  it('lets writes already accepted commit, then closes', async () => {
    const path = freshPath();
    const p = await Partition.open(path, { durability: 'fsync' });
    const writes = Array.from({ length: 20 }, (_, i) => p.write((ops) => ops.putState(0, 'a/b', `id-${i}`, bytes(i))));
    const closing = p.close();
    await expectWeftRejection(p.write((ops) => ops.putState(0, 'a/b', 'late', bytes(0))), 'ERR_WEFT_CLOSED');
    await within(Promise.all([...writes, closing]), 20_000, 'close under load');
    const again = await openP(path);
    expect(again.countState(0)).toBe(20);
  });

  it('survives closing under load many times in a child process (regression for the lmdb-js close deadlock)', async () => {
    const run = await runChild(['close-under-load', freshPath(), 'fsync', '60'], { timeoutMs: 90_000 });
    expect(run.stderr).toBe('');
    expect(run.lines).toEqual([{ rounds: 60 }]);
    expect(run.code).toBe(0);
  }, 120_000);

  it('refuses a second writable open of one path in the same thread, allows a read-only one', async () => {
    const path = freshPath();
    const p = await openP(path);
    await expectWeftRejection(Partition.open(path, { durability: 'fsync' }), 'ERR_WEFT_DATA_DIR', /is already open for writing in this thread$/);
    await p.write((ops) => ops.putState(0, 'a/b', 'c', bytes(5)));
    const reader = await openP(path, 'fsync', { readOnly: true });
    expect(plain(reader.getState(0, 'a/b', 'c'))).toEqual(bytes(5));
    await expectWeftRejection(reader.write(() => undefined), 'ERR_WEFT_INVALID_ARG', /is open read-only$/);
  });
});

describe('Partition: threads', () => {
  it('is reopened by another worker thread after this thread closed it, and back', async () => {
    const path = freshPath();
    const p = await Partition.open(path, { durability: 'fsync' });
    await p.write((ops) => ops.putState(0, 'thread/test', 'id-0', Uint8Array.of(0, 0, 0, 7)));
    await p.close();
    const reader = startWorker({ action: 'read', path, durability: 'fsync', kg: 0 });
    expect(await reader.next()).toEqual({ count: 1, marker: 7 });
    await reader.exited;
    const writer = startWorker({ action: 'write', path, durability: 'fsync', kg: 1, count: 10, marker: 8 });
    expect(await writer.next()).toEqual({ done: true });
    await writer.exited;
    const again = await openP(path);
    expect(again.countState(1)).toBe(10);
    expect(u32(again.getState(1, 'thread/test', 'id-0'))).toBe(8);
  });

  it('is reopened by a new worker after the worker holding it crashed without closing', async () => {
    const path = freshPath();
    const crashing = startWorker({ action: 'crash', path, durability: 'fsync', kg: 2, count: 50, marker: 9 });
    // Its error event and its last message race each other: wait for the exit only.
    expect(await crashing.exited).toBe(1);
    const replacement = startWorker({ action: 'write', path, durability: 'fsync', kg: 3, count: 5, marker: 10 });
    expect(await replacement.next()).toEqual({ done: true });
    await replacement.exited;
    const check = await openP(path);
    expect(check.countState(2)).toBe(50);
    expect(check.countState(3)).toBe(5);
  });

  it('survives worker threads terminated at arbitrary points while writing (in a child process)', async () => {
    // A terminated worker used to leave lmdb-js's write thread waiting for the end of a batch
    // that never came, so terminate() never finished and the write lock stayed taken.
    const run = await runChild(['terminate-workers', freshPath(), 'fsync', '20'], { timeoutMs: 90_000 });
    expect(run.lines).toEqual([{ rounds: 20 }]);
    expect(run.code).toBe(0);
  }, 120_000);

  it('runs one partition per worker thread, writing in parallel', async () => {
    const paths = [freshPath(), freshPath()];
    const workers = paths.map((path, i) => startWorker({ action: 'bench', path, durability: 'fsync', batches: 20, perBatch: 500 + i }));
    const results = await Promise.all(workers.map((w) => w.next()));
    expect(results.every((r) => typeof r.ms === 'number')).toBe(true);
    await Promise.all(workers.map((w) => w.exited));
    for (const [i, path] of paths.entries()) {
      const p = await openP(path);
      expect(p.countState()).toBe(20 * (500 + i));
    }
  });

  it('shares one environment when another thread opens the same path', async () => {
    const path = freshPath();
    const p = await openP(path);
    await p.write((ops) => ops.putState(4, 'a/b', 'first', bytes(1)));
    const reader = startWorker({ action: 'shared', path, durability: 'fsync', kg: 4 });
    expect(await reader.next()).toEqual({ ready: true });
    reader.worker.postMessage('read');
    expect(await reader.next()).toEqual({ count: 1 });
    await p.write((ops) => ops.putState(4, 'a/b', 'second', bytes(2)));
    reader.worker.postMessage('read');
    expect(await reader.next()).toEqual({ count: 2 });
    reader.worker.postMessage('close');
    expect(await reader.next()).toEqual({ closed: true });
    await reader.exited;
    await p.write((ops) => ops.putState(4, 'a/b', 'third', bytes(3)));
    expect(p.countState(4)).toBe(3);
  });
});

describe.each(['fsync', 'process'] as const)('Partition (%s durability): killed processes', (durability) => {
  it('keeps a write whose promise resolved before SIGKILL', async () => {
    const path = freshPath();
    const run = await runChild(['commit-then-wait', path, durability], {
      timeoutMs: 30_000,
      onLine: (msg, kill) => {
        if (msg.committed === 1) kill();
      },
    });
    expect(run.signal).toBe('SIGKILL');
    const p = await openP(path, durability);
    expect(p.getMeta('last')).toBe(1);
    expect(p.countState()).toBe(BATCH_KEYS);
  });

  it('keeps every batch whole or absent when killed mid-stream, and every resolved batch', async () => {
    const path = freshPath();
    let resolved = -1;
    const run = await runChild(['stream', path, durability], {
      timeoutMs: 30_000,
      onLine: (msg, kill) => {
        if (typeof msg.resolved === 'number') resolved = Math.max(resolved, msg.resolved);
        // Several batches are in flight whenever one resolves: the kill lands mid-stream.
        if (resolved >= 40) kill();
      },
    });
    expect(run.signal).toBe('SIGKILL');
    expect(run.lines.filter((l) => 'error' in l)).toEqual([]);
    const p = await openP(path, durability);
    const perBatch = new Map<number, number>();
    for (const e of p.states()) {
      const batch = u32(e.value) as number;
      perBatch.set(batch, (perBatch.get(batch) ?? 0) + 1);
    }
    const last = p.getMeta('last') as number;
    expect(last).toBeGreaterThanOrEqual(resolved);
    // A committed prefix: batches 0..last, each with all its keys.
    expect([...perBatch.keys()].sort((a, b) => a - b)).toEqual([...Array(last + 1).keys()]);
    for (const count of perBatch.values()) expect(count).toBe(BATCH_KEYS);
  });
});

describe('Partition: data directory errors', () => {
  it('names the path when the directory cannot be created', async () => {
    const file = join(root, `file-${dirCount++}`);
    writeFileSync(file, 'not a directory');
    const path = join(file, 'partition');
    const err = await expectWeftRejection(Partition.open(path, { durability: 'fsync' }), 'ERR_WEFT_DATA_DIR', /^partition ".*file-\d+\/partition": cannot create: ENOTDIR/);
    expect(err.message).toContain(path);
    expect(err.cause).toBeInstanceOf(Error);
  });

  it('creates the directory with mode 0700', async () => {
    const path = join(freshPath(), 'nested', 'shard-0.lmdb');
    await openP(path);
    expect(statSync(path).mode & 0o777).toBe(0o700);
    expect(statSync(join(path, 'data.mdb')).mode & 0o777).toBe(0o600);
  });

  it('names the path when permission is denied', async () => {
    // As root, permission bits do not stop us: open it as an unprivileged user instead — which
    // needs that user to be able to read this checkout. Where it cannot (a clone under /root, as
    // in CI), an unusable path that even root cannot open is tested instead.
    if (process.getuid?.() === 0 && !readableByNobody(fileURLToPath(new URL('../../dist/test/fixtures/partition-child.js', import.meta.url)))) {
      const file = join(freshPath() + '-file');
      writeFileSync(file, 'not a directory');
      const path = join(file, 'partition');
      const err = await expectWeftRejection(Partition.open(path, { durability: 'fsync' }), 'ERR_WEFT_DATA_DIR', /ENOTDIR/);
      expect(err.message).toContain(path);
      return;
    }
    const dir = freshPath();
    mkdirSync(dir, { mode: 0o700 });
    const path = join(dir, 'partition');
    const asRoot = process.getuid?.() === 0;
    if (!asRoot) chmodSync(dir, 0o500);
    else chownSync(dir, 0, 0);
    const run = await runChild(['open', path, 'fsync'], { timeoutMs: 30_000, spawn: asRoot ? { uid: 65534, gid: 65534 } : {} });
    if (!asRoot) chmodSync(dir, 0o700);
    expect(run.lines).toHaveLength(1);
    const line = run.lines[0] as { opened: boolean; error: { code: string; message: string } };
    expect(line.opened).toBe(false);
    expect(line.error.code).toBe('ERR_WEFT_DATA_DIR');
    expect(line.error.message).toContain(path);
    expect(line.error.message).toMatch(/EACCES/);
  });

  it('names the path when the data file is not LMDB (instead of letting lmdb-js crash the process)', async () => {
    const header = Buffer.alloc(8192);
    header.writeUInt16LE(0x08, 18);
    header.writeUInt32LE(0xbeefc0de, 24);
    header.writeUInt32LE(1, 28); // another data format version
    header.writeUInt32LE(4096, 48);
    for (const content of [Buffer.alloc(64 * 1024, 0x5a), Buffer.from('hello\n'), header]) {
      const path = freshPath();
      mkdirSync(path, { mode: 0o700 });
      writeFileSync(join(path, 'data.mdb'), content);
      const err = await expectWeftRejection(Partition.open(path, { durability: 'fsync' }), 'ERR_WEFT_DATA_DIR', /data\.mdb" is not an LMDB data file of format version 2; not opening it$/);
      expect(err.message).toContain(path);
      // A refused open leaves the path free for a later attempt.
      rmSync(join(path, 'data.mdb'));
      const p = await Partition.open(path, { durability: 'fsync' });
      await p.close();
    }
  });

  it('refuses another format version and a read-only open of a missing path', async () => {
    const path = freshPath();
    const p = await Partition.open(path, { durability: 'fsync' });
    // Reach the reserved key the way a future version would: through the recorder's own method.
    await p.write((ops) => (ops as unknown as { putMetaReserved(k: string, v: unknown): void }).putMetaReserved('partition/format', 99));
    await p.close();
    await expectWeftRejection(Partition.open(path, { durability: 'fsync' }), 'ERR_WEFT_DATA_DIR', /has format version 99; this weft reads version 1$/);
    const missing = freshPath();
    await expectWeftRejection(Partition.open(missing, { durability: 'fsync', readOnly: true }), 'ERR_WEFT_DATA_DIR', /: cannot open: ENOENT/);
    expect(existsSync(missing)).toBe(false);
    mkdirSync(missing, { mode: 0o700 });
    await expectWeftRejection(Partition.open(missing, { durability: 'fsync', readOnly: true }), 'ERR_WEFT_DATA_DIR', /data\.mdb" cannot be opened for reading \(ENOENT/);
  });

  it('fails a commit that cannot be written (file size limit), refusing every later write', async () => {
    const path = freshPath();
    // ulimit -f is in 1024-byte blocks; SIGXFSZ ignored turns the kill into an EFBIG error.
    const script = `ulimit -f 4096; trap '' XFSZ; exec "${process.execPath}" "${CHILD}" fsize "${path}" fsync`;
    const run = await runChild([], { timeoutMs: 30_000, command: ['/bin/sh', '-c', script] });
    expect(run.code).toBe(0);
    const line = run.lines[0] as { small: unknown; big: { code: string; message: string; cause: string }; after: { code: string; message: string }; stillReadable: number };
    expect(line.small).toBe('ok');
    expect(line.big.code).toBe('ERR_WEFT_DATA_DIR');
    expect(line.big.message).toContain(path);
    expect(line.big.message).toMatch(/: commit failed: (Input\/output error|File too large)$/);
    expect(line.after.code).toBe('ERR_WEFT_DATA_DIR');
    expect(line.after.message).toMatch(/refuses writes after a failed commit$/);
    expect(line.stillReadable).toBe(16);
    const p = await openP(path);
    expect(plain(p.getState(0, 'fsize/test', 'small'))).toEqual(new Uint8Array(16));
    expect(p.countState()).toBe(1);
  });
});
