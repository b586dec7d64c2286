/**
 * The StateFun endpoint bounds the request bodies it holds over ALL connections
 * (`maxBufferedBytes`, `weft serve --max-buffered-bytes`), next to the per-request
 * `maxBodyBytes`: many slow clients each sending part of a large body cannot make it buffer
 * without bound. Real HTTP on 127.0.0.1.
 */
import { request, type ClientRequest, type IncomingMessage } from 'node:http';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { WeftError } from '../../src/core/errors.js';
import { STATEFUN_HANDLER_DEFAULTS, statefunHandler } from '../../src/statefun/index.js';
import { encodeToFunction } from '../../src/statefun/protocol/proto.js';
import { type } from '../../src/index.js';
import functions from '../fixtures/statefun-module.js';
import { listen, rawRequest, type Listening } from '../fixtures/statefun-http.js';
import { startServe as start } from '../fixtures/serve-in-process.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** A valid batch for `shop/counter` whose `seen` state carries `pad` characters. */
function batch(id: string, pad = 0): Uint8Array {
  const str = (s: string) => ({ typename: 'io.statefun.types/string', hasValue: true, value: type.string().encode(s) });
  return encodeToFunction({
    invocation: {
      target: { namespace: 'shop', type: 'counter', id },
      state: [
        { stateName: 'count', stateValue: { typename: 'io.statefun.types/int', hasValue: false, value: new Uint8Array(0) } },
        { stateName: 'seen', stateValue: str('s'.repeat(pad)) },
        { stateName: 'last', stateValue: { typename: 'weft.types/json', hasValue: false, value: new Uint8Array(0) } },
      ],
      invocations: [{ caller: null, argument: str('x') }],
    },
  });
}

/** Resolves once `cond()` holds, checking at every event-loop turn; bounded. */
async function until(cond: () => boolean, what: string, limitMs = 10_000): Promise<void> {
  const deadline = performance.now() + limitMs;
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`${what}: not within ${limitMs} ms`);
    await new Promise((r) => setImmediate(r));
  }
}

interface Slow {
  readonly req: ClientRequest;
  /** The answer, once the server sent one (before the body ended: a refusal). */
  answer: { status: number; headers: IncomingMessage['headers']; text: string } | undefined;
}

/** A POST with a chunked body of which `bytes` are sent now and the rest never (a slow client). */
function slowClient(url: string, bytes: number): Slow {
  const req = request(url, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, agent: false });
  const slow: Slow = { req, answer: undefined };
  req.on('error', () => {}); // the server may cut a refused connection
  req.on('response', (res) => {
    let text = '';
    res.setEncoding('utf8').on('data', (d: string) => (text += d));
    res.on('end', () => (slow.answer = { status: res.statusCode ?? 0, headers: res.headers, text }));
    res.on('error', () => {});
  });
  req.write(new Uint8Array(bytes));
  return slow;
}

/**
 * Serves `handler` and counts, per request, the body bytes the server has seen and whether the
 * server-side request closed; the counting listeners run after the handler's own.
 */
async function observed(handler: ReturnType<typeof statefunHandler>): Promise<{ server: Listening; seen: number[]; closed: boolean[] }> {
  const seen: number[] = [];
  const closed: boolean[] = [];
  const server = await listen((req, res) => {
    const i = seen.length;
    seen.push(0);
    closed.push(false);
    handler(req, res);
    req.on('data', (c: Buffer) => (seen[i]! += c.length));
    req.on('close', () => (closed[i] = true));
  });
  return { server, seen, closed };
}

let cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

