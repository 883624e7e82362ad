/*
 * ConcordatApp: an app's life (create, start, stop), what it binds in the container and the entry points users call
 * (transaction, request, stats). One concept, over 400 lines with the contracts of its public methods.
 */
import { join } from 'node:path';
import { Container, type Newable } from 'inversify';
import type { DataSource } from 'typeorm';
import { compileAppCoreOptions } from '../config/index.js';
import { compileInboxOptions, type CompiledInboxOptions, type DatabaseOptions, type InboxOptions, type RelayOptions } from '../config/index.js';
import { ConcordatError, ErrorCode } from '../errors.js';
import { createLogger, rootLoggerFrom, type Logger, type LoggerLike } from '../observability/index.js';
import { DEAD_LETTER_SUFFIX, InboxCleaner, recordDedupWindow, resolveDedupWindow, type DedupWindow } from '../inbox/index.js';
import type { JsonSafe } from '../messaging/index.js';
import { OutboxRelay } from '../outbox/index.js';
import { openDatabase, type Database } from '../persistence/index.js';
import { defaultTransport, type Delivery, type Subscription, type Transport } from '../transport/index.js';
import { compileMetricsOptions, type CompiledMetricsOptions, type MetricsOptions } from '../config/index.js';
import { compileConsoleOptions, type CompiledConsoleOptions, type ConsoleOptions } from '../config/index.js';
import type { MetricsAddress } from '../observability/index.js';
import { startAppMetrics, type AppMetricsEndpoint } from './app-metrics.js';
import { runTransaction, TransactionContext, type PublishOptions } from './context.js';
import type { StandardSchemaV1 } from '@standard-schema/spec';
import type { Topic, TopicInput, TopicReply } from './topic.js';
import type { RequestOptions, RequestReplyOptions, RequestStats } from './request-options.js';
import { Requester } from './request-reply.js';
import { hasStartHook, hasStopHook } from './decorators/index.js';
import { compileDispatcherOptions, Dispatcher, type DispatcherOptions, type DispatchStats } from './dispatcher/index.js';
import { exploreHandlers, type ConsumerDescriptor, type HandlerTable } from './explorer.js';
import { getStartHooks } from './metadata.js';

/** inversify tokens Concordat binds in the container. */
export const Tokens = {
  /** The running {@link ConcordatApp}. */
  App: Symbol.for('concordat.App'),
  /** The TypeORM DataSource (available once the app has started). */
  DataSource: Symbol.for('concordat.DataSource'),
} as const;

