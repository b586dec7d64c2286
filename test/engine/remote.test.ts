/**
 * weft calling functions written with the official StateFun SDK (apache-flink-statefun), served
 * on 127.0.0.1: weft's shards act as the StateFun runtime for them.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Weft, type } from '../../src/index.js';
import { sdk } from '../fixtures/statefun-sdk.js';
import { listen, type Listening } from '../fixtures/statefun-http.js';
import { fixture, removeDir, take, tempDir, within } from './helpers.js';

const { StateFun, messageBuilder, egressMessageBuilder } = sdk;

function sdkFunctions(): InstanceType<typeof StateFun> {
  const sf = new StateFun();
  sf.bind({
    typename: 'remote/counter',
    specs: [
      { name: 'count', type: StateFun.intType() },
      { name: 'last', type: StateFun.stringType(), expireAfterWrite: 600_000 },
    ],
    fn(ctx, msg) {
      const text = msg.asString();
      const count = ((ctx.storage.count as number | null) ?? 0) + 1;
      ctx.storage.count = count;
      ctx.storage.last = text;
      if (ctx.caller !== null) {
        // To a weft function (or, for a host request, the reply).
        ctx.send(messageBuilder({ typename: ctx.caller.typename, id: ctx.caller.id, value: `count ${count}`, valueType: StateFun.stringType() }));
        if (ctx.caller.typename === 'local/collector') {
          ctx.sendAfter(30, messageBuilder({ typename: 'local/collector', id: ctx.caller.id, value: `delayed ${count}`, valueType: StateFun.stringType() }));
        }
      }
      ctx.send(egressMessageBuilder({ typename: 'remote/log', value: { count }, valueType: StateFun.jsonType('remote.types/log') }));
    },
  });
  return sf;
}

describe('remote StateFun functions called from weft', () => {
  let server: Listening;
  let calls = 0;
  const dataDir = tempDir('weft-remote-');

  beforeAll(async () => {
    const handler = sdkFunctions().handler() as (req: IncomingMessage, res: ServerResponse) => Promise<void>;
    server = await listen((req, res) => {
      calls++;
      void handler(req, res);
    });
  });
  afterAll(async () => {
    await server?.close();
    removeDir(dataDir);
  });

  const start = (): Promise<Weft> =>
    Weft.start({ module: fixture('remote-local'), dataDir, shards: 2, durability: 'process', remote: [{ functions: 'remote/*', url: server.url }] });

  it('keeps their state in weft, replies to requests, and carries messages both ways', async () => {
    let weft = await start();
    try {
      const str = { type: type.string() };
      await expect(weft.request({ type: 'remote/counter', id: 'a' }, 'hi', str)).resolves.toBe('count 1');
      await expect(weft.request({ type: 'remote/counter', id: 'a' }, 'again', str)).resolves.toBe('count 2');
      // State lives in weft's partitions, decoded by StateFun's typenames.
      expect(await weft.query({ type: 'remote/counter', id: 'a' })).toEqual({ count: 2, last: 'again' });
      // weft → remote → weft, plus a delayed message from the remote function.
      await weft.send({ type: 'local/collector', id: 'b' }, { ping: 'b' });
      const deadline = Date.now() + 10_000;
      let got: string[] = [];
      while (got.length < 2 && Date.now() < deadline) {
        await weft.idle();
        got = ((await weft.query({ type: 'local/collector', id: 'b' }))?.got as string[] | undefined) ?? [];
        if (got.length < 2) await new Promise((r) => setTimeout(r, 20));
      }
      expect(got).toEqual(['io.statefun.types/string:count 1', 'io.statefun.types/string:delayed 1']);
      expect(await weft.query({ type: 'remote/counter', id: 'b' })).toEqual({ count: 1, last: 'from weft' });
      // Egress from the remote function, decoded with the type the module declared.
      const logs = await take(weft.egress('remote/log'), 3);
      expect(logs).toEqual(expect.arrayContaining([{ count: 1 }, { count: 2 }]));
      expect(calls).toBeGreaterThanOrEqual(4);
    } finally {
      await weft.close();
    }
    // Remote state is checkpointed like any other: it survives a restart.
    weft = await start();
    try {
      await expect(within(weft.request({ type: 'remote/counter', id: 'a' }, 'third', { type: type.string() }), 10_000, 'request')).resolves.toBe('count 3');
    } finally {
      await weft.close();
    }
  });

  it('dead-letters messages when the endpoint is unreachable, and keeps running', async () => {
    const dir = tempDir('weft-remote-down-');
    const weft = await Weft.start({
      module: fixture('remote-local'),
      dataDir: dir,
      shards: 1,
      durability: 'process',
      retryBackoffMs: 1,
      maxAttempts: 2,
      remote: [{ functions: 'remote/*', url: 'http://127.0.0.1:9/statefun', timeoutMs: 500 }],
    });
    try {
      const err = await weft.request({ type: 'remote/counter', id: 'x' }, 'hi', { type: type.string(), timeoutMs: 60_000 }).catch((e: unknown) => e);
      expect((err as { code: string }).code).toBe('ERR_WEFT_REMOTE');
      const [letter] = await take(weft.egress('weft/dead-letters'), 1);
      expect((letter as { target: unknown }).target).toEqual({ type: 'remote/counter', id: 'x' });
      await weft.send({ type: 'local/collector', id: 'ok' }, 'still fine', { type: type.string() });
      expect(await weft.query({ type: 'local/collector', id: 'ok' })).toEqual({ got: ['io.statefun.types/string:still fine'] });
    } finally {
      await weft.close();
      removeDir(dir);
    }
  }, 60_000);
});
