/**
 * Recovery of a partition from its PENDING epochs (checkpoint/participant.ts): committed epochs
 * are folded in order — state changes written as one value per epoch (PendingKind.States) — and
 * uncommitted ones are dropped.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Packr } from 'msgpackr';
import { recoverPartition } from '../../src/checkpoint/participant.js';
import { FrameEncoder } from '../../src/transport/framing.js';
import { META_FOLDED_EPOCH, PendingKind, StatesCapture, StatesReader, decodeEnvelopes, decodeStates, encodeEnvelopes, encodeStates } from '../../src/state/checkpoint-format.js';
import { envelope } from '../../src/contract/envelope.js';
import type { StateChange } from '../../src/state/instance-cache.js';
import { Partition } from '../../src/state/partition.js';
import { WeftError } from '../../src/core/errors.js';

const root = mkdtempSync(join(tmpdir(), 'weft-recovery-'));
let n = 0;
const opened: Partition[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((p) => p.close()));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

async function open(): Promise<Partition> {
  const p = await Partition.open(join(root, `p${n++}`), { durability: 'process' });
  opened.push(p);
  return p;
}

const rec = (...b: number[]): Uint8Array => Uint8Array.from(b);
const plain = (v: Uint8Array | undefined): number[] | undefined => (v === undefined ? undefined : [...v]);

describe('PendingKind.States', () => {
  it('round-trips an epoch of changes, deletions included', () => {
    const changes: StateChange[] = [
      [3, 'bank/account', 'alice', rec(1, 2, 3)],
      [3, 'bank/account', 'bob', null],
      [70000, 'x/y', 'ünïcode', new Uint8Array(300).fill(7)],
    ];
    const back = decodeStates(encodeStates(changes));
    expect(back.map(([kg, t, id, r]) => [kg, t, id, r === null ? null : [...r]])).toEqual(changes.map(([kg, t, id, r]) => [kg, t, id, r === null ? null : [...r]]));
    expect(() => decodeStates(Uint8Array.of(0x01))).toThrow(/not an array/);
  });
});

describe('StatesCapture and StatesReader', () => {
  const changes: StateChange[] = [
    [3, 'bank/account', 'alice', rec(1, 2, 3)],
    [3, 'bank/account', 'bob', null],
    // The same length as the type before it, other bytes: read as itself.
    [5, 'bank/acc0unt', 'carol', rec(4)],
    [70000, 'x/y', 'ünïcode', new Uint8Array(300).fill(7)],
    [127, 't'.repeat(40), 'i'.repeat(300), new Uint8Array(70_000).fill(1)],
  ];
  const plainChanges = (cs: StateChange[]): unknown[] => cs.map(([kg, t, id, r]) => [kg, t, id, r === null ? null : [...r]]);

  it('a capture built one change at a time decodes like encodeStates, and both read back change by change', () => {
    const capture = new StatesCapture();
    for (const c of changes) capture.add(...c);
    expect(capture.count).toBe(5);
    const bytes = capture.finish();
    expect(capture.finish()).toBe(bytes);
    expect(() => capture.add(1, 'a', 'b', null)).toThrow(/after finish/);
    expect(plainChanges(decodeStates(bytes))).toEqual(plainChanges(changes));
    for (const source of [bytes, encodeStates(changes), encodeStates([])]) {
      const reader = new StatesReader(source);
      const read: StateChange[] = [];
      while (reader.next()) read.push([reader.kg, reader.type, reader.id, reader.record]);
      expect(plainChanges(read)).toEqual(plainChanges(decodeStates(source)));
      expect(reader.remaining).toBe(0);
    }
  });

  it('reads keys only (nextKey), then any change again at its position (readAt), in any order', () => {
    const source = encodeStates(changes);
    const keys = new StatesReader(source);
    const positions: number[] = [];
    const read: unknown[] = [];
    for (;;) {
      positions.push(keys.position);
      if (!keys.nextKey()) break;
      expect(keys.record).toBeNull();
      read.push([keys.kg, keys.type, keys.id]);
    }
    positions.pop();
    expect(read).toEqual(changes.map(([kg, t, id]) => [kg, t, id]));
    expect(keys.remaining).toBe(0);
    // Backwards, so the type read last is rarely the one asked for (the reader compares bytes).
    const again = new StatesReader(source);
    for (let i = positions.length - 1; i >= 0; i--) {
      again.readAt(positions[i]!);
      expect(plainChanges([[again.kg, again.type, again.id, again.record]])).toEqual(plainChanges([changes[i]!]));
    }
    expect(() => again.readAt(source.length)).toThrow(/outside the value's/);
    expect(() => again.readAt(-1)).toThrow(/outside the value's/);
    // A truncated record is refused by nextKey as by next.
    const truncated = new StatesReader(encodeStates(changes.slice(0, 1)).subarray(0, 22));
    expect(() => truncated.nextKey()).toThrow(/end early/);
  });

  it('a change added from an encoder (addWritten) is the same bytes as one added as an array (add)', () => {
    const record = new FrameEncoder();
    const writeRecord = (bytes: Uint8Array): FrameEncoder => {
      // A record encoder holds a whole msgpack array; here one whose single element is `bytes`.
      record.startArray(1);
      record.append(bytes);
      return record;
    };
    const nonNull = changes.filter((c) => c[3] !== null);
    const viaAdd = new StatesCapture();
    for (const [kg, t, id, r] of nonNull) viaAdd.add(kg, t, id, writeRecord(r as Uint8Array).written().slice());
    const expected = viaAdd.finish();
    const viaWritten = new StatesCapture();
    for (const [kg, t, id, r] of nonNull) viaWritten.addWritten(kg, t, id, writeRecord(r as Uint8Array));
    expect(viaWritten.count).toBe(nonNull.length);
    expect(viaWritten.finish()).toEqual(expected);
    expect(() => viaWritten.addWritten(1, 'a', 'b', record)).toThrow(/after finish/);
  });

  it('one capture at a time per thread: a second one cannot start before the first is finished', () => {
    const first = new StatesCapture();
    first.add(1, 't/a', 'x', rec(1));
    expect(() => new StatesCapture()).toThrow(/still open/);
    first.finish();
    const second = new StatesCapture();
    second.add(2, 't/a', 'y', null);
    expect(decodeStates(second.finish())).toEqual([[2, 't/a', 'y', null]]);
    expect([...(decodeStates(first.finish())[0]?.[3] as Uint8Array)]).toEqual([1]);
  });

  it('a reader refuses bytes that are not pending state changes, naming what it found', () => {
    expect(() => new StatesReader(Uint8Array.of(0x01))).toThrow(/expected an array, found byte 0x1/);
    expect(() => new StatesReader(Uint8Array.of())).toThrow(/end early/);
    const truncated = encodeStates(changes.slice(0, 1)).subarray(0, 8);
    const reader = new StatesReader(truncated);
    expect(() => reader.next()).toThrow(/end early/);
    const wrongShape = new StatesReader(Uint8Array.of(0x91, 0x92, 0x01, 0x02));
    expect(() => wrongShape.next()).toThrow(/not \[kg, type, id, record\]/);
  });
});

describe('mailbox snapshots', () => {
  it('are the bytes msgpackr writes for the same envelopes, and decode back', () => {
    const envs = [
      envelope('t/a', 'x', null, null, 'weft.types/msgpack', rec(1), 0, 5),
      envelope('t/b', 'ünï', 't/a', 'x', 'com.example/Thing', new Uint8Array(70_000).fill(3), 12, 0),
      envelope('t/a', '', 't/b', 'y', 'io.statefun.types/int', new Uint8Array(0), 2 ** 32 + 1, 2 ** 31),
    ];
    const bytes = encodeEnvelopes(envs);
    expect([...bytes]).toEqual([...new Packr({ useRecords: false, moreTypes: false }).pack(envs)]);
    expect(decodeEnvelopes(bytes).map((e) => e.map((f) => (f instanceof Uint8Array ? f.length : f)))).toEqual(envs.map((e) => e.map((f) => (f instanceof Uint8Array ? f.length : f))));
  });
});

describe('recoverPartition', () => {
  it('folds committed epochs in order and drops the rest', async () => {
    const p = await open();
    await p.write((ops) => {
      ops.putState(1, 't/a', 'stale', rec(9));
      ops.putState(1, 't/a', 'doomed', rec(9));
      // Epoch 1 (committed): a write and a deletion.
      ops.putPending([1, PendingKind.States], encodeStates([
        [1, 't/a', 'early', rec(1)],
        [1, 't/a', 'doomed', null],
      ]));
      ops.putPending([1, PendingKind.Mailbox], encodeEnvelopes([]));
      // Epoch 2 (committed): overwrites epoch 1's 'early', so the epochs must fold in order.
      ops.putPending([2, PendingKind.States], encodeStates([
        [1, 't/a', 'stale', rec(2)],
        [1, 't/a', 'early', rec(22)],
        [2, 't/b', 'new', rec(2, 2)],
      ]));
      ops.putPending([2, PendingKind.Mailbox], encodeEnvelopes([envelope('t/a', 'stale', null, null, 'weft.types/msgpack', rec(1))]));
      // Epoch 3: never committed.
      ops.putPending([3, PendingKind.States], encodeStates([[1, 't/a', 'stale', rec(3)]]));
    });
    const r = await recoverPartition(p, 2);
    expect(r.folded).toBe(2);
    expect(plain(p.getState(1, 't/a', 'stale'))).toEqual([2]);
    expect(plain(p.getState(1, 't/a', 'early'))).toEqual([22]);
    expect(p.getState(1, 't/a', 'doomed')).toBeUndefined();
    expect(plain(p.getState(2, 't/b', 'new'))).toEqual([2, 2]);
    expect(r.mailbox.map((e) => e[2])).toEqual(['stale']);
    expect(p.pendingEpochs()).toEqual([]);
    expect(p.getMeta(META_FOLDED_EPOCH)).toBe(2);
  });

  // Kinds 1 and 2 (one entry per changed instance) were written by development builds only and
  // are no longer read: a committed epoch holding one is refused, not folded without it (which
  // would drop committed state changes and then delete the epoch).
  for (const kind of [1, 2]) {
    it(`refuses a committed epoch holding a PENDING entry of reserved kind ${kind}, and leaves the partition as it was`, async () => {
      const p = await open();
      await p.write((ops) => {
        ops.putState(1, 't/a', 'kept', rec(9));
        ops.putPending([1, kind, 1, 't/a', 'kept'], kind === 1 ? rec(1) : new Uint8Array(0));
        ops.putPending([1, PendingKind.Mailbox], encodeEnvelopes([]));
      });
      const err = await recoverPartition(p, 1).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(WeftError);
      expect((err as WeftError).code).toBe('ERR_WEFT_DATA_DIR');
      expect((err as WeftError).message).toBe(
        `committed checkpoint epoch 1 holds a PENDING entry of kind ${kind}, a per-instance format of development builds that this weft does not read; not recovering from it (the epoch is left as it is)`,
      );
      expect(p.pendingEpochs()).toEqual([1]);
      expect(plain(p.getState(1, 't/a', 'kept'))).toEqual([9]);
      expect(p.getMeta(META_FOLDED_EPOCH)).toBeUndefined();
    });
  }
});
