/**
 * The checkpoint coordinator on its own: no threads, no rings, no disk. A harness records what it
 * asks of the host (BARRIER injections, COMMITTED writes) and controls when a COMMITTED write
 * becomes durable, so every ordering of the protocol (see the comment at the top of
 * src/checkpoint/coordinator.ts) can be set up exactly.
 */
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Coordinator, LATE_COMMITTED_MAX_INTERVAL_MS } from '../../src/checkpoint/coordinator.js';
import { quietDeferred, type Deferred } from '../../src/internal/deferred.js';

interface CommitCall {
  readonly epoch: number;
  readonly figures: { bytes: number; states: number; ms: number };
  readonly write: Deferred<void>;
}

/** A Coordinator wired to hooks that record every call; COMMITTED writes wait for the test. */
class Host {
  readonly injected: number[] = [];
  readonly commits: CommitCall[] = [];
  readonly committed: number[] = [];
  /** For each `committed` call: whether the host must wake the shards to tell them. */
  readonly wake: boolean[] = [];
  /** Periodic ticks that found nothing to checkpoint. */
  idleTicks = 0;
  readonly failures: unknown[] = [];
  /** What `quiescent()` answers (periodic checkpoints only). */
  quiet = false;
  quiescentAsked = 0;
  /** What `mayHold()` answers (a periodic checkpoint nothing waits for; step 5a). */
  mayHold = false;
  /** What `idle()` answers (no request in flight). */
  idle = true;
  /** Every hook call, in order, for ordering assertions. */
  readonly log: string[] = [];
  readonly coordinator: Coordinator;

  constructor(shards: number, committed: number, intervalMs = 0) {
    this.coordinator = new Coordinator(shards, committed, intervalMs, {
      injectBarrier: (epoch) => {
        this.injected.push(epoch);
        this.log.push(`barrier ${epoch}`);
      },
      commit: (epoch, figures) => {
        const write = quietDeferred<void>();
        this.commits.push({ epoch, figures: { ...figures }, write });
        this.log.push(`commit ${epoch}`);
        return write.promise;
      },
      committed: (epoch, wake) => {
        this.committed.push(epoch);
        this.wake.push(wake);
        this.log.push(`committed ${epoch}`);
      },
      idleTick: () => {
        this.idleTicks++;
        this.log.push('idle tick');
      },
      quiescent: () => {
        this.quiescentAsked++;
        return this.quiet;
      },
      mayHold: () => this.mayHold,
      idle: () => this.idle,
      failed: (err) => {
        this.failures.push(err);
        this.log.push('failed');
      },
    });
  }

  /** The COMMITTED write in progress (the last one asked for). */
  get lastCommit(): CommitCall {
    const c = this.commits.at(-1);
    if (c === undefined) throw new Error('no COMMITTED write was asked for');
    return c;
  }

  /** Every shard reports DONE(epoch) with the same figures. */
  allDone(shards: number, epoch: number): void {
    for (let s = 0; s < shards; s++) this.coordinator.onDone(s, epoch, { bytes: 10, states: 1 });
  }

  /** Makes the last COMMITTED write durable and lets its callbacks run. */
  async durable(): Promise<void> {
    this.lastCommit.write.resolve();
    await settle();
  }
}

/** Runs every pending promise callback (the coordinator schedules no timers of its own here). */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve();
  await new Promise<void>((resolve) => setImmediate(resolve));
}

/** A promise's state, without waiting for it. */
function track<T>(p: Promise<T>): { value?: T; error?: unknown; settled: boolean } {
  const t: { value?: T; error?: unknown; settled: boolean } = { settled: false };
  p.then(
    (v) => {
      t.value = v;
      t.settled = true;
    },
    (e: unknown) => {
      t.error = e;
      t.settled = true;
    },
  );
  return t;
}

afterEach(() => {
  vi.useRealTimers();
});

