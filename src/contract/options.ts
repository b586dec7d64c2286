import { DEFAULT_IDEMPOTENCY_RETENTION_MS, MAX_IDEMPOTENCY_RETENTION_MS } from '../core/idempotency.js';
import { availableParallelism } from 'node:os';
import { resolve as resolvePath } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WeftError, describe } from '../core/errors.js';

/** How durable a commit is: `'fsync'` survives power loss, `'process'` a killed process. */
export type Durability = 'fsync' | 'process';

/** A remote StateFun endpoint serving some function types (see README "Calling StateFun functions"). */
export interface RemoteEndpointOptions {
  /** `'ns/*'` (every function of a namespace) or `'ns/name'`. */
  functions: string;
  /** `http://` or `https://` URL of the endpoint. */
  url: string;
  /**
   * The budget of one call in ms (StateFun's `call` timeout): every attempt and the backoff
   * between them. Network errors, timeouts and HTTP 408/409/420/429/499/5xx are retried with
   * exponential backoff within it. Default 60_000 (the runtime's default transport's default).
   */
  timeoutMs?: number;
  /**
   * Most messages sent in one batch. An address has one call in flight; the messages that arrive
   * meanwhile go out together in the next one, up to this many (and 32 MiB of payload). Default
   * 1000 (the runtime's `maxNumBatchRequests`).
   */
  maxBatch?: number;
  /**
   * What happens to a batch whose call failed (its budget ran out, or the answer was refused):
   * `'pause'` keeps the messages and pauses the address, trying the batch again after `pauseMs`
   * (doubling while it keeps failing, up to 60 s); `'dead-letter'` sends them to
   * `weft/dead-letters`. Default `'pause'` (nothing is dropped, as in StateFun, which restores
   * the job from its last checkpoint and sends the batch again).
   */
  onExhausted?: 'pause' | 'dead-letter';
  /** First pause of an address after a failed call, in ms (see `onExhausted`). Default 1000. */
  pauseMs?: number;
}

