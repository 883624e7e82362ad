/**
 * The dispatcher: one consumer group's entry point for delivered records,
 * from the transport's batch to each message's handler transaction, its
 * retries or its dead letter (those live in the files beside this one).
 */
import { performance } from 'node:perf_hooks';
import { register as defaultRegistry } from 'prom-client';
import { describeError } from '../../errors.js';
import { REPLAY_FOR_HEADER } from '../../inbox/index.js';
import { envelopeFromDelivery, type Envelope } from '../../messaging/index.js';
import { createLogger, extractTraceContext, recordSpanError, ROOT_CONTEXT, runIn, TraceAttribute, withSpan, type Logger } from '../../observability/index.js';
import { writeOutboxRecords } from '../../outbox/index.js';
import type { ConsumerFailureEvent, Delivery } from '../../transport/index.js';
import { MessageContext } from '../context.js';
import type { ConsumerDescriptor, HandlerDescriptor } from '../explorer.js';
import { isTransientConflict } from '../retry.js';
import { MessageAttempts, stopping } from './attempts.js';
import { BatchHandlerFailure, causedByBatch, HandlerTransactions } from './handler-transaction.js';
import { compileDispatcherOptions, type DispatcherOptions } from '../../config/index.js';
import type { DispatcherDeps } from './options.js';
import { decodeAll, filters, handlerFor, route, validated } from './routing.js';
import { deliveryInfo, startProcessSpan } from './spans.js';
import { DispatchMetrics, type DispatchStats } from './stats.js';

/**
 * Runs one consumer group's handlers on delivered records, with
 * exactly-once effect:
 *
 * 1. decode the CloudEvent (a record that is not one is dead-lettered at once);
 * 2. in one database transaction (`runOutboxTransaction`): insert
 *    `(consumer, message ID)` into the inbox with the `BEGIN` (one round
 *    trip) — no row inserted means it was processed before: roll back and
 *    skip; a pending dead letter of this group for this very record (topic,
 *    partition, offset; checked in the same statement) means it failed for
 *    good before a restart redelivered it: skip it before any attempt, with
 *    no inbox row, so that a replay still runs it (a new record with the
 *    same ID, such as a coordinator's resend, is attempted again); otherwise run the handler with the transaction's EntityManager
 *    and write what it published to the outbox with the `COMMIT` (one round
 *    trip);
 * 3. on failure, roll back and retry per the handler's policy (a handler
 *    that caught a failed statement's error fails too: its `COMMIT` answered
 *    `ROLLBACK`, see `runOutboxTransaction`, TRANSACTION_ROLLED_BACK); programmer
 *    errors and non-retriable errors are not retried; a failure because the
 *    database is unreachable does not count as an attempt (the message waits
 *    for the database rather than going to the dead-letter topic);
 * 4. after the last attempt, record the message in `concordat.dead_letter`
 *    and send it to `<topic>.dlq` through the outbox, in one transaction,
 *    with the error in its headers, and return: the partition moves on.
 *
 * A replayed dead letter meant for another consumer group
 * ({@link REPLAY_FOR_HEADER}) is skipped before any of this: no handler, no
 * inbox row (that group's inbox must not learn the message ID: a dead letter
 * of its own for the same message, replayed later, would be taken for a
 * duplicate), its offset committed.
 *
 * `dispatch` resolves when the record is done (processed, skipped or
 * dead-lettered), after which the transport commits its offset. It rejects
 * only when the app is stopping; the transport then delivers the record
 * again.
 *
 * Handlers declared `transactional: false` run without a transaction and
 * without the inbox: at-least-once, for read-only or naturally idempotent
 * work. What they publish is written to the outbox after they return.
 *
 * `dispatchBatch` takes several records of one partition at once (what the
 * transport read together) and handles them in **one** transaction: `BEGIN`
 * with one inbox insert for all of them, returning the IDs that are new;
 * the handlers of those, in offset order, on the one EntityManager; every
 * message they published with the `COMMIT`. So a batch costs the round
 * trips of one message. If a handler throws, the transaction rolls back as
 * a whole and the batch is split around that message, which goes on alone
 * as `dispatch` would, with its retries and dead letter (its batch attempt
 * counts as its first); a failure changes the cost, never the outcome.
 * What it costs: the handlers that ran before it in the batch run again
 * (their work was rolled back), so a handler may run more often than its
 * message's attempts — as with any rollback, only its database effect is
 * exactly once. The transport commits the batch's offsets after
 * `dispatchBatch` resolved.
 */
export class Dispatcher {
  /** What the dispatcher did so far: counters for tests, the demo and metrics. */
  readonly stats: DispatchStats;
  /** Most messages in one transaction (see {@link DispatcherOptions}). */
  readonly batchRecordsMax: number;
  private readonly logger: Logger;
  private readonly metrics: DispatchMetrics;
  private readonly transactions: HandlerTransactions;
  private readonly attempts: MessageAttempts;

  /**
   * Records a failure the transport reported for this group's consumer (it
   * restarts on its own): counted in `stats` and in
   * `concordat_consumer_failures_total{group, stalled}`.
   */
  consumerFailed(event: ConsumerFailureEvent): void {
    this.metrics.consumerFailed(event);
  }

