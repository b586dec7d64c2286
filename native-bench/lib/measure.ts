/**
 * One measured run: wall time, whole-process CPU, and CPU per thread role (lib/threads.ts), all
 * per message.
 */
import { cpuNsPerMessage } from './stats.js';
import { perMessage, sampleRoles } from './threads.js';

export interface RunFigures {
  /** messages per second (wall clock) */
  rate: number;
  /** process CPU, all threads, ns per message */
  cpuNs: number;
  /** ns per message on a CPU, per thread role ('main', 'shard', 'ring-worker', ...) */
  roleCpuNs: Record<string, number>;
  /** ns per message runnable but waiting for a CPU, per role */
  roleWaitNs: Record<string, number>;
}

/** Runs `body` (which handles `messages` messages and returns elapsed ms) and measures it. */
export async function measured(messages: number, body: () => Promise<number> | number): Promise<RunFigures> {
  const c0 = process.cpuUsage();
  const r0 = sampleRoles();
  const ms = await body();
  const cpuNs = cpuNsPerMessage(c0, messages);
  const per = perMessage(r0, sampleRoles(), messages);
  const roleCpuNs: Record<string, number> = {};
  const roleWaitNs: Record<string, number> = {};
  for (const [role, v] of Object.entries(per)) {
    roleCpuNs[role] = v.cpuNs;
    roleWaitNs[role] = v.waitNs;
  }
  return { rate: messages / (ms / 1000), cpuNs, roleCpuNs, roleWaitNs };
}

export function medianOf(runs: RunFigures[], pick: (r: RunFigures) => number | undefined): number {
  const xs = runs.map(pick).filter((x): x is number => x !== undefined && Number.isFinite(x)).sort((a, b) => a - b);
  return xs.length === 0 ? Number.NaN : (xs[(xs.length - 1) >> 1] as number);
}
