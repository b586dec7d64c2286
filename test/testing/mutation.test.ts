/**
 * In-place changes to state objects are stored, in the harness as in the engine
 * (test/engine/mutation.test.ts runs the same module on worker threads).
 */
import { afterEach, describe, expect, it } from 'vitest';
// The fixture imports 'weft' (the build): the harness comes from the same build, so weft's
// errors raised by its value types are the harness's own WeftError class.
import { createTestHarness, type TestHarness } from 'weft/testing';
import mutation from '../fixtures/mutation.js';

const to = { type: 'mut/list', id: 'l' };
let h: TestHarness;
afterEach(async () => h?.close());

describe('state changed in place (harness)', () => {
  it('stores ctx.state.items.push(x), and a re-read in the invocation sees it', async () => {
    h = await createTestHarness(mutation);
    expect(await h.request(to, { op: 'push', item: 'a' })).toEqual({ same: true, items: ['a'] });
    expect(await h.request(to, { op: 'push', item: 'b' })).toEqual({ same: true, items: ['a', 'b'] });
    expect((await h.query(to))?.items).toEqual(['a', 'b']);
  });

  it('stores an assigned object changed after the assignment, nested objects, bytes and msgpack values', async () => {
    h = await createTestHarness(mutation);
    expect(await h.request(to, { op: 'assignThenPush' })).toBe(true);
    for (let i = 0; i < 3; i++) {
      await h.send(to, { op: 'nested' });
      await h.send(to, { op: 'bytes' });
      await h.send(to, { op: 'msgpack', item: `t${i}` });
    }
    const state = await h.query(to);
    expect(state?.items).toEqual(['a', 'b']);
    expect(state?.doc).toEqual({ a: { b: [0, 1, 2] } });
    expect(state?.raw).toEqual(Uint8Array.of(3, 0, 0, 0));
    expect(state?.packed).toEqual({ tags: ['t0', 't1', 't2'] });
  });

  it('keeps nothing of a failed invocation, and a later write or delete wins over earlier changes', async () => {
    h = await createTestHarness(mutation, { maxAttempts: 1 });
    await h.send(to, { op: 'push', item: 'a' });
    await h.send(to, { op: 'pushThenThrow' });
    expect((await h.query(to))?.items).toEqual(['a']);
    await h.send(to, { op: 'pushThenAssign' });
    expect((await h.query(to))?.items).toEqual(['fresh']);
    await h.send(to, { op: 'pushThenDelete' });
    expect((await h.query(to))?.items).toBeUndefined();
  });

  it('fails the invocation when a changed value no longer encodes or is too large', async () => {
    h = await createTestHarness(mutation, { maxAttempts: 1, maxStateValueBytes: 1024 });
    await h.send(to, { op: 'push', item: 'a' });
    await h.send(to, { op: 'pushFunction' });
    await h.send(to, { op: 'grow', size: 2000 });
    expect((await h.query(to))?.items).toEqual(['a']);
    const dead = h.deadLetters().map((d) => [(d.error as { code?: string }).code, d.error.message]);
    expect(dead).toHaveLength(2);
    expect(dead[0]![0]).toBe('ERR_WEFT_UNSERIALIZABLE');
    expect(dead[0]![1]).toMatch(/ctx\.state\.items/);
    expect(dead[1]).toEqual(['ERR_WEFT_TOO_LARGE', expect.stringMatching(/^state "items" of mut\/list\/l, changed in place, encodes to \d+ bytes, over the limit of 1024/)]);
  });

  it('does not count reads as writes (expireAfterWrite runs from the last write)', async () => {
    h = await createTestHarness(mutation);
    const keep = { type: 'mut/keep', id: 'k' };
    await h.send(keep, 'write');
    for (let i = 0; i < 9; i++) {
      await h.advance(100);
      expect(await h.request(keep, 'read')).toEqual([1, 1]);
    }
    await h.advance(200);
    expect(await h.request(keep, 'read')).toEqual([null, null]);
    await h.send(to, { op: 'custom' });
    expect(await h.request(to, { op: 'custom' })).toBe(0);
    expect(await h.request(to, { op: 'custom', item: 'inc' })).toBe(1);
    expect(await h.request(to, { op: 'read' })).toMatchObject({ padded: 1 });
  });
});