/** Options of {@link Weft.start}. Every field is documented with its unit and default. */
export interface WeftOptions {
  /** The function module: a `file:` URL or a path (resolved against the working directory). Required. */
  module: URL | string;
  /**
   * Shard worker threads: a positive integer, `'auto'` (one per core: `os.availableParallelism()`;
   * the `WEFT_SHARDS` environment variable overrides `'auto'`), or `{ perCore: n }`.
   * Default `'auto'`.
   */
  shards?: number | 'auto' | { perCore: number };
  /** Directory for the LMDB partitions and checkpoint metadata; created (mode 0700) if missing. Default `'./weft-data'`. */
  dataDir?: string;
  /**
   * Milliseconds between checkpoints (consistent incremental snapshots). `0` disables periodic
   * checkpoints: then only `weft.checkpoint()` and `close()` commit. Default 50.
   */
  checkpointIntervalMs?: number;
  /** `'fsync'`: commits survive power loss; `'process'`: they survive a killed process. Default `'fsync'`. */
  durability?: Durability;
  /** Threads of the compute pool used by `ctx.compute`. Default 1. */
  computeThreads?: number;
  /** StateFun endpoints whose functions weft calls over HTTP. Default none. */
  remote?: RemoteEndpointOptions[];
  /**
   * Key groups: fixed at the data dir's first start (stored there). Default 128 for a new dir;
   * an existing dir keeps its own, and a different value here is refused (ERR_WEFT_INVALID_OPTION).
   * `shards` may not exceed it ('auto' is capped at it).
   */
  keyGroups?: number;
  /**
   * Instances each shard keeps decoded in memory; changed ones stay until the next checkpoint
   * takes them, and host sends wait while a shard holds more of those than this. Default 100_000.
   */
  cacheSize?: number;
  /** Attempts of an invocation whose function throws, before the message goes to `weft/dead-letters`. Default 3. */
  maxAttempts?: number;
  /** Backoff before the first retry in ms, doubling each attempt. Default 10. */
  retryBackoffMs?: number;
  /** Largest encoded message value, in bytes. Default 512 KiB. */
  maxMessageBytes?: number;
  /** Largest encoded state value, in bytes. Default 1 MiB. */
  maxStateValueBytes?: number;
  /** Bytes of each shared-memory ring (power of two, at least 4 × maxMessageBytes). Default 4 MiB. */
  ringBytes?: number;
  /** Default timeout of `request()` in ms. Default 30_000. */
  requestTimeoutMs?: number;
  /**
   * How long, in ms, an address remembers an idempotency key it applied (`send`/`request` with
   * `{ idempotencyKey }`): a message with the same key within this window is not applied again.
   * 1 to 2_592_000_000 (30 days). Default 86_400_000 (24 h).
   */
  idempotencyRetentionMs?: number;
  /**
   * Deadline of one invocation, in ms (50 to 86_400_000). A function still running synchronously
   * past it (an endless loop) has its shard terminated by main and recovered, and its message
   * dead-lettered with ERR_WEFT_TIMEOUT without running again; an async function whose promise
   * has not settled by then fails with ERR_WEFT_TIMEOUT (retried, then dead-lettered, as any
   * failure). A stuck invocation holds every checkpoint, so every other shard's commits, for at
   * most this long. Default 10_000 (the remote endpoints' default timeout: long enough for any
   * call an invocation should await, short enough that one bug cannot hold every commit long).
   */
  invocationTimeoutMs?: number;
  /** How long `close()` waits for in-flight work before it stops anyway, in ms. Default 30_000. */
  closeTimeoutMs?: number;
  /**
   * Heap limit of each shard worker in MiB (V8 old generation). A shard that runs out of memory
   * is ended without taking the process down, and the engine recovers. Default: Node's default.
   */
  maxShardHeapMb?: number;
  /**
   * Committed records an egress may hold in the data dir before they are acknowledged (records
   * wait on disk, not in memory). Past it, host sends wait until the consumer acknowledges some
   * (backpressure); for `weft/dead-letters` the oldest unread dead letters are deleted instead,
   * counted in metrics `egressDropped` with a warning, so dead letters nobody reads never stall
   * the engine. Default 1_000_000. (Replaces `egressBufferSize`, which dropped records.)
   * Records an iterator holds (handed out, not yet acknowledged) do not count toward the bound.
   */
  egressMaxBacklog?: number;
  /**
   * How long host sends wait, at most, for full egresses (at `egressMaxBacklog`) to get room, in
   * ms. When it passes, the waiting sends go on and the full egresses may hold more than
   * `egressMaxBacklog` records until their backlog drops below it again (nothing is dropped;
   * counted in metrics `egressOverBacklog`, one warning). So a consumer that stalls, or an
   * egress nobody reads, slows host sends down but never blocks them, `idle()` or `close()`.
   * 0: sends never wait for egresses. Default 5_000.
   */
  egressFullWaitMs?: number;
  /**
   * Young-generation size of each shard worker's V8 heap, in MiB. Messages waiting in mailboxes
   * live just long enough to outgrow a small young generation; a larger one keeps them from being
   * promoted (measured: about +20% throughput at 64 over V8's default, another +10-20% at 128;
   * 256 was slower again). It is memory each shard may touch: lower it where memory matters more
   * than throughput (the bounded-memory benchmark uses 16). Default 128.
   */
  shardYoungGenerationMb?: number;
  /**
   * The semi-space each shard's heap starts with, in MiB: V8 copies survivors between two of them
   * (its young generation is three: two and room for large objects). V8 would start at 1 MiB and
   * grow it only as scavenges' survivors add up, which under load left the shards at 16 MiB for
   * minutes, scavenging about four times a second (each pause 1-5 ms on two busy cores); from 32
   * they scavenge half as often. It is also the least V8 shrinks it to when a shard idles: each
   * shard keeps two semi-spaces of this size committed once it has scavenged (64 MiB at 32).
   * Capped at a third of `shardYoungGenerationMb`, rounded up to a power of two. Set through
   * V8's process-wide `--min-semi-space-size` while the shards' heaps are created (see
   * src/host/shard-heap.ts; a node started with that flag keeps its own). 0: V8's default.
   * Default: 32 for up to 8 shards, then 256 MiB shared by the shards (16 for 16 shards, 4 for 64),
   * rounded down to a power of two: with more shards each one carries less of the load.
   */
  shardSemiSpaceMb?: number;
  /**
   * Whether V8's memory reducer runs in the shards. It shrinks a heap whose allocation rate has
   * fallen (a service gone quiet after busier times) with up to three full GCs, the first
   * 8-16 s after the heap's last one; on a shard of 20 MB with 32 MiB semi-spaces each held the
   * thread 16-36 ms on two cores (5-8 ms with V8's default semi-space), and a request arriving
   * meanwhile waited for it. Off, a quiet shard keeps the heap it grew until allocation makes V8
   * collect again (measured: 72 MiB committed instead of 47 per shard after a burst). Set through
   * V8's process-wide `--memory-reducer` while the shards' heaps are created, like
   * `shardSemiSpaceMb` (a node started with `--memory-reducer` or `--no-memory-reducer` keeps its
   * choice). Default `false`.
   */
  shardMemoryReducer?: boolean;
}

