/**
 * The log manager: the log engine's front door (see {@link LogManager}),
 * its lifecycle (open, close) and its public API with each method's
 * contract. The work is in the files beside it: opening in log-loader.ts,
 * topic changes in topic-admin.ts, retention and checkpoints in
 * log-maintenance.ts, a partition's log in partition-log.ts (opened by
 * partition-loader.ts, its producer snapshots in producer-snapshots.ts), compaction in
 * cleaner/ (its run over the compacted topics, cleanLogs, is here), the
 * API's shapes in log-manager-types.ts. One concept, over 400 lines because the
 * contracts of its ~35 public methods are here.
 */
import { join } from 'node:path';
import { compileLogManagerOptions, type CompiledLogManagerOptions, type LogManagerOptions, type TopicConfig } from '../config/index.js';
import { ConcordatError, ErrorCode } from '../errors.js';
import { createLogger, type Logger } from '../observability/index.js';
import { makeDurableDir } from './checkpoint-file.js';
import { logFs } from './file-system.js';
import { DedupWindow } from './dedup-window.js';
import { LogCleaner, type CleanResult } from './cleaner/index.js';
import { DirLock } from './dir-lock.js';
import { FilePool } from './file-pool.js';
import { GroupCommitFlusher, type FlushStats } from './flush.js';
import { GroupCoordinator } from './groups/coordinator.js';
import { TransactionCoordinator } from './transactions/coordinator.js';
import { IndexCache } from './index-cache.js';
import { LogMaintenance } from './log-maintenance.js';
import { forEachLimited, logRecovery, OPEN_CONCURRENCY, openPartitions, readRecoveryPointsForOpen, rebuildDedupWindow, removeOrphans } from './log-loader.js';
import type { AppendRecordsOptions, LogManagerDependencies, LogStats, RetentionSummary, Topic, TopicDescription, TopicSpec } from './log-manager-types.js';
import type { PartitionLog } from './partition-log.js';
import type { AppendResult, PartitionDescription, ReadOptions, ReadResult, RecoveryEvent } from './partition-log-types.js';
import { partitionForKey, RoundRobinPartitioner } from './partitioner.js';
import { ProducerIdAllocator } from './producer-ids.js';
import { encodeRecordBatch, type RecordInput } from './record-batch.js';
import { writeRecoveryPoints } from './recovery-point.js';
import { TopicAdmin } from './topic-admin.js';
import { TopicRegistry, type TopicRecord } from './topic-registry.js';
import type { TransactionMarker } from './transaction-index.js';

/** Left by phase A's close; the recovery points replace it. */
const LEGACY_CLEAN_SHUTDOWN_FILE = '.clean-shutdown';
/** Recovery events kept for {@link LogManager.recoveryReport}. */
const RECOVERY_EVENTS_MAX = 1000;

/**
 * The log engine's front door: topics of partitions on disk, appends with
 * group commit, long-poll reads, retention, idempotent producers, the
 * message-ID dedup window, and the consumer-group coordinator.
 *
 * Data directory:
 * ```
 * <dataDir>/.lock                             OS lock while open, owner's PID (dir-lock.ts)
 * <dataDir>/topics.json                       topic registry (topic-registry.ts)
 * <dataDir>/recovery-point-offset-checkpoint  recovery points (recovery-point.ts)
 * <dataDir>/producer-ids                      producer-ID blocks (producer-ids.ts)
 * <dataDir>/transactions                      Kafka transaction coordinator state (transactions/state-store.ts)
 * <dataDir>/<topic>-<partition>/              segments (segment.ts), producer snapshots (producer-snapshots.ts)
 * <dataDir>/.groups/                          committed offsets (groups/offset-store.ts)
 * ```
 * Open validates, in each partition, only what lies past its recovery
 * point; close records recovery points at every partition's end, so an
 * open after a clean close validates nothing. In between, a timer
 * checkpoints recovery points every `recoveryCheckpointIntervalMs` and
 * another enforces retention (and expires idempotent producers and
 * committed offsets) every `retentionCheckIntervalMs`; the two never overlap.
 *
 * Concurrency (one event loop, but calls interleave at every await): every
 * public method may be called while others are pending. Topic creations and
 * deletions run one at a time in call order; retention and recovery-point
 * checkpoints run one at a time, never beside a topic change's checkpoint
 * of the same file. Appends to one partition take their offsets in call
 * order (assigned synchronously, before the first await); appends to
 * different partitions, reads and offset lookups overlap freely. A read of
 * a partition whose topic is deleted meanwhile fails with LOG_CLOSED.
 * `close` may overlap anything: it waits for the topic change and the
 * maintenance in flight, lets queued appends finish, fails waiting reads,
 * and later appends, reads, topic changes and maintenance fail with
 * LOG_CLOSED (the getters and `describe*` still answer).
 *
 * Errors: operating errors are {@link ConcordatError}s whose codes each
 * method lists (Kafka's error names where Kafka has one: the broker answers
 * them as they are); a programmer error (a `maxBytes` below 1) is a
 * RangeError. Layout and recovery follow Kafka's `LogManager` and
 * `UnifiedLog` (recovery-point-offset-checkpoint, KIP-98 transactions).
 */
