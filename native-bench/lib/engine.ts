/**
 * Starting and stopping engines for the suite: each configuration gets a fresh data directory
 * under the OS temp dir (removed when the engine closes, and at exit) unless the caller passes
 * one to reuse (the 1M-instance workloads reopen theirs).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Weft, type WeftOptions } from '../../src/index.js';

const dirs = new Set<string>();
process.on('exit', () => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A fresh temp directory, removed at process exit at the latest. */
export function tempDir(tag: string): string {
  const d = mkdtempSync(join(tmpdir(), `weft-nb-${tag}-`));
  dirs.add(d);
  return d;
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  dirs.delete(dir);
}

/** The bench modules, compiled next to this file (dist/native-bench/modules). */
export function moduleUrl(name: string): URL {
  return new URL(`../modules/${name}.js`, import.meta.url);
}

export interface EngineHandle {
  weft: Weft;
  dir: string;
  /** Milliseconds `Weft.start` took (spawn, open partitions, recover). */
  startMs: number;
  /** Closes the engine; removes the data dir unless `keep`. */
  close(keep?: boolean): Promise<void>;
}

export type EngineOptions = Omit<WeftOptions, 'module' | 'dataDir'> & { module: string; dataDir?: string };

/**
 * Starts an engine on `opts.dataDir` or a fresh temp dir. Durability defaults to 'process' (what
 * a figure without disk syncs measures); callers pass 'fsync' where syncs are the point.
 */
export async function startEngine(tag: string, opts: EngineOptions): Promise<EngineHandle> {
  const { module, dataDir, ...rest } = opts;
  const dir = dataDir ?? tempDir(tag);
  const t0 = performance.now();
  const weft = await Weft.start({ durability: 'process', ...rest, module: moduleUrl(module), dataDir: dir });
  const startMs = performance.now() - t0;
  return {
    weft,
    dir,
    startMs,
    async close(keep = false) {
      await weft.close();
      if (!keep) removeDir(dir);
    },
  };
}

/** Sum of a per-shard counter from `weft.metrics()`. */
export function sumShards(weft: Weft, name: 'invocations' | 'remoteSends' | 'localSends' | 'cacheMisses' | 'cacheHits' | 'cacheInstances' | 'cacheEvictions' | 'ringSpilledFrames' | 'checkpoints' | 'turns'): number {
  let n = 0;
  for (const s of weft.metrics().shards) n += s[name];
  return n;
}

/** The pause figures of one shard (shard/pauses.ts), read from `weft.metrics()`. */
export interface ShardPauses {
  shard: number;
  turns: number;
  gcPauses: number;
  gcPausesOver2Ms: number;
  gcPauseTotalMs: number;
  gcPauseMaxMs: number;
  loopGapsOver2Ms: number;
  loopGapsOver50Ms: number;
  loopGapMaxMs: number;
}

export function shardPauses(weft: Weft): ShardPauses[] {
  return weft.metrics().shards.map((s) => ({
    shard: s.shard,
    turns: s.turns,
    gcPauses: s.gcPauses,
    gcPausesOver2Ms: s.gcPausesOver2Ms,
    gcPauseTotalMs: s.gcPauseTotalMs,
    gcPauseMaxMs: s.gcPauseMaxMs,
    loopGapsOver2Ms: s.loopGapsOver2Ms,
    loopGapsOver50Ms: s.loopGapsOver50Ms,
    loopGapMaxMs: s.loopGapMaxMs,
  }));
}

/**
 * Per shard, the counts between two readings (turns, GC pauses, pauses and gaps over the bounds,
 * GC time) and the longest pause and gap of the later one — since the shard started: the engine
 * keeps no per-window maximum, so a phase's longest shows only when it beat every earlier one.
 */
export function pausesBetween(before: readonly ShardPauses[], after: readonly ShardPauses[]): ShardPauses[] {
  return after.map((a, i) => {
    const b = before[i] as ShardPauses;
    return {
      shard: a.shard,
      turns: a.turns - b.turns,
      gcPauses: a.gcPauses - b.gcPauses,
      gcPausesOver2Ms: a.gcPausesOver2Ms - b.gcPausesOver2Ms,
      gcPauseTotalMs: a.gcPauseTotalMs - b.gcPauseTotalMs,
      gcPauseMaxMs: a.gcPauseMaxMs,
      loopGapsOver2Ms: a.loopGapsOver2Ms - b.loopGapsOver2Ms,
      loopGapsOver50Ms: a.loopGapsOver50Ms - b.loopGapsOver50Ms,
      loopGapMaxMs: a.loopGapMaxMs,
    };
  });
}