/**
 * What one invocation runs under (the dispatcher's settings): the engine's, resolved from its
 * options, or the test harness's, from its own (both validated by {@link resolveInvocationSettings}).
 */
export interface InvocationSettings {
  readonly maxAttempts: number;
  readonly retryBackoffMs: number;
  readonly maxMessageBytes: number;
  readonly maxStateValueBytes: number;
  readonly idempotencyRetentionMs: number;
  /** Absent: async invocations have no deadline (the test harness). */
  readonly invocationTimeoutMs?: number;
}

/**
 * The engine-wide settings every shard of an engine runs with, taken from the resolved options by
 * {@link shardSettings}. One object for the whole way: resolved options → shard pool → each
 * worker's `workerData` → shard loop → dispatcher. So it holds plain data only (structured clone).
 * What differs between shards (index, rings, recovery facts) travels beside it, in the boot record.
 */
export interface ShardSettings extends InvocationSettings {
  /** The function module's `file:` URL. */
  readonly moduleUrl: string;
  readonly durability: Durability;
  /** Instances each shard keeps decoded in memory. */
  readonly cacheSize: number;
  readonly invocationTimeoutMs: number;
  /** StateFun endpoints a shard calls for the addresses it owns. */
  readonly remote: readonly Required<RemoteEndpointOptions>[];
  /** Bytes of each ring (the pool makes them; a shard's outbound frames are cut to fit). */
  readonly ringBytes: number;
  /** Heap limits of each shard worker, in MiB (see WeftOptions). */
  readonly maxShardHeapMb: number | undefined;
  readonly shardYoungGenerationMb: number;
  readonly shardSemiSpaceMb: number;
  readonly shardMemoryReducer: boolean;
}

/** Options after validation and defaults. */
export interface ResolvedOptions extends ShardSettings {
  readonly shards: number;
  readonly dataDir: string;
  readonly checkpointIntervalMs: number;
  readonly computeThreads: number;
  readonly keyGroups: number;
  /** `options.keyGroups` was given (then it must match an existing data dir's). */
  readonly keyGroupsGiven: boolean;
  /** `shards` came from 'auto' or `{ perCore }` (then it is capped at the key groups). */
  readonly shardsAuto: boolean;
  readonly requestTimeoutMs: number;
  readonly closeTimeoutMs: number;
  readonly egressMaxBacklog: number;
  readonly egressFullWaitMs: number;
}

/** The shard settings of resolved options, as a record of their own (nothing host-only goes to the workers). */
export function shardSettings(o: ResolvedOptions): ShardSettings {
  return {
    moduleUrl: o.moduleUrl,
    durability: o.durability,
    cacheSize: o.cacheSize,
    maxAttempts: o.maxAttempts,
    retryBackoffMs: o.retryBackoffMs,
    maxMessageBytes: o.maxMessageBytes,
    maxStateValueBytes: o.maxStateValueBytes,
    idempotencyRetentionMs: o.idempotencyRetentionMs,
    invocationTimeoutMs: o.invocationTimeoutMs,
    remote: o.remote,
    ringBytes: o.ringBytes,
    maxShardHeapMb: o.maxShardHeapMb,
    shardYoungGenerationMb: o.shardYoungGenerationMb,
    shardSemiSpaceMb: o.shardSemiSpaceMb,
    shardMemoryReducer: o.shardMemoryReducer,
  };
}

