import { join } from 'node:path';
import pg from 'pg';
import { DataSource, type EntityManager } from 'typeorm';
import { compileDatabaseOptions, DatabaseUrlOrigin, redactUrl, type CompiledDatabaseOptions, type DatabaseOptions } from '../config/index.js';
import { ConcordatError, describeError, ErrorCode, someCause } from '../errors.js';
import { createLogger, type Logger } from '../observability/index.js';
import { backoffMs, sleep } from '../util/index.js';
import { ensureDatabase, startEmbeddedPostgres, type RunningPostgres } from './embedded-postgres.js';
import { concordatEntities } from './entities/index.js';
import { concordatMigrations } from './migrations/index.js';
import { runTransaction } from './transaction.js';

/** An open connection pool to Concordat's Postgres, migrated. */
export interface Database {
  readonly dataSource: DataSource;
  /** The URL in use (the embedded server's when no URL was configured). */
  readonly url: string;
  /** Set when this process started the embedded PostgreSQL. */
  readonly embedded: RunningPostgres | undefined;
  readonly options: CompiledDatabaseOptions;
  /**
   * Runs `work` in one transaction (READ COMMITTED).
   * @throws ConcordatError TRANSACTION_ROLLED_BACK when `work` caught a failed statement's error and PostgreSQL rolled back (see {@link runTransaction})
   */
  transaction<T>(work: (manager: EntityManager) => Promise<T>): Promise<T>;
  /** Closes the pool, then stops the embedded PostgreSQL if this process started it. */
  close(): Promise<void>;
}

/** Arbitrary constant: the advisory lock key that serializes migrations across processes. */
const MIGRATION_LOCK_KEY = 0x436f6e63; // "Conc"

/**
 * Opens the database: the configured URL, `DATABASE_URL`, or an embedded
 * PostgreSQL; then runs Concordat's migrations and the application's, one
 * process at a time (advisory lock), so several services starting together
 * migrate once. With `connectRetry.timeoutMs`, waits for a server that
 * cannot be reached yet (see {@link DatabaseOptions.connectRetry}), logging
 * each wait on `logger`.
 *
 * @throws ConcordatError CONFIG_INVALID for bad options (naming `DATABASE_URL`
 *   when the bad URL came from there),
 *   EMBEDDED_POSTGRES_FAILED when the embedded server cannot start,
 *   DATABASE_UNAVAILABLE when the server cannot be reached (after
 *   `connectRetry.timeoutMs`) or refuses the connection,
 *   MIGRATION_FAILED when a migration fails.
 */
export async function openDatabase(input: DatabaseOptions = {}, logger: Logger = createLogger('persistence')): Promise<Database> {
  const options = compileDatabaseOptions(input);
  let embedded: RunningPostgres | undefined;
  let url = options.url;
  if (url === undefined) {
    embedded = await startEmbeddedPostgres({ dataDir: join(options.dataDir, 'postgres') });
    await ensureDatabase(embedded.url, 'concordat');
    url = embedded.url.replace(/\/postgres$/, '/concordat');
  }

  let dataSource: DataSource;
  try {
    dataSource = await connect(options, url, embedded === undefined ? options.connectRetry.timeoutMs : 0, logger);
  } catch (error) {
    await embedded?.stop();
    throw error;
  }

  try {
    if (options.runMigrations) await migrate(dataSource, url, logger);
  } catch (cause) {
    await dataSource.destroy();
    await embedded?.stop();
    throw cause;
  }

  let closed = false;
  return {
    dataSource,
    url,
    embedded,
    options,
    transaction: (work) => runTransaction(dataSource, work),
    close: async () => {
      if (closed) return;
      closed = true;
      await dataSource.destroy();
      await embedded?.stop();
    },
  };
}

/**
 * An initialized DataSource for `url`. A failure that says the server cannot
 * be reached or is starting up ({@link isServerNotReady}) is tried again
 * with exponential backoff (`connectRetry`) until `timeoutMs` have passed
 * since the first attempt, each wait logged; any other failure, or the last
 * one, throws DATABASE_UNAVAILABLE.
 */
async function connect(options: CompiledDatabaseOptions, url: string, timeoutMs: number, logger: Logger): Promise<DataSource> {
  const retry = { firstMs: options.connectRetry.initialDelayMs, maxMs: options.connectRetry.maxDelayMs };
  const startedAt = Date.now();
  for (let attempt = 1; ; attempt++) {
    const dataSource = newDataSource(options, url);
    try {
      await dataSource.initialize();
      if (attempt > 1) logger.info({ url: redact(url), attempts: attempt, waitedMs: Date.now() - startedAt }, 'database reachable');
      return dataSource;
    } catch (cause) {
      const waitedMs = Date.now() - startedAt;
      // The last delay is cut to what is left of timeoutMs, so the wait never exceeds it by more than an attempt.
      const nextDelayMs = Math.min(backoffMs(retry, attempt), timeoutMs - waitedMs);
      if (!isServerNotReady(cause) || nextDelayMs <= 0) throw unavailable(url, options, cause, attempt, waitedMs, timeoutMs);
      logger.warn(
        { err: causeText(cause), url: redact(url), attempt, waitedMs, nextDelayMs, timeoutMs },
        `database not reachable yet; next attempt in ${nextDelayMs} ms`,
      );
      await sleep(nextDelayMs);
    }
  }
}

