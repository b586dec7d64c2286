/**
 * Soak: the watchdog must not terminate a healthy shard while it encodes and writes a large
 * checkpoint (200k instances of ~1.5 KB changed in one epoch, ~300 MB), only one stuck in user
 * code. The regular suite has a smaller variant (isolation.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { fixture, startEngine, within } from './helpers.js';

describe('watchdog vs engine work (soak)', () => {
  it('a checkpoint of 200k changed instances (~300 MB) does not stall its shard at invocationTimeoutMs 300', { timeout: 600_000 }, async () => {
    const N = 200_000;
    const { weft, cleanup } = await startEngine({ module: fixture('isolation'), shards: 1, cacheSize: 1_000_000, invocationTimeoutMs: 300, checkpointIntervalMs: 600_000 });
    try {
      const sends: Array<Promise<void>> = [];
      for (let f = 0; f < N; f += 1000) sends.push(weft.send({ type: 'iso/fan', id: `f${f}` }, { from: f, n: 1000 }));
      await within(weft.idle(), 300_000, 'idle');
      await within(weft.checkpoint(), 300_000, 'checkpoint');
      await within(Promise.all(sends), 300_000, 'sends');
      const m = weft.metrics();
      expect({ stalledShards: m.stalledShards, recoveries: m.recoveries, bigCheckpoint: (m.lastCheckpoint?.bytes ?? 0) > 200 * 1024 * 1024 }).toEqual({ stalledShards: 0, recoveries: 0, bigCheckpoint: true });
    } finally {
      await cleanup();
    }
  });
});
