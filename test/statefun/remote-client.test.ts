/**
 * weft's RemoteFunctionClient acting as the StateFun runtime for functions bound with the
 * official JS SDK and served on 127.0.0.1 by the SDK's own handler: the handshake, state kept by
 * the caller between batches, messages, delayed messages, cancellations, egress; then the failure
 * paths (retries, timeouts, 4xx, malformed answers, close) against small misbehaving servers.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Agent as HttpsAgent, createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WeftError } from '../../src/errors.js';
import { type } from '../../src/index.js';
import {
  KAFKA_PRODUCER_RECORD_TYPENAME,
  RemoteFunctionClient,
  encodeFromFunction,
  statefunHandler,
  type RemoteCall,
  type RemoteResult,
  type RemoteValue,
} from '../../src/statefun/index.js';
import functions from '../fixtures/statefun-module.js';
import { listen, type Listening } from '../fixtures/statefun-http.js';
import { sdk, sdkDecodeKafka, sdkUnwrap, sdkWrap } from '../fixtures/statefun-sdk.js';
import { TLS_CERT, TLS_KEY } from '../fixtures/statefun-tls.js';

const { StateFun, messageBuilder, egressMessageBuilder, kafkaEgressMessage } = sdk;

const Profile = StateFun.jsonType<{ visits: number }>('remote.types/profile');

/** Functions written with the official SDK. */
function sdkFunctions(): InstanceType<typeof StateFun> {
  const sf = new StateFun();
  sf.bind({
    typename: 'remote/greeter',
    specs: [
      { name: 'seen', type: StateFun.intType() },
      { name: 'name', type: StateFun.stringType(), expireAfterWrite: 1000 },
      { name: 'profile', type: Profile, expireAfterCall: 2000 },
    ],
    fn(ctx, msg) {
      const text = msg.asString();
      if (text === 'forget') {
        ctx.storage.name = null;
        return;
      }
      if (text === 'fail') throw new Error('greeter refused');
      const seen = ((ctx.storage.seen as number | null) ?? 0) + 1;
      ctx.storage.seen = seen;
      ctx.storage.name = text;
      ctx.storage.profile = { visits: seen };
      if (ctx.caller !== null) {
        ctx.send(messageBuilder({ typename: ctx.caller.typename, id: ctx.caller.id, value: `hello ${text} #${seen}`, valueType: StateFun.stringType() }));
      }
      ctx.cancelDelayedMessage(`remind-${seen - 1}`);
      ctx.sendAfter(500, messageBuilder({ typename: 'remote/greeter', id: ctx.self.id, value: 'remind', valueType: StateFun.stringType() }), `remind-${seen}`);
      ctx.send(egressMessageBuilder({ typename: 'remote/log', value: { seen }, valueType: StateFun.jsonType('remote.types/log') }));
      ctx.send(kafkaEgressMessage({ typename: 'remote/kafka', topic: 'greetings', key: ctx.self.id, value: text }));
    },
  });
  sf.bind({
    typename: 'remote/stateless',
    fn(ctx, msg) {
      ctx.send(messageBuilder({ typename: 'remote/greeter', id: 'x', value: (msg.asInt() as number) * 2, valueType: StateFun.intType() }));
    },
  });
  return sf;
}

let server: Listening;
let requests = 0;
let connections = 0;

beforeAll(async () => {
  const handler = sdkFunctions().handler() as (req: IncomingMessage, res: ServerResponse) => Promise<void>;
  server = await listen((req, res) => {
    requests++;
    void handler(req, res);
  });
  server.server.on('connection', () => connections++);
});

afterAll(async () => {
  await server?.close();
});

const str = (s: string): { typename: string; payload: Uint8Array } => ({ typename: 'io.statefun.types/string', payload: sdkWrap('String', s) });

/** What a runtime does with an answer: apply the mutations to the stored state. */
function apply(state: Map<string, RemoteValue>, result: RemoteResult): void {
  for (const m of result.mutations) {
    if (m.value === null) state.delete(m.name);
    else state.set(m.name, m.value);
  }
}

function client(opts: Partial<ConstructorParameters<typeof RemoteFunctionClient>[0]> = {}): RemoteFunctionClient {
  return new RemoteFunctionClient({ url: server.url, timeoutMs: 5_000, backoffMs: 1, ...opts });
}

