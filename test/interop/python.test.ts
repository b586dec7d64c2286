/**
 * weft as the StateFun runtime for functions written with the StateFun Python SDK
 * (apache-flink-statefun 3.3.0 from PyPI): interop/python/functions.py serves them over HTTP on
 * 127.0.0.1, and an engine started with `remote: [{ functions: 'py/*', url }]` calls them.
 *
 * Checked: state kept by weft across messages, replies to host requests and to a calling weft
 * function, delayed messages and a cancelled one, Kafka and Kinesis egress records through weft's
 * egress, the TTL a Python spec declares (also after weft restarts), and the everyday batch without effects, which the SDK answers with an EMPTY FromFunction
 * body (it must count as "no effects", not as an error).
 *
 * The suite keeps a virtualenv in interop/python/.venv (created, then pip-installed from
 * interop/python/requirements.txt; the first run downloads from PyPI). A missing Python or a failed
 * install fails the suite with the command's output; nothing is skipped.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Weft, type } from '../../src/index.js';
import { fixture, removeDir, take, tempDir, within } from '../engine/helpers.js';
import { ROOT, printOutputOnFailure, requireTool, run, startPeer, waitFor, type Peer } from './support.js';

const PY = join(ROOT, 'interop/python');
const VENV = join(PY, '.venv');
const PYTHON = join(VENV, 'bin/python');
const STR = { type: type.string() };

let server: Peer | undefined;
let weft: Weft | undefined;
const dataDir = tempDir('weft-interop-py-');

const inbox = async (id: string): Promise<string[]> => ((await weft!.query({ type: 'local/inbox', id }))?.got as string[] | undefined) ?? [];

/** Waits until the inbox `id` holds `n` messages. */
async function inboxOf(id: string, n: number): Promise<string[]> {
  return waitFor(`local/inbox ${id} to get ${n} messages`, 30_000, async () => {
    const got = await inbox(id);
    return got.length >= n ? got : undefined;
  }, server === undefined ? [] : [server], 20);
}

let url = '';
const startEngine = (): Promise<Weft> =>
  Weft.start({ module: fixture('interop-python-local'), dataDir, shards: 2, durability: 'process', remote: [{ functions: 'py/*', url }] });

const deadLetters = (): number => weft!.metrics().shards.reduce((s, m) => s + m.deadLetters, 0);

