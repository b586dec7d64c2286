/**
 * `weft serve`, run in-process through `serveCommand` with its own streams and stop signal: it
 * serves a module file over HTTP and HTTPS to a runtime (weft's RemoteFunctionClient), binds
 * 127.0.0.1 by default, stops cleanly, and refuses bad usage with exit code 2.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent as HttpsAgent } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { serve } from '../../src/cli/serve.js';
import { type } from '../../src/index.js';
import { RemoteFunctionClient, type RemoteValue } from '../../src/statefun/index.js';
import { rawRequest } from '../fixtures/statefun-http.js';
import { TLS_CERT, TLS_KEY } from '../fixtures/statefun-tls.js';
import { startServe as start, type RunningServe as Running } from '../fixtures/serve-in-process.js';

const MODULE = fileURLToPath(new URL('../fixtures/statefun-module.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'weft-serve-'));

afterAll(() => rmSync(dir, { recursive: true, force: true }));


/** Waits (bounded) until serve prints where it listens; returns the base URL. */
async function listening(r: Running, limitMs = 10_000): Promise<string> {
  const deadline = performance.now() + limitMs;
  for (;;) {
    const m = r.stdout().match(/ at (https?:\/\/[^ ]+\/)\n/);
    if (m !== null) return m[1] as string;
    if (performance.now() > deadline) throw new Error(`weft serve did not listen within ${limitMs} ms; stderr: ${r.stderr()}`);
    const exited = await Promise.race([r.exit.then(() => true), new Promise<false>((resolve) => setTimeout(() => resolve(false), 10))]);
    if (exited) throw new Error(`weft serve exited early; stderr: ${r.stderr()}`);
  }
}

async function counterRoundTrip(client: RemoteFunctionClient): Promise<number> {
  const state = new Map<string, RemoteValue>();
  for (let i = 0; i < 2; i++) {
    const r = await client.invoke({
      target: { type: 'shop/counter', id: 'served' },
      invocations: [{ caller: null, typename: 'io.statefun.types/string', payload: type.string().encode('x') }],
      state,
    });
    for (const m of r.mutations) {
      if (m.value === null) state.delete(m.name);
      else state.set(m.name, m.value);
    }
  }
  return type.int().decode(state.get('count')!.bytes);
}

describe('weft serve', () => {
  it('serves a module file on 127.0.0.1 until stopped', async () => {
    const r = start([MODULE, '--port', '0']);
    const base = await listening(r);
    expect(base).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    expect(r.stdout()).toMatch(/^weft serve: 8 function types \(shop\/counter, types\/echo, /);
    const client = new RemoteFunctionClient({ url: `${base}statefun`, timeoutMs: 5_000 });
    expect(await counterRoundTrip(client)).toBe(2);
    await client.close();

    const get = await rawRequest(base, { method: 'GET' });
    expect(get.status).toBe(405);

    r.stop();
    expect(await r.exit).toBe(0);
    expect(r.stdout()).toMatch(/weft serve: stopped\n$/);
    expect(r.stderr()).toMatch(/weft serve: 405 ERR_WEFT_PROTOCOL: method GET is not allowed/);
  });

  it('logs failed batches with the function’s stack on stderr, never in the answer', async () => {
    const r = start([MODULE, '--port', '0', '--batch-timeout-ms', '5000']);
    const base = await listening(r);
    const client = new RemoteFunctionClient({ url: base, timeoutMs: 5_000, maxRetries: 0 });
    const state = new Map<string, RemoteValue>([['n', { typename: 'io.statefun.types/int', bytes: type.int().encode(1) }]]);
    await expect(
      client.invoke({ target: { type: 'shop/fragile', id: 'f' }, invocations: [{ caller: null, typename: 'io.statefun.types/string', payload: type.string().encode('boom') }], state }),
    ).rejects.toThrow(/HTTP 500: "function shop\/fragile \(id \\"f\\"\) failed: boom: refused"$/);
    await client.close();
    r.stop();
    expect(await r.exit).toBe(0);
    expect(r.stderr()).toMatch(/weft serve: 500 ERR_WEFT_USER_CODE: function shop\/fragile \(id "f"\) failed: boom: refused\nError: boom: refused\n\s+at /);
  });

  it('serves HTTPS with --tls-cert and --tls-key', async () => {
    const cert = join(dir, 'cert.pem');
    const key = join(dir, 'key.pem');
    writeFileSync(cert, TLS_CERT);
    writeFileSync(key, TLS_KEY);
    const r = start([MODULE, '--port', '0', '--tls-cert', cert, '--tls-key', key, '--max-body-bytes', '100000']);
    const base = await listening(r);
    expect(base).toMatch(/^https:\/\/127\.0\.0\.1:\d+\/$/);
    const agent = new HttpsAgent({ keepAlive: true, ca: TLS_CERT });
    const client = new RemoteFunctionClient({ url: base, timeoutMs: 5_000, agent });
    expect(await counterRoundTrip(client)).toBe(2);
    await client.close();
    agent.destroy();
    r.stop();
    expect(await r.exit).toBe(0);
  });

  it('refuses bad usage with exit code 2 and the usage line', async () => {
    const cases: Array<[string[], string]> = [
      [[], 'weft serve: missing the function module (a file path or file: URL)'],
      [[MODULE, '--port', '70000'], 'weft serve: --port must be an integer from 0 to 65535 (got "70000")'],
      [[MODULE, '--max-body-bytes', '0'], 'weft serve: --max-body-bytes must be an integer from 1 to 2147483647 (got "0")'],
      [[MODULE, '--tls-cert', 'c.pem'], 'weft serve: --tls-cert and --tls-key go together (give both or neither)'],
      [[MODULE, '--bogus'], "weft serve: unknown option '--bogus'"],
      [[MODULE, 'extra'], 'weft serve: unexpected argument "extra"'],
    ];
    for (const [args, message] of cases) {
      const r = start(args);
      expect(await r.exit, args.join(' ')).toBe(2);
      expect(r.stderr()).toBe(`${message}\n\nUsage: weft serve <module> [--port 8000] [--host 127.0.0.1] [--max-body-bytes N] [--tls-cert FILE --tls-key FILE]\nRun "weft serve --help" for details.\n`);
    }
  });

  it('prints its help', async () => {
    const r = start(['--help']);
    expect(await r.exit).toBe(0);
    expect(r.stdout()).toBe(`${serve.help}\n`);
    expect(serve.name).toBe('serve');
  });

  it('fails with exit code 1 when the module, the TLS files or the port cannot be used', async () => {
    const missing = start([join(dir, 'nope.js'), '--port', '0']);
    expect(await missing.exit).toBe(1);
    expect(missing.stderr()).toMatch(/^weft serve: ERR_WEFT_INVALID_MODULE: function module ".*nope\.js" failed to load/);

    const tls = start([MODULE, '--tls-cert', join(dir, 'none.pem'), '--tls-key', join(dir, 'none.pem')]);
    expect(await tls.exit).toBe(1);
    expect(tls.stderr()).toMatch(/^weft serve: cannot read the TLS files: ENOENT/);

    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as { port: number }).port;
    const busy = start([MODULE, '--port', String(port)]);
    expect(await busy.exit).toBe(1);
    expect(busy.stderr()).toMatch(new RegExp(`^weft serve: cannot listen on 127\\.0\\.0\\.1:${port}: .*EADDRINUSE`));
    await new Promise<void>((resolve) => blocker.close(() => resolve()));
  });
});
