/**
 * Baseline (2), the actor thread: handles weft envelope tuples that arrive ONE PER postMessage,
 * from main (parentPort) or from the other actor threads (a MessagePort per peer), as described
 * in common.ts. Forwards chain hops to the owning peer with one post each; answers requests to
 * main with one post each.
 */
import { type MessagePort, parentPort, workerData } from 'node:worker_threads';
import { HOP } from '../modules/chain.js';
import { CHAIN_IDS, hopRing, successors } from '../modules/ids.js';
import { tagThread } from '../modules/thread-tag.js';
import { Counters, FIXINT, countHandled, shardOf, type Env } from './common.js';

tagThread('post-worker');

export interface PostWorkerData {
  me: number;
  threads: number;
  ctl: Int32Array;
}

const { me, threads, ctl } = workerData as PostWorkerData;
if (parentPort === null) throw new Error('post-worker must run in a worker thread');
const main: MessagePort = parentPort;
const state = new Counters();
const next = successors(hopRing(HOP, CHAIN_IDS, threads));
let peers: Array<MessagePort | null> = [];
const local: Env[] = [];

function handle(env: Env): void {
  const count = state.bump(env[1], env[2]);
  if (env[7] > 0) main.postMessage([env[7], count]);
  const hops = env[6][0] as number;
  if (env[1] === HOP && hops > 0) {
    const to = next.get(env[2]) as string;
    const fwd: Env = [0, HOP, to, env[1], env[2], env[5], FIXINT[hops - 1] as Uint8Array, 0, 0];
    const t = shardOf(HOP, to, threads);
    if (t === me) local.push(fwd);
    else (peers[t] as MessagePort).postMessage(fwd);
  }
}

function onMessage(m: unknown): void {
  handle(m as Env);
  let n = 1;
  while (local.length > 0) {
    handle(local.pop() as Env);
    n++;
  }
  countHandled(ctl, n);
}

main.on('message', (m: unknown) => {
  if (Array.isArray(m)) {
    onMessage(m);
    return;
  }
  const setup = m as { peers?: Array<MessagePort | null>; exit?: true };
  if (setup.peers !== undefined) {
    peers = setup.peers;
    for (const p of peers) p?.on('message', onMessage);
    main.postMessage('ready');
  } else if (setup.exit === true) {
    for (const p of peers) p?.close();
    main.close();
  }
});