/** Options of `ConcordatApp.create`: what the app runs and where its database, transport, relay, inbox and dispatcher settings come from; every field is checked at create (CONFIG_INVALID naming the option). */
export interface AppOptions {
  /** Name of this deployment unit: the CloudEvents `source` of messages published outside handlers. */
  name: string;
  /** Service classes (decorated with `@Service`) this app runs; none for an app that only sends requests (with `requests`). */
  services: Function[];
  /** Your inversify container; services not bound yet are bound as singletons. @default a new Container */
  container?: Container;
  /** Directory for the embedded PostgreSQL and the embedded log. @default './.concordat' */
  dataDir?: string;
  /** Database options, or a Database already open (shared; the app will not close it). */
  database?: DatabaseOptions | Database;
  /**
   * The transport, shared (the app will not close it). @default a KafkaTransport when `KAFKA_BROKERS` is set
   * (see `kafkaTransportOptionsFromEnv`), otherwise an EmbeddedTransport on `<dataDir>/log`
   */
  transport?: Transport;
  /** Outbox relay options, or `false` when another process relays this database's outbox. @default {} */
  relay?: RelayOptions | false;
  /** Inbox dedup window and cleanup; the window is checked against the log's retention at start. @default {} */
  inbox?: InboxOptions;
  /** Partitions of the topics the app creates for its handlers and their dead letters. Range 1..1024. @default 8 */
  partitions?: number;
  /**
   * How handlers are dispatched: each consumer group runs one handler
   * transaction at a time, and the records its partitions deliver meanwhile
   * share the next one, up to `batchRecordsMax` messages (nothing waits to
   * fill a transaction); while those transactions are full and work waits,
   * up to `concurrentTransactionsMax` run at once.
   * `{ batchRecordsMax: 1 }` gives every message a transaction of its own.
   * See {@link DispatcherOptions}. @default { batchRecordsMax: 32, concurrentTransactionsMax: 4 }
   */
  dispatcher?: DispatcherOptions;
  /**
   * Serve `/metrics` (Prometheus text), `/healthz` and `/readyz` over HTTP
   * from `start()` until `stop()` (see `runtime/app-metrics.ts`: ready = the
   * app is RUNNING, the database answers, every consumer group has its
   * assignment, and the relay runs when the app runs one). Read the port
   * bound from {@link ConcordatApp.metricsAddress}. @default none
   */
  metrics?: MetricsOptions;
  /**
   * Serve the operator console (global transactions, dead letters, outbox,
   * consumer groups, topics; see docs/console.md) over HTTP from `start()`
   * until `stop()`, on 127.0.0.1:9480 unless told otherwise; a non-loopback
   * `host` needs a `token` (`create` throws INSECURE_LISTENER without one).
   * Read the address from {@link ConcordatApp.consoleUrl}. @default none
   */
  console?: ConsoleOptions;
  /**
   * Your logger, the root of this app's component loggers (each line carries
   * `component`, and `app` for the app's own): a pino logger, used as it is,
   * or any object with pino's level methods `trace`..`fatal`, each called as
   * `(fields, message)`. @default Concordat's pino logger on stderr, level
   * from `CONCORDAT_LOG_LEVEL` (info)
   */
  logger?: LoggerLike;
  /**
   * Enables request-reply (`app.request`, `ctx.request` in `app.transaction`):
   * the app then reads a reply topic of its own, `<name>.replies.<instanceId>`,
   * with a consumer group of that name (created and subscribed at start).
   * See {@link RequestReplyOptions} and docs/request-reply.md. @default disabled
   */
  requests?: RequestReplyOptions;
}

/** Where an app is in its life: CREATED → STARTING → RUNNING → STOPPING → STOPPED; a failed start leaves FAILED, from which `start()` may be called again (or `stop()` ends it STOPPED). */
export const AppState = {
  CREATED: 'CREATED',
  /** `start()` failed; what it had opened is closed again, and `start()` may be called again. */
  FAILED: 'FAILED',
  STARTING: 'STARTING',
  RUNNING: 'RUNNING',
  STOPPING: 'STOPPING',
  STOPPED: 'STOPPED',
} as const;
/** One of the {@link AppState} values. */
export type AppState = (typeof AppState)[keyof typeof AppState];

/**
 * A Concordat application: services and their handlers, the database with
 * outbox and inbox, the outbox relay, and the transport.
 *
 * `create` validates options and decorators without any I/O; `start` opens
 * the database (migrating it), connects the transport, creates the topics,
 * starts the relay, subscribes the reply topic's group (with `requests`),
 * runs `onApplicationStart` hooks and subscribes the other consumer groups;
 * `stop` undoes it in reverse, letting in-flight handlers
 * finish.
 */
export class ConcordatApp {
  readonly container: Container;
  readonly handlers: HandlerTable;
  private state: AppState = AppState.CREATED;
  /** The root of this app's component loggers: `options.logger`, or Concordat's own. */
  readonly logger: Logger;
  private readonly appLogger: Logger;
  private readonly dataDir: string;
  private readonly partitions: number;
  private database: Database | undefined;
  private transportInUse: Transport | undefined;
  private relay: OutboxRelay | undefined;
  private inboxCleaner: InboxCleaner | undefined;
  private dedup: DedupWindow | undefined;
  private readonly inboxOptions: CompiledInboxOptions;
  private readonly subscriptions: Subscription[] = [];
  private readonly dispatchers = new Map<string, Dispatcher>();
  private readonly metricsOptions: CompiledMetricsOptions | undefined;
  private metricsEndpoint: AppMetricsEndpoint | undefined;
  private readonly consoleOptions: CompiledConsoleOptions | undefined;
  private consoleServer: { url: string; close(): Promise<void> } | undefined;
  /** Aborted when the app stops; a new one for each start. */
  private stopping = new AbortController();
  /** Request-reply, when the `requests` option enables it. */
  private readonly requester: Requester | undefined;

