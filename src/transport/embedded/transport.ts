import { join } from 'node:path';
import {
  compileEmbeddedTransportLogOptions,
  compileEmbeddedTransportOptions,
  type CompiledEmbeddedTransportOptions,
  type EmbeddedTransportOverLogOptions,
} from '../../config/index.js';
import { ConcordatError, ErrorCode, describeError, isProgrammerError } from '../../errors.js';
import { attachLogMetrics, encodeRecordBatch, LogManager, readCheckpoint, writeCheckpoint, type LogManagerOptions, type RecordInput } from '../../log/index.js';
import { createLogger, type Logger } from '../../observability/index.js';
import type { ConsumerLag, OutgoingRecord, PublishAck, SubscribeOptions, Subscription, TopicSpec, Transport } from '../transport.js';
import { chunkDelivery } from '../delivery.js';
import { requireTopics, startSubscription } from '../subscribe.js';
import { transportClosed } from './errors.js';
import { EmbeddedSubscription } from './group-member.js';

/** Options of an embedded transport that opens (and on close, closes) its own log. */
export interface EmbeddedTransportOptions extends EmbeddedTransportOverLogOptions {
  /** Directory of the log this transport opens (and closes). */
  dataDir: string;
  /** Further options of the log it opens. */
  log?: Omit<LogManagerOptions, 'dataDir'>;
  /** Parent of the transport's logger (an app's root). @default Concordat's own */
  logger?: Logger;
}

/** Estimated bytes of a record in a batch beyond its key, value and headers. */
const RECORD_OVERHEAD_BYTES = 24;

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
 *
 * Concurrency (one event loop; calls interleave at every await): every
 * method may be called while others are pending. Overlapping `publish`
 * calls append in call order once connected (each call's appends are made
 * before its first await past `connect`), so records of one key keep the
 * order of the calls; their partitions are appended concurrently.
 * `connect` calls share one log open. `subscribe` may overlap anything; a
 * subscription's workers run beside publishes. `close` may overlap
 * anything: it marks the transport closed at once (later calls but
 * `consumerLag`, which answers [], fail with
 * TRANSPORT_CLOSED), waits for every subscription to stop (handlers in
 * flight finish, their offsets are committed), then closes the log it
 * owns, which lets appends in flight finish and fails waiting reads.
 */