  /** @throws ConcordatError CONFIG_INVALID for a bad `batchRecordsMax` */
  constructor(
    private readonly consumer: ConsumerDescriptor,
    private readonly deps: DispatcherDeps,
    options: DispatcherOptions = {},
  ) {
    const compiled = compileDispatcherOptions(options);
    this.batchRecordsMax = compiled.batchRecordsMax;
    this.logger = createLogger('dispatcher', { group: consumer.group }, deps.logger);
    this.metrics = new DispatchMetrics(consumer.group, deps.metricsRegistry ?? defaultRegistry);
    this.stats = this.metrics.stats;
    this.transactions = new HandlerTransactions(consumer, deps, this.metrics, this.logger, compiled.batchRecordsMax, compiled.concurrentTransactionsMax);
    this.attempts = new MessageAttempts(consumer, deps, this.metrics, this.logger, this.transactions);
  }

  /**
   * Handles consecutive records of one partition, in order, sharing one
   * transaction (see the class comment). Resolves when every record is done
   * (processed, skipped or dead-lettered); rejects only when the app is
   * stopping, and the transport then delivers the batch again.
   */
  async dispatchBatch(all: readonly Delivery[]): Promise<void> {
    const deliveries = all.filter((delivery) => !this.skipsForeignReplay(delivery));
    if (deliveries.length === 0) return;
    const topic = deliveries[0]!.topic;
    if (deliveries.length === 1 || deliveries.some((delivery) => delivery.topic !== topic)) return this.dispatchEach(deliveries);
    if (filters(this.consumer, topic)) return this.dispatchFiltered(topic, deliveries);
    await this.dispatchTo(handlerFor(this.consumer, topic), deliveries);
  }

  /** Records of one handler: in one transaction when they decode and it can batch, else one at a time. */
  private async dispatchTo(handler: HandlerDescriptor, deliveries: readonly Delivery[]): Promise<void> {
    const envelopes = await decodeAll(handler, deliveries);
    const batchable = handler.transactional || handler.invokeBatch !== undefined;
    if (envelopes === undefined || !batchable) return this.dispatchEach(deliveries);
    await this.runBatch(handler, deliveries, envelopes);
  }

  /**
   * Records of a topic whose handlers filter: the ones no filter takes are
   * acknowledged at once; the rest go to their handler as a batch when one
   * handler takes them all, else one at a time (in order, routed again).
   * A record that cannot be decoded or routed stays, for `dispatch` to
   * dead-letter.
   */
  private async dispatchFiltered(topic: string, deliveries: readonly Delivery[]): Promise<void> {
    const kept: Delivery[] = [];
    const takers = new Set<HandlerDescriptor>();
    for (const delivery of deliveries) {
      let handler: HandlerDescriptor | undefined;
      try {
        const envelope = envelopeFromDelivery(delivery);
        handler = route(this.consumer, topic, envelope);
        if (handler === undefined) {
          this.filteredOut(delivery, envelope);
          continue;
        }
      } catch {
        // dispatch() dead-letters it.
      }
      kept.push(delivery);
      if (handler !== undefined) takers.add(handler);
    }
    if (kept.length === 0) return;
    const [only] = takers;
    if (kept.length === 1 || takers.size !== 1) return this.dispatchEach(kept);
    await this.dispatchTo(only!, kept);
  }

  /** Counts a message no handler's filter took; its offset is committed with the others. */
  private filteredOut(delivery: Delivery, message: Envelope): void {
    this.stats.filtered++;
    this.metrics.messages.inc({ group: this.consumer.group, outcome: 'filtered' });
    this.logger.trace(
      { topic: delivery.topic, partition: delivery.partition, offset: delivery.offset, messageId: message.id, type: message.type },
      'filtered out',
    );
  }

  /** One at a time, in order: the path with retries and dead letters. */
  private async dispatchEach(deliveries: readonly Delivery[]): Promise<void> {
    for (const delivery of deliveries) await this.dispatch(delivery);
  }

  /**
   * The batch in one transaction; if that fails, in order: the messages
   * before the one whose handler threw (their work was rolled back with it)
   * as a batch again, the failing one on its own, its batch attempt counted
   * as its attempt 1 as if it had been alone (its retries and dead letter
   * follow from there), then the rest as a batch. A batch that failed
   * otherwise (its commit, a lock conflict the batch itself may have
   * caused) is dispatched one message at a time from attempt 1.
   */
  private async runBatch(handler: HandlerDescriptor, deliveries: readonly Delivery[], envelopes: readonly Envelope[]): Promise<void> {
    if (deliveries.length === 1) return this.attempts.run(handler, envelopes[0]!, deliveries[0]!);
    try {
      if (handler.transactional) await this.attemptBatch(handler, deliveries, envelopes);
      else await this.attemptBatchWithoutTransaction(handler, deliveries, envelopes);
      return;
    } catch (error) {
      if (this.deps.signal.aborted) throw stopping();
      this.stats.batchFallbacks++;
      const failure = error instanceof BatchHandlerFailure ? error : undefined;
      this.logger.debug(
        { err: describeError(failure?.error ?? error), handler: handler.label, messages: deliveries.length, failedAt: failure?.index },
        'batch failed; its messages are handled apart',
      );
      if (isTransientConflict(failure?.error ?? error)) this.stats.conflictRetries++;
      if (failure === undefined || causedByBatch(failure.error)) {
        for (let i = 0; i < deliveries.length; i++) await this.attempts.run(handler, envelopes[i]!, deliveries[i]!, { alone: true });
        return;
      }
      const k = failure.index;
      if (k > 0) await this.runBatch(handler, deliveries.slice(0, k), envelopes.slice(0, k));
      await this.attempts.run(handler, envelopes[k]!, deliveries[k]!, { firstFailure: { error: failure.error }, alone: true });
      if (k + 1 < deliveries.length) await this.runBatch(handler, deliveries.slice(k + 1), envelopes.slice(k + 1));
    }
  }