  private constructor(private readonly options: AppOptions) {
    const compiled = compileAppCoreOptions(options);
    this.dataDir = compiled.dataDir;
    this.partitions = compiled.partitions;
    this.handlers = exploreHandlers(options.services);
    this.inboxOptions = compileInboxOptions(options.inbox);
    this.metricsOptions = options.metrics === undefined ? undefined : compileMetricsOptions(options.metrics);
    this.consoleOptions = options.console === undefined ? undefined : compileConsoleOptions(options.console);
    compileDispatcherOptions(options.dispatcher);
    this.container = options.container ?? new Container();
    for (const { serviceClass } of this.handlers.services) {
      const newable = serviceClass as Newable<object>;
      if (!this.container.isBound(newable)) this.container.bind(newable).toSelf().inSingletonScope();
    }
    if (!this.container.isBound(Tokens.App)) this.container.bind(Tokens.App).toConstantValue(this);
    if (!this.container.isBound(Tokens.DataSource)) this.container.bind(Tokens.DataSource).toDynamicValue(() => this.dataSource);
    this.logger = rootLoggerFrom(compiled.logger);
    this.appLogger = createLogger('app', { app: options.name }, this.logger);
    if (options.requests !== undefined) {
      this.requester = new Requester(options.name, options.requests, this.logger);
      // Its reply topic's consumer group, created, subscribed and cleaned up like the services' groups.
      this.handlers.consumers.push(this.requester.consumer());
      this.container.bind(this.requester.receiverClass).toConstantValue(new this.requester.receiverClass());
    }
  }

  /**
   * Builds an app. No I/O happens here.
   * @throws ConcordatError CONFIG_INVALID for bad options, HANDLER_DEFINITION_INVALID for misused decorators.
   */
  static create(options: AppOptions): ConcordatApp {
    return new ConcordatApp(options);
  }

  /** The app's name (`AppOptions.name`): the CloudEvents `source` of what it publishes outside handlers. */
  get name(): string {
    return this.options.name;
  }

  /** Where the app is in its life ({@link AppState}). */
  get status(): AppState {
    return this.state;
  }

  /** The TypeORM DataSource. @throws ConcordatError APP_STATE_INVALID before `start()` */
  get dataSource(): DataSource {
    return this.requireDatabase().dataSource;
  }

  /** The database in use. @throws ConcordatError APP_STATE_INVALID before `start()` */
  get db(): Database {
    return this.requireDatabase();
  }

  /** The transport in use. @throws ConcordatError APP_STATE_INVALID before `start()` */
  get transport(): Transport {
    if (this.transportInUse === undefined) throw notStarted('transport');
    return this.transportInUse;
  }

  /** What each consumer group's dispatcher did so far. */
  stats(): Record<string, DispatchStats> {
    return Object.fromEntries([...this.dispatchers].map(([group, dispatcher]) => [group, { ...dispatcher.stats }]));
  }