export class LogManager {
  private readonly topics = new Map<string, Topic>();
  private readonly nullKeyPartitioner = new RoundRobinPartitioner();
  private readonly events: RecoveryEvent[] = [];
  /** Topic creations, config changes and deletions (one at a time). */
  private readonly topicAdmin: TopicAdmin;
  /** Retention, DeleteRecords, checkpoints and their timers (one at a time). */
  private readonly maintenanceJobs: LogMaintenance;
  /** Cleans run one at a time, beside maintenance (the partition keeps them apart from retention: swapSegments). */
  private cleanerChain: Promise<unknown> = Promise.resolve();
  /** Made on the first clean of a compacted topic (its offset map is cleanerOffsetMapBytes). */
  private cleaner: LogCleaner | null = null;
  private closed = false;
  private partitionsClosed = false;
  private transactionCoordinator: TransactionCoordinator | null = null;
  /** Records and bytes appended per topic since open (duplicates not counted), for `log/metrics.ts`. */
  private readonly appended = new Map<string, { records: number; bytes: number }>();

  private constructor(
    readonly options: CompiledLogManagerOptions,
    private readonly lock: DirLock,
    private readonly registry: TopicRegistry,
    private readonly flusher: GroupCommitFlusher,
    private readonly pool: FilePool,
    private readonly indexCache: IndexCache,
    private readonly producerIds: ProducerIdAllocator,
    private readonly logger: Logger,
    private groupCoordinator: GroupCoordinator | null,
    private readonly dependencies: LogManagerDependencies,
  ) {
    const checkOpen = (): void => this.checkOpen();
    const groups = (): GroupCoordinator => this.groups;
    this.topicAdmin = new TopicAdmin({
      options,
      topics: this.topics,
      registry,
      logger,
      nullKeyPartitioner: this.nullKeyPartitioner,
      groups,
      newTopic: (record) => this.newTopic(record),
      partitionContext: (topic, partition) => this.partitionContext(topic, partition),
      checkOpen,
      topicOrThrow: (name) => this.topicOrThrow(name),
      checkpointRecoveryPoints: () => this.checkpointRecoveryPoints(),
    });
    this.maintenanceJobs = new LogMaintenance({
      options,
      logger,
      groups,
      allPartitions: () => this.allPartitions(),
      partitionOrThrow: (name, partition) => this.partitionOrThrow(name, partition),
      checkOpen,
      cleanLogs: () => this.cleanLogs(),
    });
  }

