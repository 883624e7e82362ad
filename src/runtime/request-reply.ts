/*
 * Request-reply (docs/request-reply.md): the requester side of one app. One
 * concept, the wait for a reply, from the request's publish to its end (the
 * reply, a failed reply, the timeout, the app stopping), with the consumer
 * group that reads the app's reply topic and the counts of replies no
 * caller waited for. Longer than 400 lines for the error messages, which say
 * what happened to the request and what to do.
 */

import type { StandardSchemaV1 } from '@standard-schema/spec';
import { Counter, register as defaultRegistry } from 'prom-client';
import { compileOptions } from '../config/index.js';
import { ConcordatError, ErrorCode } from '../errors.js';
import { topicNameProblem } from '../log/index.js';
import type { Envelope } from '../messaging/index.js';
import { createLogger, type Logger } from '../observability/index.js';
import { registeredMetric } from '../outbox/index.js';
import type { CommitStage } from './commit-stages.js';
import type { MessageContext, PublishOptions, SentRequest, TransactionContext } from './context.js';
import {
  defaultInstanceId,
  REQUEST_TIMEOUT_MS_MAX,
  requestReplyOptionsSchema,
  type CompiledRequestReplyOptions,
  type RequestOptions,
  type RequestReplyOptions,
  type RequestStats,
  type UnmatchedReply,
} from './request-options.js';
import type { ConsumerDescriptor, HandlerDescriptor } from './explorer.js';
import { asFailedReply, ReplyAttribute, ReplyType, RequestFailedError } from './reply.js';
import { compileRetryPolicy } from '../config/index.js';
import { isTopic, validateNow, type Topic } from './topic.js';

type Outcome = 'answered' | 'failed' | 'timed_out' | 'not_sent' | 'stopped';

/** One request, from `request()` to its end. */
export interface Waiter {
  readonly id: string;
  readonly topic: string;
  readonly replySchema: StandardSchemaV1 | undefined;
  readonly timeoutMs: number;
  /** open: its transaction has not committed; waiting: committed (or its outcome unknown), its timer runs; settled: over. */
  state: 'open' | 'waiting' | 'settled';
  /** The error of its transaction's `COMMIT` when that got no answer (TRANSACTION_OUTCOME_UNKNOWN): it may never have been sent. */
  commitUnanswered?: unknown;
  timer?: NodeJS.Timeout;
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

/**
 * A request published in a transaction (`ctx.request`), whose reply can be
 * awaited once that transaction committed.
 */
export class PendingRequest<R = unknown> {
  /** Made by `Requester.send` (through `ctx.request`), which settles `settled` as the request ends. */
  constructor(
    private readonly waiter: Waiter,
    private readonly settled: Promise<R>,
  ) {}

  /** The request's message ID (CloudEvents `id`), which its reply carries in `inreplyto`. */
  get id(): string {
    return this.waiter.id;
  }

  /** The request's topic. */
  get topic(): string {
    return this.waiter.topic;
  }

