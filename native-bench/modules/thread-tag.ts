/**
 * Lets the suite measure each thread: every bench module (loaded inside each shard worker) and
 * every baseline worker imports this and announces its Linux thread id on a BroadcastChannel, so
 * the driver (lib/threads.ts) can read each thread's on-CPU and run-queue times from
 * /proc/self/task/<tid>/schedstat; and it answers heap queries on the same channel, since V8
 * heaps are per thread and only the thread itself can read its own. Off Linux no tid is sent.
 */
import { readlinkSync } from 'node:fs';
import { BroadcastChannel, isMainThread } from 'node:worker_threads';

export const THREADS_CHANNEL = 'weft-native-bench-threads';
/** The query every tagged thread answers with a {@link HeapReport}. */
export const HEAP_QUERY = 'heap?';

export interface ThreadTag {
  kind: 'tag';
  tid: number;
  role: string;
}

export interface HeapReport {
  kind: 'heap';
  tid: number;
  role: string;
  /** This thread's V8 heap: used and reserved, MiB. */
  heapUsedMb: number;
  heapTotalMb: number;
  /** Memory of this thread's ArrayBuffers and other external allocations V8 knows of, MiB. */
  externalMb: number;
  /** Heap used right after a full GC (the live set), MiB; null unless node runs with --expose-gc. */
  liveMb: number | null;
}

const MB = 2 ** 20;

/** Announces the calling worker thread as `role` and answers heap queries (no-op on the main thread). */
export function tagThread(role: string): void {
  if (isMainThread) return;
  let tid = -1;
  try {
    tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
  } catch {
    // Not Linux: heap reports only.
  }
  const ch = new BroadcastChannel(THREADS_CHANNEL);
  ch.onmessage = (e: unknown) => {
    if ((e as { data: unknown }).data !== HEAP_QUERY) return;
    const m = process.memoryUsage();
    const gc = (globalThis as { gc?: () => void }).gc;
    let liveMb: number | null = null;
    if (gc !== undefined) {
      gc();
      liveMb = process.memoryUsage().heapUsed / MB;
    }
    ch.postMessage({ kind: 'heap', tid, role, heapUsedMb: m.heapUsed / MB, heapTotalMb: m.heapTotal / MB, externalMb: m.external / MB, liveMb } satisfies HeapReport);
  };
  // Never the reason a worker stays alive.
  ch.unref();
  if (tid >= 0) ch.postMessage({ kind: 'tag', tid, role } satisfies ThreadTag);
}
