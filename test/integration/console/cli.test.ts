import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../../src/persistence/index.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';

const MAIN = fileURLToPath(new URL('../../../src/cli/main.ts', import.meta.url));

/** `concordat console` as a process: serves until SIGTERM; refuses a public address without a token. */
describe('concordat console', () => {
  let testDb: TestDatabase;

  beforeAll(async () => {
    testDb = await createTestDatabase('console_cli');
    await (await openDatabase({ url: testDb.url, poolSize: 1 })).close();
  });
  afterAll(async () => {
    await testDb?.drop();
  });

  it('serves the pages until SIGTERM, then exits 0', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, 'console', '--url', testDb.url, '--port', '0'], {
      env: { ...process.env, CONCORDAT_LOG_LEVEL: 'silent', CONCORDAT_CONSOLE_TOKEN: '' },
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const url = await new Promise<string>((resolve, reject) => {
      let stdout = '';
      child.stdout.on('data', (chunk: Buffer) => {
        stdout += chunk.toString();
        const match = /^concordat console on (http:\/\/127\.0\.0\.1:\d+) \(database: .+\)\n/.exec(stdout);
        if (match !== null) resolve(match[1]!);
      });
      void exited.then((code) => reject(new Error(`exited ${code} before serving: ${stdout}${stderr}`)));
    });
    const page = await fetch(`${url}/transactions`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<h1>Global transactions</h1>');
    expect((await fetch(`${url}/groups`)).status).toBe(200);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(stderr).toBe('');
  }, 90_000);

  it('refuses a non-loopback address without a token', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, 'console', '--url', testDb.url, '--host', '0.0.0.0', '--port', '0'], {
      env: { ...process.env, CONCORDAT_LOG_LEVEL: 'silent', CONCORDAT_CONSOLE_TOKEN: '' },
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code).toBe(1);
    expect(stderr).toMatch(/^concordat: the console refuses to listen on 0\.0\.0\.0 without a token/);
  }, 90_000);
});