export const DEFAULTS = Object.freeze({
  dataDir: './weft-data',
  checkpointIntervalMs: 50,
  durability: 'fsync' as const,
  computeThreads: 1,
  keyGroups: 128,
  cacheSize: 100_000,
  maxAttempts: 3,
  retryBackoffMs: 10,
  maxMessageBytes: 512 * 1024,
  maxStateValueBytes: 1024 * 1024,
  ringBytes: 4 * 1024 * 1024,
  requestTimeoutMs: 30_000,
  idempotencyRetentionMs: DEFAULT_IDEMPOTENCY_RETENTION_MS,
  invocationTimeoutMs: 10_000,
  closeTimeoutMs: 30_000,
  egressMaxBacklog: 1_000_000,
  egressFullWaitMs: 5_000,
  shardYoungGenerationMb: 128,
  remoteTimeoutMs: 60_000,
  remoteMaxBatch: 1000,
  remoteOnExhausted: 'pause' as const,
  remotePauseMs: 1000,
});

/** The default `shardSemiSpaceMb` for `shards` shards: 32 MiB each, at most 256 MiB in all (a power of two). */
export function defaultShardSemiSpaceMb(shards: number): number {
  return Math.min(32, 2 ** Math.floor(Math.log2(256 / Math.max(1, shards))));
}

/** Longest pause of a remote address whose calls keep failing (or `pauseMs`, if longer). */
export const REMOTE_MAX_PAUSE_MS = 60_000;

/** Most shard threads weft will start: each costs a thread, an LMDB environment and rings. */
export const MAX_SHARDS = 256;
const MAX_KEY_GROUPS = 32_768;

const KNOWN = new Set([
  'module', 'shards', 'dataDir', 'checkpointIntervalMs', 'durability', 'computeThreads', 'remote',
  'keyGroups', 'cacheSize', 'maxAttempts', 'retryBackoffMs', 'maxMessageBytes', 'maxStateValueBytes',
  'ringBytes', 'requestTimeoutMs', 'idempotencyRetentionMs', 'invocationTimeoutMs', 'closeTimeoutMs', 'maxShardHeapMb', 'egressMaxBacklog',
  'egressFullWaitMs', 'shardYoungGenerationMb', 'shardSemiSpaceMb', 'shardMemoryReducer',
]);

function bad(message: string): WeftError<'ERR_WEFT_INVALID_OPTION'> {
  return new WeftError('ERR_WEFT_INVALID_OPTION', message);
}

/** An integer option in `[min, max]`, or `def` when absent; the message names option and value. */
export function intOption(name: string, value: unknown, def: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return def;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `an integer >= ${min}` : `an integer from ${min} to ${max}`;
    throw bad(`options.${name} must be ${range} (got ${describe(value)})`);
  }
  return value;
}

/** A boolean option, or `def` when absent; the message names option and value. */
function boolOption(name: string, value: unknown, def: boolean): boolean {
  if (value === undefined) return def;
  if (typeof value !== 'boolean') throw bad(`options.${name} must be true or false (got ${describe(value)})`);
  return value;
}

/** Resolves the shard count: explicit numbers win; `'auto'` yields to `WEFT_SHARDS`. */
export function resolveShards(value: unknown, env: NodeJS.ProcessEnv = process.env, cores = availableParallelism()): number {
  if (value === undefined || value === 'auto') {
    const fromEnv = env.WEFT_SHARDS;
    if (fromEnv !== undefined && fromEnv !== '') {
      const n = Number(fromEnv);
      if (!Number.isInteger(n) || n < 1 || n > MAX_SHARDS) {
        throw bad(`environment variable WEFT_SHARDS must be an integer from 1 to ${MAX_SHARDS} (got ${describe(fromEnv)})`);
      }
      return n;
    }
    return Math.min(Math.max(1, cores), MAX_SHARDS);
  }
  if (typeof value === 'number') {
    if (!Number.isInteger(value) || value < 1 || value > MAX_SHARDS) {
      throw bad(`options.shards must be a positive integer up to ${MAX_SHARDS}, 'auto' or { perCore: n } (got ${describe(value)})`);
    }
    return value;
  }
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const perCore = (value as { perCore?: unknown }).perCore;
    const keys = Object.keys(value);
    if (keys.length !== 1 || keys[0] !== 'perCore' || typeof perCore !== 'number' || !(perCore > 0) || !Number.isFinite(perCore)) {
      throw bad(`options.shards.perCore must be a positive number (got ${describe(value)})`);
    }
    return Math.min(Math.max(1, Math.round(perCore * cores)), MAX_SHARDS);
  }
  throw bad(`options.shards must be a positive integer up to ${MAX_SHARDS}, 'auto' or { perCore: n } (got ${describe(value)})`);
}

