/**
 * The shard's bounded instance cache: CLOCK eviction, dirty instances kept until a snapshot takes
 * them, and the latest unfolded record served after an eviction (the base would be stale).
 */
import { describe, expect, it } from 'vitest';
import { InstanceCache, type StateChange } from '../../src/state/instance-cache.js';
import { Instance, Slot, decodeInstanceInto, decodeRecord, encodeInstance } from '../../src/state/instance.js';
import { type } from '../../src/index.js';
import { boundEncoder, type ValueType } from '../../src/codec/types.js';
import { WeftError } from '../../src/core/errors.js';
import { decodeStates } from '../../src/state/checkpoint-format.js';

const int = type.int();
const T = 'test/counter';
const key = (id: string): string => `${T}\u0000${id}`;

/** A fake partition base: id → record, counting reads. */
class Base {
  readonly records = new Map<string, Uint8Array>();
  reads = 0;
  readonly load = (_kg: number, _type: string, id: string): Uint8Array | undefined => {
    this.reads++;
    const r = this.records.get(id);
    return r === undefined ? undefined : Buffer.from(r);
  };

  put(id: string, value: number): void {
    const inst = new Instance(key(id), T, id, 0);
    inst.slots.set('n', new Slot(int.encode(value), 0, undefined, false));
    this.records.set(id, encodeInstance(inst) as Uint8Array);
  }
}

function valueOf(inst: Instance): number | undefined {
  const slot = inst.slots.get('n');
  return slot === undefined ? undefined : (int.decode(slot.bytes) as number);
}

function write(cache: InstanceCache, id: string, value: number): void {
  const inst = cache.get(key(id), T, id, 0);
  const slot = new Slot(int.encode(value), 0, undefined, false);
  const existing = inst.slots.get('n');
  if (existing === undefined) inst.slots.set('n', slot);
  else existing.assign(slot);
  cache.markDirty(inst);
}

/** Touches `count` other ids so the cache must evict. */
function churn(cache: InstanceCache, prefix: string, count: number): void {
  for (let i = 0; i < count; i++) cache.get(key(`${prefix}${i}`), T, `${prefix}${i}`, 0);
}

describe('InstanceCache', () => {
  it('loads from the base on a miss and hits afterwards', () => {
    const base = new Base();
    base.put('a', 5);
    const cache = new InstanceCache(100, base.load);
    const a = cache.get(key('a'), T, 'a', 0);
    expect(valueOf(a)).toBe(5);
    expect(cache.get(key('a'), T, 'a', 0)).toBe(a);
    expect([cache.hits, cache.misses, base.reads]).toEqual([1, 1, 1]);
    expect(cache.get(key('b'), T, 'b', 0).isEmpty).toBe(true);
  });

  it('never evicts dirty instances, and stays near its size once they are clean', () => {
    const base = new Base();
    const cache = new InstanceCache(64, base.load);
    for (let i = 0; i < 200; i++) write(cache, `d${i}`, i);
    churn(cache, 'x', 200);
    for (let i = 0; i < 200; i++) expect(cache.peek(key(`d${i}`))).toBeDefined();
    expect(cache.takeChanges(1)).toHaveLength(200);
    churn(cache, 'y', 200);
    expect(cache.size).toBeLessThanOrEqual(64);
    expect(cache.evictions).toBeGreaterThan(0);
  });

  it('after an eviction, serves the latest record a snapshot took until its epoch is folded', () => {
    const base = new Base();
    base.put('a', 1);
    const cache = new InstanceCache(16, base.load);
    write(cache, 'a', 2);
    const [change] = cache.takeChanges(7);
    expect(decodeRecord(change?.[3] as Uint8Array).slots[0]?.[0]).toBe('n');
    // Epoch 7 is not folded: the base still says 1. Evict 'a' and read it again.
    churn(cache, 'x', 100);
    expect(cache.peek(key('a'))).toBeUndefined();
    expect(cache.unfoldedCount).toBe(1);
    const reads = base.reads;
    expect(valueOf(cache.get(key('a'), T, 'a', 0))).toBe(2);
    expect(base.reads).toBe(reads);
    // A later change and snapshot replace the unfolded record; folding the older epoch keeps it.
    write(cache, 'a', 3);
    cache.takeChanges(8);
    cache.foldedEpoch = 7;
    churn(cache, 'y', 100);
    expect(valueOf(cache.get(key('a'), T, 'a', 0))).toBe(3);
    // Folding epoch 8 puts the record in the base (the partition's job): the entry goes.
    base.put('a', 3);
    cache.foldedEpoch = 8;
    expect(cache.unfoldedCount).toBe(0);
    churn(cache, 'z', 100);
    expect(valueOf(cache.get(key('a'), T, 'a', 0))).toBe(3);
  });

  it('serves a deletion a snapshot took (not the stale base record)', () => {
    const base = new Base();
    base.put('gone', 9);
    const cache = new InstanceCache(16, base.load);
    const inst = cache.get(key('gone'), T, 'gone', 0);
    inst.slots.clear();
    cache.markDirty(inst);
    expect(cache.takeChanges(3)[0]?.[3]).toBeNull();
    churn(cache, 'x', 100);
    expect(cache.peek(key('gone'))).toBeUndefined();
    expect(cache.get(key('gone'), T, 'gone', 0).isEmpty).toBe(true);
  });

  it('clear() forgets cached instances and unfolded records (a recovery reloads the base)', () => {
    const base = new Base();
    base.put('a', 1);
    const cache = new InstanceCache(16, base.load);
    write(cache, 'a', 2);
    cache.takeChanges(1);
    const a = cache.peek(key('a')) as Instance;
    cache.clear();
    expect(a.evicted).toBe(true);
    expect(cache.unfoldedCount).toBe(0);
    expect(valueOf(cache.get(key('a'), T, 'a', 0))).toBe(1);
  });
});

