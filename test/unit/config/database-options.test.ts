import { afterEach, describe, expect, it, vi } from 'vitest';
import { compileDatabaseOptions } from '../../../src/config/index.js';
import { ConcordatError, ErrorCode } from '../../../src/errors.js';

/** What compileDatabaseOptions threw (the test fails when it did not throw). */
function thrown(work: () => unknown): ConcordatError {
  try {
    work();
  } catch (error) {
    return error as ConcordatError;
  }
  throw new Error('expected an error, none was thrown');
}

describe('database options: a bad URL names where it came from (issue 10 §3)', () => {
  afterEach(() => {
    vi.unstubAllEnvs();
  });

  it('a DATABASE_URL that is not a postgres:// URL names DATABASE_URL, not database.url, and hides the password', () => {
    vi.stubEnv('DATABASE_URL', 'mysql://app:s3cret@db:3306/shop');
    const error = thrown(() => compileDatabaseOptions({}));
    expect(error.code).toBe(ErrorCode.CONFIG_INVALID);
    expect(error.message).toBe(
      'invalid environment: DATABASE_URL: must be a postgres:// URL (postgres://user:password@host:port/database) (got "mysql://app:***@db:3306/shop")',
    );
    expect(error.message).not.toContain('database.url');
    expect(error.message).not.toContain('s3cret');
  });

  it('a DATABASE_URL that does not parse (a # in the password) names DATABASE_URL and says how to fix it', () => {
    vi.stubEnv('DATABASE_URL', 'postgres://app:pa#ss@db:5432/shop');
    const error = thrown(() => compileDatabaseOptions({}));
    expect(error.code).toBe(ErrorCode.CONFIG_INVALID);
    expect(error.message).toBe(
      'invalid environment: DATABASE_URL: is not a valid URL: percent-encode special characters in the user name and password (@ as %40, # as %23, / as %2F) (got "postgres://***@db:5432/shop")',
    );
  });

  it('the same mistake in the option names database.url; an empty DATABASE_URL counts as unset', () => {
    vi.stubEnv('DATABASE_URL', '');
    const error = thrown(() => compileDatabaseOptions({ url: 'mysql://app:s3cret@db/shop' }));
    expect(error.message).toBe(
      'invalid options: database.url: must be a postgres:// URL (postgres://user:password@host:port/database) (got "mysql://app:***@db/shop")',
    );
    expect(compileDatabaseOptions({}).urlOrigin).toBe('embedded');
  });

  it('the option wins over the environment, and each compiled URL records its origin', () => {
    vi.stubEnv('DATABASE_URL', 'mysql://not-used');
    expect(compileDatabaseOptions({ url: 'postgres://h/db' })).toMatchObject({ url: 'postgres://h/db', urlOrigin: 'database.url' });
    vi.stubEnv('DATABASE_URL', 'postgresql://h/db');
    expect(compileDatabaseOptions({})).toMatchObject({ url: 'postgresql://h/db', urlOrigin: 'DATABASE_URL' });
  });

  it('connectRetry: defaults (one attempt), and ranges named', () => {
    expect(compileDatabaseOptions({ url: 'postgres://h/db' }).connectRetry).toEqual({ timeoutMs: 0, initialDelayMs: 250, maxDelayMs: 5000 });
    expect(
      thrown(() => compileDatabaseOptions({ url: 'postgres://h/db', connectRetry: { timeoutMs: 1000, initialDelayMs: 800, maxDelayMs: 400 } })).message,
    ).toBe('invalid options: database.connectRetry.initialDelayMs: must not exceed maxDelayMs (got 800)');
    expect(thrown(() => compileDatabaseOptions({ url: 'postgres://h/db', connectRetry: { timeoutMs: -1 } })).message).toContain(
      'database.connectRetry.timeoutMs',
    );
  });
});
