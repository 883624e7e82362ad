/*
 * One partition's log (Kafka's UnifiedLog with its LocalLog): the segments
 * and the offsets that describe them, and what moves those offsets: the
 * append pipeline, reads, retention and DeleteRecords, recovery points and
 * the cleaner's segment swap. Over 1,000 lines, one concept: the state these
 * share (segments, offsets, the write queue, the failure and swap gates) is
 * the partition's, and the contract of each method is here. What Kafka
 * splits out of its log lives apart: opening and recovery in
 * partition-loader.ts (LogLoader), the producer-state snapshots in
 * producer-snapshots.ts (ProducerStateManager's snapshots), producer
 * sequences in producer-state.ts, transactions in transaction-index.ts, the
 * API's shapes in partition-log-types.ts.
 */

import { FlushMode, type TopicConfig } from '../config/index.js';
import { ConcordatError, ErrorCode } from '../errors.js';
import { fsyncDir } from './checkpoint-file.js';
import { plannedLocations, type DedupEntry, type DedupPlan } from './dedup-window.js';
import { logFs } from './file-system.js';
import { writeLogStartOffset } from './log-start-offset.js';
import { loadLogStartOffset, loadSegments, NOTHING_RECOVERED, type PartitionRecovery } from './partition-loader.js';
import {
  IsolationLevel,
  type AppendResult,
  type PartitionDescription,
  type PartitionLogContext,
  type ReadOptions,
  type ReadResult,
  type RetentionResult,
} from './partition-log-types.js';
import { recompressBatches } from './recompress.js';
import { ProducerSnapshots } from './producer-snapshots.js';
import { ProducerStateManager, type PendingProducerBatch, type ProducerCheck } from './producer-state.js';
import {
  assignOffsets,
  BATCH_LENGTH_OFFSET,
  decodeRecordBatches,
  LAST_OFFSET_DELTA_OFFSET,
  LOG_OVERHEAD,
  readInt64,
  validateBatchesForAppend,
  type AppendBatchesInfo,
} from './record-batch.js';
import type { RecoveryPoint } from './recovery-point.js';
import { Segment, segmentConfigOf, type SegmentEnv, type SegmentEvent } from './segment.js';
import { storageReadError, storageWriteError } from './storage-error.js';
import { encodeMarkerBatch, hasTransactionalBatch, PartitionTransactions, type TransactionMarker } from './transaction-index.js';

interface PendingAppend {
  chunk: Buffer;
  baseOffset: number;
  lastOffset: number;
  maxTimestamp: number;
  resolve: (result: AppendResult) => void;
  reject: (error: unknown) => void;
  producerBatches: PendingProducerBatch[] | null;
  dedupPlan: DedupPlan | null;
  dedupEntries: DedupEntry[] | null;
  /** Holds transactional or control batches: the partition's transactions take it when acknowledged. */
  transactional: boolean;
}

interface WriteGroup {
  appends: PendingAppend[];
  bytes: number;
  endOffset: number;
  epoch: number;
  segment: Segment;
}

interface ReadWaiter {
  wake: () => void;
}

/** A point up to which the log is on disk: `position` in `segment`, where the batch of `offset` starts. */
interface DurablePoint {
  segment: Segment;
  position: number;
  offset: number;
}

/** Read positions remembered per partition. */
const READ_HINTS_MAX = 8;
/** Most buffers in one writev (Linux's IOV_MAX). */
const WRITEV_BUFFERS_MAX = 1024;
const EMPTY = Buffer.alloc(0);

/**
 * One partition's log: an ordered list of segments (segment.ts), the last of
 * which takes appends, and the offsets that describe it:
 * ```
 * logStartOffset  first offset readers may read: the first segment's base offset, or
 *                 later within it after DeleteRecords (log-start-offset.ts)
 * highWatermark   offset after the last acknowledged batch: what readers see
 * logEndOffset    offset after the last batch written to the file
 * ```
 * With flushMode `sync` the high watermark trails the log end offset by the
 * writes awaiting their fdatasync; in the other modes they are equal.
 * Files in the partition directory besides the segments:
 * `<20-digit offset>.snapshot`, the idempotent-producer state and the
 * partition's transactions at that offset (producer-snapshots.ts), and
 * `log-start-offset` (log-start-offset.ts). Opening a partition
 * ({@link PartitionLog.open}, partition-loader.ts) validates what lies past
 * its recovery point.
 *
 * Transactions (KIP-98): transactional batches are appended like any other;
 * {@link appendMarker} appends the coordinator's COMMIT/ABORT control batch.
 * Acknowledged appends move the last stable offset (transaction-index.ts);
 * a read_committed read stops below it and lists the aborted transactions
 * in what it returns.
 *
 * Append pipeline (no lock, one writer loop per partition): `append`
 * validates the batches, checks idempotent producers' sequences and the
 * topic's dedup window, and assigns offsets synchronously, so the offset
 * order is the call order; the writer loop then takes every queued append
 * (up to a segment's room and 1024 buffers) into one positional writev and
 * hands the segment to the group-commit flusher. While that sync runs, new
 * appends queue; when it completes, the appends it covered become visible
 * (high watermark) and are acknowledged, in order, and after one turn of the
 * event loop (so that callers who append again on their acknowledgement are
 * queued too) the loop writes everything queued in one writev and syncs
 * again; a write that finds nothing syncing also waits that one turn, so
 * appends made together share it. Writing only while no sync runs, rather
 * than overlapping the next write with the current sync, lets each sync
 * cover every appender that was waiting: measured with 64 closed-loop
 * appenders, the overlapped pipeline covered about a third of them per sync.
 *
 * Failure: if a write or a sync fails (disk full, I/O error), every append
 * not yet acknowledged is rejected with KAFKA_STORAGE_ERROR (retriable), the
 * producer state and dedup IDs they registered are dropped, the active
 * segment is truncated back to the high watermark and synced, and the
 * partition takes appends again (appends made during the repair wait for
 * it): nothing acknowledged is lost and the offsets stay contiguous. If even
 * that repair fails the partition goes offline until the log is reopened.
 * A segment is rolled only when every earlier write is durable, so the
 * repair never crosses a segment.
 *
 * Durable point: where the log is known to be on disk (synced): after each
 * acknowledged group with flushMode `sync`, after each timer sync with
 * `interval`, after a roll, and, in the other modes, after the sync a
 * recovery checkpoint makes. {@link checkpoint} turns it into the partition's
 * recovery point (recovery-point.ts).
 *
 * Retention ({@link enforceRetention}): rolled segments older than
 * `retentionMs` (by their largest record timestamp) or beyond
 * `retentionBytes` are deleted, oldest first, whole, never the active one.
 * The log start offset moves past them; a read below it gets
 * OFFSET_OUT_OF_RANGE. A read racing with the deletion of its segment
 * retries and gets the same.
 *
 * DeleteRecords ({@link deleteRecordsBefore}): the log start offset moves
 * to a given offset, recorded durably first (log-start-offset.ts); segments
 * wholly below it are deleted as retention deletes them, and the records of
 * the first segment below it stay on disk, unreadable, until retention
 * deletes that segment.
 *
 * Concurrency (one event loop; calls interleave at every await): `append`,
 * `appendMarker`, `read` and `offsetForTimestamp` may overlap each other
 * and anything else, in any number; appends take their offsets in call
 * order. `checkpoint` may overlap anything: concurrent calls share the one
 * in flight. `enforceRetention` and `deleteRecordsBefore` may overlap reads, appends and
 * checkpoints, but callers run them one at a time (LogManager's maintenance chain); a second
 * concurrent call deletes only what the first left, as each takes its
 * segments before its first await. `close` and `delete` may overlap
 * anything and end it: queued appends finish first, waiting reads fail,
 * and later appends and reads fail with LOG_CLOSED. Only
 * LogManager creates, opens, closes and deletes partitions; it reaches
 * them through its own methods, which check the topic and partition.
 */
