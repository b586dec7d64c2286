/**
 * Each shard's young generation starts at its working size (`WeftOptions.shardSemiSpaceMb`).
 *
 * V8 starts a heap's two semi-spaces (the halves of its young generation that scavenges copy
 * between) at 1 MiB each and doubles them only once as many bytes have survived scavenges as one
 * semi-space holds. A shard's survivors are few (the messages and changed instances alive across a
 * scavenge: 30-190 KB at 65k requests/s), so under load its semi-spaces stayed at 16 MiB for
 * minutes, and it scavenged about four times a second; on two busy cores each scavenge held the
 * shard 1-5 ms, whatever it copied (native-bench/README.md, "Tail latency: the seventh steps").
 * Started at 32 MiB, a shard scavenges half as often.
 *
 * Node's Worker takes only a MAXIMUM young generation (`resourceLimits.maxYoungGenerationSizeMb`);
 * V8 reads the initial size from its process-wide flag `--min-semi-space-size` when it creates a
 * heap, and at no other time. So the flag is set (`v8.setFlagsFromString`) while the shards'
 * heaps are created and set back to 0 (V8's default) once every shard is ready. Main's heap,
 * created long before, is not affected. A Worker the host starts in that window (while
 * `Weft.start` or a recovery starts shards) starts with the same size; engines starting at the
 * same moment share the largest size asked for. A host that passes `--min-semi-space-size` to
 * node itself keeps its own value: the flag is then left alone.
 */
import { setFlagsFromString } from 'node:v8';

/** `--min-semi-space-size` (V8 takes `_` for `-` too), as node's own option or a V8 option. */
const HOST_FLAG = /(^|\s)--min[-_]semi[-_]space[-_]size([=\s]|$)/;

/** Starts running with the flag set (and nobody else's value overwritten). */
let holders = 0;
/** The value set for the holders, MiB. */
let current = 0;

/** Whether the host started node with its own `--min-semi-space-size`. */
export function hostSetsSemiSpace(execArgv: readonly string[] = process.execArgv, nodeOptions = process.env.NODE_OPTIONS ?? ''): boolean {
  return execArgv.some((arg) => HOST_FLAG.test(arg)) || HOST_FLAG.test(nodeOptions);
}

function setSemiSpace(mb: number): void {
  setFlagsFromString(`--min-semi-space-size=${mb}`);
}

/**
 * Runs `start` (which creates the shards' workers and resolves once each is ready) with V8's
 * initial semi-space at `mb` MiB for the heaps created meanwhile; 0 leaves V8's default.
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
