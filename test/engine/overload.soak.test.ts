import { describe, it } from 'vitest';
import { fixture, startEngine } from './helpers.js';
import { overload } from './overload-workload.js';

const MINUTES = Number(process.env.WEFT_SOAK_MINUTES ?? 5);

describe('overload soak', () => {
  it(`holds up for ${MINUTES} minutes at 3× capacity`, async () => {
    const { weft, cleanup } = await startEngine({ module: fixture('bank'), shards: 2, durability: 'fsync' });
    try {
      await overload(weft, MINUTES * 60);
    } finally {
      await cleanup();
    }
  }, (MINUTES * 60 + 300) * 1000);
});
