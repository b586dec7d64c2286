/**
 * The harness and the engine run the same script of messages through the same compiled module;
 * their final states, egress records, dead letters, pending delayed messages and validation errors
 * must agree. Egress order across addresses depends on scheduling, so records are compared as
 * multisets.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { within } from '../helpers/index.js';
import { Weft, type Address, type DeadLetter } from '../../src/index.js';
import { createTestHarness, type TestHarness } from '../../src/testing/index.js';
import { PARITY_TOUCHED, parityScript } from '../helpers/parity-script.js';

const BANK = new URL('../../dist/test/fixtures/bank.js', import.meta.url);
const acct = (id: string): Address => ({ type: 'bank/account', id });

const touched = PARITY_TOUCHED;

const sortedJson = (records: unknown[]): string[] => records.map((r) => JSON.stringify(r)).sort();
const letterShape = (l: DeadLetter) => ({ target: l.target, caller: l.caller, typename: l.typename, value: l.value, attempts: l.attempts, message: l.error.message });

/** The values of the next `n` engine egress records ({ id, value }). */
async function takeRecords(it: AsyncIterator<{ value: unknown }>, n: number): Promise<unknown[]> {
  const out: unknown[] = [];
  while (out.length < n) {
    const r = await within(it.next(), 10_000, `egress record ${out.length + 1} of ${n}`);
    if (r.done === true) break;
    out.push(r.value.value);
  }
  return out;
}

describe('harness ↔ engine parity on the bank module', () => {
  let dir: string;
  let weft: Weft;
  let h: TestHarness;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'weft-parity-'));
    weft = await Weft.start({ module: BANK, shards: 2, dataDir: dir, durability: 'process', checkpointIntervalMs: 20, retryBackoffMs: 1 });
    h = await createTestHarness(BANK, { retryBackoffMs: 1 });
  });

  afterAll(async () => {
    await h?.close();
    await weft?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('ends in the same states, egress records, dead letters and pending timers', async () => {
    const audit = weft.egress('bank/audit');
    const dead = weft.egress('weft/dead-letters');
    const steps = parityScript();

    await within(Promise.all(steps.map(([to, value]) => weft.send(to, value))), 20_000, 'engine sends');
    await within(weft.idle(), 10_000, 'engine idle');
    await within(weft.checkpoint(), 10_000, 'engine checkpoint');

    await Promise.all(steps.map(([to, value]) => h.send(to, value)));
    // Retries wait in virtual time: let them run out (the long timers stay pending).
    await h.advance(1000);

    for (const a of touched) {
      expect({ a, state: await h.query(a) }).toEqual({ a, state: await weft.query(a) });
    }
    // The cancelled delayed deposit (seq 300) never ran; the 0 ms one (seq 200) did.
    expect(await h.query(acct('p-8'))).toMatchObject({ seen: [8] });
    expect(await h.query(acct('p-7'))).toMatchObject({ seen: [7, 200] });

    const harnessAudit = h.egress('bank/audit');
    expect(harnessAudit).toHaveLength(31);
    expect(sortedJson(await takeRecords(audit, harnessAudit.length))).toEqual(sortedJson(harnessAudit));

    const harnessDead = h.deadLetters();
    expect(harnessDead).toHaveLength(1);
    const engineDead = (await takeRecords(dead, harnessDead.length)) as DeadLetter[];
    expect(engineDead.map(letterShape)).toEqual(harnessDead.map(letterShape));

    const enginePending = weft.metrics().shards.reduce((n, s) => n + s.pendingTimers, 0);
    expect(h.pendingTimers()).toHaveLength(1);
    expect(enginePending).toBe(1);
  });

  it('raises the same errors for the same bad calls', async () => {
    const calls: Array<(t: Pick<TestHarness, 'send' | 'request' | 'query'>) => Promise<unknown>> = [
      (t) => t.send({ type: 'nope/x', id: 'a' }, 1),
      (t) => t.send({ type: 'bank/account', id: '' }, 1),
      (t) => t.send({ type: 'bad type', id: 'a' }, 1),
      (t) => t.send(acct('a'), Symbol('s')),
      (t) => t.request(acct('a'), 1, { timeoutMs: 0 }),
      (t) => t.query({ type: 'nope/x', id: 'a' }),
      (t) => t.send(acct('a'), 1, { idempotencyKey: '' }),
      (t) => t.request(acct('a'), 1, { idempotencyKey: 'k'.repeat(300) }),
    ];
    for (const call of calls) {
      const fromEngine = await call(weft).then(() => null, (e: unknown) => e as Error & { code?: string });
      const fromHarness = await call(h).then(() => null, (e: unknown) => e as Error & { code?: string });
      expect(fromEngine).not.toBeNull();
      expect({ code: fromHarness?.code, message: fromHarness?.message }).toEqual({ code: fromEngine?.code, message: fromEngine?.message });
    }
  });

  it('answers keyed duplicates the same way', async () => {
    const run = async (t: Pick<TestHarness, 'send' | 'request' | 'query'>): Promise<unknown[]> => {
      const out: unknown[] = [];
      for (const id of ['key-a', 'key-b']) {
        out.push(await t.request(acct(id), { op: 'deposit', amount: 2 }, { idempotencyKey: 'k1' }));
        await t.send(acct(id), { op: 'deposit', amount: 2 }, { idempotencyKey: 'k1' });
        await t.send(acct(id), { op: 'deposit', amount: 1 }, { idempotencyKey: 'k2' });
        out.push(await t.request(acct(id), { op: 'deposit', amount: 50 }, { idempotencyKey: 'k1' }));
        out.push(await t.request(acct(id), { op: 'get' }, { idempotencyKey: 'k2' }));
        out.push(await t.query(acct(id)));
      }
      return out;
    };
    const fromEngine = await within(run(weft), 20_000, 'the engine run');
    expect(await run(h)).toEqual(fromEngine);
    // k2 was applied by a send whose invocation replied (3): a request with k2 gets that reply.
    expect(fromEngine).toEqual([2, 2, 3, { balance: 3 }, 2, 2, 3, { balance: 3 }]);
  });
});

describe('harness ↔ engine parity on compute tasks', () => {
  const COMPUTE = new URL('../../dist/test/fixtures/harness-compute.js', import.meta.url);
  let dir: string;
  let weft: Weft;
  let h: TestHarness;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'weft-parity-compute-'));
    weft = await Weft.start({ module: COMPUTE, shards: 1, dataDir: dir, durability: 'process', maxAttempts: 1 });
    h = await createTestHarness(COMPUTE, { maxAttempts: 1 });
  });

  afterAll(async () => {
    await h?.close();
    await weft?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('returns the same results and fails the same way', async () => {
    const calc = { type: 'calc/run', id: 'c' };
    const cases = [
      { task: 'square', input: 12 },
      { task: 'scribble', input: { items: [1, 2] } },
      { task: 'fail', input: null },
      { task: 'nope', input: null },
    ];
    for (const c of cases) {
      const outcome = (p: Promise<unknown>) => p.then((value) => ({ value }), (e: unknown) => ({ error: (e as Error).message, code: (e as { code?: string }).code }));
      const fromEngine = await within(outcome(weft.request(calc, c)), 10_000, `engine request ${c.task}`);
      const fromHarness = await outcome(h.request(calc, c));
      expect({ task: c.task, ...fromHarness }).toEqual({ task: c.task, ...fromEngine });
    }
    expect(await h.query(calc)).toEqual(await weft.query(calc));
  });
});
