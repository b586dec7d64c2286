/**
 * CPU time per thread, from Linux's /proc/self/task/<tid>/schedstat (nanoseconds on a CPU, and
 * nanoseconds runnable but waiting for one). Worker threads announce their tid and role through
 * modules/thread-tag.ts; the main thread's tid is the process id. With more busy threads than
 * cores, run-queue wait shows how much a thread was starved.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { BroadcastChannel } from 'node:worker_threads';
import { HEAP_QUERY, THREADS_CHANNEL, type HeapReport, type ThreadTag } from '../modules/thread-tag.js';

const known = new Map<number, string>();
let channel: BroadcastChannel | undefined;
let heapReports: HeapReport[] | null = null;

/** Starts listening for thread announcements (call before starting workers). */
export function listenForThreads(): void {
  if (channel !== undefined) return;
  channel = new BroadcastChannel(THREADS_CHANNEL);
  channel.onmessage = (e: unknown) => {
    const m = (e as { data: ThreadTag | HeapReport }).data;
    if (m.kind === 'tag') known.set(m.tid, m.role);
    else heapReports?.push(m);
  };
  channel.unref();
}

export function stopListening(): void {
  channel?.close();
  channel = undefined;
}

interface Sched {
  cpuNs: number;
  waitNs: number;
}

function schedstat(tid: number): Sched | undefined {
  try {
    const [cpu, wait] = readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8').split(' ');
    return { cpuNs: Number(cpu), waitNs: Number(wait) };
  } catch {
    return undefined;
  }
}

/**
 * CPU and run-queue time per role: 'main', the roles workers announced, and {@link OTHER_THREADS}
 * for every other thread of the process alive at the sample (V8's platform workers: garbage
 * collection helpers and compilers, shared by all isolates; libuv's pool: LMDB commits, fs).
 */
export type RoleTimes = Record<string, Sched>;

/** The role of threads nobody tagged. */
export const OTHER_THREADS = 'other threads';

export function sampleRoles(): RoleTimes {
  const out: RoleTimes = {};
  const add = (role: string, s: Sched | undefined): void => {
    if (s === undefined) return;
    const r = (out[role] ??= { cpuNs: 0, waitNs: 0 });
    r.cpuNs += s.cpuNs;
    r.waitNs += s.waitNs;
  };
  add('main', schedstat(process.pid));
  for (const [tid, role] of known) add(role, schedstat(tid));
  let tids: string[] = [];
  try {
    tids = readdirSync('/proc/self/task');
  } catch {
    // Not Linux: no per-thread times.
  }
  for (const t of tids) {
    const tid = Number(t);
    if (tid !== process.pid && !known.has(tid)) add(OTHER_THREADS, schedstat(tid));
  }
  return out;
}

/** Per-role CPU and wait between two samples, in ns per message. */
export function perMessage(before: RoleTimes, after: RoleTimes, messages: number): Record<string, { cpuNs: number; waitNs: number }> {
  const out: Record<string, { cpuNs: number; waitNs: number }> = {};
  for (const role of Object.keys(after)) {
    const a = after[role] as Sched;
    const b = before[role] ?? { cpuNs: 0, waitNs: 0 };
    out[role] = { cpuNs: (a.cpuNs - b.cpuNs) / messages, waitNs: (a.waitNs - b.waitNs) / messages };
  }
  return out;
}

/**
 * The V8 heaps of tagged worker threads: waits until `expect` threads of `role` answered, or
 * `waitMs` passed (a busy thread answers when its event loop turns; a full GC on a big heap
 * takes a while).
 */
export async function workerHeaps(role: string, expect: number, waitMs = 5000): Promise<HeapReport[]> {
  if (channel === undefined) return [];
  const reports: HeapReport[] = [];
  heapReports = reports;
  channel.postMessage(HEAP_QUERY);
  const until = performance.now() + waitMs;
  while (reports.filter((h) => h.role === role).length < expect && performance.now() < until) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  heapReports = null;
  return reports.filter((h) => h.role === role);
}

/** Wait for pending announcements to arrive (they travel through the event loop). */
export function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 20));
}
