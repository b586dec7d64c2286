/**
 * The `weft` executable, run as a child process (`node dist/src/cli/main.js`, built by
 * `npm run build`). Every child is bounded: killed, and the test failed, if it outlives its limit.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it, onTestFinished } from 'vitest';
import { within } from '../helpers/index.js';
import { Weft } from '../../src/index.js';

const MAIN = fileURLToPath(new URL('../../dist/src/cli/main.js', import.meta.url));
const BANK = new URL('../../dist/test/fixtures/bank.js', import.meta.url);

interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function start(args: string[]): { child: ChildProcess; done: (limitMs: number) => Promise<Result>; soFar: (stream: 'stdout' | 'stderr') => string } {
  const child = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<Result>((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
  const done = (limitMs: number): Promise<Result> => {
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`weft ${args.join(' ')} did not exit within ${limitMs} ms; stderr so far:\n${stderr}`));
      }, limitMs);
    });
    return Promise.race([exited, limit]).finally(() => clearTimeout(timer));
  };
  return { child, done, soFar: (stream) => (stream === 'stdout' ? stdout : stderr) };
}

const weft = (args: string[], limitMs = 30_000): Promise<Result> => start(args).done(limitMs);

/** Resolves when the child's `stream` matches `re`; rejects if it exits first or `limitMs` passes. */
async function waitFor(proc: ReturnType<typeof start>, stream: 'stdout' | 'stderr', re: RegExp, limitMs: number): Promise<RegExpMatchArray> {
  const deadline = performance.now() + limitMs;
  const source = stream === 'stdout' ? proc.child.stdout! : proc.child.stderr!;
  for (;;) {
    const m = proc.soFar(stream).match(re);
    if (m !== null) return m;
    if (performance.now() > deadline || proc.child.exitCode !== null || proc.child.signalCode !== null) {
      throw new Error(`${stream} did not match ${re} within ${limitMs} ms (or the child exited):\n${proc.soFar(stream)}\nstderr:\n${proc.soFar('stderr')}`);
    }
    // Wake on more output, on exit, or at the deadline, whichever comes first.
    await new Promise<void>((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        source.off('data', wake);
        proc.child.off('exit', wake);
        resolve();
      };
      const timer = setTimeout(wake, Math.max(0, deadline - performance.now()));
      source.on('data', wake);
      proc.child.on('exit', wake);
    });
  }
}

