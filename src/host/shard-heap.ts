/**
 * Each shard's heap starts with its young generation at a working size (`WeftOptions.shardSemiSpaceMb`).
 *
 * V8 starts a heap's semi-spaces (scavenges copy survivors from one to the other) at 1 MiB and
 * doubles them only once as many bytes have survived scavenges as one of them holds. A shard's
 * survivors are few (the messages and changed instances alive across a scavenge: 30-190 KB at
 * 65k requests/s), so under load its semi-spaces stayed at 16 MiB for minutes, and it scavenged
 * about four times a second; on two busy cores each scavenge held the shard 1-5 ms, whatever it
 * copied (native-bench/README.md, "Tail latency: the seventh steps"). From 32 MiB, a shard
 * scavenges half as often.
 *
 * Node's Worker takes only a MAXIMUM young generation (`resourceLimits.maxYoungGenerationSizeMb`);
 * V8 reads the initial size from its process-wide flag `--min-semi-space-size` when it creates a
 * heap, and at no other time (the flag is also the least it shrinks that heap to). So the flag is
 * set (`v8.setFlagsFromString`) while the shards' workers are created and set back to 0 (V8's
 * default) once each is online: its heap exists by then. Main's heap, created long before, and
 * heaps created later are not affected. A Worker the host starts in that window (milliseconds,
 * while `Weft.start` or a recovery starts shards) starts with the same size; engines starting at
 * the same moment on one thread share the largest size asked for, and one that ends its window on
 * another thread of the process (a second copy of weft) ends it for all. A node started with its
 * own `--min-semi-space-size` keeps it: the flag is then left alone. (A host that sets the flag at
 * run time with `v8.setFlagsFromString` should pass `shardSemiSpaceMb: 0`: a shard start would
 * reset it.)
 */
import { setFlagsFromString } from 'node:v8';

/** `--min-semi-space-size` in node's arguments (V8 takes one dash, and `_` for `-`, too). */
const HOST_FLAG = /^--?min[-_]semi[-_]space[-_]size(=|$)/;

/** Starts running with the flag set (and nobody else's value overwritten). */
let holders = 0;
/** The value set for the holders, MiB. */
let current = 0;

/** Whether the host started node with its own `--min-semi-space-size` (NODE_OPTIONS may not hold it: node refuses to start). */
export function hostSetsSemiSpace(execArgv: readonly string[] = process.execArgv): boolean {
  return execArgv.some((arg) => HOST_FLAG.test(arg));
}

function setSemiSpace(mb: number): void {
  setFlagsFromString(`--min-semi-space-size=${mb}`);
}

/**
 * Runs `start` (which creates the shards' workers and resolves once each is online, or gone) with
 * V8's initial semi-space at `mb` MiB for the heaps created meanwhile; 0 leaves V8's default.
 */
export async function withShardSemiSpace<T>(mb: number, start: () => Promise<T>): Promise<T> {
  if (mb === 0 || hostSetsSemiSpace()) return start();
  if (holders === 0 || mb > current) {
    setSemiSpace(mb);
    current = mb;
  }
  holders++;
  try {
    return await start();
  } finally {
    if (--holders === 0) {
      setSemiSpace(0);
      current = 0;
    }
  }
}
