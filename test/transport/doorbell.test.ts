import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { expectWeftError } from '../helpers/index.js';
import { Doorbell } from '../../src/transport/doorbell.js';
import { Ring } from '../../src/transport/ring.js';
import {
  CHECKSUM_SEED,
  type ProducerData,
  type ProducerReport,
  type ProducerResult,
  foldBytes,
  frameLength,
  frameSeq,
} from '../fixtures/transport-frames.js';

const PRODUCER_URL = new URL('../../dist/test/fixtures/transport-producer.js', import.meta.url);

const workers: Worker[] = [];
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.terminate()));
});

function startProducer(data: ProducerData): { worker: Worker; report: Promise<ProducerResult> } {
  if (!existsSync(fileURLToPath(PRODUCER_URL))) {
    throw new Error(`${fileURLToPath(PRODUCER_URL)} is missing: run \`npm run build\` before these tests`);
  }
  const worker = new Worker(PRODUCER_URL, { workerData: data });
  workers.push(worker);
  const report = new Promise<ProducerResult>((resolve, reject) => {
    worker.once('message', (r: ProducerReport) => (r.ok ? resolve(r.result) : reject(new Error(r.error))));
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`producer exited with code ${code} before reporting`)));
  });
  return { worker, report };
}

interface ConsumeResult {
  frames: number;
  checksum: number;
  sleeps: number;
  timeouts: number;
  roomRings: number;
}

/**
 * The engine's consumer loop on this thread: drain with a budget, ring the producer back when it
 * waits for room, and sleep on our doorbell (announce, re-check, wait) when the ring is empty.
 * Checks order frame by frame; gives up with an error at `deadline`.
 */
async function consume(
  ring: Ring,
  bell: Doorbell,
  me: number,
  producer: number,
  expected: number,
  lengths: { min: number; max: number },
  options: { budget: number; deadline: number; sleepTimeoutMs: number },
): Promise<ConsumeResult> {
  let frames = 0;
  let checksum = CHECKSUM_SEED;
  let sleeps = 0;
  let timeouts = 0;
  let roomRings = 0;
  let failure: string | undefined;
  const onFrame = (frame: Uint8Array): void => {
    const seq = frameSeq(frame);
    if (failure === undefined && (seq !== frames || frame.length !== frameLength(seq, lengths.min, lengths.max))) {
      failure = `frame ${frames}: got seq ${seq} of ${frame.length} bytes`;
    }
    checksum = foldBytes(checksum, frame);
    frames++;
  };
  let turns = 0;
  while (frames < expected) {
    const n = ring.drain(onFrame, options.budget);
    if (failure !== undefined) throw new Error(failure);
    if (n > 0) {
      if (ring.takeRoomRequest() && bell.ring(producer)) roomRings++;
      // Let the event loop breathe now and then, as the shard loop does.
      if (++turns % 1024 === 0) await new Promise<void>((resolve) => setImmediate(resolve));
      continue;
    }
    if (Date.now() > options.deadline) throw new Error(`consumer gave up after ${frames} of ${expected} frames`);
    bell.prepareSleep(me);
    if (ring.hasData()) {
      bell.cancelSleep(me);
      continue;
    }
    sleeps++;
    if ((await bell.sleep(me, options.sleepTimeoutMs)) === 'timed-out') timeouts++;
  }
  return { frames, checksum, sleeps, timeouts, roomRings };
}

