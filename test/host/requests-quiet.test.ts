/**
 * What the pending-request table tells the checkpoint coordinator (coordinator.ts, step 5a): when
 * a reply leaves no request waiting (`onQuiet`), and whether a periodic checkpoint may wait for a
 * reply (at most one request waits, and it is not durable), through every way a request leaves
 * the table: its reply, an error reply, a durable reply's release, a refusal, a timeout, and a
 * rejection of all.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { PendingRequest, Requests } from '../../src/host/requests.js';
import type { RuntimeModule } from '../../src/module/runtime.js';

const to = { type: 'counter', id: 'a' };

/** A table whose replies decode to nothing (no module: only the bookkeeping is under test). */
function table(): { r: Requests; quiet: () => number } {
  let quiet = 0;
  const r = new Requests(undefined as unknown as RuntimeModule, () => quiet++);
  return { r, quiet: () => quiet };
}

function add(r: Requests, durable = false, timeoutMs = 60_000): PendingRequest {
  const p = new PendingRequest(r.nextId(), durable, to, 'counter', new Uint8Array(0), undefined, timeoutMs);
  r.add(p).catch(() => {});
  return p;
}

afterEach(() => {
  vi.useRealTimers();
});

describe('Requests: what a periodic checkpoint may wait for', () => {
  it('may wait while at most one request that is not durable waits, and hears when the last reply leaves none', () => {
    const { r, quiet } = table();
    expect(r.atMostOneUndurable()).toBe(true);
    const a = add(r);
    expect(r.atMostOneUndurable()).toBe(true);
    const b = add(r);
    expect(r.atMostOneUndurable()).toBe(false);
    r.replyError(a.requestId, { name: 'Error', message: 'no' });
    expect(quiet()).toBe(0);
    expect(r.atMostOneUndurable()).toBe(true);
    r.replyError(b.requestId, { name: 'Error', message: 'no' });
    expect(quiet()).toBe(1);
    // A reply nobody waits for (timed out, or a duplicate after a recovery) is no quiet moment.
    r.replyError(b.requestId, { name: 'Error', message: 'again' });
    expect(quiet()).toBe(1);
  });

  it('never waits while a durable request waits, however it leaves', async () => {
    vi.useFakeTimers();
    const { r, quiet } = table();
    const released = add(r, true);
    expect(r.atMostOneUndurable()).toBe(false);
    r.releaseDurable(released.requestId, 'counter', new Uint8Array(0));
    expect(r.atMostOneUndurable()).toBe(true);
    expect(quiet()).toBe(1);

    const refused = add(r, true);
    r.refuse(refused, new Error('refused'));
    expect(r.atMostOneUndurable()).toBe(true);
    // Refusing it again changes nothing.
    r.refuse(refused, new Error('refused'));
    expect(r.atMostOneUndurable()).toBe(true);

    add(r, true, 100);
    expect(r.atMostOneUndurable()).toBe(false);
    await vi.advanceTimersByTimeAsync(1000);
    expect(r.size).toBe(0);
    expect(r.atMostOneUndurable()).toBe(true);

    add(r, true);
    add(r, true);
    r.rejectAll(new Error('closed'), 'closed', () => false);
    expect(r.atMostOneUndurable()).toBe(true);
    add(r);
    expect(r.atMostOneUndurable()).toBe(true);
  });
});
