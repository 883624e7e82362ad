import { join } from 'node:path';
import pg from 'pg';
import { DataSource, type EntityManager } from 'typeorm';
import { compileDatabaseOptions, type CompiledDatabaseOptions, type DatabaseOptions } from '../config/index.js';
import { ConcordatError, ErrorCode } from '../errors.js';
import { createLogger } from '../observability/index.js';
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
 * migrate once.
 *
 * @throws ConcordatError CONFIG_INVALID for bad options,
 *   EMBEDDED_POSTGRES_FAILED when the embedded server cannot start,
 *   DATABASE_UNAVAILABLE when the server cannot be reached,
 *   MIGRATION_FAILED when a migration fails.
 */
export async function openDatabase(input: DatabaseOptions = {}): Promise<Database> {
  const options = compileDatabaseOptions(input);
  let embedded: RunningPostgres | undefined;
  let url = options.url;
  if (url === undefined) {
    embedded = await startEmbeddedPostgres({ dataDir: join(options.dataDir, 'postgres') });
    await ensureDatabase(embedded.url, 'concordat');
    url = embedded.url.replace(/\/postgres$/, '/concordat');
  }

  const dataSource = new DataSource({
    type: 'postgres',
    url,
    entities: [...concordatEntities, ...options.entities],
    migrations: [...concordatMigrations, ...options.migrations],
    migrationsTableName: 'concordat_migrations',
    synchronize: false,
    logging: false,
    extra: { max: options.poolSize, connectionTimeoutMillis: options.connectTimeoutMs },
  });

  try {
    await dataSource.initialize();
  } catch (cause) {
    await embedded?.stop();
    throw new ConcordatError(`cannot connect to PostgreSQL at ${redact(url)}: ${(cause as Error).message}`, {
      code: ErrorCode.DATABASE_UNAVAILABLE,
      retriable: true,
      cause,
    });
  }

  try {
    if (options.runMigrations) await migrate(dataSource, url);
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

async function migrate(dataSource: DataSource, url: string): Promise<void> {
  const log = createLogger('persistence');
  // A session-level advisory lock on a connection of its own: a second process
  // waits here until the first has migrated, then finds nothing pending.
  const lock = new pg.Client({ connectionString: url });
  await lock.connect();
  try {
    await lock.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    const applied = await dataSource.runMigrations({ transaction: 'each' });
    if (applied.length > 0) log.info({ migrations: applied.map((m) => m.name) }, 'migrations applied');
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

/** The URL without its password, for messages. */
export function redact(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  } catch {
    return '<unparseable URL>';
  }
}
