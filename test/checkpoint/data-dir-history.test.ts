/**
 * The data dir's checkpoint history (`weft inspect` lists it): the last 100 commits, oldest first. The list is written from entries packed once each (DataDir.commit), and
 * must read back exactly as the entries committed. Real LMDB files.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { DataDir } from '../../src/checkpoint/data-dir.js';
import type { CheckpointInfo } from '../../src/checkpoint/data-dir.js';
import { removeDir, tempDir } from '../engine/helpers.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) removeDir(d);
});

const open = (path: string): Promise<DataDir> => DataDir.open(path, { keyGroups: undefined, shards: 1, shardsAuto: false, durability: 'process' });
const info = (epoch: number): CheckpointInfo => ({ epoch, at: 1_700_000_000_000 + epoch, bytes: epoch * 10, states: epoch % 7, ms: epoch / 3 });

describe('DataDir: checkpoint history', () => {
  it('keeps the last 100 commits in order', async () => {
    const path = tempDir('weft-history-');
    dirs.push(path);
    const dir = await open(path);
    try {
      for (let e = 1; e <= 130; e++) {
        await dir.commit(info(e));
        if (e === 30) expect(dir.meta.getMeta('checkpoints')).toEqual(Array.from({ length: 30 }, (_, i) => info(i + 1)));
      }
      expect(dir.meta.getMeta('checkpoints')).toEqual(Array.from({ length: 100 }, (_, i) => info(i + 31)));
      expect(dir.meta.getMeta('committedEpoch')).toBe(130);
      expect(dir.lastCheckpoint()).toEqual(info(130));
    } finally {
      await dir.close();
    }
  });

  it('goes on from a history already in the data dir (written by an earlier process)', async () => {
    const path = tempDir('weft-history-');
    dirs.push(path);
    const dir = await open(path);
    try {
      // What an earlier process left: 100 entries, the list as putMeta writes it.
      const earlier = Array.from({ length: 100 }, (_, i) => info(i + 1));
      await dir.meta.write((ops) => ops.putMeta('checkpoints', earlier));
      await dir.commit(info(101));
      await dir.commit(info(102));
      expect(dir.meta.getMeta('checkpoints')).toEqual(Array.from({ length: 100 }, (_, i) => info(i + 3)));
      expect(dir.lastCheckpoint()).toEqual(info(102));
    } finally {
      await dir.close();
    }
  });
});
