/*
 * The contexts a handler or a transaction sees: TransactionContext (publish, request, cancelScheduled) and MessageContext
 * (the delivered message), and runTransaction. One concept, over 400 lines with the overloads of publish and request.
 */
import type { DataSource, EntityManager } from 'typeorm';
import type { CommitStages } from './commit-stages.js';
import { validateTopicName } from '../log/index.js';
import { createEnvelope, type Envelope, type JsonSafe } from '../messaging/index.js';
import {
  activeContext,
  injectTraceContext,
  MESSAGING_SYSTEM,
  runIn,
  SpanKind,
  startSpan,
  TraceAttribute,
  withSpan,
  type Context,
} from '../observability/index.js';
import {
  cancelScheduledMessage,
  runOutboxTransaction,
  toOutboxRecords,
  writeOutbox,
  type OutboxMessage,
  type OutboxRecord,
  type Schedule,
} from '../outbox/index.js';
import { ConcordatError, ErrorCode } from '../errors.js';
import type { StandardSchemaV1 } from '@standard-schema/spec';
import { isTopic, validateNow, type Topic, type TopicData, type TopicInput, type TopicReply } from './topic.js';
import type { RequestOptions } from './request-options.js';
import type { PendingRequest, Requester } from './request-reply.js';

/** Options of one published message. */
export interface PublishOptions {
  /** Partition key: messages with the same key keep their order end to end. @default none (spread) */
  key?: string;
  /** CloudEvents `type`. @default the topic */
  type?: string;
  /** Message ID (a UUIDv7 is generated when absent); publishing the same ID twice is deduplicated by consumers' inboxes. */
  id?: string;
  subject?: string;
  /** Global transaction this message belongs to. @default the incoming message's */
  globalTxId?: string;
  /** @default the incoming message's correlation ID, or its ID */
  correlationId?: string;
  /** Further CloudEvents extension attributes (lower-case alphanumeric names). */
  extensions?: Record<string, string>;
  /** Content type of `data`. @default 'application/json' */
  contentType?: string;
  /**
   * Deliver at this instant, not at once (compared with the database's
   * clock). A time already past delivers as soon as the relay sees it.
   * The message can be cancelled until then with `cancelScheduled(id)`.
   * Not together with `delayMs`. See docs/scheduling.md. @default at once
   */
  deliverAt?: Date;
  /**
   * Deliver this many ms after the transaction commits (counted from the
   * outbox insert, written with the `COMMIT`, by the database's clock).
   * A finite number ≥ 0. Not together with `deliverAt`. @default at once
   */
  delayMs?: number;
}

/**
 * A database transaction in which messages can be published: they are
 * written to the outbox through `manager` when the work finishes, so they
 * exist if and only if the transaction commits.
 */
export class TransactionContext {
  private readonly outgoing: OutboxMessage[] = [];
  /**
   * Work deferred to the end of the transaction (see `commit-stages.ts`):
   * set by the dispatcher on the contexts of its handler transactions;
   * undefined elsewhere (`app.transaction`, handlers without a transaction),
   * where a component must do its work at once instead.
   */
  commitStages: CommitStages | undefined;
  /**
   * Parent of the `publish` spans of this context's messages: set by the
   * runtime to the handler's `process` span (or a participant's branch span),
   * so that messages published from work deferred to the end of the
   * transaction still belong to their message's trace. Undefined: the active
   * context at each `publish` (the caller's span, if any).
   */
  traceContext: Context | undefined;
  /**
   * Sends this context's requests ({@link request}): the app's request-reply
   * (its `requests` option), set on the contexts of `app.transaction`;
   * undefined elsewhere.
   */
  requester: Requester | undefined;
  private readonly sentRequests: SentRequest[] = [];

  constructor(
    /** The transaction's EntityManager: use it for every business write. */
    readonly manager: EntityManager,
    /** CloudEvents `source` of published messages: the service name. */
    readonly source: string,
  ) {}

