import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { dataFile, isUnpaidAccount, runDemo } from '../../examples/order-saga/demo.js';
import { Mode, MODES } from '../../examples/order-saga/deployment.js';

/**
 * `npm start -- --mode tcc|2pc|saga` in process, through `runDemo` as main.ts
 * calls it: the same small orders file and the same checks in each mode,
 * plus the mode's own (every paid order ran as one global transaction of that
 * mode; in 2PC, no prepared transaction left).
 */
describe('order saga demo, end to end on a small orders file', () => {
  let dir: string;
  let ordersFile: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'concordat-e2e-'));
    // The first 80 orders of the real input, plus orders that must cancel:
    // one beyond the stock but within its account's balance, one within the
    // stock but beyond its account's balance (ACC-0043 and ACC-0007 are not in
    // the first 80 orders), so each has exactly one possible reason.
    const lines = (await readFile(dataFile('orders.csv'), 'utf8')).trim().split('\n').slice(0, 81);
    lines.push('E2E-STOCK,ACC-0043,SKU-WHISK,300', 'E2E-FUNDS,ACC-0007,SKU-TIMER,9');
    ordersFile = join(dir, 'orders.csv');
    await writeFile(ordersFile, lines.join('\n') + '\n');
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const TX_MODE = { [Mode.TCC]: 'TCC', [Mode.TWO_PHASE]: '2PC', [Mode.SAGA]: 'SAGA' } as const;

  it.each(MODES)('finishes every order and passes every check in %s mode', async (mode) => {
    const result = await runDemo({
      mode,
      ordersFile,
      productsFile: dataFile('products.csv'),
      accountsFile: dataFile('accounts.csv'),
      dataDir: dir,
      databaseUrl: inject('databaseUrl'),
      databaseName: `order_saga_e2e_${mode}_${process.pid}`,
      partitions: 4,
      timeoutMs: 120_000,
      inFlightMax: 40,
    });
    for (const check of result.checks) expect.soft(check, check.name).toMatchObject({ ok: true });
    expect(result.checks.map((check) => check.name).slice(8)).toEqual([
      `every paid order ran as one ${TX_MODE[mode]} global transaction, and every global transaction is an order's`,
      ...(mode === Mode.TWO_PHASE ? ['no prepared transaction left in the demo database'] : []),
    ]);
    expect(result.ok).toBe(true);
    expect(result.mode).toBe(mode);
    expect(result.summary.orders).toBe(82);
    expect(result.summary.confirmed + result.summary.cancelled).toBe(82);
    expect(result.summary.cancelledForStock).toBeGreaterThanOrEqual(1);
    expect(result.summary.cancelledForFunds).toBeGreaterThanOrEqual(1);
    expect(result.summary.confirmed).toBeGreaterThan(0);
    expect(result.summary.deadLettered).toBe(0);
    expect(result.summary.cancelledForDeadline).toBe(0); // everyone pays at checkout, well within the default 5 s
  });

  it('cancels the orders of customers who never pay at their payment deadline (--unpaid-fraction), with every check passing', async () => {
    const unpaidFraction = 0.1;
    const lines = (await readFile(ordersFile, 'utf8')).trim().split('\n').slice(1);
    const unpaid = lines.filter((line) => isUnpaidAccount(line.split(',')[1]!, unpaidFraction)).length;
    expect(unpaid).toBeGreaterThan(0);
    const result = await runDemo({
      mode: Mode.TCC,
      ordersFile,
      productsFile: dataFile('products.csv'),
      accountsFile: dataFile('accounts.csv'),
      dataDir: dir,
      databaseUrl: inject('databaseUrl'),
      databaseName: `order_saga_e2e_unpaid_${process.pid}`,
      partitions: 4,
      timeoutMs: 120_000,
      inFlightMax: 40,
      paymentTimeoutMs: 500,
      unpaidFraction,
    });
    for (const check of result.checks) expect.soft(check, check.name).toMatchObject({ ok: true });
    expect(result.ok).toBe(true);
    expect(result.summary.confirmed + result.summary.cancelled).toBe(82);
    expect(result.summary.cancelledUnpaid).toBe(unpaid);
    // A paid order may also miss a 500 ms deadline on a busy machine; it is then cancelled through its global transaction.
    expect(result.summary.cancelledForDeadline).toBeGreaterThanOrEqual(unpaid);
    expect(result.summary.confirmed).toBeGreaterThan(0);
  });
});