describe('Coordinator: one epoch', () => {
  it('injects BARRIER(committed + 1), writes COMMITTED once every shard reported DONE, and releases only when that write is durable', async () => {
    const h = new Host(3, 5);
    const c = h.coordinator;
    expect(c.openEpoch).toBe(6);
    const waiter = track(c.checkpoint());
    expect(h.injected).toEqual([6]);
    expect(c.inFlight).toBe(6);
    // Host messages queued from now on belong to the next epoch.
    expect(c.openEpoch).toBe(7);

    c.onDone(0, 6, { bytes: 100, states: 2 });
    c.onDone(2, 6, { bytes: 30, states: 1 });
    expect(h.commits).toEqual([]);
    c.onDone(1, 6, { bytes: 5, states: 0 });
    expect(h.commits.map((x) => x.epoch)).toEqual([6]);
    expect(h.lastCommit.figures.bytes).toBe(135);
    expect(h.lastCommit.figures.states).toBe(3);
    expect(h.lastCommit.figures.ms).toBeGreaterThanOrEqual(0);

    // COMMITTED(6) is not durable yet: nothing is released, the epoch is still in flight.
    await settle();
    expect(c.committedEpoch).toBe(5);
    expect(c.inFlight).toBe(6);
    expect(h.committed).toEqual([]);
    expect(waiter.settled).toBe(false);

    await h.durable();
    expect(c.committedEpoch).toBe(6);
    expect(c.inFlight).toBe(0);
    expect(waiter.value).toBe(6);
    // The host releases what epoch 6 holds before the checkpoint() caller hears of it, and wakes
    // the shards to tell them (the caller may look at them next).
    expect(h.log).toEqual(['barrier 6', 'commit 6', 'committed 6']);
    expect(h.wake).toEqual([true]);
    // With no timer and nobody waiting, nothing else starts.
    expect(h.injected).toEqual([6]);
  });

  it('counts a shard that reports DONE twice once (and its figures once)', async () => {
    const h = new Host(2, 0);
    const c = h.coordinator;
    const waiter = track(c.checkpoint());
    c.onDone(0, 1, { bytes: 7, states: 1 });
    c.onDone(0, 1, { bytes: 7, states: 1 });
    expect(h.commits).toEqual([]);
    c.onDone(1, 1, { bytes: 3, states: 1 });
    expect(h.commits.map((x) => x.epoch)).toEqual([1]);
    expect(h.lastCommit.figures).toMatchObject({ bytes: 10, states: 2 });
    // A DONE repeated while the COMMITTED write runs starts no second write.
    c.onDone(1, 1, { bytes: 3, states: 1 });
    c.onDone(0, 1, { bytes: 7, states: 1 });
    expect(h.commits).toHaveLength(1);
    await h.durable();
    expect(waiter.value).toBe(1);
    expect(h.committed).toEqual([1]);
  });

  it('ignores a DONE of an epoch that is not in flight: earlier, later, or when none is', async () => {
    const h = new Host(2, 3);
    const c = h.coordinator;
    h.allDone(2, 4); // nothing in flight yet
    h.allDone(2, 3); // the committed one
    expect(h.commits).toEqual([]);
    const waiter = track(c.checkpoint());
    expect(h.injected).toEqual([4]);
    h.allDone(2, 3);
    h.allDone(2, 5);
    expect(h.commits).toEqual([]);
    // One shard's DONE of another epoch does not stand in for its DONE of this one.
    c.onDone(0, 5, { bytes: 1, states: 1 });
    c.onDone(1, 4, { bytes: 1, states: 1 });
    expect(h.commits).toEqual([]);
    c.onDone(0, 4, { bytes: 1, states: 1 });
    expect(h.commits.map((x) => x.epoch)).toEqual([4]);
    await h.durable();
    expect(waiter.value).toBe(4);
  });
});

describe('Coordinator: defects the unit tests found (each failed before its fix)', () => {

  // The coordinator marks "no epoch in flight" with #inFlight = 0, and onDone compares the
  // reported epoch with it: a DONE(0) from every shard then writes COMMITTED(0), and once that
  // write is durable the committed epoch is set back to 0 — a committed epoch rolled back. The shards never report DONE(0)
  // (the first barrier is committed + 1 >= 1); the guard must not depend on it.
  it('ignores a DONE(0) when no epoch is in flight', () => {
    const h = new Host(2, 5);
    h.allDone(2, 0);
    expect(h.commits).toEqual([]);
    expect(h.coordinator.committedEpoch).toBe(5);
  });

  // checkpoint() after stop() queued a waiter that nothing would ever settle (stop() rejected only
  // the waiters it found); now it is rejected with the stop reason.
  it('rejects a checkpoint() asked after stop()', async () => {
    const h = new Host(1, 0);
    const reason = new Error('closed');
    h.coordinator.stop(reason);
    const late = track(h.coordinator.checkpoint());
    await settle();
    expect(late.settled).toBe(true);
    expect(late.error).toBe(reason);
    expect(h.injected).toEqual([]);
  });

  // DONEs that arrive after stop() (close() gave up waiting and is closing the data dir) start
  // no COMMITTED write.
  it('commits nothing after stop()', async () => {
    const h = new Host(2, 0);
    const a = track(h.coordinator.checkpoint());
    h.coordinator.stop(new Error('closed'));
    h.allDone(2, 1);
    await settle();
    expect(h.commits).toEqual([]);
    expect(a.error).toBeInstanceOf(Error);
  });

  // A checkpoint() made while an epoch is in flight sets #forced; a recovery (halt, resume) moves
  // its waiter to the retried epoch but leaves #forced set, so when the retried epoch commits,
  // one more epoch starts that nobody asked for (and that skips the quiescence check).
  it('starts no extra epoch after a retried epoch commits', async () => {
    const h = new Host(1, 0);
    const c = h.coordinator;
    const a = track(c.checkpoint());
    const b = track(c.checkpoint());
    await c.halt();
    c.resume();
    expect(h.injected).toEqual([1, 2]);
    c.onDone(0, 2, { bytes: 1, states: 1 });
    await h.durable();
    expect([a.value, b.value]).toEqual([2, 2]);
    expect(h.injected).toEqual([1, 2]);
  });
});

