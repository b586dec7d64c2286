/**
 * The three baselines, started once per suite run and shared by the workloads that compare
 * against them (their threads sleep while weft runs).
 */
import { InProcessDispatcher } from '../baselines/inprocess.js';
import { PostActors } from '../baselines/post.js';
import { RingActors } from '../baselines/ring.js';
import { HOP } from '../modules/chain.js';
import { CHAIN_IDS, hopRing, successors } from '../modules/ids.js';

/** Threads of the multi-threaded baselines: weft's shard count in the headline figures. */
export const BASELINE_THREADS = 2;

export interface Baselines {
  inProcess: InProcessDispatcher;
  post: PostActors;
  ring: RingActors;
}

let started: Promise<Baselines> | undefined;

export function baselines(): Promise<Baselines> {
  started ??= (async () => {
    // The same hop ring as weft's 2-shard run; in one thread every hop is simply local.
    const inProcess = new InProcessDispatcher(successors(hopRing(HOP, CHAIN_IDS, BASELINE_THREADS)));
    const [post, ring] = await Promise.all([PostActors.start(BASELINE_THREADS), RingActors.start(BASELINE_THREADS)]);
    return { inProcess, post, ring };
  })();
  return started;
}

export async function closeBaselines(): Promise<void> {
  if (started === undefined) return;
  const b = await started;
  started = undefined;
  await Promise.all([b.post.close(), b.ring.close()]);
}
