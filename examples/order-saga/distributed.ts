import { mkdir, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { ConcordatApp, Service } from '../../src/runtime/index.js';
import { KafkaTransport } from '../../src/transport/index.js';
import { freePort } from '../../src/persistence/index.js';
import { feedAndCheck, prepareDatabase, readInputs, withDeadLetters, type DemoDatabase, type DemoOptions, type DemoResult } from './demo.js';
import { READY_LINE, UNIT_NAMES } from './deployment.js';
import { OrderSagaSchema1795200000001 } from './schema.js';
import { Supervisor } from './supervisor.js';

const REPO_ROOT = resolve(import.meta.dirname, '..', '..');
const CLI = join(REPO_ROOT, 'src', 'cli', 'main.ts');
const SERVICE_PROCESS = join(import.meta.dirname, 'service-process.ts');
const BROKER_READY = /^concordat broker listening on \S+:(\d+) \(advertised (\S+)\)$/;

export interface DistributedDemoOptions extends DemoOptions {
  /**
   * Kafka brokers to use instead of starting `concordat broker` (from
   * `KAFKA_BROKERS`: a real Kafka cluster, as in docker-compose.yml). The
   * demo's topics and consumer groups must be fresh there.
   */
  kafkaBrokers?: string[];
  /**
   * Called with the supervisor once every process is up: a test or a chaos
   * run may kill processes through it, a soak restart the database too.
   */
  onSupervisor?: (supervisor: Supervisor, running: RunningDemo) => void;
  /**
   * Serve `/metrics` (docs/operations.md) from the broker and every unit, each
   * on a free port kept across restarts; `RunningDemo.metricsUrls` lists them.
   */
  metrics?: boolean;
  /** Lines about processes starting, exiting and restarting. */
  onProcessEvent?: (line: string) => void;
}

/** What a caller of {@link runDistributedDemo} may act on while the orders run. */
export interface RunningDemo {
  database: DemoDatabase;
  /** Bootstrap addresses of the broker (or of `kafkaBrokers`). */
  brokers: string[];
  /** `http://127.0.0.1:<port>/metrics` of each process by name (broker, orders, ...), with `metrics: true`. */
  metricsUrls: Record<string, string>;
}

export interface DistributedDemoResult extends DemoResult {
  /** How often each process was restarted by the supervisor. */
  restarts: Record<string, number>;
  /** Where each process's log went. */
  logDir: string;
}

/** The feeder in the parent process: no handlers, it only publishes orders through the outbox. */
@Service('order-feeder')
class OrderFeeder {}

/**
 * The order saga with every deployment unit in its own OS process, talking
 * Kafka protocol over loopback:
 *
 * - `concordat broker` (unless `kafkaBrokers` names a cluster) on a free port,
 *   serving a fresh log under `<dataDir>/<databaseName>-broker`;
 * - the orders (with the coordinator), inventory and payment units
 *   (`service-process.ts`) of `options.mode`, each an app with an outbox
 *   relay on the kafkajs transport (`KAFKA_BROKERS`) and the demo's
 *   database (`DATABASE_URL`);
 * - in this process, the feeder (an app without handlers and without a
 *   relay: the units' relays publish its outbox rows) and the checks.
 *
 * This process starts PostgreSQL (or uses `databaseUrl`), migrates the demo
 * database before the units start, supervises the children (a child that
 * exits on its own is restarted), and stops them at the end. Each child's
 * log goes to `<dataDir>/<databaseName>-logs/<name>.log`.
 */
export async function runDistributedDemo(options: DistributedDemoOptions): Promise<DistributedDemoResult> {
  const inputs = await readInputs(options);
  const database = await prepareDatabase(options);
  const logDir = join(options.dataDir, `${options.databaseName}-logs`);
  await rm(logDir, { recursive: true, force: true });
  await mkdir(logDir, { recursive: true });
  const supervisor = new Supervisor({ ...(options.onProcessEvent !== undefined && { onEvent: options.onProcessEvent }) });
  let app: ConcordatApp | undefined;
  let transport: KafkaTransport | undefined;
  // Ctrl-C: stop the children and the database before leaving.
  const interrupt = (signal: NodeJS.Signals): void => {
    options.onProcessEvent?.(`${signal}: stopping every process`);
    void supervisor
      .stop()
      .then(() => database.stop())
      .finally(() => process.exit(130));
  };
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);
  try {
    const metricsPorts = new Map<string, number>();
    if (options.metrics === true) for (const name of ['broker', ...UNIT_NAMES]) metricsPorts.set(name, await freePort());
    const brokers = options.kafkaBrokers ?? [await startBroker(supervisor, options, logDir, metricsPorts.get('broker'))];
    transport = new KafkaTransport({ brokers });
    app = ConcordatApp.create({
      name: 'order-feeder',
      services: [OrderFeeder],
      database: { url: database.url, migrations: [OrderSagaSchema1795200000001], poolSize: 5 },
      transport,
      relay: false,
    });
    // Migrates the demo database once, before any unit connects to it.
    await app.start();
    const env = {
      ...process.env,
      ...childLogLevel(),
      DATABASE_URL: database.url,
      KAFKA_BROKERS: brokers.join(','),
      ORDER_SAGA_PARTITIONS: String(options.partitions),
      ...(options.paymentTimeoutMs !== undefined && { ORDER_SAGA_PAYMENT_TIMEOUT_MS: String(options.paymentTimeoutMs) }),
    };
    await Promise.all(
      UNIT_NAMES.map((unit) =>
        supervisor.start({
          name: unit,
          command: process.execPath,
          args: ['--import', 'tsx', SERVICE_PROCESS, unit, options.mode],
          env: { ...env, ...(metricsPorts.has(unit) && { ORDER_SAGA_METRICS_PORT: String(metricsPorts.get(unit)) }) },
          ready: READY_LINE,
          logFile: join(logDir, `${unit}.log`),
        }),
      ),
    );
    if (options.kafkaBrokers !== undefined) metricsPorts.delete('broker');
    const metricsUrls = Object.fromEntries([...metricsPorts].map(([name, port]) => [name, `http://127.0.0.1:${port}/metrics`]));
    options.onSupervisor?.(supervisor, { database, brokers, metricsUrls });
    const outcome = await feedAndCheck(app, inputs, options);
    await options.beforeStop?.(app);
    return { ...withDeadLetters(outcome, await countDeadLetters(brokers)), restarts: supervisor.restarts(), logDir };
  } finally {
    process.off('SIGINT', interrupt);
    process.off('SIGTERM', interrupt);
    await app?.stop().catch(() => undefined);
    await transport?.close().catch(() => undefined);
    await supervisor.stop();
    await database.stop();
  }
}