describe('Coordinator: overlapping requests', () => {
  it('runs one epoch at a time: requests made while one is in flight share the next epoch', async () => {
    const h = new Host(2, 0);
    const c = h.coordinator;
    const a = track(c.checkpoint());
    const b = track(c.checkpoint());
    const d = track(c.checkpoint());
    expect(h.injected).toEqual([1]);
    h.allDone(2, 1);
    // Another request while COMMITTED(1) is being written: still no second barrier.
    const e = track(c.checkpoint());
    expect(h.injected).toEqual([1]);
    await h.durable();
    // a's epoch holds everything sent before a; b, d and e were asked after BARRIER(1), so
    // epoch 1 does not hold what was sent just before them: they wait for epoch 2.
    expect(a.value).toBe(1);
    expect([b.settled, d.settled, e.settled]).toEqual([false, false, false]);
    expect(h.injected).toEqual([1, 2]);
    h.allDone(2, 2);
    await h.durable();
    expect([b.value, d.value, e.value]).toEqual([2, 2, 2]);
    expect(h.injected).toEqual([1, 2]);
    expect(h.log).toEqual(['barrier 1', 'commit 1', 'committed 1', 'barrier 2', 'commit 2', 'committed 2']);
  });

  it('never starts the COMMITTED write of e + 1 before that of e is durable', async () => {
    const h = new Host(1, 0);
    const c = h.coordinator;
    track(c.checkpoint());
    c.onDone(0, 1, { bytes: 1, states: 1 });
    track(c.checkpoint());
    // The next epoch's barrier waits for COMMITTED(1); DONE(2) now is a DONE of no epoch.
    c.onDone(0, 2, { bytes: 1, states: 1 });
    await settle();
    expect(h.commits.map((x) => x.epoch)).toEqual([1]);
    await h.durable();
    expect(h.injected).toEqual([1, 2]);
    c.onDone(0, 2, { bytes: 1, states: 1 });
    expect(h.commits.map((x) => x.epoch)).toEqual([1, 2]);
  });
});

describe('Coordinator: periodic checkpoints', () => {
  it('skips a quiescent period, checkpoints a busy one, and never while an epoch is in flight', async () => {
    vi.useFakeTimers();
    const h = new Host(1, 0, 100);
    const c = h.coordinator;
    h.quiet = true;
    c.start();
    vi.advanceTimersByTime(99);
    expect(h.quiescentAsked).toBe(0);
    vi.advanceTimersByTime(1);
    expect(h.quiescentAsked).toBe(1);
    expect(h.injected).toEqual([]);
    // A skipped tick says so: what was sent to the shards quietly must reach them another way.
    expect(h.idleTicks).toBe(1);
    // Skipped, and armed again.
    vi.advanceTimersByTime(100);
    expect(h.quiescentAsked).toBe(2);
    expect(h.idleTicks).toBe(2);
    expect(h.injected).toEqual([]);
    h.quiet = false;
    vi.advanceTimersByTime(100);
    expect(h.injected).toEqual([1]);
    expect(h.idleTicks).toBe(2);
    // While epoch 1 is in flight, no period starts another.
    vi.advanceTimersByTime(1000);
    expect(h.injected).toEqual([1]);
    c.onDone(0, 1, { bytes: 1, states: 1 });
    h.lastCommit.write.resolve();
    await vi.advanceTimersByTimeAsync(0);
    expect(h.committed).toEqual([1]);
    // Nobody called checkpoint() for it, but ticks 100 ms apart are too far apart to leave the
    // shards to read it late (LATE_COMMITTED_MAX_INTERVAL_MS): the host wakes them.
    expect(h.wake).toEqual([true]);
    // Armed again after the commit.
    await vi.advanceTimersByTimeAsync(100);
    expect(h.injected).toEqual([1, 2]);
    c.stop(new Error('test over'));
  });

  it('lets the shards read a periodic commit late only when ticks are at most LATE_COMMITTED_MAX_INTERVAL_MS apart', async () => {
    vi.useFakeTimers();
    for (const [interval, wake] of [[20, false], [LATE_COMMITTED_MAX_INTERVAL_MS, false], [LATE_COMMITTED_MAX_INTERVAL_MS + 1, true]] as const) {
      const h = new Host(1, 0, interval);
      const c = h.coordinator;
      c.start();
      vi.advanceTimersByTime(interval);
      expect(h.injected).toEqual([1]);
      c.onDone(0, 1, { bytes: 1, states: 1 });
      h.lastCommit.write.resolve();
      await vi.advanceTimersByTimeAsync(0);
      // A commit a checkpoint() call waits for always wakes them.
      const forced = track(c.checkpoint());
      c.onDone(0, 2, { bytes: 1, states: 1 });
      h.lastCommit.write.resolve();
      await vi.advanceTimersByTimeAsync(0);
      expect(forced.value).toBe(2);
      expect(h.committed).toEqual([1, 2]);
      expect(h.wake, `interval ${interval}`).toEqual([wake, true]);
      c.stop(new Error('test over'));
    }
  });

  it('runs a forced checkpoint even when quiescent, and it resets the period', () => {
    vi.useFakeTimers();
    const h = new Host(1, 0, 100);
    const c = h.coordinator;
    h.quiet = true;
    c.start();
    vi.advanceTimersByTime(50);
    track(c.checkpoint());
    expect(h.injected).toEqual([1]);
    expect(h.quiescentAsked).toBe(0);
    // The pending period was cancelled: nothing fires while the epoch is in flight.
    vi.advanceTimersByTime(500);
    expect(h.quiescentAsked).toBe(0);
    c.stop(new Error('test over'));
  });

  it('with interval 0 never checkpoints on its own', () => {
    vi.useFakeTimers();
    const h = new Host(1, 0, 0);
    h.coordinator.start();
    vi.advanceTimersByTime(60_000);
    expect(h.quiescentAsked).toBe(0);
    expect(h.injected).toEqual([]);
  });
});