  /**
   * Publishes `data` to `topic` when the transaction commits. `data` must be
   * JSON, checked at compile time ({@link JsonSafe}: a `Map`, `Set`, `Date`,
   * function or `bigint` does not compile, instead of arriving as `{}` or a string).
   *
   * With a typed topic ({@link defineTopic}), `data` must be of the schema's
   * input type, and is validated here, before anything is written; what is
   * published is `data` as given (the consumer validates it again and gets
   * the schema's output).
   * @returns the message ID.
   * @throws ConcordatError INVALID_TOPIC_EXCEPTION when `topic` is not a valid topic name
   *   (the rule and words of `@OnMessage`: 1..249 characters of a-z, A-Z, 0-9, '.', '_', '-',
   *   not '.' or '..'); nothing is published then.
   * @throws ValidationError VALIDATION_FAILED with the schema's issues when `data` does not
   *   satisfy the topic's schema; nothing is published then.
   * @throws ConcordatError CONFIG_INVALID when the topic's schema validates asynchronously.
   * @throws ConcordatError ENVELOPE_INVALID for a bad extension name.
   * @throws ConcordatError SCHEDULE_INVALID when `deliverAt` and `delayMs` are both given,
   *   `deliverAt` is not a valid Date, or `delayMs` is negative or not finite.
   */
  publish<S extends StandardSchemaV1>(topic: Topic<S>, data: TopicInput<Topic<S>> & JsonSafe<TopicInput<Topic<S>>>, options?: PublishOptions): string;
  /** Writes `data` for topic `topic` (by name, untyped: `data` is only checked to be JSON); otherwise as the overload above. */
  publish<T>(topic: string, data: T & JsonSafe<T>, options?: PublishOptions): string;
  publish(topic: string | Topic, data: unknown, options: PublishOptions = {}): string {
    const name = isTopic(topic) ? topic.name : topic;
    // Here, not at the relay: a name the log refuses would otherwise commit, then fail for ever in the relay.
    validateTopicName(name);
    if (isTopic(topic)) validateNow(topic.schema, data, `the payload of topic '${name}'`, { topic: name });
    return this.publishTo(name, data, options);
  }

  private publishTo(topic: string, data: unknown, options: PublishOptions): string {
    const schedule = scheduleOf(options);
    const envelope = createEnvelope({
      type: options.type ?? topic,
      source: this.source,
      data,
      ...(options.id !== undefined && { id: options.id }),
      ...(options.subject !== undefined && { subject: options.subject }),
      ...(options.key !== undefined && { partitionkey: options.key }),
      ...(options.contentType !== undefined && { datacontenttype: options.contentType }),
      ...(options.extensions !== undefined && { extensions: options.extensions }),
      ...this.inherited(options),
    });
    this.traced(topic, envelope);
    this.outgoing.push({ topic, envelope, ...(schedule !== undefined && { schedule }) });
    return envelope.id;
  }

  /**
   * Publishes a request to `topic` when the transaction commits, and
   * returns its pending reply: `await pending.reply()` **after** the
   * transaction committed (after `app.transaction()` returned) resolves with
   * what the responder's handler returned. The request is an ordinary
   * message (see {@link publish}: typed, validated, written to the outbox in
   * this transaction, so it is sent if and only if the transaction commits)
   * carrying the `replyto` extension, the app's reply topic; its timeout
   * counts from the commit. `app.request()` is the short form for a request
   * alone. See docs/request-reply.md.
   *
   * With a topic defined with a reply schema (`defineTopic(name, schema, { reply })`)
   * the reply is typed and validated as the schema's output.
   * @throws ConcordatError REQUEST_INVALID when the app has no `requests` option, in a
   *   message handler (nothing durable could wait for the reply there), for a bad `timeoutMs`
   *   or an `id` already waiting or being sent; LIMIT_EXCEEDED with `requests.pendingMax` requests waiting;
   *   what {@link publish} throws. Nothing is published then.
   */
  request<S extends StandardSchemaV1, R extends StandardSchemaV1 | undefined>(
    topic: Topic<S, R>,
    data: TopicInput<Topic<S>> & JsonSafe<TopicInput<Topic<S>>>,
    options?: RequestOptions,
  ): PendingRequest<TopicReply<Topic<S, R>>>;
  /** Requests on topic `topic` (by name, untyped: `data` is only checked to be JSON, the reply is `Reply` unchecked); otherwise as the overload above. */
  request<Reply = unknown, T = unknown>(topic: string, data: T & JsonSafe<T>, options?: RequestOptions): PendingRequest<Reply>;
  request(topic: string | Topic, data: unknown, options: RequestOptions = {}): PendingRequest {
    const refusal = this.requestRefusal(isTopic(topic) ? topic.name : topic);
    if (refusal !== undefined) throw refusal;
    const { pending, sent } = this.requester!.send(this, topic, data, options);
    this.sentRequests.push(sent);
    return pending;
  }