/** `concordat broker` on a free port; restarts (by the supervisor) keep that port and the log. */
async function startBroker(supervisor: Supervisor, options: DemoOptions, logDir: string, metricsPort: number | undefined): Promise<string> {
  const dataDir = join(options.dataDir, `${options.databaseName}-broker`);
  await rm(dataDir, { recursive: true, force: true });
  const metrics = metricsPort === undefined ? [] : ['--metrics-port', String(metricsPort)];
  // No initial rebalance delay (Kafka's default is 3 s): each unit runs one consumer per group, so waiting for
  // more members would only delay the demo's start and every recovery after a unit's restart.
  const noDelay = ['--group-initial-rebalance-delay-ms', '0'];
  const args = (port: number) => ['--import', 'tsx', CLI, 'broker', '--data', dataDir, '--host', '127.0.0.1', '--port', String(port), ...noDelay, ...metrics];
  const ready = await supervisor.start({
    name: 'broker',
    command: process.execPath,
    args: args(0),
    env: { ...process.env, ...childLogLevel() },
    ready: BROKER_READY,
    logFile: join(logDir, 'broker.log'),
  });
  supervisor.respec('broker', { args: args(Number(ready[1])) });
  return ready[2]!;
}

/** Records in the dead-letter topics (`*.dlq`), read from the log: the units' own counters die with them. */
async function countDeadLetters(brokers: string[]): Promise<number> {
  const admin = new Kafka({ brokers, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    const topics = (await admin.listTopics()).filter((topic) => topic.endsWith('.dlq'));
    let total = 0;
    for (const topic of topics) {
      for (const partition of await admin.fetchTopicOffsets(topic)) total += Number(partition.high) - Number(partition.low);
    }
    return total;
  } finally {
    await admin.disconnect();
  }
}

/** The service processes log at the level the user asked for (see log-level.ts), to their log files. */
function childLogLevel(): { CONCORDAT_LOG_LEVEL?: string } {
  const level = process.env.ORDER_SAGA_CHILD_LOG_LEVEL;
  return level === undefined ? {} : { CONCORDAT_LOG_LEVEL: level };
}
