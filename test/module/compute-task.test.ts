/**
 * computeTask (src/module/compute-task.ts): the one lookup of a task in a compute file, used by the
 * compute pool, the test harness and the StateFun and Restate endpoints, with one error message.
 */
import { describe, expect, it } from 'vitest';
import { computeTask } from '../../src/module/compute-task.js';
import { WeftError } from '../../src/core/errors.js';
import { expectWeftError } from '../helpers/index.js';

const lookupError = (tasks: Record<string, unknown>, task: string): WeftError => expectWeftError(() => computeTask(tasks, task), 'ERR_WEFT_COMPUTE');

describe('computeTask', () => {
  it('returns the exported function of that name', async () => {
    const ns = Object.freeze({ __proto__: null, square: (n: unknown) => (n as number) ** 2, later: async () => 'done' });
    expect(computeTask(ns, 'square')(12)).toBe(144);
    await expect(computeTask(ns, 'later')(null)).resolves.toBe('done');
  });

  it('refuses a missing task with ERR_WEFT_COMPUTE naming it and the file tasks, sorted', () => {
    expect(lookupError({ zeta: () => 1, alpha: () => 2, notATask: 3 }, 'nope').message).toBe('ctx.compute: the compute file has no task named "nope" (its tasks: "alpha", "zeta")');
  });

  it('refuses exports that are not functions, inherited names, and says when the file has no tasks', () => {
    expect(lookupError({ value: 42 }, 'value').message).toBe('ctx.compute: the compute file has no task named "value" (its tasks: none)');
    expect(lookupError({}, 'toString').message).toBe('ctx.compute: the compute file has no task named "toString" (its tasks: none)');
  });
});
