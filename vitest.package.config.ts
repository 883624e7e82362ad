import { defineConfig } from 'vitest/config';

/**
 * `npm run test:package`: the packed package installed into a fresh project
 * (test/e2e/packed-package.e2e.ts). Minutes long (build, install, two
 * compilations), so not part of `npm test`; `.ci/run` runs it.
 */
export default defineConfig({
  test: {
    include: ['test/e2e/**/*.e2e.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    setupFiles: ['test/support/setup.ts'],
    pool: 'forks',
    maxWorkers: 1,
    testTimeout: 600_000,
    hookTimeout: 1_200_000,
    silent: 'passed-only',
    env: { CONCORDAT_LOG_LEVEL: process.env.CONCORDAT_LOG_LEVEL ?? 'silent' },
  },
});
