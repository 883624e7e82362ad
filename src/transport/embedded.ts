import { join } from 'node:path';
import { z } from 'zod';
import { compileOptions } from '../config/index.js';
import { ConcordatError, ErrorCode, describeError } from '../errors.js';
import {
  attachLogMetrics,
  CompressionType,
  CONSUMER_PROTOCOL_TYPE,
  decodeAssignment,
  decodeRecordBatches,
  decodeSubscription,
  encodeAssignment,
  encodeRecordBatch,
  encodeSubscription,
  LogManager,
  RangeAssignor,
  RoundRobinAssignor,
  type DecodedRecord,
  type GroupCoordinator,
  type LogManagerOptions,
  type PartitionAssignor,
  type RecordInput,
  type TopicPartitions,
  readCheckpoint,
  writeCheckpoint,
} from '../log/index.js';
import { createLogger, faultPoint, type Logger } from '../observability/index.js';
import {
  CONSUMER_STALLED_FAILURES,
  OffsetReset,
  type ConsumerLag,
  type Delivery,
  type OutgoingRecord,
  type PublishAck,
  type SubscribeOptions,
  type Subscription,
  type TopicSpec,
  type Transport,
} from './transport.js';
import { chunkDelivery, reportConsumerFailure, type ChunkDelivery } from './delivery.js';

/**
 * EmbeddedTransport: the Transport over Concordat's own log, in process.
 *
 * Publish groups records by (topic, partition) — Kafka's default
 * partitioner for keys, round-robin for null keys — encodes each group into
 * RecordBatch v2 batches (headers as Kafka record headers), appends the
 * partitions concurrently, and resolves after every append is durable
 * (fdatasync with group commit, under the topic's default flushMode).
 *
 * Subscribe runs a real consumer-group member against the log's
 * GroupCoordinator — JoinGroup, the leader's assignment (Kafka's range or
 * round-robin assignor, ConsumerProtocol bytes, so embedded members and
 * Kafka clients of one group understand each other), SyncGroup, heartbeats —
 * and, per assigned partition, a worker: long-poll read → decode → for each
 * record (or each chunk of up to `batchRecordsMax` records, with a
 * `batchHandler`) await the handler → commit. The eager protocol: on a
 * rebalance every worker stops (the handler in flight finishes), commits,
 * and the member rejoins.
 *
 * Commits: a worker commits the position after the last handled record
 * (or chunk) when it finishes a read's records, before backing off after a
 * handler failure, and when it stops (revoke, close). It never commits past
 * a record whose handler has not resolved; a crash redelivers at most the
 * records of one read.
 *
 * Supervision: a worker whose loop fails outside a handler (fetching the
 * committed offset, decoding a read, a commit, its bookkeeping) does not
 * end, leaving the partition assigned but unconsumed. The failure is logged
 * at error (group, topic, partition, offset, consecutive failures) and
 * passed to the subscription's `onConsumerFailure`; after a backoff
 * (`retryBackoffMs` doubling, capped at the lower of `retryBackoffMaxMs` and
 * 30 s; a stop ends it at once) the loop starts again from the committed
 * offset, so records handled since the last commit are delivered again and
 * none is skipped. The count resets when a round (read, deliver, commit)
 * completes, and restarts at 1 when the failure comes at another offset.
 * From CONSUMER_STALLED_FAILURES consecutive failures at one offset (a batch
 * that can never decode) the report says `stalled` and the log line
 * "partition stalled"; retries go on at the capped backoff. The log closed
 * or the partition deleted stop the worker instead, as they do on a read.
 * The kafkajs transport reports a consumer it must replace the same way.
 *
 * The group member (join, sync, heartbeat) is supervised the same way; see
 * {@link EmbeddedSubscription}.
 */

/** Consumer settings of {@link EmbeddedTransport}. */
export interface EmbeddedConsumerOptions {
  /** Session timeout of the group member, in ms. Range 1..86400000 (and within the log's groups limits). @default 10000 */
  sessionTimeoutMs?: number;
  /** Time between heartbeats, in ms. Range 1..3600000. @default 3000 */
  heartbeatIntervalMs?: number;
  /** How long a rebalance waits for members to rejoin, in ms. Range 1..3600000. @default 60000 */
  rebalanceTimeoutMs?: number;
  /** Byte budget of one read of one partition. Range 1 KiB..64 MiB. @default 1048576 */
  maxBytesPerPartition?: number;
  /** Longest wait of one read for new records (long poll), in ms. Range 1..600000. @default 5000 */
  maxWaitMs?: number;
  /** First delay before retrying a record whose handler rejected, in ms; doubles per attempt. Range 1..600000. @default 100 */
  retryBackoffMs?: number;
  /** Longest delay between retries of one record, in ms. Range 1..3600000. @default 10000 */
  retryBackoffMaxMs?: number;
  /** Partition assignors, in order of preference; all members of a group must share one. @default ['range', 'roundrobin'] */
  assignors?: ('range' | 'roundrobin')[];
  /**
   * Called when a partition's position is out of the log's range (its
   * records were deleted by retention, or the log was cut), before the
   * member moves to where the subscription's `offsetReset` says (the log
   * start for 'earliest', the high watermark for 'latest'). `error` is the
   * log's OFFSET_OUT_OF_RANGE. Also logged at warn level.
   */
  onOffsetReset?: (event: OffsetResetEvent) => void;
}

/** A partition's position moved by the reset policy. */
export interface OffsetResetEvent {
  groupId: string;
  topic: string;
  partition: number;
  /** The position that was out of range. */
  from: number;
  /** Where delivery continues. */
  to: number;
  error: ConcordatError;
}

