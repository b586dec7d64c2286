/**
 * Weft.start refuses to run where it would start an engine per shard: inside a shard thread, or
 * re-entrantly from the function module it is loading (shards load that module too).
 */
import { WeftError } from '../core/errors.js';
import { loadModule } from '../module/runtime.js';

/**
 * Set by a shard worker (shard/worker.ts) on its global object before it loads the function
 * module: `{ shard, moduleUrl, misuse? }`. A module that calls Weft.start there would start an
 * engine per shard, whose shards start engines, until the process runs out of threads.
 */
export const SHARD_THREAD = Symbol.for('weft.shardThread');
/** Function modules Weft.start is loading on this thread (a call from inside them is re-entrant). */
const loadingModules = new Map<string, number>();
/** Modules that called Weft.start while being loaded: the outer Weft.start fails. */
const reentered = new Map<string, WeftError>();

/** Why Weft.start must not run here, or undefined. */
export function startMisuse(): WeftError | undefined {
  const inShard = (globalThis as Record<symbol, unknown>)[SHARD_THREAD] as { shard: number; moduleUrl: string; misuse?: WeftError } | undefined;
  if (inShard !== undefined) {
    const err = new WeftError('ERR_WEFT_INVALID_MODULE', `Weft.start was called inside shard thread ${inShard.shard}, which loads function module ${inShard.moduleUrl}: a function module must not start an engine (shards load it too); call Weft.start from the host program`);
    inShard.misuse ??= err;
    return err;
  }
  if (loadingModules.size === 0) return undefined;
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 200;
  const stack = new Error().stack ?? '';
  Error.stackTraceLimit = limit;
  for (const url of loadingModules.keys()) {
    if (!stack.includes(url)) continue;
    const err = new WeftError('ERR_WEFT_INVALID_MODULE', `Weft.start was called re-entrantly by function module ${url} while the engine was loading it: a function module must not start an engine (shards load it too); call Weft.start from the host program`);
    reentered.set(url, err);
    return err;
  }
  return undefined;
}

export async function loadFunctionModule(url: string): Promise<Awaited<ReturnType<typeof loadModule>>> {
  loadingModules.set(url, (loadingModules.get(url) ?? 0) + 1);
  let loaded: PromiseSettledResult<Awaited<ReturnType<typeof loadModule>>>;
  try {
    loaded = { status: 'fulfilled', value: await loadModule(url) };
  } catch (reason) {
    loaded = { status: 'rejected', reason };
  }
  const n = loadingModules.get(url)! - 1;
  if (n === 0) loadingModules.delete(url);
  else loadingModules.set(url, n);
  // The module called Weft.start while loading (and may have swallowed the rejection).
  const misuse = reentered.get(url);
  if (misuse !== undefined) {
    reentered.delete(url);
    throw misuse;
  }
  if (loaded.status === 'rejected') throw loaded.reason;
  return loaded.value;
}