  /**
   * The reply: what the responder's handler returned (for a topic with a
   * reply schema, the schema's output). The same promise on every call.
   * @throws ConcordatError REQUEST_INVALID, at once, while the transaction that sends the request is still open
   * @throws ConcordatError REQUEST_TIMEOUT (retriable) when no reply came within `timeoutMs` of the commit
   * @throws RequestFailedError REQUEST_FAILED when the responder dead-lettered the request
   * @throws ValidationError VALIDATION_FAILED when the reply does not satisfy the topic's reply schema
   * @throws ConcordatError REQUEST_NOT_SENT when the transaction rolled back (not when its `COMMIT` got no
   *   answer, TRANSACTION_OUTCOME_UNKNOWN: the request may have been sent, so it waits for its reply)
   * @throws ConcordatError APP_STATE_INVALID when the app stopped first
   */
  reply(): Promise<R> {
    if (this.waiter.state === 'open') return Promise.reject(awaitedInTransaction(this.waiter));
    return this.settled;
  }
}

/** Remembered about a request that ended, to tell a late reply from an extra or unknown one. */
interface Ended {
  topic: string;
  outcome: Outcome;
  atMs: number;
  /** The reply that ended it. */
  replyId?: string;
}

/**
 * The requesting side of request-reply for one app: publishes requests
 * that name this instance's reply topic, keeps their waiters (each with a
 * timer started at its transaction's commit), and is the handler of the
 * reply topic's consumer group ({@link consumer}), which runs each reply in
 * a transaction with its inbox row like any message and hands it to its
 * waiter. A reply whose waiter is gone is counted, logged and given to
 * `onUnmatchedReply`; never to a waiter that gave up.
 *
 * Waiters live in this process's memory: bounded by `pendingMax`, and lost
 * (their replies then unmatched) when the process ends. Not shared between
 * apps.
 */
export class Requester {
  readonly replyTopic: string;
  /** The class the reply handler's descriptor names (one per requester), for the app's container. */
  readonly receiverClass: new () => object = class ReplyReceiver {};
  private options: CompiledRequestReplyOptions;
  private readonly waiting = new Map<string, Waiter>();
  /** Requests whose transaction has not ended yet, by ID: an ID is refused while one of them or a waiting one holds it. */
  private readonly opening = new Map<string, Waiter>();
  /** Requests that ended, oldest first, at most `pendingMax`. */
  private readonly ended = new Map<string, Ended>();
  private closed = true;
  private readonly counts = { sent: 0, answered: 0, failed: 0, timedOut: 0, notSent: 0, stopped: 0, unmatched: { late: 0, extra: 0, unknown: 0 } };
  private readonly logger: Logger;
  private readonly requestsTotal: Counter<'topic' | 'outcome'>;
  private readonly unmatchedTotal: Counter<'reason'>;

  /** @throws ConcordatError CONFIG_INVALID naming the option, or when the reply topic's name is not one */
  constructor(
    private readonly appName: string,
    options: RequestReplyOptions,
    logger: Logger,
  ) {
    this.options = compileOptions(requestReplyOptionsSchema, options, 'requests');
    if (options.instanceId === undefined) {
      // A second app of this name in this process gets a reply topic (and consumer group) of its own.
      const n = (defaultsTaken.get(appName) ?? 0) + 1;
      defaultsTaken.set(appName, n);
      this.options = { ...this.options, instanceId: defaultInstanceId(n) };
    }
    this.replyTopic = `${appName}.replies.${this.options.instanceId}`;
    const problem = topicNameProblem(this.replyTopic);
    if (problem !== undefined) {
      throw new ConcordatError(
        `invalid options: requests: the reply topic '${this.replyTopic}' (<app name>.replies.<requests.instanceId>) is not a valid topic name: ${problem}`,
        {
          code: ErrorCode.CONFIG_INVALID,
        },
      );
    }
    this.logger = createLogger('requests', { app: appName, replyTopic: this.replyTopic }, logger);
    this.requestsTotal = registeredMetric(
      defaultRegistry,
      'concordat_requests_total',
      () =>
        new Counter({
          name: 'concordat_requests_total',
          help: 'Requests (app.request, ctx.request) by how they ended: answered, failed, timed_out, not_sent, stopped',
          labelNames: ['topic', 'outcome'],
        }),
    );
    this.unmatchedTotal = registeredMetric(
      defaultRegistry,
      'concordat_replies_unmatched_total',
      () =>
        new Counter({
          name: 'concordat_replies_unmatched_total',
          help: 'Replies no waiting request took: late (after its timeout), extra (a second reply), unknown (sent before a restart, or forgotten)',
          labelNames: ['reason'],
        }),
    );
  }

  /** What this requester did so far: a copy, taken now. */
  get stats(): RequestStats {
    return { ...this.counts, unmatched: { ...this.counts.unmatched }, pending: this.waiting.size };
  }

  /** From the app's start: requests may be sent. */
  open(): void {
    this.closed = false;
  }

  /** At the app's stop, after its consumers stopped: every waiting request fails with APP_STATE_INVALID. */
  close(): void {
    this.closed = true;
    for (const waiter of [...this.waiting.values()]) this.settle(waiter, 'stopped', { error: stoppedWhileWaiting(waiter, this.replyTopic) });
  }

