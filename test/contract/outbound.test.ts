import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Outbound } from '../../src/contract/outbound.js';
import { Doorbell } from '../../src/transport/doorbell.js';
import { decodeBatch } from '../../src/transport/framing.js';
import { Ring } from '../../src/transport/ring.js';

/**
 * The producer thread is bell 0, the consumer bell 1. Each record is cut into its own frame:
 * its weight is the frame target, a quarter of the ring's largest frame.
 */
function pair(capacity: number): { out: Outbound; consumer: Ring; bells: Doorbell; record(seq: number, bytes: number, quiet?: boolean): void } {
  const ring = Ring.create(capacity);
  const bells = Doorbell.create(2);
  const out = new Outbound(ring, 1, bells);
  const target = ring.maxFrameBytes >> 2;
  return {
    out,
    consumer: Ring.attach(ring.buffer),
    bells,
    record: (seq, bytes, quiet = false) => out.push(['r', seq, new Uint8Array(bytes)], target, quiet),
  };
}

/** The sequence numbers of the records in up to `max` frames the consumer drains. */
function drainSeqs(consumer: Ring, max?: number): number[] {
  const seqs: number[] = [];
  consumer.drain((frame) => {
    for (const rec of decodeBatch(frame)) seqs.push(rec[1] as number);
  }, max);
  return seqs;
}

