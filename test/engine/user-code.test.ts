/**
 * User code never stops the engine: a context used after its invocation ended, an error thrown
 * from a timer, any number of messages that end their shard, an endless loop, a promise that
 * never settles. Each is reported or dead-lettered while the engine goes on serving, with state
 * exactly once. Real worker threads, real LMDB, real worker.terminate().
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { spawnSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { Weft, type DeadLetter, type WeftError } from '../../src/index.js';
import { Partitioner } from '../../src/contract/partitioner.js';
import { fixture, removeDir, startEngine, takeValues, tempDir, within, until } from './helpers.js';

const cell = (id: string) => ({ type: 'uc/cell', id });

/** Ids of `uc/cell` instances owned by `shard` (of `shards`, 128 key groups). */
function idsOn(shard: number, shards: number, n: number, prefix: string): string[] {
  const p = new Partitioner(shards, 128);
  const out: string[] = [];
  for (let i = 0; out.length < n; i++) {
    const id = `${prefix}-${i}`;
    if (p.shardOf(p.keyGroup('uc/cell', id)) === shard) out.push(id);
    if (i > 100_000) throw new Error(`no ids on shard ${shard}`);
  }
  return out;
}

/** Waits (bounded) until `cond` holds, polling: for counters published by other threads. */

async function counts(weft: Weft, ids: string[]): Promise<Array<number | undefined>> {
  return Promise.all(ids.map(async (id) => (await weft.query(cell(id)))?.n as number | undefined));
}

