/**
 * The test harness's idempotency keys: the engine's semantics (test/engine/idempotency.test.ts),
 * with the retention window in virtual time.
 */
import { describe, expect, it } from 'vitest';
import { expectWeftRejection } from '../helpers/index.js';
import { createTestHarness } from '../../src/testing/index.js';

const BANK = new URL('../../dist/test/fixtures/bank.js', import.meta.url);
const account = (id: string): { type: string; id: string } => ({ type: 'bank/account', id });

describe('test harness: idempotency keys', () => {
  it('applies a duplicate send once and answers a duplicate request with the first reply', async () => {
    const h = await createTestHarness(BANK);
    const a = account('a');
    await h.send(a, { op: 'deposit', amount: 10 }, { idempotencyKey: 's' });
    await h.send(a, { op: 'deposit', amount: 10 }, { idempotencyKey: 's' });
    expect(await h.request(a, { op: 'get' })).toBe(10);
    expect(await h.request(a, { op: 'deposit', amount: 5 }, { idempotencyKey: 'r' })).toBe(15);
    await h.send(a, { op: 'deposit', amount: 1 });
    expect(await h.request(a, { op: 'deposit', amount: 500 }, { idempotencyKey: 'r' })).toBe(15);
    expect(await h.request(a, { op: 'get' })).toBe(16);
    // Per address: the same key elsewhere is applied.
    expect(await h.request(account('b'), { op: 'deposit', amount: 5 }, { idempotencyKey: 'r' })).toBe(5);
    // The purges are the harness's own: not among the module's pending delayed messages.
    expect(h.pendingTimers()).toEqual([]);
    await h.close();
  });

  it('applies concurrent duplicates once; the second request gets the first answer', async () => {
    const h = await createTestHarness(BANK);
    const a = { type: 'test/slow', id: 'c' };
    const [r1, r2] = await Promise.all([
      h.request(a, { tag: 'x', waitMs: 5 }, { idempotencyKey: 'k' }),
      h.request(a, { tag: 'y', waitMs: 0 }, { idempotencyKey: 'k' }),
    ]);
    expect(r1).toEqual(['x']);
    expect(r2).toEqual(['x']);
    expect(await h.request(a, { tag: 'z', waitMs: 0 })).toEqual(['x', 'z']);
    await h.close();
  });

  it('forgets a key once the retention window has passed (virtual time)', async () => {
    const h = await createTestHarness(BANK, { idempotencyRetentionMs: 1000 });
    const a = account('e');
    expect(await h.request(a, { op: 'deposit', amount: 1 }, { idempotencyKey: 'k' })).toBe(1);
    await h.advance(999);
    expect(await h.request(a, { op: 'deposit', amount: 1 }, { idempotencyKey: 'k' })).toBe(1);
    await h.advance(1);
    expect(await h.request(a, { op: 'deposit', amount: 1 }, { idempotencyKey: 'k' })).toBe(2);
    expect(await h.request(a, { op: 'deposit', amount: 1 }, { idempotencyKey: 'k' })).toBe(2);
    await h.close();
  });

  it('rejects bad keys and a bad window with the engine\'s messages', async () => {
    const h = await createTestHarness(BANK);
    await expectWeftRejection(h.send(account('x'), { op: 'get' }, { idempotencyKey: '' }), 'ERR_WEFT_INVALID_ARG', 'weft.send idempotencyKey must be a non-empty string of at most 256 characters (got "")');
    await expectWeftRejection(h.request(account('x'), { op: 'get' }, { idempotencyKey: null as unknown as string }), 'ERR_WEFT_INVALID_ARG', 'weft.request idempotencyKey must be a non-empty string of at most 256 characters (got null)');
    await h.close();
    await expectWeftRejection(createTestHarness(BANK, { idempotencyRetentionMs: 0 }), 'ERR_WEFT_INVALID_OPTION', 'options.idempotencyRetentionMs must be an integer from 1 to 2592000000 (got 0)');
  });
});
