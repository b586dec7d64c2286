/**
 * Shard worker entry: boots a shard loop and does nothing else (the loop is in shard-loop.ts).
 * Talks to main through rings only, except for three lifecycle notes on `parentPort`: ready,
 * fatal (with the error, before the thread exits so main can roll back), and closed.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { serializeError } from '../errors.js';
import { Partition } from '../state/partition.js';
import { ShardLoop, type ShardBoot } from './shard-loop.js';
import { compileModule, loadModule } from './runtime-module.js';
import { RemoteFunctions, remoteMatcher } from './remote-functions.js';

const boot = workerData as ShardBoot;
const port = parentPort;
if (port === null) throw new Error('weft shard worker must run in a worker thread');

// A pending Atomics.waitAsync does not keep a worker alive: this listener does, until
// the loop closes it.
port.on('message', () => {});

let partition: Partition | undefined;

function fatal(err: unknown): void {
  port!.postMessage({ type: 'fatal', error: serializeError(err) });
  // Exit without touching LMDB again: main rolls every shard back to the last committed epoch.
  process.exit(1);
}

process.on('uncaughtException', fatal);
process.on('unhandledRejection', fatal);

try {
  const definition = await loadModule(boot.moduleUrl);
  partition = await Partition.open(boot.partitionPath, { durability: boot.durability });
  const remote = new RemoteFunctions(boot.remote);
  const module = compileModule(definition, boot.remote.map((r) => remoteMatcher(r.functions)));
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
  }, remote);
  await loop.start();
  port.postMessage({ type: 'ready' });
} catch (err) {
  fatal(err);
}
