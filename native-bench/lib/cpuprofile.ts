/**
 * Summarizes the `.cpuprofile` files that `node --cpu-prof --cpu-prof-dir=DIR` writes (one per
 * thread: the main thread and every worker) into the top functions by SELF time and by
 * INCLUSIVE time, per thread, plus a coarse breakdown by source file. Times come from the
 * profile's own sample deltas, not hit counts times an assumed interval.
 *
 *   node --cpu-prof --cpu-prof-dir=/tmp/prof --cpu-prof-interval 100 dist/native-bench/run.js --only a --no-baselines
 *   node dist/native-bench/lib/cpuprofile.js /tmp/prof [top=25]
 *
 * A thread is named by the engine files it spends time in (weft.js → main, shard-loop.js →
 * shard) and by the thread id in the file name.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface FunctionTime {
  name: string;
  file: string;
  line: number;
  selfMs: number;
  totalMs: number;
}

export interface ThreadProfile {
  file: string;
  thread: string;
  wallMs: number;
  /** Sampled time not idle (excluding "(idle)" and "(program)"'s idle share). */
  busyMs: number;
  idleMs: number;
  gcMs: number;
  functions: FunctionTime[];
  byFile: Array<{ file: string; selfMs: number }>;
}

function shortUrl(url: string): string {
  if (url === '') return '';
  const m = /\/(dist\/.*|node_modules\/.*)$/.exec(url);
  if (m !== null) return (m[1] as string).replace(/^dist\//, '');
  if (url.startsWith('node:')) return url;
  return basename(url);
}

function key(cf: CallFrame): string {
  return `${cf.functionName || '(anonymous)'}\u0000${shortUrl(cf.url)}\u0000${cf.lineNumber}`;
}

export function summarize(path: string): ThreadProfile {
  const p = JSON.parse(readFileSync(path, 'utf8')) as Profile;
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of p.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  const fileSelf = new Map<string, number>();
  let idle = 0;
  let gc = 0;
  let all = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const id = p.samples[i] as number;
    // timeDeltas[i] is the time before sample i; attributing it to sample i is V8's convention.
    const dt = (p.timeDeltas[i] ?? 0) / 1000;
    all += dt;
    const node = byId.get(id);
    if (node === undefined) continue;
    const cf = node.callFrame;
    if (cf.functionName === '(idle)') {
      idle += dt;
      continue;
    }
    if (cf.functionName === '(garbage collector)') gc += dt;
    const k = key(cf);
    self.set(k, (self.get(k) ?? 0) + dt);
    const f = shortUrl(cf.url) || cf.functionName;
    fileSelf.set(f, (fileSelf.get(f) ?? 0) + dt);
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const n = byId.get(at);
      if (n === undefined) break;
      const kk = key(n.callFrame);
      if (seen.has(kk)) continue;
      seen.add(kk);
      total.set(kk, (total.get(kk) ?? 0) + dt);
    }
  }
  const functions: FunctionTime[] = [...self.keys(), ...[...total.keys()].filter((k) => !self.has(k))].map((k) => {
    const [name, file, line] = k.split('\u0000') as [string, string, string];
    return { name, file, line: Number(line) + 1, selfMs: self.get(k) ?? 0, totalMs: total.get(k) ?? 0 };
  });
  const files = [...fileSelf.keys()];
  const thread = files.some((f) => f.includes('shard/shard-loop.js'))
    ? 'shard'
    : files.some((f) => f.includes('src/host/'))
      ? 'main'
      : files.some((f) => f.includes('baselines/'))
        ? 'baseline'
        : 'other';
  const tid = /\.(\d+)\.(\d+)\.cpuprofile$/.exec(basename(path));
  return {
    file: basename(path),
    thread: `${thread}${tid === null ? '' : ` (tid ${tid[1]})`}`,
    wallMs: (p.endTime - p.startTime) / 1000,
    busyMs: all - idle,
    idleMs: idle,
    gcMs: gc,
    functions,
    byFile: [...fileSelf.entries()].map(([file, selfMs]) => ({ file, selfMs })).sort((a, b) => b.selfMs - a.selfMs),
  };
}

export function report(t: ThreadProfile, top: number): string {
  const pct = (ms: number): string => `${((100 * ms) / Math.max(1e-9, t.busyMs)).toFixed(1)}%`;
  const lines: string[] = [];
  lines.push(`== ${t.thread}: ${t.file}`);
  lines.push(`   wall ${t.wallMs.toFixed(0)} ms, busy ${t.busyMs.toFixed(0)} ms, idle ${t.idleMs.toFixed(0)} ms, GC ${t.gcMs.toFixed(0)} ms (${pct(t.gcMs)} of busy)`);
  lines.push('   top self time (% of busy):');
  for (const f of [...t.functions].sort((a, b) => b.selfMs - a.selfMs).slice(0, top)) {
    lines.push(`   ${pct(f.selfMs).padStart(6)} ${f.selfMs.toFixed(0).padStart(6)} ms  ${f.name}  ${f.file}:${f.line}`);
  }
  lines.push('   top inclusive time:');
  for (const f of [...t.functions].filter((f) => f.file !== '' && !f.name.startsWith('(')).sort((a, b) => b.totalMs - a.totalMs).slice(0, top)) {
    lines.push(`   ${pct(f.totalMs).padStart(6)} ${f.totalMs.toFixed(0).padStart(6)} ms  ${f.name}  ${f.file}:${f.line}`);
  }
  lines.push('   self time by file:');
  for (const f of t.byFile.slice(0, 15)) lines.push(`   ${pct(f.selfMs).padStart(6)} ${f.selfMs.toFixed(0).padStart(6)} ms  ${f.file}`);
  return lines.join('\n');
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const dir = process.argv[2];
  if (dir === undefined) {
    console.error('usage: node dist/native-bench/lib/cpuprofile.js <dir with .cpuprofile files> [top]');
    process.exit(2);
  }
  const top = Number(process.argv[3] ?? '25');
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).sort();
  for (const f of files) console.log(`${report(summarize(join(dir, f)), top)}\n`);
}
