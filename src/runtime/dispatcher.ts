import { performance } from 'node:perf_hooks';
import { Counter, Histogram, register as defaultRegistry, type Registry } from 'prom-client';
import type { DataSource } from 'typeorm';
import { ConcordatError, describeError, ErrorCode, isRetriable, RetriesExhaustedError } from '../errors.js';
import { DEAD_LETTER_SUFFIX, deadLetterInput, inboxClaimCheckingDeadLettersSql, readInboxClaim, REPLAY_FOR_HEADER, sendDeadLetter } from '../inbox/index.js';
import { envelopeFromDelivery, type Envelope } from '../messaging/index.js';
import {
  createLogger,
  extractTraceContext,
  faultPoint,
  MESSAGING_SYSTEM,
  recordSpanError,
  ROOT_CONTEXT,
  runIn,
  SpanKind,
  startSpan,
  TraceAttribute,
  TraceEvent,
  withSpan,
  type Logger,
  type Span,
} from '../observability/index.js';
import { registeredMetric, runOutboxTransaction, writeOutboxRecords } from '../outbox/index.js';
import type { ConsumerFailureEvent, Delivery } from '../transport/index.js';
import { CommitStages } from './commit-stages.js';
import { MessageContext, type DeliveryInfo } from './context.js';
import type { ConsumerDescriptor, HandlerDescriptor } from './explorer.js';
import { HandlerGroupCommit } from './group-commit.js';
import { databaseAnswersNewConnection, hasSqlStateMatching, isDatabaseUnavailable, isTransientConflict, retryDelayMs } from './retry.js';
import { validateLater } from './topic.js';
import { filterMatches } from './filter.js';
import { failedReplyRecords } from './reply.js';
import { backoffMs, sleep as abortableSleep, type Backoff } from '../util/index.js';

/** What the dispatcher needs from the app. */
export interface DispatcherDeps {
  dataSource: DataSource;
  /** The service instance for a class (from the inversify container). */
  resolve(serviceClass: Function): object;
  /** Aborted when the app stops: a pending backoff ends and the delivery is left uncommitted. */
  signal: AbortSignal;
  /** Where the dispatcher's Prometheus metrics go. @default prom-client's default registry */
  metricsRegistry?: Registry;
  /** Parent of the dispatcher's logger (the app's root). @default Concordat's own */
  logger?: Logger;
}

/** What a transaction did with a message: ran its handler, found it in the inbox, or found its dead letter pending. */
type Outcome = 'processed' | 'duplicate' | 'dead_lettered_before';

/** One message's attempt, as the group commit runs it in a shared transaction. */
interface Attempt {
  handler: HandlerDescriptor;
  envelope: Envelope;
  delivery: Delivery;
  attempt: number;
  /** The `process` span of the message's attempts; absent in a batch, whose transaction makes one for each message it runs. */
  span?: Span;
}

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

/** Options of a {@link Dispatcher}. */
export interface DispatcherOptions {
  /**
   * Most messages handled in one database transaction when the transport
   * delivers several records of a partition at once; 1 handles every
   * message in a transaction of its own. Every message of a batch may take
   * a savepoint (a TCC Try, a saga step, a nested `manager.transaction()`),
   * and PostgreSQL keeps up to 64 subtransaction IDs per transaction in
   * shared memory before every snapshot in the database has to look them up
   * in `pg_subtrans`; 32 stays under that. Range 1..10000. @default 32
   */
  batchRecordsMax?: number;
  /**
   * Most handler transactions of one consumer group in flight at once in
   * this process. The records its partitions deliver while those run share
   * the next transaction (group commit, up to `batchRecordsMax` messages;
   * see `group-commit.ts`).
   *
   * A group runs one transaction at a time until that is not enough: one
   * more goes in flight only after a *full* transaction (`batchRecordsMax`
   * messages) committed while more work waited, and one fewer after a
   * transaction with room. So under a light or moderate load every message
   * still shares one transaction at a time, which cannot wait on another of
   * its group's row locks or deadlock with it, and costs the least per
   * message; a backlog of independent messages (catch-up after a restart, a
   * burst) spreads over several connections. A transaction running beside
   * others gets a lock timeout of {@link GUARDED_LOCK_TIMEOUT_MS}, and a
   * conflict (that timeout, a deadlock, a serialization failure) brings the
   * group back to one at a time for 1 s, doubling with each conflict up to
   * 60 s: handlers whose messages write the same few rows fall back to one
   * transaction at a time.
   *
   * Measured (`bench:outbox`, one-insert handlers on 8 partitions, a
   * backlog): 1 is bound by one connection's round trips, about 8,500
   * messages/s on the development machine, against 18,000 with 4. On the
   * order saga at 64 orders in flight the transactions hold 5–6 messages and
   * stay one at a time whatever this is. Each transaction in flight holds a
   * connection of the pool (`database.poolSize`). Range 1..64. @default 4
   */
  concurrentTransactionsMax?: number;
}