function moduleUrl(value: unknown): string {
  if (value instanceof URL) {
    if (value.protocol !== 'file:') throw bad(`options.module must be a file: URL or a path (got ${describe(value.href)})`);
    return value.href;
  }
  if (typeof value === 'string' && value.length > 0) {
    if (value.startsWith('file:')) {
      try {
        fileURLToPath(value);
      } catch (cause) {
        throw new WeftError('ERR_WEFT_INVALID_OPTION', `options.module is not a valid file: URL (got ${describe(value)})`, { cause });
      }
      return value;
    }
    const abs = resolvePath(value);
    return new URL(`file://${abs.split('/').map(encodeURIComponent).join('/')}`).href;
  }
  throw bad(`options.module must be a file: URL or a non-empty path string (got ${describe(value)})`);
}

function remotes(value: unknown): Required<RemoteEndpointOptions>[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw bad(`options.remote must be an array of { functions, url } (got ${describe(value)})`);
  return value.map((r: unknown, i) => {
    if (typeof r !== 'object' || r === null) throw bad(`options.remote[${i}] must be an object { functions, url } (got ${describe(r)})`);
    const { functions, url, timeoutMs, maxBatch, onExhausted, pauseMs, ...rest } = r as Record<string, unknown>;
    const extra = Object.keys(rest);
    if (extra.length > 0) throw bad(`options.remote[${i}] has an unknown key ${describe(extra[0])}`);
    if (typeof functions !== 'string' || !/^[A-Za-z0-9_.-]+\/(\*|[A-Za-z0-9_.-]+)$/.test(functions)) {
      throw bad(`options.remote[${i}].functions must be 'namespace/*' or 'namespace/name' (got ${describe(functions)})`);
    }
    let parsed: URL | undefined;
    try {
      parsed = typeof url === 'string' ? new URL(url) : undefined;
    } catch {
      parsed = undefined;
    }
    if (parsed === undefined || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')) {
      throw bad(`options.remote[${i}].url must be an http:// or https:// URL (got ${describe(url)})`);
    }
    if (onExhausted !== undefined && onExhausted !== 'pause' && onExhausted !== 'dead-letter') {
      throw bad(`options.remote[${i}].onExhausted must be 'pause' or 'dead-letter' (got ${describe(onExhausted)})`);
    }
    return {
      functions,
      url: parsed.href,
      timeoutMs: intOption(`remote[${i}].timeoutMs`, timeoutMs, DEFAULTS.remoteTimeoutMs, 1, 24 * 3600 * 1000),
      maxBatch: intOption(`remote[${i}].maxBatch`, maxBatch, DEFAULTS.remoteMaxBatch, 1, 10_000),
      onExhausted: onExhausted ?? DEFAULTS.remoteOnExhausted,
      pauseMs: intOption(`remote[${i}].pauseMs`, pauseMs, DEFAULTS.remotePauseMs, 1, 3_600_000),
    };
  });
}

/**
 * Validates the options an invocation runs under (see {@link InvocationSettings}, without the
 * deadline), read from `o` by the same names and with the same messages for `Weft.start` and
 * `createTestHarness`.
 */
export function resolveInvocationSettings(o: Record<string, unknown>): Required<Omit<InvocationSettings, 'invocationTimeoutMs'>> {
  return {
    maxAttempts: intOption('maxAttempts', o.maxAttempts, DEFAULTS.maxAttempts, 1, 1000),
    retryBackoffMs: intOption('retryBackoffMs', o.retryBackoffMs, DEFAULTS.retryBackoffMs, 0, 3_600_000),
    maxMessageBytes: intOption('maxMessageBytes', o.maxMessageBytes, DEFAULTS.maxMessageBytes, 1024, 64 * 1024 * 1024),
    maxStateValueBytes: intOption('maxStateValueBytes', o.maxStateValueBytes, DEFAULTS.maxStateValueBytes, 1024, 256 * 1024 * 1024),
    idempotencyRetentionMs: intOption('idempotencyRetentionMs', o.idempotencyRetentionMs, DEFAULTS.idempotencyRetentionMs, 1, MAX_IDEMPOTENCY_RETENTION_MS),
  };
}