  /**
   * Opens (creating when needed) the log in `options.dataDir`.
   * @throws ConcordatError CONFIG_INVALID, LOG_DIR_LOCKED, STORAGE_CORRUPT (damage recovery cannot repair; the message says where and what to do)
   */
  static async open(options: LogManagerOptions, dependencies: LogManagerDependencies = {}): Promise<LogManager> {
    const compiled = compileLogManagerOptions(options);
    await makeDurableDir(compiled.dataDir);
    const lock = await DirLock.acquire(compiled.dataDir);
    const startedMs = performance.now();
    const logger = dependencies.logger?.child({ component: 'log', dataDir: compiled.dataDir }) ?? createLogger('log', { dataDir: compiled.dataDir });
    try {
      const registry = await TopicRegistry.open(compiled.dataDir);
      const producerIds = await ProducerIdAllocator.open(compiled.dataDir);
      const manager = new LogManager(
        compiled,
        lock,
        registry,
        new GroupCommitFlusher(),
        new FilePool(compiled.openFilesMax),
        new IndexCache(compiled.indexCacheBytesMax),
        producerIds,
        logger,
        null,
        dependencies,
      );
      await manager.load(startedMs);
      return manager;
    } catch (error) {
      // Not a clean close: the next open is told so.
      await lock.release({ clean: false });
      throw error;
    }
  }

  private async load(startedMs: number): Promise<void> {
    await removeOrphans(this.options.dataDir, this.registry, this.logger);
    const points = await readRecoveryPointsForOpen(this.options.dataDir, (event) => this.report(event));
    const records = this.registry.list();
    try {
      await forEachLimited(records, OPEN_CONCURRENCY, async (record) => {
        const topic = this.newTopic(this.withCurrentDefaults(record));
        topic.partitions = await openPartitions(topic, points, (partition) => this.partitionContext(topic, partition));
        this.topics.set(record.name, topic);
      });
      for (const topic of this.topics.values()) if (topic.dedup !== null) await rebuildDedupWindow(topic, this.options.decompressedBatchBytesMax);
      this.groupCoordinator = await GroupCoordinator.open(this.options.dataDir, this.options.groups, this, this.logger);
      this.transactionCoordinator = await this.openTransactionCoordinator();
    } catch (error) {
      await this.groupCoordinator?.close().catch(() => {});
      await Promise.allSettled(this.allPartitions().map((partitionLog) => partitionLog.close()));
      await this.pool.closeAll();
      throw error;
    }
    await logFs().rm(join(this.options.dataDir, LEGACY_CLEAN_SHUTDOWN_FILE), { force: true });
    await this.maintenanceJobs.checkpointNow();
    this.maintenanceJobs.startTimers();
    const durationMs = Math.round(performance.now() - startedMs);
    const unclean = logRecovery(this.logger, this.lock.previousOwner, this.allPartitions(), this.events.length, durationMs);
    this.logger.info({ topics: records.length, repairs: this.events.length, cleanShutdown: !unclean, durationMs }, 'log opened');
  }

  /** A registry record whose config lacks options added since it was written gets today's defaults for them. */
  private withCurrentDefaults(record: TopicRecord): TopicRecord {
    return { ...record, config: { ...this.options.topicDefaults, ...record.config } };
  }

  private newTopic(record: TopicRecord): Topic {
    const config = record.config;
    const dedup =
      config.dedupWindowMs > 0 ? new DedupWindow(record.name, config.dedupWindowMs, config.dedupWindowIdsMax, this.options.decompressedBatchBytesMax) : null;
    return { record, partitions: [], dedup };
  }

  private partitionContext(topic: Topic, partition: number) {
    const record = topic.record;
    return {
      topic: record.name,
      partition,
      dir: join(this.options.dataDir, `${record.name}-${partition}`),
      config: record.config,
      flusher: this.flusher,
      pool: this.pool,
      indexCache: this.indexCache,
      appendQueueBytesMax: this.options.appendQueueBytesMax,
      readWaitersMax: this.options.readWaitersMax,
      decompressedBatchBytesMax: this.options.decompressedBatchBytesMax,
      producerIdExpirationMs: this.options.producerIdExpirationMs,
      producersPerPartitionMax: this.options.producersPerPartitionMax,
      dedup: topic.dedup,
      logger: this.logger,
      report: (event: RecoveryEvent) => this.report(event),
    };
  }

  private report(event: RecoveryEvent): void {
    this.logger.warn(event, event.action === 'truncated' ? 'truncated a torn tail' : 'rebuilt damaged or missing state');
    if (this.events.length >= RECOVERY_EVENTS_MAX) this.events.shift();
    this.events.push(event);
  }

