import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    setupFiles: ['test/support/setup.ts'],
    // These machines have two cores: run test files in two forks, not more.
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Tests print their own progress to stdout only on failure.
    silent: 'passed-only',
    env: { CONCORDAT_LOG_LEVEL: process.env.CONCORDAT_LOG_LEVEL ?? 'silent' },
  },
});
