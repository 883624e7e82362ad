/**
 * What a consumer group's dispatcher counts: the stats the app reports
 * (`app.dispatchStats()`) and the Prometheus metrics beside them.
 */
import { performance } from 'node:perf_hooks';
import { Counter, Histogram, type Registry } from 'prom-client';
import { registeredMetric } from '../../outbox/index.js';
import type { ConsumerFailureEvent } from '../../transport/index.js';
import type { HandlerDescriptor } from '../explorer.js';

/** Counters of what the dispatcher did, for tests, the demo and metrics. */
export interface DispatchStats {
  processed: number;
  duplicates: number;
  retries: number;
  deadLettered: number;
  /** Failures that did not count as attempts because the database was unreachable. */
  databaseWaits: number;
  /** Batches of several messages handled in one transaction. */
  batches: number;
  /** Retries of a message whose transaction lost a conflict (deadlock, serialization failure); they run at once. */
  conflictRetries: number;
  /** Batches that failed and whose messages were then handled one at a time. */
  batchFallbacks: number;
  /** Replayed dead letters of another consumer group, skipped (see {@link REPLAY_FOR_HEADER}). */
  replaysSkipped: number;
  /** Messages no handler's filter took (`@OnMessage(topic, { filter })`): acknowledged without a handler transaction or an inbox row. */
  filtered: number;
  /**
   * Deliveries of a message this group dead-lettered before, its dead letter
   * still pending (redelivered because the offset was not committed, say
   * before a restart): skipped before any attempt, without an inbox row, so
   * that `concordat dlq replay` still runs it.
   */
  alreadyDeadLettered: number;
  /**
   * Failures of the transport's consumer for this group (a partition worker
   * or the whole consumer failed and is restarting from the committed
   * offset; see the transport's `onConsumerFailure`).
   */
  consumerFailures: number;
  /** The latest consumer failure, if any: `stalled` when it kept failing without progress. */
  lastConsumerFailure?: { at: string; topic?: string; partition?: number; offset?: number; failures: number; stalled: boolean; error: string };
}

/** What a transaction did with a message: ran its handler, found it in the inbox, or found its dead letter pending. */
export type Outcome = 'processed' | 'duplicate' | 'dead_lettered_before';

/**
 * A dispatcher's {@link DispatchStats} and its metrics
 * (`concordat_messages_total`, `concordat_consumer_failures_total`,
 * `concordat_handler_duration_seconds`, `concordat_dispatch_batch_records`),
 * registered once per registry and labelled by consumer group.
 */
export class DispatchMetrics {
  /** What the dispatcher did so far (`Dispatcher.stats` is this object). */
  readonly stats: DispatchStats = {
    processed: 0,
    duplicates: 0,
    retries: 0,
    deadLettered: 0,
    databaseWaits: 0,
    batches: 0,
    conflictRetries: 0,
    batchFallbacks: 0,
    replaysSkipped: 0,
    filtered: 0,
    alreadyDeadLettered: 0,
    consumerFailures: 0,
  };
  readonly messages: Counter<'group' | 'outcome'>;
  readonly consumerFailures: Counter<'group' | 'stalled'>;
  readonly handlerSeconds: Histogram<'group'>;
  readonly batchRecords: Histogram<'group'>;

  /** Registers the metrics in `registry` (or takes those registered there before). */
  constructor(
    private readonly group: string,
    registry: Registry,
  ) {
    this.consumerFailures = registeredMetric(
      registry,
      'concordat_consumer_failures_total',
      () =>
        new Counter({
          name: 'concordat_consumer_failures_total',
          help: "Failures of the transport's consumer (a partition worker or the whole consumer), each followed by a restart from the committed offset; stalled: it kept failing without progress",
          labelNames: ['group', 'stalled'],
          registers: [registry],
        }),
    );
    this.messages = registeredMetric(
      registry,
      'concordat_messages_total',
      () =>
        new Counter({
          name: 'concordat_messages_total',
          help: 'Delivered messages by outcome: processed, duplicate (skipped by the inbox), retried (a failed attempt), dead_lettered, replay_skipped (a replayed dead letter of another group), filtered (no handler filter took it), already_dead_lettered (its dead letter pending: skipped before any attempt)',
          labelNames: ['group', 'outcome'],
          registers: [registry],
        }),
    );
    this.handlerSeconds = registeredMetric(
      registry,
      'concordat_handler_duration_seconds',
      () =>
        new Histogram({
          name: 'concordat_handler_duration_seconds',
          help: 'Time of a successful handler transaction, from BEGIN to COMMIT',
          labelNames: ['group'],
          buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
          registers: [registry],
        }),
    );
    this.batchRecords = registeredMetric(
      registry,
      'concordat_dispatch_batch_records',
      () =>
        new Histogram({
          name: 'concordat_dispatch_batch_records',
          help: 'Messages per dispatcher transaction (or per batch given to a batch-aware handler): more than 1 when the transport delivered them together',
          labelNames: ['group'],
          buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
          registers: [registry],
        }),
    );
  }

  /**
   * Records a failure the transport reported for this group's consumer (it
   * restarts on its own): counted in `stats` and in
   * `concordat_consumer_failures_total{group, stalled}`.
   */
  consumerFailed(event: ConsumerFailureEvent): void {
    this.stats.consumerFailures++;
    this.stats.lastConsumerFailure = {
      at: new Date().toISOString(),
      ...(event.topic !== undefined && { topic: event.topic }),
      ...(event.partition !== undefined && { partition: event.partition }),
      ...(event.offset !== undefined && { offset: event.offset }),
      failures: event.failures,
      stalled: event.stalled,
      error: event.error instanceof Error ? event.error.message : String(event.error),
    };
    this.consumerFailures.inc({ group: this.group, stalled: String(event.stalled) });
  }

  /**
   * Stats and metrics of one transaction (or batch hook) that handled
   * `delivered` messages: `processed` of them new, `deadBefore` skipped
   * because their dead letter is pending, the rest duplicates.
   */
  recordDone(delivered: number, processed: number, startedAt: number, deadBefore = 0): void {
    const duplicates = delivered - processed - deadBefore;
    const group = this.group;
    if (delivered > 1) this.stats.batches++;
    this.stats.processed += processed;
    this.stats.duplicates += duplicates;
    if (processed > 0) {
      this.messages.inc({ group, outcome: 'processed' }, processed);
      this.handlerSeconds.observe({ group }, (performance.now() - startedAt) / 1000);
    }
    if (duplicates > 0) this.messages.inc({ group, outcome: 'duplicate' }, duplicates);
    if (deadBefore > 0) {
      this.stats.alreadyDeadLettered += deadBefore;
      this.messages.inc({ group, outcome: 'already_dead_lettered' }, deadBefore);
    }
    this.batchRecords.observe({ group }, delivered);
  }

  /** Stats and metrics of one message a handler without a transaction handled. */
  done(handler: HandlerDescriptor, outcome: Outcome, startedAt: number): void {
    this.stats[outcome === 'processed' ? 'processed' : 'duplicates']++;
    this.messages.inc({ group: handler.group, outcome });
    if (outcome === 'processed') this.handlerSeconds.observe({ group: handler.group }, (performance.now() - startedAt) / 1000);
  }
}
