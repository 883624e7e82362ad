/*
 * One consumer-group member over kafkajs: one concept, the subscription's
 * life (join, deliver in chunks, commit after each chunk, rejoin or restart
 * the consumer after an error, close). The transport's producer and admin
 * are in transport.ts, kafkajs's errors in errors.ts.
 */

import type { Consumer, EachBatchPayload, Kafka, KafkaMessage } from 'kafkajs';
import type { CompiledKafkaTransportOptions } from '../../config/index.js';
import { describeError, kafkaErrorOf, type KafkaErrorName } from '../../errors.js';
import { backoffMs } from '../../util/index.js';
import type { Logger } from '../../observability/index.js';
import { CONSUMER_STALLED_FAILURES, OffsetReset, type Delivery, type SubscribeOptions, type Subscription } from '../transport.js';
import { reportConsumerFailure, type ChunkDelivery } from '../delivery.js';
import { KeyScheduler } from '../key-scheduler.js';
import { transportClosed } from './errors.js';

type ConsumerSettings = CompiledKafkaTransportOptions['consumer'];

/** Kafka errors after which the member must rejoin its group (kafkajs calls NOT_COORDINATOR by its older name, NOT_COORDINATOR_FOR_GROUP: read by number). */
const GROUP_ERRORS: ReadonlySet<KafkaErrorName | undefined> = new Set<KafkaErrorName>([
  'REBALANCE_IN_PROGRESS',
  'ILLEGAL_GENERATION',
  'NOT_COORDINATOR',
  'UNKNOWN_MEMBER_ID',
]);

type HandlerOutcome = { ok: true; rejoin: unknown } | { ok: false; error: unknown };

/** One consumer-group member over kafkajs; see {@link KafkaTransport} for the commit rules. */
export class KafkaSubscription implements Subscription {
  readonly groupId: string;
  private consumer: Consumer | null = null;
  private closing = false;
  private closed: Promise<void> | null = null;
  private firstJoin: Deferred | null = deferred();
  /** The record of each partition whose handler rejected, and how often. */
  private readonly attempts = new Map<string, { offset: number; attempt: number }>();
  /** Pending resumes and restart backoffs: cleared (the backoffs woken) on close. */
  private readonly timers = new Map<NodeJS.Timeout, () => void>();
  private restarts = 0;
  /** Fatal crashes since a record was last handled, for the onConsumerFailure report. */
  private crashes = 0;
  /** Key schedulers running a batch (parallel keys): stopped on close. */
  private readonly schedulers = new Set<KeyScheduler>();

  constructor(
    private readonly kafka: Kafka,
    private readonly options: SubscribeOptions,
    private readonly delivery: ChunkDelivery,
    private readonly settings: ConsumerSettings,
    private readonly logger: Logger,
    private readonly onClosed: () => void,
  ) {
    this.groupId = options.groupId;
  }

  /**
   * Starts the consumer; resolves at the first assignment.
   * @throws the last error when CONSUMER_STALLED_FAILURES consumers in a row
   *   failed before joining (each replaced after a backoff); TRANSPORT_CLOSED
   *   when the subscription closes first
   */
  async start(): Promise<void> {
    // Taken before the consumer starts: a crash during consumer.run() settles and clears firstJoin.
    const joined = this.firstJoin!;
    await this.startConsumer();
    await joined.promise;
  }

  private async startConsumer(): Promise<void> {
    const s = this.settings;
    const consumer = this.kafka.consumer({
      groupId: this.groupId,
      sessionTimeout: s.sessionTimeoutMs,
      rebalanceTimeout: s.rebalanceTimeoutMs,
      heartbeatInterval: s.heartbeatIntervalMs,
      maxBytesPerPartition: s.maxBytesPerPartition,
      maxWaitTimeInMs: s.maxWaitMs,
      allowAutoTopicCreation: false,
    });
    this.consumer = consumer;
    consumer.on(consumer.events.GROUP_JOIN, (event) => {
      this.logger.debug({ groupId: this.groupId, assigned: event.payload.memberAssignment }, 'assigned');
      if (this.firstJoin !== null) this.crashes = 0;
      this.firstJoin?.resolve();
      this.firstJoin = null;
    });
    consumer.on(consumer.events.CRASH, (event) => {
      if (!event.payload.restart) this.onFatalCrash(consumer, event.payload.error);
    });
    await consumer.connect();
    await consumer.subscribe({ topics: this.options.topics, fromBeginning: (this.options.offsetReset ?? OffsetReset.EARLIEST) === OffsetReset.EARLIEST });
    await consumer.run({
      autoCommit: true,
      autoCommitInterval: null,
      autoCommitThreshold: null,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: s.partitionsConcurrently,
      eachBatch: (payload) => this.eachBatch(payload),
    });
  }

