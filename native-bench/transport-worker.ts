/**
 * Producer thread of native-bench/transport.ts. One worker per variant; each `{ go: n }` from the
 * main thread makes it send `n` messages the way its variant does, as fast as it can.
 */
import { type MessagePort, parentPort, workerData } from 'node:worker_threads';
import { Doorbell } from '../src/transport/doorbell.js';
import { FrameEncoder } from '../src/transport/framing.js';
import { Ring } from '../src/transport/ring.js';
import { BATCH, type BenchWorkerData, type MessageTuple, makeTuple } from './transport-message.js';

const data = workerData as BenchWorkerData;
if (parentPort === null) throw new Error('transport-worker must run in a worker thread');
const port: MessagePort = parentPort;

async function produceRing(n: number, ring: Ring, bell: Doorbell, encoder: FrameEncoder): Promise<void> {
  const { me, consumer } = data;
  if (me === undefined || consumer === undefined) throw new Error('ring variant needs bell indices');
  const batch: MessageTuple[] = [];
  for (let sent = 0; sent < n; ) {
    const count = Math.min(BATCH, n - sent);
    batch.length = 0;
    for (let i = 0; i < count; i++) batch.push(makeTuple(sent + i));
    const frame = encoder.encode(batch);
    while (!ring.tryWrite(frame)) {
      // Full: the engine's protocol (see Ring.requestRoom and Doorbell). Every frame is published
      // right after it is written, so nothing is staged here.
      if (ring.requestRoom(frame.length)) continue;
      bell.prepareSleep(me);
      // Ask again after announcing sleep (not just hasRoomFor): a request the consumer took and
      // answered before the announcement woke nobody.
      if (ring.requestRoom(frame.length)) {
        bell.cancelSleep(me);
        continue;
      }
      await bell.sleep(me);
    }
    sent += count;
    // One index store and at most one notify per frame of 256 messages.
    if (ring.publish()) bell.ring(consumer);
  }
}

function producePosts(n: number, target: MessagePort): void {
  switch (data.variant) {
    case 'post-one':
    case 'channel-one':
      for (let i = 0; i < n; i++) target.postMessage(makeTuple(i));
      return;
    case 'post-object':
      for (let i = 0; i < n; i++) target.postMessage({ type: 'bank/account', id: `acct-${i % 1000}`, v: 42 });
      return;
    case 'post-batch':
      for (let sent = 0; sent < n; ) {
        const count = Math.min(BATCH, n - sent);
        const batch: MessageTuple[] = [];
        for (let i = 0; i < count; i++) batch.push(makeTuple(sent + i));
        target.postMessage(batch);
        sent += count;
      }
      return;
    default:
      throw new Error(`unknown variant ${data.variant}`);
  }
}

const ring = data.ring === undefined ? undefined : Ring.attach(data.ring);
const bell = data.doorbell === undefined ? undefined : Doorbell.attach(data.doorbell);
const encoder = new FrameEncoder();
const channel = data.port;

// This listener also keeps the worker alive while it awaits Atomics.waitAsync.
port.on('message', (message: { go: number } | 'exit') => {
  if (message === 'exit') {
    port.close();
    channel?.close();
    return;
  }
  if (ring !== undefined && bell !== undefined) {
    // The ring variant posts nothing else, so the main thread reads any message as a failure.
    produceRing(message.go, ring, bell, encoder).catch((error: unknown) => {
      port.postMessage({ failed: error instanceof Error ? (error.stack ?? error.message) : String(error) });
    });
  } else {
    producePosts(message.go, channel ?? port);
  }
});