  /** Why this context cannot send a request, if it cannot. */
  protected requestRefusal(topic: string): ConcordatError | undefined {
    if (this.requester !== undefined) return undefined;
    return new ConcordatError(
      `cannot send a request to topic '${topic}': request-reply is not enabled in this app. Create it with the 'requests' option ` +
        '(ConcordatApp.create({ ..., requests: {} })), which gives it a reply topic and a consumer group that reads it (docs/request-reply.md)',
      { code: ErrorCode.REQUEST_INVALID, context: { topic } },
    );
  }

  /**
   * For the runtime, once the transaction ended: the requests it published
   * start waiting for their replies (`committed`, and also when the
   * `COMMIT`'s outcome is unknown: they may have been sent), or fail with
   * REQUEST_NOT_SENT (`rolled-back`).
   */
  requestsEnded(outcome: TransactionOutcome, cause?: unknown): void {
    for (const sent of this.sentRequests.splice(0)) {
      if (outcome === 'committed') sent.committed();
      else if (outcome === 'unknown') sent.outcomeUnknown(cause);
      else sent.rolledBack(cause);
    }
  }

  /**
   * Cancels a message published for later (`deliverAt` / `delayMs`), in this
   * transaction: it is not delivered if and only if this transaction
   * commits. Works on a message published earlier in this same transaction
   * too (it is then simply not written). Against the relay, exactly one of
   * "cancelled" and "delivered" happens (`outbox/cancel.ts` says how).
   * @throws ConcordatError SCHEDULED_MESSAGE_DUE when the message's time has come; it will be delivered.
   * @throws ConcordatError SCHEDULED_MESSAGE_NOT_FOUND when no scheduled message with this ID is
   *   pending: never published for later, already cancelled, or already delivered.
   */
  async cancelScheduled(messageId: string): Promise<void> {
    const index = this.outgoing.findIndex((message) => message.envelope.id === messageId && message.schedule !== undefined);
    if (index >= 0) {
      this.outgoing.splice(index, 1);
      return;
    }
    await cancelScheduledMessage(this.manager, messageId);
  }

  /**
   * The message's creation context: a `publish` span (OpenTelemetry
   * messaging operation type `create`), child of {@link traceContext}, whose
   * context the envelope carries in `traceparent` / `tracestate`. Without a
   * propagator registered the envelope keeps what it inherited.
   */
  private traced(topic: string, envelope: Envelope): void {
    const parent = this.traceContext ?? activeContext();
    const span = startSpan(`publish ${topic}`, SpanKind.PRODUCER, parent, {
      [TraceAttribute.SYSTEM]: MESSAGING_SYSTEM,
      [TraceAttribute.OPERATION_NAME]: 'publish',
      [TraceAttribute.OPERATION_TYPE]: 'create',
      [TraceAttribute.DESTINATION]: topic,
      [TraceAttribute.MESSAGE_ID]: envelope.id,
      ...(envelope.partitionkey !== undefined && { [TraceAttribute.KAFKA_KEY]: envelope.partitionkey }),
      ...(envelope.correlationid !== undefined && { [TraceAttribute.CONVERSATION_ID]: envelope.correlationid }),
      ...(envelope.globaltxid !== undefined && { [TraceAttribute.GLOBAL_TX_ID]: envelope.globaltxid }),
    });
    injectTraceContext(withSpan(parent, span), envelope);
    span.end();
  }

