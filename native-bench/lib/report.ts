/**
 * Results of the suite: each workload returns figures (a value, its unit, the measured runs,
 * ratios to the baselines measured in the same process run, and the target when there
 * is one); run.ts prints them as one table and writes them as JSON for scripts to compare.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface Target {
  /** 'min': value must be >= bound; 'max': value must be <= bound. */
  kind: 'min' | 'max';
  bound: number;
  /** How the issue states it, e.g. ">= 2.5M msg/s". */
  text: string;
}

export interface Figure {
  /** Stable key for scripts, e.g. "a.processed". */
  key: string;
  label: string;
  value: number;
  unit: string;
  /** Every measured run (the value is their median), when repeated. */
  runs?: number[];
  /** value / baseline value, same process run. */
  ratios?: { inProcess?: number; postMessage?: number; rawRing?: number } | undefined;
  target?: Target;
}

export interface WorkloadResult {
  id: string;
  title: string;
  figures: Figure[];
  /** Budget and setup, in words. */
  setup: string;
  notMeasured: string;
  /** 1-minute load average at the start and end of the workload. */
  load: [number, number];
  extra?: Record<string, unknown>;
}

export interface BenchContext {
  quick: boolean;
  /** Run the baselines next to weft (off: weft only, e.g. under a profiler). */
  baselines: boolean;
  log(line: string): void;
}

export function meets(f: Figure): boolean | undefined {
  if (f.target === undefined) return undefined;
  return f.target.kind === 'min' ? f.value >= f.target.bound : f.value <= f.target.bound;
}

function fmtValue(v: number, unit: string): string {
  if (!Number.isFinite(v)) return String(v);
  if (unit === 'msg/s' || unit === 'req/s') {
    if (v >= 1e6) return `${(v / 1e6).toFixed(2)}M`;
    if (v >= 1e3) return `${(v / 1e3).toFixed(0)}k`;
    return v.toFixed(0);
  }
  if (Math.abs(v) >= 100) return v.toFixed(0);
  if (Math.abs(v) >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

const ratio = (r: number | undefined): string => (r === undefined ? '' : `${r.toFixed(2)}x`);

export function printTable(results: WorkloadResult[]): void {
  const rows = [['figure', 'value', 'unit', 'vs in-proc', 'vs postMessage', 'vs raw ring', 'target', 'ok']];
  for (const w of results) {
    rows.push([`${w.id}) ${w.title}`, '', '', '', '', '', '', '']);
    for (const f of w.figures) {
      const ok = meets(f);
      rows.push([
        `  ${f.label}`,
        fmtValue(f.value, f.unit),
        f.unit,
        ratio(f.ratios?.inProcess),
        ratio(f.ratios?.postMessage),
        ratio(f.ratios?.rawRing),
        f.target?.text ?? '',
        ok === undefined ? '' : ok ? 'yes' : 'NO',
      ]);
    }
  }
  const widths = (rows[0] as string[]).map((_, c) => Math.max(...rows.map((r) => (r[c] as string).length)));
  const line = (r: string[]): string => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c] as number) : cell.padStart(widths[c] as number))).join('  ');
  console.log(line(rows[0] as string[]));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows.slice(1)) console.log(line(r));
}

/** Writes `native-bench/results/<name>.json` (the source tree's folder, not dist's). */
export function writeResults(name: string, data: unknown): string {
  const dirUrl = new URL('../../../native-bench/results/', import.meta.url);
  mkdirSync(fileURLToPath(dirUrl), { recursive: true });
  const file = fileURLToPath(new URL(`${name}.json`, dirUrl));
  writeFileSync(file, `${JSON.stringify(data, null, 2)}\n`);
  return file;
}
