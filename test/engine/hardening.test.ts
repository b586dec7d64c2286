import { spawnSync } from 'node:child_process';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import parsePrometheus from 'parse-prometheus-text-format';
import { afterEach, describe, expect, it } from 'vitest';
import { Weft, WeftError } from '../../src/index.js';
import { fixture, removeDir, startEngine, tempDir, within } from './helpers.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) removeDir(d);
});
const acct = (id: string) => ({ type: 'bank/account', id });

describe('close() under load', () => {
  it('commits or refuses every accepted message, and a restart shows exactly the committed ones', async () => {
    const dataDir = tempDir();
    dirs.push(dataDir);
    let weft = await Weft.start({ module: fixture('bank'), dataDir, shards: 2, durability: 'process' });
    const outcomes: Array<Promise<'ok' | 'closed'>> = [];
    for (let i = 0; i < 5000; i++) {
      outcomes.push(
        weft.send(acct(`c-${i % 100}`), { op: 'deposit', amount: 1 }).then(
          () => 'ok' as const,
          (e: unknown) => {
            expect((e as WeftError).code).toBe('ERR_WEFT_CLOSED');
            return 'closed' as const;
          },
        ),
      );
    }
    const closing = weft.close();
    // Sends after close() are refused at once.
    await expect(weft.send(acct('late'), { op: 'deposit', amount: 1 })).rejects.toMatchObject({ code: 'ERR_WEFT_CLOSED' });
    await within(closing, 60_000, 'close');
    await weft.close();
    const results = await Promise.all(outcomes);
    const ok = results.filter((r) => r === 'ok').length;
    weft = await Weft.start({ module: fixture('bank'), dataDir, shards: 2, durability: 'process' });
    try {
      let total = 0;
      for (let i = 0; i < 100; i++) total += ((await weft.query(acct(`c-${i}`)))?.balance as number) ?? 0;
      // close() finished the in-flight work: everything accepted before it was committed.
      expect(ok).toBe(5000);
      expect(total).toBe(ok);
    } finally {
      await weft.close();
    }
  });

  it('stops waiting after closeTimeoutMs and still ends every thread', async () => {
    const dataDir = tempDir();
    dirs.push(dataDir);
    const weft = await Weft.start({ module: fixture('bank'), dataDir, shards: 1, durability: 'process', closeTimeoutMs: 100 });
    // An invocation that awaits far longer than the close timeout.
    const slow = weft.request({ type: 'test/slow', id: 's' }, { tag: 'x', waitMs: 5000 }, { timeoutMs: 60_000 }).catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 50));
    const started = Date.now();
    await within(weft.close(), 20_000, 'close');
    expect(Date.now() - started).toBeLessThan(4000);
    expect(((await slow) as WeftError).code).toBe('ERR_WEFT_CLOSED');
  });
});

