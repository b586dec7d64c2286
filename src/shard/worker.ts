/**
 * Shard worker entry: boots a shard loop and does nothing else (the loop is in shard-loop.ts).
 * Talks to main through rings only, except for three lifecycle notes on `parentPort`: ready,
 * fatal (with the error, before the thread exits so main can roll back), and closed.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { WeftError, serializeError } from '../core/errors.js';
import { Partition } from '../state/partition.js';
import { ShardLoop, type ShardBoot } from './shard-loop.js';
import { compileModule, loadModule } from '../module/runtime.js';
import { RemoteFunctions, remoteMatcher } from './remote-functions.js';

const boot = workerData as ShardBoot;
const port = parentPort;
if (port === null) throw new Error('weft shard worker must run in a worker thread');

// A pending Atomics.waitAsync does not keep a worker alive: this listener does, until the loop
// closes it. Main asks a shard to end itself when it discards its generation (ShardPool.terminate):
// this runs between two steps of the shard, never inside a synchronous native call such as LMDB's
// open, where Worker.terminate() would make the call's exception abort the whole process.
port.on('message', (m: { type?: unknown } | null) => {
  if (m?.type === 'exit') process.exit(0);
});

let partition: Partition | undefined;

function fatal(err: unknown): void {
  port!.postMessage({ type: 'fatal', error: serializeError(err) });
  // Exit without touching LMDB again: main rolls every shard back to the last committed epoch.
  process.exit(1);
}

let started = false;

/**
 * An error nothing caught: before the shard runs, or weft's own (ERR_WEFT_INTERNAL), it ends the
 * shard (main rolls back). Once running, weft's own code catches what it throws (a failed turn,
 * checkpoint or close ends the shard through `fatal`), so what arrives here was thrown by code a
 * function left behind (a timer, a callback, a promise nobody awaited): it cannot touch state
 * (ctx calls after an invocation ended have no effect), so it is reported and the shard goes on.
 */
function uncaught(err: unknown): void {
  if (!started || (err instanceof WeftError && err.code === 'ERR_WEFT_INTERNAL')) {
    fatal(err);
    return;
  }
  port!.postMessage({ type: 'uncaught', error: serializeError(err) });
}

process.on('uncaughtException', uncaught);
process.on('unhandledRejection', uncaught);

const shardThread: { shard: number; moduleUrl: string; misuse?: Error } = { shard: boot.shard, moduleUrl: boot.settings.moduleUrl };
// Weft.start (host/start-guard.ts, SHARD_THREAD) refuses to run on a thread that carries this.
(globalThis as Record<symbol, unknown>)[Symbol.for('weft.shardThread')] = shardThread;

try {
  const definition = await loadModule(boot.settings.moduleUrl);
  // The module called Weft.start without awaiting it: the shard must not start.
  if (shardThread.misuse !== undefined) throw shardThread.misuse;
  // Main checked the partition's page structure before starting this pool (DataDir.open at
  // start, checkFiles before a recovery), or created it.
  partition = await Partition.open(boot.partitionPath, { durability: boot.settings.durability, structureChecked: true });
  const remote = new RemoteFunctions(boot.settings.remote);
  const module = compileModule(definition, boot.settings.remote.map((r) => remoteMatcher(r.functions)));
  const loop = new ShardLoop(boot, module, partition, {
    closed() {
      const p = partition;
      partition = undefined;
      void Promise.all([p === undefined ? Promise.resolve() : p.close(), remote.close()]).then(
        () => {
          port.postMessage({ type: 'closed' });
          port.close();
        },
        fatal,
      );
    },
    fatal,
    lateCall(type, id, method) {
      port.postMessage({ type: 'late-call', address: { type, id }, method });
    },
  }, remote);
  await loop.start();
  started = true;
  port.postMessage({ type: 'ready' });
} catch (err) {
  fatal(err);
}