describe('weft as the runtime for the StateFun Python SDK 3.3.0', () => {
  beforeAll(async () => {
    requireTool('python3', ['--version'], 'Python 3.11 (python3 on PATH, with the venv module)');
    const t = Date.now();
    if (!existsSync(PYTHON)) run('python3', ['-m', 'venv', VENV], { ms: 120_000 });
    run(PYTHON, ['-m', 'pip', 'install', '--disable-pip-version-check', '-q', '-r', join(PY, 'requirements.txt')], { ms: 10 * 60_000 });
    console.log(`interop/python: venv and pip install took ${Date.now() - t} ms`);

    server = startPeer('StateFun Python SDK', PYTHON, ['-u', join(PY, 'functions.py'), '0']);
    const port = await waitFor('the Python endpoint to listen', 60_000, () => {
      for (const l of server!.lines) {
        const m = /^listening on (\d+)$/.exec(l);
        if (m !== null) return Number(m[1]);
      }
      return undefined;
    }, [server]);
    url = `http://127.0.0.1:${port}/statefun`;
    weft = await startEngine();
  });

  beforeEach((ctx) => printOutputOnFailure(ctx, () => (server === undefined ? [] : [server])));

  afterAll(async () => {
    await weft?.close();
    await server?.stop();
    removeDir(dataDir);
  });

  it('keeps their state in weft across messages and answers host requests', async () => {
    await expect(within(weft!.request({ type: 'py/counter', id: 'a' }, 'hi', STR), 30_000, 'request 1')).resolves.toBe('count 1');
    await expect(within(weft!.request({ type: 'py/counter', id: 'a' }, 'again', STR), 30_000, 'request 2')).resolves.toBe('count 2');
    expect(await weft!.query({ type: 'py/counter', id: 'a' })).toEqual({ count: 2, last: 'again' });
    expect(await weft!.query({ type: 'py/counter', id: 'other' })).toBeUndefined();
  });

  it('replies to a calling weft function, and sends it delayed messages', async () => {
    await weft!.send({ type: 'local/inbox', id: 'b' }, { to: 'py/counter', text: 'delay' });
    expect(await inboxOf('b', 2)).toEqual(['py/counter:count 1', 'py/counter:delayed 1']);
  });

  it('cancels a delayed message', async () => {
    // booked (due in 300 ms) is cancelled; later (due in 1 s) fires after it would have.
    await weft!.send({ type: 'local/inbox', id: 'c' }, { to: 'py/counter', text: 'book' });
    await weft!.send({ type: 'local/inbox', id: 'c' }, { to: 'py/counter', text: 'cancel' });
    await weft!.send({ type: 'local/inbox', id: 'c' }, { to: 'py/counter', text: 'later' });
    expect(await inboxOf('c', 4)).toEqual(['py/counter:count 1', 'py/counter:count 2', 'py/counter:count 3', 'py/counter:later']);
  });

  it('writes Kafka and Kinesis egress records through weft\'s egress', async () => {
    const kafka = weft!.egress('py/kafka')[Symbol.asyncIterator]();
    const kinesis = weft!.egress('py/kinesis')[Symbol.asyncIterator]();
    await weft!.send({ type: 'py/counter', id: 'e' }, 'kafka', STR);
    await weft!.send({ type: 'py/counter', id: 'e' }, 'kinesis', STR);
    const [k] = await take(kafka, 1, 30_000);
    const [s] = await take(kinesis, 1, 30_000);
    // Engine egress records are { id, value, ack() }.
    expect((k as { value: unknown }).value).toEqual({ topic: 'counts', key: 'e', value: new Uint8Array(Buffer.from('count 1')) });
    expect((s as { value: unknown }).value).toEqual({ stream: 'counts', partitionKey: 'e', value: new Uint8Array(Buffer.from('count 2')) });
  });

  it('expires state after the TTL the SDK declared, also across a weft restart', async () => {
    const memo = { type: 'py/memo', id: 'm' };
    const get = (): Promise<unknown> => within(weft!.request(memo, 'get', STR), 30_000, 'get');
    /** Asks every 250 ms until the note is gone; bounded well past the 1.5 s TTL. */
    const expired = (): Promise<true> =>
      waitFor('the note to expire (expireAfterWrite 1.5 s)', 30_000, async () => ((await get()) === 'none' ? true : undefined), [server!], 250);

    await weft!.send(memo, 'set:first', STR);
    // Read right after the write, well inside 1.5 s: still there.
    await expect(get()).resolves.toBe('first');
    await expired();

    // weft keeps the state; the TTL the SDK declared must survive a restart of the engine too.
    await weft!.send(memo, 'set:second', STR);
    await weft!.close();
    weft = await startEngine();
    await expired();
  });

  it('takes the SDK\'s empty answer to a batch without effects as "no effects"', async () => {
    const before = deadLetters();
    // The first call learns py/quiet's state spec (the handshake); every later batch has no effects.
    for (let i = 0; i < 3; i++) await within(weft!.send({ type: 'py/quiet', id: 'q' }, `x${i}`, STR), 30_000, `send ${i} to py/quiet`);
    await within(weft!.idle(), 30_000, 'idle');
    // The SDK really answered with empty bodies (so this is the case under test)...
    expect(server!.lines.filter((l) => l === 'answered 0 bytes').length).toBeGreaterThanOrEqual(2);
    // ...and weft took them as successes: nothing dead-lettered, no state written.
    expect(deadLetters()).toBe(before);
    expect(await weft!.query({ type: 'py/quiet', id: 'q' })).toBeUndefined();
  });
});