/** Validates `Weft.start` options; every message names the option and the value it got. */
export function resolveOptions(options: unknown, env: NodeJS.ProcessEnv = process.env): ResolvedOptions {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw bad(`Weft.start options must be an object (got ${describe(options)})`);
  }
  const o = options as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (key === 'egressBufferSize') throw bad('option "egressBufferSize" was replaced by "egressMaxBacklog": committed egress records now wait in the data dir until acknowledged, and are never dropped (see the README)');
    if (!KNOWN.has(key)) throw bad(`unknown option ${describe(key)}`);
  }
  if (o.module === undefined) throw bad('options.module is required: the URL or path of the function module');
  const dataDir = o.dataDir ?? DEFAULTS.dataDir;
  if (typeof dataDir !== 'string' || dataDir.length === 0) {
    throw bad(`options.dataDir must be a non-empty path string (got ${describe(dataDir)})`);
  }
  const durability = o.durability ?? DEFAULTS.durability;
  if (durability !== 'fsync' && durability !== 'process') {
    throw bad(`options.durability must be 'fsync' or 'process' (got ${describe(durability)})`);
  }
  const keyGroups = intOption('keyGroups', o.keyGroups, DEFAULTS.keyGroups, 1, MAX_KEY_GROUPS);
  const shards = resolveShards(o.shards, env);
  if (o.keyGroups !== undefined && typeof o.shards === 'number' && shards > keyGroups) {
    throw bad(`options.shards is ${shards}, more than options.keyGroups (${keyGroups}): each shard owns at least one key group`);
  }
  const invocation = resolveInvocationSettings(o);
  const maxMessageBytes = invocation.maxMessageBytes;
  const ringBytes = intOption('ringBytes', o.ringBytes, DEFAULTS.ringBytes, 64 * 1024, 1024 * 1024 * 1024);
  if ((ringBytes & (ringBytes - 1)) !== 0) throw bad(`options.ringBytes must be a power of two (got ${ringBytes})`);
  if (ringBytes < maxMessageBytes * 4) {
    throw bad(`options.ringBytes (${ringBytes}) must be at least 4 × options.maxMessageBytes (${maxMessageBytes})`);
  }
  return Object.freeze({
    ...invocation,
    moduleUrl: moduleUrl(o.module),
    shards,
    dataDir: resolvePath(dataDir),
    checkpointIntervalMs: intOption('checkpointIntervalMs', o.checkpointIntervalMs, DEFAULTS.checkpointIntervalMs, 0, 24 * 3600 * 1000),
    durability,
    computeThreads: intOption('computeThreads', o.computeThreads, DEFAULTS.computeThreads, 0, 1024),
    remote: Object.freeze(remotes(o.remote)),
    keyGroups,
    keyGroupsGiven: o.keyGroups !== undefined,
    shardsAuto: typeof o.shards !== 'number',
    cacheSize: intOption('cacheSize', o.cacheSize, DEFAULTS.cacheSize, 16),
    ringBytes,
    requestTimeoutMs: intOption('requestTimeoutMs', o.requestTimeoutMs, DEFAULTS.requestTimeoutMs, 1),
    invocationTimeoutMs: intOption('invocationTimeoutMs', o.invocationTimeoutMs, DEFAULTS.invocationTimeoutMs, 50, 24 * 3600 * 1000),
    closeTimeoutMs: intOption('closeTimeoutMs', o.closeTimeoutMs, DEFAULTS.closeTimeoutMs, 0),
    egressMaxBacklog: intOption('egressMaxBacklog', o.egressMaxBacklog, DEFAULTS.egressMaxBacklog, 1),
    egressFullWaitMs: intOption('egressFullWaitMs', o.egressFullWaitMs, DEFAULTS.egressFullWaitMs, 0, 24 * 3600 * 1000),
    shardYoungGenerationMb: intOption('shardYoungGenerationMb', o.shardYoungGenerationMb, DEFAULTS.shardYoungGenerationMb, 1, 4096),
    shardSemiSpaceMb: intOption('shardSemiSpaceMb', o.shardSemiSpaceMb, defaultShardSemiSpaceMb(shards), 0, 1024),
    shardMemoryReducer: boolOption('shardMemoryReducer', o.shardMemoryReducer, false),
    maxShardHeapMb: o.maxShardHeapMb === undefined ? undefined : intOption('maxShardHeapMb', o.maxShardHeapMb, 0, 16, 1024 * 1024),
  });
}
