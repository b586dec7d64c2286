/**
 * weft's RemoteFunctionClient acting as the StateFun runtime for functions bound with the
 * official JS SDK and served on 127.0.0.1 by the SDK's own handler: the handshake, state kept by
 * the caller between batches, messages, delayed messages, cancellations, egress; then the failure
 * paths (retries, timeouts, 4xx, malformed answers, close) against small misbehaving servers.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Agent as HttpsAgent, createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WeftError } from '../../src/core/errors.js';
import { type } from '../../src/index.js';
import {
  KAFKA_PRODUCER_RECORD_TYPENAME,
  RemoteFunctionClient,
  encodeFromFunction,
  statefunHandler,
  type InvocationResponse,
  type RemoteCall,
  type RemoteResult,
  type RemoteValue,
  type TypedValue,
} from '../../src/statefun/index.js';
import functions from '../fixtures/statefun-module.js';
import { listen, type Listening } from '../fixtures/statefun-http.js';
import { sdk, sdkDecodeKafka, sdkDecodeToFunction, sdkEncodeFromFunction, sdkUnwrap, sdkWrap } from '../fixtures/statefun-sdk.js';
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
    expect(err.message).toBe(`remote function remote/greeter (id "f") at ${server.url} failed after 3 attempts (maxRetries): HTTP 500`);
    await c.close();
  });
});

describe('against weft’s own endpoint', () => {
  it('drives statefunHandler like a runtime: handshake, state, replies', async () => {
    const weft = await listen(statefunHandler(functions));
    const c = new RemoteFunctionClient({ url: weft.url, timeoutMs: 5_000, maxRetries: 0 });
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
    // weft's endpoint answers 500 to what the runtime sends, as the SDKs do: retried (maxRetries 0 here).
    expect(missing.message).toMatch(/failed after 1 attempt \(maxRetries\): HTTP 500: "no function of type \\"shop\/none\\" is served/);
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

  it('retries 408, 409, 420, 429, 499 and 5xx like the runtime, and no other status', async () => {
    for (const status of [408, 409, 420, 429, 499, 500, 502, 503, 504, 599]) {
      const s = await scripted((_req, res, n) => {
        if (n === 1) res.writeHead(status).end('later');
        else res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(okAnswer);
      });
      const c = new RemoteFunctionClient({ url: s.url, timeoutMs: 5_000, backoffMs: 1 });
      expect(await c.invoke(call)).toEqual({ mutations: [], outgoing: [], delayed: [], egress: [] });
      expect([status, s.count(), c.retries]).toEqual([status, 2, 1]);
      await c.close();
      await s.close();
    }
    for (const status of [400, 401, 403, 404, 405, 410, 413, 415, 422, 302]) {
      const s = await scripted((_req, res) => res.writeHead(status).end('bad batch'));
      const c = new RemoteFunctionClient({ url: s.url, timeoutMs: 5_000, backoffMs: 1 });
      const err = await rejection(c.invoke(call));
      expect(err.message).toBe(`remote function x/y (id "1") at ${s.url} failed after 1 attempt: HTTP ${status}: "bad batch"`);
      expect([status, s.count()]).toEqual([status, 1]);
      await c.close();
      await s.close();
    }
  });

  it('retries within the call budget only (timeoutMs bounds attempts and backoff together)', async () => {
    const s = await scripted((_req, res) => res.writeHead(503).end('busy'));
    const c = new RemoteFunctionClient({ url: s.url, timeoutMs: 300, backoffMs: 5, maxBackoffMs: 40 });
    const started = performance.now();
    const err = await rejection(c.invoke(call));
    const took = performance.now() - started;
    expect(err.message).toMatch(/failed after \d+ attempts within its budget of 300 ms \(timeoutMs\): HTTP 503: "busy"$/);
    expect(s.count()).toBeGreaterThan(2);
    expect(c.retries).toBe(s.count() - 1);
    // Bounded by the budget (plus one attempt's round trip), not by a count of retries.
    expect(took).toBeGreaterThanOrEqual(290);
    await c.close();
    await s.close();
  });

  it('gives a hung attempt what is left of the budget, then fails the call', async () => {
    const held: ServerResponse[] = [];
    const s = await scripted((_req, res) => held.push(res));
    const c = new RemoteFunctionClient({ url: s.url, timeoutMs: 150, backoffMs: 1 });
    const err = await rejection(c.invoke(call));
    expect(err.message).toMatch(/failed after 1 attempt within its budget of 150 ms \(timeoutMs\): no complete answer within 150 ms \(what was left of the call's budget\)$/);
    expect(s.count()).toBe(1);
    await c.close();
    await s.close();
  });

  it('retries refused connections and names the URL', async () => {
    const s = await scripted(() => {});
    const url = s.url;
    await s.close();
    const c = new RemoteFunctionClient({ url, timeoutMs: 5_000, maxRetries: 2, backoffMs: 1 });
    const err = await rejection(c.invoke(call));
    expect(err.code).toBe('ERR_WEFT_REMOTE');
    expect(err.message).toMatch(new RegExp(`at ${url.replace(/[.]/g, '\\.')} failed after 3 attempts \\(maxRetries\\): request failed: .*ECONNREFUSED`));
    await c.close();
  });

  it('reads an empty FromFunction (and a 2xx without body) as a batch without side effects, like the runtime', async () => {
    // The Python SDK answers exactly this for a batch that writes no state and sends nothing.
    const s = await scripted((_req, res, n) => {
      if (n === 1) res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(new Uint8Array(0));
      else res.writeHead(204).end();
    });
    const c = new RemoteFunctionClient({ url: s.url, timeoutMs: 2_000 });
    expect(await c.invoke(call)).toEqual({ mutations: [], outgoing: [], delayed: [], egress: [] });
    expect(await c.invoke(call)).toEqual({ mutations: [], outgoing: [], delayed: [], egress: [] });
    expect(s.count()).toBe(2);
    await c.close();
    await s.close();
  });

  it('refuses malformed and oversized answers without retrying', async () => {
    const answers: Array<Uint8Array> = [Uint8Array.of(0xff, 0xff), new Uint8Array(2048), new Uint8Array(2048)];
    const s = await scripted((_req, res, n) => {
      const body = answers[n - 1] as Uint8Array;
      // The second answer declares its length; the third streams it (chunked) past the limit.
      if (n === 2) res.writeHead(200, { 'content-length': body.length }).end(body);
      else res.writeHead(200).end(body);
    });
    const c = new RemoteFunctionClient({ url: s.url, timeoutMs: 2_000, maxRetries: 3, backoffMs: 1, maxResponseBytes: 1024 });
    expect((await rejection(c.invoke(call))).message).toMatch(/answered a malformed FromFunction: malformed FromFunction: /);
    expect((await rejection(c.invoke(call))).message).toMatch(/failed after 1 attempt: the answer of 2048 bytes is over the limit of 1024 \(maxResponseBytes\)$/);
    expect((await rejection(c.invoke(call))).message).toMatch(/failed after 1 attempt: the answer is over the limit of 1024 bytes \(maxResponseBytes\)$/);
    expect(s.count()).toBe(3);
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

/** A FromFunction with these effects, encoded by the SDK's own classes. */
function answer(result: Partial<InvocationResponse>): Uint8Array {
  return sdkEncodeFromFunction({ kind: 'invocation-result', result: { stateMutations: [], outgoingMessages: [], delayedInvocations: [], outgoingEgresses: [], ...result } });
}