describe('Coordinator: periodic checkpoints held for a quiet moment (step 5a)', () => {
  // Ticks this far apart leave a periodic commit to be read late (step 5), unless it is a quiet one.
  const INTERVAL = LATE_COMMITTED_MAX_INTERVAL_MS;

  /** A coordinator whose first periodic tick was held (a request in flight). */
  function held(): Host {
    vi.useFakeTimers();
    const h = new Host(1, 0, INTERVAL);
    h.mayHold = true;
    h.idle = false;
    h.coordinator.start();
    vi.advanceTimersByTime(INTERVAL);
    expect(h.injected).toEqual([]);
    expect(h.coordinator.holds).toEqual({ held: 1, heldToLimit: 0 });
    return h;
  }

  async function commit(h: Host, epoch: number): Promise<void> {
    h.allDone(1, epoch);
    h.lastCommit.write.resolve();
    await vi.advanceTimersByTimeAsync(0);
  }

  it('starts a held checkpoint when the last request in flight got its reply, after the host reacted to it', async () => {
    const h = held();
    const c = h.coordinator;
    vi.advanceTimersByTime(INTERVAL - 1);
    expect(h.injected).toEqual([]);
    let reacted = false;
    c.quiet();
    // The reply's promise callbacks run first.
    queueMicrotask(() => {
      reacted = true;
      expect(h.injected).toEqual([]);
    });
    // A second reply before the start changes nothing.
    c.quiet();
    await vi.advanceTimersByTimeAsync(0);
    expect(reacted).toBe(true);
    expect(h.injected).toEqual([1]);
    // Its limit was cancelled.
    vi.advanceTimersByTime(4 * INTERVAL);
    expect(h.injected).toEqual([1]);
    expect(c.holds).toEqual({ held: 1, heldToLimit: 0 });
    // No request in flight at its commit: the shards are woken to read it in the same gap.
    h.idle = true;
    await commit(h, 1);
    expect(h.wake).toEqual([true]);
    c.stop(new Error('test over'));
  });

  it('leaves the commit of a quiet epoch to be read late when a request is in flight by then', async () => {
    const h = held();
    h.coordinator.quiet();
    await vi.advanceTimersByTimeAsync(0);
    expect(h.injected).toEqual([1]);
    h.idle = false;
    await commit(h, 1);
    expect(h.wake).toEqual([false]);
    h.coordinator.stop(new Error('test over'));
  });

  it('starts a held checkpoint after one more interval without a quiet moment, and leaves its commit to be read late', async () => {
    const h = held();
    const c = h.coordinator;
    vi.advanceTimersByTime(INTERVAL - 1);
    expect(h.injected).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(h.injected).toEqual([1]);
    expect(c.holds).toEqual({ held: 1, heldToLimit: 1 });
    // A reply now starts nothing: one epoch at a time, and no hold is left.
    c.quiet();
    await vi.advanceTimersByTimeAsync(0);
    expect(h.injected).toEqual([1]);
    await commit(h, 1);
    expect(h.wake).toEqual([false]);
    // The period goes on from the commit, held again (the host still waits for nothing).
    await vi.advanceTimersByTimeAsync(INTERVAL);
    expect(c.holds).toEqual({ held: 2, heldToLimit: 1 });
    c.stop(new Error('test over'));
  });

  it('holds with no request in flight only when a reply came since the last tick', async () => {
    vi.useFakeTimers();
    const h = new Host(1, 0, INTERVAL);
    const c = h.coordinator;
    h.mayHold = true;
    h.idle = true;
    c.start();
    // Messages between functions, timers: no request, nothing to wait for.
    vi.advanceTimersByTime(INTERVAL);
    expect(h.injected).toEqual([1]);
    expect(c.holds.held).toBe(0);
    // A reply left no request in flight (no hold to end): the next tick waits for the next one.
    c.quiet();
    await vi.advanceTimersByTimeAsync(0);
    expect(h.injected).toEqual([1]);
    await commit(h, 1);
    vi.advanceTimersByTime(INTERVAL);
    expect(h.injected).toEqual([1]);
    expect(c.holds.held).toBe(1);
    c.quiet();
    await vi.advanceTimersByTimeAsync(0);
    expect(h.injected).toEqual([1, 2]);
    await commit(h, 2);
    // The reply that ended that hold came since the tick: the next one is held too, and with no
    // reply it starts at its limit.
    vi.advanceTimersByTime(INTERVAL);
    expect(c.holds.held).toBe(2);
    vi.advanceTimersByTime(INTERVAL);
    expect(h.injected).toEqual([1, 2, 3]);
    expect(c.holds).toEqual({ held: 2, heldToLimit: 1 });
    await commit(h, 3);
    // No reply since the last tick: the next is not held.
    vi.advanceTimersByTime(INTERVAL);
    expect(h.injected).toEqual([1, 2, 3, 4]);
    expect(c.holds.held).toBe(2);
    c.stop(new Error('test over'));
  });

  it('starts a held checkpoint as soon as the host waits for a commit', async () => {
    const h = held();
    const c = h.coordinator;
    c.wanted();
    expect(h.injected).toEqual([]);
    await vi.advanceTimersByTimeAsync(0);
    expect(h.injected).toEqual([1]);
    expect(c.holds).toEqual({ held: 1, heldToLimit: 0 });
    // It did not start at a quiet moment: its commit is left to be read late.
    h.idle = true;
    await commit(h, 1);
    expect(h.wake).toEqual([false]);
    // Without a hold, wanting a commit starts nothing.
    c.wanted();
    await vi.advanceTimersByTimeAsync(0);
    expect(h.injected).toEqual([1]);
    c.stop(new Error('test over'));
  });

  it('never holds a checkpoint the host waits for, nor a quiescent period', () => {
    vi.useFakeTimers();
    const h = new Host(1, 0, 100);
    const c = h.coordinator;
    h.mayHold = true;
    h.quiet = true;
    c.start();
    vi.advanceTimersByTime(100);
    expect(h.idleTicks).toBe(1);
    expect(c.holds.held).toBe(0);
    h.quiet = false;
    h.mayHold = false;
    vi.advanceTimersByTime(100);
    expect(h.injected).toEqual([1]);
    expect(c.holds.held).toBe(0);
    c.stop(new Error('test over'));
  });

  it('runs a checkpoint() asked during a hold at once; the hold ends with it', async () => {
    const h = held();
    const c = h.coordinator;
    const forced = track(c.checkpoint());
    expect(h.injected).toEqual([1]);
    c.quiet();
    await vi.advanceTimersByTimeAsync(4 * INTERVAL);
    expect(h.injected).toEqual([1]);
    await commit(h, 1);
    expect(forced.value).toBe(1);
    expect(c.holds).toEqual({ held: 1, heldToLimit: 0 });
    c.stop(new Error('test over'));
  });

  it('starts nothing from a hold once a recovery halted it or the coordinator stopped, and a reply without a hold starts nothing', async () => {
    const h = held();
    const c = h.coordinator;
    await c.halt();
    c.quiet();
    await vi.advanceTimersByTimeAsync(4 * INTERVAL);
    expect(h.injected).toEqual([]);
    // Resumed with nothing in flight: the period starts again.
    c.resume();
    await vi.advanceTimersByTimeAsync(INTERVAL);
    expect(c.holds.held).toBe(2);
    c.stop(new Error('test over'));
    c.quiet();
    await vi.advanceTimersByTimeAsync(4 * INTERVAL);
    expect(h.injected).toEqual([]);

    const idle = new Host(1, 0, 100);
    idle.coordinator.quiet();
    await vi.advanceTimersByTimeAsync(0);
    expect(idle.injected).toEqual([]);
  });
});