describe('maxBufferedBytes: a cap on request bodies held over all connections', () => {
  it('answers 503 with Retry-After past the cap, holds no more than the cap, and serves again once the slow clients are gone', async () => {
    const failures: Array<[number, string]> = [];
    const cap = 4 * MiB;
    const handler = statefunHandler(functions, {
      maxBodyBytes: 2 * MiB,
      maxBufferedBytes: cap,
      onError: (err, status) => failures.push([status, err.code]),
    });
    const { server, seen, closed } = await observed(handler);
    cleanup.push(() => server.close());

    // Slow clients, one after another, each sending 600 KiB of a body it never finishes: six fit
    // (3.5 MiB), the seventh would pass 4 MiB.
    const part = 600 * KiB;
    const slow: Slow[] = [];
    for (let i = 0; i < 6; i++) {
      slow.push(slowClient(server.url, part));
      await until(() => seen[i] === part, `slow client ${i}'s bytes reaching the server`);
    }
    expect(slow.every((s) => s.answer === undefined)).toBe(true);
    const refused = slowClient(server.url, part);
    slow.push(refused);
    await until(() => refused.answer !== undefined, 'the answer to the client past the cap');
    expect(refused.answer!.status).toBe(503);
    expect(refused.answer!.headers['retry-after']).toBe('1');
    // Its body arrives in pieces: those that still fitted were counted, then released.
    const m = /^the endpoint holds (\d+) bytes of request bodies; (\d+) more would pass its limit of (\d+) \(maxBufferedBytes\): retry later\n$/.exec(refused.answer!.text);
    expect(m, refused.answer!.text).not.toBeNull();
    const [holds, more, limit] = [Number(m![1]), Number(m![2]), Number(m![3])];
    expect(limit).toBe(cap);
    expect(holds).toBeGreaterThanOrEqual(6 * part);
    expect(holds).toBeLessThanOrEqual(cap);
    expect(holds + more).toBeGreaterThan(cap);
    expect(failures).toEqual([[503, 'ERR_WEFT_OVERLOADED']]);

    // A complete request is refused too while the slow ones hold the memory (its declared
    // length does not fit: refused before its body is read).
    const whole = await rawRequest(server.url, { body: batch('w', 600 * KiB), headers: { 'content-type': 'application/octet-stream' } });
    expect(whole.status).toBe(503);
    // ...but a small one still fits.
    const small = await rawRequest(server.url, { body: batch('s'), headers: { 'content-type': 'application/octet-stream' } });
    expect(small.status, small.text).toBe(200);

    // More clients keep coming: every one is refused; the accepted bodies never exceed the cap.
    for (let i = 0; i < 10; i++) {
      const s = slowClient(server.url, part);
      slow.push(s);
      await until(() => s.answer !== undefined, `the answer to extra client ${i}`);
      expect(s.answer!.status).toBe(503);
    }
    const held = slow.filter((s) => s.answer === undefined).length * part;
    expect(held).toBeLessThanOrEqual(cap);

    // The slow clients give up: their bytes are released, large requests succeed again.
    for (const s of slow) s.req.destroy();
    // (The server's first six requests are the held ones; a refused request, answered before its
    // body ended, released its bytes then.)
    await until(() => closed.slice(0, 6).every((c) => c), 'the server seeing the held requests close');
    for (let i = 0; i < 12; i++) {
      // 12 × 1.2 MiB sequentially: a body that stayed counted after its batch would add up.
      const res = await rawRequest(server.url, { body: batch(`again-${i}`, 1200 * KiB), headers: { 'content-type': 'application/octet-stream' } });
      expect(res.status, res.text).toBe(200);
    }
    const parallel = await Promise.all(Array.from({ length: 3 }, (_, i) => rawRequest(server.url, { body: batch(`p-${i}`, 1200 * KiB), headers: { 'content-type': 'application/octet-stream' } })));
    expect(parallel.map((r) => r.status)).toEqual([200, 200, 200]);
  });

  it('has a documented default and refuses a cap below maxBodyBytes', () => {
    expect(STATEFUN_HANDLER_DEFAULTS.maxBufferedBytes).toBe(256 * MiB);
    let caught: unknown;
    try {
      statefunHandler(functions, { maxBodyBytes: 2 * MiB, maxBufferedBytes: MiB });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(WeftError);
    expect((caught as WeftError).code).toBe('ERR_WEFT_INVALID_OPTION');
    expect((caught as WeftError).message).toBe('statefunHandler options.maxBufferedBytes (1048576) must be at least maxBodyBytes (2097152): a lone request must fit');
  });
});

describe('weft serve --max-buffered-bytes', () => {
  const MODULE = fileURLToPath(new URL('../fixtures/statefun-module.ts', import.meta.url));

  it('caps the bytes held over all connections (503 past it)', async () => {
    const r = start([MODULE, '--port', '0', '--max-body-bytes', String(MiB), '--max-buffered-bytes', String(2 * MiB)]);
    cleanup.push(async () => {
      r.stop();
      await r.exit;
    });
    await until(() => / at http:\/\/[^ ]+\/\n/.test(r.stdout()), `weft serve listening (stderr: ${r.stderr()})`);
    const url = `${/ at (http:\/\/[^ ]+\/)\n/.exec(r.stdout())![1]!}statefun`;
    // Two declared 900 KiB bodies that never finish hold 1.8 MiB ...
    const hold = (): ClientRequest => {
      const req = request(url, { method: 'POST', headers: { 'content-type': 'application/octet-stream', 'content-length': 1000 * KiB }, agent: false });
      req.on('error', () => {});
      req.write(new Uint8Array(900 * KiB));
      return req;
    };
    const holders = [hold(), hold()];
    cleanup.push(() => holders.forEach((h) => h.destroy()));
    // ... so a third declared 600 KiB is refused at once (bounded retries while the first two
    // bodies are still on their way to the server).
    let res = await rawRequest(url, { body: batch('c', 600 * KiB), headers: { 'content-type': 'application/octet-stream' } });
    for (let i = 0; i < 200 && res.status === 200; i++) {
      res = await rawRequest(url, { body: batch(`c${i}`, 600 * KiB), headers: { 'content-type': 'application/octet-stream' } });
    }
    expect(res.status, res.text).toBe(503);
    expect(res.headers['retry-after']).toBe('1');
    expect(r.stderr()).toMatch(/weft serve: 503 ERR_WEFT_OVERLOADED: the endpoint holds \d+ bytes of request bodies/);
  });

  it('refuses a cap below --max-body-bytes as bad usage', async () => {
    const r = start([MODULE, '--max-body-bytes', '2048', '--max-buffered-bytes', '1024']);
    expect(await r.exit).toBe(2);
    expect(r.stderr()).toMatch(/^weft serve: --max-buffered-bytes \(1024\) must be at least --max-body-bytes \(2048\)/);
  });
});