export class PartitionLog {
  private readonly segments: Segment[];
  private config: TopicConfig;
  /** Next offset to assign (appends accepted, maybe not yet written). */
  private nextOffset: number;
  private logEndOffset: number;
  private highWatermark: number;
  /** Bytes of the active segment that readers may see. */
  private activeReadableBytes: number;
  private readonly queue: PendingAppend[] = [];
  private queuedBytes = 0;
  private readonly unacked: WriteGroup[] = [];
  private draining = false;
  private syncsInFlight = 0;
  private readsInFlight = 0;
  private epoch = 0;
  /** The log start offset DeleteRecords set (0: none); the first segment's base offset when that is later. */
  private recordedStartOffset = 0;
  /** Bumped when retention removes segments, so that a read that raced with it retries. */
  private segmentsVersion = 0;
  /** Set while a failure is being repaired, or for good when the repair failed. */
  private failure: ConcordatError | null = null;
  private offline = false;
  /** The repair after a failure, while it runs. */
  private repairing: Promise<void> | null = null;
  private closed = false;
  private dirty = false;
  private readonly waiters = new Set<ReadWaiter>();
  /** Next offset → where its batch starts, from recent reads (see rememberReadEnd). */
  private readonly readHints = new Map<number, { segment: Segment; position: number }>();
  private idleWaiters: (() => void)[] = [];
  private flushTimer: NodeJS.Timeout | null = null;
  private durable: DurablePoint;
  private recoveryPoint: RecoveryPoint | null;
  private readonly producers: ProducerStateManager;
  private readonly transactions: PartitionTransactions;
  /** The `.snapshot` files of `producers` and `transactions`. */
  private readonly snapshots: ProducerSnapshots;
  private checkpointing: Promise<RecoveryPoint | null> | null = null;
  /** The roll under way (its old segment may be sealed before the new one is in `segments`). */
  private rolling: Promise<void> | null = null;
  /** Set while the log cleaner swaps segments: reads and segment deletions wait for it (see swapSegments). */
  private swapGate: Promise<void> | null = null;
  /** What {@link PartitionLog.open} validated and cut. */
  openRecovery: PartitionRecovery = NOTHING_RECOVERED;

  private constructor(
    private readonly ctx: PartitionLogContext,
    segments: Segment[],
    recoveryPoint: RecoveryPoint | null,
  ) {
    this.segments = segments;
    this.config = ctx.config;
    const active = segments[segments.length - 1]!;
    this.nextOffset = active.nextOffset;
    this.logEndOffset = active.nextOffset;
    this.highWatermark = active.nextOffset;
    this.activeReadableBytes = active.sizeBytes;
    this.durable = { segment: active, position: active.sizeBytes, offset: active.nextOffset };
    this.recoveryPoint = recoveryPoint;
    this.producers = new ProducerStateManager({
      topic: ctx.topic,
      partition: ctx.partition,
      producerIdExpirationMs: ctx.producerIdExpirationMs,
      producersPerPartitionMax: ctx.producersPerPartitionMax,
    });
    this.transactions = new PartitionTransactions(ctx.topic, ctx.partition);
    const report = (event: SegmentEvent): void => ctx.report({ topic: ctx.topic, partition: ctx.partition, ...event });
    this.snapshots = new ProducerSnapshots({ dir: ctx.dir, report }, this.producers, this.transactions);
    this.startFlushTimer();
  }

  /** Creates the partition directory with an empty first segment. */
  static async create(ctx: PartitionLogContext): Promise<PartitionLog> {
    await logFs().mkdir(ctx.dir, { recursive: true });
    const segment = await Segment.create(ctx.dir, 0, segmentConfigOf(ctx.config), segmentEnv(ctx));
    await fsyncDir(ctx.dir);
    return new PartitionLog(ctx, [segment], null);
  }

  /**
   * Opens a partition directory (creating it when missing), as Kafka's
   * UnifiedLog.apply runs LogLoader: the segments are opened and validated
   * past the recovery point and the recorded log start offset is read
   * (partition-loader.ts); then the idempotent-producer state and the
   * transactions are restored (snapshot + replay, producer-snapshots.ts).
   * An empty directory gets its first segment ({@link PartitionLog.create}).
   * @throws ConcordatError STORAGE_CORRUPT for damage it cannot repair; file errors. Nothing stays open then.
   */
  static async open(ctx: PartitionLogContext, recoveryPoint: RecoveryPoint | null): Promise<PartitionLog> {
    const loaded = await loadSegments(ctx, segmentEnv(ctx), recoveryPoint);
    if (loaded === null) return PartitionLog.create(ctx);
    const partitionLog = new PartitionLog(ctx, loaded.segments, loaded.recoveryPoint);
    partitionLog.openRecovery = loaded.recovery;
    try {
      partitionLog.recordedStartOffset = await loadLogStartOffset(ctx, partitionLog.logEndOffset);
      const read = (offset: number, maxBytes: number): Promise<Buffer> => partitionLog.readNow(offset, maxBytes, undefined);
      await partitionLog.snapshots.load(loaded.files, loaded.recoveryPoint, partitionLog.logStartOffset, partitionLog.logEndOffset, read);
    } catch (error) {
      await partitionLog.close().catch(() => {});
      throw error;
    }
    return partitionLog;
  }

  /** The topic's name. */
  get topic(): string {
    return this.ctx.topic;
  }

  /** The partition's number, 0-based. */
  get partition(): number {
    return this.ctx.partition;
  }

