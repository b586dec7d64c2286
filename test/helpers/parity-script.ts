/**
 * The parity script over the bank fixture (test/fixtures/bank.ts): deposits, transfers
 * (cross-shard in the engine), a cycle, a failure, timers (one cancelled, one left pending) and an
 * async function. Run against the test harness and the engine (test/testing/parity.test.ts) and
 * against Restate (test/interop/restate.test.ts): each must end in the same states.
 */
import type { Address } from '../../src/index.js';

const acct = (id: string): Address => ({ type: 'bank/account', id });

export function parityScript(): Array<[Address, unknown]> {
  const s: Array<[Address, unknown]> = [];
  for (let i = 0; i < 10; i++) s.push([acct(`p-${i}`), { op: 'deposit', amount: 100 + i, seq: i }]);
  for (let i = 0; i < 30; i++) s.push([acct(`p-${i % 4}`), { op: 'transfer', amount: 1 + (i % 5), to: `p-${4 + (i % 6)}` }]);
  s.push([{ type: 'test/pingpong', id: 'a-par' }, 21]);
  s.push([acct('p-3'), { op: 'boom' }]);
  s.push([acct('p-3'), { op: 'deposit', amount: 1, seq: 100 }]);
  s.push([acct('p-7'), { op: 'schedule', delayMs: 0, amount: 5, seq: 200 }]);
  s.push([acct('p-8'), { op: 'schedule', delayMs: 3_600_000, amount: 5, seq: 300, token: 'later' }]);
  s.push([acct('p-8'), { op: 'cancel', token: 'later' }]);
  s.push([acct('p-9'), { op: 'schedule', delayMs: 3_600_000, amount: 5, seq: 400, token: 'stays' }]);
  s.push([{ type: 'test/slow', id: 'slow' }, { tag: 'one', waitMs: 1 }]);
  s.push([{ type: 'test/slow', id: 'slow' }, { tag: 'two', waitMs: 0 }]);
  return s;
}

/** Every address the script touches: each engine's final states are compared over these. */
export const PARITY_TOUCHED: readonly Address[] = [
  ...Array.from({ length: 10 }, (_, i) => acct(`p-${i}`)),
  acct('victim'),
  { type: 'test/pingpong', id: 'a-par' },
  { type: 'test/pingpong', id: 'b-par' },
  { type: 'test/slow', id: 'slow' },
];
