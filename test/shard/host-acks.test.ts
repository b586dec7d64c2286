/**
 * HostAcks: the low watermark of completed host messages, and the messages of paused remote
 * addresses it lets pass (parked) while they stay pending.
 */
import { describe, expect, it } from 'vitest';
import { HostAcks } from '../../src/shard/dispatcher.js';

function acks(...hseqs: number[]): HostAcks {
  const a = new HostAcks();
  for (const h of hseqs) a.received(h);
  return a;
}

describe('HostAcks', () => {
  it('is the oldest pending hseq, whatever order messages complete in', () => {
    const a = acks(1, 2, 3, 4);
    a.completed(2);
    expect(a.watermark()).toBe(1);
    a.completed(1);
    expect(a.watermark()).toBe(3);
    a.completed(4);
    a.completed(3);
    expect(a.watermark()).toBe(5);
    expect(a.pending).toBe(0);
  });

  it('passes a parked message, lists it as pending until it completes', () => {
    const a = acks(1, 2, 3);
    a.park(1);
    a.completed(2);
    const v = a.version;
    expect(a.watermark()).toBe(3);
    expect(a.pendingBelow()).toEqual([1]);
    expect(a.version).toBeGreaterThan(v);
    expect(a.pending).toBe(2);
    a.completed(3);
    expect(a.watermark()).toBe(4);
    const before = a.version;
    a.completed(1);
    expect(a.pendingBelow()).toEqual([]);
    expect(a.version).toBeGreaterThan(before);
    expect(a.watermark()).toBe(4);
    expect(a.pending).toBe(0);
  });

  it('holds the watermark again for a message unparked before the watermark reached it', () => {
    const a = acks(1, 2);
    a.park(1);
    a.unpark(1);
    a.completed(2);
    expect(a.watermark()).toBe(1);
    expect(a.pendingBelow()).toEqual([]);
    a.completed(1);
    expect(a.watermark()).toBe(3);
  });

  it('keeps a passed message pending across unpark and a second pause', () => {
    const a = acks(1, 2);
    a.park(1);
    a.completed(2);
    expect(a.watermark()).toBe(3);
    a.unpark(1);
    a.park(1);
    expect(a.pendingBelow()).toEqual([1]);
    a.completed(1);
    expect(a.pendingBelow()).toEqual([]);
    expect(a.watermark()).toBe(3);
  });

  it('lets a parked message that completes before the watermark reaches it count as done', () => {
    const a = acks(1, 2, 3);
    a.park(2);
    a.completed(2);
    expect(a.watermark()).toBe(1);
    a.completed(1);
    expect(a.watermark()).toBe(3);
    expect(a.pendingBelow()).toEqual([]);
  });
});