function newDataSource(options: CompiledDatabaseOptions, url: string): DataSource {
  return new DataSource({
    type: 'postgres',
    url,
    entities: [...concordatEntities, ...options.entities],
    migrations: [...concordatMigrations, ...options.migrations],
    migrationsTableName: 'concordat_migrations',
    synchronize: false,
    logging: false,
    extra: { max: options.poolSize, connectionTimeoutMillis: options.connectTimeoutMs },
  });
}

/**
 * Socket errors of a server that is not (yet) there: refused, reset, no
 * route, a name that does not resolve yet (a container's DNS entry appears
 * with the container), and node-postgres's connect timeout.
 */
const NOT_READY_ERRNO: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EPIPE',
]);
const NOT_READY_MESSAGES = ['timeout expired', 'Connection terminated unexpectedly', 'Connection terminated due to connection timeout'];

/**
 * Whether a failed connection attempt may succeed later without anyone
 * changing the configuration: the server cannot be reached (socket errors
 * above) or answers that it is starting up or shutting down (SQLSTATE 57P03
 * cannot_connect_now, 57P01 admin_shutdown). A wrong password (28P01), a
 * missing database (3D000) or a bad URL are not: waiting would not help.
 */
export function isServerNotReady(error: unknown): boolean {
  return someCause(
    error,
    (current) =>
      (typeof current.code === 'string' && (NOT_READY_ERRNO.has(current.code) || current.code === '57P03' || current.code === '57P01')) ||
      (current instanceof AggregateError && current.errors.some((inner) => isServerNotReady(inner))) ||
      NOT_READY_MESSAGES.some((text) => current.message.includes(text)),
  );
}

/** A failure's message; an AggregateError's (node's connect to every address of a host) is empty, its errors' are not. */
function causeText(cause: unknown): string {
  if (cause instanceof AggregateError && cause.errors.length > 0) return cause.errors.map((inner) => causeText(inner)).join('; ');
  return cause instanceof Error && cause.message !== '' ? cause.message : describeError(cause);
}

function unavailable(url: string, options: CompiledDatabaseOptions, cause: unknown, attempts: number, waitedMs: number, timeoutMs: number): ConcordatError {
  const from = options.urlOrigin === DatabaseUrlOrigin.EMBEDDED ? 'the embedded PostgreSQL' : options.urlOrigin;
  const waited = attempts > 1 ? ` after ${attempts} attempts in ${waitedMs} ms` : '';
  const hint = !isServerNotReady(cause)
    ? `Check the URL in ${from} (user, password, database name).`
    : timeoutMs > 0
      ? `Check that PostgreSQL runs and accepts TCP connections there, or wait longer with database.connectRetry.timeoutMs (now ${timeoutMs}).`
      : 'Check that PostgreSQL runs and accepts TCP connections there; to wait for it at start, set database.connectRetry: { timeoutMs: ... }.';
  return new ConcordatError(`cannot connect to PostgreSQL at ${redact(url)} (from ${from})${waited}: ${causeText(cause)}. ${hint}`, {
    code: ErrorCode.DATABASE_UNAVAILABLE,
    cause,
    context: { url: redact(url), urlFrom: options.urlOrigin, attempts, waitedMs },
  });
}

async function migrate(dataSource: DataSource, url: string, logger: Logger): Promise<void> {
  // A session-level advisory lock on a connection of its own: a second process
  // waits here until the first has migrated, then finds nothing pending.
  const lock = new pg.Client({ connectionString: url });
  await lock.connect();
  try {
    await lock.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    const applied = await dataSource.runMigrations({ transaction: 'each' });
    if (applied.length > 0) logger.info({ migrations: applied.map((m) => m.name) }, 'migrations applied');
  } catch (cause) {
    throw new ConcordatError(`database migration failed: ${(cause as Error).message}`, {
      code: ErrorCode.MIGRATION_FAILED,
      cause,
    });
  } finally {
    await lock.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]).catch(() => undefined);
    await lock.end();
  }
}

/**
 * Checks that the server allows prepared transactions, which 2PC branches need.
 *
 * @throws ConcordatError PREPARED_TRANSACTIONS_DISABLED naming the setting to change.
 */
export async function assertPreparedTransactionsEnabled(dataSource: DataSource): Promise<void> {
  const rows: Array<{ max_prepared_transactions: string }> = await dataSource.query('SHOW max_prepared_transactions');
  const value = Number(rows[0]?.max_prepared_transactions ?? 0);
  if (value > 0) return;
  throw new ConcordatError(
    'PostgreSQL has max_prepared_transactions = 0, so 2PC participants cannot PREPARE TRANSACTION. ' +
      'Set max_prepared_transactions (for example to 100, at least the number of concurrent 2PC branches) in postgresql.conf ' +
      'or with ALTER SYSTEM SET max_prepared_transactions = 100, then restart PostgreSQL. ' +
      'The embedded PostgreSQL and docker-compose.yml already set it.',
    { code: ErrorCode.PREPARED_TRANSACTIONS_DISABLED, context: { max_prepared_transactions: value } },
  );
}

/** The URL without its password, for messages (see `redactUrl`). */
export function redact(url: string): string {
  return redactUrl(url);
}
