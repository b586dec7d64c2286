/**
 * Lets the suite measure CPU time PER THREAD: every bench module (loaded inside each shard
 * worker) and every baseline worker imports this and announces its Linux thread id on a
 * BroadcastChannel; the driver (lib/threads.ts) then reads each thread's on-CPU and run-queue
 * times from /proc/self/task/<tid>/schedstat. Off Linux it announces nothing.
 */
import { readlinkSync } from 'node:fs';
import { BroadcastChannel, isMainThread } from 'node:worker_threads';

export const THREADS_CHANNEL = 'weft-native-bench-threads';

export interface ThreadTag {
  tid: number;
  role: string;
}

/** Announces the calling worker thread as `role` (no-op on the main thread or off Linux). */
export function tagThread(role: string): void {
  if (isMainThread) return;
  let tid: number;
  try {
    tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
  } catch {
    return;
  }
  const ch = new BroadcastChannel(THREADS_CHANNEL);
  ch.postMessage({ tid, role } satisfies ThreadTag);
  ch.close();
}
