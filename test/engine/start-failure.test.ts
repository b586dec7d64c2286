/**
 * A shard that fails while shards are still starting (it reported ready, another shard has not
 * yet), at the engine's start and during a recovery: real worker threads and LMDB files (fixture
 * early-death.ts). At the start, Weft.start fails with ERR_WEFT_SHARD_FAILED, as it did before
 * the main thread's split into src/host/ (after it, the recovery it started met outbounds no
 * generation had made yet: Weft.start resolved with shard 0 dead and no recovery, and every
 * message to that shard waited forever). During a recovery, another recovery follows.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Weft, WeftError, channels } from '../../src/index.js';
import { Partitioner } from '../../src/contract/partitioner.js';
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
  // Main discarded a failed generation with Worker.terminate(), which stops a thread wherever it
  // is: a shard inside LMDB's synchronous open on a full disk then could not throw the call's
  // exception, and the whole process aborted (`FATAL ERROR: Error::ThrowAsJavaScriptException`,
  // the disk-full test in CI). A shard is now asked to end itself between two steps.
  it('lets a shard inside a synchronous step of its start finish the step when its generation is discarded', async () => {
    const doneFile = join(dir, 'slow-start-done');
    process.env.WEFT_FIXTURE_SLOW_START = doneFile;
    try {
      const err = await within(
        Weft.start({ module: fixture('slow-start'), dataDir: join(dir, 'data-slow-start'), shards: 2, durability: 'process' }).then(
          async (weft) => {
            await weft.close();
            return undefined;
          },
          (e: unknown) => e,
        ),
        30_000,
        'Weft.start',
      );
      expect(err).toBeInstanceOf(WeftError);
      expect((err as WeftError).code).toBe('ERR_WEFT_SHARD_FAILED');
      expect(existsSync(`${doneFile}.spinning`)).toBe(true);
      expect(existsSync(doneFile), 'shard 1 was stopped inside its synchronous step').toBe(true);
    } finally {
      delete process.env.WEFT_FIXTURE_SLOW_START;
    }
  }, 60_000);
  // A shard that fails after it reported ready and before the other shards of a RECOVERY's
  // generation did: #onShardFailed found a recovery under way (#recovering) and started none, so
  // that recovery completed with the shard dead and every message to it waited forever (before
  // and after the restructuring alike). Now another recovery follows.
  it('recovers again when a shard fails while a recovery starts the shards', async () => {
    const goFile = join(dir, 'second-recovery-reported');
    const armFile = join(dir, 'armed');
    const exitFile = join(dir, 'exit-once');
    let reported = 0;
    const onRecovery = (): void => {
      if (++reported === 2) writeFileSync(goFile, 'main reported the second recovery');
    };
    channels.recovery.subscribe(onRecovery);
    process.env.WEFT_FIXTURE_EARLY_DEATH = goFile;
    process.env.WEFT_FIXTURE_EARLY_DEATH_ARM = armFile;
    const weft = await within(Weft.start({ module: fixture('early-death'), dataDir: join(dir, 'data-recovery'), shards: 2, durability: 'process', checkpointIntervalMs: 10, closeTimeoutMs: 500 }), 30_000, 'Weft.start');
    try {
      const ids = Array.from({ length: 16 }, (_, i) => `r-${i}`);
      await within(Promise.all(ids.map((id) => weft.request({ type: 'early/counter', id }, null))), 20_000, 'first requests');
      const partitioner = new Partitioner(2, 128);
      const onShard0 = Array.from({ length: 64 }, (_, i) => `crash-${i}`).find((id) => partitioner.shardOf(partitioner.keyGroup('early/counter', id)) === 0)!;
      writeFileSync(armFile, 'the next generation fails while it starts');
      writeFileSync(exitFile, 'end shard 0 once');
      void weft.send({ type: 'early/counter', id: onShard0 }, { exitOnce: exitFile }).catch(() => {});
      const replies = await within(Promise.all(ids.map((id) => weft.request({ type: 'early/counter', id }, null))), 5_000, 'requests after the recoveries');
      expect(replies).toEqual(new Array(16).fill(2));
      expect(existsSync(armFile)).toBe(false);
      // One recovery per failure: the second starts once the first has completed.
      expect(weft.metrics().recoveries).toBe(2);
    } finally {
      channels.recovery.unsubscribe(onRecovery);
      delete process.env.WEFT_FIXTURE_EARLY_DEATH;
      delete process.env.WEFT_FIXTURE_EARLY_DEATH_ARM;
      await weft.close();
    }
  }, 60_000);
});