/** Producer settings of {@link EmbeddedTransport}. */
export interface EmbeddedProducerOptions {
  /** Codec of published batches. @default 'none' */
  compression?: CompressionType;
  /** Largest batch the producer builds, in bytes (a larger single record goes alone). Range 1 KiB..64 MiB. @default 524288 */
  batchBytesMax?: number;
}

export interface EmbeddedTransportOptions {
  /** Directory of the log this transport opens (and closes). */
  dataDir: string;
  /** Further options of the log it opens. */
  log?: Omit<LogManagerOptions, 'dataDir'>;
  /** Parent of the transport's logger (an app's root). @default Concordat's own */
  logger?: Logger;
  consumer?: EmbeddedConsumerOptions;
  producer?: EmbeddedProducerOptions;
  /** Client ID reported to the group coordinator. @default 'concordat-embedded' */
  clientId?: string;
}

/** Options for a transport over a log someone else opened (and closes). */
export interface EmbeddedTransportOverLogOptions {
  consumer?: EmbeddedConsumerOptions;
  producer?: EmbeddedProducerOptions;
  clientId?: string;
}

const schema = z.strictObject({
  consumer: z
    .strictObject({
      sessionTimeoutMs: z.number().int().min(1).max(86_400_000).default(10_000),
      heartbeatIntervalMs: z.number().int().min(1).max(3_600_000).default(3000),
      rebalanceTimeoutMs: z.number().int().min(1).max(3_600_000).default(60_000),
      maxBytesPerPartition: z.number().int().min(1024).max(64 * 1024 * 1024).default(1024 * 1024),
      maxWaitMs: z.number().int().min(1).max(600_000).default(5000),
      retryBackoffMs: z.number().int().min(1).max(600_000).default(100),
      retryBackoffMaxMs: z.number().int().min(1).max(3_600_000).default(10_000),
      assignors: z.array(z.enum(['range', 'roundrobin'])).min(1).max(2).default(['range', 'roundrobin']),
      onOffsetReset: z.custom<(event: OffsetResetEvent) => void>((value) => typeof value === 'function', 'must be a function').optional(),
    })
    .prefault({}),
  producer: z
    .strictObject({
      compression: z.enum(Object.values(CompressionType) as [CompressionType, ...CompressionType[]]).default(CompressionType.NONE),
      batchBytesMax: z.number().int().min(1024).max(64 * 1024 * 1024).default(512 * 1024),
    })
    .prefault({}),
  clientId: z.string().min(1).max(255).default('concordat-embedded'),
});

type CompiledOptions = z.output<typeof schema>;
type ConsumerSettings = CompiledOptions['consumer'];

const ASSIGNORS: Readonly<Record<'range' | 'roundrobin', PartitionAssignor>> = {
  range: new RangeAssignor(),
  roundrobin: new RoundRobinAssignor(),
};

/** Longest wait before a failed partition worker or group member restarts, in ms (below `retryBackoffMaxMs` when that is lower). */
const WORKER_RESTART_BACKOFF_MAX_MS = 30_000;

/**
 * Wait before the `failures`-th consecutive restart of a worker or member,
 * in ms: `retryBackoffMs` doubling, capped at the lower of
 * `retryBackoffMaxMs` and 30 s (Infinity: the cap at once).
 */
function restartBackoffMs(consumer: { retryBackoffMs: number; retryBackoffMaxMs: number }, failures: number): number {
  const cap = Math.min(consumer.retryBackoffMaxMs, WORKER_RESTART_BACKOFF_MAX_MS);
  return Math.min(cap, consumer.retryBackoffMs * 2 ** Math.min(failures - 1, 20));
}

/** The group moved on: the member rejoins (with a fresh member ID after UNKNOWN_MEMBER_ID), as Kafka's clients do. */
const REJOIN_CODES: ReadonlySet<string> = new Set([ErrorCode.UNKNOWN_MEMBER_ID, ErrorCode.ILLEGAL_GENERATION, ErrorCode.REBALANCE_IN_PROGRESS]);

/**
 * Refusals of the group coordinator that a configuration mistake causes and
 * that do not heal by themselves (the subscription's settings, the log's
 * groups limits, members of one group offering different assignors).
 */
const PERMANENT_CODES: ReadonlySet<string> = new Set([
  ErrorCode.INVALID_SESSION_TIMEOUT,
  ErrorCode.INCONSISTENT_GROUP_PROTOCOL,
  ErrorCode.INVALID_GROUP_ID,
  ErrorCode.GROUP_MAX_SIZE_REACHED,
  ErrorCode.UNSUPPORTED_VERSION,
]);

/** Estimated bytes of a record in a batch beyond its key, value and headers. */
const RECORD_OVERHEAD_BYTES = 24;

export class EmbeddedTransport implements Transport {
  readonly kind = 'embedded' as const;
  private readonly options: CompiledOptions;
  private readonly ownedLog: { dataDir: string; log: Omit<LogManagerOptions, 'dataDir'> } | null;
  private log: LogManager | null;
  private connecting: Promise<LogManager> | null = null;
  private readonly subscriptions = new Set<EmbeddedSubscription>();
  private closed = false;
  private readonly logger: Logger;
  private detachLogMetrics: (() => void) | undefined;

