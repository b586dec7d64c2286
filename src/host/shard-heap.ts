/**
 * Each shard's heap is made with V8 settings chosen for the tail (`WeftOptions.shardSemiSpaceMb`
 * and `WeftOptions.shardMemoryReducer`).
 *
 * **The young generation.** V8 starts a heap's semi-spaces (scavenges copy survivors from one to
 * the other) at 1 MiB and doubles them only once as many bytes have survived scavenges as one of
 * them holds. A shard's survivors are few (the messages and changed instances alive across a
 * scavenge: 30-190 KB at 65k requests/s), so under load its semi-spaces stayed at 16 MiB for
 * minutes, and it scavenged about four times a second; on two busy cores each scavenge held the
 * shard 1-5 ms, whatever it copied (native-bench/README.md, "Tail latency: the seventh steps").
 * From 32 MiB, a shard scavenges half as often.
 *
 * **The memory reducer.** When a heap's allocation rate falls (a service gone quiet after busier
 * times), V8 shrinks it with up to three full GCs, the first 8 s or more after its last one. On a
 * shard of ~20 MB with 32 MiB semi-spaces each held the thread 16-36 ms (two cores, both shards
 * at once), and the request that came meanwhile waited for it (native-bench/README.md, "Tail
 * latency: the eighth steps").
 * Without the reducer a quiet shard keeps what it grew until allocation makes V8 collect again.
 *
 * Node's Worker takes only a MAXIMUM young generation (`resourceLimits.maxYoungGenerationSizeMb`)
 * and no V8 flags of its own: V8 reads a heap's initial semi-space from its process-wide flag
 * `--min-semi-space-size`, and whether the heap gets a memory reducer from `--memory-reducer`,
 * when it creates the heap, and at no other time (the first is also the least it shrinks that heap
 * to). So the flags are set (`v8.setFlagsFromString`) while the shards' workers are created and
 * set back to V8's defaults once each is online: its heap exists by then. Main's heap, created
 * long before, and heaps created later are not affected. A Worker the host starts in that window
 * (milliseconds, while `Weft.start` or a recovery starts shards) is made with the same settings;
 * engines starting at the same moment on one thread share the largest semi-space asked for (and no
 * reducer if one asks for none), and one that ends its window on another thread of the process (a
 * second copy of weft) ends it for all. A node started with its own `--min-semi-space-size` or
 * `--[no-]memory-reducer` keeps it: that flag is then left alone. (A host that sets one of them
 * at run time with `v8.setFlagsFromString` should pass `shardSemiSpaceMb: 0` or
 * `shardMemoryReducer: true`, which leave that flag alone: a shard start would reset it.)
 */
import { setFlagsFromString } from 'node:v8';

/** What a shard's heap is made with. */
export interface ShardHeapFlags {
  /** Initial (and least) semi-space, MiB; 0: V8's default. */
  readonly semiSpaceMb: number;
  /** Whether the heap gets V8's memory reducer (V8's default: yes). */
  readonly memoryReducer: boolean;
}

/** `--min-semi-space-size` in node's arguments (V8 takes one dash, and `_` for `-`, too). */
const HOST_SEMI_SPACE = /^--?min[-_]semi[-_]space[-_]size(=|$)/;
/** `--memory-reducer` or `--no-memory-reducer` in node's arguments (V8 also takes `--nomemory-reducer`). */
const HOST_REDUCER = /^--?(no[-_]?)?memory[-_]reducer(=|$)/;

/** Starts running with the semi-space flag set (and nobody else's value overwritten). */
let semiHolders = 0;
/** The value set for the holders, MiB. */
let current = 0;
/** Starts running with the memory reducer turned off. */
let reducerHolders = 0;

/** Whether the host started node with its own `--min-semi-space-size` (NODE_OPTIONS may not hold it: node refuses to start). */
export function hostSetsSemiSpace(execArgv: readonly string[] = process.execArgv): boolean {
  return execArgv.some((arg) => HOST_SEMI_SPACE.test(arg));
}

/** Whether the host started node with `--memory-reducer` or `--no-memory-reducer`. */
export function hostSetsMemoryReducer(execArgv: readonly string[] = process.execArgv): boolean {
  return execArgv.some((arg) => HOST_REDUCER.test(arg));
}

/**
 * Runs `start` (which creates the shards' workers and resolves once each is online, or gone) with
 * V8's flags for the heaps created meanwhile as `flags` says.
 */
export function withShardHeap<T>(flags: ShardHeapFlags, start: () => Promise<T>): Promise<T> {
  return withShardSemiSpace(flags.semiSpaceMb, () => (flags.memoryReducer ? start() : withoutMemoryReducer(start)));
}

/**
 * Runs `start` with V8's initial semi-space at `mb` MiB for the heaps created meanwhile; 0 leaves
 * V8's default.
 */
export async function withShardSemiSpace<T>(mb: number, start: () => Promise<T>): Promise<T> {
  if (mb === 0 || hostSetsSemiSpace()) return start();
  if (semiHolders === 0 || mb > current) {
    setFlagsFromString(`--min-semi-space-size=${mb}`);
    current = mb;
  }
  semiHolders++;
  try {
    return await start();
  } finally {
    if (--semiHolders === 0) {
      setFlagsFromString('--min-semi-space-size=0');
      current = 0;
    }
  }
}

/** Runs `start` with V8's memory reducer off for the heaps created meanwhile. */
export async function withoutMemoryReducer<T>(start: () => Promise<T>): Promise<T> {
  if (hostSetsMemoryReducer()) return start();
  if (reducerHolders++ === 0) setFlagsFromString('--no-memory-reducer');
  try {
    return await start();
  } finally {
    if (--reducerHolders === 0) setFlagsFromString('--memory-reducer');
  }
}
