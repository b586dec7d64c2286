/**
 * Worker threads on Node 20 cannot load TypeScript, so every thread weft spawns runs compiled JS
 * from `dist/` (built by `npm run build`, which `npm test` and `npm start` run first). When weft's
 * own sources run under a TS-aware runner (vitest imports `src/*.ts`), this maps a module inside
 * `src/` to its compiled twin in `dist/src/`, so tests exercise the same worker code users run.
 */
export function compiledUrl(relativeToSrc: string, from: string = import.meta.url): URL {
  const here = new URL('.', from);
  // Compiled: this file is dist/src/internal/paths.js, so src root is one level up.
  if (from.endsWith('.js')) return new URL(`../${relativeToSrc}`, here);
  // Source: src/internal/paths.ts -> <root>/dist/src/<relative>
  return new URL(`../../dist/src/${relativeToSrc}`, here);
}

/**
 * Workers inherit `process.execArgv`, and `--input-type` (as in `node --input-type=module -e`)
 * makes a worker's file entry fail to load: it is dropped. Otherwise `undefined` (inherit as is):
 * an explicit list is validated, and per-process flags such as `--trace-gc` would be refused.
 */
export function workerExecArgv(): string[] | undefined {
  const argv = process.execArgv;
  if (!argv.some((a) => a === '--input-type' || a.startsWith('--input-type='))) return undefined;
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--input-type') i++;
    else if (!a.startsWith('--input-type=')) out.push(a);
  }
  return out;
}
