/**
 * weft's StateFun endpoint (`statefunHandler`) driven like a StateFun runtime drives it: requests
 * built with the official SDK's generated protobuf classes, answers decoded with them, and where
 * the SDK can serve the same function, its answer compared byte for byte with weft's.
 */
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WeftError } from '../../src/core/errors.js';
import { defineModule, type } from '../../src/index.js';
import {
  KAFKA_PRODUCER_RECORD_TYPENAME,
  KINESIS_EGRESS_RECORD_TYPENAME,
  createStatefunInvoker,
  kafkaEgressRecord,
  kinesisEgressRecord,
  statefunHandler,
  type FromFunction,
  type InvocationResponse,
  type PbAddress,
  type PersistedValue,
  type ToFunction,
  type TypedValue,
} from '../../src/statefun/index.js';
import functions, { ECHO_TYPES, Reversed } from '../fixtures/statefun-module.js';
import { listen, postStatefun, rawRequest, type Listening } from '../fixtures/statefun-http.js';
import { sdk, sdkDecodeFromFunction, sdkDecodeKafka, sdkDecodeKinesis, sdkEncodeToFunction, sdkUnwrap, sdkWrap, type WrapperKind } from '../fixtures/statefun-sdk.js';

const { StateFun, messageBuilder, kafkaEgressMessage, kinesisEgressMessage } = sdk;

// ---------------------------------------------------------------------------------------------
// Request building (SDK classes) and answer reading (SDK classes)
// ---------------------------------------------------------------------------------------------

/** `namespace/name` (exactly one `/`, as the runtime's TypeName.parseFrom requires) and an id. */
function addr(typename: string, id: string): PbAddress {
  const [namespace, type, ...rest] = typename.split('/');
  if (namespace === undefined || type === undefined || rest.length > 0) throw new Error(`addr: ${typename} is not namespace/name`);
  return { namespace, type, id };
}

function tv(typename: string, value: Uint8Array): TypedValue {
  return { typename, hasValue: true, value };
}

const none = (typename: string): TypedValue => ({ typename, hasValue: false, value: new Uint8Array(0) });
const str = (s: string): TypedValue => tv('io.statefun.types/string', sdkWrap('String', s));
const int = (n: number): TypedValue => tv('io.statefun.types/int', sdkWrap('Int', n));

interface Inv {
  caller?: PbAddress;
  arg: TypedValue;
}

function toFunction(target: PbAddress, state: PersistedValue[], invocations: Inv[]): Uint8Array {
  const msg: ToFunction = { invocation: { target, state, invocations: invocations.map((i) => ({ caller: i.caller ?? null, argument: i.arg })) } };
  return sdkEncodeToFunction(msg);
}

/** Every declared state of `fn` in the module, present with no value (the handshake is done). */
function emptyState(fn: string): PersistedValue[] {
  const spec = functions.functionSpec(fn);
  if (spec === undefined) throw new Error(`no ${fn}`);
  return spec.specs.map((s) => ({ stateName: s.name, stateValue: none(s.type.typename) }));
}

function result(answer: FromFunction): InvocationResponse {
  if (answer.kind !== 'invocation-result') throw new Error(`expected an invocation result, got ${answer.kind}`);
  return answer.result;
}

let weft: Listening;
let peer: Listening;
let failures: Array<{ error: WeftError; status: number }> = [];

/** The SDK serving the same counter as the fixture module's `shop/counter`. */
function sdkCounter(): InstanceType<typeof StateFun> {
  const sf = new StateFun();
  sf.bind({
    typename: 'shop/counter',
    specs: [
      { name: 'count', type: StateFun.intType() },
      { name: 'seen', type: StateFun.stringType(), expireAfterWrite: 60_000 },
      { name: 'last', type: StateFun.jsonType('weft.types/json'), expireAfterCall: 5_000 },
    ],
    fn(ctx, msg) {
      if (msg.isString() && msg.asString() === 'reset') {
        ctx.storage.count = null;
        return;
      }
      const count = ((ctx.storage.count as number | null) ?? 0) + 1;
      ctx.storage.count = count;
      ctx.storage.seen = ctx.caller === null ? 'ingress' : `${ctx.caller.typename}:${ctx.caller.id}`;
      if (ctx.caller !== null) ctx.send(messageBuilder({ typename: ctx.caller.typename, id: ctx.caller.id, value: count, valueType: StateFun.intType() }));
    },
  });
  return sf;
}