/** Default of {@link DispatcherOptions.batchRecordsMax}. */
export const DISPATCH_BATCH_RECORDS_DEFAULT = 32;

/** Default of {@link DispatcherOptions.concurrentTransactionsMax}. */
export const DISPATCH_CONCURRENT_TRANSACTIONS_DEFAULT = 4;

/**
 * `lock_timeout` of a handler transaction that runs beside others of its
 * group, in ms: long enough for the group's usual transaction (a few ms) to
 * finish and release what it holds, short enough that a conflict costs
 * little before the group goes back to one transaction at a time.
 */
export const GUARDED_LOCK_TIMEOUT_MS = 50;

/** Validates and fills in {@link DispatcherOptions}. @throws ConcordatError CONFIG_INVALID naming the option */
export function compileDispatcherOptions(options: DispatcherOptions = {}): Required<DispatcherOptions> {
  const batchRecordsMax = options.batchRecordsMax ?? DISPATCH_BATCH_RECORDS_DEFAULT;
  if (!Number.isInteger(batchRecordsMax) || batchRecordsMax < 1 || batchRecordsMax > 10_000) {
    throw new ConcordatError(`invalid options: dispatcher.batchRecordsMax: must be an integer in 1..10000, got ${String(options.batchRecordsMax)}`, {
      code: ErrorCode.CONFIG_INVALID,
    });
  }
  const concurrentTransactionsMax = options.concurrentTransactionsMax ?? DISPATCH_CONCURRENT_TRANSACTIONS_DEFAULT;
  if (!Number.isInteger(concurrentTransactionsMax) || concurrentTransactionsMax < 1 || concurrentTransactionsMax > 64) {
    throw new ConcordatError(
      `invalid options: dispatcher.concurrentTransactionsMax: must be an integer in 1..64, got ${String(options.concurrentTransactionsMax)}`,
      { code: ErrorCode.CONFIG_INVALID },
    );
  }
  return { batchRecordsMax, concurrentTransactionsMax };
}

