import { afterAll, describe, expect, it } from 'vitest';
import { removeDir, tempDir } from './helpers.js';
import { crashLoop } from './crash-run.js';

const KILLS = 12;

describe('crash recovery (SIGKILL) keeps every acknowledged transfer exactly once', () => {
  const dataDir = tempDir('weft-crash-');
  afterAll(() => removeDir(dataDir));

  it(`survives ${KILLS} kills at varied moments, with changing shard counts; egress records are delivered at least once, exactly once by id`, async () => {
    // Kill moments spread from "just after start" to "well into the run".
    const figures = await crashLoop(dataDir, KILLS, [2, 2, 3, 1, 4, 2, 3, 2, 1, 2, 4, 2], (round) => 30 + ((round * 137) % 700));
    expect(figures).toMatchObject({ lost: 0, doubled: 0, egressLost: 0 });
    expect(figures.egressRecords).toBeGreaterThan(100);
  }, 240_000);
});
