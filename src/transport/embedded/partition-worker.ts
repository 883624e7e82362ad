import { ConcordatError, ErrorCode, describeError } from '../../errors.js';
import type { CompiledEmbeddedConsumerOptions } from '../../config/index.js';
import { decodeRecordBatches, type DecodedRecord, type LogManager } from '../../log/index.js';
import { faultPoint, type Logger } from '../../observability/index.js';
import { CONSUMER_STALLED_FAILURES, OffsetReset, type Delivery, type SubscribeOptions } from '../transport.js';
import { reportConsumerFailure, type ChunkDelivery } from '../delivery.js';
import { KeyScheduler } from '../key-scheduler.js';
import { isGone } from './errors.js';
import { backoffMs, sleep } from '../../util/index.js';
import { restartBackoffMs } from './supervision.js';

/**
 * The group membership a partition worker was started under: it reads the
 * group's committed offset and commits its position itself, through the
 * log's group coordinator, under this member ID and generation. The member
 * starts its workers after each join and stops them (their last commit
 * included) before it joins again, so they never change during a worker's life.
 */
export interface WorkerGeneration {
  /** The member ID the group gave at the join. */
  readonly memberId: string;
  /** The generation of that join. */
  readonly generationId: number;
  /** Asks the member to rejoin the group (a commit answered that the generation moved on). */
  requestRejoin(): void;
}

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
 *
 * With `concurrency.perPartition` N > 1 for its topic the worker reads
 * ahead into a {@link KeyScheduler} instead, which runs up to N chunks of
 * records of different keys at once, and commits the scheduler's
 * committable offset (the lowest record not done) as chunks finish.
 */
export class PartitionWorker {
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
  /** What {@link commit} commits: the position, or the key scheduler's committable offset while one runs. */
  private commitOffset: () => number = () => this.position;
  /** The commit running on behalf of the key scheduler, and whether another was asked for meanwhile. */
  private committing: Promise<void> | null = null;
  private commitAgain = false;

  constructor(
    private readonly logManager: LogManager,
    private readonly generation: WorkerGeneration,
    private readonly topic: string,
    private readonly partition: number,
    private readonly options: SubscribeOptions,
    private readonly delivery: ChunkDelivery,
    private readonly settings: CompiledEmbeddedConsumerOptions,
    private readonly logger: Logger,
  ) {
    this.readBuffer = Buffer.allocUnsafe(settings.maxBytesPerPartition);
  }

  /** Starts the delivery loop in the background; call once. Failures are handled inside (see supervise); nothing is thrown. */
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
          this.logger.warn(
            { groupId: this.options.groupId, topic: this.topic, partition: this.partition, err: error },
            'partition worker failed while stopping',
          );
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
    const perPartition = this.delivery.perPartition(this.topic);
    if (perPartition > 1) return this.runKeyed(perPartition);
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

  /**
   * The delivery loop with parallel keys: reads ahead while the scheduler
   * holds fewer than {@link keyedWindowRecords} records not done, and
   * commits its committable offset whenever a chunk finishes. On the way out
   * (stopping, or a failure the supervisor restarts from the committed
   * offset) it lets the chunks in flight finish first, so that a restarted
   * loop never delivers a record that is still being handled, and commits
   * what they finished.
   */
  private async runKeyed(unitsMax: number): Promise<void> {
    this.position = await this.startPosition();
    this.committed = this.position;
    let scheduler = this.keyScheduler(unitsMax);
    this.commitOffset = () => scheduler.committable();
    const windowRecords = keyedWindowRecords(unitsMax, this.delivery.recordsMax);
    // Stopping the worker stops the scheduler at once: no new chunk starts, backoffs end, a wait for progress ends.
    const stopScheduler = (): void => void scheduler.stop();
    this.abort.signal.addEventListener('abort', stopScheduler, { once: true });
    try {
      while (!this.stopped) {
        if (scheduler.buffered >= windowRecords) {
          await scheduler.whenProgress();
          continue;
        }
        const records = await this.readOnce();
        if (records !== null) {
          await faultPoint('embedded.before-decode');
          const { pending, end } = this.decode(records);
          scheduler.add(pending, end);
          this.position = end;
        } else if (this.position >= scheduler.endOffset) {
          // An offset reset may have moved the position past what the scheduler holds.
          scheduler.advanceTo(this.position);
        } else {
          // An offset reset moved it back (the log lost its tail): start over from there once the chunks in flight finished.
          await scheduler.stop();
          await this.committing;
          scheduler = this.keyScheduler(unitsMax);
        }
        this.failures = 0;
        this.failedAt = -1;
      }
    } finally {
      this.abort.signal.removeEventListener('abort', stopScheduler);
      await scheduler.stop();
      await this.committing;
      this.position = scheduler.committable();
      this.commitOffset = () => this.position;
      await this.commit();
    }
  }