  /** The offsets, size and waiting reads now; also after close. Never throws. */
  describe(): PartitionDescription {
    return {
      partition: this.ctx.partition,
      logStartOffset: this.logStartOffset,
      highWatermark: this.highWatermark,
      lastStableOffset: this.transactions.lastStableOffset(this.highWatermark),
      logEndOffset: this.logEndOffset,
      sizeBytes: this.segments.reduce((sum, segment) => sum + segment.sizeBytes, 0),
      segmentCount: this.segments.length,
      readsWaiting: this.waiters.size,
    };
  }

  /** First offset still stored: the base offset of the oldest segment. */
  get logStartOffset(): number {
    return Math.max(this.segments[0]!.baseOffset, this.recordedStartOffset);
  }

  /** Idempotent producers this partition remembers. */
  get producerCount(): number {
    return this.producers.producerCount;
  }

  /** Applies a changed topic config to this partition (segments keep their files). */
  updateConfig(config: TopicConfig): void {
    this.config = config;
    for (const segment of this.segments) segment.setConfig(segmentConfigOf(config));
    this.stopFlushTimer();
    this.startFlushTimer();
  }

  // ------------------------------------------------------------------ append

  /**
   * Appends whole RecordBatch v2 batches. Validates them, recompresses them
   * when the topic's `compression` says so (recompress.ts), checks idempotent
   * producers and the dedup window, rewrites their baseOffset in `batches`
   * itself (the caller must not reuse the buffer until the promise settles)
   * and resolves after the acknowledgement the topic's flushMode defines.
   * Offsets are assigned before it returns: the offset order of overlapping
   * appends is their call order. An append made while a failed write is
   * being repaired waits for the repair.
   * @returns the offsets taken; for a repeat of an acknowledged append
   *   (`duplicate: true`) the original's, with nothing written
   * @throws ConcordatError, synchronously (not a rejected promise: the
   *   batches were refused before anything was queued): CORRUPT_MESSAGE,
   *   INVALID_RECORD, UNSUPPORTED_FOR_MESSAGE_FORMAT, UNSUPPORTED_COMPRESSION_TYPE,
   *   MESSAGE_TOO_LARGE, RECORD_LIST_TOO_LARGE, OUT_OF_ORDER_SEQUENCE_NUMBER,
   *   INVALID_PRODUCER_EPOCH, DUPLICATE_SEQUENCE_NUMBER, LIMIT_EXCEEDED (appendQueueBytesMax);
   *   as a rejection: LOG_CLOSED, KAFKA_STORAGE_ERROR (retriable: the write or
   *   sync failed; nothing of this append is kept)
   */
  append(batches: Buffer): Promise<AppendResult> {
    if (this.closed) return Promise.reject(closedError(this.ctx));
    if (this.offline) return Promise.reject(this.failure!);
    // A failed append is being repaired: this one goes once the repair is done.
    if (this.repairing !== null) return this.repairing.then(() => this.append(batches));
    let info = validateBatchesForAppend(batches, this.batchLimits());
    if (this.config.compression !== 'producer') {
      const stored = recompressBatches(batches, this.config.compression, this.ctx.decompressedBatchBytesMax);
      if (stored !== batches) info = validateBatchesForAppend(stored, this.batchLimits());
      batches = stored;
    }
    this.transactions.checkFence(batches);
    const producerCheck = this.producers.check(batches);
    if (producerCheck.kind === 'duplicate') return this.answerDuplicate(producerCheck);
    const nowMs = Date.now();
    const plan = this.ctx.dedup?.plan(batches, nowMs) ?? null;
    if (plan !== null && plan.bytes === null) return this.answerDuplicateRecords(plan);
    const bytes = plan?.bytes ?? batches;
    if (bytes !== batches) info = validateBatchesForAppend(bytes, this.batchLimits());
    this.checkQueueRoom(bytes.length);
    return this.enqueue(bytes, info, producerCheck.batches, plan, nowMs);
  }

  /**
   * Appends a transaction marker (the coordinator's COMMIT or ABORT control
   * batch for one producer) and resolves once it is acknowledged like any
   * append. From the call on, the marker's epoch fences older epochs of the
   * producer. Not subject to appendQueueBytesMax: a marker must not wait
   * behind the data it closes.
   * @throws ConcordatError LOG_CLOSED, KAFKA_STORAGE_ERROR
   */
  appendMarker(marker: TransactionMarker): Promise<AppendResult> {
    if (this.closed) return Promise.reject(closedError(this.ctx));
    if (this.offline) return Promise.reject(this.failure!);
    if (this.repairing !== null) return this.repairing.then(() => this.appendMarker(marker));
    const nowMs = Date.now();
    const bytes = encodeMarkerBatch(marker, nowMs);
    this.transactions.fence(marker.producerId, marker.producerEpoch);
    return this.enqueue(bytes, { batchCount: 1, offsetCount: 1, recordCount: 1, maxTimestamp: nowMs }, [], null, nowMs);
  }

  /** The last stable offset: the high watermark, or the first offset of the oldest open transaction. */
  get lastStableOffset(): number {
    return this.transactions.lastStableOffset(this.highWatermark);
  }

  private enqueue(
    bytes: Buffer,
    info: AppendBatchesInfo,
    idempotent: Extract<ProducerCheck, { kind: 'append' }>['batches'],
    plan: DedupPlan | null,
    nowMs: number,
  ): Promise<AppendResult> {
    const baseOffset = this.nextOffset;
    this.nextOffset = assignOffsets(bytes, baseOffset, 0);
    if (this.nextOffset - baseOffset !== info.offsetCount) throw new Error('offset assignment disagrees with validation');
    let pending!: PendingAppend;
    const promise = new Promise<AppendResult>((resolve, reject) => {
      pending = {
        chunk: bytes,
        baseOffset,
        lastOffset: this.nextOffset - 1,
        maxTimestamp: info.maxTimestamp,
        resolve,
        reject,
        producerBatches: null,
        dedupPlan: plan,
        dedupEntries: null,
        transactional: hasTransactionalBatch(bytes),
      };
    });
    if (idempotent.length > 0) pending.producerBatches = this.producers.addPending(idempotent, bytes, promise);
    if (plan !== null) pending.dedupEntries = this.ctx.dedup!.register(plan, this.ctx.partition, baseOffset, nowMs, promise);
    this.queue.push(pending);
    this.queuedBytes += bytes.length;
    void this.drain();
    return promise;
  }

  private batchLimits() {
    return {
      batchBytesMax: this.config.maxMessageBytes,
      segmentBytes: this.config.segmentBytes,
      topic: this.ctx.topic,
      partition: this.ctx.partition,
    };
  }