export class EmbeddedTransport implements Transport {
  readonly kind = 'embedded' as const;
  private readonly options: CompiledEmbeddedTransportOptions;
  private readonly ownedLog: { dataDir: string; log: Omit<LogManagerOptions, 'dataDir'> } | null;
  private logManager: LogManager | null;
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
      this.logManager = source;
      this.ownedLog = null;
      this.options = compileEmbeddedTransportOptions(options);
    } else {
      const { dataDir, log, logger: _logger, ...rest } = source;
      this.logManager = null;
      this.ownedLog = compileEmbeddedTransportLogOptions({ dataDir, log });
      this.options = compileEmbeddedTransportOptions(rest);
    }
    this.logger = createLogger('transport.embedded', {}, source instanceof LogManager ? undefined : source.logger);
  }

  /**
   * Opens the log when this transport owns it, and adds the log to the
   * metrics of prom-client's default registry (`log/metrics.ts`) until
   * `close`. Idempotent.
   */
  async connect(): Promise<void> {
    const logManager = await this.openLog();
    this.detachLogMetrics ??= attachLogMetrics(logManager);
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
    const logManager = await this.openLog();
    const dataDir = logManager.options.dataDir;
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
    const logManager = this.logManager;
    if (this.closed || logManager === null) return [];
    return logManager.groups
      .lag(
        groupId,
        topics.filter((topic) => logManager.hasTopic(topic)),
      )
      .map(({ topic, partition, committedOffset, highWatermark, lag }) => ({ topic, partition, committedOffset, highWatermark, lag }));
  }

  /**
   * The log this transport reads and writes, once `connect` opened it (null
   * before, and after `close`): for operator tools in the same process, such
   * as the console's topic and consumer-group pages (`admin/`'s
   * `EmbeddedLogAdmin.over`), since the directory's lock keeps any other
   * process out while the app runs.
   */
  get openedLog(): LogManager | null {
    return this.closed ? null : this.logManager;
  }

  private openLog(): Promise<LogManager> {
    if (this.closed) return Promise.reject(transportClosed());
    if (this.logManager !== null) return Promise.resolve(this.logManager);
    // The log's own defaults apply, among them groups.initialRebalanceDelayMs 0: the in-process consumers of one app need
    // no wait for more members (concordat broker, serving Kafka clients, waits Kafka's 3000 ms).
    this.connecting ??= LogManager.open({ ...this.ownedLog!.log, dataDir: this.ownedLog!.dataDir }).then(
      (logManager) => {
        this.logManager = logManager;
        return logManager;
      },
      (error: unknown) => {
        this.connecting = null;
        throw error;
      },
    );
    return this.connecting;
  }

  /**
   * Creates the topics the log does not have, one after the other; an existing topic keeps its partitions and config.
   * @throws ConcordatError INVALID_TOPIC_EXCEPTION, INVALID_PARTITIONS, LIMIT_EXCEEDED (the log's topicsMax), TRANSPORT_CLOSED
   */
  async ensureTopics(topics: TopicSpec[]): Promise<void> {
    const logManager = await this.openLog();
    for (const topic of topics) await logManager.ensureTopic(topic.name, { partitions: topic.partitions });
  }

  /**
   * Appends the records, one append (of one or more batches) per partition,
   * partitions concurrently; resolves with one ack per record, in input
   * order, once all are durable.
   * @throws ConcordatError PUBLISH_FAILED wrapping the log's error (retriable unless it is final),
   *   UNKNOWN_TOPIC_OR_PARTITION, TRANSPORT_CLOSED
   */
  async publish(records: OutgoingRecord[]): Promise<PublishAck[]> {
    const logManager = await this.openLog();
    if (records.length === 0) return [];
    const groups = new Map<string, { topic: string; partition: number; indexes: number[] }>();
    for (let i = 0; i < records.length; i++) {
      const record = records[i]!;
      const partition = logManager.partitionFor(record.topic, record.key);
      const key = `${record.topic}\u0000${partition}`;
      let group = groups.get(key);
      if (group === undefined) {
        group = { topic: record.topic, partition, indexes: [] };
        groups.set(key, group);
      }
      group.indexes.push(i);
    }
    const acks = new Array<PublishAck>(records.length);
    const appends = [...groups.values()].map((group) => this.appendGroup(logManager, records, group, acks));
    const results = await Promise.allSettled(appends);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed !== undefined) throw publishFailed(failed.reason);
    return acks;
  }

  private async appendGroup(
    logManager: LogManager,
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
    const result = await logManager.append(group.topic, group.partition, batches.length === 1 ? batches[0]! : Buffer.concat(batches));
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
    const logManager = await this.openLog();
    requireTopics(options.topics, (topic) => logManager.hasTopic(topic));
    const subscription = new EmbeddedSubscription(logManager, options, delivery, this.options, this.logger, () => this.subscriptions.delete(subscription));
    return startSubscription(this.subscriptions, subscription);
  }

  /** The topic's `retentionMs` from the log's topic config (-1, or no such setting, means forever). */
  async retentionMs(topic: string): Promise<number> {
    const logManager = await this.openLog();
    const config: { retentionMs?: number } = logManager.describeTopic(topic).config;
    return typeof config.retentionMs === 'number' && config.retentionMs >= 0 ? config.retentionMs : Infinity;
  }

  /** Closes every subscription, then the log when this transport opened it. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.detachLogMetrics?.();
    await Promise.allSettled([...this.subscriptions].map((subscription) => subscription.close()));
    const owned = this.ownedLog !== null;
    const logManager = this.logManager ?? (this.connecting === null ? null : await this.connecting.catch(() => null));
    if (owned && logManager !== null) await logManager.close();
  }
}

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

/** PUBLISH_FAILED wrapping the log's error: retriable (the code's default) unless the log's error is final, or a programmer error. */
function publishFailed(cause: unknown): ConcordatError {
  if (cause instanceof ConcordatError && cause.code === ErrorCode.UNKNOWN_TOPIC_OR_PARTITION) return cause;
  const final = cause instanceof ConcordatError ? !cause.retriable : isProgrammerError(cause);
  return new ConcordatError(`publish failed: ${describeError(cause)}; some records may have been written, retry`, {
    code: ErrorCode.PUBLISH_FAILED,
    ...(final && { retriable: false }),
    cause,
  });
}
