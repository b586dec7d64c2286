import { afterEach, describe, expect, it } from 'vitest';
import { Weft, WeftError } from '../../src/index.js';
import { fixture, removeDir, tempDir, within, takeValues } from './helpers.js';

const acct = (id: string) => ({ type: 'bank/account', id });
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) removeDir(d);
});

function start(dataDir: string, shards: number): Promise<Weft> {
  return Weft.start({ module: fixture('bank'), dataDir, shards, durability: 'process', checkpointIntervalMs: 20 });
}

describe('persistence across close() and start()', () => {
  it('keeps state and pending delayed messages, and fires due ones in order after start', async () => {
    const dataDir = tempDir();
    dirs.push(dataDir);
    let weft = await start(dataDir, 2);
    for (let i = 0; i < 50; i++) await weft.send(acct(`p-${i}`), { op: 'deposit', amount: i });
    // Due while the engine is down (scheduled in one invocation, so only the delays order them),
    // and one far in the future.
    await weft.send(acct('timer'), {
      op: 'scheduleMany',
      items: [
        { delayMs: 300, amount: 1, seq: 2 },
        { delayMs: 250, amount: 1, seq: 1 },
        { delayMs: 600_000, amount: 1000, seq: 99, token: 'later' },
      ],
    });
    await weft.close();
    await new Promise((r) => setTimeout(r, 400));
    weft = await start(dataDir, 2);
    try {
      // Restored timers are visible in the metrics as soon as start() resolves (a host waiting
      // for "no pending timers" must not see an empty count before the shards' first turn).
      expect(weft.metrics().shards.reduce((a, s) => a + s.pendingTimers, 0)).toBeGreaterThanOrEqual(1);
      for (let i = 0; i < 50; i++) expect(await weft.query(acct(`p-${i}`))).toEqual(i === 0 ? { balance: 0 } : { balance: i });
      const deadline = Date.now() + 10_000;
      let state = await weft.query(acct('timer'));
      while ((state?.seen as number[] | undefined)?.length !== 2 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
        state = await weft.query(acct('timer'));
      }
      expect(state).toEqual({ balance: 2, seen: [1, 2] });
      // The far-future timer is still pending: cancel it, which must be accepted exactly once.
      await weft.send(acct('timer'), { op: 'cancel', token: 'later' });
      await weft.send(acct('timer'), { op: 'schedule', delayMs: 600_000, amount: 1, seq: 100, token: 'later' });
      expect(weft.metrics().shards.reduce((a, s) => a + s.pendingTimers, 0)).toBe(1);
    } finally {
      await weft.close();
    }
  });

  it('re-partitions when the shard count changes: 4 → 2 → 3, keeping state and timers', async () => {
    const dataDir = tempDir();
    dirs.push(dataDir);
    const ids = Array.from({ length: 300 }, (_, i) => `r-${i}`);
    let weft = await start(dataDir, 4);
    await Promise.all(ids.map((id, i) => weft.send(acct(id), { op: 'deposit', amount: i + 1 })));
    for (let i = 0; i < 20; i++) await weft.send(acct(`rt-${i}`), { op: 'schedule', delayMs: 600_000, amount: 1, seq: i, token: `t${i}` });
    await weft.close();
    for (const shards of [2, 3]) {
      weft = await start(dataDir, shards);
      try {
        expect(weft.metrics().shards).toHaveLength(shards);
        for (let i = 0; i < ids.length; i++) expect(await weft.query(acct(ids[i]!))).toEqual({ balance: i + 1 });
        expect(weft.metrics().shards.reduce((a, s) => a + s.pendingTimers, 0)).toBe(20);
      } finally {
        await weft.close();
      }
    }
    // Cancellation tokens moved with their timers: each is still pending in its sender's shard.
    weft = await start(dataDir, 3);
    try {
      await weft.send(acct('rt-3'), { op: 'schedule', delayMs: 1, amount: 1, seq: 1, token: 't3' });
      const [letter] = await takeValues(weft.egress('weft/dead-letters'), 1);
      expect((letter as { error: WeftError }).error.code).toBe('ERR_WEFT_DUPLICATE_TOKEN');
    } finally {
      await weft.close();
    }
  });

  it('refuses a second engine on the same data dir, and works again after close', async () => {
    const dataDir = tempDir();
    dirs.push(dataDir);
    const weft = await start(dataDir, 1);
    const err = await start(dataDir, 1).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WeftError);
    expect((err as WeftError).code).toBe('ERR_WEFT_DATA_DIR');
    expect((err as WeftError).message).toContain('already in use');
    await weft.send(acct('x'), { op: 'deposit', amount: 1 });
    await weft.close();
    await weft.close();
    const again = await start(dataDir, 1);
    await expect(again.request(acct('x'), { op: 'get' })).resolves.toBe(1);
    await again.close();
  });

  it('rejects every call after close() with ERR_WEFT_CLOSED', async () => {
    const dataDir = tempDir();
    dirs.push(dataDir);
    const weft = await start(dataDir, 1);
    await weft.close();
    for (const call of [
      () => weft.send(acct('a'), 1),
      () => weft.request(acct('a'), 1),
      () => weft.query(acct('a')),
      () => weft.checkpoint(),
    ]) {
      const e = await within(call().catch((x: unknown) => x), 5000, 'call after close');
      expect((e as WeftError).code).toBe('ERR_WEFT_CLOSED');
    }
  });
});