  private checkQueueRoom(bytes: number): void {
    if (this.queuedBytes + bytes <= this.ctx.appendQueueBytesMax || this.queuedBytes === 0) return;
    throw new ConcordatError(
      `topic '${this.ctx.topic}' partition ${this.ctx.partition} has ${this.queuedBytes} bytes of appends queued; ` +
        `one more of ${bytes} bytes would pass appendQueueBytesMax (${this.ctx.appendQueueBytesMax}); ` +
        'retry later or raise the log option appendQueueBytesMax',
      { code: ErrorCode.LIMIT_EXCEEDED, retriable: true, context: { limit: 'appendQueueBytesMax' } },
    );
  }

  /** An idempotent retry: the original's offsets, once the original is acknowledged. */
  private answerDuplicate(check: Extract<ProducerCheck, { kind: 'duplicate' }>): Promise<AppendResult> {
    const { original } = check;
    const result = (): AppendResult => ({
      baseOffset: original.firstOffset,
      lastOffset: original.lastOffset,
      logAppendTimeMs: -1,
      logStartOffset: this.logStartOffset,
      duplicate: true,
    });
    return check.acked === null ? Promise.resolve(result()) : check.acked.then(result);
  }

  /** Every record repeats one in the dedup window: their locations, once the originals are acknowledged. */
  private async answerDuplicateRecords(plan: DedupPlan): Promise<AppendResult> {
    const entries = plan.originals.map((original) => (original !== null && 'entry' in original ? original.entry : null));
    if (entries.some((entry) => entry === null)) throw new Error('a dedup plan without written records has a record that is not a repeat');
    await Promise.all([...new Set(entries.map((entry) => entry!.acked).filter((acked) => acked !== null))]);
    const recordLocations = entries.map((entry) => ({ partition: entry!.partition, offset: entry!.offset }));
    return {
      baseOffset: recordLocations[0]!.offset,
      lastOffset: recordLocations[recordLocations.length - 1]!.offset,
      logAppendTimeMs: -1,
      logStartOffset: this.logStartOffset,
      duplicate: true,
      recordLocations,
    };
  }

  private async drain(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    let failed: unknown = null;
    try {
      while (this.queue.length > 0 && this.failure === null) {
        if (this.config.flushMode === FlushMode.SYNC) {
          // Write while nothing is syncing, after one turn of the event loop: see "Append pipeline" above.
          await this.waitFor(() => this.syncsInFlight === 0);
          await new Promise<void>((resolve) => setImmediate(resolve));
          if (this.queue.length === 0 || this.failure !== null) break;
        }
        const first = this.queue[0]!;
        if (this.active.shouldRoll(first.chunk.length, first.lastOffset, first.maxTimestamp, Date.now())) {
          await this.roll(first.baseOffset);
          continue;
        }
        await this.write(this.takeGroup());
      }
    } catch (error) {
      failed = error;
    } finally {
      this.draining = false;
      this.notifyIdle();
    }
    if (failed !== null) await this.fail(failed);
  }

  private get active(): Segment {
    return this.segments[this.segments.length - 1]!;
  }

  private takeGroup(): WriteGroup {
    const segment = this.active;
    const nowMs = Date.now();
    let count = 0;
    let bytes = 0;
    while (count < this.queue.length && count < WRITEV_BUFFERS_MAX) {
      const next = this.queue[count]!;
      if (count > 0 && segment.shouldRoll(bytes + next.chunk.length, next.lastOffset, next.maxTimestamp, nowMs)) break;
      bytes += next.chunk.length;
      count += 1;
    }
    const appends = this.queue.splice(0, count);
    this.queuedBytes -= bytes;
    return { appends, bytes, endOffset: appends[appends.length - 1]!.lastOffset + 1, epoch: this.epoch, segment };
  }

  private async write(group: WriteGroup): Promise<void> {
    const segment = group.segment;
    this.unacked.push(group);
    await segment.append(
      group.appends.map((append) => append.chunk),
      group.bytes,
    );
    this.logEndOffset = group.endOffset;
    const readableBytes = segment.sizeBytes;
    // While syncs are in flight (flushMode just changed from sync) the group waits its turn behind them.
    if (this.config.flushMode !== FlushMode.SYNC && this.syncsInFlight === 0) {
      this.dirty = true;
      this.acknowledge(group, readableBytes, false);
      return;
    }
    this.syncsInFlight += 1;
    this.ctx.flusher.sync(segment).then(
      () => {
        this.syncsInFlight -= 1;
        this.acknowledge(group, readableBytes, true);
        this.notifyIdle();
      },
      (error: unknown) => {
        this.syncsInFlight -= 1;
        this.notifyIdle();
        void this.fail(error);
      },
    );
  }

  /** Makes a written group visible and resolves its appends (in order; stale epochs were already rejected). */
  private acknowledge(group: WriteGroup, readableBytes: number, synced: boolean): void {
    if (group.epoch !== this.epoch) return;
    const head = this.unacked.shift();
    if (head !== group) throw new Error('write groups were acknowledged out of order');
    this.highWatermark = group.endOffset;
    this.activeReadableBytes = readableBytes;
    if (synced) this.durable = { segment: group.segment, position: readableBytes, offset: group.endOffset };
    const logStartOffset = this.logStartOffset;
    const nowMs = Date.now();
    for (const append of group.appends) {
      if (append.producerBatches !== null) this.producers.confirm(append.producerBatches, nowMs);
      if (append.dedupEntries !== null) this.ctx.dedup!.acknowledge(append.dedupEntries);
      if (append.transactional) this.transactions.acknowledge(append.chunk);
      append.resolve(resultOf(append, logStartOffset, this.ctx.partition));
    }
    this.wakeReaders();
  }

  /** Starts a new active segment at `baseOffset` once every earlier write is durable. */
  private roll(baseOffset: number): Promise<void> {
    this.rolling = this.rollNow(baseOffset).finally(() => {
      this.rolling = null;
    });
    return this.rolling;
  }

  private async rollNow(baseOffset: number): Promise<void> {
    await this.waitFor(() => this.syncsInFlight === 0);
    if (this.failure !== null) return;
    const previous = this.active;
    await previous.seal();
    const segment = await Segment.create(this.ctx.dir, baseOffset, segmentConfigOf(this.config), segmentEnv(this.ctx));
    try {
      await fsyncDir(this.ctx.dir);
    } catch (error) {
      await segment.delete().catch(() => {});
      throw error;
    }
    this.segments.push(segment);
    this.activeReadableBytes = 0;
    this.durable = { segment, position: 0, offset: baseOffset };
    this.ctx.logger.debug({ topic: this.ctx.topic, partition: this.ctx.partition, baseOffset }, 'rolled segment');
  }