  /** Opens the Kafka transaction coordinator, which finishes transactions a crash left prepared by appending their markers. */
  private openTransactionCoordinator(): Promise<TransactionCoordinator> {
    const access = {
      partitionCount: (topic: string) => this.partitionCount(topic),
      appendMarker: (topic: string, partition: number, marker: TransactionMarker) => {
        this.checkOpenForTransactions();
        return this.partitionOrThrow(topic, partition).appendMarker(marker);
      },
      allocateProducerId: () => this.producerIds.allocate(),
      commitTransactionalOffsets: (groupId: string, offsets: Parameters<GroupCoordinator['commitTransactionalOffsets']>[1]) =>
        this.groups.commitTransactionalOffsets(groupId, offsets),
    };
    return TransactionCoordinator.open(this.options.dataDir, this.options.transactions, access, this.logger, this.dependencies.transactionFaults);
  }

  /** Markers are appended until the partitions close (the coordinator closes first). */
  private checkOpenForTransactions(): void {
    if (this.partitionsClosed) throw new ConcordatError('the log is closed', { code: ErrorCode.LOG_CLOSED });
  }

  /** The Kafka transaction coordinator over this log (KIP-98: transactional producers, markers). */
  get transactions(): TransactionCoordinator {
    if (this.transactionCoordinator === null) throw new Error('the log is not open');
    return this.transactionCoordinator;
  }

  /** The consumer-group coordinator over this log. */
  get groups(): GroupCoordinator {
    if (this.groupCoordinator === null) throw new Error('the log is not open');
    return this.groupCoordinator;
  }

  /** False once {@link close} began (readiness checks: `/readyz` of the broker). */
  get isOpen(): boolean {
    return !this.closed;
  }

  /** Group-commit counters (syncs made, sync requests served). */
  flushStats(): FlushStats {
    return this.flusher.stats;
  }

  /** Group commit, file-pool and index-cache use now (a snapshot; cheap). */
  stats(): LogStats {
    return {
      flush: this.flusher.stats,
      files: this.pool.stats,
      indexCache: { bytes: this.indexCache.usedBytes, segments: this.indexCache.size },
    };
  }

  /**
   * What recovery repaired since this log opened (truncated tails, rebuilt
   * indexes and producer state), oldest first, at most 1000. Damage it
   * could not repair fails the open (STORAGE_CORRUPT) instead.
   */
  recoveryReport(): RecoveryEvent[] {
    return [...this.events];
  }

  // ------------------------------------------------------------------ topics

  /**
   * Creates a topic with `spec.partitions` empty partitions.
   * @throws ConcordatError TOPIC_ALREADY_EXISTS, INVALID_TOPIC_EXCEPTION (Kafka's name rules),
   *   INVALID_PARTITIONS (outside 1..partitionsPerTopicMax), INVALID_CONFIG, LIMIT_EXCEEDED (topicsMax)
   */
  createTopic(name: string, spec: TopicSpec): Promise<void> {
    return this.topicAdmin.createTopic(name, spec);
  }

  /** Creates the topic unless it exists (an existing topic keeps its partitions and config). */
  ensureTopic(name: string, spec: TopicSpec): Promise<void> {
    return this.topicAdmin.ensureTopic(name, spec);
  }

  /**
   * Grows a topic to `partitions` partitions (Kafka's CreatePartitions):
   * the new ones start empty, the existing ones are not touched. The
   * registry write is the commit point: after a crash that follows it, open
   * creates the directories still missing.
   * @throws ConcordatError UNKNOWN_TOPIC_OR_PARTITION, INVALID_PARTITIONS (not more than today, or above
   *   partitionsPerTopicMax), LOG_CLOSED, KAFKA_STORAGE_ERROR (disk full: nothing changed)
   */
  createPartitions(name: string, partitions: number): Promise<void> {
    return this.topicAdmin.createPartitions(name, partitions);
  }

