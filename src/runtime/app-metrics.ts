import { Gauge, register as defaultRegistry, type Registry } from 'prom-client';
import type { CompiledMetricsOptions } from '../config/index.js';
import { describeError } from '../errors.js';
import { createLogger, MetricsServer, type MetricsAddress, type ReadinessCheck } from '../observability/index.js';
import type { ConsumerLag } from '../transport/index.js';
import type { ConcordatApp } from './app.js';

/** What the app's endpoint reads of the app: its public view, and the two facts only the app knows. */
export interface AppMetricsSource {
  app: ConcordatApp;
  /** The app runs an outbox relay (option `relay` is not `false`). */
  relayExpected: boolean;
  /** Consumer groups subscribed so far (`subscribe` resolved: the group gave this member its first assignment). */
  subscribedGroups(): readonly string[];
}

/** The running endpoint of one app. */
export interface AppMetricsEndpoint {
  readonly address: MetricsAddress;
  /** Closes the HTTP server and removes the app from the lag gauge. */
  close(): Promise<void>;
}

/** Longest wait for one app's lag on a scrape (a Kafka cluster that does not answer must not hold the scrape). */
const LAG_TIMEOUT_MS = 5000;

/**
 * Serves `/metrics`, `/healthz` and `/readyz` for an app (the `metrics`
 * option of `ConcordatApp.create`, started by `start()`, closed by `stop()`),
 * and adds the app's consumer groups to the `concordat_consumer_lag` gauge.
 *
 * `/readyz` is 200 when all of these hold, else 503 naming the failed ones:
 * - `app`: the app is RUNNING (start finished, stop not begun);
 * - `database`: `SELECT 1` answers within `readyTimeoutMs`;
 * - `consumer-groups`: every consumer group of the app is subscribed, i.e.
 *   has had its first assignment;
 * - `relay` (only when the app runs one): the outbox relay is running.
 *
 * @throws ConcordatError CONFIG_INVALID when the address cannot be bound.
 */
export async function startAppMetrics(options: CompiledMetricsOptions, source: AppMetricsSource): Promise<AppMetricsEndpoint> {
  const { app } = source;
  const checks: Record<string, ReadinessCheck> = {
    app: () => (app.status === 'RUNNING' ? null : `the app is ${app.status}`),
    database: async () => {
      if (app.status !== 'STARTING' && app.status !== 'RUNNING') return `the database is not open (the app is ${app.status})`;
      let dataSource;
      try {
        dataSource = app.dataSource;
      } catch {
        return 'the database is not open yet';
      }
      await dataSource.query('SELECT 1');
      return null;
    },
    'consumer-groups': () => {
      const subscribed = new Set(source.subscribedGroups());
      const missing = app.handlers.consumers.map((consumer) => consumer.group).filter((group) => !subscribed.has(group));
      return missing.length === 0 ? null : `no assignment yet for consumer group${missing.length === 1 ? '' : 's'} ${missing.map((g) => `'${g}'`).join(', ')}`;
    },
  };
  if (source.relayExpected) checks.relay = () => (app.outboxRelay?.isRunning === true ? null : 'the outbox relay is not running');
  const detachLag = consumerLagGauge(options.registry ?? defaultRegistry).attach(source);
  try {
    const server = await MetricsServer.start(options, checks, `app:${app.name}`);
    return {
      address: server.address,
      close: async () => {
        detachLag();
        await server.close();
      },
    };
  } catch (error) {
    detachLag();
    throw error;
  }
}

interface LagGauge {
  attach(source: AppMetricsSource): () => void;
}

const lagGauges = new WeakMap<Registry, LagGauge>();

/**
 * `concordat_consumer_lag{group,topic,partition}`: records each consumer
 * group of the attached apps has yet to consume, computed on scrape by the
 * app's transport (`Transport.consumerLag`: the embedded log's committed
 * offsets in memory; for Kafka, OffsetFetch and ListOffsets through the
 * admin client). An app whose transport cannot answer within 5 s is left
 * out of that scrape.
 */
function consumerLagGauge(registry: Registry): LagGauge {
  const existing = lagGauges.get(registry);
  if (existing !== undefined) return existing;
  const sources = new Set<AppMetricsSource>();
  const logger = createLogger('metrics');
  new Gauge({
    name: 'concordat_consumer_lag',
    help: 'Records a consumer group has yet to consume on a partition (high watermark minus committed offset)',
    labelNames: ['group', 'topic', 'partition'],
    registers: [registry],
    async collect() {
      const results = await Promise.all(
        [...sources].map((source) =>
          appLag(source).catch((error: unknown) => {
            logger.debug({ app: source.app.name, err: describeError(error) }, 'consumer lag not available for this scrape');
            return [];
          }),
        ),
      );
      this.reset();
      for (const lags of results) {
        for (const { group, lag } of lags) this.set({ group, topic: lag.topic, partition: String(lag.partition) }, lag.lag);
      }
    },
  });
  const gauge: LagGauge = {
    attach(source) {
      sources.add(source);
      return () => sources.delete(source);
    },
  };
  lagGauges.set(registry, gauge);
  return gauge;
}

async function appLag(source: AppMetricsSource): Promise<Array<{ group: string; lag: ConsumerLag }>> {
  const { app } = source;
  if (app.status !== 'RUNNING') return [];
  const transport = app.transport;
  if (transport.consumerLag === undefined) return [];
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${LAG_TIMEOUT_MS} ms`)), LAG_TIMEOUT_MS);
  });
  try {
    const perGroup = app.handlers.consumers.map(async (consumer) => {
      const lags = await transport.consumerLag!(consumer.group, [...consumer.handlers.keys()]);
      return lags.map((lag) => ({ group: consumer.group, lag }));
    });
    return (await Promise.race([Promise.all(perGroup), timeout])).flat();
  } finally {
    clearTimeout(timer);
  }
}