  /**
   * @param source `{ dataDir }` to open (and on close, close) a log there, or
   *   an open LogManager to share (left open on close).
   * @throws ConcordatError CONFIG_INVALID naming the option
   */
  constructor(source: EmbeddedTransportOptions | LogManager, options: EmbeddedTransportOverLogOptions = {}) {
    if (source instanceof LogManager) {
      this.log = source;
      this.ownedLog = null;
      this.options = compileOptions(schema, options, 'embeddedTransport');
    } else {
      const { dataDir, log, logger: _logger, ...rest } = source;
      if (typeof dataDir !== 'string' || dataDir.length === 0) {
        throw new ConcordatError('invalid options: embeddedTransport.dataDir: must be a non-empty path', { code: ErrorCode.CONFIG_INVALID });
      }
      this.log = null;
      this.ownedLog = { dataDir, log: log ?? {} };
      this.options = compileOptions(schema, rest, 'embeddedTransport');
    }
    this.logger = createLogger('transport.embedded', {}, source instanceof LogManager ? undefined : source.logger);
  }

  /**
   * Opens the log when this transport owns it, and adds the log to the
   * metrics of prom-client's default registry (`log/metrics.ts`) until
   * `close`. Idempotent.
   */
  async connect(): Promise<void> {
    const log = await this.openLog();
    this.detachLogMetrics ??= attachLogMetrics(log);
  }

  /**
   * Pairs the log directory with the database the app uses: the file
   * `<dataDir>/database-pairing` (a checkpoint file, kind
   * `database-pairing`: `{ databaseId, pairedAt }`) names the database the
   * log's records were written for. Written on the first start; on every
   * later start the app's database must be that one. A log kept while its
   * database was re-created (or the app pointed at another database) would
   * otherwise deliver its records — outbox messages, commands of global
   * transactions the new database never held — into the wrong database.
   * @throws ConcordatError LOG_DATABASE_MISMATCH saying how to reset one or the other
   */
  async pairWithDatabase(databaseId: string): Promise<void> {
    const log = await this.openLog();
    const dataDir = log.options.dataDir;
    const path = join(dataDir, 'database-pairing');
    const recorded = (await readCheckpoint(path, 'database-pairing')) as { databaseId?: unknown; pairedAt?: unknown } | null;
    if (recorded === null) {
      await writeCheckpoint(path, 'database-pairing', { databaseId, pairedAt: new Date().toISOString() });
      this.logger.info({ dataDir, databaseId }, 'log directory paired with its database');
      return;
    }
    if (recorded.databaseId === databaseId) return;
    throw new ConcordatError(
      `the log directory ${dataDir} was written for database ${String(recorded.databaseId)} (paired ${String(recorded.pairedAt)}), ` +
        `but the app's database is ${databaseId}: its records would be delivered into the wrong database. ` +
        `Point the app at the database this log belongs to (database.url / DATABASE_URL), or, if this database replaced it on purpose, ` +
        `delete the log directory ${dataDir} (its undelivered records are lost) and start again`,
      { code: ErrorCode.LOG_DATABASE_MISMATCH, context: { dataDir, recordedDatabaseId: recorded.databaseId, databaseId } },
    );
  }

  /** The lag of `groupId` on the partitions of `topics`, from the log's committed offsets (no I/O). */
  async consumerLag(groupId: string, topics: readonly string[]): Promise<ConsumerLag[]> {
    const log = this.log;
    if (this.closed || log === null) return [];
    return log.groups
      .lag(groupId, topics.filter((topic) => log.hasTopic(topic)))
      .map(({ topic, partition, committedOffset, highWatermark, lag }) => ({ topic, partition, committedOffset, highWatermark, lag }));
  }

  private openLog(): Promise<LogManager> {
    if (this.closed) return Promise.reject(transportClosed());
    if (this.log !== null) return Promise.resolve(this.log);
    this.connecting ??= LogManager.open({ ...this.ownedLog!.log, dataDir: this.ownedLog!.dataDir }).then(
      (log) => {
        this.log = log;
        return log;
      },
      (error: unknown) => {
        this.connecting = null;
        throw error;
      },
    );
    return this.connecting;
  }

  async ensureTopics(topics: TopicSpec[]): Promise<void> {
    const log = await this.openLog();
    for (const topic of topics) await log.ensureTopic(topic.name, { partitions: topic.partitions });
  }

