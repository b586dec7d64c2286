/**
 * The front-desk example (the module the README serves to a StateFun cluster, and the one the
 * interop suite runs on Flink StateFun itself) through weft/testing, on a virtual clock: the
 * greeter's reply to another function, state across messages, a delayed callback and its
 * cancellation, and the greeting's 2 s time-to-live.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createTestHarness, type TestHarness } from '../../src/testing/index.js';
import frontDesk from '../../examples/front-desk/functions.js';

const LOG = 'front-desk/log';
const guest = (id: string) => ({ type: 'front-desk/guest', id });

let h: TestHarness;
afterEach(async () => {
  await h?.close();
});

describe('examples/front-desk through the test harness', () => {
  it('greets through the greeter, counts visits, calls back unless the guest left, and forgets the greeting after 2 s', async () => {
    h = await createTestHarness(frontDesk);
    await h.send(guest('ada'), { op: 'arrive', name: 'Ada', callbackMs: 1_000 });
    await h.send(guest('grace'), { op: 'arrive', name: 'Grace', callbackMs: 1_000 });
    await h.send(guest('grace'), { op: 'leave' });
    await h.send(guest('ada'), { op: 'arrive', name: 'Ada' });
    await h.send(guest('ada'), { op: 'recall' });
    expect(await h.query({ type: 'front-desk/greeter', id: 'ada' })).toEqual({ visits: 2 });
    await h.advance(1_000);
    await h.advance(1_000);
    await h.send(guest('ada'), { op: 'recall' });
    expect(h.egress(LOG)).toEqual([
      { event: 'greeted', id: 'ada', greeting: 'Hello, Ada!' },
      { event: 'greeted', id: 'grace', greeting: 'Hello, Grace!' },
      { event: 'left', id: 'grace' },
      { event: 'greeted', id: 'ada', greeting: 'Hello again, Ada! That makes 2 visits.' },
      { event: 'recall', id: 'ada', greeting: 'Hello again, Ada! That makes 2 visits.' },
      { event: 'callback', id: 'ada' },
      { event: 'recall', id: 'ada', greeting: null },
    ]);
    expect(h.deadLetters()).toEqual([]);
    expect(h.pendingTimers()).toEqual([]);
  });
});