describe('Coordinator: recovery (halt, resume)', () => {
  it('abandons the epoch in flight: DONEs during the recovery and late DONEs of it never commit it, and its waiters get the next epoch', async () => {
    const h = new Host(2, 4);
    const c = h.coordinator;
    const a = track(c.checkpoint());
    expect(h.injected).toEqual([5]);
    c.onDone(0, 5, { bytes: 1, states: 1 });
    const halted = track(c.halt());
    await settle();
    expect(halted.settled).toBe(true);
    // The last DONE arrives during the recovery (a shard wrote PENDING(5) before it was dropped).
    c.onDone(1, 5, { bytes: 1, states: 1 });
    expect(h.commits).toEqual([]);
    // A request during the recovery starts nothing.
    const b = track(c.checkpoint());
    expect(h.injected).toEqual([5]);
    expect(c.committedEpoch).toBe(4);

    c.resume();
    // The abandoned epoch's number is not reused: the shards dropped PENDING(5).
    expect(h.injected).toEqual([5, 6]);
    expect(c.inFlight).toBe(6);
    // Late DONE(5)s, from every shard, commit nothing.
    h.allDone(2, 5);
    expect(h.commits).toEqual([]);
    // DONEs are counted afresh for epoch 6.
    c.onDone(0, 6, { bytes: 1, states: 1 });
    expect(h.commits).toEqual([]);
    c.onDone(1, 6, { bytes: 1, states: 1 });
    expect(h.commits.map((x) => x.epoch)).toEqual([6]);
    await h.durable();
    expect(a.value).toBe(6);
    expect(b.value).toBe(6);
    expect(h.committed).toEqual([6]);
  });

  it('forgets DONEs counted before the recovery: the retried epoch needs every shard again', async () => {
    const h = new Host(2, 0);
    const c = h.coordinator;
    track(c.checkpoint());
    c.onDone(0, 1, { bytes: 1, states: 1 });
    await c.halt();
    c.resume();
    expect(h.injected).toEqual([1, 2]);
    c.onDone(1, 2, { bytes: 1, states: 1 });
    expect(h.commits).toEqual([]);
    c.onDone(0, 2, { bytes: 1, states: 1 });
    expect(h.commits.map((x) => x.epoch)).toEqual([2]);
  });

  it('lets a COMMITTED write under way finish: halt() waits for it, the recovery starts from that epoch', async () => {
    const h = new Host(2, 0);
    const c = h.coordinator;
    const a = track(c.checkpoint());
    h.allDone(2, 1);
    const b = track(c.checkpoint()); // asked after BARRIER(1): waits for epoch 2
    const halted = track(c.halt());
    await settle();
    expect(halted.settled).toBe(false);
    expect(c.committedEpoch).toBe(0);
    await h.durable();
    expect(halted.settled).toBe(true);
    expect(c.committedEpoch).toBe(1);
    expect(h.committed).toEqual([1]);
    expect(a.value).toBe(1);
    // No epoch starts during the recovery, though b waits.
    expect(h.injected).toEqual([1]);
    expect(b.settled).toBe(false);
    c.resume();
    expect(h.injected).toEqual([1, 2]);
    h.allDone(2, 2);
    await h.durable();
    expect(b.value).toBe(2);
  });

  it('starts no epoch during a recovery, even for a checkpoint() asked with none in flight; resume starts it', async () => {
    const h = new Host(1, 2);
    const c = h.coordinator;
    await c.halt();
    const a = track(c.checkpoint());
    expect(h.injected).toEqual([]);
    c.resume();
    expect(h.injected).toEqual([3]);
    c.onDone(0, 3, { bytes: 1, states: 1 });
    await h.durable();
    expect(a.value).toBe(3);
  });

  it('starts nothing on resume when nothing was in flight and nobody waits, and re-arms the period', () => {
    vi.useFakeTimers();
    const h = new Host(1, 3, 100);
    const c = h.coordinator;
    c.start();
    void c.halt();
    // The period does not fire during the recovery.
    vi.advanceTimersByTime(1000);
    expect(h.quiescentAsked).toBe(0);
    c.resume();
    expect(h.injected).toEqual([]);
    vi.advanceTimersByTime(100);
    expect(h.injected).toEqual([4]);
    c.stop(new Error('test over'));
  });

  it('retries a periodic epoch abandoned by a recovery, though nobody waits for it', async () => {
    vi.useFakeTimers();
    const h = new Host(1, 0, 100);
    const c = h.coordinator;
    c.start();
    vi.advanceTimersByTime(100);
    expect(h.injected).toEqual([1]);
    await c.halt();
    c.resume();
    expect(h.injected).toEqual([1, 2]);
    c.stop(new Error('test over'));
  });
});