  /**
   * Appends the records, one append (of one or more batches) per partition,
   * partitions concurrently; resolves with one ack per record, in input
   * order, once all are durable.
   * @throws ConcordatError PUBLISH_FAILED wrapping the log's error (retriable when it is),
   *   UNKNOWN_TOPIC_OR_PARTITION, TRANSPORT_CLOSED
   */
  async publish(records: OutgoingRecord[]): Promise<PublishAck[]> {
    const log = await this.openLog();
    if (records.length === 0) return [];
    const groups = new Map<string, { topic: string; partition: number; indexes: number[] }>();
    for (let i = 0; i < records.length; i++) {
      const record = records[i]!;
      const partition = log.partitionFor(record.topic, record.key);
      const key = `${record.topic}\u0000${partition}`;
      let group = groups.get(key);
      if (group === undefined) {
        group = { topic: record.topic, partition, indexes: [] };
        groups.set(key, group);
      }
      group.indexes.push(i);
    }
    const acks: PublishAck[] = new Array(records.length);
    const appends = [...groups.values()].map((group) => this.appendGroup(log, records, group, acks));
    const results = await Promise.allSettled(appends);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed !== undefined) throw publishFailed(failed.reason);
    return acks;
  }

  private async appendGroup(
    log: LogManager,
    records: readonly OutgoingRecord[],
    group: { topic: string; partition: number; indexes: number[] },
    acks: PublishAck[],
  ): Promise<void> {
    const batches: Buffer[] = [];
    const batchSizes: number[] = [];
    let current: RecordInput[] = [];
    let currentBytes = 0;
    const now = Date.now();
    const flush = (): void => {
      if (current.length === 0) return;
      batches.push(encodeRecordBatch(current, { compression: this.options.producer.compression, timestampMs: now }));
      batchSizes.push(current.length);
      current = [];
      currentBytes = 0;
    };
    for (const index of group.indexes) {
      const input = toRecordInput(records[index]!);
      const bytes = estimateBytes(input);
      if (currentBytes + bytes > this.options.producer.batchBytesMax) flush();
      current.push(input);
      currentBytes += bytes;
    }
    flush();
    const result = await log.append(group.topic, group.partition, batches.length === 1 ? batches[0]! : Buffer.concat(batches));
    // On a topic with a dedup window a repeated record is acknowledged where its original is (maybe another partition).
    group.indexes.forEach((index, i) => {
      const location = result.recordLocations?.[i];
      acks[index] =
        location === undefined
          ? { topic: group.topic, partition: group.partition, offset: result.baseOffset + i }
          : { topic: group.topic, partition: location.partition, offset: location.offset };
    });
  }

  /**
   * Joins `groupId` and starts delivering; resolves once the first
   * assignment is received.
   * @throws ConcordatError UNKNOWN_TOPIC_OR_PARTITION (a topic does not exist), TRANSPORT_CLOSED
   */
  async subscribe(options: SubscribeOptions): Promise<Subscription> {
    const delivery = chunkDelivery(options);
    const log = await this.openLog();
    for (const topic of options.topics) {
      if (!log.hasTopic(topic)) {
        throw new ConcordatError(`cannot subscribe to topic '${topic}': it does not exist; create it with ensureTopics first`, {
          code: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
          context: { topic },
        });
      }
    }
    const subscription = new EmbeddedSubscription(log, options, delivery, this.options, this.logger, () => this.subscriptions.delete(subscription));
    this.subscriptions.add(subscription);
    try {
      await subscription.start();
    } catch (error) {
      await subscription.close();
      throw error;
    }
    return subscription;
  }

  /** The topic's `retentionMs` from the log's topic config (-1, or no such setting, means forever). */
  async retentionMs(topic: string): Promise<number> {
    const log = await this.openLog();
    const config: { retentionMs?: number } = log.describeTopic(topic).config;
    return typeof config.retentionMs === 'number' && config.retentionMs >= 0 ? config.retentionMs : Infinity;
  }

  /** Closes every subscription, then the log when this transport opened it. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.detachLogMetrics?.();
    await Promise.allSettled([...this.subscriptions].map((subscription) => subscription.close()));
    const owned = this.ownedLog !== null;
    const log = this.log ?? (this.connecting === null ? null : await this.connecting.catch(() => null));
    if (owned && log !== null) await log.close();
  }
}

// ---------------------------------------------------------------- group member

/** Why the member stopped waiting in its heartbeat loop. */
type WakeReason = 'rebalance' | 'close' | 'tick';

/**
 * One consumer-group member: the join/sync/heartbeat cycle, and the
 * partition workers of its current assignment.
 *
 * The cycle never ends on its own while the subscription is open (a member
 * that stopped would leave the app looking healthy and consuming nothing).
 * On any failure of joining, syncing or heartbeating, the member first stops
 * its workers, as a rebalance does (handlers in flight finish, positions
 * are committed), then:
 * - the group moved on (REBALANCE_IN_PROGRESS, ILLEGAL_GENERATION,
 *   UNKNOWN_MEMBER_ID — the last with a fresh member ID): it rejoins at
 *   once, logged at info and not reported, as Kafka's clients do; the same
 *   again before an assignment counts as a failure (below);
 * - a refusal that cannot heal by itself, a configuration mistake
 *   (INVALID_SESSION_TIMEOUT, INCONSISTENT_GROUP_PROTOCOL, INVALID_GROUP_ID,
 *   GROUP_MAX_SIZE_REACHED, UNSUPPORTED_VERSION; the embedded coordinator
 *   has no authorization, so no authorization failure): before the first
 *   assignment `subscribe` rejects with it; after that it is logged at error
 *   and reported `stalled` from the first time, and the member rejoins at
 *   the capped backoff for as long as the subscription is open — as the
 *   kafkajs transport keeps replacing a crashed consumer: the app holding
 *   the subscription learns of it through `onConsumerFailure` and the error
 *   log, and a member that stopped instead could only be told apart from a
 *   healthy one by those same two channels;
 * - anything else (the coordinator not available, a group being removed,
 *   the groups limit, an unexpected throw): logged at warn, at error from
 *   CONSUMER_STALLED_FAILURES consecutive failures (then reported
 *   `stalled`), reported, and the member rejoins after a backoff.
 * Reports name the group only (no topic, partition or offset: the failure is
 * the member's, not a partition's). The backoff doubles from
 * `retryBackoffMs` up to the lower of `retryBackoffMaxMs` and 30 s; closing
 * ends it at once. `failures` counts consecutive failures and restarts
 * after a successful heartbeat. The log closed (the coordinator answering
 * COORDINATOR_NOT_AVAILABLE because it is closed) ends the member, logged at
 * warn, as it ends the workers.
 */
class EmbeddedSubscription implements Subscription {
  readonly groupId: string;
  private memberId = '';
  private generationId = -1;
  private readonly workers = new Map<string, PartitionWorker>();
  private closing = false;
  private running: Promise<void> | null = null;
  private wake: ((reason: WakeReason) => void) | null = null;
  private rebalanceHint = false;
  private unlisten: (() => void) | null = null;
  private firstAssignment: { resolve: () => void; reject: (error: unknown) => void } | null = null;
  /** Ends a backoff between membership failures when the subscription closes. */
  private readonly abort = new AbortController();
  /** Consecutive membership failures since the last successful heartbeat, for the backoff and the stalled report. */
  private failures = 0;
  /** Rejoins at once (the group moved on) since the last assignment; a second in a row counts as a failure. */
  private rejoins = 0;