describe('Doorbell: single thread', () => {
  it('rings only a sleeping thread', async () => {
    const bell = Doorbell.create(3);
    expect(bell.count).toBe(3);
    expect(bell.ring(1)).toBe(false);
    bell.prepareSleep(1);
    expect(bell.isSleeping(1)).toBe(true);
    expect(bell.isSleeping(0)).toBe(false);
    expect(bell.ring(1)).toBe(true);
    expect(bell.ring(1)).toBe(false);
    // Rung between prepareSleep and sleep: sleep returns at once, the wake-up is not lost.
    expect(await bell.sleep(1, 10_000)).toBe('not-equal');
    bell.prepareSleep(2);
    bell.cancelSleep(2);
    expect(bell.ring(2)).toBe(false);
  });

  it('times out and leaves the bell awake', async () => {
    const bell = Doorbell.create(1);
    bell.prepareSleep(0);
    expect(await bell.sleep(0, 5)).toBe('timed-out');
    expect(bell.isSleeping(0)).toBe(false);
    expect(bell.ring(0)).toBe(false);
    bell.prepareSleep(0);
    expect(bell.sleepSync(0, 0)).toBe('timed-out');
    expect(bell.isSleeping(0)).toBe(false);
  });

  it('wakeAll settles every pending sleep (a discarded generation keeps nothing waiting)', async () => {
    const bell = Doorbell.create(3);
    bell.prepareSleep(0);
    bell.prepareSleep(2);
    const sleeps = [bell.sleep(0), bell.sleep(2)];
    bell.wakeAll();
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('a sleep without timeout was still pending 5 s after wakeAll()')), 5_000);
    });
    expect(await Promise.race([Promise.all(sleeps), bound]).finally(() => clearTimeout(timer))).toEqual(['ok', 'ok']);
    expect([bell.isSleeping(0), bell.isSleeping(1), bell.isSleeping(2)]).toEqual([false, false, false]);
  });

  it('sleepThen calls back once per sleep with the bell awake: rung before, rung during, timed out, wakeAll', async () => {
    const bell = Doorbell.create(2);
    const woken: Array<[string, boolean]> = [];
    const next = (label: string): Promise<void> =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`sleepThen (${label}) had not called back after 5 s`)), 5_000);
        bell.sleepThen(1, label === 'timeout' ? 5 : Number.POSITIVE_INFINITY, () => {
          clearTimeout(timer);
          woken.push([label, bell.isSleeping(1)]);
          resolve();
        });
      });
    // Rung between prepareSleep and sleepThen: the callback still comes (in a later microtask).
    bell.prepareSleep(1);
    expect(bell.ring(1)).toBe(true);
    let called = false;
    const before = next('rung before').then(() => (called = true));
    expect(called).toBe(false);
    await before;
    // Rung while waiting.
    bell.prepareSleep(1);
    const during = next('rung during');
    expect(bell.isSleeping(1)).toBe(true);
    expect(bell.ring(1)).toBe(true);
    await during;
    // Nobody rings.
    bell.prepareSleep(1);
    await next('timeout');
    // A discarded generation.
    bell.prepareSleep(1);
    const discarded = next('wakeAll');
    bell.wakeAll();
    await discarded;
    expect(woken).toEqual([
      ['rung before', false],
      ['rung during', false],
      ['timeout', false],
      ['wakeAll', false],
    ]);
    expect(bell.ring(1)).toBe(false);
    expectWeftError(() => bell.sleepThen(2, 1, () => {}), 'ERR_WEFT_INVALID_ARG', 'doorbell index must be an integer from 0 to 1 (got 2)');
    expectWeftError(() => bell.sleepThen(0, -1, () => {}), 'ERR_WEFT_INVALID_ARG', 'sleep timeout must be a number of milliseconds >= 0 (got -1)');
  });

  it('attaches to the same memory from a second object', () => {
    const a = Doorbell.create(2);
    const b = Doorbell.attach(a.buffer);
    a.prepareSleep(1);
    expect(b.isSleeping(1)).toBe(true);
    expect(b.ring(1)).toBe(true);
    expect(a.isSleeping(1)).toBe(false);
  });

  it.each([
    [0, 'doorbell count must be an integer from 1 to 4096 (got 0)'],
    [4097, 'doorbell count must be an integer from 1 to 4096 (got 4097)'],
    [1.5, 'doorbell count must be an integer from 1 to 4096 (got 1.5)'],
    ['2', 'doorbell count must be an integer from 1 to 4096 (got "2")'],
  ])('Doorbell.create(%j)', (count, message) => {
    expectWeftError(() => Doorbell.create(count as number), 'ERR_WEFT_INVALID_ARG', message);
  });

  it('validates indices, timeouts and buffers', () => {
    const bell = Doorbell.create(2);
    expectWeftError(() => bell.ring(2), 'ERR_WEFT_INVALID_ARG', 'doorbell index must be an integer from 0 to 1 (got 2)');
    expectWeftError(() => bell.prepareSleep(-1), 'ERR_WEFT_INVALID_ARG', 'doorbell index must be an integer from 0 to 1 (got -1)');
    expectWeftError(() => bell.cancelSleep(0.5), 'ERR_WEFT_INVALID_ARG', 'doorbell index must be an integer from 0 to 1 (got 0.5)');
    expectWeftError(
      () => bell.sleep(0, -1),
      'ERR_WEFT_INVALID_ARG',
      'sleep timeout must be a number of milliseconds >= 0 (got -1)',
    );
    expectWeftError(
      () => bell.sleepSync(0, Number.NaN),
      'ERR_WEFT_INVALID_ARG',
      'sleep timeout must be a number of milliseconds >= 0 (got NaN)',
    );
    expectWeftError(
      () => Doorbell.attach(new SharedArrayBuffer(128)),
      'ERR_WEFT_INVALID_ARG',
      'doorbell buffer has no doorbell header (magic 0x00000000, expected 0x44544657); create it with Doorbell.create',
    );
    expectWeftError(
      () => Doorbell.attach(Ring.create(64).buffer),
      'ERR_WEFT_INVALID_ARG',
      'doorbell buffer has no doorbell header (magic 0x52544657, expected 0x44544657); create it with Doorbell.create',
    );
    expectWeftError(
      () => Doorbell.attach(new SharedArrayBuffer(16)),
      'ERR_WEFT_INVALID_ARG',
      'doorbell buffer must be at least 128 bytes (got 16)',
    );
    expectWeftError(
      () => new Doorbell(new Uint8Array(128) as unknown as SharedArrayBuffer),
      'ERR_WEFT_INVALID_ARG',
      'doorbell buffer must be a SharedArrayBuffer (got Uint8Array(128))',
    );
  });
});

