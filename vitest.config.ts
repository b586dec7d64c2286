import { defineConfig } from 'vitest/config';

// lmdb is a native addon: the `forks` pool keeps each test file in its own process, which is the
// safe way to load it. Worker threads spawned by the engine load compiled JS from
// dist/, which `npm test` builds first.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: ['test/**/*.soak.test.ts', 'test/interop/**', 'test/install/**', 'node_modules/**'],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 60_000,
    fileParallelism: true,
    maxWorkers: 2,
  },
});