  constructor(
    private readonly log: LogManager,
    private readonly options: SubscribeOptions,
    private readonly delivery: ChunkDelivery,
    private readonly settings: CompiledOptions,
    private readonly logger: Logger,
    private readonly onClosed: () => void,
  ) {
    this.groupId = options.groupId;
  }

  private get coordinator(): GroupCoordinator {
    return this.log.groups;
  }

  /** Starts the member; resolves after the first successful join and sync. */
  start(): Promise<void> {
    const first = new Promise<void>((resolve, reject) => {
      this.firstAssignment = { resolve, reject };
    });
    this.unlisten = this.coordinator.onRebalance(this.groupId, () => {
      this.rebalanceHint = true;
      this.wake?.('rebalance');
    });
    this.running = this.run();
    return first;
  }

  /** Stops the workers (in-flight handlers finish, offsets are committed), leaves the group. Idempotent. */
  async close(): Promise<void> {
    if (this.closing) {
      await this.running;
      return;
    }
    this.closing = true;
    this.abort.abort();
    this.wake?.('close');
    await this.running;
    this.onClosed();
  }

  private async run(): Promise<void> {
    while (!this.closing) {
      try {
        this.rebalanceHint = false;
        await this.joinAndSync();
        this.rejoins = 0;
        this.firstAssignment?.resolve();
        this.firstAssignment = null;
        await this.heartbeatUntilRebalance();
      } catch (error) {
        if (this.closing) break;
        // As a rebalance would: the workers finish their handlers and commit (under the generation they had) before anything else.
        await this.stopWorkers();
        const next = await this.membershipFailed(error);
        if (next === 'stop') break;
        if (next > 0) await sleep(next, this.abort.signal);
        continue;
      }
      await this.stopWorkers();
    }
    await this.stopWorkers();
    this.unlisten?.();
    await this.leave();
    this.firstAssignment?.reject(transportClosed());
  }

  /**
   * Decides what follows a failure of joining, syncing or heartbeating (the
   * workers are already stopped): 'stop' (the log is closed; or, before the
   * first assignment, a refusal that cannot heal, which fails `subscribe`),
   * 0 (rejoin at once: the group moved on), or a backoff in ms before
   * rejoining, after logging and reporting the failure.
   */
  private async membershipFailed(error: unknown): Promise<'stop' | number> {
    const code = error instanceof ConcordatError ? error.code : null;
    const { groupId } = this;
    if (code === ErrorCode.LOG_CLOSED || (code === ErrorCode.COORDINATOR_NOT_AVAILABLE && (await this.coordinatorClosed()))) {
      this.logger.warn({ groupId, err: error }, 'consumer stopped: the log is closed');
      this.firstAssignment?.reject(error);
      this.firstAssignment = null;
      return 'stop';
    }
    if (code === ErrorCode.UNKNOWN_MEMBER_ID) this.memberId = '';
    if (code !== null && REJOIN_CODES.has(code) && this.rejoins === 0) {
      this.rejoins += 1;
      this.logger.info({ groupId, err: error }, 'the group moved on; rejoining');
      return 0;
    }
    const permanent = code !== null && PERMANENT_CODES.has(code);
    if (permanent && this.firstAssignment !== null) {
      this.logger.error({ groupId, err: error }, 'consumer failed: the group coordinator refused it');
      this.firstAssignment.reject(error);
      this.firstAssignment = null;
      return 'stop';
    }
    this.failures += 1;
    const failures = this.failures;
    const stalled = permanent || failures >= CONSUMER_STALLED_FAILURES;
    const retryInMs = restartBackoffMs(this.settings.consumer, permanent ? Infinity : failures);
    const fields = { groupId, memberId: this.memberId, generationId: this.generationId, failures, stalled, retryInMs, err: error };
    if (permanent) this.logger.error(fields, 'consumer stalled: the group coordinator refuses it and it cannot heal by itself; rejoining at the capped backoff');
    else if (stalled) this.logger.error(fields, 'consumer stalled: its group membership keeps failing; rejoining after a backoff');
    else this.logger.warn(fields, 'group membership failed; rejoining after a backoff');
    reportConsumerFailure(this.options, this.logger, { groupId, failures, stalled, retryInMs, error });
    return retryInMs;
  }

  /** Whether the coordinator is closed (the log closing): it then answers every request COORDINATOR_NOT_AVAILABLE. */
  private async coordinatorClosed(): Promise<boolean> {
    try {
      await this.coordinator.fetchOffsets({ groupId: this.groupId, topics: [] });
      return false;
    } catch (error) {
      return error instanceof ConcordatError && (error.code === ErrorCode.COORDINATOR_NOT_AVAILABLE || error.code === ErrorCode.LOG_CLOSED);
    }
  }

