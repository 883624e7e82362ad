/**
 * Prometheus metrics of the outbox relay, on prom-client. One set per
 * registry (the default registry unless the relay is given one); several
 * relays in one process share it, labelled by relay ID, and the lag gauges
 * (the outbox's and the scheduled messages') are computed on scrape by the
 * first relay attached.
 *
 * @module
 */

import { Counter, Gauge, Histogram, register as defaultRegistry, type Metric, type Registry } from 'prom-client';

/** Gets a metric from `registry`, creating it with `create` the first time. */
export function registeredMetric<M extends Metric>(registry: Registry, name: string, create: () => M): M {
  return (registry.getSingleMetric(name) as M | undefined) ?? create();
}

/** What a relay exposes to the lag gauges. */
export interface LagSource {
  lag(): Promise<{ backlogRows: number; oldestAgeMs: number }>;
  scheduledLag(): Promise<{ pendingMessages: number; oldestDueLatenessMs: number }>;
}

/** The relay's metrics of one prom-client registry, labelled by relay ID. */
export interface OutboxMetrics {
  published: Counter<'relay'>;
  failures: Counter<'relay'>;
  rowsFailed: Counter<'relay'>;
  batchSeconds: Histogram<'relay'>;
  shardsOwned: Gauge<'relay'>;
  /** Scheduled messages moved into the outbox when due. */
  scheduledMoved: Counter<'relay'>;
  attach(source: LagSource): () => void;
}

/** Reads `read` of the first attached source at most once a second; undefined without a source or when the read fails. */
function cachedRead<T>(sources: Set<LagSource>, read: (source: LagSource) => Promise<T>): { get(): Promise<T | undefined>; clear(): void } {
  let cached: { at: number; value: Promise<T | undefined> } | undefined;
  return {
    get() {
      const source = sources.values().next().value;
      if (source === undefined) return Promise.resolve(undefined);
      if (cached === undefined || Date.now() - cached.at > 1000) {
        cached = { at: Date.now(), value: read(source).catch(() => undefined) };
      }
      return cached.value;
    },
    clear() {
      cached = undefined;
    },
  };
}

const sets = new WeakMap<Registry, OutboxMetrics>();

/** The outbox metrics registered in `registry`, created on first call; later calls (relays sharing the registry) get the same set. */
export function outboxMetrics(registry: Registry = defaultRegistry): OutboxMetrics {
  const existing = sets.get(registry);
  if (existing !== undefined) return existing;
  const sources = new Set<LagSource>();
  // Each pair of gauges reads one query, at most once a second.
  const lag = cachedRead(sources, (source) => source.lag());
  const scheduled = cachedRead(sources, (source) => source.scheduledLag());
  const set: OutboxMetrics = {
    published: registeredMetric(
      registry,
      'concordat_outbox_published_total',
      () =>
        new Counter({
          name: 'concordat_outbox_published_total',
          help: 'Outbox rows published to the log and removed',
          labelNames: ['relay'],
          registers: [registry],
        }),
    ),
    failures: registeredMetric(
      registry,
      'concordat_outbox_batch_failures_total',
      () =>
        new Counter({
          name: 'concordat_outbox_batch_failures_total',
          help: 'Outbox batches that failed (rows kept, retried)',
          labelNames: ['relay'],
          registers: [registry],
        }),
    ),
    rowsFailed: registeredMetric(
      registry,
      'concordat_outbox_failed_total',
      () =>
        new Counter({
          name: 'concordat_outbox_failed_total',
          help: 'Outbox rows the log refused for good, moved to concordat.outbox_failed',
          labelNames: ['relay'],
          registers: [registry],
        }),
    ),
    batchSeconds: registeredMetric(
      registry,
      'concordat_outbox_batch_duration_seconds',
      () =>
        new Histogram({
          name: 'concordat_outbox_batch_duration_seconds',
          help: 'Time from reading a batch to removing its rows, publish included',
          labelNames: ['relay'],
          buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
          registers: [registry],
        }),
    ),
    shardsOwned: registeredMetric(
      registry,
      'concordat_outbox_shards_owned',
      () =>
        new Gauge({ name: 'concordat_outbox_shards_owned', help: 'Outbox shards whose lease this relay holds', labelNames: ['relay'], registers: [registry] }),
    ),
    scheduledMoved: registeredMetric(
      registry,
      'concordat_outbox_scheduled_moved_total',
      () =>
        new Counter({
          name: 'concordat_outbox_scheduled_moved_total',
          help: 'Scheduled messages moved into the outbox when due (then published like any outbox row)',
          labelNames: ['relay'],
          registers: [registry],
        }),
    ),
    attach(source) {
      sources.add(source);
      return () => {
        sources.delete(source);
        lag.clear();
        scheduled.clear();
      };
    },
  };
  registeredMetric(
    registry,
    'concordat_outbox_backlog_rows',
    () =>
      new Gauge({
        name: 'concordat_outbox_backlog_rows',
        help: 'Rows in the outbox not yet published',
        registers: [registry],
        async collect() {
          const value = await lag.get();
          if (value !== undefined) this.set(value.backlogRows);
        },
      }),
  );
  registeredMetric(
    registry,
    'concordat_outbox_oldest_age_seconds',
    () =>
      new Gauge({
        name: 'concordat_outbox_oldest_age_seconds',
        help: 'Age of the oldest unpublished outbox row (0 when the outbox is empty)',
        registers: [registry],
        async collect() {
          const value = await lag.get();
          if (value !== undefined) this.set(value.oldestAgeMs / 1000);
        },
      }),
  );
  registeredMetric(
    registry,
    'concordat_outbox_scheduled_pending',
    () =>
      new Gauge({
        name: 'concordat_outbox_scheduled_pending',
        help: "Messages published for later (deliverAt/delayMs) not yet moved into the outbox; exact up to 10000, above that PostgreSQL's live-row estimate",
        registers: [registry],
        async collect() {
          const value = await scheduled.get();
          if (value !== undefined) this.set(value.pendingMessages);
        },
      }),
  );
  registeredMetric(
    registry,
    'concordat_outbox_scheduled_lateness_seconds',
    () =>
      new Gauge({
        name: 'concordat_outbox_scheduled_lateness_seconds',
        help: 'How long the earliest due scheduled message has been due without being moved into the outbox (0 when none is due)',
        registers: [registry],
        async collect() {
          const value = await scheduled.get();
          if (value !== undefined) this.set(value.oldestDueLatenessMs / 1000);
        },
      }),
  );
  sets.set(registry, set);
  return set;
}
