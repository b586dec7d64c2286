/**
 * Compute pool worker (piscina): runs one stateless task — a named export of the module's
 * compute file — per call. Boots nothing else.
 */
import { workerData } from 'node:worker_threads';
import { serializeError, type SerializedError } from '../core/errors.js';
import { computeTask } from '../module/compute-task.js';

const { computeUrl } = workerData as { computeUrl: string };
let tasks: Promise<Record<string, unknown>> | undefined;

/** The result travels back as data; an error as a plain serialized error (rebuilt by the shard). */
export default async function run({ task, input }: { task: string; input: unknown }): Promise<{ ok: true; value: unknown } | { ok: false; error: SerializedError }> {
  try {
    tasks ??= import(computeUrl) as Promise<Record<string, unknown>>;
    const fn = computeTask(await tasks, task);
    return { ok: true, value: await fn(input) };
  } catch (err) {
    return { ok: false, error: serializeError(err) };
  }
}
