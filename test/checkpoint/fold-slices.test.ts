/**
 * A fold of committed epochs into the base (checkpoint/participant.ts, Participant.foldNow) and a
 * snapshot's mailbox encoding run on the shard's thread between loop turns: they must come in
 * slices, never one long step. Here a
 * real Participant over a real LMDB partition folds 16 epochs of 1,000 changes each (4,000
 * distinct instances): every write of the fold records at most FOLD_SLICE state records, in
 * key-group order over the whole fold, the event loop runs between the slices, and the base ends
 * with each instance's latest record, the PENDING entries gone and the folded epoch in the
 * metadata.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { FOLD_EVERY, FOLD_SLICE, FoldPicks, Participant, foldPhase, type Snapshot } from '../../src/checkpoint/participant.js';
import { META_FOLDED_EPOCH, PendingKind, StatesCapture, decodeEnvelopes } from '../../src/state/checkpoint-format.js';
import { E_PAYLOAD, E_TARGET_ID, envelope, type Envelope } from '../../src/contract/envelope.js';
import { Partition, type WriteOps } from '../../src/state/partition.js';

const root = mkdtempSync(join(tmpdir(), 'weft-fold-slices-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const EPOCHS = 16;
const PER_EPOCH = 1000;
const INSTANCES = 4000;

/** Epoch e changes instances (e * 250 + i) mod 4000: overlapping ranges, each record names its epoch. */
function changesOf(epoch: number): StatesCapture {
  const out = new StatesCapture();
  for (let i = 0; i < PER_EPOCH; i++) {
    const n = (epoch * 250 + i) % INSTANCES;
    out.add(n % 128, 'fold/t', `i${n}`, Uint8Array.of(epoch, n & 0xff));
  }
  out.finish();
  return out;
}

/** What a test's participant reports: snapshots written (DONE), epochs folded, failures. */
interface Reports {
  done: number;
  folds: number[];
  fatal: unknown[];
}

/**
 * A Participant over `partition` with one inbound ring, snapshots made by `snapshot` (their
 * capture complete at once), and its reports counted in the returned `reports`.
 */
function participantOn(partition: Partition, snapshot: (epoch: number) => Pick<Snapshot, 'states' | 'mailbox'>, phase = 0, lastCommitted = 0): { participant: Participant; reports: Reports } {
  const reports: Reports = { done: 0, folds: [], fatal: [] };
  const participant = new Participant(
    partition,
    1,
    {
      takeSnapshot: (epoch): Omit<Snapshot, 'inflight' | 'bytes'> => ({ epoch, ...snapshot(epoch), timers: { puts: [], deletes: [] }, timerSeq: 1 }),
      forwardBarrier: () => {},
      done: () => {
        reports.done++;
      },
      folded: (epoch) => reports.folds.push(epoch),
      fatal: (err) => reports.fatal.push(err),
      captured: () => true,
      finishCapture: () => {},
      beat: () => {},
    },
    lastCommitted,
    phase,
  );
  return { participant, reports };
}

/** Waits (bounded) until `cond` holds or the participant failed. */
async function until(cond: () => boolean, reports: Reports): Promise<void> {
  for (let i = 0; i < 2000 && !cond() && reports.fatal.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 5));
}

