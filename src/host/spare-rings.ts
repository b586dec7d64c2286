/**
 * Ring memory handed from one engine generation to the next (in this process).
 *
 * An engine generation allocates a full mesh of rings — shards² + shards of `ringBytes` each
 * (24 MiB for two shards with the defaults). A SharedArrayBuffer is freed only when the main
 * thread's garbage collector gets to it, which with a small main heap can be dozens of closed
 * engines later; meanwhile glibc serves these allocations from its heap (once a freed chunk of
 * that size has raised its mmap threshold), zero-filling every page and rarely giving the
 * memory back. Starting and closing engines in a loop grew the process by hundreds of MiB
 * although every closed engine was unreachable. Reusing the rings of the last released
 * generation allocates nothing in steady state.
 *
 * Bounds: at most as many bytes as the largest generation released so far are kept, and they
 * are dropped (left to the GC) {@link SPARE_IDLE_MS} after the last release if no engine took
 * them. A ring is given back only once nothing can touch it again (see ShardPool.release).
 */
import { ringByteLength } from '../transport/layout.js';
import { Ring } from '../transport/ring.js';

/** How long unused spare rings are kept after the last generation released its own. */
export const SPARE_IDLE_MS = 10_000;

/** Spare ring buffers by byte length. */
const spares = new Map<number, SharedArrayBuffer[]>();
let spareBytes = 0;
let limitBytes = 0;
let timer: NodeJS.Timeout | undefined;

/** A ring with `capacity` data bytes: a spare one made empty, or a new one. */
export function takeRing(capacity: number): Ring {
  const buffer = spares.get(ringByteLength(capacity))?.pop();
  if (buffer === undefined) return Ring.create(capacity);
  spareBytes -= buffer.byteLength;
  return Ring.recycle(buffer);
}

/**
 * Gives back the ring buffers of a generation that ended. The caller guarantees that no thread
 * and no Ring object uses them any more.
 */
export function giveRings(buffers: readonly SharedArrayBuffer[]): void {
  let total = 0;
  for (const b of buffers) total += b.byteLength;
  limitBytes = Math.max(limitBytes, total);
  for (const b of buffers) {
    if (spareBytes + b.byteLength > limitBytes) break;
    let list = spares.get(b.byteLength);
    if (list === undefined) spares.set(b.byteLength, (list = []));
    list.push(b);
    spareBytes += b.byteLength;
  }
  if (timer !== undefined) clearTimeout(timer);
  timer = setTimeout(dropSpares, SPARE_IDLE_MS);
  timer.unref();
}

/** Lets the GC have every spare ring (also after {@link SPARE_IDLE_MS} without a taker). */
export function dropSpares(): void {
  if (timer !== undefined) clearTimeout(timer);
  timer = undefined;
  spares.clear();
  spareBytes = 0;
  limitBytes = 0;
}

/** Bytes of spare ring memory held now (for tests). */
export function spareRingBytes(): number {
  return spareBytes;
}
