/**
 * Workloads (a), (c), (d), (e), (f): one int counter per id. The message value is a small int:
 * {@link INCREMENT} only updates the state, {@link INCREMENT_AND_REPLY} also answers (for
 * `request()`), so throughput runs do not encode replies nobody waits for.
 */
import { defineModule, type } from '../../src/index.js';
import { tagThread } from './thread-tag.js';

tagThread('shard');

export const COUNTER = 'bench/counter';
export const INCREMENT = 0;
export const INCREMENT_AND_REPLY = 1;

export default defineModule({
  functions: {
    [COUNTER]: {
      state: { count: type.int() },
      fn(ctx, msg) {
        const count = (ctx.state.count ?? 0) + 1;
        ctx.state.count = count;
        if (msg.value === INCREMENT_AND_REPLY) ctx.reply(count);
      },
    },
  },
});
