import 'reflect-metadata';
import { connect } from 'node:net';
import { kafkaTransportOptionsFromEnv, type KafkaTransportOptions, type RelayOptions } from '../../src/config/index.js';
import { ConcordatApp } from '../../src/runtime/index.js';
import { KafkaTransport } from '../../src/transport/index.js';
import { deploymentUnits, parseMode, UNIT_NAMES, type UnitName } from './deployment.js';
import { OrderSagaSchema1795200000001 } from './schema.js';
import { registerTracingFromEnv } from './tracing.js';

/**
 * One deployment unit of the order saga as its own process:
 * `node --import tsx examples/order-saga/service-process.ts <orders|inventory|payment> <tcc|2pc|saga>`.
 *
 * Environment: `DATABASE_URL` (the demo's database, already migrated by the
 * parent) and `KAFKA_BROKERS` (with the other `KAFKA_*` variables, for the
 * kafkajs transport); `ORDER_SAGA_PARTITIONS` for the topics it creates;
 * `ORDER_SAGA_METRICS_PORT` to serve `/metrics`, `/healthz` and `/readyz` on
 * 127.0.0.1 at that port (docs/operations.md); `ORDER_SAGA_PAYMENT_TIMEOUT_MS`
 * for the orders unit's payment deadline (`services/order.modes.ts`).
 * Prints `order-saga unit <name> ready (pid <pid>)` on stdout once it
 * consumes; SIGTERM or SIGINT stops it gracefully (in-flight handlers finish,
 * offsets are committed). It may also be SIGKILLed at any moment: the
 * database and the committed offsets are all it needs to resume.
 * `OTEL_TRACES_EXPORTER=otlp` (see tracing.ts): the unit exports its spans
 * as service `order-saga-<unit>`, flushed when it stops gracefully.
 */

/**
 * How fast the others notice that this unit died (SIGKILL: no LeaveGroup, no
 * lease release). Its consumer groups' partitions move when its session
 * expires; 6 s is the smallest session Kafka and `concordat broker` accept
 * (`group.min.session.timeout.ms`), against the transport's 10 s default,
 * with a heartbeat every second. Its outbox shards move when its leases
 * expire: 3 s leases renewed every second, against 10 s / 2 s by default
 * (safe: order never depended on exclusive ownership, docs/outbox.md). A
 * restarted unit rejoins under a new member ID, so until the dead one expires
 * its groups wait: these settings bound each kill's stall to about 6 s.
 * Demo-only: a deployment sets these for its own failure detector.
 */
const UNIT_CONSUMER: NonNullable<KafkaTransportOptions['consumer']> = { sessionTimeoutMs: 6000, heartbeatIntervalMs: 1000 };
const UNIT_RELAY: RelayOptions = { leaseMs: 3000, leaseRenewIntervalMs: 1000 };

/**
 * How long a starting unit waits for the broker to accept connections. Under
 * a supervisor a unit may start while the broker restarts (`npm run soak`
 * restarts it); kafkajs gives up connecting after a few retries (about a
 * second) and the start would fail. The database has its own wait
 * (`database.connectRetry`, below).
 */
const BROKER_WAIT_MS = 60_000;

/** Resolves once one of `brokers` (`host:port`) accepts a TCP connection, trying every 250 ms. @throws Error after `timeoutMs` */
async function waitForBroker(brokers: string[], timeoutMs: number): Promise<void> {
  const giveUpAt = Date.now() + timeoutMs;
  const accepts = (broker: string): Promise<boolean> =>
    new Promise((resolve) => {
      const colon = broker.lastIndexOf(':');
      const socket = connect({ host: broker.slice(0, colon), port: Number(broker.slice(colon + 1)) });
      socket.setTimeout(1000);
      const settle = (accepted: boolean): void => {
        socket.destroy();
        resolve(accepted);
      };
      socket.once('connect', () => settle(true));
      socket.once('error', () => settle(false));
      socket.once('timeout', () => settle(false));
    });
  for (;;) {
    if ((await Promise.all(brokers.map(accepts))).some(Boolean)) return;
    if (Date.now() >= giveUpAt) throw new Error(`no broker of ${brokers.join(',')} accepted a connection within ${timeoutMs / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

async function main(): Promise<void> {
  const unit = process.argv[2] as UnitName;
  if (!UNIT_NAMES.includes(unit)) throw new Error(`usage: service-process.ts <${UNIT_NAMES.join('|')}> <mode>, got '${process.argv[2] ?? ''}'`);
  const mode = parseMode(process.argv[3] ?? '');
  const stopTracing = registerTracingFromEnv(`order-saga-${unit}`);
  const url = process.env.DATABASE_URL;
  if (url === undefined || url === '') throw new Error('DATABASE_URL must name the demo database');
  const kafka = kafkaTransportOptionsFromEnv(process.env);
  if (kafka === undefined) throw new Error('KAFKA_BROKERS must name the broker (a service process talks to the log over Kafka)');
  const transport = new KafkaTransport({ ...kafka, consumer: { ...kafka.consumer, ...UNIT_CONSUMER } });
  const paymentTimeout = process.env.ORDER_SAGA_PAYMENT_TIMEOUT_MS;
  const { services, relay } = deploymentUnits(mode, paymentTimeout === undefined ? {} : { paymentTimeoutMs: Number(paymentTimeout) })[unit];
  const app = ConcordatApp.create({
    name: `order-saga-${unit}`,
    services,
    // Under a supervisor, a unit that starts while PostgreSQL restarts waits for it rather than exiting.
    database: { url, migrations: [OrderSagaSchema1795200000001], poolSize: 10, connectRetry: { timeoutMs: 60_000 } },
    transport,
    relay: relay ? UNIT_RELAY : false,
    partitions: Number(process.env.ORDER_SAGA_PARTITIONS ?? 8),
    ...(process.env.ORDER_SAGA_METRICS_PORT !== undefined && { metrics: { port: Number(process.env.ORDER_SAGA_METRICS_PORT) } }),
  });
  let stopping = false;
  // One graceful stop however many signals arrive (Ctrl-C reaches this process and its supervisor, which
  // then sends SIGTERM); the supervisor SIGKILLs a process that takes too long.
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`${unit}: ${signal}, stopping\n`);
    app
      .stop()
      .then(() => transport.close())
      .then(() => stopTracing?.())
      .then(
        () => process.exit(0),
        (error: unknown) => {
          process.stderr.write(`${unit}: stop failed: ${String(error)}\n`);
          process.exit(1);
        },
      );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // Started by the demo's supervisor: stop when it goes away, even if it was killed.
  process.on('disconnect', () => stop('SIGHUP'));
  await waitForBroker(kafka.brokers, BROKER_WAIT_MS);
  await app.start();
  process.stdout.write(`order-saga unit ${unit} ready (pid ${process.pid}, ${mode})\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`service-process: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
