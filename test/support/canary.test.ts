import { expect, it } from 'vitest';

/**
 * `.ci/run` runs this file once with CONCORDAT_CANARY=fail and requires a
 * non-zero exit: proof that a failing test fails the run (a dependency's exit
 * hook once turned every failed run into exit code 0).
 */
it('fails on demand, so CI can check that failures reach the exit code', () => {
  expect(process.env.CONCORDAT_CANARY).not.toBe('fail');
});