beforeAll(async () => {
  weft = await listen(
    statefunHandler(functions, {
      maxBodyBytes: 64 * 1024,
      // Long enough for a loaded 2-core machine to load the compute file on first use (200 ms was
      // not, twice); the stuck-batch test waits for it once.
      batchTimeoutMs: 2_000,
      onError: (error, status) => failures.push({ error, status }),
    }),
  );
  peer = await listen(sdkCounter().handler() as never);
});

afterAll(async () => {
  await weft?.close();
  await peer?.close();
});

async function call(body: Uint8Array, url = weft.url): Promise<{ bytes: Buffer; answer: FromFunction }> {
  const res = await postStatefun(url, body);
  expect(res.status, res.text).toBe(200);
  expect(res.headers['content-type']).toBe('application/octet-stream');
  return { bytes: res.body, answer: sdkDecodeFromFunction(res.body) };
}

// ---------------------------------------------------------------------------------------------

describe('the missing-state handshake', () => {
  it('lists every absent spec with its typename and TTL, byte for byte as the SDK does', async () => {
    const body = toFunction(addr('shop/counter', 'a'), [], [{ arg: str('hi') }]);
    const ours = await call(body);
    const theirs = await call(body, peer.url);
    expect(ours.answer).toEqual({
      kind: 'incomplete-invocation-context',
      missingValues: [
        { stateName: 'count', typeTypename: 'io.statefun.types/int', expirationSpec: null },
        { stateName: 'seen', typeTypename: 'io.statefun.types/string', expirationSpec: { mode: 'AFTER_WRITE', expireAfterMillis: 60_000 } },
        { stateName: 'last', typeTypename: 'weft.types/json', expirationSpec: { mode: 'AFTER_INVOKE', expireAfterMillis: 5_000 } },
      ],
    });
    expect(ours.bytes.toString('hex')).toBe(theirs.bytes.toString('hex'));
  });

  it('lists only the specs that are absent; present-but-empty ones count as present', async () => {
    const body = toFunction(addr('shop/counter', 'a'), [{ stateName: 'count', stateValue: none('io.statefun.types/int') }, { stateName: 'unknown', stateValue: null }], [{ arg: str('hi') }]);
    const { answer } = await call(body);
    expect(answer.kind === 'incomplete-invocation-context' && answer.missingValues.map((m) => m.stateName)).toEqual(['seen', 'last']);
  });
});