async function rejection(p: Promise<unknown>): Promise<WeftError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(WeftError);
    return err as WeftError;
  }
  throw new Error('expected a rejection');
}

describe('against functions served by the official SDK', () => {
  it('performs the handshake, learns the specs, and needs none afterwards', async () => {
    const c = client();
    const state = new Map<string, RemoteValue>();
    const before = requests;
    const first = await c.invoke({ target: { type: 'remote/greeter', id: 'ada' }, invocations: [{ caller: null, ...str('Ada') }], state });
    expect(requests - before).toBe(2); // incomplete context, then the same batch with the states
    expect(c.specsOf('remote/greeter')).toEqual([
      { name: 'seen', typename: 'io.statefun.types/int' },
      { name: 'name', typename: 'io.statefun.types/string', expireAfterWrite: 1000 },
      { name: 'profile', typename: 'remote.types/profile', expireAfterCall: 2000 },
    ]);
    apply(state, first);
    expect(sdkUnwrap('Int', state.get('seen')!.bytes)).toBe(1);

    const again = await c.invoke({ target: { type: 'remote/greeter', id: 'ada' }, invocations: [{ caller: null, ...str('Ada') }], state });
    expect(requests - before).toBe(3);
    apply(state, again);
    expect(sdkUnwrap('Int', state.get('seen')!.bytes)).toBe(2);
    expect(JSON.parse(Buffer.from(state.get('profile')!.bytes).toString())).toEqual({ visits: 2 });
    expect(c.specsOf('remote/other')).toEqual([]);
    await c.close();
  });

  it('round-trips state over many batches, a batch of several messages seeing each other’s writes', async () => {
    const c = client();
    const state = new Map<string, RemoteValue>();
    for (let round = 0; round < 5; round++) {
      const r = await c.invoke({
        target: { type: 'remote/greeter', id: 'bob' },
        invocations: [{ caller: null, ...str('a') }, { caller: null, ...str('b') }, { caller: null, ...str('c') }],
        state,
      });
      apply(state, r);
    }
    expect(sdkUnwrap('Int', state.get('seen')!.bytes)).toBe(15);
    expect(state.get('seen')!.typename).toBe('io.statefun.types/int');
    expect(sdkUnwrap('String', state.get('name')!.bytes)).toBe('c');
    const forget = await c.invoke({ target: { type: 'remote/greeter', id: 'bob' }, invocations: [{ caller: null, ...str('forget') }], state });
    expect(forget.mutations).toEqual([{ name: 'name', value: null }]);
    apply(state, forget);
    expect([...state.keys()].sort()).toEqual(['profile', 'seen']);
    await c.close();
  });

  it('converts outgoing messages, delayed messages, cancellations and egress', async () => {
    const c = client();
    const state = new Map<string, RemoteValue>();
    apply(state, await c.invoke({ target: { type: 'remote/greeter', id: 'cy' }, invocations: [{ caller: null, ...str('x') }], state }));
    const r = await c.invoke({
      target: { type: 'remote/greeter', id: 'cy' },
      invocations: [{ caller: { type: 'shop/front', id: 'f1' }, ...str('Cy') }],
      state,
    });
    expect(r.outgoing.map((o) => ({ ...o, payload: sdkUnwrap('String', o.payload) }))).toEqual([
      { target: { type: 'shop/front', id: 'f1' }, typename: 'io.statefun.types/string', payload: 'hello Cy #2' },
    ]);
    expect(r.delayed.map((d) => ({ ...d, payload: d.payload === null ? null : sdkUnwrap('String', d.payload) }))).toEqual([
      { delayMs: 0, target: null, typename: null, payload: null, cancellationToken: 'remind-1', cancel: true },
      { delayMs: 500, target: { type: 'remote/greeter', id: 'cy' }, typename: 'io.statefun.types/string', payload: 'remind', cancellationToken: 'remind-2', cancel: false },
    ]);
    expect(r.egress.map((e) => [e.name, e.typename])).toEqual([
      ['remote/log', 'remote.types/log'],
      ['remote/kafka', KAFKA_PRODUCER_RECORD_TYPENAME],
    ]);
    expect(JSON.parse(Buffer.from(r.egress[0]!.payload).toString())).toEqual({ seen: 2 });
    expect(sdkDecodeKafka(r.egress[1]!.payload)).toEqual({ topic: 'greetings', key: 'cy', valueBytes: new Uint8Array(Buffer.from('Cy')) });
    await c.close();
  });

  it('calls functions without state without a handshake', async () => {
    const c = client();
    const before = requests;
    const r = await c.invoke({
      target: { type: 'remote/stateless', id: 's' },
      invocations: [{ caller: null, typename: 'io.statefun.types/int', payload: sdkWrap('Int', 21) }],
      state: new Map(),
    });
    expect(requests - before).toBe(1);
    expect(r.outgoing.map((o) => sdkUnwrap('Int', o.payload))).toEqual([42]);
    await c.close();
  });

  it('keeps one connection alive across sequential calls', async () => {
    const c = client();
    const before = connections;
    for (let i = 0; i < 10; i++) {
      await c.invoke({ target: { type: 'remote/stateless', id: 's' }, invocations: [{ caller: null, typename: 'io.statefun.types/int', payload: sdkWrap('Int', i) }], state: new Map() });
    }
    expect(connections - before).toBe(1);
    await c.close();
  });

  it('runs many addresses concurrently', async () => {
    const c = client();
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) => c.invoke({ target: { type: 'remote/greeter', id: `p${i}` }, invocations: [{ caller: null, ...str(`n${i}`) }], state: new Map() })),
    );
    expect(results.map((r) => sdkUnwrap('Int', r.mutations.find((m) => m.name === 'seen')!.value!.bytes))).toEqual(results.map(() => 1));
    await c.close();
  });

  it('retries a batch the SDK answers with 500, then rejects naming URL, function and error', async () => {
    const c = client({ maxRetries: 2 });
    const state = new Map<string, RemoteValue>();
    apply(state, await c.invoke({ target: { type: 'remote/greeter', id: 'f' }, invocations: [{ caller: null, ...str('x') }], state }));
    const before = requests;
    const err = await rejection(c.invoke({ target: { type: 'remote/greeter', id: 'f' }, invocations: [{ caller: null, ...str('fail') }], state }));
    expect(requests - before).toBe(3);
    expect(err.code).toBe('ERR_WEFT_REMOTE');
    expect(err.message).toBe(`remote function remote/greeter (id "f") at ${server.url} failed after 3 attempts: HTTP 500`);
    await c.close();
  });
});