  /**
   * Opens the database (waiting for it as `database.connectRetry` says),
   * connects the transport, creates the topics, starts the relay, subscribes
   * the reply topic's group (with `requests`, so that a start hook may await
   * a reply), runs the start hooks and subscribes the other consumer groups.
   * If any step fails, what
   * was opened is closed again, the app is FAILED and `start()` may be
   * called again (start hooks then run again).
   * @throws ConcordatError APP_STATE_INVALID unless the app is CREATED or FAILED;
   *   DATABASE_UNAVAILABLE, DEDUP_WINDOW_TOO_SHORT, LOG_DATABASE_MISMATCH (an embedded
   *   log directory written for another database), or whatever a step threw.
   */
  async start(): Promise<void> {
    if (this.state !== AppState.CREATED && this.state !== AppState.FAILED) {
      throw new ConcordatError(`app '${this.name}' cannot start: it is ${this.state}`, { code: ErrorCode.APP_STATE_INVALID });
    }
    this.state = AppState.STARTING;
    this.stopping = new AbortController();
    this.requester?.open();
    try {
      if (this.metricsOptions !== undefined) {
        const source = { app: this, relayExpected: this.options.relay !== false, subscribedGroups: () => this.subscriptions.map((s) => s.groupId) };
        this.metricsEndpoint = await startAppMetrics(this.metricsOptions, source);
      }
      const database = isDatabase(this.options.database)
        ? this.options.database
        : await openDatabase({ dataDir: this.dataDir, ...this.options.database }, this.appLogger);
      this.database = database;
      const transport = this.options.transport ?? defaultTransport(join(this.dataDir, 'log'), process.env, this.logger);
      this.transportInUse = transport;
      await transport.connect();
      if (transport.pairWithDatabase !== undefined) {
        const [identity] = await database.dataSource.query<Array<{ id: string }>>(`SELECT id FROM concordat.database_identity`);
        if (identity !== undefined) await transport.pairWithDatabase(identity.id);
      }
      await transport.ensureTopics(this.topicsToCreate());
      await this.startInbox(database, transport);
      if (this.options.relay !== false) {
        this.relay = new OutboxRelay(database, transport, { defaultPartitions: this.partitions, ...this.options.relay }, { logger: this.logger });
        await this.relay.start();
      }
      // The reply topic is read before the start hooks run: a hook may send a request and await its reply.
      const replyGroup = this.requester?.replyTopic;
      if (replyGroup !== undefined) await this.subscribe(replyGroup);
      for (const { serviceClass } of this.handlers.services) {
        const instance = this.service(serviceClass);
        for (const hook of getStartHooks(serviceClass)) await hook(instance, this);
        if (hasStartHook(instance)) await instance.onApplicationStart(this);
      }
      for (const consumer of this.handlers.consumers) if (consumer.group !== replyGroup) await this.subscribe(consumer.group);
      if (this.consoleOptions !== undefined) await this.startConsole(this.consoleOptions, database, transport);
      this.state = AppState.RUNNING;
      this.appLogger.info({ consumers: this.handlers.consumers.map((c) => c.group) }, 'app started');
    } catch (error) {
      await this.shutdown();
      this.forgetStarted();
      this.state = AppState.FAILED;
      throw error;
    }
  }

  /**
   * Starts the console on this app's database and transport. Loaded on
   * demand: an app without the option never loads Fastify and the pages.
   */
  private async startConsole(options: CompiledConsoleOptions, database: Database, transport: Transport): Promise<void> {
    const { ConsoleServer } = await import('../console/index.js');
    this.consoleServer = await ConsoleServer.start(options, { dataSource: database.dataSource, title: this.name, logger: this.logger, transport });
  }

  /** After a failed start: what the next start opens anew (`shutdown` closed it). */
  private forgetStarted(): void {
    this.database = undefined;
    this.transportInUse = undefined;
    this.relay = undefined;
    this.inboxCleaner = undefined;
    this.dedup = undefined;
    this.dispatchers.clear();
  }

  /** Stops consuming, lets in-flight handlers finish, stops the relay, closes what the app opened. Idempotent. */
  async stop(): Promise<void> {
    if (this.state === AppState.STOPPED || this.state === AppState.STOPPING) return;
    if (this.state === AppState.FAILED) {
      // Nothing is open: the failed start closed it.
      this.state = AppState.STOPPED;
      return;
    }
    this.state = AppState.STOPPING;
    await this.shutdown();
    this.state = AppState.STOPPED;
    this.appLogger.info('app stopped');
  }