  /** A key scheduler from the position, committing as its chunks finish. */
  private keyScheduler(unitsMax: number): KeyScheduler {
    return new KeyScheduler({
      unitsMax,
      recordsMax: this.delivery.recordsMax,
      startOffset: this.position,
      deliver: (unit) => this.delivery.deliver(unit),
      onUnitFailed: (error, first, attempt) => this.reportHandlerError(error, first, attempt),
      backoffMs: (attempt) => backoffMs({ firstMs: this.settings.retryBackoffMs, maxMs: this.settings.retryBackoffMaxMs }, attempt),
      onProgress: () => this.commitSoon(),
    });
  }

  /** Commits the scheduler's committable offset now, or right after the commit running; never two at once. */
  private commitSoon(): void {
    if (this.committing !== null) {
      this.commitAgain = true;
      return;
    }
    this.committing = (async () => {
      do {
        this.commitAgain = false;
        await this.commit();
      } while (this.commitAgain && !this.stopped);
      this.committing = null;
    })();
  }

  /** The committed offset, or the reset policy's offset when there is none. */
  private async startPosition(): Promise<number> {
    await faultPoint('embedded.before-fetch-offset');
    const fetched = await this.logManager.groups.fetchOffsets({ groupId: this.options.groupId, topics: [{ topic: this.topic, partitions: [this.partition] }] });
    const committed = fetched.topics[0]!.partitions[0]!.offset;
    if (committed >= 0) return committed;
    // No committed offset: the reset policy decides, once. A worker restarted
    // after a failure before its first commit starts where the first run did,
    // not at a `latest` that has moved on meanwhile (which would skip records).
    this.firstPosition ??= this.resetPosition();
    return this.firstPosition;
  }

  private resetPosition(): number {
    const state = this.logManager.describePartition(this.topic, this.partition);
    return (this.options.offsetReset ?? OffsetReset.EARLIEST) === OffsetReset.LATEST ? state.highWatermark : state.logStartOffset;
  }

  /** One long-poll read; null when there is nothing (or the read failed and was dealt with). */
  private async readOnce(): Promise<Buffer | null> {
    try {
      const result = await this.logManager.read(this.topic, this.partition, this.position, {
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
        await sleep(backoffMs({ firstMs: this.settings.retryBackoffMs, maxMs: this.settings.retryBackoffMaxMs }, attempt), this.abort.signal);
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

  /**
   * Commits the position if it moved, under the worker's generation; a
   * refusal (ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, REBALANCE_IN_PROGRESS:
   * the group moved on) asks the member to rejoin.
   */
  private async commit(): Promise<void> {
    const offset = this.commitOffset();
    if (offset <= this.committed) return;
    try {
      const { memberId, generationId } = this.generation;
      await this.logManager.groups.commitOffsets({
        groupId: this.options.groupId,
        generationId,
        memberId,
        topics: [{ topic: this.topic, partitions: [{ partition: this.partition, offset }] }],
      });
      this.committed = offset;
    } catch (error) {
      const code = error instanceof ConcordatError ? error.code : null;
      if (code === ErrorCode.ILLEGAL_GENERATION || code === ErrorCode.UNKNOWN_MEMBER_ID || code === ErrorCode.REBALANCE_IN_PROGRESS) {
        this.generation.requestRejoin();
      }
      this.logger.warn({ topic: this.topic, partition: this.partition, offset, err: error }, 'offset commit failed; records may be redelivered');
    }
  }
}

/**
 * Records a worker with parallel keys holds before it reads more: twice what
 * its chunks in flight can take at once, at least 1,000, so that chunks
 * finishing find the next records read already. A read adds at most
 * `maxBytesPerPartition` more.
 */
function keyedWindowRecords(unitsMax: number, recordsMax: number): number {
  return Math.max(1000, 2 * unitsMax * recordsMax);
}

/** Header values by key (the last of a repeated key wins; a null value becomes an empty buffer). */
function toDelivery(topic: string, partition: number, record: DecodedRecord): Delivery {
  const headers: Record<string, Buffer> = {};
  for (const header of record.headers) headers[header.key] = header.value ?? EMPTY;
  return { topic, partition, offset: record.offset, key: record.key, value: record.value, headers, timestampMs: record.timestampMs };
}

const EMPTY = Buffer.alloc(0);