describe('invocation batches', () => {
  it('runs a batch in order with state visible across it, and answers exactly like the SDK', async () => {
    const state: PersistedValue[] = [
      { stateName: 'count', stateValue: int(5) },
      { stateName: 'seen', stateValue: none('io.statefun.types/string') },
      { stateName: 'last', stateValue: none('weft.types/json') },
    ];
    const body = toFunction(addr('shop/counter', 'a'), state, [
      { caller: addr('bank/teller', 't1'), arg: str('x') },
      { arg: str('y') },
      // An embedded Java function may have a "/" in its namespace: its address goes back as it came.
      { caller: { namespace: 'deep/ns', type: 'fn', id: 'z' }, arg: str('z') },
    ]);
    const ours = await call(body);
    const theirs = await call(body, peer.url);
    expect(ours.bytes.toString('hex')).toBe(theirs.bytes.toString('hex'));
    const r = result(ours.answer);
    expect(r.stateMutations.map((m) => [m.mutationType, m.stateName])).toEqual([
      ['MODIFY', 'count'],
      ['MODIFY', 'seen'],
    ]);
    expect(sdkUnwrap('Int', r.stateMutations[0]!.stateValue!.value)).toBe(8);
    expect(sdkUnwrap('String', r.stateMutations[1]!.stateValue!.value)).toBe('deep/ns/fn:z');
    // ctx.reply goes to the caller; the invocation without a caller has no one to answer.
    expect(r.outgoingMessages.map((o) => [o.target, sdkUnwrap('Int', o.argument!.value)])).toEqual([
      [{ namespace: 'bank', type: 'teller', id: 't1' }, 6],
      [{ namespace: 'deep/ns', type: 'fn', id: 'z' }, 8],
    ]);
    expect(r.delayedInvocations).toEqual([]);
    expect(r.outgoingEgresses).toEqual([]);
  });

  it('answers DELETE for a deleted value and nothing for states left alone', async () => {
    const state: PersistedValue[] = [
      { stateName: 'count', stateValue: int(3) },
      { stateName: 'seen', stateValue: str('before') },
      { stateName: 'last', stateValue: tv('weft.types/json', Buffer.from('{"n":1}')) },
    ];
    const { answer } = await call(toFunction(addr('shop/counter', 'a'), state, [{ arg: str('reset') }]));
    expect(result(answer).stateMutations).toEqual([{ mutationType: 'DELETE', stateName: 'count', stateValue: null }]);
  });

  it('writes after a delete in the same batch, and deletes of absent values are no mutation', async () => {
    const { answer } = await call(toFunction(addr('shop/counter', 'a'), emptyState('shop/counter'), [{ arg: str('reset') }]));
    expect(result(answer).stateMutations).toEqual([]);
    const again = await call(toFunction(addr('shop/counter', 'a'), [...emptyState('shop/counter').slice(1), { stateName: 'count', stateValue: int(9) }], [{ arg: str('reset') }, { arg: str('x') }]));
    const m = result(again.answer).stateMutations.find((x) => x.stateName === 'count');
    expect(m?.mutationType).toBe('MODIFY');
    expect(sdkUnwrap('Int', m!.stateValue!.value)).toBe(1);
  });

  it('awaits async functions one invocation at a time', async () => {
    const { answer } = await call(toFunction(addr('shop/slow', 's'), [{ stateName: 'n', stateValue: int(1) }], [{ arg: str('a') }, { arg: str('b') }]));
    const r = result(answer);
    expect(sdkUnwrap('Int', r.stateMutations[0]!.stateValue!.value)).toBe(21);
    expect(r.outgoingMessages.map((o) => sdkUnwrap('Int', o.argument!.value))).toEqual([1, 11]);
  });

  it('runs ctx.compute in-process from the module compute file', async () => {
    const { answer } = await call(toFunction(addr('shop/compute', 'c'), [], [{ caller: addr('a/b', 'q'), arg: int(21) }]));
    expect(result(answer).outgoingMessages.map((o) => [o.target, sdkUnwrap('Int', o.argument!.value)])).toEqual([[{ namespace: 'a', type: 'b', id: 'q' }, 42]]);
  });
});

describe('delayed messages and cancellations', () => {
  it('reports sendAfter (with and without token) and cancelDelayed in call order', async () => {
    const { answer } = await call(toFunction(addr('shop/timer', 'k'), [], [{ arg: str('go') }, { arg: str('cancel') }, { arg: str('go') }]));
    const tick = { target: { namespace: 'shop', type: 'counter', id: 'x' }, delayInMs: 1500, cancellationToken: 't1', isCancellationRequest: false };
    const later = { target: { namespace: 'shop', type: 'timer', id: 'k' }, delayInMs: 20, cancellationToken: '', isCancellationRequest: false };
    const cancel = { target: null, argument: null, delayInMs: 0, cancellationToken: 't1', isCancellationRequest: true };
    const d = result(answer).delayedInvocations;
    expect(d.map(({ argument, ...rest }) => (rest.isCancellationRequest ? { argument, ...rest } : rest))).toEqual([tick, later, cancel, tick, later]);
    expect(sdkUnwrap('String', d[0]!.argument!.value)).toBe('tick');
    expect(sdkUnwrap('String', d[1]!.argument!.value)).toBe('later');
  });

  it('fails the batch when a pending token of the same batch is reused', async () => {
    failures = [];
    const res = await postStatefun(weft.url, toFunction(addr('shop/timer', 'k'), [], [{ arg: str('go') }, { arg: str('go') }]));
    expect(res.status).toBe(500);
    expect(res.text).toMatch(/cancellation token "t1"/);
    expect(failures[0]?.error.code).toBe('ERR_WEFT_USER_CODE');
    expect((failures[0]?.error.cause as WeftError).code).toBe('ERR_WEFT_DUPLICATE_TOKEN');
  });
});