  /**
   * Replaces a topic's config (Kafka's AlterConfigs and
   * IncrementalAlterConfigs, which compute the whole new config):
   * `config` over the log's topic defaults, and `extraConfigs`. Durable
   * (registry) before it applies; partitions apply it at once — retention
   * at its next run, segment settings at the next roll, flushMode to the
   * next append. The dedup window can be resized but not switched on or off
   * after creation (its IDs would be missing, or kept for nothing). With
   * `validateOnly`, every check runs and nothing changes.
   * @throws ConcordatError UNKNOWN_TOPIC_OR_PARTITION, INVALID_CONFIG (out of range; the dedup window switched), LOG_CLOSED,
   *   KAFKA_STORAGE_ERROR (disk full: the old config stays)
   */
  alterTopicConfig(
    name: string,
    config: Partial<TopicConfig>,
    extraConfigs: Readonly<Record<string, string>> = {},
    options: { validateOnly?: boolean } = {},
  ): Promise<void> {
    return this.topicAdmin.alterTopicConfig(name, config, extraConfigs, options);
  }

  /**
   * Deletes a topic: its partitions, files and the groups' committed offsets
   * for it. Appends waiting for their sync finish first; waiting reads fail
   * with LOG_CLOSED.
   * @throws ConcordatError UNKNOWN_TOPIC_OR_PARTITION
   */
  deleteTopic(name: string): Promise<void> {
    return this.topicAdmin.deleteTopic(name);
  }

  /** Whether the topic exists now (a creation in flight counts once it resolved). */
  hasTopic(name: string): boolean {
    return this.topics.has(name);
  }

  /** Names of the topics, sorted. */
  listTopics(): string[] {
    return [...this.topics.keys()].sort();
  }

  /** Partition count of a topic, or undefined when it does not exist. */
  partitionCount(name: string): number | undefined {
    return this.topics.get(name)?.partitions.length;
  }

  /**
   * The topic's config and each partition's offsets (log start, high
   * watermark, log end, last stable) as they are now.
   * @throws ConcordatError UNKNOWN_TOPIC_OR_PARTITION
   */
  describeTopic(name: string): TopicDescription {
    const topic = this.topicOrThrow(name);
    return {
      name,
      config: { ...topic.record.config },
      extraConfigs: { ...topic.record.extraConfigs },
      partitions: topic.partitions.map((partitionLog) => partitionLog.describe()),
    };
  }

  /** Offsets of one partition (ListOffsets: earliest = logStartOffset, latest = highWatermark). */
  describePartition(name: string, partition: number): PartitionDescription {
    return this.partitionOrThrow(name, partition).describe();
  }

  /**
   * Kafka's default partitioner: `toPositive(murmur2(key)) % partitions` for
   * a key (a string is hashed as its UTF-8 bytes); null keys go round-robin.
   * @throws ConcordatError UNKNOWN_TOPIC_OR_PARTITION
   */
  partitionFor(topic: string, key: Buffer | string | null): number {
    const partitions = this.topicOrThrow(topic).partitions.length;
    if (key === null) return this.nullKeyPartitioner.partition(topic, partitions);
    return partitionForKey(typeof key === 'string' ? Buffer.from(key, 'utf8') : key, partitions);
  }

  // ------------------------------------------------------------------ data

  /**
   * Appends raw RecordBatch v2 bytes (one or more whole batches, as in a
   * Produce request). Validates magic, length and CRC-32C, checks
   * idempotent producers' epochs and sequences (producer-state.ts) and the
   * topic's dedup window (dedup-window.ts), assigns offsets by rewriting
   * baseOffset in `batches` in place (do not reuse the buffer before the
   * promise settles), and resolves after the durable acknowledgement (topic
   * config flushMode). A retried idempotent batch, or an append whose every
   * record is in the dedup window, resolves with `duplicate: true` and the
   * original's offsets, writing nothing.
   * @throws ConcordatError UNKNOWN_TOPIC_OR_PARTITION, CORRUPT_MESSAGE, INVALID_RECORD,
   *   UNSUPPORTED_FOR_MESSAGE_FORMAT, UNSUPPORTED_COMPRESSION_TYPE, MESSAGE_TOO_LARGE,
   *   RECORD_LIST_TOO_LARGE, OUT_OF_ORDER_SEQUENCE_NUMBER, INVALID_PRODUCER_EPOCH,
   *   DUPLICATE_SEQUENCE_NUMBER (a repeated idempotent batch among others in one append),
   *   LIMIT_EXCEEDED (appendQueueBytesMax, openFilesMax), KAFKA_STORAGE_ERROR, LOG_CLOSED
   */
  async append(topic: string, partition: number, batches: Buffer): Promise<AppendResult> {
    this.checkOpen();
    const bytes = batches.length;
    const result = await this.partitionOrThrow(topic, partition).append(batches);
    this.countAppend(topic, result, bytes);
    return result;
  }