describe('data dir format', () => {
  it('refuses a data dir of another format version, never misreading it', async () => {
    const dataDir = tempDir();
    dirs.push(dataDir);
    const weft = await start(dataDir, 1);
    await weft.close();
    const { Partition } = await import('../../src/state/partition.js');
    const meta = await Partition.open(`${dataDir}/meta`, { durability: 'process' });
    await meta.write((ops) => ops.putMeta('format', 99));
    await meta.close();
    const err = await start(dataDir, 1).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WeftError);
    expect((err as WeftError).code).toBe('ERR_WEFT_DATA_DIR');
    expect((err as WeftError).message).toContain('format version 99');
    // The refused start released the lock: fixing the dir makes it usable again.
    const meta2 = await Partition.open(`${dataDir}/meta`, { durability: 'process' });
    await meta2.write((ops) => ops.putMeta('format', 1));
    await meta2.close();
    const again = await start(dataDir, 1);
    await again.close();
  });
});

describe('ingress backpressure', () => {
  it('makes host sends wait while the rings are full, and loses nothing', async () => {
    const dataDir = tempDir();
    dirs.push(dataDir);
    // Small rings and a slow async function: the engine falls behind at once.
    const weft = await Weft.start({ module: fixture('bank'), dataDir, shards: 1, durability: 'process', ringBytes: 64 * 1024, maxMessageBytes: 16 * 1024 });
    try {
      const sends: Array<Promise<void>> = [];
      for (let i = 0; i < 30_000; i++) sends.push(weft.send({ type: 'bank/account', id: `bp-${i % 50}` }, { op: 'deposit', amount: 1, pad: 'x'.repeat(200) }));
      let sawWaiting = false;
      let maxSpill = 0;
      const probe = setInterval(() => {
        const m = weft.metrics();
        if (m.ingressWaiting > 0) sawWaiting = true;
        maxSpill = Math.max(maxSpill, m.ingressSpilledFrames);
      }, 1);
      await within(Promise.all(sends), 120_000, 'sends');
      clearInterval(probe);
      expect(sawWaiting).toBe(true);
      // Held-back frames stay bounded (high-water mark plus what a release slice adds).
      expect(maxSpill).toBeLessThan(200);
      let total = 0;
      for (let i = 0; i < 50; i++) total += ((await weft.query({ type: 'bank/account', id: `bp-${i}` }))?.balance as number) ?? 0;
      expect(total).toBe(30_000);
    } finally {
      await weft.close();
    }
  }, 180_000);
});