describe('egress', () => {
  it('maps egress names to namespace/type and writes Kafka and Kinesis records as the SDK does', async () => {
    const { answer } = await call(toFunction(addr('shop/audit', 'a'), [], [{ arg: str('e1') }]));
    const e = result(answer).outgoingEgresses;
    expect(e.map((x) => [x.egressNamespace, x.egressType, x.argument?.typename])).toEqual([
      ['shop', 'log', 'weft.types/json'],
      ['shop', 'kafka', KAFKA_PRODUCER_RECORD_TYPENAME],
      ['shop', 'kinesis', KINESIS_EGRESS_RECORD_TYPENAME],
    ]);
    expect(JSON.parse(Buffer.from(e[0]!.argument!.value).toString())).toEqual({ line: 'e1' });
    expect(sdkDecodeKafka(e[1]!.argument!.value)).toEqual({ topic: 'audit', key: 'e1', valueBytes: new Uint8Array(Buffer.from('k:e1')) });
    expect(sdkDecodeKinesis(e[2]!.argument!.value)).toEqual({ stream: 'audit', partitionKey: 'e1', explicitHashKey: '', valueBytes: new Uint8Array(Buffer.from('s:e1')) });

    // The SDK's own egress helpers build the same TypedValues (typename, has_value, bytes).
    const box = (m: { typedValue: unknown }): TypedValue => {
      const b = m.typedValue as { getTypename(): string; getHasValue(): boolean; getValue_asU8(): Uint8Array };
      return { typename: b.getTypename(), hasValue: b.getHasValue(), value: new Uint8Array(b.getValue_asU8()) };
    };
    const sdkKafka = box(kafkaEgressMessage({ typename: 'shop/kafka', topic: 'audit', key: 'e1', value: 'k:e1' }));
    const sdkKinesis = box(kinesisEgressMessage({ typename: 'shop/kinesis', stream: 'audit', partitionKey: 'e1', value: 's:e1' }));
    expect(e[1]!.argument).toEqual(sdkKafka);
    expect(e[2]!.argument).toEqual(sdkKinesis);
    expect(kafkaEgressRecord({ topic: 'audit', key: 'e1', value: 'k:e1' })).toEqual(sdkKafka);
    expect(kinesisEgressRecord({ stream: 'audit', partitionKey: 'e1', value: 's:e1' })).toEqual(sdkKinesis);
  });

  it('builds records with a value type, and refuses what the egress cannot carry', () => {
    const rec = kafkaEgressRecord({ topic: 't', value: { a: 1 }, valueType: type.json() });
    expect(sdkDecodeKafka(rec.value)).toEqual({ topic: 't', key: '', valueBytes: new Uint8Array(Buffer.from('{"a":1}')) });
    expect(() => kafkaEgressRecord({ topic: '', value: 'x' })).toThrow(/topic must be a non-empty string/);
    expect(() => kafkaEgressRecord({ topic: 't', value: 12 as unknown as string })).toThrow(/value must be a Uint8Array or a string/);
    expect(() => kinesisEgressRecord({ stream: 's', partitionKey: '', value: 'x' })).toThrow(/partitionKey must be a non-empty string/);
  });
});