  /** Encodes `records` into one batch (compressed when asked) and appends it. Errors as {@link append}. */
  async appendRecords(topic: string, partition: number, records: readonly RecordInput[], options: AppendRecordsOptions = {}): Promise<AppendResult> {
    this.checkOpen();
    const partitionLog = this.partitionOrThrow(topic, partition);
    const batch = encodeRecordBatch(records, options.compression === undefined ? {} : { compression: options.compression });
    const result = await partitionLog.append(batch);
    this.countAppend(topic, result, batch.length);
    return result;
  }

  private countAppend(topic: string, result: AppendResult, bytes: number): void {
    if (result.duplicate === true) return;
    const totals = this.appended.get(topic) ?? { records: 0, bytes: 0 };
    totals.records += result.lastOffset - result.baseOffset + 1;
    totals.bytes += bytes;
    this.appended.set(topic, totals);
  }

  /**
   * Records and bytes (RecordBatch bytes as given, headers included) appended
   * per topic since this log opened; an append that repeated an earlier one
   * (`duplicate`) counts nothing. Kept after a topic is deleted (totals only grow).
   */
  appendTotals(): ReadonlyMap<string, Readonly<{ records: number; bytes: number }>> {
    return this.appended;
  }

  /**
   * Calls `listener` with the duration in seconds of every fdatasync this
   * log makes (group commit, `flush.ts`). @returns a function that removes it
   */
  onSync(listener: (seconds: number) => void): () => void {
    return this.flusher.onSync(listener);
  }

  /**
   * Whole batches starting with the one containing `offset`, up to
   * `maxBytes` (lowered to readBytesMax; at least one whole batch when one
   * exists), waiting up to `maxWaitMs` for `minBytes` (long poll). Records
   * of the first batch may precede `offset`: skip them.
   * @throws ConcordatError OFFSET_OUT_OF_RANGE (offset < logStartOffset or > logEndOffset),
   *   UNKNOWN_TOPIC_OR_PARTITION, LIMIT_EXCEEDED (maxWaitMs > readWaitMsMax, too many waiting reads,
   *   openFilesMax), LOG_CLOSED, KAFKA_STORAGE_ERROR (retriable: a file error such as EIO while reading)
   */
  async read(topic: string, partition: number, offset: number, options: ReadOptions): Promise<ReadResult> {
    this.checkOpen();
    const partitionLog = this.partitionOrThrow(topic, partition);
    if (!Number.isInteger(options.maxBytes) || options.maxBytes < 1) throw new RangeError(`maxBytes must be an integer ≥ 1, got ${options.maxBytes}`);
    const maxWaitMs = options.maxWaitMs ?? 0;
    if (maxWaitMs > this.options.readWaitMsMax) {
      throw new ConcordatError(`maxWaitMs ${maxWaitMs} exceeds readWaitMsMax (${this.options.readWaitMsMax}); raise the log option readWaitMsMax`, {
        code: ErrorCode.LIMIT_EXCEEDED,
        context: { limit: 'readWaitMsMax' },
      });
    }
    return partitionLog.read(offset, { ...options, maxBytes: Math.min(options.maxBytes, this.options.readBytesMax), maxWaitMs });
  }

  /**
   * The first record at or after `timestampMs` (Kafka's ListOffsets with a
   * timestamp): its offset and timestamp, or null when no acknowledged
   * record is that late (ListOffsets then answers offset -1, timestamp -1).
   * Uses each segment's largest timestamp and time index (time-index.ts).
   * @throws ConcordatError UNKNOWN_TOPIC_OR_PARTITION, LOG_CLOSED
   */
  async offsetForTimestamp(topic: string, partition: number, timestampMs: number): Promise<{ offset: number; timestampMs: number } | null> {
    this.checkOpen();
    return this.partitionOrThrow(topic, partition).offsetForTimestamp(timestampMs);
  }

