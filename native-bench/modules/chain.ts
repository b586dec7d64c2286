/**
 * Workload (b): function → function chains. A message's value is the number of hops left; the
 * instance counts the message (an int state update, as in (a)) and, while hops remain, sends
 * hops - 1 to its successor in the hop ring, which lives on another shard (ids.ts). The ring is
 * built for the shard count in WEFT_BENCH_CHAIN_SHARDS, which the host sets before it starts
 * the engine (worker threads copy the environment when they start).
 */
import { defineModule, type } from '../../src/index.js';
import { CHAIN_IDS, CHAIN_SHARDS_ENV, hopRing, successors } from './ids.js';
import { tagThread } from './thread-tag.js';

tagThread('shard');

export const HOP = 'bench/hop';

let next: Map<string, string> | undefined;

function successorOf(id: string): string {
  if (next === undefined) {
    const shards = Number(process.env[CHAIN_SHARDS_ENV] ?? '1');
    next = successors(hopRing(HOP, CHAIN_IDS, shards));
  }
  const to = next.get(id);
  if (to === undefined) throw new Error(`bench/hop: ${id} is not in the hop ring`);
  return to;
}

export default defineModule({
  functions: {
    [HOP]: {
      state: { count: type.int() },
      fn(ctx, msg) {
        ctx.state.count = (ctx.state.count ?? 0) + 1;
        const hops = msg.value as number;
        if (hops > 0) ctx.send({ type: HOP, id: successorOf(ctx.self.id) }, hops - 1);
      },
    },
  },
});
