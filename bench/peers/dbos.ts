import { DBOS } from '@dbos-inc/dbos-sdk';
import { DrizzleDataSource } from '@dbos-inc/drizzle-datasource';
import type { SQL } from 'drizzle-orm';
import { createRequire } from 'node:module';
import pg from 'pg';
import { childMain, watchSqlStateClass40, type ChildConfig, type RunningSystem } from './harness.js';
import { orderSaga, type Execute, type Order, type StatementResult, type Workload } from './workload.js';

/**
 * DBOS Transact's row of `bench:peers`: the order saga as a DBOS workflow
 * whose steps are transactions of a DrizzleDataSource on node-postgres
 * (each step's output is recorded in `dbos.transaction_completion` inside
 * the step's own transaction: exactly once), started with the order's ID as
 * workflow ID and awaited in this process. DBOS at its defaults (pools,
 * system database schema), its system database on the same server.
 */

// drizzle-orm as the datasource loads it (CommonJS): statements built by the ESM copy would be another copy's SQL objects.
const { sql } = createRequire(import.meta.url)('drizzle-orm') as typeof import('drizzle-orm');
type DrizzleQuery = Parameters<DrizzleDataSource['client']['execute']>[0];

/** `text` with `$n` placeholders as one parameterized drizzle statement. */
function statement(text: string, params: readonly unknown[]): SQL {
  const parts = text.split(/\$(\d+)/);
  const chunks: SQL[] = parts.map((part, i) => (i % 2 === 0 ? sql.raw(part) : sql`${params[Number(part) - 1]}`));
  return sql.join(chunks);
}

async function start(config: ChildConfig, _workload: Workload): Promise<RunningSystem> {
  if (config.systemDatabaseUrl === undefined) throw new Error('DBOS needs systemDatabaseUrl');
  const sqlErrors = watchSqlStateClass40(pg.Client);
  const app = new DrizzleDataSource('orders', { connectionString: config.databaseUrl });
  const execute: Execute = async (text, params) => (await app.client.execute(statement(text, params) as unknown as DrizzleQuery)) as unknown as StatementResult;
  const placeOrder = DBOS.registerWorkflow((o: Order) => orderSaga(o, (name, work) => app.runTransaction(() => work(execute), { name })), {
    name: 'placeOrder',
  });
  DBOS.setConfig({ name: 'bench-peers', systemDatabaseUrl: config.systemDatabaseUrl, logLevel: 'warn' });
  await DBOS.launch();
  return {
    async place(o: Order): Promise<void> {
      await DBOS.withNextWorkflowID(o.orderId, () => placeOrder(o));
    },
    counters: () => sqlErrors(),
    stop: () => DBOS.shutdown(),
  };
}

await childMain(start);