describe('answers read as strictly as the runtime reads them', () => {
  async function invokeWith(body: Uint8Array): Promise<RemoteResult> {
    const s = await scripted((_req, res) => res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(body));
    const c = new RemoteFunctionClient({ url: s.url, timeoutMs: 2_000 });
    c.registerSpecs('x/y', [{ name: 'n', typename: 'io.statefun.types/int' }]);
    try {
      return await c.invoke(call);
    } finally {
      await c.close();
      await s.close();
    }
  }
  const int = (typename: string, hasValue = true): TypedValue => ({ typename, hasValue, value: hasValue ? sdkWrap('Int', 7) : new Uint8Array(0) });

  it('applies MODIFY and DELETE of a registered state; MODIFY without has_value stores empty bytes, not a delete', async () => {
    const r = await invokeWith(
      answer({
        stateMutations: [
          { mutationType: 'MODIFY', stateName: 'n', stateValue: int('io.statefun.types/int') },
          { mutationType: 'MODIFY', stateName: 'n', stateValue: int('io.statefun.types/int', false) },
          { mutationType: 'DELETE', stateName: 'n', stateValue: null },
        ],
      }),
    );
    expect(r.mutations.map((m) => [m.name, m.value === null ? null : [m.value.typename, [...m.value.bytes]]])).toEqual([
      ['n', ['io.statefun.types/int', [...sdkWrap('Int', 7)]]],
      ['n', ['io.statefun.types/int', []]],
      ['n', null],
    ]);
  });

  it('refuses mutations of states no handshake registered, and of another typename', async () => {
    const undeclared = await rejection(invokeWith(answer({ stateMutations: [{ mutationType: 'MODIFY', stateName: 'other', stateValue: int('io.statefun.types/int') }] })));
    expect(undeclared.message).toMatch(/answered an unusable InvocationResponse: state mutation 0 is for state "other", which the function did not declare in a handshake$/);
    const deleted = await rejection(invokeWith(answer({ stateMutations: [{ mutationType: 'DELETE', stateName: 'other', stateValue: null }] })));
    expect(deleted.message).toMatch(/state mutation 0 is for state "other", which the function did not declare/);
    const retyped = await rejection(invokeWith(answer({ stateMutations: [{ mutationType: 'MODIFY', stateName: 'n', stateValue: int('io.statefun.types/long') }] })));
    expect(retyped.message).toMatch(/state mutation 0 writes state "n" as "io.statefun.types\/long", but it was declared as "io.statefun.types\/int"$/);
    // No typename (or no value at all) is the runtime's "unset" type: not the declared one either.
    const untyped = await rejection(invokeWith(answer({ stateMutations: [{ mutationType: 'MODIFY', stateName: 'n', stateValue: null }] })));
    expect(untyped.message).toMatch(/writes state "n" as "", but it was declared as "io.statefun.types\/int"$/);
    const malformed = await rejection(invokeWith(answer({ stateMutations: [{ mutationType: 'MODIFY', stateName: 'n', stateValue: int('io.statefun/types/int') }] })));
    expect(malformed.message).toMatch(/state mutation 0 of state "n": invalid StateFun typename "io.statefun\/types\/int"/);
  });

  it('refuses a delayed message with a negative delay (the runtime fails the invocation), and keeps 0', async () => {
    const target = { namespace: 'x', type: 'y', id: '2' };
    const argument = int('io.statefun.types/int');
    const negative = await rejection(
      invokeWith(answer({ delayedInvocations: [{ isCancellationRequest: false, cancellationToken: '', delayInMs: -5, target, argument }] })),
    );
    expect(negative.message).toMatch(/answered an unusable InvocationResponse: delayed message 0 has a negative delay \(-5 ms\)$/);
    const zero = await invokeWith(answer({ delayedInvocations: [{ isCancellationRequest: false, cancellationToken: '', delayInMs: 0, target, argument }] }));
    expect(zero.delayed.map((d) => d.delayMs)).toEqual([0]);
  });

  it('learns a spec with an unknown expiration mode as one that never expires, and refuses an invalid typename', async () => {
    const state = new Map<string, RemoteValue>();
    const s = await scripted((_req, res, n) => {
      const body =
        n === 1
          ? sdkEncodeFromFunction({ kind: 'incomplete-invocation-context', missingValues: [{ stateName: 'v', typeTypename: 'a/b', expirationSpec: { mode: 'AFTER_WRITE', expireAfterMillis: 1 } }] })
          : answer({});
      res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(body);
    });
    const d = new RemoteFunctionClient({ url: s.url, timeoutMs: 2_000 });
    await d.invoke({ ...call, state });
    expect(d.specsOf('x/y')).toEqual([{ name: 'v', typename: 'a/b', expireAfterWrite: 1 }]);
    await d.close();
    await s.close();
    // The SDK's classes cannot write an unknown enum number: patch the mode byte (AFTER_WRITE = 1) to 5.
    const unknownMode = await scripted((_req, res, n) => {
      const body = sdkEncodeFromFunction({ kind: 'incomplete-invocation-context', missingValues: [{ stateName: 'v', typeTypename: 'a/b', expirationSpec: { mode: 'AFTER_WRITE', expireAfterMillis: 1 } }] });
      const i = Buffer.from(body).indexOf(Buffer.from([0x08, 0x01, 0x10, 0x01]));
      expect(i).toBeGreaterThan(0);
      body[i + 1] = 5;
      res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(n === 1 ? body : answer({}));
    });
    const e = new RemoteFunctionClient({ url: unknownMode.url, timeoutMs: 2_000 });
    await e.invoke({ ...call, state });
    expect(e.specsOf('x/y')).toEqual([{ name: 'v', typename: 'a/b' }]);
    await e.close();
    await unknownMode.close();
    const badType = await scripted((_req, res) =>
      res.writeHead(200).end(sdkEncodeFromFunction({ kind: 'incomplete-invocation-context', missingValues: [{ stateName: 'v', typeTypename: 'a/b/c', expirationSpec: null }] })),
    );
    const f = new RemoteFunctionClient({ url: badType.url, timeoutMs: 2_000 });
    expect((await rejection(f.invoke(call))).message).toMatch(/reported state "v" with an invalid type: invalid StateFun typename "a\/b\/c"/);
    await f.close();
    await badType.close();
  });
});

