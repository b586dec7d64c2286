/**
 * Request timeouts without a timer per request (src/host/request-timeouts.ts): one list and one
 * timer per timeout value, requests expiring in the order they were made, a reply unlinking its
 * request. Fake timers and the test's own clock: nothing depends on the machine's speed.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { RequestTimeouts, type Timed } from '../../src/host/request-timeouts.js';

interface Item extends Timed {
  name: string;
}

const item = (name: string): Item => ({ name, deadline: 0, prev: null, next: null, list: null });

let now = 0;
beforeEach(() => {
  vi.useFakeTimers();
  now = 0;
});
afterEach(() => {
  vi.useRealTimers();
});

/** Advances the test's clock and the fake timers together. */
function advance(ms: number): void {
  now += ms;
  vi.advanceTimersByTime(ms);
}

describe('RequestTimeouts', () => {
  it('expires the items of one timeout value in the order they were added, each at its own deadline, with one timer', () => {
    const expired: string[] = [];
    const t = new RequestTimeouts<Item>((i) => expired.push(i.name), () => now);
    t.add(item('a'), 100);
    advance(30);
    t.add(item('b'), 100);
    t.add(item('c'), 100);
    expect(vi.getTimerCount()).toBe(1);
    advance(69);
    expect(expired).toEqual([]);
    advance(1);
    expect(expired).toEqual(['a']);
    expect(t.size).toBe(2);
    advance(30);
    expect(expired).toEqual(['a', 'b', 'c']);
    expect(t.size).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('a timeout longer than a Node timer takes (2^31 - 1 ms) expires at its deadline, the timer re-armed in steps', () => {
    const expired: string[] = [];
    const t = new RequestTimeouts<Item>((i) => expired.push(i.name), () => now);
    const long = 2 ** 31 + 5000;
    t.add(item('long'), long);
    advance(1000);
    expect(expired).toEqual([]);
    advance(2 ** 31 - 1 - 1000);
    expect(expired).toEqual([]);
    expect(vi.getTimerCount()).toBe(1);
    advance(long - (2 ** 31 - 1));
    expect(expired).toEqual(['long']);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('with real timers, a timeout over 2^31 - 1 ms arms no timer Node would cut to 1 ms (no TimeoutOverflowWarning, nothing expires)', async () => {
    vi.useRealTimers();
    const warnings: string[] = [];
    const onWarning = (w: Error): void => {
      warnings.push(w.name);
    };
    process.on('warning', onWarning);
    const expired: string[] = [];
    const t = new RequestTimeouts<Item>((i) => expired.push(i.name), () => performance.now());
    const it1 = item('long');
    try {
      t.add(it1, 2 ** 31 + 5000);
      // Node warns (asynchronously) for each timer it cuts to 1 ms: a few event-loop turns.
      for (let i = 0; i < 10; i++) await new Promise((resolve) => setTimeout(resolve, 2));
      expect(warnings.filter((w) => w === 'TimeoutOverflowWarning')).toEqual([]);
      expect(expired).toEqual([]);
    } finally {
      t.remove(it1);
      process.off('warning', onWarning);
    }
  });

  it('removes answered items (first, middle, last) in O(1); with nothing waiting its timer holds nothing alive and is reused, then goes', () => {
    const expired: string[] = [];
    const t = new RequestTimeouts<Item>((i) => expired.push(i.name), () => now);
    const [a, b, c, d] = ['a', 'b', 'c', 'd'].map(item) as [Item, Item, Item, Item];
    for (const i of [a, b, c, d]) t.add(i, 50);
    t.remove(b);
    t.remove(a);
    t.remove(d);
    t.remove(d); // twice: nothing
    expect(t.size).toBe(1);
    advance(50);
    expect(expired).toEqual(['c']);
    // The timer that expired c went with its empty list.
    expect(vi.getTimerCount()).toBe(0);
    const e = item('e');
    t.add(e, 50);
    t.remove(e);
    // Nothing waits: the list's timer stays armed but no longer keeps the process alive.
    expect(vi.getTimerCount()).toBe(1);
    expect(e.list).toBe(null);
    advance(20);
    // An item on the idle list reuses its timer (refreshed: due 50 ms from now, not 30).
    const f = item('f');
    t.add(f, 50);
    expect(vi.getTimerCount()).toBe(1);
    advance(49);
    expect(expired).toEqual(['c']);
    advance(1);
    expect(expired).toEqual(['c', 'f']);
    expect(vi.getTimerCount()).toBe(0);
    // Idle again until the timer fires: then the list and its timer go.
    const g = item('g');
    t.add(g, 50);
    t.remove(g);
    advance(100);
    expect(expired).toEqual(['c', 'f']);
    expect(vi.getTimerCount()).toBe(0);
    expect(t.size).toBe(0);
  });

  it('an idle list\'s timer does not keep the process alive; a waiting item does (real timers)', () => {
    vi.useRealTimers();
    const t = new RequestTimeouts<Item>(() => {});
    const a = item('a');
    t.add(a, 60_000);
    const timerOf = (): NodeJS.Timeout => (a.list as unknown as { timer: NodeJS.Timeout }).timer;
    const list = a.list;
    expect(timerOf().hasRef()).toBe(true);
    t.remove(a);
    const timer = (list as unknown as { timer: NodeJS.Timeout }).timer;
    expect(timer.hasRef()).toBe(false);
    t.add(a, 60_000);
    expect(timerOf()).toBe(timer);
    expect(timer.hasRef()).toBe(true);
    t.clear();
  });

  it('keeps one list per timeout value: a short timeout made later expires first', () => {
    const expired: string[] = [];
    const t = new RequestTimeouts<Item>((i) => expired.push(i.name), () => now);
    t.add(item('long'), 1000);
    t.add(item('short'), 10);
    expect(vi.getTimerCount()).toBe(2);
    advance(10);
    expect(expired).toEqual(['short']);
    advance(990);
    expect(expired).toEqual(['short', 'long']);
  });

  it('clear() unlinks everything and stops every timer', () => {
    const expired: string[] = [];
    const t = new RequestTimeouts<Item>((i) => expired.push(i.name), () => now);
    const a = item('a');
    t.add(a, 10);
    t.add(item('b'), 20);
    t.clear();
    expect(a.list).toBe(null);
    expect(vi.getTimerCount()).toBe(0);
    advance(100);
    expect(expired).toEqual([]);
  });
});