describe('Outbound: waiting for room', () => {
  it('keeps its room request raised while frames are still spilled, also when room appeared during the flush', () => {
    // Frames of ~930 bytes: four fit a 4096-byte ring.
    const { out, consumer, record } = pair(4096);
    for (let seq = 0; seq < 10; seq++) record(seq, 900);
    const seen: number[] = [];
    expect(out.flush(() => {})).toBe(true);
    expect(out.spillDepth).toBe(6);
    // The consumer frees two slots and takes the request: it rings the producer, which flushes.
    seen.push(...drainSeqs(consumer, 2));
    expect(consumer.takeRoomRequest()).toBe(true);
    // While that flush fills the two slots, the consumer (another thread) frees two more, so the
    // producer's room request finds room and is lowered at once.
    let once = true;
    const flushed = out.flush(() => {
      if (once) seen.push(...drainSeqs(consumer));
      once = false;
    });
    expect(flushed).toBe(true);
    expect(out.spillDepth).toBe(2);
    // The consumer empties the ring: it must find the producer's request for room, or nobody
    // wakes the producer and both threads sleep with two frames held back. Before the fix the
    // second flush returned with the request lowered (and the engine stalled that way).
    seen.push(...drainSeqs(consumer));
    expect(consumer.takeRoomRequest()).toBe(true);
    expect(out.flush(() => {})).toBe(false);
    seen.push(...drainSeqs(consumer));
    expect(seen).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('property: a producer that sleeps whenever flush says so is always woken, under any interleaving of the consumer', () => {
    // A step of the consumer thread: drain up to `frames` frames (0: all there are), then, as the
    // shard loop does, take a room request and ring the producer if there was one. `inFlush`:
    // the step after it runs inside the producer's next flush, before its first publish (another
    // thread may free room at any moment); `beforeSleep`: it runs between a flush that left
    // frames spilled and the producer's sleep announcement.
    const step = fc.record({ frames: fc.integer({ min: 0, max: 4 }), inFlush: fc.boolean(), beforeSleep: fc.boolean() });
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 900 }), { minLength: 1, maxLength: 40 }),
        fc.array(step, { minLength: 1, maxLength: 60 }),
        (sizes, script) => {
          const { out, consumer, bells, record } = pair(4096);
          const seen: number[] = [];
          let next = 0;
          const consume = (): void => {
            const { frames } = script[next++ % script.length]!;
            const before = seen.length;
            seen.push(...drainSeqs(consumer, frames === 0 ? undefined : frames));
            if (seen.length > before && consumer.takeRoomRequest()) bells.ring(0);
          };
          sizes.forEach((bytes, seq) => record(seq, bytes));
          // The producer: flush; when frames stay behind, sleep by the doorbell protocol (announce,
          // re-check the room, then wait to be rung).
          let asleep = false;
          let done = false;
          for (let round = 0; round < 10_000 && !done; round++) {
            if (!asleep) {
              let inFlush = script[next % script.length]!.inFlush;
              const blocked = out.flush(() => {
                if (inFlush) consume();
                inFlush = false;
              });
              if (!blocked) {
                done = true;
                break;
              }
              // The consumer may also free room and ring (in vain: the bell is AWAKE) after the
              // flush raised its request and before the producer announces its sleep: hence the
              // re-check after the announcement.
              if (script[next % script.length]!.beforeSleep) consume();
              bells.prepareSleep(0);
              if (out.roomOrRequest()) bells.cancelSleep(0);
              else asleep = true;
            }
            if (asleep && consumer.isEmpty() && bells.isSleeping(0)) {
              throw new Error(`stalled: the ring is empty, ${out.spillDepth} frames are spilled, and nobody will ring the sleeping producer`);
            }
            consume();
            // Rung: the bell is AWAKE again.
            if (asleep && !bells.isSleeping(0)) asleep = false;
          }
          if (!done) throw new Error('10000 rounds without the producer getting every frame into the ring');
          seen.push(...drainSeqs(consumer));
          expect(seen).toEqual(sizes.map((_, seq) => seq));
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('Outbound: one batch array for its life', () => {
  it('cuts exactly the records pushed since the last cut, shows onCut only those, and takeBatch takes only the uncut ones', () => {
    const ring = Ring.create(1 << 16);
    const out = new Outbound(ring, 1, Doorbell.create(2));
    const consumer = Ring.attach(ring.buffer);
    const cuts: number[][] = [];
    out.onCut = (_frame, records, count) => cuts.push(records.slice(0, count).map((r) => (r as unknown[])[1] as number));
    const push = (...seqs: number[]): void => {
      for (const s of seqs) out.push(['r', s], 8);
    };
    push(1, 2, 3);
    out.flush(() => {});
    push(4);
    out.flush(() => {});
    // Nothing pushed: a flush cuts no frame.
    out.flush(() => {});
    push(5, 6);
    expect(out.pendingRecords).toBe(2);
    expect(out.takeBatch()).toEqual([['r', 5], ['r', 6]]);
    expect(out.pendingRecords).toBe(0);
    push(7);
    out.flush(() => {});
    expect(cuts).toEqual([[1, 2, 3], [4], [7]]);
    expect(drainSeqs(consumer)).toEqual([1, 2, 3, 4, 7]);
  });
});

describe('Outbound: quiet records', () => {
  /** Whether the consumer (bell 1, announced asleep before `flush`) was rung by it. */
  function rang(bells: Doorbell, flush: () => void): boolean {
    bells.prepareSleep(1);
    flush();
    // ring() succeeds only on a bell still SLEEPING: then the flush did not ring it.
    return !bells.ring(1);
  }

  it('a flush of quiet records only does not ring the consumer; the next loud one does, and the consumer reads both in order', () => {
    const { out, consumer, bells } = pair(64 * 1024);
    out.push(['barrier', 1], 16, true);
    expect(rang(bells, () => out.flush(() => {}))).toBe(false);
    out.push(['done', 2], 16);
    expect(rang(bells, () => out.flush(() => {}))).toBe(true);
    // A loud record and a quiet one in the same flush: rung.
    out.push(['ack', 3], 16);
    out.push(['barrier', 4], 16, true);
    expect(rang(bells, () => out.flush(() => {}))).toBe(true);
    expect(drainSeqs(consumer)).toEqual([1, 2, 3, 4]);
  });

  it('rings again for loud records published after a ring: frames that had spilled, and records pump() left uncut', () => {
    // Spilled: six loud frames, four fit. The first flush rings; the consumer reads all four,
    // takes the producer's room request and sleeps. The flush that publishes the last two must
    // ring it again.
    {
      const { out, consumer, bells, record } = pair(4096);
      for (let seq = 0; seq < 6; seq++) record(seq, 900);
      expect(rang(bells, () => out.flush(() => {}))).toBe(true);
      expect(out.spillDepth).toBe(2);
      expect(drainSeqs(consumer)).toEqual([0, 1, 2, 3]);
      consumer.takeRoomRequest();
      expect(rang(bells, () => out.flush(() => {}))).toBe(true);
      expect(drainSeqs(consumer)).toEqual([4, 5]);
    }
    // Uncut: pump() publishes the frame already cut and rings; the loud record still in the batch
    // is published by the next flush, which must ring too.
    {
      const { out, consumer, bells, record } = pair(64 * 1024);
      record(0, 100);
      out.push(['r', 1], 32);
      expect(rang(bells, () => out.pump(() => {}))).toBe(true);
      expect(drainSeqs(consumer)).toEqual([0]);
      expect(rang(bells, () => out.flush(() => {}))).toBe(true);
      expect(drainSeqs(consumer)).toEqual([1]);
    }
  });

  it('rings for quiet records once they fill more than half the ring', () => {
    const { out, consumer, bells, record } = pair(4096);
    // Frames of ~930 bytes: the first two leave the ring under half full, the third takes it over.
    const quiet = (seq: number): boolean => rang(bells, () => {
      record(seq, 900, true);
      out.flush(() => {});
    });
    expect([quiet(0), quiet(1), quiet(2)]).toEqual([false, false, true]);
    expect(drainSeqs(consumer)).toEqual([0, 1, 2]);
  });

  it('nudge() rings a consumer that has not read the quiet records published to it, and only then', () => {
    const { out, consumer, bells } = pair(64 * 1024);
    // Nothing published: nothing to ring for.
    expect(rang(bells, () => out.nudge())).toBe(false);
    out.push(['committed', 1], 16, true);
    expect(rang(bells, () => out.flush(() => {}))).toBe(false);
    // Published, unread: rung (and again at the next nudge, as long as it stays unread).
    expect(rang(bells, () => out.nudge())).toBe(true);
    expect(rang(bells, () => out.nudge())).toBe(true);
    expect(drainSeqs(consumer)).toEqual([1]);
    // Read: not rung.
    expect(rang(bells, () => out.nudge())).toBe(false);
    // Pushed but not flushed (nothing published yet) is not the consumer's to read: not rung.
    out.push(['committed', 2], 16, true);
    expect(rang(bells, () => out.nudge())).toBe(false);
    // A retired outbound rings nobody.
    out.flush(() => {});
    out.retire();
    expect(rang(bells, () => out.nudge())).toBe(false);
    expect(drainSeqs(consumer)).toEqual([2]);
  });
});
