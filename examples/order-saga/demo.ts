import { rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import pg from 'pg';
import type { DataSource } from 'typeorm';
import { startEmbeddedPostgres, type RunningPostgres } from '../../src/persistence/index.js';
import { ConcordatApp } from '../../src/runtime/index.js';
import { defaultTransport } from '../../src/transport/index.js';
import { runChecks, type Check } from './checks.js';
import { readAccounts, readOrders, readProducts, type Account, type OrderLine, type Product } from './data-files.js';
import { allServices, type Mode } from './deployment.js';
import { OrderSagaSchema1795200000001 } from './schema.js';
import { Topics, type OrderSubmitted } from './services/messages.js';

export interface DemoOptions {
  /** How each order's global transaction runs: TCC, 2PC or a saga (services/modes.ts). */
  mode: Mode;
  ordersFile: string;
  productsFile: string;
  accountsFile: string;
  /** Where the embedded PostgreSQL and the log live. */
  dataDir: string;
  /** A PostgreSQL server to use instead of the embedded one (the demo creates its own database on it). */
  databaseUrl?: string;
  /** Name of the demo's database, dropped and created afresh at each run. */
  databaseName: string;
  /** Partitions of each topic. */
  partitions: number;
  /** Give up waiting for the orders to finish after this long, in ms. */
  timeoutMs: number;
  /** Submit orders at this steady rate (orders per second) instead of all at once. */
  ratePerSecond?: number;
  /** Keep at most this many orders submitted but not finished (admission control); unbounded by default. */
  inFlightMax?: number;
  onProgress?: (progress: Progress) => void;
  /** Serve `/metrics`, `/healthz` and `/readyz` on this port while the demo runs (0: a free one; see docs/operations.md). In process only. */
  metricsPort?: number;
  /** Called once the app started (the metrics endpoint, if any, is at `app.metricsAddress`). */
  onStarted?: (app: ConcordatApp) => void;
  /** Called after every order finished and the checks ran, before the app stops (tests scrape `/metrics` there). */
  beforeStop?: (app: ConcordatApp) => Promise<void>;
}

export interface Progress {
  submitted: number;
  total: number;
  pending: number;
  confirmed: number;
  cancelled: number;
  elapsedMs: number;
}

export interface Summary {
  orders: number;
  confirmed: number;
  cancelled: number;
  cancelledForStock: number;
  cancelledForFunds: number;
  cancelledOther: number;
  /** The commonest reasons of the other cancellations (numbers and IDs masked), most frequent first, at most 3. */
  otherReasons: Array<{ reason: string; count: number }>;
  elapsedMs: number;
  ordersPerSecond: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  deadLettered: number;
}

export interface DemoResult {
  mode: Mode;
  summary: Summary;
  checks: Check[];
  ok: boolean;
}

export const defaultDataDir = resolve('.concordat');
export const dataFile = (name: string): string => resolve(import.meta.dirname, 'data', name);

/** The demo's input files, read and validated. */
export interface DemoInputs {
  products: Product[];
  accounts: Account[];
  orders: OrderLine[];
}

export async function readInputs(options: Pick<DemoOptions, 'ordersFile' | 'productsFile' | 'accountsFile'>): Promise<DemoInputs> {
  const [products, accounts, orders] = await Promise.all([
    readProducts(options.productsFile),
    readAccounts(options.accountsFile),
    readOrders(options.ordersFile),
  ]);
  return { products, accounts, orders };
}

/** The demo's database, created afresh on the embedded PostgreSQL or on `databaseUrl`. */
export interface DemoDatabase {
  /** URL of the demo's own database. */
  url: string;
  /** Stops the embedded PostgreSQL if the demo started one. */
  stop(): Promise<void>;
}

export async function prepareDatabase(options: Pick<DemoOptions, 'dataDir' | 'databaseUrl' | 'databaseName'>): Promise<DemoDatabase> {
  let embedded: RunningPostgres | undefined;
  const serverUrl = options.databaseUrl ?? (embedded = await startEmbeddedPostgres({ dataDir: join(options.dataDir, 'postgres') })).url;
  try {
    return { url: await recreateDatabase(serverUrl, options.databaseName), stop: async () => embedded?.stop() };
  } catch (error) {
    await embedded?.stop();
    throw error;
  }
}

/**
 * Runs the order saga end to end in this process: a fresh database for the
 * demo (on the embedded PostgreSQL or `databaseUrl`), a fresh log (or the
 * Kafka cluster named by `KAFKA_BROKERS`), the three services and the
 * coordinator in one app; loads products and accounts, submits every order
 * as a message, waits until each order is CONFIRMED or CANCELLED, and checks
 * the invariants.
 */
export async function runDemo(options: DemoOptions): Promise<DemoResult> {
  const inputs = await readInputs(options);
  const database = await prepareDatabase(options);
  const logDir = join(options.dataDir, `${options.databaseName}-log`);
  await rm(logDir, { recursive: true, force: true });

  const transport = defaultTransport(logDir);
  const app = ConcordatApp.create({
    name: 'order-saga',
    services: allServices(options.mode),
    database: { url: database.url, migrations: [OrderSagaSchema1795200000001], poolSize: 30 },
    transport,
    partitions: options.partitions,
    ...(options.metricsPort !== undefined && { metrics: { port: options.metricsPort } }),
  });

  try {
    await app.start();
    options.onStarted?.(app);
    const outcome = await feedAndCheck(app, inputs, options);
    await options.beforeStop?.(app);
    const deadLettered = Object.values(app.stats()).reduce((sum, stats) => sum + stats.deadLettered, 0);
    return withDeadLetters(outcome, deadLettered);
  } finally {
    await app.stop();
    await transport.close();
    await database.stop();
  }
}

/**
 * The part both ways of running share: load the reference data, submit the
 * orders through `app`'s outbox, wait for every order to end, summarize and
 * check. Dead letters are counted by the caller.
 */
export async function feedAndCheck(app: ConcordatApp, inputs: DemoInputs, options: DemoOptions): Promise<DemoResult> {
  const { orders } = inputs;
  await loadReferenceData(app, inputs.products, inputs.accounts);
  const startedAt = Date.now();
  const progress = new ProgressReader(app.dataSource, orders.length, startedAt, options.onProgress);
  await submitOrders(app, orders, options, progress);
  await waitForOrders(progress, startedAt + options.timeoutMs);
  const summary = await summarize(app.dataSource, orders.length, startedAt);
  const checks = await runChecks(app.dataSource, options.mode);
  return { mode: options.mode, summary, checks, ok: checks.every((check) => check.ok) };
}

/** Adds the dead-letter count to the summary, and a failed check when there are any. */
export function withDeadLetters(result: DemoResult, deadLettered: number): DemoResult {
  const checks = [...result.checks];
  if (deadLettered > 0) checks.push({ name: 'no message dead-lettered', ok: false, detail: `${deadLettered} dead letters` });
  return { ...result, summary: { ...result.summary, deadLettered }, checks, ok: checks.every((check) => check.ok) };
}

async function recreateDatabase(serverUrl: string, name: string): Promise<string> {
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${admin.escapeIdentifier(name)} WITH (FORCE)`);
    await admin.query(`CREATE DATABASE ${admin.escapeIdentifier(name)}`);
  } finally {
    await admin.end();
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

async function loadReferenceData(app: ConcordatApp, products: Product[], accounts: Account[]): Promise<void> {
  await app.transaction(async ({ manager }) => {
    await manager.query(
      `INSERT INTO inventory.products (sku, name, initial_stock, available, reserved, sold)
       SELECT sku, name, stock, stock, 0, 0 FROM unnest($1::text[], $2::text[], $3::int[]) AS p(sku, name, stock)`,
      [products.map((p) => p.sku), products.map((p) => p.name), products.map((p) => p.stock)],
    );
    await manager.query(`INSERT INTO orders.prices (sku, price_cents) SELECT * FROM unnest($1::text[], $2::bigint[])`, [
      products.map((p) => p.sku),
      products.map((p) => p.priceCents),
    ]);
    await manager.query(
      `INSERT INTO payment.accounts (account_id, email, initial_balance, balance, held, captured)
       SELECT id, email, balance, balance, 0, 0 FROM unnest($1::text[], $2::text[], $3::bigint[]) AS a(id, email, balance)`,
      [accounts.map((a) => a.accountId), accounts.map((a) => a.email), accounts.map((a) => a.balanceCents)],
    );
  });
}

/** Counts the orders by status in the demo database and reports each reading. */
class ProgressReader {
  submitted = 0;

  constructor(
    private readonly dataSource: DataSource,
    private readonly total: number,
    private readonly startedAt: number,
    private readonly onProgress: ((progress: Progress) => void) | undefined,
  ) {}

  async read(): Promise<Progress> {
    const rows: Array<{ status: string; n: number }> = await this.dataSource.query(`SELECT status, count(*)::int AS n FROM orders.orders GROUP BY status`);
    const by = (status: string): number => rows.find((r) => r.status === status)?.n ?? 0;
    const progress: Progress = {
      submitted: this.submitted,
      total: this.total,
      pending: by('PENDING'),
      confirmed: by('CONFIRMED'),
      cancelled: by('CANCELLED'),
      elapsedMs: Date.now() - this.startedAt,
    };
    this.onProgress?.(progress);
    return progress;
  }
}

/**
 * Publishes one `orders.submitted` message per order through the outbox, at
 * most 100 per transaction. With `inFlightMax`, it keeps a window: each
 * transaction submits as many orders as have finished since the last one
 * (submitted minus finished stays at most `inFlightMax`), as a shop's front
 * end admitting orders would, rather than waves that drain before the next
 * starts. With a rate, it submits in ticks of 50 ms. Waits end at the demo's
 * timeout (the checks then report what is unfinished).
 */
async function submitOrders(app: ConcordatApp, orders: OrderLine[], options: DemoOptions, progress: ProgressReader): Promise<void> {
  const { ratePerSecond, inFlightMax } = options;
  const tickMs = 50;
  const chunkMax = ratePerSecond === undefined ? 100 : Math.max(1, Math.round((ratePerSecond * tickMs) / 1000));
  const startedAt = Date.now();
  const deadline = startedAt + options.timeoutMs;
  for (let i = 0; i < orders.length; ) {
    if (ratePerSecond !== undefined) {
      const dueAt = startedAt + (i / ratePerSecond) * 1000;
      if (dueAt > Date.now()) await sleep(dueAt - Date.now());
    }
    let size = Math.min(chunkMax, orders.length - i);
    if (inFlightMax !== undefined) {
      size = Math.min(size, await freeSlots(progress, i, inFlightMax, deadline));
      if (size === 0) break; // the deadline passed with the window full
    }
    const batch = orders.slice(i, i + size);
    await app.transaction(async (context) => {
      for (const order of batch) {
        const message: OrderSubmitted = { orderId: order.orderId, accountId: order.accountId, sku: order.sku, quantity: order.quantity };
        context.publish(Topics.ORDER_SUBMITTED, message, { key: order.orderId });
      }
    });
    i += batch.length;
    progress.submitted = i;
  }
}

/** How many more orders fit in the window once at least one does (polling every 5 ms), or 0 past the deadline. */
async function freeSlots(progress: ProgressReader, submitted: number, inFlightMax: number, deadline: number): Promise<number> {
  for (;;) {
    const { confirmed, cancelled } = await progress.read();
    const free = inFlightMax - (submitted - confirmed - cancelled);
    if (free > 0) return free;
    if (Date.now() >= deadline) return 0;
    await sleep(5);
  }
}

async function waitForOrders(progress: ProgressReader, deadline: number): Promise<void> {
  for (;;) {
    const { confirmed, cancelled, total } = await progress.read();
    if (confirmed + cancelled >= total) return;
    if (Date.now() > deadline) return; // the checks will report what is unfinished
    await sleep(250);
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolveSleep) => setTimeout(resolveSleep, ms));

async function summarize(dataSource: DataSource, total: number, startedAt: number): Promise<Summary> {
  const [row] = await dataSource.query(`
    SELECT count(*) FILTER (WHERE status = 'CONFIRMED')::int AS confirmed,
           count(*) FILTER (WHERE status = 'CANCELLED')::int AS cancelled,
           count(*) FILTER (WHERE status = 'CANCELLED' AND reason LIKE '%insufficient stock%')::int AS stock,
           count(*) FILTER (WHERE status = 'CANCELLED' AND reason LIKE '%insufficient funds%')::int AS funds,
           COALESCE(extract(epoch FROM max(completed_at)) * 1000, 0)::float8 AS last_ms,
           COALESCE(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM completed_at - created_at) * 1000), 0)::float8 AS p50,
           COALESCE(percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM completed_at - created_at) * 1000), 0)::float8 AS p99
      FROM orders.orders`);
  // A 2PC lock timeout, a deadline: what cancelled an order other than its stock or its funds.
  const otherReasons: Array<{ reason: string; count: number }> = await dataSource.query(`
    SELECT left(regexp_replace(COALESCE(reason, 'no reason'), '[0-9a-f]{8}-[0-9a-f-]{27}|[0-9]+', '#', 'g'), 100) AS reason, count(*)::int AS count
      FROM orders.orders
     WHERE status = 'CANCELLED' AND COALESCE(reason, '') NOT LIKE '%insufficient stock%' AND COALESCE(reason, '') NOT LIKE '%insufficient funds%'
     GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 3`);
  const elapsedMs = Math.max(1, (row.last_ms > 0 ? row.last_ms : Date.now()) - startedAt);
  const finished = row.confirmed + row.cancelled;
  return {
    orders: total,
    confirmed: row.confirmed,
    cancelled: row.cancelled,
    cancelledForStock: row.stock,
    cancelledForFunds: row.funds,
    cancelledOther: row.cancelled - row.stock - row.funds,
    otherReasons,
    elapsedMs,
    ordersPerSecond: (finished * 1000) / elapsedMs,
    latencyP50Ms: row.p50,
    latencyP99Ms: row.p99,
    deadLettered: 0,
  };
}
