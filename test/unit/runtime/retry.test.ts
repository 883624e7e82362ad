import { describe, expect, it } from 'vitest';
import { compileRetryPolicy, retryDelayMs } from '../../../src/runtime/index.js';

describe('retry policies', () => {
  it('exponential: doubles from the initial delay, capped, with equal jitter', () => {
    const policy = compileRetryPolicy({ initialDelayMs: 100, maxDelayMs: 1000, jitter: 0.5 });
    const noJitter = () => 0;
    expect([1, 2, 3, 4, 5, 6].map((attempt) => retryDelayMs(policy, attempt, noJitter))).toEqual([100, 200, 400, 800, 1000, 1000]);
    // random() close to 1 takes off up to half of the delay
    expect(retryDelayMs(policy, 3, () => 0.999999)).toBe(200);
    for (let i = 0; i < 100; i++) {
      const delay = retryDelayMs(policy, 4);
      expect(delay).toBeGreaterThanOrEqual(400);
      expect(delay).toBeLessThanOrEqual(800);
    }
  });

  it('fixed and immediate', () => {
    expect(retryDelayMs(compileRetryPolicy({ strategy: 'fixed', initialDelayMs: 250 }), 7)).toBe(250);
    expect(retryDelayMs(compileRetryPolicy({ strategy: 'immediate' }), 3)).toBe(0);
  });

  it('names the option that is wrong', () => {
    expect(() => compileRetryPolicy({ initialDelayMs: 5000, maxDelayMs: 100 })).toThrow(
      'invalid options: retry.initialDelayMs: initialDelayMs must not exceed maxDelayMs (got 5000)',
    );
    expect(() => compileRetryPolicy({ strategy: 'linear' as never })).toThrow(
      /retry\.strategy: Invalid option: expected one of "immediate"\|"fixed"\|"exponential" \(got "linear"\)/,
    );
  });
});

describe('what counts as the database being unreachable', () => {
  it('reads SQLSTATE classes 08, 57P01-57P03 and 53300, through TypeORM wrappers and causes', async () => {
    const { isDatabaseUnavailable } = await import('../../../src/runtime/index.js');
    const withCode = (code: string): Error => Object.assign(new Error('x'), { code });
    expect(['08006', '08001', '57P01', '57P02', '57P03', '53300'].map((code) => isDatabaseUnavailable(withCode(code)))).toEqual([
      true,
      true,
      true,
      true,
      true,
      true,
    ]);
    expect(['23505', '40001', '40P01', '42P01', '57014'].map((code) => isDatabaseUnavailable(withCode(code)))).toEqual([false, false, false, false, false]);
    // 08P01 (protocol violation) answers a malformed statement on a connection that stays usable: the dispatcher asks the database.
    expect(isDatabaseUnavailable(withCode('08P01'))).toBe(false);
    expect(isDatabaseUnavailable(Object.assign(new Error('query failed'), { driverError: withCode('08P01') }))).toBe(false);
    expect(['08000', '08003', '08004', '08007'].map((code) => isDatabaseUnavailable(withCode(code)))).toEqual([true, true, true, true]);
    expect(isDatabaseUnavailable(Object.assign(new Error('query failed'), { driverError: withCode('57P01') }))).toBe(true);
    expect(isDatabaseUnavailable(new Error('outer', { cause: new Error('Connection terminated unexpectedly') }))).toBe(true);
    expect(isDatabaseUnavailable(new Error('timeout exceeded when trying to connect'))).toBe(true);
    // A refused socket alone is not proof (it may be the handler's own HTTP call): the dispatcher asks the database.
    expect(isDatabaseUnavailable(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }))).toBe(false);
    expect(isDatabaseUnavailable('a string')).toBe(false);
  });

  it('exponential delays never exceed maxDelayMs, whatever the attempt', () => {
    const policy = compileRetryPolicy({ initialDelayMs: 50, maxDelayMs: 300, multiplier: 10, jitter: 0 });
    expect([1, 2, 3, 50, 100].map((attempt) => retryDelayMs(policy, attempt))).toEqual([50, 300, 300, 300, 300]);
  });
});