describe('staggered folds', () => {
  it('spreads the shards of an engine over the fold cycle', () => {
    expect(foldPhase(0, 1)).toBe(0);
    expect([0, 1].map((s) => foldPhase(s, 2))).toEqual([0, FOLD_EVERY / 2]);
    for (const shards of [3, 4, 8, 16, 64]) {
      const phases = Array.from({ length: shards }, (_, s) => foldPhase(s, shards));
      expect(phases.every((p) => Number.isInteger(p) && p >= 0 && p < FOLD_EVERY)).toBe(true);
      // As many different phases as the cycle has room for.
      expect(new Set(phases).size).toBe(Math.min(shards, FOLD_EVERY));
    }
  });

  it('folds shards of different phases at different commits, each every FOLD_EVERY epochs, and in the end every epoch is folded', async () => {
    // Two shards folding at the same commits kept both shard threads, their commits and the GC
    // busy at once every FOLD_EVERY checkpoints: the requests arriving then waited for a core.
    const epochs = 3 * FOLD_EVERY;
    const shards = await Promise.all([0, 1].map((s) => Partition.open(join(root, `phase-${s}`), { durability: 'process' })));
    try {
      const parts = shards.map((partition, s) => participantOn(partition, (epoch) => ({ states: changesOf(epoch), mailbox: [] }), foldPhase(s, 2)));
      for (const { participant, reports } of parts) {
        for (let e = 1; e <= epochs; e++) participant.onBarrier(0, e, [true]);
        await until(() => reports.done === epochs, reports);
        expect(reports.done).toBe(epochs);
      }
      // Commit one epoch at a time on both, waiting out each fold it starts.
      for (let e = 1; e <= epochs; e++) {
        for (const { participant } of parts) {
          participant.onCommitted(e);
          await participant.whenFolded();
        }
      }
      const [a, b] = parts.map((p) => p.reports);
      expect(a!.fatal).toEqual([]);
      expect(b!.fatal).toEqual([]);
      expect(a!.folds).toEqual([16, 32, 48]);
      expect(b!.folds).toEqual([8, 24, 40]);
      // The second one's last epochs wait for its next turn (or a quiet fold); folded now, all is there.
      parts[1]!.participant.foldNow();
      await parts[1]!.participant.whenFolded();
      expect(b!.folds.at(-1)).toBe(epochs);
      for (const partition of shards) {
        expect(partition.countPending()).toBe(0);
        expect(partition.getMeta(META_FOLDED_EPOCH)).toBe(epochs);
      }
    } finally {
      await Promise.all(shards.map((p) => p.close()));
    }
  }, 60_000);

  /** A partition that takes every write at once and keeps nothing: for the fold schedule alone. */
  const nowhere = (): Partition => {
    const ops = new Proxy({}, { get: () => () => {} }) as WriteOps;
    return { write: (build: (o: WriteOps) => void): Promise<void> => (build(ops), Promise.resolve()) } as unknown as Partition;
  };
  /** Takes the snapshots of epochs from..to, commits each as `commits` says, and returns the commits that ended a fold. */
  const schedule = async (phase: number, lastCommitted: number, to: number, commits: number[]): Promise<{ folds: number[]; maxLag: number }> => {
    const { participant, reports } = participantOn(nowhere(), (epoch) => ({ states: changesOf(epoch), mailbox: [] }), phase, lastCommitted);
    for (let e = lastCommitted + 1; e <= to; e++) participant.onBarrier(0, e, [true]);
    await until(() => reports.done === to - lastCommitted, reports);
    let maxLag = 0;
    for (const e of commits) {
      participant.onCommitted(e);
      maxLag = Math.max(maxLag, participant.foldLag);
      await participant.whenFolded();
    }
    expect(reports.fatal).toEqual([]);
    return { folds: reports.folds, maxLag };
  };

  it('after a restart, folds at the next turn of its phase (with fewer epochs) and every FOLD_EVERY after it', async () => {
    const one = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);
    expect((await schedule(8, 23, 60, one(24, 60))).folds).toEqual([24, 40, 56]);
    expect((await schedule(8, 24, 60, one(25, 60))).folds).toEqual([40, 56]);
    expect((await schedule(0, 5, 40, one(6, 40))).folds).toEqual([16, 32]);
  });

  it('folds once for a COMMITTED that jumps over a turn, and is back in phase after a fold out of it', async () => {
    expect((await schedule(8, 0, 40, [5, 30, 31, 39, 40])).folds).toEqual([30, 40]);
    // A fold started otherwise (urgent, quiet) at epoch 3: the next one still comes at the turn.
    const { participant, reports } = participantOn(nowhere(), (epoch) => ({ states: changesOf(epoch), mailbox: [] }), 8, 0);
    for (let e = 1; e <= 30; e++) participant.onBarrier(0, e, [true]);
    await until(() => reports.done === 30, reports);
    for (let e = 1; e <= 30; e++) {
      participant.onCommitted(e);
      if (e === 3) participant.foldNow();
      await participant.whenFolded();
    }
    expect(reports.folds).toEqual([3, 8, 24]);
  });

  it('never lets more than FOLD_EVERY committed epochs wait, whatever the phase and the epoch it starts from', async () => {
    for (let phase = 0; phase < FOLD_EVERY; phase += 3) {
      for (const start of [0, 7, 16, 1000]) {
        const commits = Array.from({ length: 3 * FOLD_EVERY }, (_, i) => start + 1 + i);
        const { folds, maxLag } = await schedule(phase, start, start + 3 * FOLD_EVERY, commits);
        expect(maxLag).toBeLessThanOrEqual(FOLD_EVERY);
        for (let k = 1; k < folds.length; k++) expect(folds[k]! - folds[k - 1]!).toBe(FOLD_EVERY);
        for (const f of folds) expect((f + phase) % FOLD_EVERY).toBe(0);
      }
    }
  });

  it('refuses a fold phase outside the cycle, naming it', async () => {
    const partition = await Partition.open(join(root, 'phase-bad'), { durability: 'process' });
    try {
      expect(() => participantOn(partition, () => ({ states: changesOf(1), mailbox: [] }), FOLD_EVERY)).toThrow(new RegExp(`fold phase must be an integer from 0 to ${FOLD_EVERY - 1} \\(got ${FOLD_EVERY}\\)`));
      expect(() => participantOn(partition, () => ({ states: changesOf(1), mailbox: [] }), 1.5)).toThrow(/got 1\.5/);
    } finally {
      await partition.close();
    }
  });
});