  /**
   * Runs `work` in one database transaction; messages it publishes are
   * written to the outbox in the same transaction (with its `COMMIT`).
   * @returns what `work` returned, after the commit.
   * @throws ConcordatError TRANSACTION_ROLLED_BACK when `work` caught the error of a failed
   *   statement: PostgreSQL aborted the transaction and rolled it back at `COMMIT`.
   */
  async transaction<T>(work: (context: TransactionContext) => Promise<T>): Promise<T> {
    return runTransaction(this.requireDatabase().dataSource, this.name, work, this.requester);
  }

  /**
   * Sends a request and waits for its reply: publishes it through the
   * outbox in a transaction of its own, then waits, from that commit, up to
   * `timeoutMs` for the reply of the handler that handles `topic` (what it
   * returned; for a topic with a reply schema, the schema's output). Needs
   * the `requests` option. See `TransactionContext.request` to send a
   * request with other writes, and docs/request-reply.md.
   * @throws ConcordatError REQUEST_TIMEOUT (retriable) when no reply came in time: the request
   *   was sent and may still be handled (its reply then counts as late)
   * @throws RequestFailedError REQUEST_FAILED when the responder's handler failed for good (the request is its dead letter)
   * @throws ValidationError VALIDATION_FAILED when `data` (nothing is sent) or the reply does not satisfy the topic's schemas
   * @throws ConcordatError REQUEST_INVALID without the `requests` option or for a bad `timeoutMs`;
   *   LIMIT_EXCEEDED with `requests.pendingMax` requests waiting; APP_STATE_INVALID when the app stops first
   */
  async request<S extends StandardSchemaV1, R extends StandardSchemaV1 | undefined>(
    topic: Topic<S, R>,
    data: TopicInput<Topic<S>> & JsonSafe<TopicInput<Topic<S>>>,
    options?: RequestOptions,
  ): Promise<TopicReply<Topic<S, R>>>;
  /** Sends a request on topic `topic` (by name, untyped: `data` is only checked to be JSON, the reply is `Reply` unchecked); otherwise as the overload above. */
  async request<Reply = unknown, T = unknown>(topic: string, data: T & JsonSafe<T>, options?: RequestOptions): Promise<Reply>;
  async request(topic: string | Topic, data: unknown, options: RequestOptions = {}): Promise<unknown> {
    // The implementation signature takes either; `as string` only picks the untyped overload.
    const pending = await this.transaction(async (context) => context.request(topic as string, data, options));
    return pending.reply();
  }

  /** What request-reply did so far; undefined without the `requests` option. */
  requestStats(): RequestStats | undefined {
    return this.requester?.stats;
  }

  /** The topic this instance's replies come on; undefined without the `requests` option. */
  get replyTopic(): string | undefined {
    return this.requester?.replyTopic;
  }

  /** Where `/metrics`, `/healthz` and `/readyz` listen (the real port when 0 was asked), from `start()` until `stop()`; undefined without the `metrics` option. */
  get metricsAddress(): MetricsAddress | undefined {
    return this.metricsEndpoint?.address;
  }

  /** `http://host:port` of the operator console, from `start()` until `stop()`; undefined without the `console` option. */
  get consoleUrl(): string | undefined {
    return this.consoleServer?.url;
  }

  /** The outbox relay this app runs (its `lag()` shows the backlog), or undefined with `relay: false` or before start. */
  get outboxRelay(): OutboxRelay | undefined {
    return this.relay;
  }

  /** The inbox dedup window in force and the retentions it was checked against. @throws ConcordatError APP_STATE_INVALID before `start()` */
  get dedupWindow(): DedupWindow {
    if (this.dedup === undefined) throw notStarted('dedup window');
    return this.dedup;
  }