describe('value types byte for byte', () => {
  const msgpack = new Packr({ useRecords: false, variableMapSize: true });
  const cases: Array<{ state: keyof typeof ECHO_TYPES; typename: string; bytes: Uint8Array; sdk?: [WrapperKind, unknown] }> = [
    { state: 'i', typename: 'io.statefun.types/int', bytes: sdkWrap('Int', -123456), sdk: ['Int', -123456] },
    { state: 'i', typename: 'io.statefun.types/int', bytes: sdkWrap('Int', 0), sdk: ['Int', 0] },
    { state: 'l', typename: 'io.statefun.types/long', bytes: sdkWrap('Long', 2 ** 40 + 7), sdk: ['Long', 2 ** 40 + 7] },
    { state: 'l', typename: 'io.statefun.types/long', bytes: sdkWrap('Long', -5), sdk: ['Long', -5] },
    { state: 'f', typename: 'io.statefun.types/float', bytes: sdkWrap('Float', 1.5), sdk: ['Float', 1.5] },
    { state: 'f', typename: 'io.statefun.types/float', bytes: sdkWrap('Float', -0.25), sdk: ['Float', -0.25] },
    { state: 'd', typename: 'io.statefun.types/double', bytes: sdkWrap('Double', Math.PI), sdk: ['Double', Math.PI] },
    { state: 'b', typename: 'io.statefun.types/bool', bytes: sdkWrap('Boolean', true), sdk: ['Boolean', true] },
    { state: 'b', typename: 'io.statefun.types/bool', bytes: sdkWrap('Boolean', false), sdk: ['Boolean', false] },
    { state: 's', typename: 'io.statefun.types/string', bytes: sdkWrap('String', 'grüße 😀'), sdk: ['String', 'grüße 😀'] },
    { state: 'j', typename: 'weft.types/json', bytes: StateFun.jsonType('weft.types/json').serialize({ a: [1, 'x'], b: null }) },
    { state: 'm', typename: 'weft.types/msgpack', bytes: msgpack.pack({ a: 1, b: ['x', true], c: 2 ** 40 }) },
    { state: 'r', typename: 'io.statefun.types/raw', bytes: Uint8Array.of(0, 1, 2, 255) },
    { state: 'c', typename: 'test.types/reversed', bytes: StateFun.customType('test.types/reversed', (s: string) => Buffer.from(s), (b: Buffer) => b.toString()).serialize('olleh') },
  ];

  it.each(cases.map((c) => [`${c.typename} ${Buffer.from(c.bytes).toString('hex') || '(empty)'}`, c] as const))('%s survives state and messages unchanged', async (_name, c) => {
    const { answer } = await call(toFunction(addr('types/echo', 'e'), emptyState('types/echo'), [{ arg: tv(c.typename, c.bytes) }]));
    const r = result(answer);
    expect(r.stateMutations).toEqual([{ mutationType: 'MODIFY', stateName: c.state, stateValue: tv(c.typename, new Uint8Array(c.bytes)) }]);
    expect(r.outgoingMessages).toEqual([{ target: { namespace: 'peer', type: 'sink', id: c.state }, argument: tv(c.typename, new Uint8Array(c.bytes)) }]);
    if (c.sdk !== undefined) expect(sdkUnwrap(c.sdk[0], r.stateMutations[0]!.stateValue!.value)).toEqual(c.sdk[1]);
  });

  it('reads state values of every type written by the SDK', async () => {
    const state = cases.filter((c, i, all) => all.findIndex((x) => x.state === c.state) === i).map((c) => ({ stateName: c.state, stateValue: tv(c.typename, c.bytes) }));
    const { answer } = await call(toFunction(addr('types/echo', 'e'), state, [{ arg: tv('io.statefun.types/string', sdkWrap('String', 'x')) }]));
    // Only `s` was written (the message is a string); the other values were read intact.
    expect(result(answer).stateMutations.map((m) => m.stateName)).toEqual(['s']);
    expect(Reversed.decode(state.find((s) => s.stateName === 'c')!.stateValue.value)).toBe('hello');
  });
});

