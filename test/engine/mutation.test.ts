/**
 * In-place changes to state objects are stored by the engine (worker threads, LMDB), across a
 * restart; test/testing/mutation.test.ts checks the harness does the same.
 */
import { describe, expect, it } from 'vitest';
import { Weft } from '../../src/index.js';
import { fixture, removeDir, tempDir } from './helpers.js';

describe('state changed in place (engine)', () => {
  it('stores ctx.state.items.push(x) and nested changes, sees them on re-read, keeps them across a restart', async () => {
    const dataDir = tempDir();
    const to = { type: 'mut/list', id: 'l' };
    try {
      let weft = await Weft.start({ module: fixture('mutation'), dataDir, shards: 2, durability: 'process' });
      expect(await weft.request(to, { op: 'push', item: 'a' })).toEqual({ same: true, items: ['a'] });
      expect(await weft.request(to, { op: 'push', item: 'b' })).toEqual({ same: true, items: ['a', 'b'] });
      await weft.send(to, { op: 'nested' });
      await weft.send(to, { op: 'nested' });
      await weft.send(to, { op: 'bytes' });
      await weft.send(to, { op: 'pushThenThrow' }); // retried, then dead-lettered: nothing kept
      await weft.close();
      weft = await Weft.start({ module: fixture('mutation'), dataDir, shards: 1, durability: 'process' });
      const state = await weft.query(to);
      expect(state?.items).toEqual(['a', 'b']);
      expect(state?.doc).toEqual({ a: { b: [0, 1] } });
      expect(state?.raw).toEqual(Uint8Array.of(1, 0, 0, 0));
      await weft.close();
    } finally {
      removeDir(dataDir);
    }
  });
});