  /**
   * Publishes a request through `context` (to the outbox, in its
   * transaction) and returns its pending reply; `sent` is for the context
   * to report how its transaction ended.
   * @throws ConcordatError REQUEST_INVALID for a bad `timeoutMs`, `deliverAt`/`delayMs`, or an `id` already waiting or being sent;
   *   LIMIT_EXCEEDED with `pendingMax` requests waiting; APP_STATE_INVALID when the app is not running;
   *   what `publish` throws (VALIDATION_FAILED, INVALID_TOPIC_EXCEPTION...). Nothing is published then.
   */
  send(context: TransactionContext, topic: string | Topic, data: unknown, options: RequestOptions): { pending: PendingRequest; sent: SentRequest } {
    const name = isTopic(topic) ? topic.name : topic;
    const { timeoutMs = this.options.timeoutMs, ...publish } = options as RequestOptions & Pick<PublishOptions, 'deliverAt' | 'delayMs'>;
    if (!Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > REQUEST_TIMEOUT_MS_MAX) {
      throw invalid(`the request to topic '${name}': timeoutMs must be an integer number of ms in 1..${REQUEST_TIMEOUT_MS_MAX}, got ${String(timeoutMs)}`);
    }
    if (publish.deliverAt !== undefined || publish.delayMs !== undefined) {
      throw invalid(
        `the request to topic '${name}' cannot be published for later (deliverAt, delayMs): its timeout counts from its commit; publish a scheduled message instead and handle its answer as a message`,
      );
    }
    if (this.closed)
      throw new ConcordatError(`cannot send a request to topic '${name}': app '${this.appName}' is not running, so nothing reads its reply topic`, {
        code: ErrorCode.APP_STATE_INVALID,
      });
    if (this.waiting.size >= this.options.pendingMax) {
      throw new ConcordatError(
        `cannot send a request to topic '${name}': ${this.waiting.size} requests are waiting for their replies (requests.pendingMax): wait for some to end, or raise it`,
        {
          code: ErrorCode.LIMIT_EXCEEDED,
          retriable: true,
          context: { topic: name, pendingMax: this.options.pendingMax },
        },
      );
    }
    if (publish.id !== undefined && (this.waiting.has(publish.id) || this.opening.has(publish.id)))
      throw invalid(`a request with id ${publish.id} is waiting for its reply already (or being sent): give each request its own id`);
    const id = context.publish(topic as string, data, { ...publish, extensions: { ...publish.extensions, [ReplyAttribute.REPLY_TO]: this.replyTopic } });
    let resolve!: (value: unknown) => void;
    let reject!: (error: unknown) => void;
    const settled = new Promise<unknown>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // A reply nobody asks for (reply() never called) must not be an unhandled rejection.
    settled.catch(() => undefined);
    const replySchema = isTopic(topic) ? topic.reply : undefined;
    const waiter: Waiter = { id, topic: name, replySchema, timeoutMs, state: 'open', resolve, reject };
    this.opening.set(id, waiter);
    return {
      pending: new PendingRequest(waiter, settled),
      sent: {
        committed: () => this.committed(waiter),
        rolledBack: (cause) => this.rolledBack(waiter, cause),
        outcomeUnknown: (cause) => {
          // It may have committed: wait for its reply as if it had, and say so if none comes.
          waiter.commitUnanswered = cause;
          this.committed(waiter);
        },
      },
    };
  }

  /**
   * The consumer group that reads this instance's reply topic, for the
   * app's dispatcher: one transactional handler, so each reply gets an inbox
   * row (a redelivered reply is a duplicate and reaches no waiter twice).
   */
  consumer(): ConsumerDescriptor {
    const handler: HandlerDescriptor = {
      serviceClass: this.receiverClass,
      serviceName: this.appName,
      topic: this.replyTopic,
      group: this.replyTopic,
      methodName: 'receive',
      label: 'Requester.receive',
      transactional: true,
      retry: compileRetryPolicy({}, 'requests.retry'),
      invoke: (_instance, context) => this.receive(context),
    };
    return {
      group: this.replyTopic,
      serviceName: this.appName,
      handlers: new Map([[this.replyTopic, handler]]),
      routes: new Map([[this.replyTopic, [handler]]]),
    };
  }

