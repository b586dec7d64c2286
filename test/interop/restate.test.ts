/**
 * weft/restate against a real Restate server (the npm package's restate-server binary), started
 * on free loopback ports in a temp dir, the endpoint registered through the admin API
 * (POST /deployments) and driven through the ingress with weft's Restate client.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Weft, defineModule, isWeftError, type, type Address, type WeftClient } from '../../src/index.js';
import { connectRestate, serveRestate, type RestateClient, type RestateEgressRecord, type RestateServer as Endpoint } from '../../src/restate/index.js';
import { createTestHarness } from '../../src/testing/index.js';
import greeter from '../../examples/greeter/functions.js';
import bank from '../fixtures/bank.js';
import ttlModule from '../fixtures/restate-ttl.js';
import { RestateServer, waitFor } from './restate-server.js';
import { PARITY_TOUCHED, parityScript } from '../helpers/parity-script.js';

const BANK_URL = new URL('../../dist/test/fixtures/bank.js', import.meta.url);
const TTL_URL = new URL('../../dist/test/fixtures/restate-ttl.js', import.meta.url);
const acct = (id: string): Address => ({ type: 'bank/account', id });
const sortedJson = (records: unknown[]): string[] => records.map((r) => JSON.stringify(r)).sort();

let server: RestateServer;
let endpoint: Endpoint;
let client: RestateClient;
const records: RestateEgressRecord[] = [];
const egressOf = (name: string, prefix = ''): unknown[] => records.filter((r) => r.egress === name && (prefix === '' || (r.source.id.startsWith(prefix)))).map((r) => r.value);

/** A bank module and the greeter served by one endpoint: both modules' functions, one deployment. */
beforeAll(async () => {
  server = new RestateServer();
  await server.start();
  // Its functions fail on purpose (retries, dead letters): the SDK's warnings about that are not shown.
  endpoint = await serveRestate(bank, { egress: (r) => void records.push(r), retryBackoffMs: 1, log: () => {} });
  await server.register(endpoint.url);
  client = await connectRestate({ url: server.ingressUrl, adminUrl: server.adminUrl, module: bank });
});

afterAll(async () => {
  await client?.close();
  await endpoint?.close();
  await server?.close();
});

describe('the greeter on Restate', () => {
  let greeterServer: Endpoint;
  let greeterClient: RestateClient;
  const greetings: unknown[] = [];

  beforeAll(async () => {
    greeterServer = await serveRestate(greeter, { egress: (r) => void greetings.push(r.value) });
    await server.register(greeterServer.url);
    greeterClient = await connectRestate({ url: server.ingressUrl, adminUrl: server.adminUrl, module: greeter });
  });

  afterAll(async () => {
    await greeterServer?.close();
  });

  it('answers requests, keeps state per id, writes its egress', async () => {
    const ada = { type: 'example/greeter', id: 'ada' };
    expect(await greeterClient.request(ada, { name: 'Ada' })).toBe('Hello, Ada!');
    expect(await greeterClient.request(ada, { name: 'Ada' })).toBe('Hello again, Ada! That makes 2 visits.');
    await greeterClient.send({ type: 'example/greeter', id: 'grace' }, { name: 'Grace' });
    await server.idle();
    expect(await greeterClient.query(ada)).toEqual({ visits: 2 });
    expect(await greeterClient.query({ type: 'example/greeter', id: 'grace' })).toEqual({ visits: 1 });
    expect(await greeterClient.query({ type: 'example/greeter', id: 'nobody' })).toBeUndefined();
    expect(sortedJson(greetings)).toEqual(
      sortedJson([
        { id: 'ada', visits: 1, greeting: 'Hello, Ada!' },
        { id: 'ada', visits: 2, greeting: 'Hello again, Ada! That makes 2 visits.' },
        { id: 'grace', visits: 1, greeting: 'Hello, Grace!' },
      ]),
    );
  });
});

