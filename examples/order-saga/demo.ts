import { rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import pg from 'pg';
import type { DataSource } from 'typeorm';
import { startEmbeddedPostgres, type RunningPostgres } from '../../src/persistence/index.js';
import { ConcordatApp, isDatabaseUnavailable } from '../../src/runtime/index.js';
import { databaseAnswersNewConnection } from '../../src/runtime/retry.js';
import { defaultTransport } from '../../src/transport/index.js';
import { runChecks, type Check } from './checks.js';
import { readAccounts, readOrders, readProducts, type Account, type OrderLine, type Product } from './data-files.js';
import { allServices, type Mode } from './deployment.js';
import { OrderSagaSchema1795200000001 } from './schema.js';
import { Topics, type OrderSubmitted } from './services/messages.js';
import { PAYMENT_DEADLINE_REASON } from './services/order.modes.js';

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
  /**
   * Submit orders at this steady rate (orders per second) instead of all at
   * once. A function is asked before each batch (every 50 ms or so): the
   * rate it returns holds from then on, and `undefined` submits as fast as
   * `inFlightMax` allows (the soak measures the maximum that way, then feeds
   * at half of it).
   */
  ratePerSecond?: number | (() => number | undefined);
  /**
   * Asked before each batch (and while the in-flight window is full): once
   * it returns true, no more orders are submitted, even if some are left;
   * the wait, the summary and the checks then cover the orders submitted.
   * For runs that last a given time rather than a given number of orders.
   */
  stopFeed?: () => boolean;
  /**
   * Keep at most this many orders in flight (admission control): submitted
   * and not finished, not counting those awaiting a payment (a customer's
   * wait costs the shop nothing). Unbounded by default.
   */
  inFlightMax?: number;
  /**
   * How long after it is placed an order's payment must have gone through,
   * in ms; past it the order is cancelled (`services/order.modes.ts`).
   * @default 5000
   */
  paymentTimeoutMs?: number;
  /**
   * The fraction (0..1) of accounts whose customers choose to pay later and
   * never pay: their orders are placed with `payLater` and cancelled by their
   * payment deadline. Accounts are chosen by a hash of their ID
   * ({@link isUnpaidAccount}), so a fraction picks the same ones in every run.
   * @default 0
   */
  unpaidFraction?: number;
  onProgress?: (progress: Progress) => void;
  /** Serve `/metrics`, `/healthz` and `/readyz` on this port while the demo runs (0: a free one; see docs/operations.md). In process only. */
  metricsPort?: number;
  /** Called once the app started (the metrics endpoint, if any, is at `app.metricsAddress`). */
  onStarted?: (app: ConcordatApp) => void;
  /** Called after every order finished and the checks ran, before the app (or, with `--processes`, every process) stops: tests scrape `/metrics` there, the soak waits for the lag to drain. */
  beforeStop?: (app: ConcordatApp) => Promise<void>;
}

export interface Progress {
  submitted: number;
  total: number;
  /** Orders whose global transaction is taking stock and payment. */
  pending: number;
  /** Orders placed to be paid later, not paid yet. */
  awaitingPayment: number;
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
  /** Cancelled by their payment deadline: never paid, or paid but not through in time (both counted in `cancelled`). */
  cancelledForDeadline: number;
  /** Of {@link cancelledForDeadline}: never paid (nothing was taken). */
  cancelledUnpaid: number;
  cancelledOther: number;
  /** The commonest reasons of the other cancellations (numbers and IDs masked), most frequent first, at most 3. */
  otherReasons: Array<{ reason: string; count: number }>;
  /**
   * From the first submission to the last paid order's end, in ms. The
   * throughput and latencies cover the orders that were paid (that began a
   * global transaction): one never paid ends at its deadline, which says
   * nothing about the system's speed.
   */
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
  /** The embedded cluster's data directory (its `postmaster.pid` names the server's PID); undefined with `databaseUrl`. */
  embeddedDataDir?: string;
  /**
   * Restarts the embedded PostgreSQL on the same port and data directory: a
   * fast shutdown (SIGINT: open sessions are ended, running transactions
   * roll back), then a start. Every client sees its connections drop.
   * @throws Error with `databaseUrl`, a server the demo does not own
   */
  restart(): Promise<void>;
  /** Stops the embedded PostgreSQL if the demo started one. */
  stop(): Promise<void>;
}

