/**
 * The tail probe's function (tail-probe.ts): an int counter per id, like counter.ts, whose reply
 * is the moment the shard invoked it (ms on the process's monotonic clock, which every thread
 * reads alike), so the probe can split each request's latency at the shard.
 */
import { defineModule, type } from '../../src/index.js';
import { monotonicMs } from '../lib/tail.js';
import { tagThread } from './thread-tag.js';

tagThread('shard');

export const STAMP = 'bench/stamp';

export default defineModule({
  functions: {
    [STAMP]: {
      state: { count: type.int() },
      fn(ctx) {
        ctx.state.count = (ctx.state.count ?? 0) + 1;
        ctx.reply(monotonicMs());
      },
    },
  },
});