  /**
   * The batch's messages in one transaction (with other partitions' messages
   * when the group commit merges them; see {@link runTransaction}). Throws
   * if any handler throws (all rolled back).
   */
  private async attemptBatch(handler: HandlerDescriptor, deliveries: readonly Delivery[], envelopes: readonly Envelope[]): Promise<void> {
    await this.transactions.submit(
      handler,
      deliveries.map((delivery, i) => ({ handler, envelope: envelopes[i]!, delivery, attempt: 1 })),
    );
  }
  /** A non-transactional handler with an `invokeBatch` hook: the hook, then what it published, each through the outbox. */
  private async attemptBatchWithoutTransaction(handler: HandlerDescriptor, deliveries: readonly Delivery[], envelopes: readonly Envelope[]): Promise<void> {
    const instance = this.deps.resolve(handler.serviceClass);
    const startedAt = performance.now();
    const manager = this.deps.dataSource.manager;
    // A `process` span per message, child of its creation context, so that what the hook does for
    // each (a coordinator's step) stays in that message's trace; the hook itself runs under none.
    const spans = deliveries.map((delivery, i) => startProcessSpan(this.consumer.group, handler, envelopes[i]!, delivery));
    try {
      const contexts = deliveries.map((delivery, i) => {
        const context = new MessageContext(manager, this.consumer.serviceName, envelopes[i]!, deliveryInfo(handler, delivery, 1));
        context.traceContext = withSpan(extractTraceContext(envelopes[i]!), spans[i]!);
        return context;
      });
      await runIn(ROOT_CONTEXT, () => handler.invokeBatch!(instance, contexts));
      await writeOutboxRecords(
        manager,
        contexts.flatMap((context) => context.takeRecords()),
      );
      this.metrics.recordDone(deliveries.length, deliveries.length, startedAt);
      for (const span of spans) span.setAttributes({ [TraceAttribute.OUTCOME]: 'processed', [TraceAttribute.BATCH_COUNT]: deliveries.length });
    } catch (error) {
      for (const span of spans) recordSpanError(span, error);
      throw error;
    } finally {
      for (const span of spans) span.end();
    }
  }
  /**
   * Handles one delivered record: decodes its envelope, routes it by filter,
   * validates its payload, then runs its handler with retries. Resolves once the
   * record is processed, skipped (a duplicate, filtered out) or dead-lettered:
   * the transport may then commit its offset. A record that cannot be decoded
   * or validated is dead-lettered at once, without an attempt. Rejects only
   * with what the dispatcher cannot handle, such as recording a dead letter
   * failing for another reason than an unavailable database (which it waits
   * for); the transport then delivers the record again.
   */
  async dispatch(delivery: Delivery): Promise<void> {
    if (this.skipsForeignReplay(delivery)) return;
    let handler = handlerFor(this.consumer, delivery.topic);
    let envelope: Envelope | undefined;
    try {
      envelope = envelopeFromDelivery(delivery);
      const taker = filters(this.consumer, delivery.topic) ? route(this.consumer, delivery.topic, envelope) : handler;
      if (taker === undefined) return this.filteredOut(delivery, envelope);
      handler = taker;
      envelope = await validated(handler, envelope, delivery);
    } catch (error) {
      // Not a CloudEvent, a predicate filter that threw, or a payload its topic's schema refuses: no attempt could succeed.
      await this.attempts.deadLetter(delivery, envelope, handler, error, 0);
      return;
    }
    await this.attempts.run(handler, envelope, delivery);
  }

  /** Whether `delivery` is a replayed dead letter of another group: if so it is counted and skipped. */
  private skipsForeignReplay(delivery: Delivery): boolean {
    const replayFor = delivery.headers[REPLAY_FOR_HEADER];
    if (replayFor === undefined || replayFor.toString('utf8') === this.consumer.group) return false;
    this.stats.replaysSkipped++;
    this.metrics.messages.inc({ group: this.consumer.group, outcome: 'replay_skipped' });
    this.logger.debug(
      { topic: delivery.topic, partition: delivery.partition, offset: delivery.offset, replayFor: replayFor.toString('utf8') },
      'a replayed dead letter of another consumer group: skipped',
    );
    return true;
  }
}