  /**
   * Runs `work` with `ctx` as this context's {@link traceContext} and as the
   * active context, so that what it publishes (and the spans it starts) are
   * children of `ctx`'s span; then restores the previous one (after the
   * promise settles, for async work).
   */
  withTraceContext<R>(ctx: Context, work: () => R): R {
    const saved = this.traceContext;
    this.traceContext = ctx;
    let result: R;
    try {
      result = runIn(ctx, work);
    } catch (error) {
      this.traceContext = saved;
      throw error;
    }
    if (!(result instanceof Promise)) {
      this.traceContext = saved;
      return result;
    }
    return result.finally(() => {
      this.traceContext = saved;
    }) as R;
  }

  /** Messages published so far and not yet written. */
  get pending(): readonly OutboxMessage[] {
    return this.outgoing;
  }

  /**
   * Writes the published messages to the outbox through `manager` now. For
   * code that runs its own transaction; inside {@link runTransaction} and
   * handlers the runtime writes them with the `COMMIT` instead.
   */
  async flush(manager: EntityManager = this.manager): Promise<void> {
    const batch = this.outgoing.splice(0, this.outgoing.length);
    await writeOutbox(manager, batch);
  }

  /**
   * Removes the messages published so far and returns them as outbox
   * records (serialized once). For the runtime, which writes them with the
   * transaction's `COMMIT`.
   * @throws ConcordatError SERIALIZATION_FAILED
   */
  takeRecords(): OutboxRecord[] {
    return toOutboxRecords(this.outgoing.splice(0, this.outgoing.length));
  }

  /** Attributes a published message inherits; a message context adds causation and correlation. */
  protected inherited(options: PublishOptions): Partial<Envelope> {
    return {
      ...(options.globalTxId !== undefined && { globaltxid: options.globalTxId }),
      ...(options.correlationId !== undefined && { correlationid: options.correlationId }),
    };
  }
}

/** A request published in a transaction, told how its transaction ended (see `request-reply.ts`). */
export interface SentRequest {
  committed(): void;
  rolledBack(cause: unknown): void;
  /** The `COMMIT` got no answer (TRANSACTION_OUTCOME_UNKNOWN): the request may have been sent. */
  outcomeUnknown(cause: unknown): void;
}

/** How the transaction that published requests ended, for {@link TransactionContext.requestsEnded}. */
export type TransactionOutcome = 'committed' | 'rolled-back' | 'unknown';

/** The schedule of `options`, undefined for "at once". @throws ConcordatError SCHEDULE_INVALID */
function scheduleOf(options: PublishOptions): Schedule | undefined {
  const { deliverAt, delayMs } = options;
  if (deliverAt === undefined && delayMs === undefined) return undefined;
  const invalid = (why: string): ConcordatError =>
    new ConcordatError(`cannot publish for later: ${why}`, { code: ErrorCode.SCHEDULE_INVALID, context: { deliverAt: String(deliverAt), delayMs } });
  if (deliverAt !== undefined && delayMs !== undefined) throw invalid('give either deliverAt or delayMs, not both');
  if (deliverAt !== undefined) {
    if (!(deliverAt instanceof Date) || Number.isNaN(deliverAt.getTime())) throw invalid(`deliverAt must be a valid Date, got ${String(deliverAt)}`);
    return { deliverAt };
  }
  if (typeof delayMs !== 'number' || !Number.isFinite(delayMs) || delayMs < 0)
    throw invalid(`delayMs must be a finite number of ms ≥ 0, got ${String(delayMs)}`);
  return { delayMs };
}

/** Where a message came from in the log. */
export interface DeliveryInfo {
  topic: string;
  partition: number;
  offset: number;
  /** 1 for the first attempt of this delivery. */
  attempt: number;
  /** Attempts the handler's retry policy allows; `attempt === maxAttempts` is the last one. */
  maxAttempts: number;
  /** Consumer group (also the inbox's consumer name). */
  consumer: string;
}