  /** Rejects everything unacknowledged, truncates back to the high watermark, and resumes (or goes offline). */
  private fail(cause: unknown): Promise<void> {
    if (this.failure !== null) return this.repairing ?? Promise.resolve();
    const error = storageError(this.ctx, cause);
    this.failure = error;
    this.epoch += 1;
    this.ctx.logger.error({ topic: this.ctx.topic, partition: this.ctx.partition, err: cause }, 'append failed; repairing');
    const rejected = [...this.unacked.flatMap((group) => group.appends), ...this.queue];
    this.unacked.length = 0;
    this.queue.length = 0;
    this.queuedBytes = 0;
    this.producers.dropPending();
    for (const append of rejected) {
      if (append.dedupEntries !== null) this.ctx.dedup!.forget(append.dedupEntries);
      append.reject(error);
    }
    this.repairing = this.repair().finally(() => {
      this.repairing = null;
    });
    return this.repairing;
  }

  private async repair(): Promise<void> {
    await this.waitFor(() => !this.draining && this.syncsInFlight === 0);
    this.readHints.clear();
    try {
      await this.active.truncateTo(this.activeReadableBytes, this.highWatermark);
      await this.active.datasync();
      this.nextOffset = this.highWatermark;
      this.logEndOffset = this.highWatermark;
      this.failure = null;
    } catch (repairError) {
      this.offline = true;
      this.failure = new ConcordatError(
        `topic '${this.ctx.topic}' partition ${this.ctx.partition} is offline: repairing a failed append failed too (${describe(repairError)}); reopen the log`,
        { code: ErrorCode.KAFKA_STORAGE_ERROR, retriable: false, cause: repairError },
      );
      this.ctx.logger.error({ topic: this.ctx.topic, partition: this.ctx.partition, err: repairError }, 'partition offline');
    }
    this.notifyIdle();
  }

  // ------------------------------------------------------------------ read

  /**
   * Whole batches from the one holding `offset`, up to `maxBytes` (at least
   * one batch), waiting up to `maxWaitMs` for `minBytes`.
   * @throws ConcordatError OFFSET_OUT_OF_RANGE (offset < logStartOffset or > logEndOffset),
   *   LOG_CLOSED, LIMIT_EXCEEDED (too many waiting reads, openFilesMax), KAFKA_STORAGE_ERROR
   *   (retriable: a file error such as EIO while reading)
   */
  async read(offset: number, options: ReadOptions): Promise<ReadResult> {
    const committed = options.isolationLevel === IsolationLevel.READ_COMMITTED;
    const minBytes = options.minBytes ?? 1;
    const deadline = Date.now() + (options.maxWaitMs ?? 0);
    for (;;) {
      if (this.closed) throw closedError(this.ctx);
      this.checkReadable(offset);
      const version = this.segmentsVersion;
      let records: Buffer = EMPTY;
      try {
        const upTo = committed ? this.lastStableOffset : this.highWatermark;
        if (offset < upTo) records = await this.readNow(offset, options.maxBytes, options.buffer);
        if (committed) records = batchesBelow(records, this.lastStableOffset);
      } catch (error) {
        // Retention removed the segment under the read: look again (the offset may now be out of range).
        if (version !== this.segmentsVersion) continue;
        throw readError(this.ctx, offset, error);
      }
      const remaining = deadline - Date.now();
      if (records.length >= minBytes || remaining <= 0 || options.signal?.aborted === true) return this.result(records, offset, committed);
      await this.waitForAppend(remaining, options.signal);
    }
  }

  private checkReadable(offset: number): void {
    if (!Number.isSafeInteger(offset)) throw new RangeError(`offset ${offset} is not a safe integer`);
    if (offset < this.logStartOffset || offset > this.logEndOffset) {
      throw new ConcordatError(
        `offset ${offset} is out of range for topic '${this.ctx.topic}' partition ${this.ctx.partition} ` +
          `(log start ${this.logStartOffset}, log end ${this.logEndOffset})`,
        {
          code: ErrorCode.OFFSET_OUT_OF_RANGE,
          context: { topic: this.ctx.topic, partition: this.ctx.partition, offset, logStartOffset: this.logStartOffset, logEndOffset: this.logEndOffset },
        },
      );
    }
  }

  private result(records: Buffer, offset: number, committed: boolean): ReadResult {
    const result: ReadResult = {
      records,
      highWatermark: this.highWatermark,
      logStartOffset: this.logStartOffset,
      lastStableOffset: this.lastStableOffset,
      logEndOffset: this.logEndOffset,
    };
    if (committed) {
      const last = lastOffsetIn(records);
      result.abortedTransactions = last === null ? [] : this.transactions.abortedBetween(offset, last);
    }
    return result;
  }

  private async readNow(offset: number, maxBytes: number, into: Buffer | undefined): Promise<Buffer> {
    while (this.swapGate !== null) await this.swapGate;
    this.readsInFlight += 1;
    try {
      for (let i = this.segmentIndexFor(offset); i < this.segments.length; i++) {
        const segment = this.segments[i]!;
        const limit = this.readLimit(segment);
        const hint = this.readHints.get(offset);
        const position = hint?.segment === segment && hint.position < limit ? hint.position : await segment.findBatchPosition(offset, limit);
        if (position === null) continue;
        const records = await segment.readBatches(position, maxBytes, limit, into);
        this.rememberReadEnd(segment, position, records);
        return records;
      }
      return EMPTY;
    } finally {
      this.readsInFlight -= 1;
      this.notifyIdle();
    }
  }

  private readLimit(segment: Segment): number {
    return segment === this.active ? this.activeReadableBytes : segment.sizeBytes;
  }

  /**
   * Remembers where the batch after `records` starts, so that a reader
   * continuing from there (a consumer catching up) skips the index lookup
   * and header scan. A few entries, for a few readers of one partition.
   */
  private rememberReadEnd(segment: Segment, position: number, records: Buffer): void {
    let pos = 0;
    let next = -1;
    while (pos + LOG_OVERHEAD <= records.length) {
      next = readInt64(records, pos) + records.readInt32BE(pos + LAST_OFFSET_DELTA_OFFSET) + 1;
      pos += LOG_OVERHEAD + records.readInt32BE(pos + BATCH_LENGTH_OFFSET);
    }
    if (next < 0) return;
    if (this.readHints.size >= READ_HINTS_MAX) this.readHints.delete(this.readHints.keys().next().value!);
    this.readHints.set(next, { segment, position: position + pos });
  }

