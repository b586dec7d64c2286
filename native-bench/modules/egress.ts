/**
 * The egress benchmark (native-bench/egress.ts): the counter of workload (a), and the same
 * counter writing one egress record (its new count, an int) per message.
 */
import { defineModule, type } from '../../src/index.js';
import { tagThread } from './thread-tag.js';

tagThread('shard');

export const PLAIN = 'bench/plain-counter';
export const EGRESSING = 'bench/egress-counter';
export const EGRESS = 'bench/counts';

export default defineModule({
  functions: {
    [PLAIN]: {
      state: { count: type.int() },
      fn(ctx) {
        ctx.state.count = (ctx.state.count ?? 0) + 1;
      },
    },
    [EGRESSING]: {
      state: { count: type.int() },
      fn(ctx) {
        const count = (ctx.state.count ?? 0) + 1;
        ctx.state.count = count;
        ctx.egress(EGRESS, count);
      },
    },
  },
  egresses: [EGRESS],
});