  /** Its transaction committed: the request is on its way; its timer starts now. */
  private committed(waiter: Waiter): void {
    if (waiter.state !== 'open') return;
    this.opening.delete(waiter.id);
    this.counts.sent++;
    if (this.closed) return this.settle(waiter, 'stopped', { error: stoppedWhileWaiting(waiter, this.replyTopic) });
    waiter.state = 'waiting';
    this.waiting.set(waiter.id, waiter);
    waiter.timer = setTimeout(() => this.settle(waiter, 'timed_out', { error: requestTimedOut(waiter) }), waiter.timeoutMs);
  }

  private rolledBack(waiter: Waiter, cause: unknown): void {
    if (waiter.state !== 'open') return;
    this.settle(waiter, 'not_sent', {
      error: new ConcordatError(`request ${waiter.id} to topic '${waiter.topic}' was not sent: the transaction that publishes it did not commit`, {
        code: ErrorCode.REQUEST_NOT_SENT,
        cause,
        context: { topic: waiter.topic, requestId: waiter.id },
      }),
    });
  }

  private settle(waiter: Waiter, outcome: Outcome, result: { value: unknown } | { error: unknown }, replyId?: string): void {
    waiter.state = 'settled';
    clearTimeout(waiter.timer);
    // Only its own entries: another request may hold the ID by then (sent again after this one timed out).
    if (this.waiting.get(waiter.id) === waiter) this.waiting.delete(waiter.id);
    if (this.opening.get(waiter.id) === waiter) this.opening.delete(waiter.id);
    this.ended.set(waiter.id, { topic: waiter.topic, outcome, atMs: Date.now(), ...(replyId !== undefined && { replyId }) });
    if (this.ended.size > this.options.pendingMax) this.ended.delete(this.ended.keys().next().value!);
    this.counts[COUNT_OF[outcome]]++;
    this.requestsTotal.inc({ topic: waiter.topic, outcome });
    if ('value' in result) waiter.resolve(result.value);
    else waiter.reject(result.error);
  }

  /**
   * The reply topic's handler, inside the reply's transaction (its inbox row
   * written): hands the reply to its waiter at once (settling is in memory
   * and idempotent: should the transaction fail, the redelivered reply
   * finds the request ended by this very reply and is skipped), or reports
   * it unmatched.
   */
  private async receive(context: MessageContext): Promise<void> {
    const message = context.message;
    const requestId = message.extensions?.[ReplyAttribute.IN_REPLY_TO];
    const waiter = requestId === undefined ? undefined : this.waiting.get(requestId);
    if (waiter !== undefined) {
      const [outcome, result] = outcomeOf(waiter, message);
      return this.settle(waiter, outcome, result, message.id);
    }
    const ended = requestId === undefined ? undefined : this.ended.get(requestId);
    if (ended?.replyId === message.id) return;
    const reason = ended === undefined ? 'unknown' : ended.outcome === 'timed_out' || ended.outcome === 'stopped' ? 'late' : 'extra';
    const reply: UnmatchedReply = {
      reason,
      requestId,
      topic: ended?.topic,
      lateMs: reason === 'late' ? Date.now() - ended!.atMs : undefined,
      failed: message.type === ReplyType.FAILED,
      message,
    };
    await this.options.onUnmatchedReply?.(reply, context);
    const report = (): void => this.reportUnmatched(reply);
    if (context.commitStages === undefined) report();
    else context.commitStages.defer(AFTER_COMMIT, report, context);
  }

