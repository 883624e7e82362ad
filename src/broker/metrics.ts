/**
 * Prometheus metrics of `concordat broker`, on prom-client, one set per
 * registry (brokers in one process share it):
 *
 * | metric                                      | type      | labels         | meaning |
 * |---------------------------------------------|-----------|----------------|---------|
 * | `concordat_broker_request_duration_seconds` | histogram | api_key, api   | from a request decoded to its response encoded (a Produce includes its fdatasync, a Fetch its long poll) |
 * | `concordat_broker_connections`              | gauge     |                | client connections open now, summed over the brokers |
 *
 * The log's own metrics (appends, fdatasync, partitions, segments, bytes)
 * are `log/metrics.ts`'s, attached by the broker to the same registry.
 *
 * @module
 */

import { Gauge, Histogram, register as defaultRegistry, type Registry } from 'prom-client';

/** The broker's metrics of one prom-client registry (see the file header). */
export interface BrokerMetrics {
  /** Records one request's duration. */
  observeRequest(apiKey: number, api: string, seconds: number): void;
  /** Adds a source of open connections to the gauge. @returns a function that removes it */
  attachConnections(count: () => number): () => void;
}

/** Request latencies: an ApiVersions answers in microseconds, a Fetch long poll waits up to maxWaitMs (30 s by default). */
export const REQUEST_BUCKETS_SECONDS = [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

const sets = new WeakMap<Registry, BrokerMetrics>();

/** The broker metrics registered in `registry`, created on first call; later calls (brokers sharing the registry) get the same set. */
export function brokerMetrics(registry: Registry = defaultRegistry): BrokerMetrics {
  const existing = sets.get(registry);
  if (existing !== undefined) return existing;
  const sources = new Set<() => number>();
  const requestSeconds = new Histogram({
    name: 'concordat_broker_request_duration_seconds',
    help: 'Time from a request decoded to its response encoded, per Kafka API',
    labelNames: ['api_key', 'api'],
    buckets: REQUEST_BUCKETS_SECONDS,
    registers: [registry],
  });
  new Gauge({
    name: 'concordat_broker_connections',
    help: 'Client connections open now',
    registers: [registry],
    collect() {
      let open = 0;
      for (const count of sources) open += count();
      this.set(open);
    },
  });
  const set: BrokerMetrics = {
    observeRequest(apiKey, api, seconds) {
      requestSeconds.observe({ api_key: String(apiKey), api }, seconds);
    },
    attachConnections(count) {
      sources.add(count);
      return () => sources.delete(count);
    },
  };
  sets.set(registry, set);
  return set;
}
