/**
 * Baseline (3), the shard thread: weft's raw transport with nothing of the engine on top. It
 * runs the shard loop's skeleton — drain every inbound ring (64 frames per ring per turn) and
 * decode each frame with weft's `decodeBatch`, handle the records (common.ts), flush outbound
 * batches (RingBatch), then yield to the event loop, or sleep on its doorbell with
 * `Atomics.waitAsync` when there is nothing to do — so its figure is the transport's ceiling.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { HOP } from '../modules/chain.js';
import { CHAIN_IDS, hopRing, successors } from '../modules/ids.js';
import { Doorbell } from '../../src/transport/doorbell.js';
import { decodeBatch } from '../../src/transport/framing.js';
import { Ring } from '../../src/transport/ring.js';
import { Counters, FIXINT, REPLY, countHandled, shardOf, type Env } from './common.js';
import { RingBatch } from './ring-batch.js';
import { tagThread } from '../modules/thread-tag.js';

tagThread('ring-worker');

export interface RingWorkerData {
  /** This thread's doorbell index (1 + k for worker k; main is 0). */
  me: number;
  /** Worker threads. */
  threads: number;
  /** Index t: ring from thread t to this one (null for itself). */
  inbound: Array<SharedArrayBuffer | null>;
  /** Index t: ring from this thread to thread t (null for itself). */
  outbound: Array<SharedArrayBuffer | null>;
  bells: SharedArrayBuffer;
  ctl: Int32Array;
}

const FRAMES_PER_RING_PER_TURN = 64;

const data = workerData as RingWorkerData;
if (parentPort === null) throw new Error('ring-worker must run in a worker thread');
const port = parentPort;
const { me, threads, ctl } = data;
const bells = Doorbell.attach(data.bells);
const inbound = data.inbound.map((b) => (b === null ? null : Ring.attach(b)));
const outbound = data.outbound.map((b, t) => (b === null ? null : new RingBatch(Ring.attach(b), t, bells)));
const toMain = outbound[0] as RingBatch;
const state = new Counters();
const next = successors(hopRing(HOP, CHAIN_IDS, threads));
const local: Env[] = [];
let handled = 0;
let closed = false;
let scheduled = false;

function handle(env: Env): void {
  handled++;
  const count = state.bump(env[1], env[2]);
  if (env[7] > 0) toMain.push([REPLY, env[7], count]);
  const hops = env[6][0] as number;
  if (env[1] === HOP && hops > 0) {
    const to = next.get(env[2]) as string;
    const fwd: Env = [0, HOP, to, env[1], env[2], env[5], FIXINT[hops - 1] as Uint8Array, 0, 0];
    const t = shardOf(HOP, to, threads);
    if (t === me - 1) local.push(fwd);
    else (outbound[1 + t] as RingBatch).push(fwd);
  }
}

function onFrame(frame: Uint8Array): void {
  const records = decodeBatch(frame) as unknown as Env[];
  for (let i = 0; i < records.length; i++) handle(records[i] as Env);
}

function schedule(): void {
  if (scheduled || closed) return;
  scheduled = true;
  setImmediate(turn);
}

function turn(): void {
  scheduled = false;
  let frames = 0;
  for (let r = 0; r < inbound.length; r++) {
    const ring = inbound[r];
    if (ring === null || ring === undefined) continue;
    const n = ring.drain(onFrame, FRAMES_PER_RING_PER_TURN);
    if (n > 0 && ring.takeRoomRequest()) bells.ring(r);
    frames += n;
  }
  while (local.length > 0) handle(local.pop() as Env);
  let blocked = false;
  for (const out of outbound) if (out !== null && out.flush()) blocked = true;
  countHandled(ctl, handled);
  handled = 0;
  if (frames > 0) {
    schedule();
    return;
  }
  bells.prepareSleep(me);
  if (inbound.some((r) => r !== null && r.hasData())) {
    bells.cancelSleep(me);
    schedule();
    return;
  }
  void bells.sleep(me, blocked ? 50 : Number.POSITIVE_INFINITY).then(schedule);
}

// Also keeps this worker alive while it sleeps in Atomics.waitAsync.
port.on('message', (m: unknown) => {
  if (m === 'exit') {
    closed = true;
    port.close();
  }
});
schedule();
port.postMessage('ready');