  private reportUnmatched(reply: UnmatchedReply): void {
    this.counts.unmatched[reply.reason]++;
    this.unmatchedTotal.inc({ reason: reply.reason });
    const fields = {
      requestId: reply.requestId,
      topic: reply.topic,
      lateMs: reply.lateMs,
      failed: reply.failed,
      replyId: reply.message.id,
      handedToHook: this.options.onUnmatchedReply !== undefined,
    };
    const why = {
      late: `a reply came ${reply.lateMs} ms after its request timed out (or its app stopped): nobody waits for it any more`,
      extra: 'a second reply to a request that had its reply already (more than one consumer group answers its topic, or a replayed dead letter)',
      unknown:
        'a reply to a request this process does not know: sent before a restart with the same requests.instanceId, forgotten, or by another live process with this instanceId',
    }[reply.reason];
    if (reply.reason === 'extra') this.logger.info(fields, why);
    else this.logger.warn(fields, why);
  }
}

/** Requesters made with the default `instanceId`, by app name, in this process (see `defaultInstanceId`). */
const defaultsTaken = new Map<string, number>();

const COUNT_OF = { answered: 'answered', failed: 'failed', timed_out: 'timedOut', not_sent: 'notSent', stopped: 'stopped' } as const;

/** Runs each deferred report once the reply's transaction committed (so a rolled back attempt counts nothing). */
const AFTER_COMMIT: CommitStage<() => void> = {
  beforeCommit: async (_manager, items) => ({
    afterCommit: async () => {
      for (const { item } of items) item();
    },
  }),
};

/** How `message` ends `waiter`'s request. */
function outcomeOf(waiter: Waiter, message: Envelope): [Outcome, { value: unknown } | { error: unknown }] {
  if (message.type === ReplyType.FAILED) return ['failed', { error: new RequestFailedError(waiter.topic, waiter.id, asFailedReply(message.data)) }];
  if (waiter.replySchema === undefined) return ['answered', { value: message.data }];
  try {
    const what = `the reply ${message.id} to request ${waiter.id} on topic '${waiter.topic}'`;
    return ['answered', { value: validateNow(waiter.replySchema, message.data, what, { topic: waiter.topic, requestId: waiter.id }) }];
  } catch (error) {
    return ['failed', { error }];
  }
}

function invalid(message: string): ConcordatError {
  return new ConcordatError(message, { code: ErrorCode.REQUEST_INVALID });
}

function awaitedInTransaction(waiter: Waiter): ConcordatError {
  return invalid(
    `the reply to request ${waiter.id} on topic '${waiter.topic}' was awaited inside the transaction that sends the request: ` +
      'the request is written to the outbox and sent only when that transaction commits, so its reply cannot come while the transaction is open. ' +
      'Return the pending request from the transaction and await reply() after app.transaction() returned, or call app.request() outside any transaction',
  );
}

function requestTimedOut(waiter: Waiter): ConcordatError {
  if (waiter.commitUnanswered !== undefined) {
    return new ConcordatError(
      `no reply to request ${waiter.id} on topic '${waiter.topic}' within ${waiter.timeoutMs} ms, and the COMMIT of the transaction that ` +
        'sends it got no answer (the connection failed): the request may never have been sent. Look for the effect of that transaction ' +
        'before sending it again',
      {
        code: ErrorCode.REQUEST_TIMEOUT,
        cause: waiter.commitUnanswered,
        context: { topic: waiter.topic, requestId: waiter.id, timeoutMs: waiter.timeoutMs, commitOutcome: 'unknown' },
      },
    );
  }
  return new ConcordatError(
    `no reply to request ${waiter.id} on topic '${waiter.topic}' within ${waiter.timeoutMs} ms of its commit: its responder ` +
      `(the consumer group that handles '${waiter.topic}') is down, behind or still retrying. The request stays in the log and will still be handled, once; ` +
      'a reply that comes later is counted as late (concordat_replies_unmatched_total) and given to requests.onUnmatchedReply, not to this call. ' +
      `Look at the responder's lag (concordat groups describe <group>), or give a longer timeoutMs; calling again sends a new request`,
    { code: ErrorCode.REQUEST_TIMEOUT, context: { topic: waiter.topic, requestId: waiter.id, timeoutMs: waiter.timeoutMs } },
  );
}

function stoppedWhileWaiting(waiter: Waiter, replyTopic: string): ConcordatError {
  return new ConcordatError(
    `the app stopped while request ${waiter.id} on topic '${waiter.topic}' waited for its reply: the request was sent and will still be handled; ` +
      `its reply goes to '${replyTopic}', which an instance started with the same requests.instanceId reads (as an unmatched reply)`,
    { code: ErrorCode.APP_STATE_INVALID, context: { topic: waiter.topic, requestId: waiter.id } },
  );
}
