import { spawn } from 'node:child_process';
import { chmod, mkdtemp, readdir, realpath, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { concordatMigrations, redact } from '../../../src/persistence/index.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';

const MAIN = fileURLToPath(new URL('../../../src/cli/main.ts', import.meta.url));
// By path: the command runs with a temporary directory as its cwd, where `--import tsx` would not resolve.
const TSX = fileURLToPath(new URL('../../../node_modules/tsx/dist/loader.mjs', import.meta.url));
// tsx looks for tsconfig.json from the cwd; Concordat's source needs its decorator settings.
const TSCONFIG = fileURLToPath(new URL('../../../tsconfig.json', import.meta.url));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `concordat <args>` in `cwd`, with `DATABASE_URL` only when given (never the test run's). */
function cli(args: string[], options: { cwd?: string; databaseUrl?: string } = {}): Promise<Run> {
  const env: NodeJS.ProcessEnv = { ...process.env, CONCORDAT_LOG_LEVEL: 'silent', TSX_TSCONFIG_PATH: TSCONFIG };
  delete env.DATABASE_URL;
  if (options.databaseUrl !== undefined) env.DATABASE_URL = options.databaseUrl;
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', TSX, MAIN, ...args], { env, ...(options.cwd !== undefined && { cwd: options.cwd }) });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('concordat tx list / dlq list never create a database; a missing schema is named; concordat migrate creates it', () => {
  let cwd: string;
  let testDb: TestDatabase;

  beforeAll(async () => {
    cwd = await realpath(await mkdtemp(join(tmpdir(), 'concordat-cli-')));
    testDb = await createTestDatabase('cli_schema');
  });
  afterAll(async () => {
    await rm(cwd, { recursive: true, force: true });
    await testDb.drop();
  });

  it('without DATABASE_URL and with no embedded PostgreSQL in ./.concordat, tx list and dlq list say so and create nothing', async () => {
    const expected =
      `concordat: no embedded PostgreSQL in ${cwd}/.concordat/postgres: no Concordat app has run with the data directory ${cwd}/.concordat, and this command creates none. ` +
      `Point it at your database with --url postgres://user@host:5432/db or DATABASE_URL, or at an app's data directory with --data <dir> ` +
      `(to create an embedded database and its schema there, run "concordat migrate")\n`;
    for (const args of [
      ['tx', 'list'],
      ['dlq', 'list'],
    ]) {
      const run = await cli(args, { cwd });
      expect(run.stdout).toBe('');
      expect(run.stderr).toBe(expected);
      expect(run.code).toBe(1);
      expect(await readdir(cwd)).toEqual([]);
    }
  });

  it('on a database without the schema they name it and the command that creates it; migrate applies every migration once, then nothing', async () => {
    const where = redact(testDb.url);
    const list = await cli(['tx', 'list', '--url', testDb.url], { cwd });
    expect(list.code).toBe(1);
    expect(list.stderr).toBe(
      `concordat: ${where} has no Concordat schema (Concordat's migrations were never run on it). ` +
        `Create it with "concordat migrate" (with the same --url), or start a Concordat app on this database: it migrates at start\n`,
    );
    const dlq = await cli(['dlq', 'list'], { cwd, databaseUrl: testDb.url });
    expect(dlq.code).toBe(1);
    expect(dlq.stderr).toBe(
      `concordat: ${where} (DATABASE_URL) has no Concordat schema (Concordat's migrations were never run on it). ` +
        `Create it with "concordat migrate" (with the same DATABASE_URL), or start a Concordat app on this database: it migrates at start\n`,
    );

    const migrated = await cli(['migrate'], { cwd, databaseUrl: testDb.url });
    expect(migrated.stderr).toBe('');
    expect(migrated.code).toBe(0);
    const names = concordatMigrations.map((m) => m.name);
    expect(migrated.stdout).toBe([`applied ${names.length} migration(s) to ${where} (DATABASE_URL):`, ...names.map((n) => `  ${n}`)].join('\n') + '\n');
    const again = await cli(['migrate', '--url', testDb.url], { cwd });
    expect(again.stdout).toBe(`Concordat's schema in ${where} is up to date: all ${names.length} migrations were applied before, nothing to apply\n`);

    const client = new pg.Client({ connectionString: testDb.url });
    await client.connect();
    try {
      const { rows } = await client.query(
        `SELECT to_regclass('concordat.global_transaction') IS NOT NULL AS tx, to_regclass('concordat.dead_letter') IS NOT NULL AS dlq`,
      );
      expect(rows).toEqual([{ tx: true, dlq: true }]);
    } finally {
      await client.end();
    }
    expect(await cli(['tx', 'list', '--url', testDb.url], { cwd })).toEqual({ code: 0, stdout: 'no global transactions match\n', stderr: '' });
    expect(await cli(['dlq', 'list'], { cwd, databaseUrl: testDb.url })).toEqual({ code: 0, stdout: 'no dead letters match\n', stderr: '' });
    expect(await readdir(cwd)).toEqual([]);
  });

  it('migrate without DATABASE_URL creates the embedded PostgreSQL under ./.concordat with the schema; tx list then reads it', async () => {
    const dir = await realpath(await mkdtemp(join(tmpdir(), 'concordat-cli-embedded-')));
    // As root the embedded server runs as the postgres user, which must reach the data directory.
    await chmod(dir, 0o755);
    try {
      const migrated = await cli(['migrate'], { cwd: dir });
      expect(migrated.stderr).toBe('');
      expect(migrated.code).toBe(0);
      const names = concordatMigrations.map((m) => m.name);
      expect(migrated.stdout).toBe(
        [
          `applied ${names.length} migration(s) to the embedded PostgreSQL in ${dir}/.concordat/postgres (database concordat):`,
          ...names.map((n) => `  ${n}`),
        ].join('\n') + '\n',
      );
      expect(await cli(['tx', 'list'], { cwd: dir })).toEqual({ code: 0, stdout: 'no global transactions match\n', stderr: '' });
      const other = await cli(['tx', 'list', '--database', 'shop'], { cwd: dir });
      expect(other.stderr).toBe(
        `concordat: the embedded PostgreSQL in ${dir}/.concordat/postgres (database shop) does not exist: name the app's database with --database <name> ` +
          `(the order demo's is order_saga), or create it with its schema by "concordat migrate --data ./.concordat --database shop"\n`,
      );
      expect(other.code).toBe(1);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