  /**
   * Resolves the dedup window against the log's retention of the consumed
   * topics (refusing to start when it is too short) and schedules cleanup.
   * @throws ConcordatError DEDUP_WINDOW_TOO_SHORT
   */
  private async startInbox(database: Database, transport: Transport): Promise<void> {
    const options = this.inboxOptions;
    const consumed = [...new Set(this.handlers.consumers.flatMap((consumer) => [...consumer.handlers.keys()]))];
    this.dedup = await resolveDedupWindow(transport, consumed, options, this.logger);
    const groups = this.handlers.consumers.map((consumer) => consumer.group);
    // For `concordat dlq replay`, which runs without these options and refuses dead letters older than the window.
    await recordDedupWindow(database.dataSource, groups, this.dedup.windowMs);
    this.inboxCleaner = new InboxCleaner(database.dataSource, {
      // Only this app's groups: other apps on the database clean their own rows, against their own windows.
      consumers: groups,
      windowMs: this.dedup.windowMs,
      deadLetterRetentionMs: options.deadLetterRetentionMs,
      intervalMs: options.cleanupIntervalMs,
      batchRowsMax: options.cleanupBatchRowsMax,
      batchesMax: options.cleanupBatchesMax,
      logger: this.logger,
    });
    this.inboxCleaner.start();
  }

  /**
   * Publishes one message through the outbox, in a transaction of its own.
   * `data` must be JSON, checked at compile time (see `TransactionContext.publish`).
   * @returns the message ID.
   * With a typed topic ({@link defineTopic}), `data` is type-checked and validated first.
   * @throws ConcordatError INVALID_TOPIC_EXCEPTION when `topic` is not a valid topic name (see `TransactionContext.publish`).
   * @throws ValidationError VALIDATION_FAILED when `data` does not satisfy the topic's schema; nothing is published.
   */
  async publish<S extends StandardSchemaV1>(
    topic: Topic<S>,
    data: TopicInput<Topic<S>> & JsonSafe<TopicInput<Topic<S>>>,
    options?: PublishOptions,
  ): Promise<string>;
  /** Publishes `data` on topic `topic` (by name, untyped: `data` is only checked to be JSON); otherwise as the overload above. */
  async publish<T>(topic: string, data: T & JsonSafe<T>, options?: PublishOptions): Promise<string>;
  async publish(topic: string | Topic, data: unknown, options: PublishOptions = {}): Promise<string> {
    // The implementation signature takes either; `as string` only picks the untyped overload.
    return this.transaction(async (context) => context.publish(topic as string, data, options));
  }

  private topicsToCreate(): Array<{ name: string; partitions: number }> {
    const topics = new Set<string>();
    for (const consumer of this.handlers.consumers) {
      for (const topic of consumer.handlers.keys()) {
        topics.add(topic);
        topics.add(topic + DEAD_LETTER_SUFFIX);
      }
    }
    return [...topics].map((name) => ({ name, partitions: this.partitions }));
  }

  private async subscribe(group: string): Promise<void> {
    const consumer = this.handlers.consumers.find((c) => c.group === group)!;
    const dispatcher = new Dispatcher(
      consumer,
      {
        dataSource: this.requireDatabase().dataSource,
        resolve: (serviceClass) => this.service(serviceClass),
        signal: this.stopping.signal,
        logger: this.logger,
      },
      this.options.dispatcher,
    );
    this.dispatchers.set(group, dispatcher);
    const handlers =
      dispatcher.batchRecordsMax === 1
        ? { handler: (delivery: Delivery) => dispatcher.dispatch(delivery) }
        : { batchHandler: (deliveries: readonly Delivery[]) => dispatcher.dispatchBatch(deliveries), batchRecordsMax: dispatcher.batchRecordsMax };
    const perPartition = perPartitionByTopic(consumer);
    this.warnPoolTooSmall(perPartition);
    const subscription = await this.transport.subscribe({
      groupId: group,
      topics: [...consumer.handlers.keys()],
      ...handlers,
      ...(perPartition !== undefined && { concurrency: { perPartition } }),
      onHandlerError: (error, delivery) =>
        this.appLogger.warn(
          { err: error instanceof Error ? error.message : String(error), topic: delivery.topic, partition: delivery.partition, offset: delivery.offset },
          'delivery not completed; it will be delivered again',
        ),
      onConsumerFailure: (event) => dispatcher.consumerFailed(event),
    });
    this.subscriptions.push(subscription);
  }