  /** Index of the last segment whose base offset ≤ `offset`. */
  private segmentIndexFor(offset: number): number {
    let low = 0;
    let high = this.segments.length - 1;
    while (low < high) {
      const mid = (low + high + 1) >>> 1;
      if (this.segments[mid]!.baseOffset <= offset) low = mid;
      else high = mid - 1;
    }
    return low;
  }

  /**
   * The first acknowledged record whose timestamp is at or after
   * `timestampMs` (Kafka's ListOffsets by timestamp), with that timestamp;
   * null when no record is that late. Segments whose largest timestamp is
   * earlier are skipped without reading; in the segment that may hold it,
   * the time index says where to start (segment.ts).
   */
  async offsetForTimestamp(timestampMs: number): Promise<{ offset: number; timestampMs: number } | null> {
    for (;;) {
      const version = this.segmentsVersion;
      try {
        return await this.searchTimestamp(timestampMs);
      } catch (error) {
        // Retention removed a segment under the search: search again.
        if (version === this.segmentsVersion) throw error;
      }
    }
  }

  private async searchTimestamp(timestampMs: number): Promise<{ offset: number; timestampMs: number } | null> {
    while (this.swapGate !== null) await this.swapGate;
    if (this.closed) throw closedError(this.ctx);
    this.readsInFlight += 1;
    try {
      return await this.searchSegments(timestampMs);
    } finally {
      this.readsInFlight -= 1;
      this.notifyIdle();
    }
  }

  private async searchSegments(timestampMs: number): Promise<{ offset: number; timestampMs: number } | null> {
    const highWatermark = this.highWatermark;
    for (const segment of [...this.segments]) {
      if (segment.maxTimestamp < timestampMs) continue;
      const found = await segment.searchTimestamp(timestampMs, Math.max(segment.baseOffset, this.logStartOffset), this.readLimit(segment), (batch) => {
        const [decoded] = decodeRecordBatches(batch, { verifyCrc: false, decompressedBytesMax: this.ctx.decompressedBatchBytesMax });
        const record = decoded?.records.find((r) => r.timestampMs >= timestampMs && r.offset < highWatermark && r.offset >= this.logStartOffset);
        return record === undefined ? null : { offset: record.offset, timestampMs: record.timestampMs };
      });
      if (found !== null) return found;
    }
    return null;
  }