describe('Coordinator: failure and stop', () => {
  it('reports a failed COMMITTED write, commits nothing, and starts no further epoch', async () => {
    const h = new Host(1, 0);
    const c = h.coordinator;
    const a = track(c.checkpoint());
    c.onDone(0, 1, { bytes: 1, states: 1 });
    const boom = new Error('disk full');
    h.lastCommit.write.reject(boom);
    await settle();
    expect(h.failures).toEqual([boom]);
    expect(h.committed).toEqual([]);
    expect(c.committedEpoch).toBe(0);
    const b = track(c.checkpoint());
    expect(h.injected).toEqual([1]);
    // The host stops the coordinator when it fails: every waiter hears why.
    const why = new Error('engine failed');
    c.stop(why);
    await settle();
    expect(a.error).toBe(why);
    expect(b.error).toBe(why);
  });

  it('stop() rejects the waiters of the epoch in flight and of the next one, and cancels the period', async () => {
    vi.useFakeTimers();
    const h = new Host(2, 0, 100);
    const c = h.coordinator;
    c.start();
    const a = track(c.checkpoint());
    const b = track(c.checkpoint());
    const why = new Error('closed');
    c.stop(why);
    await vi.advanceTimersByTimeAsync(1000);
    expect(a.error).toBe(why);
    expect(b.error).toBe(why);
    expect(h.injected).toEqual([1]);
    expect(h.quiescentAsked).toBe(0);
  });
});

