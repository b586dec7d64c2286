/**
 * A shard that fails while the engine is still starting (it reported ready, another shard has not
 * yet): real worker threads and LMDB files (fixture early-death.ts). Weft.start fails with
 * ERR_WEFT_SHARD_FAILED, as it did before the main thread's split into src/host/ (there, the
 * recovery it started met outbounds no generation had made yet: Weft.start resolved with shard 0
 * dead and no recovery, and every message to that shard waited forever).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Weft, WeftError, channels } from '../../src/index.js';
import { fixture, removeDir, tempDir, within } from './helpers.js';

describe('a shard failing during Weft.start', () => {
  const dir = tempDir('weft-early-death-');
  afterAll(() => removeDir(dir));

  it('fails the start with ERR_WEFT_SHARD_FAILED naming that shard, with nothing left behind; the data dir starts again', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => {
      unhandled.push(reason);
    };
    const dataDir = join(dir, 'data');
    const options = { module: fixture('early-death'), dataDir, shards: 2, durability: 'process' as const, checkpointIntervalMs: 10 };
    const goFile = join(dir, 'recovery-reported');
    // Shard 1 finishes starting once main reports a recovery (a recovery during the first start
    // must not happen: the start fails instead, and shard 1 is ended while it waits).
    const onRecovery = (): void => writeFileSync(goFile, 'main reported a recovery');
    channels.recovery.subscribe(onRecovery);
    process.on('unhandledRejection', onUnhandled);
    process.env.WEFT_FIXTURE_EARLY_DEATH = goFile;
    try {
      let started: Weft | undefined;
      const err = await within(
        Weft.start(options).then(
          (weft) => {
            started = weft;
            return undefined;
          },
          (e: unknown) => e,
        ),
        30_000,
        'Weft.start',
      );
      if (started !== undefined) {
        // Shard 0 is dead: close() would wait closeTimeoutMs for it.
        void started.close();
        throw new Error('Weft.start resolved although shard 0 ended while the engine was starting');
      }
      expect(err).toBeInstanceOf(WeftError);
      expect((err as WeftError).code).toBe('ERR_WEFT_SHARD_FAILED');
      expect((err as WeftError).message).toBe('shard 0 failed while the engine was starting: shard 0 worker exited with code 3');
      // Rejections are reported after the microtask they happen in: give them a macrotask.
      await new Promise((resolve) => setImmediate(resolve));
      expect(unhandled).toEqual([]);
    } finally {
      channels.recovery.unsubscribe(onRecovery);
      process.off('unhandledRejection', onUnhandled);
      delete process.env.WEFT_FIXTURE_EARLY_DEATH;
    }
    // The failed start released the data dir (its lock) and left it whole.
    const weft = await within(Weft.start(options), 30_000, 'second Weft.start');
    try {
      const replies = await within(Promise.all(Array.from({ length: 16 }, (_, i) => weft.request({ type: 'early/counter', id: `c-${i}` }, null))), 20_000, 'requests to both shards');
      expect(replies).toEqual(new Array(16).fill(1));
    } finally {
      await weft.close();
    }
  }, 90_000);
});