const dirs: string[] = [];
const tempDir = (prefix: string): string => {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('help and usage', () => {
  it('prints help for weft and for each command, exit 0', async () => {
    const top = await weft(['--help']);
    expect(top.code).toBe(0);
    expect(top.stdout).toContain('Usage: weft <command>');
    expect(top.stdout).toMatch(/bench\s+run the built-in throughput\/latency benchmark/);
    expect(top.stdout).toMatch(/inspect\s+show a data dir/);
    expect(top.stdout).toMatch(/serve\s+serve a function module/);
    for (const cmd of ['bench', 'serve', 'inspect']) {
      const r = await weft([cmd, '--help']);
      expect(r.code).toBe(0);
      expect(r.stdout.startsWith(`Usage: weft ${cmd}`)).toBe(true);
      expect(r.stderr).toBe('');
    }
    const viaHelp = await weft(['help', 'inspect']);
    expect(viaHelp.code).toBe(0);
    expect(viaHelp.stdout.startsWith('Usage: weft inspect')).toBe(true);
    const version = await weft(['--version']);
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('exits 2 with a clear message on bad usage', async () => {
    const cases: Array<[string[], string]> = [
      [[], 'weft: missing command'],
      [['nope'], 'weft: unknown command "nope"'],
      [['bench', '--bogus'], "weft bench: unknown option '--bogus'"],
      [['bench', '--seconds'], "weft bench: option '--seconds <value>' argument missing"],
      [['bench', '--seconds', '0'], 'weft bench: --seconds must be a number from 0.1 to 3600 (got "0")'],
      [['bench', '--shards', '1.5'], 'weft bench: --shards must be an integer from 1 to 256 (got "1.5")'],
      [['bench', '--durability', 'maybe'], 'weft bench: --durability must be "process" or "fsync" (got "maybe")'],
      [['bench', 'extra'], 'weft bench: unexpected argument "extra"'],
      [['inspect'], 'weft inspect: missing <dataDir>'],
      [['serve'], 'weft serve: missing the function module'],
      [['inspect', 'a', 'b'], 'weft inspect: unexpected argument "b"'],
      [['inspect', 'a', '--address', 'bank/account'], 'weft inspect: --address must be <namespace>/<name>/<id> (got "bank/account")'],
      [['inspect', 'a', '--module', 'm.js'], 'weft inspect: --module is only used with --address'],
      [['inspect', 'a', '--checkpoints', '1000'], 'weft inspect: --checkpoints must be an integer from 0 to 100 (got "1000")'],
    ];
    for (const [args, message] of cases) {
      const r = await weft(args);
      // stderr in the comparison only when the code is wrong, to show why.
      expect({ args, code: r.code, stderr: r.code === 2 ? '' : r.stderr }).toEqual({ args, code: 2, stderr: '' });
      expect(r.stderr).toContain(message);
      expect(r.stdout).toBe('');
    }
  });

  it('exits 1 on a runtime failure', async () => {
    const missing = await weft(['inspect', join(tmpdir(), 'weft-no-such-dir-for-inspect')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('ERR_WEFT_DATA_DIR: data dir');
    expect(missing.stderr).toContain('does not exist');
    const notData = await weft(['inspect', tempDir('weft-cli-empty-')]);
    expect(notData.code).toBe(1);
    expect(notData.stderr).toContain('is not a weft data dir (it has no meta/ directory)');
  });
});

describe('bench', () => {
  it('--seconds 1 --shards 1 --json prints one JSON object with positive throughput', async () => {
    const r = await weft(['bench', '--seconds', '1', '--shards', '1', '--json'], 120_000);
    expect(r.code).toBe(0);
    const result = JSON.parse(r.stdout) as {
      command: string;
      shards: number;
      throughput: { messages: number; msgsPerSec: number };
      latency: { requests: number; p50Us: number; p90Us: number; p99Us: number };
      checkpoints: { committed: number };
    };
    expect(result.command).toBe('bench');
    expect(result.shards).toBe(1);
    expect(result.throughput.messages).toBeGreaterThan(0);
    expect(result.throughput.msgsPerSec).toBeGreaterThan(0);
    expect(result.latency.requests).toBeGreaterThan(0);
    expect(result.latency.p50Us).toBeLessThanOrEqual(result.latency.p90Us);
    expect(result.latency.p90Us).toBeLessThanOrEqual(result.latency.p99Us);
    expect(result.checkpoints.committed).toBeGreaterThan(0);
    const dir = r.stderr.match(/bench: data dir (\S+)/)?.[1];
    expect(dir).toBeDefined();
    expect(existsSync(dir!)).toBe(false);
  });

  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    it(`closes the engine and removes its data dir on ${signal}, exit ${code}`, async () => {
      const proc = start(['bench', '--seconds', '60', '--shards', '1']);
      const [, dir] = await waitFor(proc, 'stderr', /bench: data dir (\S+)/, 30_000);
      // The ticker names the phase once the engine is up and sending.
      await waitFor(proc, 'stderr', /bench: (warm-up|throughput|latency) /, 30_000);
      proc.child.kill(signal);
      const r = await proc.done(60_000);
      expect(r.code).toBe(code);
      expect(r.stderr).toContain(`weft: ${signal} received, closing`);
      expect(r.stdout).toBe('');
      expect(existsSync(dir!)).toBe(false);
    });
  }
});

describe('serve', () => {
  it('is in the command table, serves until SIGTERM, and then exits 0', async () => {
    const proc = start(['serve', fileURLToPath(BANK), '--port', '0']);
    const [, url] = await waitFor(proc, 'stdout', /at (http:\/\/127\.0\.0\.1:\d+\/)/, 30_000);
    // Not a StateFun request: answered with a client error, which shows the server is up.
    const res = await within(fetch(url!, { method: 'POST', body: 'not protobuf' }), 20_000, 'HTTP request');
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    proc.child.kill('SIGTERM');
    const r = await proc.done(30_000);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('weft serve: stopped');
  });
});

describe('serve --restate', () => {
  it('serves the module as Restate virtual objects (discovery over h2c) until SIGTERM', async () => {
    const proc = start(['serve', '--restate', fileURLToPath(BANK), '--port', '0']);
    // A failed assertion must not leave the server running.
    onTestFinished(() => {
      if (proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill('SIGKILL');
    });
    const [, url] = await waitFor(proc, 'stdout', /as Restate virtual objects at (http:\/\/127\.0\.0\.1:\d+)/, 30_000);
    const { connect } = await import('node:http2');
    const session = connect(url!);
    try {
      const manifest = await within(
        new Promise<string>((resolve, reject) => {
          const req = session.request({ ':method': 'GET', ':path': '/discover', accept: 'application/vnd.restate.endpointmanifest.v2+json' });
          let body = '';
          req.setEncoding('utf8').on('data', (d: string) => (body += d));
          req.on('end', () => resolve(body));
          req.on('error', reject);
          req.end();
        }),
        20_000,
        'discovery request',
      );
      const services = (JSON.parse(manifest) as { services: Array<{ name: string; ty: string; handlers: Array<{ name: string }> }> }).services;
      expect(services.map((x) => [x.name, x.ty, x.handlers.map((h) => h.name)]).sort()).toEqual([
        ['bank.account', 'VIRTUAL_OBJECT', ['invoke']],
        ['test.bad', 'VIRTUAL_OBJECT', ['invoke']],
        ['test.pingpong', 'VIRTUAL_OBJECT', ['invoke']],
        ['test.slow', 'VIRTUAL_OBJECT', ['invoke']],
        ['test.ttl', 'VIRTUAL_OBJECT', ['invoke']],
      ]);
    } finally {
      session.close();
    }
    proc.child.kill('SIGTERM');
    const r = await proc.done(30_000);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('weft serve: stopped');
  });

  it('refuses StateFun-only flags with --restate (exit 2)', async () => {
    const r = await weft(['serve', '--restate', fileURLToPath(BANK), '--tls-cert', 'c.pem', '--tls-key', 'k.pem']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--tls-cert is an option of the StateFun endpoint, not of --restate');
  });
});

describe('inspect', () => {
  const acct = (id: string) => ({ type: 'bank/account', id });

  /** An engine with some state and one pending timer, and a committed checkpoint holding them. */
  async function populate(dir: string): Promise<{ engine: Weft; epoch: number }> {
    // No periodic checkpoints: the one forced below is the only commit, so its epoch is known.
    const engine = await Weft.start({ module: BANK, shards: 2, dataDir: dir, durability: 'process', checkpointIntervalMs: 0 });
    const sends = [engine.send(acct('alice'), { op: 'deposit', amount: 42, seq: 1 })];
    for (let i = 0; i < 20; i++) sends.push(engine.send(acct(`acct-${i}`), { op: 'deposit', amount: i + 1 }));
    sends.push(engine.send(acct('bob'), { op: 'schedule', delayMs: 3_600_000, amount: 1, token: 'later' }));
    await within(engine.idle(), 20_000, 'engine idle');
    const epoch = await within(engine.checkpoint(), 20_000, 'checkpoint');
    // Sends resolve with the commit of the checkpoint that holds them.
    await within(Promise.all(sends), 20_000, 'sends');
    return { engine, epoch };
  }

  interface Report {
    committedEpoch: number;
    shards: number;
    keyGroups: number;
    lock: { pid: number; running: boolean } | null;
    checkpoints: Array<{ epoch: number; at: number; bytes: number; ms: number }>;
    partitions: Array<{ shard: number; keyGroups: { start: number; end: number }; states: number; timers: number; pendingUncommitted: number[] }>;
    address?: { found: boolean; shard: number; slots: Array<{ name: string; bytes: number; hex: string; typename?: string; value?: unknown }> };
  }

  it('counts the committed egress records not yet acknowledged', async () => {
    const dir = tempDir('weft-cli-inspect-egress-');
    const engine = await Weft.start({ module: BANK, shards: 2, dataDir: dir, durability: 'process' });
    await within(Promise.all([0, 1, 2].map((i) => engine.send({ type: 'bank/account', id: `from-${i}` }, { op: 'transfer', amount: 1, to: 'to' }))), 20_000, 'sends');
    await within(engine.close(), 20_000, 'close');
    const j = await weft(['inspect', dir, '--json']);
    expect(j.code).toBe(0);
    expect((JSON.parse(j.stdout) as { egress: unknown }).egress).toEqual([{ name: 'bank/audit', records: 3 }]);
    const t = await weft(['inspect', dir]);
    expect(t.stdout).toMatch(/egress \(committed records not yet acknowledged\)\n\s+egress\s+records\n\s+bank\/audit\s+3\n/);
  });

  it('shows the committed epoch, checkpoints, partitions and one instance of a closed data dir', async () => {
    const dir = tempDir('weft-cli-inspect-');
    const { engine, epoch } = await populate(dir);
    await within(engine.close(), 20_000, 'close');

    const j = await weft(['inspect', dir, '--json']);
    expect(j.code).toBe(0);
    const report = JSON.parse(j.stdout) as Report;
    expect(report.committedEpoch).toBeGreaterThanOrEqual(epoch);
    expect(report.checkpoints.at(-1)!.epoch).toBe(report.committedEpoch);
    expect(report.lock).toBeNull();
    expect(report.shards).toBe(2);
    expect(report.partitions.map((p) => p.keyGroups)).toEqual([
      { start: 0, end: 64 },
      { start: 64, end: 128 },
    ]);
    // alice, bob (its schedule wrote nothing), acct-0..19: 21 instances with state, one timer.
    expect(report.partitions.reduce((n, p) => n + p.states, 0)).toBe(21);
    expect(report.partitions.reduce((n, p) => n + p.timers, 0)).toBe(1);

    const t = await weft(['inspect', dir]);
    expect(t.code).toBe(0);
    expect(t.stdout).toMatch(new RegExp(`committed\\s+epoch ${report.committedEpoch}\\n`));
    expect(t.stdout).toContain('engine      not running (no lock)');
    expect(t.stdout).toMatch(/^\s+shard\s+key groups\s+with data\s+states\s+timers/m);
    expect(t.stdout).toMatch(/^\s+0\s+0-63\s/m);
    expect(t.stdout).toMatch(/^\s+1\s+64-127\s/m);

    const raw = await weft(['inspect', dir, '--address', 'bank/account/alice']);
    expect(raw.code).toBe(0);
    expect(raw.stdout).toContain('address bank/account/alice (key group');
    // The int 42 in StateFun's encoding: field 1, fixed32, little-endian.
    expect(raw.stdout).toMatch(/balance\s+\?\s+5\s+\S+\s+0d 2a 00 00 00/);
    expect(raw.stdout).toContain('pass --module <path> to decode them');

    const decoded = await weft(['inspect', dir, '--address', 'bank/account/alice', '--module', fileURLToPath(BANK), '--json']);
    expect(decoded.code).toBe(0);
    const withModule = JSON.parse(decoded.stdout) as Report;
    expect(withModule.address!.found).toBe(true);
    expect(withModule.address!.slots).toEqual([
      expect.objectContaining({ name: 'balance', typename: 'io.statefun.types/int', value: 42, hex: '0d2a000000' }),
      expect.objectContaining({ name: 'seen', typename: 'weft.types/json', value: [1] }),
    ]);
    const text = await weft(['inspect', dir, '--address', 'bank/account/alice', '--module', fileURLToPath(BANK)]);
    expect(text.stdout).toMatch(/balance\s+io\.statefun\.types\/int\s+5\s+\S+\s+42\n/);

    const absent = await weft(['inspect', dir, '--address', 'bank/account/nobody', '--json']);
    expect((JSON.parse(absent.stdout) as Report).address!.found).toBe(false);
    const unknownType = await weft(['inspect', dir, '--address', 'nope/x/y', '--module', fileURLToPath(BANK)]);
    expect(unknownType.code).toBe(1);
    expect(unknownType.stderr).toContain('defines no function of type "nope/x"');
  });

  it('--verify runs the start checks: ok (exit 0) on a sound dir, ERR_WEFT_DATA_DIR (exit 1) on a damaged one', async () => {
    const dir = tempDir('weft-cli-verify-');
    const { engine } = await populate(dir);
    const live = await weft(['inspect', '--verify', dir]);
    expect(live.code).toBe(0);
    expect(live.stdout).toMatch(new RegExp(`^ok: data dir ${dir} verified: format 1, 128 key groups, 2 shards \\(layout 1\\), committed epoch \\d+; meta and 2 partitions checked .*; an engine \\(process ${process.pid}\\) is running on it\\n$`));
    await within(engine.close(), 20_000, 'close');
    const ok = await weft(['inspect', dir, '--verify']);
    expect(ok.code).toBe(0);
    expect(ok.stdout).not.toContain('running');
    const data = join(dir, 'partitions-1', 'shard-1', 'data.mdb');
    truncateSync(data, 4096 * 2);
    const bad = await weft(['inspect', '--verify', dir]);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toBe('');
    expect(bad.stderr).toContain(`ERR_WEFT_DATA_DIR: data dir "${dir}" is damaged: "${data}" is truncated: 8192 bytes, but tree page`);
    const usage = await weft(['inspect', '--verify', dir, '--json']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('weft inspect: --verify takes no other option');
  });

  it('reads a data dir while an engine runs on it, without disturbing the engine', async () => {
    const dir = tempDir('weft-cli-live-');
    const { engine, epoch } = await populate(dir);
    try {
      const r = await weft(['inspect', dir, '--address', 'bank/account/alice', '--module', fileURLToPath(BANK)]);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`RUNNING: process ${process.pid} holds the lock`);
      expect(r.stdout).toMatch(new RegExp(`committed\\s+epoch ${epoch}\\n`));
      expect(r.stdout).toMatch(/balance\s+io\.statefun\.types\/int\s+5\s+\S+\s+42\n/);
      // The engine goes on as before.
      await expect(within(engine.request(acct('alice'), { op: 'deposit', amount: 1 }), 20_000, 'request')).resolves.toBe(43);
      expect(await within(engine.checkpoint(), 20_000, 'checkpoint')).toBeGreaterThan(epoch);
    } finally {
      await within(engine.close(), 20_000, 'close');
    }
  });
});