  private async joinAndSync(): Promise<void> {
    await faultPoint('embedded.before-join');
    const consumer = this.settings.consumer;
    const metadata = encodeSubscription({ topics: this.options.topics });
    const joined = await this.coordinator.joinGroup({
      groupId: this.groupId,
      memberId: this.memberId,
      protocolType: CONSUMER_PROTOCOL_TYPE,
      protocols: consumer.assignors.map((name) => ({ name, metadata })),
      sessionTimeoutMs: consumer.sessionTimeoutMs,
      rebalanceTimeoutMs: consumer.rebalanceTimeoutMs,
      clientId: this.settings.clientId,
      clientHost: 'in-process',
    });
    this.memberId = joined.memberId;
    this.generationId = joined.generationId;
    const assignments = joined.leader === joined.memberId ? this.assign(joined.protocolName!, joined.members) : [];
    const synced = await this.coordinator.syncGroup({
      groupId: this.groupId,
      generationId: this.generationId,
      memberId: this.memberId,
      assignments,
    });
    const assigned = decodeAssignment(synced.assignment).assignedPartitions;
    this.logger.debug({ groupId: this.groupId, memberId: this.memberId, generationId: this.generationId, assigned }, 'assigned');
    this.startWorkers(assigned);
  }

  /** The leader's part: run the chosen assignor over the members' subscriptions. */
  private assign(protocolName: string, members: { memberId: string; metadata: Buffer }[]): { memberId: string; assignment: Buffer }[] {
    const assignor = ASSIGNORS[protocolName as 'range' | 'roundrobin'];
    if (assignor === undefined) throw new Error(`the group chose protocol ${protocolName}, which this member did not offer`);
    const subscribed = members.map((m) => ({ memberId: m.memberId, subscription: decodeSubscription(m.metadata) }));
    const partitionsPerTopic = new Map<string, number>();
    for (const { subscription } of subscribed) {
      for (const topic of subscription.topics) {
        const count = this.log.partitionCount(topic);
        if (count !== undefined) partitionsPerTopic.set(topic, count);
      }
    }
    const plan = assignor.assign(subscribed, partitionsPerTopic);
    return [...plan].map(([memberId, assignedPartitions]) => ({ memberId, assignment: encodeAssignment({ assignedPartitions }) }));
  }

  /** Heartbeats until the group rebalances (or this member must rejoin) or the subscription closes. */
  private async heartbeatUntilRebalance(): Promise<void> {
    for (;;) {
      const reason = this.rebalanceHint ? 'rebalance' : await this.waitForWake(this.settings.consumer.heartbeatIntervalMs);
      if (reason === 'close' || this.closing) return;
      this.rebalanceHint = false;
      await faultPoint('embedded.before-heartbeat');
      try {
        await this.coordinator.heartbeat({ groupId: this.groupId, generationId: this.generationId, memberId: this.memberId });
        // A full cycle (assignment, heartbeat) went through: a later failure is a new one.
        this.failures = 0;
      } catch (error) {
        const code = error instanceof ConcordatError ? error.code : null;
        if (code === ErrorCode.REBALANCE_IN_PROGRESS || code === ErrorCode.ILLEGAL_GENERATION) return;
        throw error;
      }
    }
  }

  private waitForWake(timeoutMs: number): Promise<WakeReason> {
    return new Promise<WakeReason>((resolve) => {
      const timer = setTimeout(() => done('tick'), timeoutMs);
      const done = (reason: WakeReason): void => {
        clearTimeout(timer);
        this.wake = null;
        resolve(reason);
      };
      this.wake = done;
    });
  }

  /** A worker found that the group moved on (its commit was refused): rejoin now. */
  requestRejoin(): void {
    this.rebalanceHint = true;
    this.wake?.('rebalance');
  }

  private startWorkers(assigned: readonly TopicPartitions[]): void {
    for (const { topic, partitions } of assigned) {
      for (const partition of partitions) {
        const worker = new PartitionWorker(this.log, this, topic, partition, this.options, this.delivery, this.settings.consumer, this.logger);
        this.workers.set(`${topic}\u0000${partition}`, worker);
        worker.start();
      }
    }
  }

  private async stopWorkers(): Promise<void> {
    const workers = [...this.workers.values()];
    this.workers.clear();
    await Promise.all(workers.map((worker) => worker.stop()));
  }

  /** Commits one partition's position under the current generation. */
  async commit(topic: string, partition: number, offset: number): Promise<void> {
    await this.coordinator.commitOffsets({
      groupId: this.groupId,
      generationId: this.generationId,
      memberId: this.memberId,
      topics: [{ topic, partitions: [{ partition, offset }] }],
    });
  }

  async committedOffset(topic: string, partition: number): Promise<number> {
    const fetched = await this.coordinator.fetchOffsets({ groupId: this.groupId, topics: [{ topic, partitions: [partition] }] });
    return fetched.topics[0]!.partitions[0]!.offset;
  }

  private async leave(): Promise<void> {
    if (this.memberId === '') return;
    try {
      await this.coordinator.leaveGroup({ groupId: this.groupId, members: [{ memberId: this.memberId }] });
    } catch (error) {
      this.logger.debug({ groupId: this.groupId, err: error }, 'leaving the group failed (the log may be closed)');
    }
    this.memberId = '';
  }
}

// ---------------------------------------------------------------- partition worker

/**
 * Delivers one assigned partition's records in offset order, one at a time
 * or in chunks of up to `batchRecordsMax` (a `batchHandler`), each chunk
 * cut from what one read returned. Reads go into one buffer per worker,
 * reused from read to read (a fresh multi-megabyte buffer per read costs
 * more than the read itself: page faults and GC); the records a read
 * returned are copied out of it once, in one piece, and deliveries are
 * views of that copy, so a handler may keep them (a kept delivery keeps
 * its read's copy alive: at most `maxBytesPerPartition`). One copy per read
 * instead of one per key, value and header: a record carries a dozen
 * CloudEvents headers.
 */