describe('leaks', () => {
  it('starting and closing an engine many times leaves no threads, handles or growing heap', async () => {
    const dataDir = tempDir();
    dirs.push(dataDir);
    const handles = (): number => (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles().length;
    const cycle = async (): Promise<void> => {
      const weft = await Weft.start({ module: fixture('bank'), dataDir, shards: 2, durability: 'process' });
      await weft.send(acct('leak'), { op: 'deposit', amount: 1 });
      await weft.close();
    };
    await cycle();
    const gc = (globalThis as { gc?: () => void }).gc;
    gc?.();
    const baseHandles = handles();
    const baseHeap = process.memoryUsage().heapUsed;
    for (let i = 0; i < 15; i++) await cycle();
    gc?.();
    await new Promise((r) => setTimeout(r, 50));
    expect(handles()).toBeLessThanOrEqual(baseHandles);
    // Generous: fifteen engines' worth of retained state would be far more than this.
    expect(process.memoryUsage().heapUsed - baseHeap).toBeLessThan(40 * 1024 * 1024);
    const weft = await Weft.start({ module: fixture('bank'), dataDir, shards: 2, durability: 'process' });
    expect(await weft.query(acct('leak'))).toEqual({ balance: 16 });
    await weft.close();
  }, 120_000);
});

describe('observability', () => {
  it('publishes checkpoints, dead letters and recoveries on diagnostics channels', async () => {
    const seen: Record<string, unknown[]> = { 'weft:checkpoint': [], 'weft:dead-letter': [] };
    const onCheckpoint = (m: unknown): void => void seen['weft:checkpoint']!.push(m);
    const onDead = (m: unknown): void => void seen['weft:dead-letter']!.push(m);
    subscribe('weft:checkpoint', onCheckpoint);
    subscribe('weft:dead-letter', onDead);
    const { weft, cleanup, dir } = await startEngine({ module: fixture('bank'), shards: 1, retryBackoffMs: 1 });
    dirs.push(dir);
    try {
      await weft.send(acct('d'), { op: 'boom' });
      await weft.checkpoint();
      expect(seen['weft:checkpoint']!.length).toBeGreaterThan(0);
      expect(seen['weft:checkpoint']![0]).toMatchObject({ epoch: expect.any(Number), ms: expect.any(Number), bytes: expect.any(Number) });
      expect(seen['weft:dead-letter']).toHaveLength(1);
      expect((seen['weft:dead-letter']![0] as { target: unknown }).target).toEqual(acct('d'));
    } finally {
      unsubscribe('weft:checkpoint', onCheckpoint);
      unsubscribe('weft:dead-letter', onDead);
      await cleanup();
    }
  });

  it('exposes metrics in the Prometheus text format: counters as counters, levels as gauges, a histogram (checked by a parser)', async () => {
    const { weft, cleanup } = await startEngine({ module: fixture('bank'), shards: 2 });
    try {
      await Promise.all(Array.from({ length: 50 }, (_, i) => weft.send(acct(`p${i}`), { op: 'deposit', amount: 1 })));
      await weft.checkpoint();
      await weft.idle();
      const json = weft.metrics();
      const families = parsePrometheus(weft.metrics('prometheus'));
      const byName = new Map(families.map((f) => [f.name, f]));
      expect(byName.size).toBe(families.length); // each family once
      for (const f of families) {
        expect(f.help, f.name).not.toBe('');
        expect(['COUNTER', 'GAUGE', 'HISTOGRAM'], f.name).toContain(f.type);
        // Exposition conventions: counters end in _total, nothing else does.
        expect(f.name.endsWith('_total'), f.name).toBe(f.type === 'COUNTER');
        expect(f.name, f.name).not.toMatch(/_(micro|milli)seconds|_ms$/);
      }
      const counters = ['invocations', 'failures', 'retries', 'dead_letters', 'local_sends', 'remote_sends', 'egress_records', 'replies', 'timers_fired', 'cache_hits', 'cache_misses', 'cache_evictions', 'ring_spilled_frames', 'checkpoints', 'checkpoint_bytes', 'turns', 'remote_retries', 'idempotent_duplicates', 'gc_pauses', 'gc_pauses_over_2ms', 'gc_pause_seconds', 'loop_gaps_over_2ms', 'loop_gaps_over_50ms'];
      const gauges = ['mailbox_backlog', 'parked_invocations', 'pending_timers', 'cache_instances', 'dirty_instances', 'ring_spill_depth', 'inbound_ring_fill', 'last_checkpoint_seconds', 'last_checkpoint_bytes', 'host_messages_pending', 'remote_paused', 'gc_pause_max_seconds', 'loop_gap_max_seconds'];
      for (const c of counters) expect(byName.get(`weft_shard_${c}_total`)?.type, c).toBe('COUNTER');
      for (const g of gauges) expect(byName.get(`weft_shard_${g}`)?.type, g).toBe('GAUGE');
      const engineCounters = ['host_messages_sent', 'egress_dropped', 'egress_redelivered', 'egress_over_backlog', 'checkpoints_committed', 'checkpoints_held', 'checkpoints_held_to_limit', 'recoveries', 'unexplained_failures', 'poison_messages', 'stalled_shards', 'late_context_calls', 'uncaught_errors', 'main_wakeups'];
      for (const c of engineCounters) expect(byName.get(`weft_${c}_total`)?.type, c).toBe('COUNTER');
      const engineGauges = ['host_messages_uncommitted', 'requests_pending', 'egress_buffered', 'egress_full', 'committed_epoch', 'messages_alive', 'ingress_waiting', 'ingress_spilled_frames'];
      for (const g of engineGauges) expect(byName.get(`weft_${g}`)?.type, g).toBe('GAUGE');
      expect(families).toHaveLength(counters.length + gauges.length + engineCounters.length + engineGauges.length + 1);

      // Per-shard samples carry the shard label and the values of metrics().
      const invocations = byName.get('weft_shard_invocations_total')!.metrics;
      expect(invocations.map((s) => s.labels)).toEqual([{ shard: '0' }, { shard: '1' }]);
      expect(invocations.map((s) => Number(s.value))).toEqual(json.shards.map((s) => s.invocations));
      expect(Number(byName.get('weft_committed_epoch')!.metrics[0]!.value)).toBe(json.committedEpoch);
      expect(Number(byName.get('weft_host_messages_sent_total')!.metrics[0]!.value)).toBe(50);

      // The latency histogram: cumulative buckets in seconds, +Inf = count, a sum.
      const hist = byName.get('weft_invocation_latency_seconds')!;
      expect(hist.type).toBe('HISTOGRAM');
      const [h] = hist.metrics;
      const buckets = Object.entries(h!.buckets!).map(([le, n]) => [le === '+Inf' ? Infinity : Number(le), Number(n)] as const);
      expect(buckets.length).toBe(33);
      for (let i = 1; i < buckets.length; i++) {
        expect(buckets[i]![0]).toBeGreaterThan(buckets[i - 1]![0]);
        expect(buckets[i]![1]).toBeGreaterThanOrEqual(buckets[i - 1]![1]);
      }
      const total = json.shards.reduce((a, s) => a + s.latencyHistogram.reduce((b, [, n]) => b + n, 0), 0);
      expect(total).toBeGreaterThanOrEqual(50);
      expect(buckets[buckets.length - 1]).toEqual([Infinity, total]);
      expect(Number(h!.count)).toBe(total);
      expect(Number(h!.sum)).toBeGreaterThan(0);
      expect(Number(h!.sum)).toBeCloseTo(json.shards.reduce((a, s) => a + s.latencySumMicros, 0) / 1e6, 9);
    } finally {
      await cleanup();
    }
  });

  it('logs its lifecycle with NODE_DEBUG=weft', () => {
    const dataDir = tempDir();
    dirs.push(dataDir);
    const script = `
      const { Weft } = await import(${JSON.stringify(new URL('../../dist/src/index.js', import.meta.url).href)});
      const weft = await Weft.start({ module: new URL(${JSON.stringify(fixture('bank').href)}), dataDir: ${JSON.stringify(dataDir)}, shards: 1, durability: 'process' });
      await weft.send({ type: 'bank/account', id: 'x' }, { op: 'deposit', amount: 1 });
      await weft.close();`;
    // debuglog writes to stderr: capture it.
    const res = spawnSync(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, NODE_DEBUG: 'weft' }, encoding: 'utf8', timeout: 60_000 });
    expect(res.status).toBe(0);
    expect(res.stderr).toMatch(/WEFT \d+: started: 1 shards/);
    expect(res.stderr).toMatch(/WEFT \d+: checkpoint \d+ committed/);
    expect(res.stderr).toMatch(/WEFT \d+: closed/);
  });
});