  /**
   * A new idempotent producer's ID and epoch (Kafka's InitProducerId without
   * a transactional ID): never handed out before, also across restarts.
   * @throws ConcordatError LOG_CLOSED, or the file error of reserving a block of IDs
   */
  async initProducerId(): Promise<{ producerId: number; producerEpoch: number }> {
    this.checkOpen();
    return this.producerIds.allocate();
  }

  // ------------------------------------------------------------------ maintenance

  /**
   * Enforces retention on every partition now (the timer does it every
   * retentionCheckIntervalMs), expires idle idempotent producers and
   * committed offsets past offsetsRetentionMs, and checkpoints recovery points when segments went.
   */
  enforceRetention(nowMs = Date.now()): Promise<RetentionSummary> {
    return this.maintenanceJobs.enforceRetention(nowMs);
  }

  /**
   * Kafka's DeleteRecords on one partition: moves its log start offset up
   * to `offset` (-1: its high watermark), durably, and deletes the segments
   * wholly below it. Reads below the new start get OFFSET_OUT_OF_RANGE and
   * ListOffsets' earliest answers it. Runs as maintenance (never alongside
   * retention or a checkpoint).
   * @returns the log start offset after the call (Kafka's low watermark)
   * @throws ConcordatError UNKNOWN_TOPIC_OR_PARTITION, OFFSET_OUT_OF_RANGE (above the high watermark),
   *   LOG_CLOSED, KAFKA_STORAGE_ERROR
   */
  deleteRecords(topic: string, partition: number, offset: number): Promise<number> {
    return this.maintenanceJobs.deleteRecords(topic, partition, offset);
  }

  /**
   * Checkpoints every partition's recovery point now (the timer does it every recoveryCheckpointIntervalMs).
   * @throws ConcordatError KAFKA_STORAGE_ERROR (retriable) when the disk is full: the previous recovery points stay in force
   */
  checkpointRecoveryPoints(): Promise<void> {
    return this.maintenanceJobs.checkpointRecoveryPoints();
  }

  /**
   * Runs the log cleaner (cleaner/log-cleaner.ts) over the partitions of
   * every topic whose cleanupPolicy compacts (or of `topic` only), one
   * partition at a time; the timer does it every cleanerBackoffMs. A
   * partition is cleaned when its dirty ratio reaches the topic's
   * minCleanableDirtyRatio, or whenever it has dirty records with `force`.
   * A failure on one partition is logged and the others are still cleaned;
   * the first failure is then thrown.
   * @returns what was done, one entry per partition cleaned
   * @throws ConcordatError LOG_CLOSED, UNKNOWN_TOPIC_OR_PARTITION (`topic` unknown), and the first partition's failure
   */
  cleanLogs(options: { nowMs?: number; force?: boolean; topic?: string } = {}): Promise<CleanResult[]> {
    const run = async (): Promise<CleanResult[]> => {
      this.checkOpen();
      const topics = options.topic === undefined ? [...this.topics.values()] : [this.topicOrThrow(options.topic)];
      const results: CleanResult[] = [];
      let failure: Error | null = null;
      const nowMs = options.nowMs ?? Date.now();
      const compacted = topics.filter((topic) => topic.record.config.cleanupPolicy.includes('compact'));
      if (compacted.length === 0) return results;
      // Made on the first compacted topic only: its offset map is cleanerOffsetMapBytes of memory.
      this.cleaner ??= new LogCleaner({
        offsetMapBytes: this.options.cleanerOffsetMapBytes,
        decompressedBatchBytesMax: this.options.decompressedBatchBytesMax,
      });
      const cleaner = this.cleaner;
      const partitionLogs: PartitionLog[] = [];
      for (const topic of compacted) {
        for (const partitionLog of topic.partitions) {
          // A partition whose cleaner point cannot be read is handed to clean(), which fails on it alone and logs it
          // below: one damaged partition must not stop the others from being cleaned.
          if (await cleaner.hasWork(partitionLog, nowMs, options.force === true).catch(() => true)) partitionLogs.push(partitionLog);
        }
      }
      // Nothing to clean: no recovery points to record either (the timer runs every cleanerBackoffMs).
      if (partitionLogs.length === 0) return results;
      // A crash after a clean reopens from the recovery points in the file: record them now, and clean only below them.
      // Only checkpointNow moves a partition's in-memory point, after open it runs only in this queue, and a point's
      // segment never moves back: so from this task's end until the clean's, the file (or a write of it under way) holds
      // these points or later ones, even while a later checkpoint, ahead in memory, is being written (compaction.test.ts).
      const recorded = await this.maintenanceJobs.run(async () => {
        await this.maintenanceJobs.checkpointNow();
        return new Map(partitionLogs.map((partitionLog) => [partitionLog, partitionLog.cleanerView().recoveryPointBase]));
      });
      for (const partitionLog of partitionLogs) {
        if (this.closed) break;
        try {
          const result = await cleaner.clean(partitionLog, nowMs, options.force === true, recorded.get(partitionLog) ?? -1);
          if (result === null) continue;
          results.push(result);
          this.logger.info({ ...result }, 'log cleaner cleaned a partition');
        } catch (error) {
          this.logger.error(
            { topic: partitionLog.topic, partition: partitionLog.partition, err: error },
            'log cleaner failed on a partition; its segments are unchanged',
          );
          failure ??= error instanceof Error ? error : new Error(String(error));
        }
      }
      if (failure !== null) throw failure;
      return results;
    };
    const result = this.cleanerChain.then(run, run);
    this.cleanerChain = result.catch(() => {});
    return result;
  }