class PartitionWorker {
  private position = -1;
  private committed = -1;
  /** Where the reset policy put this worker when its group had no committed offset. */
  private firstPosition: number | undefined;
  private stopped = false;
  private readonly abort = new AbortController();
  private running: Promise<void> | null = null;
  private readonly readBuffer: Buffer;
  /** Consecutive failures of the loop at `failedAt` (the position when it failed), for the backoff and the stalled report. */
  private failures = 0;
  private failedAt = -1;

  constructor(
    private readonly log: LogManager,
    private readonly member: EmbeddedSubscription,
    private readonly topic: string,
    private readonly partition: number,
    private readonly options: SubscribeOptions,
    private readonly delivery: ChunkDelivery,
    private readonly settings: ConsumerSettings,
    private readonly logger: Logger,
  ) {
    this.readBuffer = Buffer.allocUnsafe(settings.maxBytesPerPartition);
  }

  start(): void {
    this.running = this.supervise();
  }

  /** Ends the long poll and any backoff, lets the handler in flight finish, commits. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    await this.running;
  }

  /**
   * Runs the delivery loop until the worker stops. When the loop fails
   * outside a handler (fetching the committed offset, decoding a read, a
   * commit's or the delivery's bookkeeping), the partition must not silently
   * stop being consumed: the failure is logged at error and reported, and
   * after a backoff the loop starts again from the committed offset (records
   * handled since the last commit are delivered again: at least once, nothing
   * skipped). The log closed or the partition gone stop the worker, as they
   * do on a read.
   */
  private async supervise(): Promise<void> {
    while (!this.stopped) {
      try {
        await this.run();
      } catch (error) {
        if (this.stopped) {
          this.logger.warn({ groupId: this.options.groupId, topic: this.topic, partition: this.partition, err: error }, 'partition worker failed while stopping');
          break;
        }
        if (isGone(error)) {
          this.stopped = true;
          break;
        }
        await sleep(this.failed(error), this.abort.signal);
      }
    }
    await this.commit();
  }

  /** Counts and reports a failure of the loop; returns how long to wait before restarting it, in ms. */
  private failed(error: unknown): number {
    const offset = this.position;
    this.failures = offset === this.failedAt ? this.failures + 1 : 1;
    this.failedAt = offset;
    const failures = this.failures;
    const stalled = failures >= CONSUMER_STALLED_FAILURES;
    const retryInMs = restartBackoffMs(this.settings, failures);
    const { groupId } = this.options;
    this.logger.error(
      { groupId, topic: this.topic, partition: this.partition, offset, failures, stalled, retryInMs, err: error },
      stalled
        ? 'partition stalled: its worker keeps failing at the same offset; retrying from the committed offset'
        : 'partition worker failed; restarting from the committed offset',
    );
    reportConsumerFailure(this.options, this.logger, { groupId, topic: this.topic, partition: this.partition, offset, failures, stalled, retryInMs, error });
    return retryInMs;
  }

  /** The delivery loop, from the committed offset; returns when the worker stops. */
  private async run(): Promise<void> {
    this.position = await this.startPosition();
    this.committed = this.position;
    while (!this.stopped) {
      const records = await this.readOnce();
      if (records !== null) {
        await faultPoint('embedded.before-decode');
        const { pending, end } = this.decode(records);
        if (await this.deliverAll(pending)) this.position = Math.max(this.position, end);
        await this.commit();
      }
      // A round completed: a later failure is a new one.
      this.failures = 0;
      this.failedAt = -1;
    }
  }

  /** The committed offset, or the reset policy's offset when there is none. */
  private async startPosition(): Promise<number> {
    await faultPoint('embedded.before-fetch-offset');
    const committed = await this.member.committedOffset(this.topic, this.partition);
    if (committed >= 0) return committed;
    // No committed offset: the reset policy decides, once. A worker restarted
    // after a failure before its first commit starts where the first run did,
    // not at a `latest` that has moved on meanwhile (which would skip records).
    this.firstPosition ??= this.resetPosition();
    return this.firstPosition;
  }

  private resetPosition(): number {
    const state = this.log.describePartition(this.topic, this.partition);
    return (this.options.offsetReset ?? OffsetReset.EARLIEST) === OffsetReset.LATEST ? state.highWatermark : state.logStartOffset;
  }

  /** One long-poll read; null when there is nothing (or the read failed and was dealt with). */
  private async readOnce(): Promise<Buffer | null> {
    try {
      const result = await this.log.read(this.topic, this.partition, this.position, {
        maxBytes: this.settings.maxBytesPerPartition,
        maxWaitMs: this.settings.maxWaitMs,
        signal: this.abort.signal,
        buffer: this.readBuffer,
      });
      return result.records.length > 0 ? result.records : null;
    } catch (error) {
      if (this.stopped) return null;
      if (error instanceof ConcordatError && error.code === ErrorCode.OFFSET_OUT_OF_RANGE) {
        this.resetAfter(error);
        return null;
      }
      if (isGone(error)) {
        this.stopped = true;
        return null;
      }
      this.logger.warn({ topic: this.topic, partition: this.partition, err: error }, 'read failed; retrying');
      await sleep(this.settings.retryBackoffMs, this.abort.signal);
      return null;
    }
  }

  /** The position fell out of the log's range: apply the reset policy, and say so. */
  private resetAfter(error: ConcordatError): void {
    const from = this.position;
    const to = this.resetPosition();
    this.logger.warn(
      { topic: this.topic, partition: this.partition, from, to, offsetReset: this.options.offsetReset ?? OffsetReset.EARLIEST, err: error },
      'offset out of range; reset',
    );
    this.position = to;
    this.committed = Math.min(this.committed, to - 1);
    try {
      this.settings.onOffsetReset?.({ groupId: this.options.groupId, topic: this.topic, partition: this.partition, from, to, error });
    } catch (callbackError) {
      this.logger.warn({ err: callbackError }, `onOffsetReset threw: ${describeError(callbackError)}`);
    }
  }

