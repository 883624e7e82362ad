import { stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import pg from 'pg';
import { ConcordatError, ErrorCode } from '../errors.js';
import { concordatMigrations, ensureDatabase, openDatabase, redact, startEmbeddedPostgres, type Database, type RunningPostgres } from '../persistence/index.js';
import { fail } from './output.js';

/** Where a command finds Concordat's database (the options {@link whereOptions} adds). */
export interface WhereFlags {
  /** `--url`; else `DATABASE_URL`; else the embedded PostgreSQL of `data`. */
  url?: string;
  /** `--data`: the data directory of an app's embedded PostgreSQL (its cluster is `<data>/postgres`). */
  data: string;
  /** `--database`: the database on the embedded PostgreSQL. */
  database: string;
}

/** Adds `--url`, `--data` and `--database` to `command`. */
export function whereOptions(command: Command): Command {
  return command
    .option('--url <url>', 'PostgreSQL URL (default: DATABASE_URL, else the embedded PostgreSQL of --data)')
    .option('--data <dir>', 'data directory of the embedded PostgreSQL', './.concordat')
    .option('--database <name>', 'database on the embedded PostgreSQL', 'concordat');
}

/** A database a command opened, with what it needs to say where it is and to close it. */
export interface CliDatabase {
  db: Database;
  /** For messages: the redacted URL, or the embedded cluster's directory and database. */
  where: string;
  /** How to name the same place on another command line (`--url`, `DATABASE_URL`, `--data/--database`). */
  sameFlags: string;
}

/**
 * Opens the database `flags` name, runs `work`, closes (stopping an embedded
 * PostgreSQL this process started). Only `create` (for `concordat migrate`)
 * may create anything: without it, a missing embedded cluster or a database
 * without Concordat's schema fails with a message that says what to do,
 * and nothing is written to the disk.
 *
 * A failure is printed as the entry point prints it and the process exits 1
 * here (see {@link fail} for why not `process.exitCode`).
 */
export async function withDatabase(flags: WhereFlags, work: (opened: CliDatabase) => Promise<void>, options: { create?: boolean } = {}): Promise<void> {
  let embedded: RunningPostgres | undefined;
  let opened: CliDatabase | undefined;
  try {
    const target = await locate(flags, options.create === true);
    embedded = target.embedded;
    const db = await openDatabase({ url: target.url, poolSize: 2, runMigrations: false });
    opened = { db, where: target.where, sameFlags: target.sameFlags };
    if (options.create !== true) await assertSchema(opened);
    await work(opened);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    await opened?.db.close().catch(() => undefined);
    await embedded?.stop().catch(() => undefined);
    fail(message);
  }
  await opened?.db.close().catch(() => undefined);
  await embedded?.stop().catch(() => undefined);
}

interface Target {
  url: string;
  embedded: RunningPostgres | undefined;
  where: string;
  sameFlags: string;
}

async function locate(flags: WhereFlags, create: boolean): Promise<Target> {
  if (flags.url !== undefined) return { url: flags.url, embedded: undefined, where: redact(flags.url), sameFlags: '--url' };
  const fromEnv = process.env.DATABASE_URL;
  if (fromEnv !== undefined && fromEnv !== '')
    return { url: fromEnv, embedded: undefined, where: `${redact(fromEnv)} (DATABASE_URL)`, sameFlags: 'DATABASE_URL' };
  const dataDir = resolve(flags.data, 'postgres');
  const where = `the embedded PostgreSQL in ${dataDir} (database ${flags.database})`;
  const sameFlags = `--data ${flags.data} --database ${flags.database}`;
  if (!create && !(await exists(join(dataDir, 'PG_VERSION')))) {
    throw new ConcordatError(
      `no embedded PostgreSQL in ${dataDir}: no Concordat app has run with the data directory ${resolve(flags.data)}, and this command creates none. ` +
        `Point it at your database with --url postgres://user@host:5432/db or DATABASE_URL, or at an app's data directory with --data <dir> ` +
        `(to create an embedded database and its schema there, run "concordat migrate")`,
      { code: ErrorCode.DATABASE_UNAVAILABLE, retriable: false, context: { dataDir } },
    );
  }
  const embedded = await startEmbeddedPostgres({ dataDir });
  try {
    const admin = embedded.url;
    if (create) await ensureDatabase(admin, flags.database);
    else if (!(await databaseExists(admin, flags.database))) {
      throw new ConcordatError(
        `${where} does not exist: name the app's database with --database <name> (the order demo's is order_saga), ` +
          `or create it with its schema by "concordat migrate ${sameFlags}"`,
        { code: ErrorCode.DATABASE_UNAVAILABLE, retriable: false, context: { dataDir, database: flags.database } },
      );
    }
    return { url: admin.replace(/\/postgres$/, `/${encodeURIComponent(flags.database)}`), embedded, where, sameFlags };
  } catch (error) {
    await embedded.stop().catch(() => undefined);
    throw error;
  }
}

/**
 * Concordat's migrations (class names, oldest first) and which of them the
 * database records as applied (`public.concordat_migrations`, TypeORM's
 * table); `applied` is undefined when the table does not exist.
 */
export async function migrationState(db: Database): Promise<{ known: string[]; applied: Set<string> | undefined }> {
  const known = concordatMigrations.map((migration) => migration.name);
  const rows = await db.dataSource.query<Array<{ present: boolean }>>(`SELECT to_regclass('concordat_migrations') IS NOT NULL AS present`);
  if (rows[0]?.present !== true) return { known, applied: undefined };
  const applied = await db.dataSource.query<Array<{ name: string }>>(`SELECT name FROM concordat_migrations`);
  return { known, applied: new Set(applied.map((row) => row.name)) };
}

/**
 * @throws ConcordatError SCHEMA_MISSING when the database has none of
 *   Concordat's migrations applied (instead of PostgreSQL's
 *   `relation "concordat.…" does not exist` later), naming the command
 *   that creates the schema.
 */
async function assertSchema({ db, where, sameFlags }: CliDatabase): Promise<void> {
  const { known, applied } = await migrationState(db);
  if (applied !== undefined && known.some((name) => applied.has(name))) return;
  throw new ConcordatError(
    `${where} has no Concordat schema (Concordat's migrations were never run on it). ` +
      `Create it with "concordat migrate" (with the same ${sameFlags}), or start a Concordat app on this database: it migrates at start`,
    { code: ErrorCode.SCHEMA_MISSING },
  );
}

async function databaseExists(adminUrl: string, database: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    return ((await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [database])).rowCount ?? 0) > 0;
  } finally {
    await client.end();
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}
