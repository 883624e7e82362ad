import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { killsByUnit, runChaos } from '../../examples/order-saga/chaos-monkey.js';
import { dataFile } from '../../examples/order-saga/demo.js';
import { Mode } from '../../examples/order-saga/deployment.js';

/**
 * `npm run chaos` in small: the distributed demo in 2PC mode (the mode with
 * the most to recover at start-up: prepared transactions in doubt) while a
 * random service process is SIGKILLed every ~2.5 s, four times; the
 * supervisor restarts each, and every check holds. The seed is fixed so a
 * failure can be replayed with `npm run chaos -- --mode 2pc --seed 7 ...`.
 */
describe('order saga demo in separate processes under chaos (2PC)', () => {
  let dir: string;
  let ordersFile: string;
  const ORDERS = 60;
  const KILLS = 4;
  const INTERVAL_MS = 2500;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'concordat-e2e-chaos-'));
    const lines = (await readFile(dataFile('orders.csv'), 'utf8'))
      .trim()
      .split('\n')
      .slice(0, ORDERS + 1);
    ordersFile = join(dir, 'orders.csv');
    await writeFile(ordersFile, lines.join('\n') + '\n');
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it(`passes every check with ${KILLS} SIGKILLs of random service processes`, async () => {
    const events: string[] = [];
    const result = await runChaos(
      {
        mode: Mode.TWO_PHASE,
        ordersFile,
        productsFile: dataFile('products.csv'),
        accountsFile: dataFile('accounts.csv'),
        dataDir: dir,
        databaseUrl: inject('databaseUrl'),
        databaseName: `order_saga_e2e_chaos_${process.pid}`,
        partitions: 4,
        timeoutMs: 150_000,
        // The feed lasts as long as the kills, so each lands while orders run.
        ratePerSecond: Math.ceil(ORDERS / ((KILLS * INTERVAL_MS) / 1000)),
        onProcessEvent: (line) => events.push(line),
      },
      { kills: KILLS, intervalMs: INTERVAL_MS, seed: 7 },
    );
    for (const check of result.checks) expect.soft(check, check.name).toMatchObject({ ok: true });
    expect(result.checks.map((check) => check.name)).toContain('no prepared transaction left in the demo database');
    expect(result.kills).toHaveLength(KILLS);
    // Every kill was seen as a SIGKILL and answered with exactly one restart; the broker was left alone.
    expect(events.filter((line) => / exited \(SIGKILL\); restart/.test(line))).toHaveLength(KILLS);
    expect(result.restarts).toEqual({ broker: 0, ...killsByUnit(result.kills) });
    expect(result.unexpectedExits).toEqual([]);
    expect(result.summary.confirmed + result.summary.cancelled).toBe(ORDERS);
    expect(result.summary.confirmed).toBeGreaterThan(0);
    expect(result.summary.deadLettered).toBe(0);
    expect(result.ok).toBe(true);
  }, 240_000);
});
