import type { EntityManager } from 'typeorm';
import { writeOutbox } from '../../src/outbox/index.js';
import { createEnvelope } from '../../src/messaging/index.js';
import { runTransaction } from '../../src/runtime/index.js';
import { closedLoop, closedLoopCounted, cpuPerOp, cpuText, median, n, type BenchEnv, type Row } from './support.js';

/**
 * 1. What the outbox costs a writer: the same business transaction (insert
 * an order, debit the customer) alone, and with one outbox message
 * published in it, by `clients` concurrent writers. The two alternate in
 * slices of `sliceMs`; the medians are compared. The outbox is emptied
 * between slices (no relay runs: this measures the writer).
 *
 * Also, as the "before" of this work, the same transaction through
 * TypeORM's `dataSource.transaction` with the outbox row inserted by its own
 * statement (START TRANSACTION, two statements, INSERT, COMMIT: five round
 * trips instead of four).
 */
export async function benchWriter(env: BenchEnv, settings: { clients: number; sliceMs: number; rounds: number }): Promise<Row[]> {
  const db = await env.freshDatabase('bench_writer', settings.clients + 2);
  const business = async (manager: EntityManager, client: number, i: number): Promise<number> => {
    const customer = (client * 7919 + i) % 10_000;
    await manager.query(`INSERT INTO bench.orders (customer, amount) VALUES ($1, $2)`, [customer, 42]);
    await manager.query(`UPDATE bench.customers SET balance = balance - $2 WHERE id = $1`, [customer, 42]);
    return customer;
  };
  let i = 0;
  const alone = (client: number): Promise<void> => runTransaction(db.dataSource, 'bench', async ({ manager }) => void (await business(manager, client, i++)));
  const withOutbox = (client: number): Promise<void> =>
    runTransaction(db.dataSource, 'bench', async (context) => {
      const customer = await business(context.manager, client, i++);
      context.publish('orders.placed', { customer, amount: 42, sku: 'sku-1', quantity: 2 }, { key: `customer-${customer}` });
    });
  const typeormPath = (client: number): Promise<void> =>
    db.dataSource.transaction(async (manager) => {
      const customer = await business(manager, client, i++);
      const envelope = createEnvelope({
        type: 'orders.placed',
        source: 'bench',
        data: { customer, amount: 42, sku: 'sku-1', quantity: 2 },
        partitionkey: `customer-${customer}`,
      });
      await writeOutbox(manager, [{ topic: 'orders.placed', envelope }]);
    });

  const rates = { alone: [] as number[], outbox: [] as number[], typeorm: [] as number[] };
  const cpu = { alone: { us: 0, nodeUs: 0, pgUs: 0, ops: 0 }, outbox: { us: 0, nodeUs: 0, pgUs: 0, ops: 0 }, typeorm: { us: 0, nodeUs: 0, pgUs: 0, ops: 0 } };
  let pgKnown = true;
  const slice = async (mode: keyof typeof rates, op: (client: number) => Promise<void>): Promise<void> => {
    const before = env.cpu();
    const { rate, ops } = await closedLoopCounted(settings.clients, settings.sliceMs, op);
    const used = cpuPerOp(before, env.cpu(), 1);
    rates[mode].push(rate);
    cpu[mode].ops += ops;
    cpu[mode].nodeUs += used.nodeUs;
    cpu[mode].pgUs += used.pgUs ?? 0;
    pgKnown &&= used.pgUs !== undefined;
  };
  await closedLoop(settings.clients, 500, alone); // warm-up
  for (let round = 0; round < settings.rounds; round++) {
    await slice('alone', alone);
    await slice('outbox', withOutbox);
    await db.dataSource.query(`TRUNCATE concordat.outbox`);
    await slice('typeorm', typeormPath);
    await db.dataSource.query(`TRUNCATE concordat.outbox`);
  }
  const perTx = (mode: keyof typeof cpu) => {
    const c = cpu[mode];
    const nodeUs = c.nodeUs / c.ops;
    const pgUs = pgKnown ? c.pgUs / c.ops : undefined;
    return { nodeUs, pgUs, totalUs: nodeUs + (pgUs ?? 0) };
  };
  const base = median(rates.alone);
  const withRow = median(rates.outbox);
  const before = median(rates.typeorm);
  const [cpuAlone, cpuOutbox, cpuBefore] = [perTx('alone'), perTx('outbox'), perTx('typeorm')];
  return [
    {
      name: `business transaction + 1 outbox row vs the transaction alone (${settings.clients} writers)`,
      baseline: `${n(base)} tx/s`,
      measured: `${n(withRow)} tx/s`,
      ratio: withRow / base,
      target: '≥ 0.8×',
      pass: withRow / base >= 0.8,
    },
    {
      name: '(same, by CPU per transaction: the cost of the outbox row whatever else the machine runs)',
      baseline: cpuText(cpuAlone),
      measured: cpuText(cpuOutbox),
      ratio: cpuAlone.totalUs / cpuOutbox.totalUs,
      target: '(cross-check)',
      pass: null,
    },
    {
      name: `(before) the same through TypeORM's transaction, outbox row by its own statement`,
      baseline: `${n(base)} tx/s; ${cpuText(cpuAlone)}`,
      measured: `${n(before)} tx/s; ${cpuText(cpuBefore)}`,
      ratio: before / base,
      target: '(reference)',
      pass: null,
    },
  ];
}
