import './log-level.js';
import 'reflect-metadata';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { EntitySubscriberInterface, QueryRunner, TransactionCommitEvent, TransactionRollbackEvent } from 'typeorm';
import { InventorySagaService } from '../../examples/order-saga/services/inventory.saga.js';
import { InventoryService } from '../../examples/order-saga/services/inventory.service.js';
import { Topics } from '../../examples/order-saga/services/messages.js';
import { Mode, beginOrderTransaction } from '../../examples/order-saga/services/modes.js';
import { PaymentSagaService } from '../../examples/order-saga/services/payment.saga.js';
import { PaymentService } from '../../examples/order-saga/services/payment.service.js';
import { ConcordatApp, MessageContext, OnMessage, Service, TransactionCoordinator, type GlobalTxOutcome } from '../../src/index.js';
import { childMain, watchSqlStateClass40, type ChildConfig, type RunningSystem } from './harness.js';
import type { Order, Workload } from './workload.js';

/**
 * Concordat's row of `bench:peers` (saga or TCC, from BENCH_PEERS_CONFIG):
 * one process, one app at its defaults — the embedded log with fdatasync
 * under the bench's directory, the outbox relay, the inbox, the coordinator
 * and the example's participants (examples/order-saga/services), exactly as
 * the demo runs them. An order is begun the way the example's order service
 * begins it (`beginOrderTransaction`, the order row PENDING in the same
 * transaction), from `app.transaction`, and it is done when the outcome
 * handler's transaction, which marks it CONFIRMED or CANCELLED, committed.
 */
/** The example's order service gives its participants this long (order.modes.ts). */
const ORDER_TIMEOUT_MS = 30_000;

/**
 * Resolves an order's waiter when the transaction that marked it committed:
 * the outcome handler hands over its transaction's query runner, and
 * TypeORM's AfterTransactionCommit event (which Concordat's dispatcher
 * broadcasts after its COMMIT) releases every order that runner marked. A
 * rollback drops them: the redelivered outcome marks them again.
 */
class CommitWaiters implements EntitySubscriberInterface {
  private readonly waiting = new Map<string, () => void>();
  private readonly marked = new Map<QueryRunner, string[]>();

  expect(orderId: string): Promise<void> {
    return new Promise<void>((resolve) => this.waiting.set(orderId, resolve));
  }

  handled(runner: QueryRunner | undefined, orderId: string): void {
    if (runner === undefined || !runner.isTransactionActive) return this.release(orderId);
    const ids = this.marked.get(runner);
    if (ids === undefined) this.marked.set(runner, [orderId]);
    else ids.push(orderId);
  }

  afterTransactionCommit(event: TransactionCommitEvent): void {
    const ids = this.marked.get(event.queryRunner);
    this.marked.delete(event.queryRunner);
    for (const id of ids ?? []) this.release(id);
  }

  afterTransactionRollback(event: TransactionRollbackEvent): void {
    this.marked.delete(event.queryRunner);
  }

  private release(orderId: string): void {
    this.waiting.get(orderId)?.();
    this.waiting.delete(orderId);
  }
}

const commits = new CommitWaiters();

/** The example's outcome handler (services/order.modes.ts, `complete`), reporting the commit. */
@Service('orders')
class OrderOutcomes {
  @OnMessage(Topics.ORDER_TX_OUTCOME)
  async complete(context: MessageContext<GlobalTxOutcome<{ orderId: string }>>): Promise<void> {
    const outcome = context.data;
    const status = outcome.state === 'CONFIRMED' ? 'CONFIRMED' : 'CANCELLED';
    await context.manager.query(
      `UPDATE orders.orders SET status = $2, reason = $3, completed_at = clock_timestamp() WHERE order_id = $1 AND status = 'PENDING'`,
      [outcome.payload.orderId, status, outcome.reason],
    );
    commits.handled(context.manager.queryRunner, outcome.payload.orderId);
  }
}

const PARTICIPANTS: Record<'saga' | 'tcc', Function[]> = {
  saga: [InventorySagaService, PaymentSagaService],
  tcc: [InventoryService, PaymentService],
};

/** node-postgres as Concordat loads it (the project's copy, not bench/peers' own). */
const projectPg = createRequire(new URL('../../package.json', import.meta.url))('pg') as { Client: { prototype: object } };

async function start(config: ChildConfig, _workload: Workload): Promise<RunningSystem> {
  const mode = config.system === 'concordat-tcc' ? Mode.TCC : Mode.SAGA;
  const sqlErrors = watchSqlStateClass40(projectPg.Client);
  const app = ConcordatApp.create({
    name: 'order-saga',
    services: [OrderOutcomes, ...PARTICIPANTS[mode], TransactionCoordinator],
    dataDir: join(config.workDir, 'concordat'),
    database: { url: config.databaseUrl },
  });
  await app.start();
  app.dataSource.subscribers.push(commits);
  return {
    async place(o: Order): Promise<void> {
      const done = commits.expect(o.orderId);
      await app.transaction(async (context) => {
        const globalTxId = await beginOrderTransaction(context, mode, {
          orderId: o.orderId,
          stock: { orderId: o.orderId, sku: o.sku, quantity: o.quantity },
          payment: { orderId: o.orderId, accountId: o.accountId, amountCents: o.amountCents },
          timeoutMs: ORDER_TIMEOUT_MS,
        });
        await context.manager.query(
          `INSERT INTO orders.orders (order_id, account_id, sku, quantity, amount_cents, status, global_tx_id)
           VALUES ($1, $2, $3, $4, $5, 'PENDING', $6)`,
          [o.orderId, o.accountId, o.sku, o.quantity, o.amountCents, globalTxId],
        );
      });
      await done;
    },
    counters() {
      const stats = Object.values(app.stats());
      const sum = (pick: (s: (typeof stats)[number]) => number): number => stats.reduce((total, s) => total + pick(s), 0);
      return {
        ...sqlErrors(),
        dispatcher_retries: sum((s) => s.retries),
        dispatcher_conflict_retries: sum((s) => s.conflictRetries),
        dispatcher_batch_fallbacks: sum((s) => s.batchFallbacks),
        dispatcher_database_waits: sum((s) => s.databaseWaits),
        dispatcher_dead_lettered: sum((s) => s.deadLettered),
        consumer_failures: sum((s) => s.consumerFailures),
      };
    },
    stop: () => app.stop(),
  };
}

await childMain(start);
