import 'reflect-metadata';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Container } from 'inversify';
import pg from 'pg';
import { register } from 'prom-client';
import { clusterCpuUs } from '../outbox/support.js';
import { newMessageId } from '../../src/messaging/index.js';
import { openDatabase, startEmbeddedPostgres, type Database, type RunningPostgres } from '../../src/persistence/index.js';
import { ConcordatApp, type TransactionContext } from '../../src/runtime/index.js';
import { COORDINATOR_OPTIONS, TransactionCoordinator, beginSaga, beginTcc, beginTwoPhase } from '../../src/transactions/index.js';
import { EmbeddedTransport } from '../../src/transport/index.js';
import {
  Chain,
  chainWaiters,
  InventorySaga,
  InventoryTcc,
  InventoryXa,
  Outcomes,
  PaymentSaga,
  PaymentTcc,
  PaymentXa,
  ROWS,
  SCHEMA,
  ShippingSaga,
  ShippingTcc,
  ShippingXa,
  seed,
  take,
  waiters,
  type Order,
} from './services.js';

/**
 * `npm run bench:tx [-- --quick] [--concurrency N] [--seconds S] [--only tcc,2pc,saga] [--no-baseline] [--no-floor]`:
 * global transactions per second with three participants (inventory,
 * payment, shipping) against one local transaction doing the same business
 * writes in the same database, measured in the same run, at the same
 * concurrency (closed loop: N clients, each starting its next order when the
 * previous one ended). Latency is what a client waits: from the begin to the
 * outcome message (baseline: the transaction). Targets: TCC ≥ 0.3×,
 * 2PC ≥ 0.2×, saga ≥ 0.35× of the baseline's rate.
 *
 * A last row measures the floor under all three: a chain of 13 plain
 * handler hops (a TCC transaction's message count) with no protocol, begun
 * like an order.
 *
 * Everything runs in this process, as the demo does: an embedded PostgreSQL
 * (fresh, in a temporary directory; DATABASE_URL to use another server with
 * max_prepared_transactions > 0), the embedded log with fdatasync, the
 * coordinator, the three participants and the outbox relay.
 *
 * Each row also gives the CPU one transaction costs this process and the
 * embedded PostgreSQL (every process of its cluster, from /proc), and the
 * baseline's CPU per transaction over that: when the two cores are the
 * bottleneck (this machine is shared, so they are), that CPU ratio bounds
 * the throughput ratio whatever the latency. And how many messages a
 * dispatcher transaction held on average (batches delivered together).
 */
process.env.CONCORDAT_LOG_LEVEL ??= 'warn';
const args = process.argv.slice(2);
const flag = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const quick = args.includes('--quick');
const concurrency = Number(flag('--concurrency') ?? 32);
const seconds = Number(flag('--seconds') ?? (quick ? 4 : 15));
const warmupSeconds = quick ? 1 : 3;
const only = (flag('--only') ?? 'tcc,2pc,saga').split(',');

type Mode = 'tcc' | '2pc' | 'saga';
const TARGETS: Record<Mode, number> = { tcc: 0.3, '2pc': 0.2, saga: 0.35 };

interface Result {
  name: string;
  /** Messages per dispatcher transaction in the measured run (batches delivered together share one). */
  perTransaction?: number;
  perSecond: number;
  /** This process's CPU time (user + system) per completed transaction, in ms: steadier than rates on a shared machine. */
  cpuMs: number;
  /** The embedded PostgreSQL's CPU time (every process of the cluster) per completed transaction, in ms; NaN with DATABASE_URL. */
  pgCpuMs: number;
  p50: number;
  p99: number;
  count: number;
}

let dir = '';
/** Data directory of the embedded PostgreSQL, whose processes' CPU is read from /proc; undefined with DATABASE_URL. */
let pgData: string | undefined;
const pgCpuUs = (): number => (pgData === undefined ? NaN : (clusterCpuUs(pgData) ?? NaN));

function order(): Order {
  const quantity = 1 + Math.floor(Math.random() * 3);
  return {
    orderId: newMessageId(),
    sku: 1 + Math.floor(Math.random() * ROWS),
    account: 1 + Math.floor(Math.random() * ROWS),
    quantity,
    cents: quantity * 1999,
  };
}

async function insertOrder(context: Pick<TransactionContext, 'manager'>, o: Order): Promise<void> {
  await context.manager.query(`INSERT INTO bench_orders (order_id, sku, account, quantity, cents) VALUES ($1, $2, $3, $4, $5)`, [
    o.orderId,
    o.sku,
    o.account,
    o.quantity,
    o.cents,
  ]);
}

/** The baseline: the order and its three effects in one local transaction. */
async function localOrder(db: Database): Promise<void> {
  const o = order();
  await db.transaction(async (manager) => {
    await insertOrder({ manager }, o);
    await take.stock({ manager }, o);
    await take.money({ manager }, o);
    await take.shipment({ manager }, o);
  });
}