  /**
   * The read's records at or past the position, as deliveries (views of one
   * copy of the read), and the position after the read's last batch
   * (control batches and offsets compaction removed included).
   */
  private decode(records: Buffer): { pending: Delivery[]; end: number } {
    const owned = Buffer.from(records);
    const pending: Delivery[] = [];
    let end = this.position;
    for (const batch of decodeRecordBatches(owned)) {
      end = Math.max(end, batch.lastOffset + 1);
      if (batch.isControl) continue;
      for (const record of batch.records) {
        if (record.offset >= this.position) pending.push(toDelivery(this.topic, this.partition, record));
      }
    }
    return { pending, end };
  }

  /** Delivers the records in chunks, in order; false when stopped before the end. */
  private async deliverAll(pending: readonly Delivery[]): Promise<boolean> {
    const chunkMax = this.delivery.recordsMax;
    for (let from = 0; from < pending.length; from += chunkMax) {
      const chunk = pending.slice(from, from + chunkMax);
      if (!(await this.deliver(chunk))) return false;
      this.position = chunk[chunk.length - 1]!.offset + 1;
    }
    return !this.stopped;
  }

  /** Runs the handler on the chunk until it resolves; false if the worker stopped first (the chunk stays unhandled). */
  private async deliver(chunk: readonly Delivery[]): Promise<boolean> {
    for (let attempt = 1; ; attempt++) {
      if (this.stopped) return false;
      try {
        await this.delivery.deliver(chunk);
        return true;
      } catch (error) {
        this.reportHandlerError(error, chunk[0]!, attempt);
        await this.commit();
        await sleep(Math.min(this.settings.retryBackoffMaxMs, this.settings.retryBackoffMs * 2 ** Math.min(attempt - 1, 20)), this.abort.signal);
      }
    }
  }

  private reportHandlerError(error: unknown, delivery: Delivery, attempt: number): void {
    this.logger.debug({ topic: this.topic, partition: this.partition, offset: delivery.offset, attempt, err: error }, 'handler failed; will retry');
    try {
      this.options.onHandlerError?.(error, delivery);
    } catch (callbackError) {
      this.logger.warn({ err: callbackError }, `onHandlerError threw: ${describeError(callbackError)}`);
    }
  }

  /** Commits the position if it moved; a refusal (the group moved on) asks the member to rejoin. */
  private async commit(): Promise<void> {
    if (this.position <= this.committed) return;
    const offset = this.position;
    try {
      await this.member.commit(this.topic, this.partition, offset);
      this.committed = offset;
    } catch (error) {
      const code = error instanceof ConcordatError ? error.code : null;
      if (code === ErrorCode.ILLEGAL_GENERATION || code === ErrorCode.UNKNOWN_MEMBER_ID || code === ErrorCode.REBALANCE_IN_PROGRESS) {
        this.member.requestRejoin();
      }
      this.logger.warn({ topic: this.topic, partition: this.partition, offset, err: error }, 'offset commit failed; records may be redelivered');
    }
  }
}

// ---------------------------------------------------------------- helpers

function toRecordInput(record: OutgoingRecord): RecordInput {
  const headers = Object.entries(record.headers).map(([key, value]) => ({
    key,
    value: typeof value === 'string' ? Buffer.from(value, 'utf8') : value,
  }));
  return {
    key: record.key === null ? null : Buffer.from(record.key, 'utf8'),
    value: record.value,
    headers,
    ...(record.timestampMs === undefined ? {} : { timestampMs: record.timestampMs }),
  };
}

function estimateBytes(record: RecordInput): number {
  let bytes = RECORD_OVERHEAD_BYTES + (record.key?.length ?? 0) + (record.value?.length ?? 0);
  for (const header of record.headers ?? []) bytes += header.key.length * 3 + (header.value?.length ?? 0) + 10;
  return bytes;
}

/** Header values by key (the last of a repeated key wins; a null value becomes an empty buffer). */
function toDelivery(topic: string, partition: number, record: DecodedRecord): Delivery {
  const headers: Record<string, Buffer> = {};
  for (const header of record.headers) headers[header.key] = header.value ?? EMPTY;
  return { topic, partition, offset: record.offset, key: record.key, value: record.value, headers, timestampMs: record.timestampMs };
}

const EMPTY = Buffer.alloc(0);

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    if (signal?.aborted === true) {
      resolve();
      return;
    }
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** The log closed or the partition deleted: the worker has nothing left to consume. */
function isGone(error: unknown): boolean {
  return error instanceof ConcordatError && (error.code === ErrorCode.LOG_CLOSED || error.code === ErrorCode.UNKNOWN_TOPIC_OR_PARTITION);
}

function transportClosed(): ConcordatError {
  return new ConcordatError('the embedded transport is closed', { code: ErrorCode.TRANSPORT_CLOSED });
}

function publishFailed(cause: unknown): ConcordatError {
  const retriable = cause instanceof ConcordatError ? cause.retriable : true;
  if (cause instanceof ConcordatError && cause.code === ErrorCode.UNKNOWN_TOPIC_OR_PARTITION) return cause;
  return new ConcordatError(`publish failed: ${describeError(cause)}; some records may have been written, retry`, {
    code: ErrorCode.PUBLISH_FAILED,
    retriable,
    cause,
  });
}