describe('against weft’s own endpoint', () => {
  it('drives statefunHandler like a runtime: handshake, state, replies', async () => {
    const weft = await listen(statefunHandler(functions));
    const c = new RemoteFunctionClient({ url: weft.url, timeoutMs: 5_000 });
    const state = new Map<string, RemoteValue>();
    for (let i = 0; i < 3; i++) {
      const r = await c.invoke({
        target: { type: 'shop/counter', id: 'k' },
        invocations: [{ caller: { type: 'bank/teller', id: 't' }, typename: 'io.statefun.types/string', payload: type.string().encode('x') }],
        state,
      });
      apply(state, r);
      expect(r.outgoing.map((o) => [o.target, type.int().decode(o.payload)])).toEqual([[{ type: 'bank/teller', id: 't' }, i + 1]]);
    }
    expect(type.int().decode(state.get('count')!.bytes)).toBe(3);
    expect(c.specsOf('shop/counter').map((s) => s.name)).toEqual(['count', 'seen', 'last']);
    const missing = await rejection(c.invoke({ target: { type: 'shop/none', id: 'k' }, invocations: [], state: new Map() }));
    expect(missing.message).toMatch(/failed after 1 attempt: HTTP 404: "no function of type \\"shop\/none\\" is served/);
    await c.close();
    await weft.close();
  });
});

/** A server whose behaviour each test scripts. */
async function scripted(fn: (req: IncomingMessage, res: ServerResponse, n: number) => void): Promise<Listening & { count: () => number }> {
  let n = 0;
  const l = await listen((req, res) => {
    n++;
    req.resume();
    req.on('end', () => fn(req, res, n));
  });
  return Object.assign(l, { count: () => n });
}

const call: RemoteCall = { target: { type: 'x/y', id: '1' }, invocations: [{ caller: null, typename: 'a/b', payload: Uint8Array.of(1) }], state: new Map() };
const okAnswer = encodeFromFunction({ kind: 'invocation-result', result: { stateMutations: [], outgoingMessages: [], delayedInvocations: [], outgoingEgresses: [] } });

describe('failures', () => {
  it('retries 5xx with backoff and succeeds when the endpoint recovers', async () => {
    const s = await scripted((_req, res, n) => {
      if (n < 3) res.writeHead(503).end('busy');
      else res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(okAnswer);
    });
    const c = new RemoteFunctionClient({ url: s.url, timeoutMs: 2_000, maxRetries: 3, backoffMs: 1 });
    expect(await c.invoke(call)).toEqual({ mutations: [], outgoing: [], delayed: [], egress: [] });
    expect(s.count()).toBe(3);
    await c.close();
    await s.close();
  });

  it('does not retry 4xx', async () => {
    const s = await scripted((_req, res) => res.writeHead(400).end('bad batch'));
    const c = new RemoteFunctionClient({ url: s.url, timeoutMs: 2_000, maxRetries: 5, backoffMs: 1 });
    const err = await rejection(c.invoke(call));
    expect(err.message).toBe(`remote function x/y (id "1") at ${s.url} failed after 1 attempt: HTTP 400: "bad batch"`);
    expect(s.count()).toBe(1);
    await c.close();
    await s.close();
  });

  it('times out an attempt that gets no answer, and retries it', async () => {
    const held: ServerResponse[] = [];
    const s = await scripted((_req, res) => held.push(res));
    const c = new RemoteFunctionClient({ url: s.url, timeoutMs: 100, maxRetries: 1, backoffMs: 1 });
    const err = await rejection(c.invoke(call));
    expect(err.message).toMatch(/failed after 2 attempts: no complete answer within 100 ms \(timeoutMs\)$/);
    expect(s.count()).toBe(2);
    await c.close();
    await s.close();
  });

  it('retries refused connections and names the URL', async () => {
    const s = await scripted(() => {});
    const url = s.url;
    await s.close();
    const c = new RemoteFunctionClient({ url, timeoutMs: 1_000, maxRetries: 2, backoffMs: 1 });
    const err = await rejection(c.invoke(call));
    expect(err.code).toBe('ERR_WEFT_REMOTE');
    expect(err.message).toMatch(new RegExp(`at ${url.replace(/[.]/g, '\\.')} failed after 3 attempts: request failed: .*ECONNREFUSED`));
    await c.close();
  });

  it('refuses malformed, empty and oversized answers without retrying', async () => {
    const answers: Array<Uint8Array> = [Uint8Array.of(0xff, 0xff), new Uint8Array(0), new Uint8Array(2048), new Uint8Array(2048)];
    const s = await scripted((_req, res, n) => {
      const body = answers[n - 1] as Uint8Array;
      // The third answer declares its length; the fourth streams it (chunked) past the limit.
      if (n === 3) res.writeHead(200, { 'content-length': body.length }).end(body);
      else res.writeHead(200).end(body);
    });
    const c = new RemoteFunctionClient({ url: s.url, timeoutMs: 2_000, maxRetries: 3, backoffMs: 1, maxResponseBytes: 1024 });
    expect((await rejection(c.invoke(call))).message).toMatch(/answered a malformed FromFunction: malformed FromFunction: /);
    expect((await rejection(c.invoke(call))).message).toMatch(/answered a FromFunction with neither an invocation result nor an incomplete invocation context/);
    expect((await rejection(c.invoke(call))).message).toMatch(/failed after 1 attempt: the answer of 2048 bytes is over the limit of 1024 \(maxResponseBytes\)$/);
    expect((await rejection(c.invoke(call))).message).toMatch(/failed after 1 attempt: the answer is over the limit of 1024 bytes \(maxResponseBytes\)$/);
    expect(s.count()).toBe(4);
    await c.close();
    await s.close();
  });

  it('refuses an endpoint that reports a state missing although it was sent', async () => {
    const incomplete = encodeFromFunction({ kind: 'incomplete-invocation-context', missingValues: [{ stateName: 'v', typeTypename: 'a/b', expirationSpec: null }] });
    const s = await scripted((_req, res) => res.writeHead(200).end(incomplete));
    const c = new RemoteFunctionClient({ url: s.url, timeoutMs: 2_000 });
    const err = await rejection(c.invoke(call));
    expect(err.message).toBe(`remote function x/y (id "1") at ${s.url} reported state "v" missing although the request carried it`);
    expect(s.count()).toBe(2);
    await c.close();
    await s.close();
  });

  it('refuses answers with messages that lack a target or argument', async () => {
    const bad = encodeFromFunction({
      kind: 'invocation-result',
      result: { stateMutations: [], outgoingMessages: [{ target: null, argument: null }], delayedInvocations: [], outgoingEgresses: [] },
    });
    const s = await scripted((_req, res) => res.writeHead(200).end(bad));
    const c = new RemoteFunctionClient({ url: s.url, timeoutMs: 2_000 });
    expect((await rejection(c.invoke(call))).message).toMatch(/answered an unusable InvocationResponse: outgoing message 0 has no target address/);
    await c.close();
    await s.close();
  });

  it('close() ends in-flight calls and refuses new ones', async () => {
    const held: ServerResponse[] = [];
    let arrived!: () => void;
    const arrival = new Promise<void>((resolve) => (arrived = resolve));
    const s = await scripted((_req, res) => {
      held.push(res);
      arrived();
    });
    const c = new RemoteFunctionClient({ url: s.url, timeoutMs: 30_000 });
    const pending = c.invoke(call);
    await arrival;
    await c.close();
    expect((await rejection(pending)).code).toBe('ERR_WEFT_CLOSED');
    expect((await rejection(c.invoke(call))).code).toBe('ERR_WEFT_CLOSED');
    await c.close();
    await s.close();
  });
});

describe('https and options', () => {
  it('speaks https with a keep-alive agent given by the caller', async () => {
    const sf = sdkFunctions();
    const handler = sf.handler() as (req: IncomingMessage, res: ServerResponse) => Promise<void>;
    const tls = createHttpsServer({ cert: TLS_CERT, key: TLS_KEY }, (req, res) => void handler(req, res));
    await new Promise<void>((resolve) => tls.listen(0, '127.0.0.1', resolve));
    const { port } = tls.address() as AddressInfo;
    const agent = new HttpsAgent({ keepAlive: true, ca: TLS_CERT });
    const c = new RemoteFunctionClient({ url: `https://127.0.0.1:${port}/`, timeoutMs: 5_000, agent });
    const r = await c.invoke({ target: { type: 'remote/stateless', id: 's' }, invocations: [{ caller: null, typename: 'io.statefun.types/int', payload: sdkWrap('Int', 4) }], state: new Map() });
    expect(r.outgoing.map((o) => sdkUnwrap('Int', o.payload))).toEqual([8]);
    await c.close();
    agent.destroy();
    await new Promise<void>((resolve) => {
      tls.close(() => resolve());
      tls.closeAllConnections();
    });
  });

  it('validates options and calls with messages that name them', () => {
    expect(() => new RemoteFunctionClient({ url: 'ftp://x', timeoutMs: 1 })).toThrow('RemoteFunctionClient options.url must be an http:// or https:// URL (got "ftp://x")');
    expect(() => new RemoteFunctionClient({ url: 'http://127.0.0.1:1', timeoutMs: 0 })).toThrow('RemoteFunctionClient options.timeoutMs must be an integer >= 1 (got 0)');
    expect(() => new RemoteFunctionClient({ url: 'http://127.0.0.1:1', timeoutMs: 1, maxRetries: -1 })).toThrow('options.maxRetries must be an integer >= 0 (got -1)');
    const c = new RemoteFunctionClient({ url: 'http://127.0.0.1:1', timeoutMs: 1 });
    return Promise.all([
      expect(c.invoke({ ...call, target: { type: 'noslash', id: '1' } })).rejects.toThrow(/call.target must be an address/),
      expect(c.invoke({ ...call, state: {} as never })).rejects.toThrow(/call.state must be a Map/),
      expect(c.invoke({ ...call, invocations: [{ caller: null, typename: 'a/b', payload: 'x' as never }] })).rejects.toThrow(/call.invocations\[0\] must be/),
    ]).finally(() => c.close());
  });

  it('accepts specs registered up front, so the first batch needs no handshake', async () => {
    const c = client();
    c.registerSpecs('remote/greeter', [
      { name: 'seen', typename: 'io.statefun.types/int' },
      { name: 'name', typename: 'io.statefun.types/string', expireAfterWrite: 1000 },
      { name: 'profile', typename: 'remote.types/profile', expireAfterCall: 2000 },
    ]);
    const before = requests;
    await c.invoke({ target: { type: 'remote/greeter', id: 'pre' }, invocations: [{ caller: null, ...str('x') }], state: new Map() });
    expect(requests - before).toBe(1);
    await c.close();
  });
});