/** write(), with the copy-on-write call every mutation of the engine makes first. */
function change(cache: InstanceCache, id: string, value: number): void {
  const inst = cache.get(key(id), T, id, 0);
  cache.willChange(inst);
  write(cache, id, value);
}

const recordValue = (c: StateChange | undefined): number => int.decode(decodeRecord(c?.[3] as Uint8Array).slots[0]?.[1] as Uint8Array) as number;

describe('InstanceCache capture (copy on write)', () => {
  it('captures each instance as it was at beginCapture, in slices, even when it changes before its slice', () => {
    const cache = new InstanceCache(10_000, new Base().load);
    for (let i = 0; i < 1000; i++) change(cache, `c${i}`, i);
    const capture = cache.beginCapture(4);
    expect(cache.capturing).toBe(true);
    // Nothing encoded yet; instances change before their turn: the capture keeps the old value.
    expect(capture.count).toBe(0);
    for (let i = 0; i < 1000; i += 10) change(cache, `c${i}`, i + 1_000_000);
    expect(capture.count).toBe(100);
    // A deadline already passed still makes progress: one step of instances per call.
    let calls = 0;
    while (!cache.captureSome(0)) {
      calls++;
      if (calls > 1000) throw new Error('capture never completed');
    }
    expect(calls).toBeGreaterThan(1);
    expect(cache.capturing).toBe(false);
    const out = decodeStates(capture.finish());
    expect(out).toHaveLength(1000);
    const byId = new Map(out.map((c) => [c[2], c]));
    for (let i = 0; i < 1000; i++) expect(recordValue(byId.get(`c${i}`))).toBe(i);
    // The changed ones are dirty for the next snapshot, with their new values.
    const next = cache.takeChanges(5);
    expect(next.map((c) => c[2]).sort()).toEqual(Array.from({ length: 100 }, (_, k) => `c${k * 10}`).sort());
    for (const c of next) expect(recordValue(c)).toBe(Number(c[2].slice(1)) + 1_000_000);
  });

  it('pins instances until they are captured, and serves their captured record after eviction', () => {
    const base = new Base();
    const cache = new InstanceCache(16, base.load);
    for (let i = 0; i < 40; i++) change(cache, `p${i}`, i);
    cache.beginCapture(1);
    churn(cache, 'x', 200);
    for (let i = 0; i < 40; i++) expect(cache.peek(key(`p${i}`))).toBeDefined();
    cache.finishCapture();
    churn(cache, 'y', 200);
    expect(cache.peek(key('p0'))).toBeUndefined();
    // Not folded yet: read back from the captured record, not the (empty) base.
    expect(valueOf(cache.get(key('p0'), T, 'p0', 0))).toBe(0);
    expect(valueOf(cache.get(key('p39'), T, 'p39', 0))).toBe(39);
  });

  it('a new capture finishes the one in progress first', () => {
    const cache = new InstanceCache(10_000, new Base().load);
    for (let i = 0; i < 3000; i++) change(cache, `s${i}`, i);
    const firstCapture = cache.beginCapture(1);
    change(cache, 's0', -1);
    const secondCapture = cache.beginCapture(2);
    const first = decodeStates(firstCapture.finish());
    expect(first).toHaveLength(3000);
    expect(recordValue(first.find((c) => c[2] === 's0'))).toBe(0);
    cache.finishCapture();
    const second = decodeStates(secondCapture.finish());
    expect(second.map((c) => c[2])).toEqual(['s0']);
    expect(recordValue(second[0])).toBe(-1);
    for (const c of first) expect(recordValue(c)).toBe(Number(c[2].slice(1)));
  });
});