  private waitForAppend(timeoutMs: number, signal: AbortSignal | undefined): Promise<void> {
    if (this.waiters.size >= this.ctx.readWaitersMax) {
      return Promise.reject(
        new ConcordatError(
          `topic '${this.ctx.topic}' partition ${this.ctx.partition} already has ${this.waiters.size} reads waiting ` +
            `(readWaitersMax); retry later or raise the log option readWaitersMax`,
          { code: ErrorCode.LIMIT_EXCEEDED, retriable: true, context: { limit: 'readWaitersMax' } },
        ),
      );
    }
    return new Promise<void>((resolve) => {
      const waiter: ReadWaiter = {
        wake: () => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', waiter.wake);
          this.waiters.delete(waiter);
          resolve();
        },
      };
      const timer = setTimeout(waiter.wake, timeoutMs);
      signal?.addEventListener('abort', waiter.wake, { once: true });
      this.waiters.add(waiter);
    });
  }

  private wakeReaders(): void {
    for (const waiter of [...this.waiters]) waiter.wake();
  }

  // ------------------------------------------------------------------ retention

  /**
   * Deletes rolled segments past the topic's retention, oldest first, never
   * the active one (Kafka's deleteRetentionMsBreachedSegments, then
   * deleteRetentionSizeBreachedSegments): by time, a segment whose largest
   * timestamp is more than `retentionMs` before `nowMs`; by size, while the
   * partition would still hold `retentionBytes` without it.
   */
  async enforceRetention(nowMs: number): Promise<RetentionResult> {
    const count = this.closed || this.offline ? 0 : this.retentionBreaches(nowMs);
    return this.deleteOldestSegments(count, 'retention deleted segments');
  }

  /**
   * Kafka's DeleteRecords on this partition: moves the log start offset up
   * to `offset` (-1: the high watermark), durably, then deletes the
   * segments wholly below it. An offset at or below the log start offset
   * changes nothing. Not to run concurrently with itself or
   * {@link enforceRetention} (the log manager runs both as maintenance).
   * @returns the log start offset after the call (Kafka's low watermark)
   * @throws ConcordatError OFFSET_OUT_OF_RANGE (offset above the high watermark, or negative other than -1),
   *   LOG_CLOSED, KAFKA_STORAGE_ERROR (offline; or the disk is full: the start offset stays where it was)
   */
  async deleteRecordsBefore(offset: number): Promise<number> {
    if (this.closed) throw closedError(this.ctx);
    if (this.offline) throw this.failure!;
    const target = offset === -1 ? this.highWatermark : offset;
    if (!Number.isSafeInteger(target) || target < 0 || target > this.highWatermark) {
      throw new ConcordatError(
        `cannot delete records of topic '${this.ctx.topic}' partition ${this.ctx.partition} before offset ${offset}: ` +
          `it must be -1 (the high watermark) or 0..${this.highWatermark} (the high watermark)`,
        { code: ErrorCode.OFFSET_OUT_OF_RANGE, context: { topic: this.ctx.topic, partition: this.ctx.partition, offset, highWatermark: this.highWatermark } },
      );
    }
    if (target <= this.logStartOffset) return this.logStartOffset;
    await writeLogStartOffset(this.ctx.dir, target);
    this.recordedStartOffset = target;
    // Reads and timestamp searches under way look again and see the new start.
    this.segmentsVersion += 1;
    let below = 0;
    while (below < this.segments.length - 1 && this.segments[below + 1]!.baseOffset <= target) below += 1;
    await this.deleteOldestSegments(below, 'DeleteRecords deleted segments');
    if (below === 0) {
      this.producers.removeBefore(this.logStartOffset);
      this.transactions.removeBefore(this.logStartOffset);
    }
    this.ctx.logger.info(
      { topic: this.ctx.topic, partition: this.ctx.partition, logStartOffset: this.logStartOffset },
      'log start offset moved (DeleteRecords)',
    );
    return this.logStartOffset;
  }

  /** Deletes the `count` oldest segments (never the active one), with their indexes. */
  private async deleteOldestSegments(count: number, what: string): Promise<RetentionResult> {
    while (this.swapGate !== null) await this.swapGate;
    if (count === 0) return { deletedSegments: 0, deletedBytes: 0, logStartOffset: this.logStartOffset };
    const doomed = this.segments.splice(0, count);
    this.segmentsVersion += 1;
    for (const [offset, hint] of this.readHints) if (doomed.includes(hint.segment)) this.readHints.delete(offset);
    this.producers.removeBefore(this.logStartOffset);
    this.transactions.removeBefore(this.logStartOffset);
    let deletedBytes = 0;
    for (const segment of doomed) {
      deletedBytes += segment.sizeBytes;
      await segment.delete();
    }
    await fsyncDir(this.ctx.dir);
    this.ctx.logger.info(
      { topic: this.ctx.topic, partition: this.ctx.partition, segments: count, bytes: deletedBytes, logStartOffset: this.logStartOffset },
      what,
    );
    return { deletedSegments: count, deletedBytes, logStartOffset: this.logStartOffset };
  }

  /** How many of the oldest segments retention deletes now (none when the cleanup policy is `compact` alone). */
  private retentionBreaches(nowMs: number): number {
    if (this.config.cleanupPolicy === 'compact') return 0;
    const rolled = this.segments.length - 1;
    let byTime = 0;
    if (this.config.retentionMs >= 0) {
      while (byTime < rolled && nowMs - this.segments[byTime]!.largestTimestamp > this.config.retentionMs) byTime += 1;
    }
    let bySize = 0;
    if (this.config.retentionBytes >= 0) {
      let excess = this.segments.reduce((sum, segment) => sum + segment.sizeBytes, 0) - this.config.retentionBytes;
      while (bySize < rolled && excess - this.segments[bySize]!.sizeBytes >= 0) {
        excess -= this.segments[bySize]!.sizeBytes;
        bySize += 1;
      }
    }
    return Math.max(byTime, bySize);
  }

  /** Forgets idempotent producers silent for producerIdExpirationMs. */
  expireProducers(nowMs: number): void {
    this.producers.expire(nowMs);
    this.transactions.forgetFences((producerId) => this.producers.has(producerId));
  }

  // ------------------------------------------------------------------ log cleaner hooks (cleaner/)

  /**
   * What the log cleaner may rewrite now (cleaner/log-cleaner.ts): the
   * rolled segments, oldest first, before the first of these that it must
   * not touch: the active segment; the segment holding the recovery point
   * (opening validates it from a byte position the cleaner would move); any
   * segment reaching past the last stable offset (an open transaction).
   * `recordedPointBase` is the recovery point's segment in the file that
   * the log manager last wrote, when it may lag the partition's own (the
   * cleaner stops before the older of the two).
   * Also the topic config, the log start offset, and the lastOffset of each
   * idempotent producer's latest batch (kept, possibly emptied, so that a
   * replay finds every producer's last sequence). Empty when closed or offline.
   */
  cleanerView(
    recordedPointBase = Infinity,
    /** False: ignore the recovery point (to estimate the work a clean would have once the point is recorded anew). */
    recoveryPointApplies = true,
  ): {
    dir: string;
    config: TopicConfig;
    logStartOffset: number;
    segments: Segment[];
    producerLastOffsets: Set<number>;
    recoveryPointBase: number;
  } {
    const recoveryPointBase = this.recoveryPoint?.segmentBase ?? Infinity;
    const view = {
      dir: this.ctx.dir,
      config: this.config,
      logStartOffset: this.logStartOffset,
      segments: [] as Segment[],
      producerLastOffsets: new Set<number>(),
      recoveryPointBase,
    };
    if (this.closed || this.offline) return view;
    const stable = this.lastStableOffset;
    const pointBase = recoveryPointApplies ? Math.min(recoveryPointBase, recordedPointBase) : Infinity;
    for (const segment of this.segments.slice(0, -1)) {
      if (segment.baseOffset >= pointBase || segment.nextOffset > stable || !segment.isSealed) break;
      view.segments.push(segment);
    }
    view.producerLastOffsets = this.producers.lastBatchOffsets();
    return view;
  }

  /**
   * Replaces the consecutive rolled segments `old` by their cleaned copy:
   * new reads, timestamp searches and segment deletions wait; once the
   * reads under way have finished, the old segments' descriptors are
   * closed, `commit` swaps the files on disk (cleaner/swap.ts), and the
   * segment it made (base offset: the first old one's) takes their place.
   * Returns false, with nothing done, when `old` is no longer in the log as
   * given (retention or DeleteRecords removed some; the partition closed).
   * If `commit` fails the partition goes offline (the files may be half
   * swapped; reopening the log finishes the swap).
   * @throws the error of `commit`, or of opening the new segment
   */
  async swapSegments(old: readonly Segment[], commit: () => Promise<void>): Promise<boolean> {
    while (this.swapGate !== null) await this.swapGate;
    let release!: () => void;
    this.swapGate = new Promise<void>((resolve) => (release = resolve));
    try {
      await this.waitFor(() => this.readsInFlight === 0);
      const first = this.segments.indexOf(old[0]!);
      const intact = first >= 0 && first + old.length < this.segments.length && old.every((segment, i) => this.segments[first + i] === segment);
      if (!intact || this.closed || this.offline) return false;
      const nextBase = this.segments[first + old.length]!.baseOffset;
      for (const segment of old) await segment.close();
      let segment: Segment;
      try {
        await commit();
        segment = await Segment.openSealed(this.ctx.dir, old[0]!.baseOffset, segmentConfigOf(this.config), segmentEnv(this.ctx), nextBase, true);
      } catch (error) {
        this.offline = true;
        this.failure = storageError(this.ctx, error);
        throw error;
      }
      this.segments.splice(first, old.length, segment);
      this.segmentsVersion += 1;
      this.readHints.clear();
      return true;
    } finally {
      this.swapGate = null;
      release();
    }
  }

  // ------------------------------------------------------------------ recovery points

  /**
   * Makes the durable point this partition's recovery point: with a
   * flushMode other than `sync` it first syncs what was written; then it
   * flushes the active segment's indexes and, when the producer state
   * changed, snapshots it. Returns the recovery point to record (the
   * previous one when nothing moved), or null when the partition cannot
   * say (offline).
   */
  checkpoint(): Promise<RecoveryPoint | null> {
    if (this.offline) return Promise.resolve(this.recoveryPoint);
    this.checkpointing ??= this.makeCheckpoint().finally(() => {
      this.checkpointing = null;
    });
    return this.checkpointing;
  }

  private async makeCheckpoint(): Promise<RecoveryPoint | null> {
    // What readers see, and the producer state, as of one instant: acknowledge() moves them together.
    let point: DurablePoint = { segment: this.active, position: this.activeReadableBytes, offset: this.highWatermark };
    const previous = this.recoveryPoint;
    const snapshot = this.snapshots.take(point.offset, previous);
    if (this.config.flushMode !== FlushMode.SYNC && point.offset > this.durable.offset) {
      await this.ctx.flusher.sync(point.segment);
      if (point.offset > this.durable.offset) this.durable = point;
    }
    if (previous !== null && previous.nextOffset === point.offset && previous.segmentBase === point.segment.baseOffset && snapshot === null) {
      return previous;
    }
    if (!point.segment.isSealed) await point.segment.flushIndexes();
    const producerState = snapshot === null ? this.snapshots.kept(previous, point.offset) : await this.snapshots.write(snapshot, () => this.recoveryPoint);
    // Rolled during an await above (under load, while the snapshot was written): sealing synced the segment whole and the
    // roll made the new one's directory entry durable, so everything before the active segment is on disk and the point
    // moves to its start. (Giving up here instead kept an idempotent partition's point at 0 for whole runs.) No await
    // follows the choice, so the active segment cannot roll again before the point is recorded; the snapshot, taken at
    // an earlier offset, stays valid (producerStateOffset ≤ nextOffset; open replays from it).
    if (point.segment.isSealed) {
      // Sealed but the new segment not yet in place: wait for the roll (a failed roll leaves the point where it was).
      while (this.active.isSealed && this.rolling !== null) await this.rolling.catch(() => {});
      if (this.active.isSealed) return this.recoveryPoint;
      point = { segment: this.active, position: 0, offset: this.active.baseOffset };
    }
    this.recoveryPoint = {
      topic: this.ctx.topic,
      partition: this.ctx.partition,
      segmentBase: point.segment.baseOffset,
      ...point.segment.checkpointAt(point.position, point.offset),
      ...producerState,
    };
    return this.recoveryPoint;
  }

  // ------------------------------------------------------------------ lifecycle

  /**
   * Stops taking appends, finishes the queued ones, fails waiting reads with
   * LOG_CLOSED, syncs the active segment and flushes its indexes, records
   * the final recovery point (returned: the partition's end) and closes files.
   * Returns null when the partition was offline (a failed repair): the next
   * open validates it. A second call returns at once with the recovery point
   * known then, without waiting for the first to finish.
   * @throws the file error of the final sync or checkpoint (the files are closed anyway)
   */
  async close(): Promise<RecoveryPoint | null> {
    if (this.closed) return this.recoveryPoint;
    this.closed = true;
    this.stopFlushTimer();
    await this.waitFor(() => this.queue.length === 0 && !this.draining && this.syncsInFlight === 0);
    await this.repairing;
    await this.checkpointing;
    this.wakeReaders();
    await this.waitFor(() => this.readsInFlight === 0);
    try {
      if (!this.offline) {
        await this.active.syncAll();
        this.durable = { segment: this.active, position: this.activeReadableBytes, offset: this.highWatermark };
        await this.makeCheckpoint();
      }
    } finally {
      await Promise.allSettled(this.segments.map((segment) => segment.close()));
    }
    return this.offline ? null : this.recoveryPoint;
  }

  /**
   * Closes the partition without a final checkpoint (as if offline) and
   * removes its directory, every segment, index and snapshot in it.
   * Queued appends still finish first.
   */
  async delete(): Promise<void> {
    this.offline = true;
    await this.close();
    await logFs().rm(this.ctx.dir, { recursive: true, force: true });
  }

  private startFlushTimer(): void {
    if (this.config.flushMode !== FlushMode.INTERVAL) return;
    this.flushTimer = setInterval(() => {
      if (!this.dirty || this.failure !== null) return;
      this.dirty = false;
      const point: DurablePoint = { segment: this.active, position: this.activeReadableBytes, offset: this.highWatermark };
      this.ctx.flusher.sync(point.segment).then(
        () => {
          if (point.offset > this.durable.offset) this.durable = point;
        },
        (error: unknown) => void this.fail(error),
      );
    }, this.config.flushIntervalMs);
    this.flushTimer.unref();
  }

  private stopFlushTimer(): void {
    if (this.flushTimer !== null) clearInterval(this.flushTimer);
    this.flushTimer = null;
  }

  private waitFor(condition: () => boolean): Promise<void> {
    if (condition()) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const check = (): void => {
        if (condition()) resolve();
        else this.idleWaiters.push(check);
      };
      this.idleWaiters.push(check);
    });
  }

  private notifyIdle(): void {
    const waiting = this.idleWaiters;
    this.idleWaiters = [];
    for (const check of waiting) check();
  }
}