const SERVICES: Record<Mode, Function[]> = {
  tcc: [InventoryTcc, PaymentTcc, ShippingTcc],
  '2pc': [InventoryXa, PaymentXa, ShippingXa],
  saga: [InventorySaga, PaymentSaga, ShippingSaga],
};
const NAMES: Record<Mode, string> = { tcc: 'TCC', '2pc': '2PC', saga: 'saga' };

async function runMode(db: Database, mode: Mode): Promise<Result> {
  const transport = new EmbeddedTransport({ dataDir: join(dir, `log-${mode}`) });
  const container = new Container();
  container.bind(COORDINATOR_OPTIONS).toConstantValue({ cleanupIntervalMs: 0 });
  const app = ConcordatApp.create({
    name: `bench-${mode}`,
    services: [TransactionCoordinator, Outcomes, ...SERVICES[mode]],
    container,
    database: db,
    transport,
    partitions: 8,
  });
  await app.start();
  try {
    return await withBatching(() => measure(`${NAMES[mode]}, 3 participants`, () => globalOrder(app, mode)));
  } finally {
    await app.stop();
    await transport.close();
  }
}

/** Messages of a TCC global transaction with three participants: 3 Try, 3 votes, 3 Confirm, 3 acknowledgements, the outcome. */
const TCC_MESSAGES = 13;

/** The messaging floor (see `Chain`): a chain of TCC_MESSAGES plain handler hops, begun like an order. */
async function runChain(db: Database): Promise<Result> {
  const transport = new EmbeddedTransport({ dataDir: join(dir, 'log-chain') });
  const app = ConcordatApp.create({ name: 'bench-chain', services: [Chain], database: db, transport, partitions: 8 });
  await app.start();
  try {
    return await withBatching(() =>
      measure(`floor: ${TCC_MESSAGES} plain handler hops`, async () => {
        const o = order();
        const id = newMessageId();
        const done = new Promise<void>((resolve) => chainWaiters.set(id, resolve));
        await app.transaction(async (context) => {
          await insertOrder(context, o);
          context.publish('bench.chain', { id, left: TCC_MESSAGES - 1 }, { key: id });
        });
        await done;
      }),
    );
  } finally {
    await app.stop();
    await transport.close();
  }
}

/** Sum and count of the dispatcher's messages-per-transaction histogram, all groups. */
async function dispatchTotals(): Promise<{ messages: number; transactions: number }> {
  const metric = register.getSingleMetric('concordat_dispatch_batch_records');
  const values = metric === undefined ? [] : (await metric.get()).values;
  const total = (name: string) => values.filter((v) => (v as { metricName?: string }).metricName === name).reduce((sum, v) => sum + v.value, 0);
  return { messages: total('concordat_dispatch_batch_records_sum'), transactions: total('concordat_dispatch_batch_records_count') };
}

/** Runs `run` and adds how many messages a dispatcher transaction held on average meanwhile. */
async function withBatching(run: () => Promise<Result>): Promise<Result> {
  const before = await dispatchTotals();
  const result = await run();
  const after = await dispatchTotals();
  const transactions = after.transactions - before.transactions;
  const perTransaction = transactions > 0 ? (after.messages - before.messages) / transactions : undefined;
  if (perTransaction !== undefined) console.log(`    ${perTransaction.toFixed(2)} messages per dispatcher transaction`);
  return perTransaction === undefined ? result : { ...result, perTransaction };
}

/** One order as a global transaction: begun with the order row, done when its outcome arrives. */
async function globalOrder(app: ConcordatApp, mode: Mode): Promise<void> {
  const o = order();
  const id = newMessageId();
  const done = new Promise<string>((resolve) => waiters.set(id, resolve));
  await app.transaction(async (context) => {
    await insertOrder(context, o);
    const common = { id, name: 'bench-order', outcomeTopic: 'bench.outcome', timeoutMs: 60_000 };
    const parts = ['bench.inventory', 'bench.payment', 'bench.shipping'].map((participant) => ({ participant, payload: o }));
    if (mode === 'tcc') await beginTcc(context, { ...common, branches: parts });
    else if (mode === '2pc') await beginTwoPhase(context, { ...common, branches: parts });
    else await beginSaga(context, { ...common, steps: parts });
  });
  const state = await done;
  if (state !== 'CONFIRMED') throw new Error(`global transaction ${id} ended ${state}`);
}

