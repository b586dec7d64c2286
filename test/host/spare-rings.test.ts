import { afterEach, describe, expect, it, vi } from 'vitest';
import { SPARE_IDLE_MS, dropSpares, giveRings, spareRingBytes, takeRing } from '../../src/host/spare-rings.js';
import { ringByteLength } from '../../src/transport/layout.js';
import { Ring } from '../../src/transport/ring.js';

afterEach(() => dropSpares());

describe('spare rings', () => {
  it('hands the rings of an ended generation to the next one, emptied', () => {
    const first = [takeRing(1024), takeRing(1024), takeRing(4096)];
    first[0]!.tryWrite(new Uint8Array(100));
    first[0]!.publish();
    giveRings(first.map((r) => r.buffer));
    expect(spareRingBytes()).toBe(2 * ringByteLength(1024) + ringByteLength(4096));
    const next = [takeRing(1024), takeRing(1024), takeRing(4096), takeRing(1024)];
    // Same memory, other sizes not mixed up, a fourth ring is new.
    expect(new Set(next.slice(0, 2).map((r) => r.buffer))).toEqual(new Set(first.slice(0, 2).map((r) => r.buffer)));
    expect(next[2]!.buffer).toBe(first[2]!.buffer);
    expect(first.some((r) => r.buffer === next[3]!.buffer)).toBe(false);
    expect(next.every((r) => r.isEmpty())).toBe(true);
    expect(spareRingBytes()).toBe(0);
  });

  it('keeps at most the largest generation released', () => {
    giveRings([Ring.create(1024).buffer, Ring.create(1024).buffer]);
    giveRings([Ring.create(1024).buffer, Ring.create(1024).buffer]);
    expect(spareRingBytes()).toBe(2 * ringByteLength(1024));
  });

  it('lets spares go after a while without a taker (an unref-ed timer)', () => {
    const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timers();
    giveRings([Ring.create(1024).buffer]);
    expect(SPARE_IDLE_MS).toBeGreaterThan(0);
    // The timer does not keep the process alive (only ref-ed timers are listed).
    expect(timers()).toBe(before);
  });

  it('drops spares SPARE_IDLE_MS after the last release', () => {
    vi.useFakeTimers();
    try {
      giveRings([Ring.create(1024).buffer]);
      vi.advanceTimersByTime(SPARE_IDLE_MS - 1);
      giveRings([Ring.create(1024).buffer]); // a release restarts the wait
      vi.advanceTimersByTime(SPARE_IDLE_MS - 1);
      expect(spareRingBytes()).toBe(ringByteLength(1024));
      vi.advanceTimersByTime(1);
      expect(spareRingBytes()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });
});