  /** kafkajs gave up on this consumer: fail the start, or replace it while the subscription is open. */
  private onFatalCrash(consumer: Consumer, error: unknown): void {
    if (this.closing || consumer !== this.consumer) return;
    if (this.firstJoin !== null) {
      // A coordinator can refuse a member mid-rebalance with an error kafkajs does not retry (librdkafka's
      // mock cluster answers a SyncGroup with INVALID_REQUEST under load): start a new consumer, a few times.
      if (this.failBeforeJoin(error)) return;
      this.logger.warn(
        { groupId: this.groupId, failures: this.crashes, err: describeError(error) },
        'consumer failed before joining its group; starting a new one',
      );
      void this.replace(consumer);
      return;
    }
    this.crashes += 1;
    const failures = this.crashes;
    const stalled = failures >= CONSUMER_STALLED_FAILURES;
    const retryInMs = retryDelayMs(this.settings, this.restarts + 1);
    this.logger.error(
      { groupId: this.groupId, failures, stalled, retryInMs, err: describeError(error) },
      stalled ? 'consumer stalled: it keeps crashing without handling a record; starting a new one' : 'consumer crashed; starting a new one',
    );
    reportConsumerFailure(this.options, this.logger, { groupId: this.groupId, failures, stalled, retryInMs, error });
    void this.replace(consumer);
  }

  /**
   * Counts a failure before the first join; after CONSUMER_STALLED_FAILURES in a row it fails the
   * start with `error` and returns true.
   */
  private failBeforeJoin(error: unknown): boolean {
    this.crashes += 1;
    if (this.crashes < CONSUMER_STALLED_FAILURES || this.firstJoin === null) return false;
    this.logger.error({ groupId: this.groupId, failures: this.crashes, err: describeError(error) }, 'consumer failed before joining its group; giving up');
    this.firstJoin.reject(error);
    this.firstJoin = null;
    return true;
  }

  private async replace(crashed: Consumer): Promise<void> {
    await crashed.disconnect().catch(() => undefined);
    while (!this.closing) {
      this.restarts += 1;
      await this.sleep(retryDelayMs(this.settings, this.restarts));
      if (this.closing) return;
      try {
        await this.startConsumer();
        this.restarts = 0;
        return;
      } catch (error) {
        await this.consumer?.disconnect().catch(() => undefined);
        if (this.firstJoin !== null && this.failBeforeJoin(error)) return;
        this.logger.warn({ groupId: this.groupId, err: describeError(error), restarts: this.restarts }, 'starting a new consumer failed; retrying');
      }
    }
  }

  /** Hands kafkajs's batch (what one fetch returned for one partition) over in chunks; a chunk that fails pauses the partition. */
  private async eachBatch(payload: EachBatchPayload): Promise<void> {
    const { batch } = payload;
    const perPartition = this.delivery.perPartition(batch.topic);
    if (perPartition > 1) return this.eachBatchKeyed(payload, perPartition);
    const chunkMax = this.delivery.recordsMax;
    for (let from = 0; from < batch.messages.length; from += chunkMax) {
      if (this.closing || !payload.isRunning() || payload.isStale()) return;
      const messages = batch.messages.slice(from, from + chunkMax);
      const chunk = messages.map((message) => toDelivery(batch.topic, batch.partition, message));
      const outcome = await this.handle(chunk, () => payload.heartbeat());
      if (!outcome.ok) {
        this.retryLater(chunk[0]!, outcome.error, () => payload.pause());
        return;
      }
      payload.resolveOffset(messages[messages.length - 1]!.offset);
      this.attempts.delete(partitionKey(chunk[0]!));
      this.crashes = 0;
      if (outcome.rejoin !== undefined) throw outcome.rejoin as Error; // a kafkajs error, kept as thrown so kafkajs rejoins
      await this.heartbeat(() => payload.heartbeat());
    }
  }

