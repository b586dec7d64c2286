import { defineConfig } from 'vitest/config';

// Interop suites run weft against real peers started by the tests themselves (a Flink StateFun
// runtime, the StateFun Python SDK, a Restate server). They need Java, Python and downloads from
// Maven Central / PyPI / npm, so they run as `npm run test:interop`, apart from `npm test`.
export default defineConfig({
  test: {
    include: ['test/interop/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 10 * 60_000,
    hookTimeout: 15 * 60_000,
    fileParallelism: false,
    maxWorkers: 1,
  },
});