describe('user code never stops the engine', () => {
  it('a ctx used after its invocation ended (sync fn, then async fn) is reported with address and method, has no effect, and the shard goes on', async () => {
    const { weft, cleanup } = await startEngine({ module: fixture('user-code'), shards: 2, checkpointIntervalMs: 10 });
    const events: Array<{ shard: number; address: { type: string; id: string }; method: string }> = [];
    const onLate = (e: unknown): void => {
      events.push(e as (typeof events)[number]);
    };
    subscribe('weft:late-context', onLate);
    try {
      const ids = Array.from({ length: 8 }, (_, i) => `late-${i}`);
      const sends: Array<Promise<void>> = [];
      for (let k = 0; k < 40; k++) sends.push(weft.send(cell(ids[k % 8]!), { op: 'late-reply' }));
      for (let k = 0; k < 16; k++) sends.push(weft.send(cell(ids[k % 8]!), { op: 'late-async' }));
      await within(Promise.all(sends), 20_000, 'sends');
      // Each late-reply makes three late calls (reply, state write, send); each late-async one.
      await until(() => weft.metrics().lateContextCalls >= 40 * 3 + 16, 10_000, 'late calls reported');
      expect(weft.metrics().lateContextCalls).toBe(40 * 3 + 16);
      expect(weft.metrics().recoveries).toBe(0);
      expect(events).toHaveLength(40 * 3 + 16);
      const methods = new Set(events.map((e) => e.method));
      expect(methods).toEqual(new Set(['reply', 'state.n write', 'send', 'egress']));
      expect(events.every((e) => e.address.type === 'uc/cell' && ids.includes(e.address.id))).toBe(true);
      await within(weft.idle(), 10_000, 'idle');
      // No late effect happened: counts are exact, nothing was sent or written to the egress.
      expect(await counts(weft, ids)).toEqual(ids.map(() => 7));
      expect(await weft.query(cell('late-target'))).toBeUndefined();
      expect(weft.metrics().shards.reduce((a, s) => a + s.egress, 0)).toBe(0);
      // Still serving.
      await expect(within(weft.request(cell('after'), { op: 'count' }), 10_000, 'request after')).resolves.toBe(1);
    } finally {
      unsubscribe('weft:late-context', onLate);
      await cleanup();
    }
  }, 60_000);

  it('an error a function leaves behind in a timer is reported, not fatal', async () => {
    const { weft, cleanup } = await startEngine({ module: fixture('user-code'), shards: 2, checkpointIntervalMs: 10 });
    const errors: Error[] = [];
    const onError = (e: unknown): void => {
      errors.push((e as { error: Error }).error);
    };
    subscribe('weft:uncaught-error', onError);
    try {
      const ids = ['s-0', 's-1', 's-2', 's-3'];
      await within(Promise.all(Array.from({ length: 12 }, (_, k) => weft.send(cell(ids[k % 4]!), { op: 'stray-throw' }))), 20_000, 'sends');
      await until(() => weft.metrics().uncaughtErrors >= 12, 10_000, 'uncaught errors reported');
      expect(weft.metrics().recoveries).toBe(0);
      expect(errors).toHaveLength(12);
      expect(errors[0]!.message).toBe('stray error from a timer');
      expect(await counts(weft, ids)).toEqual([3, 3, 3, 3]);
      await expect(within(weft.request(cell('after'), { op: 'count' }), 10_000, 'request after')).resolves.toBe(1);
    } finally {
      unsubscribe('weft:uncaught-error', onError);
      await cleanup();
    }
  }, 60_000);

  it('dead-letters any number of distinct messages that end their shard, and serves the rest exactly once', async () => {
    const { weft, cleanup } = await startEngine({ module: fixture('user-code'), shards: 2, checkpointIntervalMs: 10 });
    try {
      const dead = weft.egress('weft/dead-letters');
      const ids = Array.from({ length: 20 }, (_, i) => `c-${i}`);
      const poisons = Array.from({ length: 5 }, (_, i) => `poison-${i}`);
      const isolated: DeadLetter[] = [];
      const onPoison = (l: unknown): void => {
        isolated.push(l as DeadLetter);
      };
      subscribe('weft:poison', onPoison);
      const sends: Array<Promise<void>> = [];
      for (let k = 0; k < 500; k++) {
        sends.push(weft.send(cell(ids[k % 20]!), { op: 'count' }));
        if (k % 100 === 50) sends.push(weft.send(cell(poisons[(k - 50) / 100]!), { op: 'exit' }));
      }
      await within(Promise.all(sends), 90_000, 'all sends');
      const letters = (await takeValues(dead, 5, 20_000)) as DeadLetter[];
      unsubscribe('weft:poison', onPoison);
      expect(isolated.map((l) => l.target.id).sort()).toEqual([...poisons].sort());
      expect(letters.map((l) => l.target.id).sort()).toEqual([...poisons].sort());
      for (const l of letters) {
        expect((l.error as WeftError).code).toBe('ERR_WEFT_SHARD_FAILED');
        expect(l.error.message).toMatch(/ended its shard worker twice/);
      }
      const m = weft.metrics();
      expect(m.poisonMessages).toBe(5);
      // Each poison message is explained by its second death: none counts against the budget.
      expect(m.unexplainedFailures).toBe(0);
      expect(m.recoveries).toBe(10);
      await within(weft.idle(), 20_000, 'idle');
      expect(await counts(weft, ids)).toEqual(ids.map(() => 25));
      // The poisoned addresses serve other messages.
      for (const id of poisons) await expect(within(weft.request(cell(id), { op: 'count' }), 10_000, 'request after')).resolves.toBe(1);
    } finally {
      await cleanup();
    }
  }, 150_000);

  it('terminates a shard stuck in an endless loop at the invocation deadline: other shards commit, the message is dead-lettered, state exactly once', async () => {
    const { weft, cleanup } = await startEngine({ module: fixture('user-code'), shards: 2, checkpointIntervalMs: 10, invocationTimeoutMs: 300 });
    try {
      const dead = weft.egress('weft/dead-letters');
      const [looper, neighbour] = idsOn(0, 2, 2, 'zero');
      const others = idsOn(1, 2, 10, 'one');
      await within(Promise.all(others.map((id) => weft.send(cell(id), { op: 'count' }))), 10_000, 'warm-up sends');
      const t0 = performance.now();
      const loopSent = weft.send(cell(looper!), { op: 'loop' });
      const sends: Array<Promise<void>> = [];
      for (let k = 0; k < 200; k++) sends.push(weft.send(cell(others[k % 10]!), { op: 'count' }));
      sends.push(weft.send(cell(neighbour!), { op: 'count' }));
      await within(Promise.all(sends), 20_000, 'sends to the other shard');
      const waited = performance.now() - t0;
      await within(loopSent, 20_000, 'the looping send');
      const [letter] = (await takeValues(dead, 1, 10_000)) as DeadLetter[];
      expect(letter!.target).toEqual(cell(looper!));
      expect((letter!.error as WeftError).code).toBe('ERR_WEFT_TIMEOUT');
      expect(letter!.error.message).toMatch(/ran synchronously for more than 300 ms \(invocationTimeoutMs\)/);
      const m = weft.metrics();
      expect(m.stalledShards).toBe(1);
      expect(m.poisonMessages).toBe(1);
      expect(m.unexplainedFailures).toBe(0);
      expect(m.recoveries).toBe(1);
      await within(weft.idle(), 10_000, 'idle');
      expect(await counts(weft, others)).toEqual(others.map(() => 21));
      expect(await counts(weft, [neighbour!, looper!])).toEqual([1, undefined]);
      // The engine keeps serving, the looping address included.
      await expect(within(weft.request(cell(looper!), { op: 'count' }), 10_000, 'request after')).resolves.toBe(1);
      console.log(`endless loop, deadline 300 ms: the other shard's 201 sends were committed ${Math.round(waited)} ms after the loop began`);
    } finally {
      await cleanup();
    }
  }, 60_000);

  it('finds the message when a shard dies or stalls in an async continuation (careful replay), and counts none against the budget', async () => {
    const { weft, cleanup } = await startEngine({ module: fixture('user-code'), shards: 2, checkpointIntervalMs: 10, invocationTimeoutMs: 300 });
    try {
      const dead = weft.egress('weft/dead-letters');
      const ids = Array.from({ length: 10 }, (_, i) => `a-${i}`);
      const codes = new Map<string, string>();
      // One after the other: each is found by the careful replay that follows its first failure.
      for (const [id, op] of [['exits-late', 'exit-after-await'], ['loops-late', 'loop-after-await']] as const) {
        const sends: Array<Promise<void>> = [];
        for (let k = 0; k < 100; k++) {
          sends.push(weft.send(cell(ids[k % 10]!), { op: 'count' }));
          if (k === 50) sends.push(weft.send(cell(id), { op }));
        }
        await within(Promise.all(sends), 60_000, `sends around ${id}`);
        const [letter] = (await takeValues(dead, 1, 20_000)) as DeadLetter[];
        codes.set(letter!.target.id, (letter!.error as WeftError).code);
      }
      expect(codes).toEqual(new Map([['exits-late', 'ERR_WEFT_SHARD_FAILED'], ['loops-late', 'ERR_WEFT_TIMEOUT']]));
      const m = weft.metrics();
      // exits-late: unexplained, then suspected and isolated by two careful replays (3 recoveries);
      // loops-late: unexplained stall (no function recorded: 10 × invocationTimeoutMs), then
      // suspected at the first careful replay's stall (it was only awaiting: code it did not
      // leave could be what blocks) and isolated at the second's (3).
      expect(m.recoveries).toBe(6);
      expect(m.stalledShards).toBe(3);
      expect(m.poisonMessages).toBe(2);
      expect(m.unexplainedFailures).toBe(0);
      await within(weft.idle(), 20_000, 'idle');
      expect(await counts(weft, ids)).toEqual(ids.map(() => 20));
      await expect(within(weft.request(cell('loops-late'), { op: 'count' }), 10_000, 'request after')).resolves.toBe(1);
    } finally {
      await cleanup();
    }
  }, 90_000);

  it('fails an async invocation that never settles with ERR_WEFT_TIMEOUT at the deadline, retries it, then dead-letters it', async () => {
    const { weft, cleanup } = await startEngine({ module: fixture('user-code'), shards: 2, checkpointIntervalMs: 10, invocationTimeoutMs: 300, maxAttempts: 2, retryBackoffMs: 5 });
    try {
      const dead = weft.egress('weft/dead-letters');
      const err = (await within(
        weft.request(cell('hanging'), { op: 'hang' }, { timeoutMs: 20_000 }).then(
          () => undefined,
          (e: unknown) => e,
        ),
        20_000,
        'request',
      )) as WeftError;
      expect(err.code).toBe('ERR_WEFT_TIMEOUT');
      expect(err.message).toMatch(/the invocation of uc\/cell\/hanging did not settle within 300 ms \(invocationTimeoutMs\)/);
      const [letter] = (await takeValues(dead, 1, 10_000)) as DeadLetter[];
      expect(letter!.target).toEqual(cell('hanging'));
      expect(letter!.attempts).toBe(2);
      expect((letter!.error as WeftError).code).toBe('ERR_WEFT_TIMEOUT');
      const s = weft.metrics().shards.reduce((a, x) => ({ failures: a.failures + x.failures, retries: a.retries + x.retries }), { failures: 0, retries: 0 });
      expect(s).toEqual({ failures: 2, retries: 1 });
      expect(weft.metrics().recoveries).toBe(0);
      // The hung invocations' writes were never applied; the address serves the next message.
      await expect(within(weft.request(cell('hanging'), { op: 'count' }), 10_000, 'request after')).resolves.toBe(1);
    } finally {
      await cleanup();
    }
  }, 60_000);
});

