/**
 * `weft.instances` on a running engine (real shards, LMDB partitions, checkpoints) and on the test
 * harness: order across 2 and 4 shards, paging, states, consistency with the committed
 * checkpoint, deleted and expired instances, argument errors, close, and bounded memory over
 * 200k instances.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterEach, describe, expect, it } from 'vitest';
import { Weft, type InstanceEntry } from '../../src/index.js';
import { createTestHarness, type TestHarness } from '../../src/testing/index.js';
import { compareIds } from '../../src/state/listing.js';
import { keyGroupOf, shardOfKeyGroup } from '../../src/contract/partitioner.js';
import { expectWeftError, expectWeftRejection, within } from '../helpers/index.js';
import { fixture, removeDir, tempDir } from './helpers.js';

const item = (id: string) => ({ type: 'list/item', id });
const running: Weft[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const w of running.splice(0)) await w.close();
  for (const d of dirs.splice(0)) removeDir(d);
});

async function start(shards: number, extra: Partial<Parameters<typeof Weft.start>[0]> = {}): Promise<Weft> {
  const dataDir = tempDir('weft-listing-');
  dirs.push(dataDir);
  const weft = await Weft.start({ module: fixture('listing'), dataDir, shards, durability: 'process', ...extra });
  running.push(weft);
  return weft;
}

type Lister = Pick<Weft, 'instances'> | Pick<TestHarness, 'instances'>;

async function all(w: Lister, type: string, opts: { prefix?: string; after?: string; limit?: number } = {}): Promise<string[]> {
  const out: string[] = [];
  await within(
    (async () => {
      for await (const id of w.instances(type, opts)) out.push(id);
    })(),
    30_000,
    `listing ${type}`,
  );
  return out;
}

async function states(w: Lister, type: string): Promise<InstanceEntry[]> {
  const out: InstanceEntry[] = [];
  for await (const e of w.instances(type, { withState: true })) out.push(e);
  return out;
}

/** Ids of several shapes: numbers, unicode (incl. astral), markup, slashes. */
const IDS = [...Array.from({ length: 150 }, (_, i) => `user-${i}`), 'é', 'ü-x', '\u{1F600}', '\uFFFD', '<script>alert(1)</script>', 'a/b/c', 'Z', ' lead'];