/** Backoff while the database is unreachable: first and longest delay, in ms. */
const DATABASE_WAIT: Backoff = { firstMs: 100, maxMs: 5000 };

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
  /** Most messages in one transaction (see {@link DispatcherOptions}). */
  readonly batchRecordsMax: number;
  /** The group's handler transactions: merged across partitions, `concurrentTransactionsMax` in flight. */
  private readonly committer: HandlerGroupCommit<Attempt, Outcome>;
  private readonly log: Logger;
  private readonly messages: Counter<'group' | 'outcome'>;
  private readonly consumerFailures: Counter<'group' | 'stalled'>;
  private readonly handlerSeconds: Histogram<'group'>;
  private readonly batchRecords: Histogram<'group'>;

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
    this.consumerFailures.inc({ group: this.consumer.group, stalled: String(event.stalled) });
  }

  /** @throws ConcordatError CONFIG_INVALID for a bad `batchRecordsMax` */
  constructor(
    private readonly consumer: ConsumerDescriptor,
    private readonly deps: DispatcherDeps,
    options: DispatcherOptions = {},
  ) {
    const compiled = compileDispatcherOptions(options);
    this.batchRecordsMax = compiled.batchRecordsMax;
    this.committer = new HandlerGroupCommit(
      (items, guarded) => this.runTransaction(items, guarded),
      compiled.batchRecordsMax,
      compiled.concurrentTransactionsMax,
      isTransientConflict,
    );
    this.log = createLogger('dispatcher', { group: consumer.group }, deps.logger);
    const registry = deps.metricsRegistry ?? defaultRegistry;
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
    if (this.filters(topic)) return this.dispatchFiltered(topic, deliveries);
    await this.dispatchTo(this.handlerFor(topic), deliveries);
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
        handler = this.route(topic, envelope);
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

  /** Whether a handler of `topic` filters (so each message must be routed). */
  private filters(topic: string): boolean {
    const routes = this.consumer.routes.get(topic);
    return routes !== undefined && (routes.length > 1 || routes[0]!.filter !== undefined);
  }

  /**
   * The handler whose filter takes `message`, or undefined when none does.
   * At most one can (the explorer refuses handlers whose filters may overlap).
   * @throws what a predicate filter threw
   */
  private route(topic: string, message: Envelope): HandlerDescriptor | undefined {
    const routes = this.consumer.routes.get(topic);
    if (routes === undefined) return this.handlerFor(topic);
    return routes.find((handler) => filterMatches(handler.filter, message));
  }

  /** Counts a message no handler's filter took; its offset is committed with the others. */
  private filteredOut(delivery: Delivery, message: Envelope): void {
    this.stats.filtered++;
    this.messages.inc({ group: this.consumer.group, outcome: 'filtered' });
    this.log.trace(
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
    if (deliveries.length === 1) return this.attempts(handler, envelopes[0]!, deliveries[0]!);
    try {
      if (handler.transactional) await this.attemptBatch(handler, deliveries, envelopes);
      else await this.attemptBatchWithoutTransaction(handler, deliveries, envelopes);
      return;
    } catch (error) {
      if (this.deps.signal.aborted) throw stopping();
      this.stats.batchFallbacks++;
      const failure = error instanceof BatchHandlerFailure ? error : undefined;
      this.log.debug(
        { err: describeError(failure?.error ?? error), handler: handler.label, messages: deliveries.length, failedAt: failure?.index },
        'batch failed; its messages are handled apart',
      );
      if (isTransientConflict(failure?.error ?? error)) this.stats.conflictRetries++;
      if (failure === undefined || causedByBatch(failure.error)) {
        for (let i = 0; i < deliveries.length; i++) await this.attempts(handler, envelopes[i]!, deliveries[i]!, { alone: true });
        return;
      }
      const k = failure.index;
      if (k > 0) await this.runBatch(handler, deliveries.slice(0, k), envelopes.slice(0, k));
      await this.attempts(handler, envelopes[k]!, deliveries[k]!, { firstFailure: { error: failure.error }, alone: true });
      if (k + 1 < deliveries.length) await this.runBatch(handler, deliveries.slice(k + 1), envelopes.slice(k + 1));
    }
  }

  /**
   * The batch's messages in one transaction (with other partitions' messages
   * when the group commit merges them; see {@link runTransaction}). Throws
   * if any handler throws (all rolled back).
   */
  private async attemptBatch(handler: HandlerDescriptor, deliveries: readonly Delivery[], envelopes: readonly Envelope[]): Promise<void> {
    await this.submit(
      handler,
      deliveries.map((delivery, i) => ({ handler, envelope: envelopes[i]!, delivery, attempt: 1 })),
    );
  }

  /**
   * Runs a unit of attempts in a handler transaction: through the group
   * commit, or, for a handler with parallel keys (`perPartition` > 1), in a
   * transaction of its own at once. The transport's key scheduler
   * (`transport/key-scheduler.ts`) hands such a handler up to `perPartition`
   * units of one partition at once, each holding keys no other one holds;
   * the group commit would merge them into one transaction and run their
   * handlers one after another, undoing the concurrency the handler asked
   * for. The scheduler bounds them instead of the group commit's limit, and
   * a unit's records still share its one transaction. Not guarded (no short
   * lock timeout): such handlers are declared to write rows of their own
   * key, and a deadlock between them is retried at once like any conflict.
   */
  private submit(handler: HandlerDescriptor, items: readonly Attempt[], alone = false): Promise<Outcome[]> {
    if ((handler.perPartition ?? 1) > 1) return this.runTransaction(items, false);
    return this.committer.submit(items, alone);
  }

  /** A non-transactional handler with an `invokeBatch` hook: the hook, then what it published, each through the outbox. */
  private async attemptBatchWithoutTransaction(handler: HandlerDescriptor, deliveries: readonly Delivery[], envelopes: readonly Envelope[]): Promise<void> {
    const instance = this.deps.resolve(handler.serviceClass);
    const startedAt = performance.now();
    const manager = this.deps.dataSource.manager;
    // A `process` span per message, child of its creation context, so that what the hook does for
    // each (a coordinator's step) stays in that message's trace; the hook itself runs under none.
    const spans = deliveries.map((delivery, i) => this.startProcessSpan(handler, envelopes[i]!, delivery));
    try {
      const contexts = deliveries.map((delivery, i) => {
        const context = new MessageContext(manager, this.consumer.serviceName, envelopes[i]!, this.deliveryInfo(handler, delivery, 1));
        context.traceContext = withSpan(extractTraceContext(envelopes[i]!), spans[i]!);
        return context;
      });
      await runIn(ROOT_CONTEXT, () => handler.invokeBatch!(instance, contexts));
      await writeOutboxRecords(
        manager,
        contexts.flatMap((context) => context.takeRecords()),
      );
      this.recordDone(deliveries.length, deliveries.length, startedAt);
      for (const span of spans) span.setAttributes({ [TraceAttribute.OUTCOME]: 'processed', [TraceAttribute.BATCH_COUNT]: deliveries.length });
    } catch (error) {
      for (const span of spans) recordSpanError(span, error);
      throw error;
    } finally {
      for (const span of spans) span.end();
    }
  }

  /**
   * Stats and metrics of one transaction (or batch hook) that handled
   * `delivered` messages: `processed` of them new, `deadBefore` skipped
   * because their dead letter is pending, the rest duplicates.
   */
  private recordDone(delivered: number, processed: number, startedAt: number, deadBefore = 0): void {
    const duplicates = delivered - processed - deadBefore;
    const group = this.consumer.group;
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

  private handlerFor(topic: string): HandlerDescriptor {
    const handler = this.consumer.handlers.get(topic);
    if (handler === undefined) {
      // Subscriptions list only the topics of this table, so this is a bug.
      throw new ConcordatError(`consumer group '${this.consumer.group}' has no handler for topic '${topic}'`, {
        code: ErrorCode.HANDLER_DEFINITION_INVALID,
      });
    }
    return handler;
  }

  /**
   * The `process` span of one message's run by `handler`: a child of the
   * creation context the message carries (`traceparent`), so the trace goes
   * on across services.
   */
  private startProcessSpan(handler: HandlerDescriptor, envelope: Envelope, delivery: Delivery): Span {
    return startSpan(`process ${delivery.topic}`, SpanKind.CONSUMER, extractTraceContext(envelope), {
      ...this.spanAttributes(handler, delivery),
      [TraceAttribute.MESSAGE_ID]: envelope.id,
      ...(envelope.partitionkey !== undefined && { [TraceAttribute.KAFKA_KEY]: envelope.partitionkey }),
      ...(envelope.correlationid !== undefined && { [TraceAttribute.CONVERSATION_ID]: envelope.correlationid }),
      ...(envelope.globaltxid !== undefined && { [TraceAttribute.GLOBAL_TX_ID]: envelope.globaltxid }),
    });
  }

  private spanAttributes(handler: HandlerDescriptor, delivery: Delivery): Record<string, string | number> {
    return {
      [TraceAttribute.SYSTEM]: MESSAGING_SYSTEM,
      [TraceAttribute.OPERATION_NAME]: 'process',
      [TraceAttribute.OPERATION_TYPE]: 'process',
      [TraceAttribute.DESTINATION]: delivery.topic,
      [TraceAttribute.PARTITION]: String(delivery.partition),
      [TraceAttribute.KAFKA_OFFSET]: delivery.offset,
      [TraceAttribute.CONSUMER_GROUP]: this.consumer.group,
      [TraceAttribute.HANDLER]: handler.label,
    };
  }

  private deliveryInfo(handler: HandlerDescriptor, delivery: Delivery, attempt: number): DeliveryInfo {
    return {
      topic: delivery.topic,
      partition: delivery.partition,
      offset: delivery.offset,
      attempt,
      maxAttempts: handler.retry.maxAttempts,
      consumer: handler.group,
    };
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
    let handler = this.handlerFor(delivery.topic);
    let envelope: Envelope | undefined;
    try {
      envelope = envelopeFromDelivery(delivery);
      const taker = this.filters(delivery.topic) ? this.route(delivery.topic, envelope) : handler;
      if (taker === undefined) return this.filteredOut(delivery, envelope);
      handler = taker;
      envelope = await validated(handler, envelope, delivery);
    } catch (error) {
      // Not a CloudEvent, a predicate filter that threw, or a payload its topic's schema refuses: no attempt could succeed.
      await this.deadLetter(delivery, envelope, handler, error, 0);
      return;
    }
    await this.attempts(handler, envelope, delivery);
  }

  /** Whether `delivery` is a replayed dead letter of another group: if so it is counted and skipped. */
  private skipsForeignReplay(delivery: Delivery): boolean {
    const replayFor = delivery.headers[REPLAY_FOR_HEADER];
    if (replayFor === undefined || replayFor.toString('utf8') === this.consumer.group) return false;
    this.stats.replaysSkipped++;
    this.messages.inc({ group: this.consumer.group, outcome: 'replay_skipped' });
    this.log.debug(
      { topic: delivery.topic, partition: delivery.partition, offset: delivery.offset, replayFor: replayFor.toString('utf8') },
      'a replayed dead letter of another consumer group: skipped',
    );
    return true;
  }

  /**
   * Attempts until the message is processed, skipped or dead-lettered.
   * `firstFailure`: the error of an attempt 1 made already (in a batch),
   * handled as if it had just happened here. `alone`: attempt 1 runs in a
   * transaction of its own, not shared with other partitions' messages (the
   * message is being split out of a batch that failed); later attempts
   * always do.
   */
  private async attempts(
    handler: HandlerDescriptor,
    envelope: Envelope,
    delivery: Delivery,
    options: { firstFailure?: { error: unknown }; alone?: boolean } = {},
  ): Promise<void> {
    // One span for the message's attempts: each retry an event, a dead letter its error.
    const span = this.startProcessSpan(handler, envelope, delivery);
    try {
      await this.attemptsIn(span, handler, envelope, delivery, options);
    } catch (error) {
      recordSpanError(span, error);
      throw error;
    } finally {
      span.end();
    }
  }

  private async attemptsIn(
    span: Span,
    handler: HandlerDescriptor,
    envelope: Envelope,
    delivery: Delivery,
    options: { firstFailure?: { error: unknown }; alone?: boolean },
  ): Promise<void> {
    let failure = options.firstFailure;
    for (let attempt = 1; ;) {
      if (failure === undefined) {
        try {
          await this.attempt(handler, envelope, delivery, attempt, attempt > 1 || options.alone === true, span);
          if (attempt > 1) span.setAttribute(TraceAttribute.ATTEMPTS, attempt);
          return;
        } catch (error) {
          failure = { error };
        }
      }
      const { error } = failure;
      failure = undefined;
      if (!(await this.failureCounts(error))) continue;
      const final = !isRetriable(error) || attempt >= handler.retry.maxAttempts;
      if (final) {
        await this.deadLetter(delivery, envelope, handler, error, attempt);
        recordSpanError(span, error);
        span.addEvent(TraceEvent.DEAD_LETTER, { [TraceAttribute.DESTINATION]: delivery.topic + DEAD_LETTER_SUFFIX, [TraceAttribute.ATTEMPTS]: attempt });
        span.setAttributes({ [TraceAttribute.OUTCOME]: 'dead_lettered', [TraceAttribute.ATTEMPTS]: attempt });
        return;
      }
      this.stats.retries++;
      this.messages.inc({ group: handler.group, outcome: 'retried' });
      // A deadlock or serialization failure is retried at once (and counted): waiting gains nothing.
      const conflict = isTransientConflict(error);
      const delayMs = conflict ? 0 : retryDelayMs(handler.retry, attempt);
      if (conflict) this.stats.conflictRetries++;
      if (span.isRecording()) {
        span.addEvent(TraceEvent.RETRY, {
          'concordat.attempt': attempt,
          'concordat.retry.delay_ms': delayMs,
          'exception.type': error instanceof ConcordatError ? error.code : error instanceof Error ? error.name : 'unknown',
          'exception.message': describeError(error).slice(0, 1024),
        });
      }
      this.log.warn({ err: describeError(error), handler: handler.label, messageId: envelope.id, attempt, delayMs }, 'handler failed; retrying');
      // sleep() throws the stopping error; a retry at once must check for it too.
      if (delayMs > 0) await this.sleep(delayMs);
      else if (this.deps.signal.aborted) throw stopping();
      attempt++;
    }
  }

  private async attempt(handler: HandlerDescriptor, envelope: Envelope, delivery: Delivery, attempt: number, alone: boolean, span: Span): Promise<void> {
    if (!handler.transactional) {
      const instance = this.deps.resolve(handler.serviceClass);
      const startedAt = performance.now();
      const context = new MessageContext(this.deps.dataSource.manager, this.consumer.serviceName, envelope, this.deliveryInfo(handler, delivery, attempt));
      context.traceContext = withSpan(extractTraceContext(envelope), span);
      await runIn(context.traceContext, () => handler.invoke(instance, context));
      await writeOutboxRecords(this.deps.dataSource.manager, context.takeRecords());
      this.done(handler, 'processed', startedAt);
      span.setAttribute(TraceAttribute.OUTCOME, 'processed');
      return;
    }
    try {
      await this.submit(handler, [{ handler, envelope, delivery, attempt, span }], alone);
    } catch (error) {
      throw error instanceof BatchHandlerFailure ? error.error : error;
    }
  }

  /**
   * One handler transaction for `items` (several partitions' messages when
   * the group commit merged them): `BEGIN` with one inbox insert for every
   * ID, returning the new ones; the handlers of those in order on one
   * EntityManager (an ID repeated in the transaction runs once); what they
   * published with `COMMIT`. A transaction whose messages are all
   * duplicates rolls back. Runs inside the group commit, so never beside
   * another transaction of this group (at the default concurrency), or,
   * for a handler with parallel keys, directly (see {@link submit}).
   * @returns each item's outcome, after the commit
   * @throws BatchHandlerFailure naming the item whose handler threw (all rolled back), or the database's error
   */
  private async runTransaction(items: readonly Attempt[], guarded: boolean): Promise<Outcome[]> {
    const startedAt = performance.now();
    const stages = new CommitStages();
    const instances = new Map<Function, object>();
    const instanceOf = (serviceClass: Function): object => {
      let instance = instances.get(serviceClass);
      if (instance === undefined) instances.set(serviceClass, (instance = this.deps.resolve(serviceClass)));
      return instance;
    };
    const deadLetters = new Map<number, string>();
    // Spans this transaction made (batch items have none of their own): ended with it.
    const ownSpans: Span[] = [];
    const spanOf = (item: Attempt): Span => {
      if (item.span !== undefined) return item.span;
      const span = this.startProcessSpan(item.handler, item.envelope, item.delivery);
      ownSpans.push(span);
      return span;
    };
    let outcomes: Outcome[];
    try {
      outcomes = await this.runItems(items, guarded, stages, instanceOf, deadLetters, spanOf);
    } catch (error) {
      if (error instanceof BatchHandlerFailure) {
        const failed = items[error.index]!;
        if (failed.span === undefined) recordSpanError(ownSpans[ownSpans.length - 1]!, error.error);
      }
      for (const span of ownSpans) span.end();
      throw error;
    }
    items.forEach((item, i) => {
      if (item.span !== undefined) item.span.setAttribute(TraceAttribute.OUTCOME, outcomes[i]!);
    });
    for (const span of ownSpans) {
      span.setAttribute(TraceAttribute.OUTCOME, 'processed');
      span.end();
    }
    this.recordDone(items.length, outcomes.filter((outcome) => outcome === 'processed').length, startedAt, deadLetters.size);
    for (const [i, deadLetterId] of deadLetters) {
      const { handler, envelope, delivery } = items[i]!;
      this.log.warn(
        { handler: handler.label, messageId: envelope.id, topic: delivery.topic, partition: delivery.partition, offset: delivery.offset, deadLetterId },
        `message delivered again after it was dead-lettered: skipped (concordat dlq replay ${deadLetterId} runs it again)`,
      );
    }
    await stages.runAfterCommit();
    // Committed in the database, offsets not yet committed in the log.
    await faultPoint('dispatcher.after-commit');
    return outcomes;
  }

  /** The transaction of {@link runTransaction}: inbox claim, handlers (each in its `process` span), stages, outbox, `COMMIT`. */
  private async runItems(
    items: readonly Attempt[],
    guarded: boolean,
    stages: CommitStages,
    instanceOf: (serviceClass: Function) => object,
    deadLetters: Map<number, string>,
    spanOf: (item: Attempt) => Span,
  ): Promise<Outcome[]> {
    return runOutboxTransaction(
      this.deps.dataSource,
      async ({ manager, preludeRows }) => {
        const claim = readInboxClaim(preludeRows);
        const contexts: MessageContext[] = [];
        const outcomes: Outcome[] = [];
        for (let i = 0; i < items.length; i++) {
          const { handler, envelope, delivery, attempt } = items[i]!;
          const deadLetterId = claim.deadLetterAt(delivery.topic, delivery.partition, delivery.offset);
          if (deadLetterId !== undefined) {
            deadLetters.set(i, deadLetterId);
            outcomes.push('dead_lettered_before');
            continue;
          }
          // take: a second copy of an ID inside the transaction is a duplicate too.
          if (!claim.take(envelope.id)) {
            outcomes.push('duplicate');
            continue;
          }
          const context = new MessageContext(manager, this.consumer.serviceName, envelope, this.deliveryInfo(handler, delivery, attempt));
          context.commitStages = stages;
          context.traceContext = withSpan(extractTraceContext(envelope), spanOf(items[i]!));
          try {
            await runIn(context.traceContext, () => handler.invoke(instanceOf(handler.serviceClass), context));
          } catch (error) {
            throw new BatchHandlerFailure(i, error);
          }
          contexts.push(context);
          outcomes.push('processed');
        }
        if (contexts.length === 0) return { result: outcomes, rollback: true as const };
        // What the handlers deferred to the end (a co-located coordinator's transitions), then every message published.
        const statements = await stages.runBeforeCommit(manager);
        return { result: outcomes, records: contexts.flatMap((context) => context.takeRecords()), statements };
      },
      {
        prelude: (escape) =>
          inboxClaimCheckingDeadLettersSql(
            this.consumer.group,
            items.map(({ envelope, delivery }) => ({ messageId: envelope.id, topic: delivery.topic, partition: delivery.partition, offset: delivery.offset })),
            escape,
          ) + (guarded ? `; SET LOCAL lock_timeout = ${GUARDED_LOCK_TIMEOUT_MS}` : ''),
      },
    );
  }

  private done(handler: HandlerDescriptor, outcome: Outcome, startedAt: number): void {
    this.stats[outcome === 'processed' ? 'processed' : 'duplicates']++;
    this.messages.inc({ group: handler.group, outcome });
    if (outcome === 'processed') this.handlerSeconds.observe({ group: handler.group }, (performance.now() - startedAt) / 1000);
  }

  /**
   * Whether a failed attempt counts against the retry policy. A failure
   * because the database is unreachable does not: this waits until it
   * answers again and returns false, so the same attempt is made again.
   */
  private async failureCounts(error: unknown): Promise<boolean> {
    if (!isRetriable(error)) return true;
    if (!(await this.databaseUnavailable(error))) return true;
    this.stats.databaseWaits++;
    await this.waitForDatabase(error);
    return false;
  }

  /**
   * Whether `error` means the database is unreachable: a lost connection
   * says so by itself ({@link isDatabaseUnavailable}); any other error (a
   * statement's, 08P01 included, or one that is not the database's at all)
   * only if a new connection cannot run `SELECT 1` either.
   */
  private async databaseUnavailable(error: unknown): Promise<boolean> {
    return isDatabaseUnavailable(error) || !(await this.databaseAnswers());
  }

  private databaseAnswers(): Promise<boolean> {
    return databaseAnswersNewConnection(this.deps.dataSource);
  }

  /** Waits, with backoff, until the database answers. @throws the stopping error when the app stops */
  private async waitForDatabase(cause: unknown): Promise<void> {
    this.log.warn({ err: describeError(cause) }, 'database unreachable; the message waits for it (not counted as an attempt)');
    for (let waits = 1; ; waits++) {
      await this.sleep(backoffMs(DATABASE_WAIT, waits));
      if (await this.databaseAnswers()) return;
    }
  }

  /**
   * Records the dead letter and sends it to `<topic>.dlq` (`sendDeadLetter`),
   * waiting for the database if it is down. Whatever the record holds is
   * made storable first (`deadLetterInput`: NULs escaped, an unusable `ce_id`
   * replaced), so that recording it cannot fail on its bytes and stall the
   * partition.
   */
  private async deadLetter(delivery: Delivery, envelope: Envelope | undefined, handler: HandlerDescriptor, error: unknown, attempts: number): Promise<void> {
    const input = deadLetterInput({ delivery, decodedId: envelope?.id, consumer: handler.group, handler: handler.label, error, attempts });
    const messageId = input.messageId;
    for (;;) {
      try {
        // A request's requester gets a failed reply with the dead letter, rather than waiting for its timeout.
        const id = await sendDeadLetter(this.deps.dataSource, input, (deadLetterId) =>
          failedReplyRecords(envelope, this.consumer.serviceName, {
            code: input.errorCode,
            message: input.error,
            handler: input.handler,
            consumer: input.consumer,
            attempts,
            deadLetterId,
          }),
        );
        if (id !== undefined) {
          this.stats.deadLettered++;
          this.messages.inc({ group: handler.group, outcome: 'dead_lettered' });
        }
        const reason = attempts > 1 ? new RetriesExhaustedError(attempts, error) : error;
        this.log.error(
          { err: describeError(reason), handler: handler.label, messageId, attempts, topic: delivery.topic + DEAD_LETTER_SUFFIX, deadLetterId: id },
          id === undefined ? 'message failed again; it is already dead-lettered' : 'message dead-lettered',
        );
        return;
      } catch (writeError) {
        if (!(await this.databaseUnavailable(writeError))) throw writeError;
        this.stats.databaseWaits++;
        await this.waitForDatabase(writeError);
      }
    }
  }

  /** Waits `delayMs`. @throws the stopping error when the app stops (before or during the wait) */
  private async sleep(delayMs: number): Promise<void> {
    const signal = this.deps.signal;
    if (!signal.aborted) await abortableSleep(delayMs, signal);
    if (signal.aborted) throw stopping();
  }
}

/** The handler of the batch's `index`-th message threw `error`; the batch's transaction rolled back. */
class BatchHandlerFailure extends Error {
  constructor(
    readonly index: number,
    readonly error: unknown,
  ) {
    // The cause, so that what classifies errors (a conflict?) sees through the wrapper.
    super(`the handler of message ${index} of a batch failed: ${describeError(error)}`, { cause: error });
    this.name = 'BatchHandlerFailure';
  }
}

/**
 * SQLSTATEs of failures that sharing a transaction can cause where the
 * message alone would not fail: serialization failure and deadlock (class
 * 40: the batch holds the locks of several messages at once), and
 * 25P02, a statement in a transaction an earlier handler of the batch left
 * aborted (it swallowed an error), and 55P03, a lock wait past the lock
 * timeout a transaction running beside others of its group gets. Not the
 * message's fault: no attempt is counted against it.
 */
const BATCH_CAUSED_SQLSTATE = /^(40...|25P02|55P03)$/;

function causedByBatch(error: unknown): boolean {
  return hasSqlStateMatching(error, (code) => BATCH_CAUSED_SQLSTATE.test(code));
}

/**
 * The envelopes of the records, validated for `handler`, or undefined if one
 * is not a CloudEvent or fails the schema (the one-at-a-time path
 * dead-letters it).
 */
async function decodeAll(handler: HandlerDescriptor, deliveries: readonly Delivery[]): Promise<Envelope[] | undefined> {
  try {
    return await Promise.all(deliveries.map((delivery) => validated(handler, envelopeFromDelivery(delivery), delivery)));
  } catch {
    return undefined;
  }
}

/**
 * `envelope` with its data validated by the handler's schema (a typed
 * topic's) and replaced by the schema's output; as it is without a schema.
 * @throws ValidationError VALIDATION_FAILED (not retriable) with the schema's issues
 */
async function validated(handler: HandlerDescriptor, envelope: Envelope, delivery: Delivery): Promise<Envelope> {
  if (handler.schema === undefined) return envelope;
  const what = `the payload of message ${envelope.id} on topic '${delivery.topic}'`;
  const data = await validateLater(handler.schema, envelope.data, what, { topic: delivery.topic, messageId: envelope.id });
  return { ...envelope, data };
}

function stopping(): ConcordatError {
  return new ConcordatError('the app is stopping; the message will be delivered again', {
    code: ErrorCode.APP_STATE_INVALID,
    retriable: true,
  });
}