describe('files and limits', () => {
  it('creates data dirs and partitions with owner-only permissions', async () => {
    const parent = tempDir();
    dirs.push(parent);
    const dataDir = join(parent, 'nested', 'data');
    const weft = await Weft.start({ module: fixture('bank'), dataDir, shards: 1, durability: 'process' });
    await weft.close();
    expect(statSync(dataDir).mode & 0o777).toBe(0o700);
    expect(statSync(join(dataDir, 'meta')).mode & 0o777).toBe(0o700);
  });

  it('stores ids up to the limit (multi-byte) through checkpoints, and refuses longer ones', async () => {
    const { weft, cleanup, dir } = await startEngine({ module: fixture('bank'), shards: 1 });
    dirs.push(dir);
    try {
      const longest = '€'.repeat(341); // 1023 UTF-8 bytes
      await weft.send(acct(longest), { op: 'deposit', amount: 3 });
      await weft.checkpoint();
      expect(await weft.query(acct(longest))).toEqual({ balance: 3 });
      const err = await weft.send(acct('€'.repeat(342)), { op: 'deposit', amount: 1 }).catch((e: unknown) => e);
      expect(['ERR_WEFT_INVALID_ADDRESS', 'ERR_WEFT_TOO_LARGE']).toContain((err as WeftError).code);
      // Ids are data, never paths: one that looks like a path is just an id.
      await weft.send(acct('../../etc/passwd'), { op: 'deposit', amount: 1 });
      expect(await weft.query(acct('../../etc/passwd'))).toEqual({ balance: 1 });
    } finally {
      await cleanup();
    }
  });
});