// ------------------------------------------------------------------------------------------------
// Model test
// ------------------------------------------------------------------------------------------------

/**
 * What may happen to a coordinator, in any order (the host's recovery is halt, then resume once
 * halt() settled; a failed COMMITTED write ends the run with stop(), as the host does).
 */
type Op =
  | { op: 'checkpoint' }
  | { op: 'done'; shard: number; which: 'open' | 'previous' | 'next' | 'last'; times: number }
  | { op: 'doneAll' }
  | { op: 'durable' }
  | { op: 'commitFails' }
  | { op: 'halt' }
  | { op: 'resume' };

const opArb = (shards: number): fc.Arbitrary<Op> =>
  fc.oneof(
    { weight: 3, arbitrary: fc.constant<Op>({ op: 'checkpoint' }) },
    {
      weight: 5,
      arbitrary: fc.record({
        op: fc.constant('done' as const),
        shard: fc.integer({ min: 0, max: shards - 1 }),
        which: fc.constantFrom('open' as const, 'open' as const, 'open' as const, 'previous' as const, 'next' as const, 'last' as const),
        times: fc.integer({ min: 1, max: 2 }),
      }),
    },
    { weight: 3, arbitrary: fc.constant<Op>({ op: 'doneAll' }) },
    { weight: 3, arbitrary: fc.constant<Op>({ op: 'durable' }) },
    { weight: 1, arbitrary: fc.constant<Op>({ op: 'commitFails' }) },
    { weight: 2, arbitrary: fc.constant<Op>({ op: 'halt' }) },
    { weight: 2, arbitrary: fc.constant<Op>({ op: 'resume' }) },
  );

interface ModelWaiter {
  /** How many barriers had been injected when checkpoint() was called. */
  readonly injectedBefore: number;
  readonly result: ReturnType<typeof track<number>>;
}

/**
 * The rule, derived from the protocol comment and the code:
 * - one epoch is in flight at a time; barriers carry consecutive epochs from committed + 1, and an
 *   epoch abandoned by a recovery is never reused;
 * - COMMITTED(e) is written exactly when the last of the shards' DONE(e) arrives, counting only
 *   DONEs that arrive after BARRIER(e) and before the next recovery begins (halt), each shard once;
 * - e is committed (committedEpoch, hooks.committed) exactly when that write is durable;
 * - a checkpoint() resolves with the first committed epoch whose barrier came after the call;
 *   none stays pending while the coordinator could run an epoch (not halted, none in flight).
 */