describe('failures', () => {
  it('fails the whole batch with 500 when an invocation throws, without a stack in the body', async () => {
    failures = [];
    const res = await postStatefun(weft.url, toFunction(addr('shop/fragile', 'f'), [{ stateName: 'n', stateValue: int(1) }], [{ arg: str('ok') }, { arg: str('boom') }, { arg: str('ok') }]));
    expect(res.status).toBe(500);
    expect(res.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(res.text).toMatch(/^function shop\/fragile \(id "f"\) failed: boom: refused\n$/);
    expect(res.text).not.toMatch(/\n\s+at /);
    expect(failures).toHaveLength(1);
    expect(failures[0]!.status).toBe(500);
    expect(failures[0]!.error.code).toBe('ERR_WEFT_USER_CODE');
    expect(String((failures[0]!.error.cause as Error).stack)).toMatch(/boom: refused/);
  });

  it('answers 500 when a batch does not finish within batchTimeoutMs', async () => {
    const res = await postStatefun(weft.url, toFunction(addr('shop/stuck', 's'), [], [{ arg: str('x') }]));
    expect(res.status).toBe(500);
    expect(res.text).toMatch(/did not finish within 2000 ms \(batchTimeoutMs\)/);
  });

  it('refuses state whose typename is not the declared one (500, as the SDKs answer)', async () => {
    const res = await postStatefun(weft.url, toFunction(addr('shop/slow', 's'), [{ stateName: 'n', stateValue: str('x') }], [{ arg: str('a') }]));
    expect(res.status).toBe(500);
    expect(res.text).toMatch(/state "n" of shop\/slow\/s arrived as "io.statefun.types\/string", but the function declares it as "io.statefun.types\/int"/);
  });

  it('refuses batches without a batch, a target or an argument (500)', async () => {
    const noBatch = await postStatefun(weft.url, sdkEncodeToFunction({ invocation: null }));
    expect([noBatch.status, noBatch.text]).toEqual([500, 'ToFunction carries no invocation batch (field 100 is missing)\n']);
    const noTarget = await postStatefun(weft.url, sdkEncodeToFunction({ invocation: { target: null, state: [], invocations: [] } }));
    expect([noTarget.status, noTarget.text]).toEqual([500, 'InvocationBatchRequest has no target address\n']);
    const noArg = await postStatefun(weft.url, sdkEncodeToFunction({ invocation: { target: addr('shop/counter', 'a'), state: [], invocations: [{ caller: null, argument: null }] } }));
    expect([noArg.status, noArg.text]).toEqual([500, 'invocation 0 of the batch for shop/counter has no argument value\n']);
  });
});

describe('HTTP protection', () => {
  const good = (): Uint8Array => toFunction(addr('shop/counter', 'a'), emptyState('shop/counter'), [{ arg: str('x') }]);

  async function stillServing(): Promise<void> {
    const res = await postStatefun(weft.url, good());
    expect(res.status).toBe(200);
    expect(sdkDecodeFromFunction(res.body).kind).toBe('invocation-result');
  }

  it('405 for methods other than POST', async () => {
    for (const method of ['GET', 'PUT', 'DELETE']) {
      const res = await rawRequest(weft.url, { method, headers: { 'content-type': 'application/octet-stream' } });
      expect(res.status).toBe(405);
      expect(res.headers['allow']).toBe('POST');
      expect(res.text).toBe(`method ${method} is not allowed: a StateFun endpoint accepts POST only\n`);
    }
    await stillServing();
  });

  it('415 for other content types', async () => {
    const json = await rawRequest(weft.url, { body: good(), headers: { 'content-type': 'application/json' } });
    expect([json.status, json.text]).toEqual([415, 'content type "application/json" is not supported: a StateFun request is application/octet-stream\n']);
    const missing = await rawRequest(weft.url, { body: good() });
    expect(missing.status).toBe(415);
    const withParams = await rawRequest(weft.url, { body: good(), headers: { 'content-type': 'Application/Octet-Stream; foo=bar' } });
    expect(withParams.status).toBe(200);
    await stillServing();
  });

  // Every status but 2xx makes the runtime retry the batch and then fail and restore its job; a
  // 4xx other than 408/409/420/429/499 fails the job at once (okhttp transport). So whatever the
  // runtime can send is answered 500 when it fails, as the SDKs do (see FAILURE_STATUS).
  it('500 for bodies over maxBodyBytes, declared or streamed', async () => {
    failures = [];
    const big = new Uint8Array(64 * 1024 + 1);
    const declared = await rawRequest(weft.url, { body: big, headers: { 'content-type': 'application/octet-stream' } });
    expect([declared.status, declared.text]).toEqual([500, `request body of ${big.length} bytes is over the limit of 65536 (maxBodyBytes)\n`]);
    const chunk = new Uint8Array(16 * 1024);
    const streamed = await rawRequest(weft.url, { chunks: [chunk, chunk, chunk, chunk, chunk], headers: { 'content-type': 'application/octet-stream' } });
    expect([streamed.status, streamed.text]).toEqual([500, 'request body of more than 65536 bytes is over the limit of 65536 (maxBodyBytes)\n']);
    expect(failures.map((f) => [f.status, f.error.code])).toEqual([
      [500, 'ERR_WEFT_TOO_LARGE'],
      [500, 'ERR_WEFT_TOO_LARGE'],
    ]);
    await stillServing();
  });

  it('accepts by default what the runtime sends: a 1000-message batch of 20 MiB (its limit is 32 MiB)', async () => {
    const server = await listen(statefunHandler(functions));
    try {
      const text = 'x'.repeat(21 * 1024);
      const body = toFunction(addr('shop/counter', 'big'), emptyState('shop/counter'), Array.from({ length: 1000 }, () => ({ arg: str(text) })));
      expect(body.byteLength).toBeGreaterThan(20 * 1024 * 1024);
      const res = await rawRequest(server.url, { body, headers: { 'content-type': 'application/octet-stream' }, timeoutMs: 30_000 });
      expect(res.status, res.text.slice(0, 200)).toBe(200);
      const r = result(sdkDecodeFromFunction(res.body));
      expect(sdkUnwrap('Int', r.stateMutations.find((m) => m.stateName === 'count')!.stateValue!.value)).toBe(1000);
    } finally {
      await server.close();
    }
  });

  it('500 for malformed protobuf', async () => {
    failures = [];
    const res = await postStatefun(weft.url, Uint8Array.of(0xa2, 0x06, 0x05, 0x0a, 0x03, 0x61));
    expect(res.status).toBe(500);
    expect(res.text).toMatch(/^malformed ToFunction: truncated protobuf input/);
    expect(failures.map((f) => [f.status, f.error.code])).toEqual([[500, 'ERR_WEFT_PROTOCOL']]);
    await stillServing();
  });

  it('500 for a function type the module does not define', async () => {
    const res = await postStatefun(weft.url, toFunction(addr('shop/nope', 'a'), [], [{ arg: str('x') }]));
    expect(res.status).toBe(500);
    expect(res.text).toMatch(/^no function of type "shop\/nope" is served by this endpoint \(served: "shop\/counter", "types\/echo", /);
    await stillServing();
  });

  it('keeps serving many concurrent requests after all of that', async () => {
    const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => postStatefun(weft.url, toFunction(addr('shop/counter', `c${i}`), emptyState('shop/counter'), [{ arg: str('x') }]))));
    expect(answers.map((a) => a.status)).toEqual(answers.map(() => 200));
  });
});

