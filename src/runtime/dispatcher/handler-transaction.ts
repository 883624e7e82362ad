/**
 * The handler transaction: one database transaction in which a unit of
 * deliveries claims its inbox rows (checking for pending dead letters), runs
 * its handlers on one EntityManager and writes what they published to the
 * outbox with the `COMMIT`; run through the group's group commit.
 */
import { performance } from 'node:perf_hooks';
import { describeError } from '../../errors.js';
import { inboxClaimCheckingDeadLettersSql, readInboxClaim } from '../../inbox/index.js';
import type { Envelope } from '../../messaging/index.js';
import { extractTraceContext, faultPoint, recordSpanError, runIn, TraceAttribute, withSpan, type Logger, type Span } from '../../observability/index.js';
import { runOutboxTransaction } from '../../outbox/index.js';
import type { Delivery } from '../../transport/index.js';
import { CommitStages } from '../commit-stages.js';
import { MessageContext } from '../context.js';
import type { ConsumerDescriptor, HandlerDescriptor } from '../explorer.js';
import { HandlerGroupCommit } from '../group-commit.js';
import { hasSqlStateMatching, isTransientConflict } from '../retry.js';
import { GUARDED_LOCK_TIMEOUT_MS, type DispatcherDeps } from './options.js';
import { deliveryInfo, startProcessSpan } from './spans.js';
import type { DispatchMetrics, Outcome } from './stats.js';

/** One message's attempt, as the group commit runs it in a shared transaction. */
export interface Attempt {
  handler: HandlerDescriptor;
  envelope: Envelope;
  delivery: Delivery;
  attempt: number;
  /** The `process` span of the message's attempts; absent in a batch, whose transaction makes one for each message it runs. */
  span?: Span;
}

/**
 * A consumer group's handler transactions: merged across partitions by the
 * group commit, `concurrentTransactionsMax` in flight (see
 * `DispatcherOptions`).
 */
export class HandlerTransactions {
  /** The group's handler transactions: merged across partitions, `concurrentTransactionsMax` in flight. */
  private readonly committer: HandlerGroupCommit<Attempt, Outcome>;

  /** `batchRecordsMax` and `concurrentTransactionsMax`: the group commit's limits. */
  constructor(
    private readonly consumer: ConsumerDescriptor,
    private readonly deps: DispatcherDeps,
    private readonly metrics: DispatchMetrics,
    private readonly logger: Logger,
    batchRecordsMax: number,
    concurrentTransactionsMax: number,
  ) {
    this.committer = new HandlerGroupCommit(
      (items, guarded) => this.runTransaction(items, guarded),
      batchRecordsMax,
      concurrentTransactionsMax,
      isTransientConflict,
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
  submit(handler: HandlerDescriptor, items: readonly Attempt[], alone = false): Promise<Outcome[]> {
    if ((handler.perPartition ?? 1) > 1) return this.runTransaction(items, false);
    return this.committer.submit(items, alone);
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
      const span = startProcessSpan(this.consumer.group, item.handler, item.envelope, item.delivery);
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
    this.metrics.recordDone(items.length, outcomes.filter((outcome) => outcome === 'processed').length, startedAt, deadLetters.size);
    for (const [i, deadLetterId] of deadLetters) {
      const { handler, envelope, delivery } = items[i]!;
      this.logger.warn(
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
          const context = new MessageContext(manager, this.consumer.serviceName, envelope, deliveryInfo(handler, delivery, attempt));
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
}

/** The handler of the batch's `index`-th message threw `error`; the batch's transaction rolled back. */
export class BatchHandlerFailure extends Error {
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

/** Whether `error` is one that sharing a transaction can cause (see {@link BATCH_CAUSED_SQLSTATE}). */
export function causedByBatch(error: unknown): boolean {
  return hasSqlStateMatching(error, (code) => BATCH_CAUSED_SQLSTATE.test(code));
}
