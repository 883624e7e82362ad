import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { dataFile } from '../../examples/order-saga/demo.js';
import { Mode } from '../../examples/order-saga/deployment.js';
import { runDistributedDemo } from '../../examples/order-saga/distributed.js';
import type { Supervisor } from '../../examples/order-saga/supervisor.js';

/**
 * The distributed demo: `concordat broker` and the orders, inventory and
 * payment units as OS processes talking Kafka protocol over loopback, on a
 * small orders file; the inventory and orders processes are SIGKILLed once
 * each mid-run and restarted by the supervisor, and every check still holds.
 */
describe('order saga demo in separate processes, end to end on a small orders file', () => {
  let dir: string;
  let ordersFile: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'concordat-e2e-processes-'));
    const lines = (await readFile(dataFile('orders.csv'), 'utf8')).trim().split('\n').slice(0, 81);
    // The same must-cancel orders as order-saga.test.ts: each fails one participant only, so its
    // cancel reason does not depend on which vote arrives first (inventory may be down meanwhile).
    lines.push('E2E-STOCK,ACC-0043,SKU-WHISK,300', 'E2E-FUNDS,ACC-0007,SKU-TIMER,9');
    ordersFile = join(dir, 'orders.csv');
    await writeFile(ordersFile, lines.join('\n') + '\n');
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('finishes every order and passes every check with units killed and restarted mid-run', async () => {
    let supervisor: Supervisor | undefined;
    const killed: string[] = [];
    const events: string[] = [];
    const result = await runDistributedDemo({
      mode: Mode.TCC,
      ordersFile,
      productsFile: dataFile('products.csv'),
      accountsFile: dataFile('accounts.csv'),
      dataDir: dir,
      databaseUrl: inject('databaseUrl'),
      databaseName: `order_saga_e2e_processes_${process.pid}`,
      partitions: 4,
      timeoutMs: 150_000,
      ratePerSecond: 10,
      // Longer than a killed unit's restart (about 6 s): with the default 5 s, orders stalled by a kill could be cancelled by
      // their payment deadline first, and the run could end with no order cancelled for stock (seen once in CI).
      paymentTimeoutMs: 60_000,
      onSupervisor: (s) => {
        supervisor = s;
      },
      onProcessEvent: (line) => events.push(line),
      onProgress: (progress) => {
        const done = progress.confirmed + progress.cancelled;
        for (const [unit, after] of [
          ['inventory', 10],
          ['orders', 40],
        ] as const) {
          if (done >= after && !killed.includes(unit) && supervisor?.kill(unit, 'SIGKILL') === true) killed.push(unit);
        }
      },
    });
    for (const check of result.checks) expect.soft(check, check.name).toMatchObject({ ok: true });
    expect(killed).toEqual(['inventory', 'orders']);
    expect(result.restarts).toEqual({ broker: 0, orders: 1, inventory: 1, payment: 0 });
    expect(events.filter((line) => line.includes('exited (SIGKILL)'))).toHaveLength(2);
    expect(result.ok).toBe(true);
    expect(result.summary.orders).toBe(82);
    expect(result.summary.confirmed + result.summary.cancelled).toBe(82);
    expect(result.summary.cancelledForStock).toBeGreaterThanOrEqual(1);
    expect(result.summary.cancelledForFunds).toBeGreaterThanOrEqual(1);
    expect(result.summary.confirmed).toBeGreaterThan(0);
    expect(result.summary.deadLettered).toBe(0);
  }, 240_000);
});
