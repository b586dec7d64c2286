/**
 * How often a quiet service wakes main: once per request, and once per shard's report of a
 * checkpoint. Real worker threads.
 *
 * A shard that completed a host's request used to ring main twice: once for the frame holding the
 * reply, and once because the engine's count of live messages reached 0 (for `weft.idle()`, which
 * nobody awaited). When main had read the reply and gone back to sleep in between, the second
 * ring woke it for nothing: 0.7 empty wakes per request here. Each wake of a sleeping thread is a cross-thread notification and, on a lightly loaded
 * machine, a core woken from idle. Counted, not timed: `mainWakeups` in `weft.metrics()`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Weft } from '../../src/index.js';
import { fixture, startEngine, within } from './helpers.js';

const at = (id: string) => ({ type: 'pauses/counter', id });

describe('main wake-ups', () => {
  let weft: Weft;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    // No periodic checkpoints: their barriers and commits wake main too.
    ({ weft, cleanup } = await startEngine({ module: fixture('pauses'), shards: 2, checkpointIntervalMs: 0 }));
  });
  afterAll(async () => {
    await cleanup();
  });

  it('a request of a quiet service wakes main once', async () => {
    const requests = 300;
    const run = async (): Promise<void> => {
      for (let i = 0; i < requests; i++) {
        await weft.request(at(`k${i % 16}`), { op: 'inc' });
        // A pause between requests (the load's shape, not a synchronisation): main sleeps.
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
    };
    await within(run(), 10_000, 'warm-up requests');
    const before = weft.metrics().mainWakeups;
    await within(run(), 30_000, `${requests} requests`);
    const wakeups = weft.metrics().mainWakeups - before;
    // One per request; a few more when a reply arrives while main is between two reads (it reads
    // on at once), never two per request.
    expect(wakeups, `${wakeups} wake-ups for ${requests} requests`).toBeGreaterThanOrEqual(requests);
    expect(wakeups, `${wakeups} wake-ups for ${requests} requests`).toBeLessThanOrEqual(requests * 1.25);
    await within(weft.idle(), 10_000, 'idle');
    expect(weft.metrics('prometheus')).toMatch(/^weft_main_wakeups_total \d+$/m);
  }, 60_000);

  it("a checkpoint wakes main for its shards' DONE, not for the barriers they forward", async () => {
    // Each round: a request to each of two addresses, then a checkpoint. Main wakes for the two
    // replies and for each shard's DONE (fewer when both come in one wake): at most 4 wakes a
    // round. Waking main for each shard's forwarded barrier too made it 5.6-5.8 (measured).
    const round = async (i: number): Promise<void> => {
      await weft.request(at(`c${i % 16}`), { op: 'inc' });
      await weft.request(at(`d${i % 16}`), { op: 'inc' });
      await weft.checkpoint();
      await new Promise((resolve) => setTimeout(resolve, 1));
    };
    const run = async (rounds: number): Promise<void> => {
      for (let i = 0; i < rounds; i++) await round(i);
    };
    await within(run(20), 20_000, 'warm-up rounds');
    const rounds = 100;
    const before = weft.metrics().mainWakeups;
    await within(run(rounds), 60_000, `${rounds} rounds`);
    const wakeups = weft.metrics().mainWakeups - before;
    expect(wakeups, `${wakeups} wake-ups in ${rounds} rounds`).toBeLessThanOrEqual(rounds * 4.5);
  }, 120_000);

  it('idle() still hears of the last completion while main sleeps', async () => {
    // The host's message forwards a hold of 100 ms to another counter: its own completion reaches
    // main with its acknowledgement, but the forwarded message's completion sends main nothing.
    // idle() is called (and main sleeps) before it completes: only the shard's ring when the
    // count reaches 0 can wake main to resolve it.
    for (let round = 0; round < 3; round++) {
      const sent = weft.send(at(`from-${round}`), { op: 'forward', to: `to-${round}`, ms: 100 });
      await within(weft.idle(), 10_000, `idle() after a forwarded hold, round ${round}`);
      expect(weft.metrics().messagesAlive).toBe(0);
      await within(weft.checkpoint(), 10_000, 'checkpoint');
      await within(sent, 10_000, 'the send, committed');
    }
  }, 60_000);
});

describe('wake-ups on small rings', () => {
  let weft: Weft;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    // 64 KiB rings and 3 KB messages: bursts spill, and frames that had waited for room are
    // published by later flushes.
    ({ weft, cleanup } = await startEngine({ module: fixture('pauses'), shards: 2, checkpointIntervalMs: 0, ringBytes: 64 * 1024, maxMessageBytes: 16 * 1024 }));
  });
  afterAll(async () => {
    await cleanup();
  });

  it('frames published after a full ring freed room still wake their reader', async () => {
    // A flush that rang its reader once took the ring as rung for every loud record pushed since,
    // also those still waiting for room: the reader read what it was rung for, slept, and the
    // rest was published later without a ring — idle() hung for good (3 of 3 runs, by round 17).
    const pad = 'x'.repeat(3000);
    for (let round = 0; round < 60; round++) {
      const n = 20 + ((round * 7) % 60);
      const sends: Array<Promise<void>> = [];
      for (let i = 0; i < n; i++) sends.push(weft.send(at(`k${i % 3}`), { op: 'inc', pad }));
      await within(weft.idle(), 10_000, `idle() after a burst of ${n} sends, round ${round}`);
      if (round % 10 === 9) {
        await within(weft.checkpoint(), 10_000, 'checkpoint');
        await within(Promise.all(sends), 10_000, 'the sends, committed');
      } else for (const s of sends) s.catch(() => {});
    }
  }, 120_000);
});
