/**
 * The crash test at soak length (`npm run test:soak`): at least 100 SIGKILLs with changing shard
 * counts. Prints the figures: kills, acknowledged sends, lost, doubled, egress records and how
 * many were delivered again after a kill.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { removeDir, tempDir } from './helpers.js';
import { crashLoop } from './crash-run.js';

const KILLS = Number(process.env.WEFT_SOAK_KILLS ?? 120);

describe('crash soak (SIGKILL)', () => {
  const dataDir = tempDir('weft-crash-soak-');
  afterAll(() => removeDir(dataDir));

  it(`survives ${KILLS} kills with changing shard counts`, async () => {
    const figures = await crashLoop(dataDir, KILLS, [2, 3, 1, 4, 2, 3, 2, 1, 4, 2, 3], (round) => 20 + ((round * 211) % 900));
    console.log(
      `crash soak: ${figures.kills} kills, ${figures.acked} acknowledged sends, ${figures.lost} lost, ${figures.doubled} doubled; ` +
        `egress: ${figures.egressRecords} records, ${figures.egressLost} lost, ${figures.egressDeliveries} deliveries, ` +
        `${figures.egressRedelivered} redelivered after a kill (deduped by id: each exactly once)`,
    );
    expect(figures).toMatchObject({ lost: 0, doubled: 0, egressLost: 0 });
  }, 60 * 60_000);
});