/** A closed loop of `concurrency` clients; counts what completes inside the measured window. */
async function measure(name: string, one: () => Promise<void>): Promise<Result> {
  const start = Date.now();
  const from = start + warmupSeconds * 1000;
  const until = from + seconds * 1000;
  const latencies: number[] = [];
  let cpuFrom: NodeJS.CpuUsage | undefined;
  let cpuTo: NodeJS.CpuUsage | undefined;
  let pgFrom = NaN;
  let pgTo = NaN;
  setTimeout(() => ((cpuFrom = process.cpuUsage()), (pgFrom = pgCpuUs())), from - Date.now());
  setTimeout(() => ((cpuTo = process.cpuUsage(cpuFrom)), (pgTo = pgCpuUs())), until - Date.now());
  const client = async (): Promise<void> => {
    while (Date.now() < until) {
      const t0 = performance.now();
      const began = Date.now();
      await one();
      const ended = Date.now();
      if (began >= from && ended <= until) latencies.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, client));
  latencies.sort((a, b) => a - b);
  const at = (q: number): number => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, until - Date.now() + 10)));
  const cpuMs = cpuTo === undefined ? NaN : (cpuTo.user + cpuTo.system) / 1000 / Math.max(1, latencies.length);
  const pgCpuMs = (pgTo - pgFrom) / 1000 / Math.max(1, latencies.length);
  const result = { name, perSecond: latencies.length / seconds, cpuMs, pgCpuMs, p50: at(0.5), p99: at(0.99), count: latencies.length };
  console.log(
    `  ${name}: ${result.perSecond.toFixed(1)}/s, p50 ${result.p50.toFixed(1)} ms, p99 ${result.p99.toFixed(1)} ms, ` +
      `${cpuMs.toFixed(2)} ms of Node CPU + ${pgCpuMs.toFixed(2)} ms of PostgreSQL CPU each (${result.count} in ${seconds} s)`,
  );
  return result;
}

function report(results: Result[], baseline: Result): void {
  console.log(
    `\nload average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')} on ${cpus().length} cores`,
  );
  console.log(`\n| | per second | ratio | target | p50 ms | p99 ms | CPU ms each: Node + PostgreSQL | CPU ratio | messages per dispatcher transaction |`);
  console.log('|---|---:|---:|---|---:|---:|---:|---:|---:|');
  for (const r of results) {
    const mode = (Object.keys(NAMES) as Mode[]).find((m) => r.name.startsWith(NAMES[m]));
    const ratio = r.perSecond / baseline.perSecond;
    const target = mode === undefined ? '' : `≥ ${TARGETS[mode]}× ${ratio >= TARGETS[mode] ? 'met' : 'MISSED'}`;
    const perTx = r.perTransaction === undefined ? '' : r.perTransaction.toFixed(2);
    const cpu = `${r.cpuMs.toFixed(2)} + ${r.pgCpuMs.toFixed(2)} = ${(r.cpuMs + r.pgCpuMs).toFixed(2)}`;
    const cpuRatio = (baseline.cpuMs + baseline.pgCpuMs) / (r.cpuMs + r.pgCpuMs);
    console.log(
      `| ${r.name} | ${r.perSecond.toFixed(1)} | ${ratio.toFixed(3)}× | ${target} | ${r.p50.toFixed(1)} | ${r.p99.toFixed(1)} | ${cpu} | ${cpuRatio.toFixed(3)}× | ${perTx} |`,
    );
  }
}

async function freshDatabase(serverUrl: string, name: string): Promise<string> {
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

async function main(): Promise<void> {
  dir = await mkdtemp(join(tmpdir(), 'concordat-bench-tx-'));
  // The embedded server runs as the `postgres` user when we are root: it must reach its directory.
  await chmod(dir, 0o755);
  let embedded: RunningPostgres | undefined;
  try {
    console.log(
      `concordat global transaction benchmark${quick ? ' (quick)' : ''}: ${new Date().toISOString()}, node ${process.version}, ` +
        `${concurrency} concurrent clients, ${seconds} s measured after ${warmupSeconds} s warm-up`,
    );
    const serverUrl =
      process.env.DATABASE_URL ??
      (embedded = await startEmbeddedPostgres({ dataDir: join(dir, 'postgres'), maxPreparedTransactions: 512, maxConnections: 400 })).url;
    if (embedded !== undefined) pgData = join(dir, 'postgres');
    const url = await freshDatabase(serverUrl, 'bench_tx');
    const db = await openDatabase({ url, poolSize: 80 });
    try {
      for (const sql of [...SCHEMA, ...seed()]) await db.dataSource.query(sql);
      const results: Result[] = [];
      // --no-baseline: only the global transactions (for profiling them alone); ratios are then not printed.
      const baseline = args.includes('--no-baseline') ? undefined : await measure('local transaction (baseline)', () => localOrder(db));
      if (baseline !== undefined) results.push(baseline);
      for (const mode of (['tcc', '2pc', 'saga'] as const).filter((m) => only.includes(m))) {
        results.push(await runMode(db, mode));
      }
      if (!args.includes('--no-floor')) results.push(await runChain(db));
      if (baseline !== undefined) report(results, baseline);
    } finally {
      await db.close();
    }
  } finally {
    await embedded?.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
