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

/** The role of threads nobody tagged. */
export const OTHER_THREADS = 'other threads';

/**
 * One sample of every live thread of the process: its role ('main', the role a worker announced,
 * or {@link OTHER_THREADS}: V8's platform workers — garbage collection helpers and compilers,
 * shared by all isolates — and libuv's pool — LMDB commits, fs) and its times so far.
 */
export type ThreadSample = Map<number, Sched & { role: string }>;

export function sampleRoles(): ThreadSample {
  const out: ThreadSample = new Map();
  let tids: number[] = [];
  try {
    tids = readdirSync('/proc/self/task').map(Number);
  } catch {
    // Not Linux: no per-thread times.
  }
  for (const tid of tids) {
    const s = schedstat(tid);
    if (s === undefined) continue;
    out.set(tid, { ...s, role: tid === process.pid ? 'main' : (known.get(tid) ?? OTHER_THREADS) });
  }
  return out;
}

/** CPU and run-queue time per role between two samples, and how many threads of the role were alive at the second. */
export type RoleTimes = Record<string, Sched & { threads: number }>;

/**
 * Per role, what its threads used between `before` and `after`: thread by thread, so a thread
 * that started in between counts from zero and one that ended in between is left out (its
 * lifetime total would otherwise be subtracted).
 */
export function rolesBetween(before: ThreadSample, after: ThreadSample): RoleTimes {
  const out: RoleTimes = {};
  for (const [tid, a] of after) {
    const b = before.get(tid);
    const r = (out[a.role] ??= { cpuNs: 0, waitNs: 0, threads: 0 });
    r.threads++;
    r.cpuNs += a.cpuNs - (b?.cpuNs ?? 0);
    r.waitNs += a.waitNs - (b?.waitNs ?? 0);
  }
  return out;
}

/** Each role's CPU and run-queue wait over a stretch of wall time, in ms per s. */
export interface ThreadShare {
  /** Per role: ms on a CPU and ms waiting for one per s, and its threads alive at the end. */
  groups: Array<{ role: string; cpu: number; wait: number; threads: number }>;
  /** CPU of the threads nobody tagged (GC helpers, compilers, libuv's pool), ms per s. */
  other: number;
}

/** {@link ThreadShare} between two samples `ms` milliseconds of wall time apart. */
export function threadShare(before: ThreadSample, after: ThreadSample, ms: number): ThreadShare {
  const groups: ThreadShare['groups'] = [];
  let other = 0;
  for (const [role, t] of Object.entries(rolesBetween(before, after))) {
    const cpu = t.cpuNs / 1e6 / (ms / 1000);
    const wait = t.waitNs / 1e6 / (ms / 1000);
    groups.push({ role, cpu, wait, threads: t.threads });
    if (role === OTHER_THREADS) other = cpu;
  }
  return { groups, other };
}

/** "role cpu (wait)" for each role of `t` that used at least half a millisecond per second (and main). */
export const describeShare = (t: ThreadShare): string => t.groups.filter((g) => g.cpu >= 0.5 || g.role === 'main').map((g) => `${g.role} ${g.cpu.toFixed(0)} (${g.wait.toFixed(0)})`).join(', ');

/** Per-role CPU and wait between two samples, in ns per message. */
export function perMessage(before: ThreadSample, after: ThreadSample, messages: number): Record<string, { cpuNs: number; waitNs: number }> {
  const out: Record<string, { cpuNs: number; waitNs: number }> = {};
  for (const [role, t] of Object.entries(rolesBetween(before, after))) out[role] = { cpuNs: t.cpuNs / messages, waitNs: t.waitNs / messages };
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
