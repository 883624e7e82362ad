/**
 * A message's attempts: its handler run until it succeeds, with retries and
 * backoff per the handler's policy, waits for an unreachable database that
 * do not count as attempts, and the dead letter when the attempts run out.
 */
import { performance } from 'node:perf_hooks';
import { describeError, ConcordatError, ErrorCode, isRetriable, RetriesExhaustedError } from '../../errors.js';
import { DEAD_LETTER_SUFFIX, deadLetterInput, sendDeadLetter } from '../../inbox/index.js';
import type { Envelope } from '../../messaging/index.js';
import { extractTraceContext, recordSpanError, runIn, TraceAttribute, TraceEvent, withSpan, type Logger, type Span } from '../../observability/index.js';
import { writeOutboxRecords } from '../../outbox/index.js';
import type { Delivery } from '../../transport/index.js';
import { backoffMs, sleep as abortableSleep, type Backoff } from '../../util/index.js';
import { MessageContext } from '../context.js';
import type { ConsumerDescriptor, HandlerDescriptor } from '../explorer.js';
import { failedReplyRecords } from '../reply.js';
import { databaseAnswersNewConnection, isDatabaseUnavailable, isTransientConflict, retryDelayMs } from '../retry.js';
import { BatchHandlerFailure, type HandlerTransactions } from './handler-transaction.js';
import type { DispatcherDeps } from './options.js';
import { startProcessSpan, deliveryInfo } from './spans.js';
import type { DispatchMetrics } from './stats.js';

/** Backoff while the database is unreachable: first and longest delay, in ms. */
const DATABASE_WAIT: Backoff = { firstMs: 100, maxMs: 5000 };

/**
 * Runs a message's attempts and sends it to its dead-letter topic when they
 * run out; one per dispatcher.
 */
export class MessageAttempts {
  constructor(
    private readonly consumer: ConsumerDescriptor,
    private readonly deps: DispatcherDeps,
    private readonly metrics: DispatchMetrics,
    private readonly logger: Logger,
    private readonly transactions: HandlerTransactions,
  ) {}

  /**
   * Attempts until the message is processed, skipped or dead-lettered.
   * `firstFailure`: the error of an attempt 1 made already (in a batch),
   * handled as if it had just happened here. `alone`: attempt 1 runs in a
   * transaction of its own, not shared with other partitions' messages (the
   * message is being split out of a batch that failed); later attempts
   * always do.
   */
  async run(
    handler: HandlerDescriptor,
    envelope: Envelope,
    delivery: Delivery,
    options: { firstFailure?: { error: unknown }; alone?: boolean } = {},
  ): Promise<void> {
    // One span for the message's attempts: each retry an event, a dead letter its error.
    const span = startProcessSpan(this.consumer.group, handler, envelope, delivery);
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
      this.metrics.stats.retries++;
      this.metrics.messages.inc({ group: handler.group, outcome: 'retried' });
      // A deadlock or serialization failure is retried at once (and counted): waiting gains nothing.
      const conflict = isTransientConflict(error);
      const delayMs = conflict ? 0 : retryDelayMs(handler.retry, attempt);
      if (conflict) this.metrics.stats.conflictRetries++;
      if (span.isRecording()) {
        span.addEvent(TraceEvent.RETRY, {
          'concordat.attempt': attempt,
          'concordat.retry.delay_ms': delayMs,
          'exception.type': error instanceof ConcordatError ? error.code : error instanceof Error ? error.name : 'unknown',
          'exception.message': describeError(error).slice(0, 1024),
        });
      }
      this.logger.warn({ err: describeError(error), handler: handler.label, messageId: envelope.id, attempt, delayMs }, 'handler failed; retrying');
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
      const context = new MessageContext(this.deps.dataSource.manager, this.consumer.serviceName, envelope, deliveryInfo(handler, delivery, attempt));
      context.traceContext = withSpan(extractTraceContext(envelope), span);
      await runIn(context.traceContext, () => handler.invoke(instance, context));
      await writeOutboxRecords(this.deps.dataSource.manager, context.takeRecords());
      this.metrics.done(handler, 'processed', startedAt);
      span.setAttribute(TraceAttribute.OUTCOME, 'processed');
      return;
    }
    try {
      await this.transactions.submit(handler, [{ handler, envelope, delivery, attempt, span }], alone);
    } catch (error) {
      throw error instanceof BatchHandlerFailure ? error.error : error;
    }
  }

  /**
   * Whether a failed attempt counts against the retry policy. A failure
   * because the database is unreachable does not: this waits until it
   * answers again and returns false, so the same attempt is made again.
   */
  private async failureCounts(error: unknown): Promise<boolean> {
    if (!isRetriable(error)) return true;
    if (!(await this.databaseUnavailable(error))) return true;
    this.metrics.stats.databaseWaits++;
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
    this.logger.warn({ err: describeError(cause) }, 'database unreachable; the message waits for it (not counted as an attempt)');
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
  async deadLetter(delivery: Delivery, envelope: Envelope | undefined, handler: HandlerDescriptor, error: unknown, attempts: number): Promise<void> {
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
          this.metrics.stats.deadLettered++;
          this.metrics.messages.inc({ group: handler.group, outcome: 'dead_lettered' });
        }
        const reason = attempts > 1 ? new RetriesExhaustedError(attempts, error) : error;
        this.logger.error(
          { err: describeError(reason), handler: handler.label, messageId, attempts, topic: delivery.topic + DEAD_LETTER_SUFFIX, deadLetterId: id },
          id === undefined ? 'message failed again; it is already dead-lettered' : 'message dead-lettered',
        );
        return;
      } catch (writeError) {
        if (!(await this.databaseUnavailable(writeError))) throw writeError;
        this.metrics.stats.databaseWaits++;
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

/** The error a delivery ends with when the app stops: retriable, the transport delivers the record again. */
export function stopping(): ConcordatError {
  return new ConcordatError('the app is stopping; the message will be delivered again', {
    code: ErrorCode.APP_STATE_INVALID,
    retriable: true,
  });
}