describe('instance records with applied idempotency keys (v3)', () => {
  it('keep the keys and their replies across encode/decode, apart from the state slots', () => {
    const inst = new Instance('t\u0000a', 't', 'a', 3);
    inst.calledAt = 7;
    inst.slots.set('n', new Slot(new Uint8Array([1, 2]), 5, undefined, false));
    inst.applied = new Map([
      ['k1', [100, 'weft/int', new Uint8Array([9])]],
      ['k2', [200, null, null]],
    ]);
    const bytes = encodeInstance(inst) as Uint8Array;
    const back = new Instance('t\u0000a', 't', 'a', 3);
    decodeInstanceInto(back, bytes);
    expect(back.calledAt).toBe(7);
    expect([...back.slots.keys()]).toEqual(['n']);
    expect(back.slots.get('n')?.bytes).toEqual(new Uint8Array([1, 2]));
    expect([...(back.applied ?? [])]).toEqual([
      ['k1', [100, 'weft/int', new Uint8Array([9])]],
      ['k2', [200, null, null]],
    ]);
    // What listing and inspect read: the state only.
    expect(decodeRecord(bytes).slots.map((s) => s[0])).toEqual(['n']);
  });

  it('are written for an instance holding keys only, and deleted once it holds nothing', () => {
    const inst = new Instance('t\u0000b', 't', 'b', 3);
    inst.applied = new Map([['k', [1, null, null]]]);
    expect(inst.isEmpty).toBe(false);
    const bytes = encodeInstance(inst) as Uint8Array;
    expect(decodeRecord(bytes).slots).toEqual([]);
    inst.applied = null;
    expect(encodeInstance(inst)).toBeNull();
  });
});

describe('instance records with values kept decoded (encoded only for a snapshot)', () => {
  it('are the bytes of the same record holding the encoded values', () => {
    const specs: Array<[string, ValueType<unknown>, unknown]> = [
      ['i', type.int() as ValueType<unknown>, -123456],
      ['z', type.int() as ValueType<unknown>, 0],
      ['l', type.long() as ValueType<unknown>, 2 ** 40 + 3],
      ['d', type.double() as ValueType<unknown>, -0],
      ['b', type.bool() as ValueType<unknown>, true],
      ['s', type.string() as ValueType<unknown>, 'text'],
    ];
    const lazy = new Instance('t\u0000a', 't', 'a', 3);
    const eager = new Instance('t\u0000a', 't', 'a', 3);
    lazy.calledAt = eager.calledAt = 1_796_000_000_123;
    for (const [name, t, v] of specs) {
      const slot = new Slot(null, 1_796_000_000_000, v, true, null, boundEncoder(t));
      lazy.slots.set(name, slot);
      expect(slot.lazyEncoder).not.toBeNull();
      eager.slots.set(name, new Slot(t.encode(v), 1_796_000_000_000, undefined, false));
    }
    const bytes = encodeInstance(lazy) as Uint8Array;
    expect(bytes).toEqual(encodeInstance(eager));
    const back = new Instance('t\u0000a', 't', 'a', 3);
    decodeInstanceInto(back, bytes);
    for (const [name, t, v] of specs) expect(t.decode(back.slots.get(name)?.bytes as Uint8Array)).toEqual(v);
    // A value the type refuses fails the encode, and the next record is whole.
    lazy.slots.set('bad', new Slot(null, 1, 2 ** 31, true, null, boundEncoder(type.int() as ValueType<unknown>)));
    expect(() => encodeInstance(lazy)).toThrow(WeftError);
    lazy.slots.delete('bad');
    expect(encodeInstance(lazy)).toEqual(encodeInstance(eager));
  });
});