  private allPartitions(): PartitionLog[] {
    return [...this.topics.values()].flatMap((topic) => topic.partitions);
  }

  /**
   * Closes the group coordinator and every partition (queued appends finish,
   * waiting reads fail with LOG_CLOSED), records recovery points at every
   * partition's end, and releases the directory. Idempotent.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.maintenanceJobs.stopTimers();
    this.cleaner?.stop();
    await this.cleanerChain.catch(() => {});
    await this.topicAdmin.idle();
    await this.maintenanceJobs.idle();
    await this.transactionCoordinator?.close();
    await this.groupCoordinator?.close();
    this.partitionsClosed = true;
    const failures = await this.closePartitions();
    if (failures.length > 0) this.logger.error({ err: failures[0] }, 'closing a partition failed; the next open will validate it');
    await this.pool.closeAll();
    await this.lock.release({ clean: failures.length === 0 });
    this.logger.info('log closed');
  }

  /** Closes every partition and records the recovery points of those that closed cleanly. */
  private async closePartitions(): Promise<unknown[]> {
    const partitionLogs = this.allPartitions();
    const results = await Promise.allSettled(partitionLogs.map((partitionLog) => partitionLog.close()));
    const points = results.flatMap((r) => (r.status === 'fulfilled' && r.value !== null ? [r.value] : []));
    const failures: unknown[] = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r): unknown => r.reason);
    if (partitionLogs.length > 0) {
      try {
        await writeRecoveryPoints(this.options.dataDir, points);
      } catch (error) {
        failures.push(error);
      }
    }
    return failures;
  }

  private checkOpen(): void {
    if (this.closed) throw new ConcordatError('the log is closed', { code: ErrorCode.LOG_CLOSED });
  }

  private topicOrThrow(name: string): Topic {
    const topic = this.topics.get(name);
    if (topic === undefined) {
      throw new ConcordatError(`This server does not host this topic-partition: topic '${name}' does not exist`, {
        code: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        context: { topic: name },
      });
    }
    return topic;
  }

  private partitionOrThrow(name: string, partition: number): PartitionLog {
    const partitionLog = this.topicOrThrow(name).partitions[partition];
    if (partitionLog === undefined) {
      throw new ConcordatError(`This server does not host this topic-partition: topic '${name}' has no partition ${partition}`, {
        code: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        context: { topic: name, partition },
      });
    }
    return partitionLog;
  }
}