describe('hostile input', () => {
  const allowed = new Set(['ERR_WEFT_PROTOCOL', 'ERR_WEFT_UNKNOWN_FUNCTION', 'ERR_WEFT_TYPE_MISMATCH', 'ERR_WEFT_USER_CODE']);
  const invoke = createStatefunInvoker(functions, { batchTimeoutMs: 1_000 });

  async function settles(body: Uint8Array): Promise<void> {
    try {
      sdkDecodeFromFunction(await invoke(body));
    } catch (err) {
      expect(err).toBeInstanceOf(WeftError);
      expect(allowed.has((err as WeftError).code), (err as Error).message).toBe(true);
    }
  }

  it('answers or refuses random bytes with a request error, never anything else', async () => {
    await fc.assert(fc.asyncProperty(fc.uint8Array({ maxLength: 300 }), settles), { numRuns: 500 });
  });

  it('answers or refuses corrupted valid requests the same way', async () => {
    const valid = [
      toFunction(addr('shop/counter', 'a'), emptyState('shop/counter'), [{ caller: addr('a/b', 'c'), arg: str('x') }]),
      toFunction(addr('types/echo', 'e'), emptyState('types/echo'), [{ arg: tv('weft.types/json', Buffer.from('{"a":[1,2]}')) }]),
      toFunction(addr('shop/timer', 'k'), [], [{ arg: str('go') }]),
    ];
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...valid), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 3 }), async (body, edits) => {
        const bad = Uint8Array.from(body);
        for (const [at, value] of edits) bad[at % bad.length] = value;
        await settles(bad);
      }),
      { numRuns: 500 },
    );
  });
});