describe('Ring + Doorbell across threads', () => {
  const CONSUMER = 0;
  const PRODUCER = 1;

  it('wakes a sleeping consumer after a publish', async () => {
    const ring = Ring.create(4096);
    const bell = Doorbell.create(2);
    const { worker, report } = startProducer({
      ring: ring.buffer,
      doorbell: bell.buffer,
      me: PRODUCER,
      consumer: CONSUMER,
      frames: 1,
      minLength: 16,
      maxLength: 16,
      batch: 1,
      sleepTimeoutMs: 5_000,
    });
    await new Promise<void>((resolve) => worker.once('online', resolve));
    bell.prepareSleep(CONSUMER);
    expect(ring.hasData()).toBe(false);
    // Start waiting before the producer can possibly publish, so the 'ok' path is exercised.
    const woken = bell.sleep(CONSUMER, 2_000);
    const started = Date.now();
    worker.postMessage('start');
    expect(await woken).toBe('ok');
    // Generous bound, not a latency measurement: a missed notify would end in 'timed-out'.
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(ring.hasData()).toBe(true);
    const frames: Uint8Array[] = [];
    ring.drain((f) => frames.push(f.slice()));
    expect(frames.map(frameSeq)).toEqual([0]);
    const result = await report;
    expect(result.notifies).toBe(1);
  });

  it('reports a full ring, and after the consumer rings back delivers everything in order', async () => {
    const ring = Ring.create(1024);
    const bell = Doorbell.create(2);
    const frames = 20_000;
    const lengths = { min: 4, max: 200 };
    const { worker, report } = startProducer({
      ring: ring.buffer,
      doorbell: bell.buffer,
      me: PRODUCER,
      consumer: CONSUMER,
      frames,
      minLength: lengths.min,
      maxLength: lengths.max,
      batch: 8,
      sleepTimeoutMs: 5_000,
    });
    worker.postMessage('start');
    // A tiny drain budget keeps the ring full most of the time.
    const got = await consume(ring, bell, CONSUMER, PRODUCER, frames, lengths, {
      budget: 2,
      deadline: Date.now() + 20_000,
      sleepTimeoutMs: 5_000,
    });
    const sent = await report;
    expect(got.frames).toBe(frames);
    expect(got.checksum).toBe(sent.checksum);
    expect(sent.fullCount).toBeGreaterThan(0);
    expect(sent.timeouts).toBe(0);
    expect(got.timeouts).toBe(0);
    expect(ring.isEmpty()).toBe(true);
  }, 30_000);

  it('moves 5 million frames between two threads with checksum and order intact', async () => {
    const ring = Ring.create(1 << 16);
    const bell = Doorbell.create(2);
    const frames = 5_000_000;
    const lengths = { min: 4, max: 28 };
    const { worker, report } = startProducer({
      ring: ring.buffer,
      doorbell: bell.buffer,
      me: PRODUCER,
      consumer: CONSUMER,
      frames,
      minLength: lengths.min,
      maxLength: lengths.max,
      batch: 64,
      sleepTimeoutMs: 5_000,
    });
    const started = Date.now();
    worker.postMessage('start');
    const got = await consume(ring, bell, CONSUMER, PRODUCER, frames, lengths, {
      budget: 4096,
      deadline: started + 25_000,
      sleepTimeoutMs: 5_000,
    });
    const sent = await report;
    expect(got.frames).toBe(frames);
    expect(got.checksum).toBe(sent.checksum);
    expect(sent.timeouts).toBe(0);
    expect(got.timeouts).toBe(0);
    // Informational: how the doorbell was used on this run.
    console.log(
      `5M frames in ${Date.now() - started} ms; consumer slept ${got.sleeps}x, producer found the ring full ` +
        `${sent.fullCount}x and slept ${sent.sleeps}x; ${sent.notifies} consumer notifies, ${got.roomRings} room rings`,
    );
  }, 30_000);
});
