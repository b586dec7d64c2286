/**
 * Finding a task in a module's compute file, one way wherever tasks run: the compute pool's
 * threads, the test harness, and the StateFun and Restate endpoints (which run them in-process).
 */
import { WeftError, describe } from '../core/errors.js';

/** A compute task: a function the compute file exports, called with a task's input. */
export type ComputeTask = (input: unknown) => unknown;

/**
 * The task named `task` of a compute file, given the file's module namespace: its own export of
 * that name, if it is a function. Otherwise ERR_WEFT_COMPUTE, naming the task and the file's tasks.
 */
export function computeTask(tasks: Readonly<Record<string, unknown>>, task: string): ComputeTask {
  const fn = Object.hasOwn(tasks, task) ? tasks[task] : undefined;
  if (typeof fn === 'function') return fn as ComputeTask;
  // Sorted, as a real module namespace lists its keys (a TS-aware loader may hand over a plain object).
  const names = Object.keys(tasks).filter((k) => typeof tasks[k] === 'function').sort();
  throw new WeftError('ERR_WEFT_COMPUTE', `ctx.compute: the compute file has no task named ${describe(task)} (its tasks: ${names.map((n) => JSON.stringify(n)).join(', ') || 'none'})`);
}