describe('options and the invoker', () => {
  it('validates options with messages that name them', () => {
    const f = defineModule({ functions: { 'a/b': { fn() {} } } });
    expect(() => statefunHandler(f, { maxBodyBytes: 0 })).toThrow('statefunHandler options.maxBodyBytes must be a positive integer (got 0)');
    expect(() => statefunHandler(f, { batchTimeoutMs: 1.5 })).toThrow('statefunHandler options.batchTimeoutMs must be a positive integer (got 1.5)');
    expect(() => statefunHandler(f, { bogus: 1 } as never)).toThrow('statefunHandler options has an unknown key "bogus"');
    expect(() => statefunHandler(f, { onError: 'no' as never })).toThrow('statefunHandler options.onError must be a function (got "no")');
  });

  it('serves without HTTP through createStatefunInvoker, with codes for each failure', async () => {
    const invoke = createStatefunInvoker(functions);
    const answer = sdkDecodeFromFunction(await invoke(toFunction(addr('shop/counter', 'a'), emptyState('shop/counter'), [{ arg: str('x') }])));
    expect(result(answer).stateMutations.map((m) => m.stateName)).toEqual(['count', 'seen']);
    await expect(invoke(Uint8Array.of(0xff))).rejects.toMatchObject({ code: 'ERR_WEFT_PROTOCOL' });
    await expect(invoke(toFunction(addr('x/y', 'a'), [], []))).rejects.toMatchObject({ code: 'ERR_WEFT_UNKNOWN_FUNCTION' });
    await expect(invoke(toFunction(addr('shop/fragile', 'f'), [{ stateName: 'n', stateValue: none('io.statefun.types/int') }], [{ arg: str('boom') }]))).rejects.toMatchObject({ code: 'ERR_WEFT_USER_CODE' });
  });

  it('lets functions send to any well-formed typename, and refuses malformed ones inside the function', async () => {
    const m = defineModule({
      functions: {
        'a/sender': {
          fn(ctx, msg) {
            ctx.send({ type: msg.as(type.string()), id: '1' }, 1, { type: type.int() });
          },
        },
      },
    });
    const invoke = createStatefunInvoker(m);
    const ok = sdkDecodeFromFunction(await invoke(toFunction(addr('a/sender', 's'), [], [{ arg: str('elsewhere/fn') }])));
    expect(result(ok).outgoingMessages[0]?.target).toEqual({ namespace: 'elsewhere', type: 'fn', id: '1' });
    await expect(invoke(toFunction(addr('a/sender', 's'), [], [{ arg: str('no-slash') }]))).rejects.toMatchObject({ code: 'ERR_WEFT_USER_CODE' });
  });
});