  /**
   * Each transaction of a handler with parallel keys holds a connection:
   * a pool smaller than `perPartition` makes them wait for connections, and
   * one that waits past `database.connectTimeoutMs` fails as an attempt.
   * Said once at start rather than found as timeouts under load.
   */
  private warnPoolTooSmall(perPartition: Record<string, number> | undefined): void {
    if (perPartition === undefined) return;
    const poolSize = (this.requireDatabase().dataSource.options as { extra?: { max?: number } }).extra?.max;
    for (const [topic, n] of Object.entries(perPartition)) {
      if (poolSize === undefined || n < poolSize) continue;
      this.appLogger.warn(
        { topic, perPartition: n, poolSize },
        `concurrency.perPartition ${n} on topic '${topic}' needs up to ${n} connections per partition, and the database pool holds ${poolSize}: transactions will wait for connections; raise database.poolSize`,
      );
    }
  }

  private async shutdown(): Promise<void> {
    this.stopping.abort();
    const failures: unknown[] = [];
    const attempt = async (step: () => Promise<void> | void): Promise<void> => {
      try {
        await step();
      } catch (error) {
        failures.push(error);
      }
    };
    await attempt(() => this.consoleServer?.close());
    this.consoleServer = undefined;
    for (const subscription of this.subscriptions.splice(0)) await attempt(() => subscription.close());
    // After the reply topic's consumer stopped: what still waits will not get its reply from this process.
    this.requester?.close();
    for (const { serviceClass } of this.handlers.services) {
      await attempt(async () => {
        if (this.database === undefined) return;
        const instance = this.service(serviceClass);
        if (hasStopHook(instance)) await instance.onApplicationStop(this);
      });
    }
    await attempt(() => this.relay?.stop());
    await attempt(() => this.inboxCleaner?.stop());
    if (this.options.transport === undefined) await attempt(() => this.transportInUse?.close());
    if (!isDatabase(this.options.database)) await attempt(() => this.database?.close());
    await attempt(() => this.metricsEndpoint?.close());
    this.metricsEndpoint = undefined;
    for (const failure of failures) this.appLogger.error({ err: String(failure) }, 'error while stopping');
  }

  /** The container's instance of a service class. */
  service<T extends object>(serviceClass: Function): T {
    return this.container.get<T>(serviceClass as Newable<T>);
  }

  private requireDatabase(): Database {
    if (this.database === undefined) throw notStarted('database');
    return this.database;
  }
}

function isDatabase(value: DatabaseOptions | Database | undefined): value is Database {
  return value !== undefined && 'dataSource' in value && 'transaction' in value;
}

function notStarted(what: string): ConcordatError {
  return new ConcordatError(`the app's ${what} is not available before start()`, { code: ErrorCode.APP_STATE_INVALID });
}

/**
 * The topics of a consumer group whose handlers run several keys of a
 * partition at once (`@OnMessage(topic, { concurrency: { perPartition } })`),
 * for the subscription; undefined when none does (the transport's
 * one-at-a-time path, unchanged).
 */
function perPartitionByTopic(consumer: ConsumerDescriptor): Record<string, number> | undefined {
  const byTopic: Record<string, number> = {};
  for (const [topic, handler] of consumer.handlers) if ((handler.perPartition ?? 1) > 1) byTopic[topic] = handler.perPartition!;
  return Object.keys(byTopic).length > 0 ? byTopic : undefined;
}