describe('weft serve --restate', () => {
  it('serves a module that a Restate server registers and drives; egress goes to stdout as JSON lines', async () => {
    const main = fileURLToPath(new URL('../../dist/src/cli/main.js', import.meta.url));
    const module = fileURLToPath(new URL('../../dist/examples/greeter/functions.js', import.meta.url));
    const child = spawn(process.execPath, [main, 'serve', '--restate', module, '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    try {
      const url = await waitFor('weft serve --restate to listen', 30_000, async () => /at (http:\/\/127\.0\.0\.1:\d+)/.exec(out)?.[1]);
      // Another greeter id space than the endpoint above registered: this deployment takes over the name.
      await server.register(url);
      const c = await connectRestate({ url: server.ingressUrl, module: greeter });
      expect(await c.request({ type: 'example/greeter', id: 'cli-user' }, { name: 'Cli' })).toBe('Hello, Cli!');
      const line = await waitFor('the egress JSON line', 10_000, async () => out.split('\n').find((l) => l.includes('"egress":"example/greetings"')));
      expect(JSON.parse(line)).toEqual({
        egress: 'example/greetings',
        source: { type: 'example/greeter', id: 'cli-user' },
        typename: 'weft.types/msgpack',
        value: { id: 'cli-user', visits: 1, greeting: 'Hello, Cli!' },
      });
    } finally {
      child.kill('SIGTERM');
      await waitFor('weft serve --restate to exit', 15_000, async () => (child.exitCode !== null || child.signalCode !== null ? true : undefined));
    }
  });
});

describe('retries, dead letters and compute on Restate', () => {
  it('runs a throwing function maxAttempts times, then dead-letters it; ctx.compute and ctx.now run inside the journaled body', async () => {
    let attempts = 0;
    const computed: unknown[] = [];
    const flaky = defineModule({
      functions: {
        'test/flaky': {
          state: { n: type.int() },
          async fn(ctx, msg) {
            attempts++;
            const v = msg.value as { failTimes: number };
            if (attempts <= v.failTimes) throw new Error(`attempt ${attempts} fails`);
            const squared = (await ctx.compute('square', attempts)) as number;
            ctx.state.n = squared;
            ctx.reply({ attempts, squared, now: ctx.now() > 0 });
          },
        },
      },
    });
    const letters: RestateEgressRecord[] = [];
    const ep = await serveRestate(flaky, {
      egress: (r) => void letters.push(r),
      maxAttempts: 3,
      retryBackoffMs: 1,
      log: () => {},
      compute: async (task, input) => {
        computed.push([task, input]);
        return (input as number) ** 2;
      },
    });
    try {
      await server.register(ep.url);
      const c = await connectRestate({ url: server.ingressUrl, adminUrl: server.adminUrl, module: flaky });
      expect(await c.request({ type: 'test/flaky', id: 'a' }, { failTimes: 2 })).toEqual({ attempts: 3, squared: 9, now: true });
      expect(computed).toEqual([['square', 3]]);
      expect(await c.query({ type: 'test/flaky', id: 'a' })).toEqual({ n: 9 });
      attempts = 0;
      await expect(c.request({ type: 'test/flaky', id: 'b' }, { failTimes: 99 })).rejects.toMatchObject({ code: 'ERR_WEFT_USER_CODE', message: expect.stringContaining('attempt 3 fails') as unknown as string });
      expect(attempts).toBe(3);
      expect(letters).toHaveLength(1);
      expect(letters[0]?.egress).toBe('weft/dead-letters');
      expect(letters[0]?.value).toMatchObject({ target: { type: 'test/flaky', id: 'b' }, caller: null, value: { failTimes: 99 }, attempts: 3, error: { code: 'ERR_WEFT_USER_CODE' } });
      expect(await c.query({ type: 'test/flaky', id: 'b' })).toBeUndefined();
    } finally {
      await ep.close();
    }
  });
});

describe('bank on Restate', () => {
  it('conserves money over transfers between objects', async () => {
    const ids = Array.from({ length: 8 }, (_, i) => `t-${i}`);
    for (const id of ids) expect(await client.request(acct(id), { op: 'deposit', amount: 1000 })).toBe(1000);
    let x = 7;
    const transfers: Array<[string, string, number]> = [];
    for (let i = 0; i < 200; i++) {
      x = (x * 1103515245 + 12345) % 2 ** 31;
      const from = ids[x % 8] as string;
      const to = ids[(x >> 8) % 8] as string;
      transfers.push([from, to, 1 + (x % 50)]);
    }
    for (let i = 0; i < transfers.length; i += 20) {
      await Promise.all(transfers.slice(i, i + 20).map(([from, to, amount]) => client.send(acct(from), { op: 'transfer', to, amount })));
    }
    await server.idle();
    let total = 0;
    for (const id of ids) total += ((await client.query(acct(id)))?.balance as number | undefined) ?? 0;
    expect(total).toBe(8000);
    expect(egressOf('bank/audit', 't-')).toHaveLength(200);
  });

  it('delivers a delayed message and cancels another by its token', async () => {
    const started = Date.now();
    await client.send(acct('d-1'), { op: 'schedule', delayMs: 1500, amount: 5, seq: 1, token: 'later' });
    await client.send(acct('d-1'), { op: 'cancel', token: 'later' });
    await client.send(acct('d-2'), { op: 'schedule', delayMs: 1000, amount: 7, seq: 2, token: 'fires' });
    // The token is pending: reusing it fails the invocation (dead-lettered after its attempts).
    await expect(client.request(acct('d-2'), { op: 'schedule', delayMs: 10, amount: 1, seq: 3, token: 'fires' })).rejects.toMatchObject({ code: 'ERR_WEFT_USER_CODE' });
    expect(String((egressOf('weft/dead-letters').at(-1) as { error: { message: string } }).error.message)).toContain('already used by a pending delayed message');
    const fired = await waitFor('the delayed deposit of d-2', 20_000, async () => ((await client.query(acct('d-2')))?.balance === 7 ? Date.now() : undefined));
    expect(fired - started).toBeGreaterThanOrEqual(1000);
    // Past the cancelled message's due time, and nothing scheduled is left.
    await waitFor('the cancelled message to be past due', 10_000, async () => (Date.now() - started > 2500 ? true : undefined));
    await server.idle();
    expect(await client.query(acct('d-1'))).toBeUndefined();
    expect(await client.query(acct('d-2'))).toEqual({ balance: 7, seen: [2] });
    const scheduled = await server.sql<{ n: number }>("SELECT count(*) AS n FROM sys_invocation WHERE status = 'scheduled' AND target_service_key LIKE 'd-%'");
    expect(Number(scheduled[0]?.n)).toBe(0);
  });

  it('expires state after write and after call as the engine does (lazily)', async () => {
    // TTLs of 3 s, and every step far (>= 1.2 s) from an expiry boundary: real time on a loaded
    // machine only adds to the gaps, which moves no answer.
    const ttlEndpoint = await serveRestate(ttlModule, { egress: () => {} });
    const h = await createTestHarness(TTL_URL);
    try {
      await server.register(ttlEndpoint.url);
      const ttlClient = await connectRestate({ url: server.ingressUrl, adminUrl: server.adminUrl, module: ttlModule });
      const ttl = (id: string): Address => ({ type: 'test/ttl3', id });
      const seen: unknown[] = [];
      const expected: unknown[] = [];
      const step = async (id: string, value: unknown, waitMs: number): Promise<void> => {
        // Real time passes for Restate, virtual time for the harness: the same gaps for both.
        const until = Date.now() + waitMs;
        await waitFor(`${waitMs} ms to pass`, waitMs + 5000, async () => (Date.now() >= until ? true : undefined));
        await h.advance(waitMs);
        seen.push(await ttlClient.request(ttl(id), value));
        expected.push(await h.request(ttl(id), value));
      };
      // One harness, one clock: the steps run one after the other.
      await step('x', { set: true }, 0);
      await step('x', {}, 0);
      await step('x', {}, 3200);
      await step('y', { set: true }, 0);
      await step('y', {}, 1500);
      await step('y', {}, 1800);
      expect(seen).toEqual(expected);
      expect(seen).toEqual([
        { w: 'written', c: 'called' },
        { w: 'written', c: 'called' },
        { w: null, c: null },
        { w: 'written', c: 'called' },
        { w: 'written', c: 'called' },
        { w: null, c: 'called' },
      ]);
      // Expired values are deleted from Restate's state at the next invocation.
      expect(await ttlClient.query(ttl('x'))).toBeUndefined();
      expect(await ttlClient.query(ttl('y'))).toEqual({ c: 'called' });
      const rows = await server.sql<{ key: string }>("SELECT key FROM state WHERE service_name = 'test.ttl3' AND service_key = 'x'");
      expect(rows.map((r) => r.key).filter((k) => k !== 'weft:meta')).toEqual([]);
    } finally {
      await h.close();
      await ttlEndpoint.close();
    }
  });
});

async function runScript(c: WeftClient): Promise<void> {
  for (const [to, value] of parityScript()) await c.send(to, value);
}

const touched = PARITY_TOUCHED;

describe('one script, the embedded engine and Restate', () => {
  it('ends in the same states, egress records and dead letters', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-restate-parity-'));
    const weft = await Weft.start({ module: BANK_URL, shards: 2, dataDir: dir, durability: 'process', checkpointIntervalMs: 20, retryBackoffMs: 1 });
    try {
      const audit = weft.egress('bank/audit')[Symbol.asyncIterator]();
      const dead = weft.egress('weft/dead-letters')[Symbol.asyncIterator]();
      // The same function drives both: the engine and the Restate client are both WeftClients.
      await runScript(weft);
      await weft.idle();
      await runScript(client);
      await server.idle();

      for (const a of touched) expect({ a, state: await client.query(a) }).toEqual({ a, state: await weft.query(a) });
      const restateAudit = egressOf('bank/audit', 'p-').concat(egressOf('bank/audit').filter((r) => (r as { done?: string }).done?.endsWith('-par') === true));
      const engineAudit: unknown[] = [];
      // Engine egress records are { id, value, ack() }.
      while (engineAudit.length < restateAudit.length) engineAudit.push((await audit.next()).value?.value);
      expect(sortedJson(restateAudit)).toEqual(sortedJson(engineAudit));
      expect(restateAudit).toHaveLength(31);

      const engineLetter = (await dead.next()).value?.value as { target: Address; caller: Address | null; typename: string; value: unknown; attempts: number; error: Error };
      const restateLetters = egressOf('weft/dead-letters').filter((l) => (l as { target: Address }).target.id === 'p-3') as Array<typeof engineLetter>;
      expect(restateLetters).toHaveLength(1);
      const shape = (l: typeof engineLetter) => ({ target: l.target, caller: l.caller, typename: l.typename, value: l.value, attempts: l.attempts });
      expect(shape(restateLetters[0] as typeof engineLetter)).toEqual(shape(engineLetter));
      expect((restateLetters[0] as typeof engineLetter).error.message).toContain(engineLetter.error.message);

      const pending = await server.sql<{ n: number }>("SELECT count(*) AS n FROM sys_invocation WHERE status = 'scheduled' AND target_service_key LIKE 'p-%'");
      expect(Number(pending[0]?.n)).toBe(weft.metrics().shards.reduce((n, s) => n + s.pendingTimers, 0));
    } finally {
      await weft.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('a restart of restate-server in the middle of a run', () => {
  it('loses and doubles no acknowledged message', async () => {
    const N = 300;
    const acked = new Set<number>();
    const failed: unknown[] = [];
    let next = 0;
    let killed = false;
    const worker = async (): Promise<void> => {
      while (next < N) {
        const seq = next++;
        try {
          await client.send(acct(`r-${seq % 10}`), { op: 'deposit', amount: 1, seq });
          acked.add(seq);
        } catch (err) {
          failed.push(isWeftError(err) ? err.message : err);
        }
      }
    };
    const run = Promise.all([worker(), worker(), worker(), worker()]);
    await waitFor('100 acknowledged sends before the kill', 60_000, async () => (acked.size >= 100 ? true : undefined));
    await server.kill();
    killed = true;
    await server.start();
    await run;
    expect(killed).toBe(true);
    await server.idle(120_000);
    const seen: number[] = [];
    let balance = 0;
    for (let i = 0; i < 10; i++) {
      const s = (await client.query(acct(`r-${i}`))) as { balance: number; seen: number[] };
      seen.push(...s.seen);
      balance += s.balance;
    }
    // Every acknowledged deposit applied exactly once; nothing applied twice.
    expect(new Set(seen).size).toBe(seen.length);
    for (const seq of acked) expect(seen).toContain(seq);
    expect(balance).toBe(seen.length);
    expect({ acked: acked.size, failed }).toEqual({ acked: N, failed: [] });
  });
});