describe('checkpoint work in slices', () => {
  it('writes in slices of at most FOLD_SLICE records, in key-group order, lets the event loop run between them, and leaves the latest records', async () => {
    const partition = await Partition.open(join(root, 'p'), { durability: 'process' });
    try {
      // Every write() the participant makes: how many state records it put; and the key group
      // of every state record put, in order.
      const statePuts: number[] = [];
      const keyGroups: number[] = [];
      const write = partition.write.bind(partition);
      partition.write = (build: (ops: WriteOps) => void): Promise<void> =>
        write((ops) => {
          let n = 0;
          const counting = new Proxy(ops, {
            get(target, prop, receiver) {
              const v = Reflect.get(target, prop, receiver) as unknown;
              if (typeof v !== 'function') return v;
              return (...args: unknown[]) => {
                if (prop === 'putState' || prop === 'deleteState') {
                  n++;
                  keyGroups.push(args[0] as number);
                }
                return (v as (...a: unknown[]) => unknown).apply(target, args);
              };
            },
          });
          build(counting);
          statePuts.push(n);
        });

      const { participant, reports } = participantOn(partition, (epoch) => ({ states: changesOf(epoch), mailbox: [] }));
      for (let e = 1; e <= EPOCHS; e++) participant.onBarrier(0, e, [true]);
      await participant.whenFolded();
      await until(() => reports.done === EPOCHS, reports);
      expect(reports.done).toBe(EPOCHS);
      const pendingWrites = statePuts.length;
      const pendingPuts = keyGroups.length;

      // Count event-loop turns (macrotasks) while the fold runs.
      let ticks = 0;
      let ticking = true;
      const tick = (): void => {
        ticks++;
        if (ticking) setImmediate(tick);
      };
      setImmediate(tick);
      for (let e = 1; e <= EPOCHS; e++) participant.onCommitted(e);
      await participant.whenFolded();
      ticking = false;

      expect(reports.fatal).toEqual([]);
      expect(reports.folds).toEqual([EPOCHS]);
      const foldWrites = statePuts.slice(pendingWrites);
      // 4,000 distinct instances: none over FOLD_SLICE records, each record once.
      expect(Math.max(...foldWrites)).toBeLessThanOrEqual(FOLD_SLICE);
      expect(foldWrites.reduce((a, b) => a + b, 0)).toBe(INSTANCES);
      expect(foldWrites.length).toBeGreaterThanOrEqual(INSTANCES / FOLD_SLICE);
      // In key-group order over the whole fold, all 128 groups (the epochs change them in turn).
      const foldGroups = keyGroups.slice(pendingPuts);
      expect(foldGroups).toHaveLength(INSTANCES);
      expect(foldGroups).toEqual([...foldGroups].sort((a, b) => a - b));
      expect(new Set(foldGroups).size).toBe(128);
      // The event loop ran between the slices (the fold yields after each).
      expect(ticks).toBeGreaterThanOrEqual(foldWrites.length - 1);

      // Each instance holds the record of the last epoch that changed it.
      const latest = new Map<number, number>();
      for (let e = 1; e <= EPOCHS; e++) for (let i = 0; i < PER_EPOCH; i++) latest.set((e * 250 + i) % INSTANCES, e);
      for (const [n, e] of latest) expect([...(partition.getState(n % 128, 'fold/t', `i${n}`) ?? [])]).toEqual([e, n & 0xff]);
      expect(partition.countPending()).toBe(0);
      expect(partition.getMeta(META_FOLDED_EPOCH)).toBe(EPOCHS);
    } finally {
      await partition.close();
    }
  }, 60_000);

  it('sorts a fold\'s picks by key group (stable, each once), able to yield at every pick in both passes', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: 0, max: 32_767 }), { maxLength: 3000 }), fc.integer({ min: 0, max: 200 }), async (kgs, spread) => {
        const picks = new FoldPicks();
        kgs.forEach((kg, i) => picks.add(i % 7, i * 3, spread === 0 ? kg : kg % spread));
        // A yielder that is always over: the sort yields wherever it may.
        let yields = 0;
        const order = await picks.byKeyGroup({ over: () => true, yield: async () => void yields++ });
        const kgOf = (i: number): number => (spread === 0 ? kgs[i]! : kgs[i]! % spread);
        expect([...order].sort((a, b) => a - b)).toEqual(kgs.map((_, i) => i));
        for (let k = 1; k < order.length; k++) {
          const a = order[k - 1]!;
          const b = order[k]!;
          expect(kgOf(a) < kgOf(b) || (kgOf(a) === kgOf(b) && a < b)).toBe(true);
        }
        for (const i of order) {
          expect(picks.snapshot(i)).toBe(i % 7);
          expect(picks.position(i)).toBe(i * 3);
        }
        // Both passes over the picks (counting, placing) can let the event loop run at each one.
        expect(yields).toBe(2 * kgs.length);
      }),
      { numRuns: 200 },
    );
    // What a typed array would not store as given is refused, naming it.
    const picks = new FoldPicks();
    for (const bad of [-1, 1.5, 2 ** 32, Number.NaN]) expect(() => picks.add(0, 0, bad)).toThrow(new RangeError(`a fold's key group must be an unsigned 32-bit integer (got ${bad})`));
  });

  it('folds deletions and epochs that changed nothing: each instance ends as its latest change left it', async () => {
    const partition = await Partition.open(join(root, 'deletions'), { durability: 'process' });
    try {
      // Epoch e (1..12): nothing when e is a multiple of 3; else instances 0..299 stepping by e,
      // each put with the epoch, or deleted when (n + e) is a multiple of 5.
      const latest = new Map<number, number | null>();
      const capture = (epoch: number): StatesCapture => {
        const out = new StatesCapture();
        if (epoch % 3 !== 0) {
          for (let n = 0; n < 300; n += epoch) {
            const gone = (n + epoch) % 5 === 0;
            out.add(n % 128, 'fold/d', `d${n}`, gone ? null : Uint8Array.of(epoch, n & 0xff));
            latest.set(n, gone ? null : epoch);
          }
        }
        out.finish();
        return out;
      };
      // Instances 0..299 exist in the base before the fold.
      await partition.write((ops) => {
        for (let n = 0; n < 300; n++) ops.putState(n % 128, 'fold/d', `d${n}`, Uint8Array.of(0, n & 0xff));
      });
      const { participant, reports } = participantOn(partition, (epoch) => ({ states: capture(epoch), mailbox: [] }));
      for (let e = 1; e <= 12; e++) participant.onBarrier(0, e, [true]);
      await until(() => reports.done === 12, reports);
      for (let e = 1; e <= 12; e++) participant.onCommitted(e);
      participant.foldNow();
      await participant.whenFolded();
      expect(reports.fatal).toEqual([]);
      expect(reports.folds.at(-1)).toBe(12);
      for (let n = 0; n < 300; n++) {
        const got = partition.getState(n % 128, 'fold/d', `d${n}`);
        const e = latest.has(n) ? latest.get(n)! : 0;
        if (e === null) expect(got).toBeUndefined();
        else expect([...(got ?? [])]).toEqual([e, n & 0xff]);
      }
      expect(partition.countPending()).toBe(0);
    } finally {
      await partition.close();
    }
  }, 60_000);

  it('encodes a large mailbox in slices before its PENDING write, and writes the same envelopes', async () => {
    const partition = await Partition.open(join(root, 'm'), { durability: 'process' });
    try {
      const envs: Envelope[] = [];
      for (let i = 0; i < 50_000; i++) envs.push(envelope('mail/t', `m${i}`, null, null, 'weft.types/msgpack', Uint8Array.of(i & 0xff, 1, 2, 3), 0, 0));
      // Event-loop turns (macrotasks) that ran before the PENDING write was made.
      let ticks = 0;
      let ticking = true;
      const tick = (): void => {
        ticks++;
        if (ticking) setImmediate(tick);
      };
      let ticksAtWrite = -1;
      const write = partition.write.bind(partition);
      partition.write = (build: (ops: WriteOps) => void): Promise<void> => {
        if (ticksAtWrite < 0) ticksAtWrite = ticks;
        return write(build);
      };
      const { participant, reports } = participantOn(partition, () => ({ states: new StatesCapture(), mailbox: envs }));
      setImmediate(tick);
      participant.onBarrier(0, 1, [true]);
      await until(() => reports.done === 1, reports);
      ticking = false;
      expect(reports.fatal).toEqual([]);
      expect(reports.done).toBe(1);
      // 50,000 envelopes take far longer than one 0.5 ms slice: the loop turned before the write.
      expect(ticksAtWrite).toBeGreaterThan(0);
      const stored = [...partition.pendingEntries(1)].find((en) => en.key[1] === PendingKind.Mailbox);
      const back = decodeEnvelopes(stored?.value);
      expect(back).toHaveLength(envs.length);
      expect(back[49_999]?.[E_TARGET_ID]).toBe('m49999');
      expect([...(back[300]?.[E_PAYLOAD] ?? [])]).toEqual([300 & 0xff, 1, 2, 3]);
    } finally {
      await partition.close();
    }
  }, 60_000);

  it('keeps a few slices waiting for their commit at once, runs one fold at a time, and counts the epochs not folded yet', async () => {
    const partition = await Partition.open(join(root, 'lag'), { durability: 'process' });
    try {
      // Slow commits (as with durability 'fsync'): each write resolves 3 ms after LMDB committed it.
      let pending = 0;
      let mostPending = 0;
      const write = partition.write.bind(partition);
      partition.write = (build: (ops: WriteOps) => void): Promise<void> => {
        pending++;
        mostPending = Math.max(mostPending, pending);
        return write(build)
          .then(() => new Promise<void>((resolve) => setTimeout(resolve, 3)))
          .finally(() => {
            pending--;
          });
      };
      const { participant, reports } = participantOn(partition, (epoch) => ({ states: changesOf(epoch), mailbox: [] }));
      for (let e = 1; e <= 2 * EPOCHS; e++) participant.onBarrier(0, e, [true]);
      await until(() => reports.done === 2 * EPOCHS, reports);
      expect(reports.done).toBe(2 * EPOCHS);
      mostPending = 0;
      // 16 commits start a fold; 16 more arrive while it runs and wait for it.
      for (let e = 1; e <= EPOCHS; e++) participant.onCommitted(e);
      expect(participant.foldLag).toBe(EPOCHS);
      for (let e = EPOCHS + 1; e <= 2 * EPOCHS; e++) participant.onCommitted(e);
      expect(participant.foldLag).toBe(2 * EPOCHS);
      await participant.whenFolded();
      expect(reports.fatal).toEqual([]);
      // Two folds, one after the other: the second took every epoch committed during the first.
      expect(reports.folds).toEqual([EPOCHS, 2 * EPOCHS]);
      expect(participant.foldLag).toBe(0);
      // Slices did not wait one by one for their commit (the slow commits overlapped).
      expect(mostPending).toBeGreaterThan(1);
      expect(mostPending).toBeLessThanOrEqual(5);
      expect(partition.countPending()).toBe(0);
      expect(partition.getMeta(META_FOLDED_EPOCH)).toBe(2 * EPOCHS);
    } finally {
      await partition.close();
    }
  }, 60_000);
});