describe('state specs after a restart (a new client)', () => {
  /** The functions' server, recording the state each request carried. */
  async function recording(): Promise<Listening & { carried: Array<Array<[string, boolean]>> }> {
    const handler = sdkFunctions().handler() as (req: IncomingMessage, res: ServerResponse) => Promise<void>;
    const carried: Array<Array<[string, boolean]>> = [];
    const l = await listen((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        const batch = sdkDecodeToFunction(body).invocation!;
        carried.push(batch.state.map((p) => [p.stateName, p.stateValue?.hasValue === true]));
        // Hand the SDK the same bytes.
        const replay = Readable.from([body]) as unknown as IncomingMessage;
        void handler(replay, res);
      });
    });
    return Object.assign(l, { carried });
  }

  it('sends no state until a handshake registers it, so a new client learns specs and TTLs again, as the runtime does after a restore', async () => {
    const s = await recording();
    const state = new Map<string, RemoteValue>();
    const first = new RemoteFunctionClient({ url: s.url, timeoutMs: 5_000 });
    apply(state, await first.invoke({ target: { type: 'remote/greeter', id: 'r' }, invocations: [{ caller: null, ...str('Ann') }], state }));
    await first.close();
    expect([...state.keys()].sort()).toEqual(['name', 'profile', 'seen']);

    // A restarted engine: stored state, a client that knows no spec. The stored values are not
    // sent as if registered; the function lists its specs (with their TTLs) and gets them then.
    s.carried.length = 0;
    const again = new RemoteFunctionClient({ url: s.url, timeoutMs: 5_000 });
    const r = await again.invoke({
      target: { type: 'remote/greeter', id: 'r' },
      invocations: [{ caller: null, ...str('Bob') }],
      state,
      // 'name' (expireAfterWrite 1000 ms) has expired meanwhile: it goes as absent.
      isExpired: (name, spec) => name === 'name' && spec.expireAfterWrite === 1000,
    });
    expect(s.carried).toEqual([
      [],
      [
        ['seen', true],
        ['name', false],
        ['profile', true],
      ],
    ]);
    expect(again.specsOf('remote/greeter').map((sp) => [sp.name, sp.expireAfterWrite, sp.expireAfterCall])).toEqual([
      ['seen', undefined, undefined],
      ['name', 1000, undefined],
      ['profile', undefined, 2000],
    ]);
    apply(state, r);
    expect(sdkUnwrap('Int', state.get('seen')!.bytes)).toBe(2);
    // States of other names (no spec registered) are never sent.
    state.set('stale', { typename: 'io.statefun.types/int', bytes: sdkWrap('Int', 1) });
    s.carried.length = 0;
    await again.invoke({ target: { type: 'remote/greeter', id: 'r' }, invocations: [{ caller: null, ...str('Cy') }], state });
    expect(s.carried.map((c) => c.map(([name]) => name))).toEqual([['seen', 'name', 'profile']]);
    await again.close();
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
