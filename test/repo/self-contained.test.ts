/**
 * The repository explains itself: every file path its sources, tests and docs mention exists in
 * it (a renamed file leaves no stale pointer behind), and nothing points at documents outside it.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../', import.meta.url));

/** Text files git tracks (and new ones it does not ignore), outside vendored interop material. */
function trackedText(): string[] {
  const out = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard'], { cwd: root, encoding: 'utf8' });
  return out
    .split('\n')
    .filter((f) => /\.(ts|mts|js|cjs|mjs|md|json|py|java|yaml|yml)$/.test(f) && !f.startsWith('interop/python/.venv') && f !== 'package-lock.json')
    .filter((f) => existsSync(`${root}/${f}`));
}

/** `src/…`, `test/…`, `examples/…`, `native-bench/…`, `docs/…` paths with an extension. */
const PATH = /(?<![\w./-])((?:src|test|examples|native-bench|docs|interop)\/[\w./-]+\.(?:ts|js|md|json|cjs|mjs|py|java|yaml))\b/g;

/** Where a mentioned path may live: as written, or its TypeScript source when it names compiled JS. */
function exists(path: string): boolean {
  const candidates = [path, path.replace(/\.js$/, '.ts'), path.replace(/^dist\//, '')];
  return candidates.some((c) => existsSync(`${root}/${c}`));
}

describe('the repository is self-contained', () => {
  const files = trackedText();

  it('reads a sensible number of files', () => {
    expect(files.length).toBeGreaterThan(100);
  });

  it('every file path a source, test or doc mentions exists (generated results and build output aside)', () => {
    const stale: string[] = [];
    for (const f of files) {
      const text = readFileSync(`${root}/${f}`, 'utf8');
      for (const m of text.matchAll(PATH)) {
        const p = m[1]!.replace(/\.$/, '');
        if (p.startsWith('native-bench/results/')) continue; // written by the benchmarks
        if (!exists(p)) stale.push(`${f}: ${p}`);
      }
    }
    expect(stale).toEqual([]);
  });

  it('every file a source comment names exists (as `folder/file.ts` below src/, or a file name in src/)', () => {
    const sources = files.filter((f) => f.startsWith('src/') && f.endsWith('.ts'));
    const names = new Set(sources.map((f) => f.slice(f.lastIndexOf('/') + 1)));
    const stale: string[] = [];
    for (const f of sources) {
      const dir = f.slice(0, f.lastIndexOf('/'));
      const text = readFileSync(`${root}/${f}`, 'utf8');
      for (const m of text.matchAll(/(?<![\w.@/-])((?:[a-z][\w-]*\/)*[a-z][\w-]*\.ts)\b/g)) {
        const p = m[1]!;
        const known = p.includes('/') ? [p, `src/${p}`, `${dir}/${p}`].some((c) => existsSync(`${root}/${c}`)) : names.has(p);
        if (!known) stale.push(`${f}: ${p}`);
      }
    }
    expect(stale).toEqual([]);
  });

  it('nothing points at documents outside the repository', () => {
    const outside: string[] = [];
    for (const f of files) {
      const text = readFileSync(`${root}/${f}`, 'utf8');
      if (/\.\.\/shared\/|\/work\/|\.\.\/\.library/.test(text)) outside.push(f);
    }
    expect(outside).toEqual([]);
  });
});