/**
 * What a handler receives: the message, its data, the delivery, and a
 * transaction to work in. Messages it publishes carry `causationid` = this
 * message's ID and inherit its correlation ID, global transaction ID and
 * trace context.
 */
export class MessageContext<T = unknown> extends TransactionContext {
  constructor(
    manager: EntityManager,
    source: string,
    /** The message; for a typed topic its `data` is the schema's output (validated before the handler runs). */
    readonly message: Envelope<T>,
    readonly delivery: DeliveryInfo,
  ) {
    super(manager, source);
  }

  /** The message's payload (`message.data`), validated against the topic's schema when the topic is typed. */
  get data(): T {
    return this.message.data;
  }

  /** A handler cannot wait for a reply: its request would be sent at its commit, when its own message is acknowledged. */
  protected override requestRefusal(topic: string): ConcordatError {
    return new ConcordatError(
      `cannot send a request to topic '${topic}' from the handler of message ${this.message.id} on topic '${this.delivery.topic}': ` +
        "a handler's request is sent only when the handler's transaction commits, and its own message is acknowledged then, so nothing durable " +
        'could wait for the reply. Publish the request as a message (ctx.publish) and handle the answer in a handler of its own, or run a saga ' +
        '(docs/request-reply.md#from-a-handler)',
      { code: ErrorCode.REQUEST_INVALID, context: { topic, messageId: this.message.id } },
    );
  }

  protected override inherited(options: PublishOptions): Partial<Envelope> {
    const message = this.message;
    const globaltxid = options.globalTxId ?? message.globaltxid;
    return {
      causationid: message.id,
      correlationid: options.correlationId ?? message.correlationid ?? message.id,
      ...(globaltxid !== undefined && { globaltxid }),
      ...(message.traceparent !== undefined && { traceparent: message.traceparent }),
      ...(message.tracestate !== undefined && { tracestate: message.tracestate }),
    };
  }
}

/**
 * The context of a handler of a typed topic ({@link defineTopic}):
 * `@OnMessage(orderPlaced) placed(context: TopicContext<typeof orderPlaced>)`,
 * whose `data` is the schema's output type.
 */
export type TopicContext<T extends Topic> = MessageContext<TopicData<T>>;

/**
 * Runs `work` in one database transaction; the messages it publishes are
 * written to the outbox in the same round trip as the `COMMIT`
 * (`runOutboxTransaction`), so they exist if and only if the transaction
 * commits.
 *
 * @param source CloudEvents `source` of the published messages (the service or app name).
 * @param requester sends the requests of `context.request` (the app's request-reply); without it they throw REQUEST_INVALID.
 * @returns what `work` returned, after the commit.
 * @throws ConcordatError TRANSACTION_ROLLED_BACK when `work` caught the error of a failed
 *   statement (PostgreSQL rolled the aborted transaction back at `COMMIT`);
 *   TRANSACTION_OUTCOME_UNKNOWN when the connection failed with the `COMMIT`
 *   on its way (the requests it published then wait for their replies: they
 *   may have been sent).
 */
export async function runTransaction<T>(
  dataSource: DataSource,
  source: string,
  work: (context: TransactionContext) => Promise<T>,
  requester?: Requester,
): Promise<T> {
  // Kept out here, to tell the requests it published how the transaction ended.
  const contexts: TransactionContext[] = [];
  try {
    const result = await runOutboxTransaction(dataSource, async ({ manager }) => {
      const context = new TransactionContext(manager, source);
      context.requester = requester;
      contexts.push(context);
      const result = await work(context);
      return { result, records: context.takeRecords() };
    });
    contexts[0]?.requestsEnded('committed');
    return result;
  } catch (error) {
    const unknown = error instanceof ConcordatError && error.code === ErrorCode.TRANSACTION_OUTCOME_UNKNOWN;
    contexts[0]?.requestsEnded(unknown ? 'unknown' : 'rolled-back', error);
    throw error;
  }
}