export async function prepareDatabase(options: Pick<DemoOptions, 'dataDir' | 'databaseUrl' | 'databaseName'>): Promise<DemoDatabase> {
  const embeddedDataDir = options.databaseUrl === undefined ? join(options.dataDir, 'postgres') : undefined;
  let embedded: RunningPostgres | undefined;
  const serverUrl = options.databaseUrl ?? (embedded = await startEmbeddedPostgres({ dataDir: embeddedDataDir! })).url;
  try {
    return {
      url: await recreateDatabase(serverUrl, options.databaseName),
      ...(embeddedDataDir !== undefined && { embeddedDataDir }),
      restart: async () => {
        if (embedded === undefined || !embedded.owned) throw new Error('only an embedded PostgreSQL that the demo started can be restarted (not DATABASE_URL)');
        const port = embedded.port;
        await embedded.stop();
        embedded = await startEmbeddedPostgres({ dataDir: embeddedDataDir!, port });
      },
      stop: async () => embedded?.stop(),
    };
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
    services: allServices(options.mode, options.paymentTimeoutMs === undefined ? {} : { paymentTimeoutMs: options.paymentTimeoutMs }),
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
  if (options.stopFeed !== undefined) progress.total = progress.submitted;
  await waitForOrders(progress, startedAt + options.timeoutMs);
  const summary = await summarize(app.dataSource, progress.total, startedAt);
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
    /** Orders to wait for: all of them, or those submitted when the feed stopped early (`stopFeed`). */
    public total: number,
    private readonly startedAt: number,
    private readonly onProgress: ((progress: Progress) => void) | undefined,
  ) {}

  async read(): Promise<Progress> {
    // AWAITING_PAYMENT and PENDING are the only other statuses (services/order.modes.ts).
    const rows: Array<{ status: string; n: number }> = await whileDatabaseRestarts(this.dataSource, () =>
      this.dataSource.query(`SELECT status, count(*)::int AS n FROM orders.orders GROUP BY status`),
    );
    const by = (status: string): number => rows.find((r) => r.status === status)?.n ?? 0;
    const progress: Progress = {
      submitted: this.submitted,
      total: this.total,
      pending: by('PENDING'),
      awaitingPayment: by('AWAITING_PAYMENT'),
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
 * starts. With a rate, it submits in ticks of 50 ms, and catches up after a
 * stall (the window still bounds it). Waits end at the demo's timeout (the
 * checks then report what is unfinished), submitting when `stopFeed` says so.
 * A transaction that fails because the database is restarting is tried
 * again once it answers (see {@link whileDatabaseRestarts}).
 */
async function submitOrders(app: ConcordatApp, orders: OrderLine[], options: DemoOptions, progress: ProgressReader): Promise<void> {
  const { ratePerSecond, inFlightMax } = options;
  const unpaidFraction = options.unpaidFraction ?? 0;
  if (!(unpaidFraction >= 0 && unpaidFraction <= 1)) throw new RangeError(`unpaidFraction must be between 0 and 1; got ${unpaidFraction}`);
  const tickMs = 50;
  const startedAt = Date.now();
  const deadline = startedAt + options.timeoutMs;
  const stopped = (): boolean => options.stopFeed?.() === true;
  /** When the next batch is due at the current rate (a steady rate: `startedAt + i / rate`). */
  let dueAt = startedAt;
  let paced = false;
  for (let i = 0; i < orders.length;) {
    const rate = typeof ratePerSecond === 'function' ? ratePerSecond() : ratePerSecond;
    if (rate !== undefined) {
      if (!paced) dueAt = Date.now();
      paced = true;
      if (dueAt > Date.now()) await sleep(dueAt - Date.now());
    } else {
      paced = false;
    }
    if (stopped()) break;
    let size = Math.min(rate === undefined ? 100 : Math.max(1, Math.round((rate * tickMs) / 1000)), orders.length - i);
    if (inFlightMax !== undefined) {
      size = Math.min(size, await freeSlots(progress, i, inFlightMax, deadline, stopped));
      if (size === 0) break; // the deadline passed (or the feed was stopped) with the window full
    }
    const batch = orders.slice(i, i + size);
    await whileDatabaseRestarts(app.dataSource, () =>
      app.transaction(async (context) => {
        for (const order of batch) {
          const message: OrderSubmitted = {
            orderId: order.orderId,
            accountId: order.accountId,
            sku: order.sku,
            quantity: order.quantity,
            ...(isUnpaidAccount(order.accountId, unpaidFraction) && { payLater: true }),
          };
          context.publish(Topics.ORDER_SUBMITTED, message, { key: order.orderId });
        }
      }),
    );
    i += batch.length;
    progress.submitted = i;
    if (rate !== undefined) dueAt += (batch.length / rate) * 1000;
  }
}

/** Longest database outage the feeder rides out (a restart of PostgreSQL takes seconds), in ms. */
const DATABASE_OUTAGE_MAX_MS = 120_000;

/**
 * Runs `work` and, while it fails because the database does not answer (a
 * restart of PostgreSQL, as `npm run soak` makes), runs it again every
 * 500 ms, for at most {@link DATABASE_OUTAGE_MAX_MS}; any other failure is
 * thrown at once. `work` must be safe to repeat: a transaction whose COMMIT
 * went through but whose answer was lost would run twice (the window is the
 * instant the server stops).
 */
async function whileDatabaseRestarts<T>(dataSource: DataSource, work: () => Promise<T>): Promise<T> {
  const giveUpAt = Date.now() + DATABASE_OUTAGE_MAX_MS;
  for (;;) {
    try {
      return await work();
    } catch (error) {
      if (Date.now() >= giveUpAt || !(isDatabaseUnavailable(error) || !(await databaseAnswersNewConnection(dataSource)))) throw error;
      await sleep(500);
    }
  }
}

/**
 * Whether the customer of `accountId` is one of the `fraction` who pay later
 * and never do: FNV-1a (32 bits) of the ID, mixed by MurmurHash3's
 * finalizer (FNV alone leaves IDs that differ in their last digits close
 * together), scaled to [0, 1), below `fraction`. The same accounts in every
 * run; a larger fraction adds to them.
 */
export function isUnpaidAccount(accountId: string, fraction: number): boolean {
  if (fraction <= 0) return false;
  let hash = 0x811c9dc5;
  for (let i = 0; i < accountId.length; i++) hash = Math.imul(hash ^ accountId.charCodeAt(i), 0x01000193);
  hash = Math.imul(hash ^ (hash >>> 16), 0x85ebca6b);
  hash = Math.imul(hash ^ (hash >>> 13), 0xc2b2ae35);
  hash ^= hash >>> 16;
  return (hash >>> 0) / 2 ** 32 < fraction;
}

/** How many more orders fit in the window once at least one does (polling every 5 ms), or 0 past the deadline or once the feed is stopped. */
async function freeSlots(progress: ProgressReader, submitted: number, inFlightMax: number, deadline: number, stopped: () => boolean): Promise<number> {
  for (;;) {
    const { confirmed, cancelled, awaitingPayment } = await progress.read();
    const free = inFlightMax - (submitted - confirmed - cancelled - awaitingPayment);
    if (free > 0) return free;
    if (Date.now() >= deadline || stopped()) return 0;
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
  // Throughput and latency over the paid orders (global_tx_id set): an unpaid one ends at its deadline.
  const [row] = await dataSource.query(`
    SELECT count(*) FILTER (WHERE status = 'CONFIRMED')::int AS confirmed,
           count(*) FILTER (WHERE status = 'CANCELLED')::int AS cancelled,
           count(*) FILTER (WHERE status = 'CANCELLED' AND reason LIKE '%insufficient stock%')::int AS stock,
           count(*) FILTER (WHERE status = 'CANCELLED' AND reason LIKE '%insufficient funds%')::int AS funds,
           count(*) FILTER (WHERE status = 'CANCELLED' AND reason LIKE '%${PAYMENT_DEADLINE_REASON}%')::int AS deadline,
           count(*) FILTER (WHERE status = 'CANCELLED' AND reason LIKE '%${PAYMENT_DEADLINE_REASON}%' AND global_tx_id IS NULL)::int AS unpaid,
           count(*) FILTER (WHERE status IN ('CONFIRMED', 'CANCELLED') AND global_tx_id IS NOT NULL)::int AS paid_finished,
           COALESCE(extract(epoch FROM max(completed_at) FILTER (WHERE global_tx_id IS NOT NULL)) * 1000, 0)::float8 AS last_ms,
           COALESCE(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM completed_at - created_at) * 1000) FILTER (WHERE global_tx_id IS NOT NULL), 0)::float8 AS p50,
           COALESCE(percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM completed_at - created_at) * 1000) FILTER (WHERE global_tx_id IS NOT NULL), 0)::float8 AS p99
      FROM orders.orders`);
  // A 2PC lock timeout, a coordinator's deadline: what cancelled an order other than its stock, its funds or its payment deadline.
  const otherReasons: Array<{ reason: string; count: number }> = await dataSource.query(`
    SELECT left(regexp_replace(COALESCE(reason, 'no reason'), '[0-9a-f]{8}-[0-9a-f-]{27}|[0-9]+', '#', 'g'), 100) AS reason, count(*)::int AS count
      FROM orders.orders
     WHERE status = 'CANCELLED' AND COALESCE(reason, '') NOT LIKE '%insufficient stock%' AND COALESCE(reason, '') NOT LIKE '%insufficient funds%'
       AND COALESCE(reason, '') NOT LIKE '%${PAYMENT_DEADLINE_REASON}%'
     GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 3`);
  const elapsedMs = Math.max(1, (row.last_ms > 0 ? row.last_ms : Date.now()) - startedAt);
  return {
    orders: total,
    confirmed: row.confirmed,
    cancelled: row.cancelled,
    cancelledForStock: row.stock,
    cancelledForFunds: row.funds,
    cancelledForDeadline: row.deadline,
    cancelledUnpaid: row.unpaid,
    cancelledOther: row.cancelled - row.stock - row.funds - row.deadline,
    otherReasons,
    elapsedMs,
    ordersPerSecond: (row.paid_finished * 1000) / elapsedMs,
    latencyP50Ms: row.p50,
    latencyP99Ms: row.p99,
    deadLettered: 0,
  };
}
