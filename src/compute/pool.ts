/**
 * The compute tier: ONE piscina pool owned by the main thread, running stateless tasks for every
 * shard (`ctx.compute(task, input)`). A shard sends the call through its ring to main, main runs
 * it here and sends the result back through the shard's ring; the invocation that awaited it
 * resumes on its shard. Compute work is re-run when recovery replays the message, so tasks must
 * be pure.
 */
import { Piscina } from 'piscina';
import { WeftError, deserializeError, type SerializedError } from '../core/errors.js';
import { compiledUrl, workerExecArgv } from '../internal/paths.js';

export class ComputePool {
  readonly #pool: Piscina;

  constructor(computeUrl: string, threads: number) {
    this.#pool = new Piscina({
      filename: compiledUrl('compute/task-worker.js').href,
      minThreads: 1,
      maxThreads: threads,
      // Several tasks per thread keep the pool busy while one awaits I/O (2.6x the tiny-task rate of
      // one task per thread on a 2-core machine).
      concurrentTasksPerWorker: 4,
      workerData: { computeUrl },
      ...(workerExecArgv() === undefined ? {} : { execArgv: workerExecArgv() as string[] }),
    });
  }

  /** Runs `task`; rejects with the task's error (rebuilt) or ERR_WEFT_COMPUTE. */
  async run(task: string, input: unknown): Promise<unknown> {
    let result: { ok: true; value: unknown } | { ok: false; error: SerializedError };
    try {
      result = (await this.#pool.run({ task, input })) as typeof result;
    } catch (cause) {
      throw new WeftError('ERR_WEFT_COMPUTE', `ctx.compute(${JSON.stringify(task)}) failed in the compute pool: ${(cause as Error).message}`, { cause });
    }
    if (!result.ok) throw deserializeError(result.error);
    return result.value;
  }

  get threads(): number {
    return this.#pool.threads.length;
  }

  get completed(): number {
    return this.#pool.completed;
  }

  async close(): Promise<void> {
    await this.#pool.destroy();
  }
}
