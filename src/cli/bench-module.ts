/**
 * The function module `weft bench` runs: one counter per id. The message value says whether to
 * answer, so the throughput phase measures the engine (route, invoke, state write, checkpoint)
 * without encoding replies nobody waits for, and the latency phase gets a reply to time.
 */
import { defineModule } from '../module/definition.js';
import { type } from '../codec/types.js';

/** Message values of `bench/counter`. */
export const INCREMENT = 0;
export const INCREMENT_AND_REPLY = 1;

export default defineModule({
  functions: {
    'bench/counter': {
      state: { count: type.int() },
      fn(ctx, msg) {
        const count = (ctx.state.count ?? 0) + 1;
        ctx.state.count = count;
        if (msg.value === INCREMENT_AND_REPLY) ctx.reply(count);
      },
    },
  },
});
