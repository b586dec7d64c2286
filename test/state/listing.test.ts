/**
 * The listing core (src/state/listing.ts) on real LMDB partitions written by hand: the committed
 * view (base + PENDING epochs up to the committed one, later ones left out), the merge order
 * against LMDB's own key order, paging, and snapshot isolation.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PendingKind, encodeStates } from '../../src/state/checkpoint-format.js';
import { Partition, type PartitionSnapshot } from '../../src/state/partition.js';
import { compareIds, listCommitted, type CommittedView, type ResolvedInstancesOptions, type StateReader } from '../../src/state/listing.js';

const T = 'list/item';
const enc = (s: string): Uint8Array => new Uint8Array(Buffer.from(s));
/** Records here are plain text; "absent" marks a record whose values are all gone (e.g. expired). */
const read: StateReader = (_type, bytes) => {
  const v = Buffer.from(bytes).toString();
  return v === 'absent' ? undefined : { v };
};
const ALL: ResolvedInstancesOptions = { prefix: '', after: undefined, limit: Number.POSITIVE_INFINITY, withState: true };

const dirs: string[] = [];
const open: Partition[] = [];
afterEach(async () => {
  for (const p of open.splice(0)) await p.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function partition(): Promise<Partition> {
  const dir = mkdtempSync(join(tmpdir(), 'weft-listing-'));
  dirs.push(dir);
  const p = await Partition.open(dir, { durability: 'process' });
  open.push(p);
  return p;
}

/** Two partitions (shards) of 8 key groups: kg 0-3 on shard 0, 4-7 on shard 1. */
function view(snaps: PartitionSnapshot[], committedEpoch: number): CommittedView {
  return { snapshots: snaps, committedEpoch, keyGroups: 8, shardOf: (kg) => (kg < 4 ? 0 : 1) };
}

const kgOf = (id: string): number => [...id].reduce((a, c) => a + (c.codePointAt(0) as number), 0) % 8;

function list(v: CommittedView, opts: Partial<ResolvedInstancesOptions> = {}): Array<[string, unknown]> {
  return [...listCommitted(v, T, { ...ALL, ...opts }, read)].map((e) => [e.id, e.state?.v]);
}

describe('listCommitted', () => {
  it('reads base + committed PENDING epochs in order, leaves out later epochs, deleted and absent records', async () => {
    const shards = [await partition(), await partition()];
    const base = ['a1', 'a2', 'a3', 'b1', 'b2', 'c1', 'gone', 'stale'];
    for (const id of base) {
      const kg = kgOf(id);
      await shards[kg < 4 ? 0 : 1]!.write((ops) => {
        ops.putState(kg, T, id, enc(`base-${id}`));
        ops.putState(kg, 'list/other', id, enc('other type'));
      });
    }
    const pend = async (epoch: number, changes: Array<[string, string | null]>): Promise<void> => {
      for (const s of [0, 1]) {
        const mine = changes.filter(([id]) => (kgOf(id) < 4 ? 0 : 1) === s).map(([id, v]) => [kgOf(id), T, id, v === null ? null : enc(v)] as const);
        await shards[s]!.write((ops) => ops.putPending([epoch, PendingKind.States], encodeStates(mine as never)));
      }
    };
    // Epoch 3 (committed): update a2, delete gone, add new-1 and new-2.
    await pend(3, [['a2', 'e3-a2'], ['gone', null], ['new-1', 'e3-new-1'], ['new-2', 'e3-new-2']]);
    // Epoch 4 (committed): update a2 again and b1, delete new-2, "stale" now holds only expired
    // values.
    await pend(4, [['a2', 'e4-a2'], ['b1', 'e4-b1'], ['new-2', null], ['stale', 'absent']]);
    // Epoch 5: written but not committed — must not be seen.
    await pend(5, [['a1', 'e5-a1'], ['new-5', 'e5-new-5'], ['a3', null]]);

    const v = view(shards.map((p) => p.snapshot()), 4);
    expect(list(v)).toEqual([
      ['a1', 'base-a1'],
      ['a2', 'e4-a2'],
      ['a3', 'base-a3'],
      ['b1', 'e4-b1'],
      ['b2', 'base-b2'],
      ['c1', 'base-c1'],
      ['new-1', 'e3-new-1'],
    ]);
    // At epoch 5 the uncommitted epoch counts.
    const v5 = view(shards.map((p) => p.snapshot()), 5);
    expect(list(v5).map(([id]) => id)).toEqual(['a1', 'a2', 'b1', 'b2', 'c1', 'new-1', 'new-5']);
    // Prefix, after and limit, across base and PENDING ids.
    expect(list(v, { prefix: 'a' }).map(([id]) => id)).toEqual(['a1', 'a2', 'a3']);
    expect(list(v, { after: 'a2', limit: 3 }).map(([id]) => id)).toEqual(['a3', 'b1', 'b2']);
    expect(list(v, { prefix: 'new', after: 'a9' }).map(([id]) => id)).toEqual(['new-1']);
    expect(list(v, { prefix: 'zz' })).toEqual([]);
    expect(list(v, { withState: false })[0]).toEqual(['a1', undefined]);
  });

  it('yields ids in LMDB key order across key groups, and pages through them with after', async () => {
    const shards = [await partition(), await partition()];
    const ids = [
      'a', 'b', 'B', 'a b', 'a-b', 'é', 'ü', '\u{1F600}', '\u{10FFFF}', '\uFFFD', '\uE000', '\u00FF',
      '\u0001x', 'x\u0001', 'x\u0004y', 'x\u0005', '\u001bz', '\u001cz', ' ', '0', '10', '9', 'y'.repeat(70), `${'y'.repeat(70)}a`,
      '<script>alert(1)</script>', 'id/with/slashes', '\u{1F600}b', '\u{1F600}a',
    ];
    for (const id of ids) {
      const kg = kgOf(id);
      await shards[kg < 4 ? 0 : 1]!.write((ops) => ops.putState(kg, T, id, enc(id)));
    }
    // LMDB's own order within each key group agrees with compareIds.
    for (let kg = 0; kg < 8; kg++) {
      const stored = [...shards[kg < 4 ? 0 : 1]!.states(kg)].map((e) => e.id);
      expect(stored).toEqual([...stored].sort(compareIds));
    }
    const v = view(shards.map((p) => p.snapshot()), 0);
    const all = list(v).map(([id]) => id);
    expect(all).toEqual([...ids].sort(compareIds));
    expect(all.indexOf('\uFFFD')).toBeLessThan(all.indexOf('\u{1F600}')); // code point order, not UTF-16's
    // Pages of 5 with `after` give the same sequence, each id once.
    const paged: string[] = [];
    for (let after: string | undefined; ; ) {
      const page = list(v, { limit: 5, ...(after === undefined ? {} : { after }) }).map(([id]) => id);
      paged.push(...page);
      if (page.length < 5) break;
      after = page[page.length - 1];
    }
    expect(paged).toEqual(all);
    // A prefix holding a character U+0000..U+0004 is filtered over the whole range.
    expect(list(v, { prefix: 'x\u0001' }).map(([id]) => id)).toEqual(['x\u0001']);
    expect(list(v, { prefix: 'x' }).map(([id]) => id)).toEqual(['x\u0001', 'x\u0004y', 'x\u0005']);
  });

  it('merges more committed changes than one overlay window holds, exactly as a model says', async () => {
    const shards = [await partition(), await partition()];
    const model = new Map<string, string>();
    const id = (i: number): string => `m${String(i).padStart(6, '0')}`;
    // Base: 5000 ids.
    for (const s of [0, 1]) {
      await shards[s]!.write((ops) => {
        for (let i = 0; i < 5000; i++) {
          if ((kgOf(id(i)) < 4 ? 0 : 1) === s) ops.putState(kgOf(id(i)), T, id(i), enc(`b${i}`));
        }
      });
    }
    for (let i = 0; i < 5000; i++) model.set(id(i), `b${i}`);
    const epoch = async (e: number, changes: Array<[number, string | null]>): Promise<void> => {
      for (const s of [0, 1]) {
        const mine = changes.filter(([i]) => (kgOf(id(i)) < 4 ? 0 : 1) === s).map(([i, v]) => [kgOf(id(i)), T, id(i), v === null ? null : enc(v)] as const);
        await shards[s]!.write((ops) => ops.putPending([e, PendingKind.States], encodeStates(mine as never)));
      }
      if (e <= 3) for (const [i, v] of changes) (v === null ? model.delete(id(i)) : model.set(id(i), v));
    };
    // 20k upserts over base and new ids (more than the 8192-id window), then deletes, then re-adds.
    await epoch(1, Array.from({ length: 20_000 }, (_, k) => [k * 3, `e1-${k}`] as [number, string]));
    await epoch(2, Array.from({ length: 6000 }, (_, k) => [k * 7, null] as [number, null]));
    await epoch(3, Array.from({ length: 1000 }, (_, k) => [k * 49, `e3-${k}`] as [number, string]));
    await epoch(4, Array.from({ length: 1000 }, (_, k) => [k * 5 + 1, 'uncommitted'] as [number, string]));
    const v = view(shards.map((p) => p.snapshot()), 3);
    const expected = [...model.entries()].sort(([a], [b]) => compareIds(a, b));
    expect(list(v)).toEqual(expected);
    // Pages of 100 (a window of 100 each) resumed with `after`, over the first 3000.
    const paged: Array<[string, unknown]> = [];
    for (let after: string | undefined; paged.length < 3000; ) {
      const page = list(v, { limit: 100, ...(after === undefined ? {} : { after }) });
      paged.push(...page);
      after = page[page.length - 1]![0];
    }
    expect(paged).toEqual(expected.slice(0, 3000));
    expect(list(v, { prefix: 'm0010', withState: true })).toEqual(expected.filter(([k]) => k.startsWith('m0010')));
  });

  it('keeps reading its snapshot while the partition is folded and rewritten', async () => {
    const shards = [await partition(), await partition()];
    for (let i = 0; i < 600; i++) {
      const id = `k${String(i).padStart(4, '0')}`;
      const kg = kgOf(id);
      await shards[kg < 4 ? 0 : 1]!.write((ops) => ops.putState(kg, T, id, enc('old')));
    }
    const snaps = shards.map((p) => p.snapshot());
    const it = listCommitted(view(snaps, 0), T, ALL, read);
    const first = [...Array(10)].map(() => it.next().value);
    expect(first.map((e) => e?.id)).toEqual([...Array(10)].map((_, i) => `k${String(i).padStart(4, '0')}`));
    // Everything changes under the listing: rewritten, deleted, new ids.
    for (const p of shards) {
      await p.write((ops) => {
        for (let kg = 0; kg < 8; kg++) {
          ops.deleteKeyGroup(kg);
          ops.putState(kg, T, `new-${kg}`, enc('new'));
        }
      });
    }
    const rest = [...{ [Symbol.iterator]: () => it }];
    expect(rest).toHaveLength(590);
    expect(rest.every((e) => e.state?.v === 'old' && e.id.startsWith('k'))).toBe(true);
    for (const s of snaps) s.release();
    // A fresh snapshot sees the new contents; a released one refuses reads.
    expect(list(view(shards.map((p) => p.snapshot()), 0)).map(([id]) => id)).toEqual([...Array(8)].map((_, kg) => `new-${kg}`).sort(compareIds));
    expect(() => snaps[0]!.getState(0, T, 'k0000')).toThrow(/released/);
  });
});
