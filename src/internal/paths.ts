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
