import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

/** `npm start` must exit 1 when a check fails, whatever the dependencies' exit hooks do. */
describe('order saga demo exit code', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'concordat-exit-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('exits 1 and says which check failed when an order cannot be processed', async () => {
    const orders = join(dir, 'orders.csv');
    // An unknown SKU: the order handler refuses it for good, so it is dead-lettered.
    await writeFile(orders, 'order_id,account_id,sku,quantity\nX-1,ACC-0001,SKU-NOPE,1\n');
    const url = new URL(inject('databaseUrl'));
    const child = spawn(process.execPath, ['--import', 'tsx', 'examples/order-saga/main.ts', '--orders', orders, '--timeout', '5', '--data-dir', dir], {
      env: { ...process.env, DATABASE_URL: url.toString(), CONCORDAT_LOG_LEVEL: 'silent' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(output).toContain('FAIL  no message dead-lettered');
    expect(output).toContain('Some checks FAILED.');
    expect(code).toBe(1);
  });
});