  /**
   * kafkajs's batch with parallel keys: a {@link KeyScheduler} runs up to
   * `unitsMax` chunks of different keys at once; as chunks finish, the
   * offset below the lowest record not done is resolved and committed. A
   * chunk that fails is retried in place after a backoff while the other
   * keys go on (no pause: the partition's other keys must not wait for it).
   * Returns when every record is done, or, when the subscription closes,
   * the batch goes stale or a heartbeat says the group is rebalancing,
   * after the chunks in flight finished: kafkajs then fetches again from the
   * lowest record not done, and the inbox skips what was done above it.
   * kafkajs fetches a partition again only after its batch returned, so the
   * window of keys is one fetch (`maxBytesPerPartition`).
   */
  private async eachBatchKeyed(payload: EachBatchPayload, unitsMax: number): Promise<void> {
    const { batch } = payload;
    if (batch.messages.length === 0) return;
    const deliveries = batch.messages.map((message) => toDelivery(batch.topic, batch.partition, message));
    const first = deliveries[0]!.offset;
    let rejoin: unknown;
    let resolved = first;
    // Committed from here as records finish: kafkajs commits only when the batch returns, and a batch can run for long.
    const commitOnce = async (): Promise<void> => {
      if (scheduler.committable() <= resolved) return;
      resolved = scheduler.committable();
      payload.resolveOffset(String(resolved - 1));
      try {
        await payload.commitOffsetsIfNecessary(payload.uncommittedOffsets());
      } catch (error) {
        if (!GROUP_ERRORS.has(kafkaErrorOf(error))) {
          this.logger.debug({ groupId: this.groupId, err: describeError(error) }, 'offset commit failed; the next one commits it');
          return;
        }
        rejoin ??= error;
        void scheduler.stop();
      }
    };
    // One commit at a time; progress made while one runs is committed right after it.
    const commits: { running: Promise<void> | null; again: boolean } = { running: null, again: false };
    const commitSoon = (): void => {
      if (commits.running !== null) {
        commits.again = true;
        return;
      }
      commits.running = (async () => {
        do {
          commits.again = false;
          await commitOnce();
        } while (commits.again);
        commits.running = null;
      })();
    };
    const scheduler: KeyScheduler = new KeyScheduler({
      unitsMax,
      recordsMax: this.delivery.recordsMax,
      startOffset: first,
      deliver: (unit) => this.delivery.deliver(unit),
      onUnitFailed: (error, delivery, attempt) => this.reportHandlerError(error, delivery, attempt),
      backoffMs: (attempt) => retryDelayMs(this.settings, attempt),
      onProgress: () => {
        this.crashes = 0;
        commitSoon();
      },
    });
    this.schedulers.add(scheduler);
    const ticker = setInterval(() => {
      if (this.closing || !payload.isRunning() || payload.isStale()) void scheduler.stop();
      this.heartbeat(() => payload.heartbeat()).catch((error: unknown) => {
        rejoin ??= error;
        void scheduler.stop();
      });
    }, this.settings.heartbeatIntervalMs);
    try {
      scheduler.add(deliveries);
      await scheduler.whenIdle();
    } finally {
      clearInterval(ticker);
      await scheduler.stop();
      this.schedulers.delete(scheduler);
      await commits.running;
    }
    if (scheduler.committable() > resolved) payload.resolveOffset(String(scheduler.committable() - 1));
    if (rejoin !== undefined) throw rejoin as Error; // a kafkajs error, kept as thrown so kafkajs rejoins
  }

  /** Logs a failed chunk and tells `onHandlerError`. */
  private reportHandlerError(error: unknown, delivery: Delivery, attempt: number): void {
    this.logger.debug(
      { topic: delivery.topic, partition: delivery.partition, offset: delivery.offset, attempt, err: describeError(error) },
      'handler failed; will retry',
    );
    try {
      this.options.onHandlerError?.(error, delivery);
    } catch (callbackError) {
      this.logger.warn({ err: describeError(callbackError) }, 'onHandlerError threw');
    }
  }

