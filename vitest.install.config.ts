import { defineConfig } from 'vitest/config';

// `npm run test:install`: packs the repository (which builds it through `prepare`) and installs
// the tarball into a temporary project. It takes about a minute, so it is not part of `npm test`.
export default defineConfig({
  test: {
    include: ['test/install/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 5 * 60_000,
  },
});