describe('what a caller sees (engine, as in the harness)', () => {
  it('no reply, double reply, deterministic errors and user errors', async () => {
    const { weft, cleanup } = await startEngine({ module: fixture('user-code'), shards: 2, checkpointIntervalMs: 10, maxAttempts: 3, retryBackoffMs: 5 });
    try {
      const dead = weft.egress('weft/dead-letters');
      const outcome = (p: Promise<unknown>): Promise<WeftError> =>
        within(
          p.then(
            () => {
              throw new Error('expected a rejection');
            },
            (e: unknown) => e as WeftError,
          ),
          10_000,
          'request',
        );
      // Rejected when the invocation ends, not at the 30 s default timeout.
      const quiet = await outcome(weft.request(cell('quiet'), { op: 'no-reply' }));
      expect([quiet.code, quiet.message]).toEqual(['ERR_WEFT_NO_REPLY', 'the invocation of uc/cell/quiet ended without calling ctx.reply']);
      expect(await weft.query(cell('quiet'))).toEqual({ n: 1 });
      const twice = await outcome(weft.request(cell('twice'), { op: 'reply-twice' }));
      expect(twice.code).toBe('ERR_WEFT_INVALID_ARG');
      const thrown = await outcome(weft.request(cell('thrower'), { op: 'throw' }));
      expect(thrown.code).toBe('ERR_WEFT_USER_CODE');
      expect(thrown.message).toBe('user boom');
      expect((thrown.cause as Error).name).toBe('RangeError');
      expect(((thrown.cause as Error).cause as Error).message).toBe('root cause');
      for (const [op, code] of [['wrong-type', 'ERR_WEFT_TYPE_MISMATCH'], ['unknown-state', 'ERR_WEFT_UNKNOWN_STATE'], ['send-unknown', 'ERR_WEFT_UNKNOWN_FUNCTION']] as const) {
        expect((await outcome(weft.request(cell(op), { op }))).code).toBe(code);
      }
      const letters = (await takeValues(dead, 5, 10_000)) as DeadLetter[];
      const attempts = new Map(letters.map((l) => [l.target.id, [(l.error as WeftError).code, l.attempts]]));
      expect(attempts).toEqual(
        new Map([
          ['twice', ['ERR_WEFT_INVALID_ARG', 1]],
          ['thrower', ['ERR_WEFT_USER_CODE', 3]],
          ['wrong-type', ['ERR_WEFT_TYPE_MISMATCH', 1]],
          ['unknown-state', ['ERR_WEFT_UNKNOWN_STATE', 1]],
          ['send-unknown', ['ERR_WEFT_UNKNOWN_FUNCTION', 1]],
        ]),
      );
    } finally {
      await cleanup();
    }
  }, 60_000);
});