describe('weft.instances', () => {
  for (const shards of [2, 4]) {
    it(`lists every committed id of the type once, in id order, across ${shards} shards; pages with prefix/after/limit`, async () => {
      const weft = await start(shards);
      await Promise.all(IDS.map((id, i) => weft.send(item(id), { op: 'set', n: i })));
      await Promise.all(['x', 'y', 'user-1'].map((id) => weft.send({ type: 'list/other', id }, 1)));
      const expected = [...IDS].sort(compareIds);
      expect(await all(weft, 'list/item')).toEqual(expected);
      expect(await all(weft, 'list/other')).toEqual(['user-1', 'x', 'y']);
      // The ids live on every shard: the listing merged all of them.
      expect(new Set(IDS.map((id) => shardOfKeyGroup(keyGroupOf('list/item', id, 128), shards, 128))).size).toBe(shards);
      // Prefix.
      expect(await all(weft, 'list/item', { prefix: 'user-1' })).toEqual(expected.filter((id) => id.startsWith('user-1')));
      expect(await all(weft, 'list/item', { prefix: 'nobody' })).toEqual([]);
      // Pages of 7 resumed with `after` give the whole list, each id once.
      const paged: string[] = [];
      let after: string | undefined;
      for (let pages = 0; ; pages++) {
        expect(pages).toBeLessThan(100);
        const page = await all(weft, 'list/item', { limit: 7, ...(after === undefined ? {} : { after }) });
        paged.push(...page);
        if (page.length < 7) break;
        after = page[page.length - 1];
      }
      expect(paged).toEqual(expected);
      expect(await all(weft, 'list/item', { prefix: 'user-1', after: 'user-12', limit: 3 })).toEqual(expected.filter((id) => id.startsWith('user-1') && compareIds(id, 'user-12') > 0).slice(0, 3));
      // withState gives what weft.query gives.
      const entries = await states(weft, 'list/item');
      expect(entries.map((e) => e.id)).toEqual(expected);
      for (const e of entries.slice(0, 20)) expect(e.state).toEqual(await weft.query(item(e.id)));
      expect(entries.find((e) => e.id === '<script>alert(1)</script>')?.state).toEqual({ n: IDS.indexOf('<script>alert(1)</script>') });
    });
  }

  it('reads the committed checkpoint only: later changes appear with the next commit; a listing keeps its snapshot', async () => {
    // No periodic checkpoints: only checkpoint() commits. A small cache makes every commit fold.
    const weft = await start(2, { checkpointIntervalMs: 0, cacheSize: 16 });
    const committed = Array.from({ length: 40 }, (_, i) => `c-${String(i).padStart(2, '0')}`);
    for (const id of committed) void weft.send(item(id), { op: 'set', n: 1 });
    await weft.idle();
    // Processed, not committed: nothing to list yet.
    expect(await all(weft, 'list/item')).toEqual([]);
    await weft.checkpoint();
    expect(await all(weft, 'list/item')).toEqual(committed);
    // Changes after the commit: an update, a new instance, a delete.
    void weft.send(item('c-00'), { op: 'set', n: 2 });
    void weft.send(item('later'), { op: 'set', n: 3 });
    void weft.send(item('c-01'), { op: 'delete' });
    await weft.idle();
    expect(await weft.query(item('c-00'))).toEqual({ n: 2 });
    const before = await states(weft, 'list/item');
    expect(before.map((e) => e.id)).toEqual(committed);
    expect(before[0]).toEqual({ id: 'c-00', state: { n: 1 } });
    // The delete, once committed, removes c-01.
    await weft.checkpoint();
    expect(await all(weft, 'list/item')).toEqual([...committed.filter((id) => id !== 'c-01'), 'later'].sort(compareIds));
    // A listing started before the next commits keeps seeing its checkpoint, through folds.
    const it = weft.instances('list/item', { withState: true });
    const first = await it.next();
    expect(first.value).toEqual({ id: 'c-00', state: { n: 2 } });
    for (const id of committed) void weft.send(item(id), { op: 'set', n: 9 });
    await weft.idle();
    await weft.checkpoint();
    await weft.checkpoint();
    const rest: InstanceEntry[] = [];
    for (let r = await it.next(); r.done !== true; r = await it.next()) rest.push(r.value);
    expect(rest.map((e) => e.id)).toEqual([...committed.slice(2), 'later'].sort(compareIds));
    expect(rest.every((e) => e.state.n === (e.id === 'later' ? 3 : 1))).toBe(true);
    // A new listing sees the latest commit (c-01 was deleted, then set again).
    const after = await states(weft, 'list/item');
    expect(after.map((e) => e.id)).toEqual([...committed, 'later'].sort(compareIds));
    expect(after.every((e) => e.state.n === (e.id === 'later' ? 3 : 9))).toBe(true);
  });

  it('leaves out deleted instances and instances whose values all expired', async () => {
    const weft = await start(2, { checkpointIntervalMs: 20 });
    await Promise.all(['a', 'b', 'c'].map((id) => weft.send(item(id), { op: 'set', n: 1 })));
    await weft.send(item('b'), { op: 'delete' });
    expect(await all(weft, 'list/item')).toEqual(['a', 'c']);
    const writtenAt = Date.now();
    await weft.send({ type: 'list/ttl', id: 'short' }, 'v');
    const listed = await all(weft, 'list/ttl');
    // expireAfterWrite is 400 ms: listed before, absent after, as weft.query says.
    if (Date.now() - writtenAt < 400) expect(listed).toEqual(['short']);
    await within(
      (async () => {
        while ((await all(weft, 'list/ttl')).length > 0) await new Promise((r) => setTimeout(r, 50));
      })(),
      10_000,
      'the expired instance leaving the listing',
    );
    expect(Date.now() - writtenAt).toBeGreaterThanOrEqual(400);
    expect(await weft.query({ type: 'list/ttl', id: 'short' })).toBeUndefined();
  });

  it('refuses bad arguments with named values, and ends with the engine', async () => {
    const weft = await start(2);
    expectWeftError(() => weft.instances('no/such'), 'ERR_WEFT_UNKNOWN_FUNCTION', 'weft.instances: no function of type "no/such" is defined');
    expectWeftError(() => weft.instances('bad type' as string), 'ERR_WEFT_INVALID_ARG', /weft.instances type must be a function typename .*"bad type"/);
    expectWeftError(() => weft.instances('list/item', { limit: 0 }), 'ERR_WEFT_INVALID_ARG', 'weft.instances options.limit must be a positive integer (got 0)');
    expectWeftError(() => weft.instances('list/item', { limit: 1.5 }), 'ERR_WEFT_INVALID_ARG', /options.limit .*1.5/);
    expectWeftError(() => weft.instances('list/item', { prefix: 5 as unknown as string }), 'ERR_WEFT_INVALID_ARG', /options.prefix must be .*\(got 5\)/);
    expectWeftError(() => weft.instances('list/item', { after: '' }), 'ERR_WEFT_INVALID_ARG', /options.after must be a non-empty/);
    expectWeftError(() => weft.instances('list/item', { withState: 'yes' as unknown as boolean }), 'ERR_WEFT_INVALID_ARG', /options.withState must be a boolean \(got "yes"\)/);
    expectWeftError(() => weft.instances('list/item', { limt: 3 } as never), 'ERR_WEFT_INVALID_ARG', /options.limt is not an option/);
    expectWeftError(() => weft.instances('list/item', 'x' as never), 'ERR_WEFT_INVALID_ARG', /options must be an object \(got "x"\)/);
    // A listing open when the engine closes ends with ERR_WEFT_CLOSED; later calls are refused.
    await Promise.all(Array.from({ length: 3000 }, (_, i) => weft.send(item(`k${i}`), { op: 'set', n: i })));
    const it = weft.instances('list/item');
    expect((await it.next()).done).toBe(false);
    await weft.close();
    await expectWeftRejection(async () => {
      for (let r = await it.next(); r.done !== true; r = await it.next());
    }, 'ERR_WEFT_CLOSED', 'weft.instances: the engine closed during the listing');
    expectWeftError(() => weft.instances('list/item'), 'ERR_WEFT_CLOSED', 'weft.instances() called after close()');
  });

  it('keeps working across the death and recovery of a shard worker while the main thread has the partitions open', async () => {
    const dataDir = tempDir('weft-listing-crash-');
    dirs.push(dataDir);
    const weft = await Weft.start({ module: fixture('xfer'), dataDir, shards: 2, durability: 'process', checkpointIntervalMs: 10 });
    running.push(weft);
    const acct = (i: number) => ({ type: 'xfer/account', id: `x-${i}` });
    await Promise.all(Array.from({ length: 20 }, (_, i) => weft.send(acct(i), { op: 'credit', id: i, amount: 1 })));
    expect(await all(weft, 'xfer/account')).toHaveLength(20);
    const flagFile = join(dataDir, 'crash.flag');
    writeFileSync(flagFile, 'crash once');
    await weft.send(acct(1), { op: 'crash', flagFile, how: 'exit' });
    await within(Promise.all(Array.from({ length: 20 }, (_, i) => weft.send(acct(20 + i), { op: 'credit', id: 100 + i, amount: 1 }))), 30_000, 'sends after the recovery');
    expect(weft.metrics().recoveries).toBe(1);
    await weft.checkpoint();
    expect(await all(weft, 'xfer/account')).toEqual(Array.from({ length: 40 }, (_, i) => `x-${i}`).sort(compareIds));
    // The recovered shards still commit (the partitions the main thread holds open stay writable for them).
    await within(weft.send(acct(0), { op: 'credit', id: -1, amount: 5 }), 10_000, 'a send after the listing');
    expect(((await weft.query(acct(0)))?.credited as number[]).includes(-1)).toBe(true);
  });

  it('streams 200k instances with bounded memory', async () => {
    // A small cache: the shards fold committed epochs into the base quickly (see listing.ts on
    // what a listing holds: a chunk per key group, plus the committed changes not yet folded).
    const weft = await start(2, { cacheSize: 2000 });
    const N = 200_000;
    const pad = 'x'.repeat(40);
    const idOf = (i: number): string => `item-${String(i).padStart(7, '0')}-${pad}`;
    const BATCH = 20_000;
    for (let i = 0; i < N; i += BATCH) {
      await Promise.all(Array.from({ length: BATCH }, (_, j) => weft.send(item(idOf(i + j)), { op: 'set', n: i + j })));
    }
    await weft.checkpoint();
    await weft.checkpoint();
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    gc();
    const base = process.memoryUsage().heapUsed;
    let peak = 0;
    let n = 0;
    let last = '';
    let ordered = true;
    await within(
      (async () => {
        for await (const id of weft.instances('list/item')) {
          if (id <= last) ordered = false;
          last = id;
          if (++n % 20_000 === 0) {
            gc();
            peak = Math.max(peak, process.memoryUsage().heapUsed - base);
          }
        }
      })(),
      60_000,
      'listing 200k instances',
    );
    expect(n).toBe(N);
    expect(ordered).toBe(true);
    // The ids alone take > 12 MB of heap if held at once (200k strings of 53 characters).
    const dataBytes = N * (idOf(0).length + 16);
    expect(dataBytes).toBeGreaterThan(12e6);
    if (process.env.WEFT_LISTING_REPORT !== undefined) console.log(`listing 200k: peak heap growth ${peak} bytes, data ${dataBytes} bytes`);
    expect(peak).toBeLessThan(dataBytes / 4);
  });
});

