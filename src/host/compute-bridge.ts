/**
 * `ctx.compute` from a shard: main runs the task on the compute pool (compute/pool.ts) and sends
 * the result, or the error, back through that shard's ring as a COMPUTE_RESULT record.
 */
import { WeftError, serializeError } from '../core/errors.js';
import { DEFAULT_TYPE } from '../codec/types.js';
import { Kind } from '../contract/envelope.js';
import type { ComputePool } from '../compute/pool.js';
import type { Lifecycle } from './lifecycle.js';
import type { Router } from './router.js';
import type { ShardLink } from './shard-link.js';

export class ComputeBridge {
  /** Undefined when the module has no compute file, or computeThreads is 0. */
  readonly #pool: ComputePool | undefined;
  readonly #router: Router;
  readonly #life: Lifecycle;

  constructor(pool: ComputePool | undefined, router: Router, life: Lifecycle) {
    this.#pool = pool;
    this.#router = router;
    this.#life = life;
  }

  /** Is there a compute pool (the shards are told whether ctx.compute may run)? */
  get enabled(): boolean {
    return this.#pool !== undefined;
  }

  /** Runs a shard's compute call on the pool; the result goes back through that shard's ring. */
  run(link: ShardLink, callId: number, task: string, payload: Uint8Array): void {
    const generation = this.#life.generation;
    const reply = (ok: boolean, value: unknown): void => {
      // A recovery replaced the shard meanwhile: its invocation will run (and compute) again.
      if (!this.#life.isCurrent(generation)) return;
      link.out.push([Kind.ComputeResult, callId, ok, value], 64 + (value instanceof Uint8Array ? value.byteLength : 256));
      this.#router.scheduleFlush();
    };
    const pool = this.#pool;
    if (pool === undefined) {
      reply(false, serializeError(new WeftError('ERR_WEFT_COMPUTE', 'ctx.compute: the compute pool is disabled (computeThreads: 0)')));
      return;
    }
    let input: unknown;
    try {
      input = DEFAULT_TYPE.decode(payload);
    } catch (err) {
      reply(false, serializeError(err));
      return;
    }
    pool.run(task, input).then(
      (value) => {
        let bytes: Uint8Array;
        try {
          bytes = DEFAULT_TYPE.encode(value, `ctx.compute(${JSON.stringify(task)}) result`);
        } catch (err) {
          reply(false, serializeError(err));
          return;
        }
        reply(true, bytes);
      },
      (err: unknown) => reply(false, serializeError(err)),
    );
  }

  close(): Promise<void> {
    return this.#pool?.close() ?? Promise.resolve();
  }
}
