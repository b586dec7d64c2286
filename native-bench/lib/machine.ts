/**
 * What a figure was measured on: CPU, Node, load average, and the process's memory as Linux
 * accounts it. Worker threads share the process, so `/proc/self/status` (and
 * `process.memoryUsage().rss`) already sum main and every shard worker; it also counts the
 * pages of LMDB's memory-mapped files that the process touched (RssFile), which is why anonymous
 * and file-backed resident memory are reported apart.
 */
import { readFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';

export interface MachineInfo {
  cpus: number;
  model: string;
  node: string;
  totalMemMb: number;
  platform: string;
}

export function machineInfo(): MachineInfo {
  const c = cpus();
  return {
    cpus: c.length,
    model: c[0]?.model ?? 'unknown',
    node: process.version,
    totalMemMb: Math.round(totalmem() / 2 ** 20),
    platform: `${process.platform}-${process.arch}`,
  };
}

/** 1-minute load average. */
export function load1(): number {
  return loadavg()[0] ?? 0;
}

export interface ProcessMemory {
  /** Resident set, whole process (all threads), MiB. */
  rssMb: number;
  /** Peak resident set since the process started (VmHWM), MiB. */
  peakRssMb: number;
  /** Anonymous resident memory (JS heaps, native allocations), MiB. */
  anonMb: number;
  /** File-backed resident memory (mapped LMDB pages, code), MiB. */
  fileMb: number;
  /** Main thread's V8 heap only (workers' heaps are not visible from here), MiB. */
  mainHeapUsedMb: number;
}

function statusField(status: string, name: string): number {
  const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status);
  return m === null ? Number.NaN : Number(m[1]) / 1024;
}

export function processMemory(): ProcessMemory {
  let status = '';
  try {
    status = readFileSync('/proc/self/status', 'utf8');
  } catch {
    // Not Linux: only what Node reports.
  }
  const rss = process.memoryUsage.rss() / 2 ** 20;
  return {
    rssMb: rss,
    peakRssMb: status === '' ? Number.NaN : statusField(status, 'VmHWM'),
    anonMb: status === '' ? Number.NaN : statusField(status, 'RssAnon'),
    fileMb: status === '' ? Number.NaN : statusField(status, 'RssFile'),
    mainHeapUsedMb: process.memoryUsage().heapUsed / 2 ** 20,
  };
}

/**
 * Samples the process RSS every `everyMs` until stopped; returns the highest sample. VmHWM is a
 * peak over the whole process life, so a phase's own peak needs sampling.
 */
export function rssSampler(everyMs = 20): { stop(): ProcessMemory & { sampledPeakRssMb: number } } {
  let peak = process.memoryUsage.rss();
  const timer = setInterval(() => {
    const r = process.memoryUsage.rss();
    if (r > peak) peak = r;
  }, everyMs);
  return {
    stop() {
      clearInterval(timer);
      const r = process.memoryUsage.rss();
      if (r > peak) peak = r;
      return { ...processMemory(), sampledPeakRssMb: peak / 2 ** 20 };
    },
  };
}