describe('harness.instances', () => {
  it('lists like the engine: order, paging, states, deleted and expired instances, errors', async () => {
    const h = await createTestHarness(fixture('listing'));
    try {
      for (const [i, id] of IDS.entries()) await h.send(item(id), { op: 'set', n: i });
      await h.send({ type: 'list/other', id: 'x' }, 1);
      const expected = [...IDS].sort(compareIds);
      expect(await all(h, 'list/item')).toEqual(expected);
      expect(await all(h, 'list/item', { prefix: 'user-1', after: 'user-12', limit: 3 })).toEqual(expected.filter((id) => id.startsWith('user-1') && compareIds(id, 'user-12') > 0).slice(0, 3));
      const entries = await states(h, 'list/item');
      expect(entries.find((e) => e.id === 'é')).toEqual({ id: 'é', state: { n: IDS.indexOf('é') } });
      await h.send(item('é'), { op: 'delete' });
      expect(await all(h, 'list/item')).not.toContain('é');
      await h.send({ type: 'list/ttl', id: 't' }, 'v');
      expect(await all(h, 'list/ttl')).toEqual(['t']);
      await h.advance(400);
      expect(await all(h, 'list/ttl')).toEqual([]);
      expectWeftError(() => h.instances('no/such'), 'ERR_WEFT_UNKNOWN_FUNCTION', 'weft.instances: no function of type "no/such" is defined');
      expectWeftError(() => h.instances('list/item', { limit: -1 }), 'ERR_WEFT_INVALID_ARG', 'weft.instances options.limit must be a positive integer (got -1)');
    } finally {
      await h.close();
    }
    expectWeftError(() => h.instances('list/item'), 'ERR_WEFT_CLOSED', 'weft.instances() called after close()');
  });
});