/** The whole batches of `records` whose base offset is below `limit` (the last stable offset falls on a batch start). */
function batchesBelow(records: Buffer, limit: number): Buffer {
  let end = 0;
  while (end + LOG_OVERHEAD <= records.length && readInt64(records, end) < limit) {
    end += LOG_OVERHEAD + records.readInt32BE(end + BATCH_LENGTH_OFFSET);
  }
  return end === records.length ? records : records.subarray(0, end);
}

/** The last offset of the last batch in `records`, or null when empty. */
function lastOffsetIn(records: Buffer): number | null {
  let pos = 0;
  let last: number | null = null;
  while (pos + LOG_OVERHEAD <= records.length) {
    last = readInt64(records, pos) + records.readInt32BE(pos + LAST_OFFSET_DELTA_OFFSET);
    pos += LOG_OVERHEAD + records.readInt32BE(pos + BATCH_LENGTH_OFFSET);
  }
  return last;
}

/** The answer to an acknowledged append. */
function resultOf(append: PendingAppend, logStartOffset: number, partition: number): AppendResult {
  const result: AppendResult = { baseOffset: append.baseOffset, lastOffset: append.lastOffset, logAppendTimeMs: -1, logStartOffset };
  if (append.dedupPlan !== null) result.recordLocations = plannedLocations(append.dedupPlan, partition, append.baseOffset);
  return result;
}

function segmentEnv(ctx: PartitionLogContext): SegmentEnv {
  return {
    pool: ctx.pool,
    indexCache: ctx.indexCache,
    report: (event) => ctx.report({ topic: ctx.topic, partition: ctx.partition, ...event }),
  };
}

function closedError(ctx: PartitionLogContext): ConcordatError {
  return new ConcordatError(`topic '${ctx.topic}' partition ${ctx.partition} is closed`, { code: ErrorCode.LOG_CLOSED });
}

function storageError(ctx: PartitionLogContext, cause: unknown): ConcordatError {
  return storageWriteError(`append to topic '${ctx.topic}' partition ${ctx.partition}`, 'nothing unacknowledged was kept', ctx.dir, cause, {
    topic: ctx.topic,
    partition: ctx.partition,
  });
}

function readError(ctx: PartitionLogContext, offset: number, cause: unknown): unknown {
  return storageReadError(`read of topic '${ctx.topic}' partition ${ctx.partition} at offset ${offset}`, cause, {
    topic: ctx.topic,
    partition: ctx.partition,
    offset,
  });
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
