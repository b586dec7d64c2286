import { describe, it } from 'vitest';
import { fixture, startEngine } from './helpers.js';
import { overload } from './overload-workload.js';

const SECONDS = Number(process.env.WEFT_OVERLOAD_SECONDS ?? 6);

describe('overload', () => {
  it(`stays bounded, loses nothing and recovers after ${SECONDS} s at 3× capacity`, async () => {
    const { weft, cleanup } = await startEngine({ module: fixture('bank'), shards: 2 });
    try {
      await overload(weft, SECONDS);
    } finally {
      await cleanup();
    }
  }, 180_000);
});
