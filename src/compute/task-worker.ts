/**
 * Compute pool worker (piscina): runs one stateless task — a named export of the module's
 * compute file — per call. Boots nothing else.
 */
import { workerData } from 'node:worker_threads';
import { WeftError, describe, serializeError, type SerializedError } from '../core/errors.js';

const { computeUrl } = workerData as { computeUrl: string };
let tasks: Promise<Record<string, unknown>> | undefined;

/** The result travels back as data; an error as a plain serialized error (rebuilt by the shard). */
export default async function run({ task, input }: { task: string; input: unknown }): Promise<{ ok: true; value: unknown } | { ok: false; error: SerializedError }> {
  try {
    tasks ??= import(computeUrl) as Promise<Record<string, unknown>>;
    const ns = await tasks;
    const fn = Object.hasOwn(ns, task) ? ns[task] : undefined;
    if (typeof fn !== 'function') {
      const names = Object.keys(ns).filter((k) => typeof ns[k] === 'function');
      throw new WeftError('ERR_WEFT_COMPUTE', `ctx.compute: the compute file has no task named ${describe(task)} (its tasks: ${names.map((n) => JSON.stringify(n)).join(', ') || 'none'})`);
    }
    return { ok: true, value: await (fn as (input: unknown) => unknown)(input) };
  } catch (err) {
    return { ok: false, error: serializeError(err) };
  }
}