describe('a function module that calls Weft.start', () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs) removeDir(d);
  });

  for (const how of ['plain', 'await', 'worker'] as const) {
    it(`is refused with ERR_WEFT_INVALID_MODULE, and the process exits cleanly (${how})`, () => {
      const dataDir = tempDir();
      const inner = tempDir();
      dirs.push(dataDir, inner);
      const script = `
        const { Weft } = await import(${JSON.stringify(new URL('../../dist/src/index.js', import.meta.url).href)});
        try {
          const weft = await Weft.start({ module: new URL(${JSON.stringify(fixture('start-in-module').href)}), dataDir: ${JSON.stringify(dataDir)}, shards: 2, durability: 'process' });
          console.log('STARTED');
          await weft.close();
        } catch (err) {
          console.log('REJECTED ' + err.code + ' ' + err.message);
          process.exitCode = 2;
        }`;
      const res = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
        env: { ...process.env, WEFT_FIXTURE_START: how, WEFT_FIXTURE_INNER_DIR: inner },
        encoding: 'utf8',
        timeout: 30_000,
      });
      expect(res.signal, res.stderr).toBeNull();
      expect(res.stdout).toMatch(/^REJECTED ERR_WEFT_INVALID_MODULE /m);
      expect(res.stdout).toMatch(how === 'worker' ? /Weft\.start was called inside shard thread \d+/ : /Weft\.start was called re-entrantly by function module .*start-in-module\.js while the engine was loading it/);
      expect(res.status).toBe(2);
    });
  }
});