  /** Runs the handler on a chunk, heartbeating meanwhile; reports a rebalance noticed during it. */
  private async handle(chunk: readonly Delivery[], heartbeat: () => Promise<void>): Promise<HandlerOutcome> {
    let rejoin: unknown;
    const ticker = setInterval(() => {
      this.heartbeat(heartbeat).catch((error: unknown) => {
        rejoin ??= error;
      });
    }, this.settings.heartbeatIntervalMs);
    try {
      await this.delivery.deliver(chunk);
      return { ok: true, rejoin };
    } catch (error) {
      return { ok: false, error };
    } finally {
      clearInterval(ticker);
    }
  }

  /** A heartbeat; only group errors (rejoin now) are thrown, others surface on the next fetch. */
  private async heartbeat(heartbeat: () => Promise<void>): Promise<void> {
    try {
      await heartbeat();
    } catch (error) {
      if (GROUP_ERRORS.has(kafkaErrorOf(error))) throw error;
      this.logger.debug({ groupId: this.groupId, err: describeError(error) }, 'heartbeat failed');
    }
  }

  /** Pauses the partition; after the backoff it resumes at the rejected record (the first of a rejected chunk). */
  private retryLater(delivery: Delivery, error: unknown, pause: () => () => void): void {
    const key = partitionKey(delivery);
    const previous = this.attempts.get(key);
    const attempt = previous?.offset === delivery.offset ? previous.attempt + 1 : 1;
    this.attempts.set(key, { offset: delivery.offset, attempt });
    this.reportHandlerError(error, delivery, attempt);
    const resume = pause();
    // Closing: the record stays unhandled and uncommitted; no resume to wait for.
    if (this.closing) return;
    const timer = setTimeout(
      () => {
        this.timers.delete(timer);
        resume();
      },
      retryDelayMs(this.settings, attempt),
    );
    this.timers.set(timer, () => undefined);
  }

  /** Waits `ms`, or less if the subscription closes. */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        resolve();
      }, ms);
      this.timers.set(timer, resolve);
    });
  }

  /** Lets the batch in flight finish, commits its handled records, leaves the group. Idempotent. */
  close(): Promise<void> {
    this.closed ??= this.shutdown();
    return this.closed;
  }

  private async shutdown(): Promise<void> {
    this.closing = true;
    // Batches with parallel keys start no more chunks; the chunks in flight finish before the consumer disconnects.
    for (const scheduler of this.schedulers) void scheduler.stop();
    for (const [timer, wake] of this.timers) {
      clearTimeout(timer);
      wake();
    }
    this.timers.clear();
    try {
      await this.consumer?.disconnect();
    } catch (error) {
      this.logger.warn({ groupId: this.groupId, err: describeError(error) }, 'consumer disconnect failed');
    }
    this.firstJoin?.reject(transportClosed());
    this.firstJoin = null;
    this.onClosed();
  }
}

interface Deferred {
  promise: Promise<void>;
  resolve(): void;
  reject(error: unknown): void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}

/** The wait before the `attempt`-th retry (a restart, a resume), in ms: the consumer's `retryBackoffMs` doubling up to `retryBackoffMaxMs`. */
function retryDelayMs(settings: ConsumerSettings, attempt: number): number {
  return backoffMs({ firstMs: settings.retryBackoffMs, maxMs: settings.retryBackoffMaxMs }, attempt);
}

function partitionKey(delivery: Delivery): string {
  return `${delivery.topic}\u0000${delivery.partition}`;
}

/** Header values by key: the last of a repeated key wins; a null value becomes an empty buffer. */
function toDelivery(topic: string, partition: number, message: KafkaMessage): Delivery {
  const headers: Record<string, Buffer> = {};
  for (const [key, raw] of Object.entries(message.headers ?? {})) {
    const value = Array.isArray(raw) ? raw[raw.length - 1] : raw;
    headers[key] = value === undefined || value === null ? Buffer.alloc(0) : Buffer.isBuffer(value) ? value : Buffer.from(value, 'utf8');
  }
  return {
    topic,
    partition,
    offset: Number(message.offset),
    key: message.key ?? null,
    value: message.value ?? null,
    headers,
    timestampMs: Number(message.timestamp),
  };
}