async function runModel(shards: number, committed0: number, ops: readonly Op[]): Promise<void> {
  const h = new Host(shards, committed0);
  const c = h.coordinator;
  /** The epoch in flight per the model: injected, not committed, not abandoned. */
  let open: number | null = null;
  const reported = new Set<number>();
  let commitPending: number | null = null;
  let committed = committed0;
  const committedList: number[] = [];
  let halted = false;
  let haltDone: ReturnType<typeof track<void>> | null = null;
  const waiters: ModelWaiter[] = [];
  let stopped: Error | null = null;

  const expected = (w: ModelWaiter): number | undefined => committedList.find((e) => h.injected.indexOf(e) >= w.injectedBefore);

  const check = (where: string): void => {
    const ctx = `after ${where}`;
    // Barriers: consecutive epochs from committed0 + 1.
    h.injected.forEach((e, i) => expect(e, ctx).toBe(committed0 + 1 + i));
    expect(c.committedEpoch, ctx).toBe(committed);
    expect(h.committed, ctx).toEqual(committedList);
    for (const w of waiters) {
      if (stopped !== null) {
        if (w.result.settled && 'error' in w.result) expect(w.result.error, ctx).toBe(stopped);
        continue;
      }
      const want = expected(w);
      if (w.result.settled) expect(w.result.value, ctx).toBe(want);
      else expect(want, `${ctx}: a waiter was passed over by committed epoch ${want}`).toBeUndefined();
    }
    if (stopped === null && !halted && open === null && commitPending === null) {
      const stranded = waiters.filter((w) => !w.result.settled).length;
      expect(stranded, `${ctx}: waiters stranded with no epoch in flight`).toBe(0);
    }
  };

  const observeInjection = (before: number): void => {
    const fresh = h.injected.length - before;
    expect(fresh, 'at most one barrier per step').toBeLessThanOrEqual(1);
    if (fresh === 1) {
      expect(open, 'a barrier while an epoch is in flight').toBeNull();
      expect(halted, 'a barrier during a recovery').toBe(false);
      open = h.injected.at(-1) as number;
      reported.clear();
    }
  };

  /** Makes the pending COMMITTED write durable; returns whether a barrier followed it. */
  const makeDurable = async (): Promise<boolean> => {
    const e = commitPending as number;
    const before = h.injected.length;
    h.lastCommit.write.resolve();
    await settle();
    commitPending = null;
    committed = e;
    committedList.push(e);
    open = null;
    reported.clear();
    observeInjection(before);
    return h.injected.length > before;
  };

  for (const [i, o] of ops.entries()) {
    if (stopped !== null) break;
    const where = `op ${i} ${JSON.stringify(o)}`;
    const injectedBefore = h.injected.length;
    const commitsBefore = h.commits.length;
    switch (o.op) {
      case 'checkpoint':
        waiters.push({ injectedBefore, result: track(c.checkpoint()) });
        observeInjection(injectedBefore);
        break;
      case 'done':
      case 'doneAll': {
        const last = h.injected.at(-1) ?? committed0;
        const which = o.op === 'doneAll' ? 'open' : o.which;
        const epoch: number = which === 'open' ? (open ?? last) : which === 'previous' ? last - 1 : which === 'next' ? last + 1 : last;
        // DONE(0) is left out: see the test 'ignores a DONE(0) when no epoch is in flight' above.
        if (epoch === 0) continue;
        const reports = o.op === 'doneAll' ? Array.from({ length: shards }, (_, s) => s) : Array.from({ length: o.times }, () => o.shard);
        let expectCommit = false;
        for (const shard of reports) {
          c.onDone(shard, epoch, { bytes: 1, states: 1 });
          if (!halted && epoch === open && commitPending === null && !reported.has(shard)) {
            reported.add(shard);
            if (reported.size === shards) expectCommit = true;
          }
        }
        if (expectCommit) {
          expect(h.commits.length, where).toBe(commitsBefore + 1);
          expect(h.lastCommit.epoch, where).toBe(epoch);
          commitPending = epoch;
        } else expect(h.commits.length, `${where}: unexpected COMMITTED write`).toBe(commitsBefore);
        break;
      }
      case 'durable': {
        if (commitPending === null) continue;
        const barrier = await makeDurable();
        // A waiter queued behind the committed epoch gets the next barrier at once (unless
        // halted). An unrequested barrier here is the known extra epoch ('starts no extra epoch').
        if (!halted && waiters.some((w) => !w.result.settled)) expect(barrier, `${where}: no barrier after the commit though a checkpoint() waits`).toBe(true);
        break;
      }
      case 'commitFails': {
        if (commitPending === null) continue;
        const boom = new Error(`COMMITTED(${commitPending}) failed`);
        h.lastCommit.write.reject(boom);
        await settle();
        expect(h.failures, where).toEqual([boom]);
        expect(h.injected.length, where).toBe(injectedBefore);
        stopped = new Error('engine failed');
        c.stop(stopped);
        await settle();
        for (const w of waiters) expect(w.result.settled || expected(w) !== undefined, where).toBe(true);
        break;
      }
      case 'halt':
        if (halted) continue;
        halted = true;
        haltDone = track(c.halt());
        await settle();
        // halt() settles once no COMMITTED write is under way.
        expect(haltDone.settled, where).toBe(commitPending === null);
        break;
      case 'resume': {
        if (!halted || haltDone?.settled !== true) continue;
        halted = false;
        haltDone = null;
        const retry = open !== null || waiters.some((w) => !w.result.settled);
        open = null;
        reported.clear();
        c.resume();
        observeInjection(injectedBefore);
        expect(h.injected.length - injectedBefore, `${where}: barrier on resume`).toBe(retry ? 1 : 0);
        break;
      }
    }
    await settle();
    check(where);
  }

  if (stopped !== null) {
    for (const w of waiters) {
      expect(w.result.settled, 'a waiter left pending by stop()').toBe(true);
      if (expected(w) === undefined) expect(w.result.error).toBe(stopped);
    }
    return;
  }
  // Drain: finish the recovery, then let every shard report and every write become durable.
  if (halted) {
    if (commitPending !== null) await makeDurable();
    const before = h.injected.length;
    c.resume();
    halted = false;
    open = null;
    observeInjection(before);
  }
  for (let round = 0; round < 10 && waiters.some((w) => !w.result.settled); round++) {
    if (commitPending === null && open !== null) {
      h.allDone(shards, open);
      commitPending = open;
    }
    if (commitPending !== null) await makeDurable();
    check(`drain round ${round}`);
  }
  for (const w of waiters) {
    expect(w.result.settled, 'a waiter still pending after draining').toBe(true);
    expect(w.result.value).toBe(expected(w));
  }
  c.stop(new Error('test over'));
}

describe('Coordinator: model', () => {
  it('commits an epoch iff every shard reported it before a recovery abandoned it; every checkpoint() gets the first such epoch after it', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 4 }).chain((shards) =>
          fc.tuple(fc.constant(shards), fc.integer({ min: 0, max: 1000 }), fc.array(opArb(shards), { minLength: 1, maxLength: 60 })),
        ),
        async ([shards, committed0, ops]) => {
          await runModel(shards, committed0, ops);
        },
      ),
      { numRuns: 500 },
    );
  });
});
