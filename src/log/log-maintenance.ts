/**
 * The log's maintenance: retention (with idle producers and committed
 * offsets expiring), DeleteRecords and recovery-point checkpoints, run one
 * at a time, and the timers that run retention, checkpoints and the log
 * cleaner (`LogManager.cleanLogs`).
 */
import type { CompiledLogManagerOptions } from '../config/index.js';
import { ConcordatError, ErrorCode } from '../errors.js';
import type { Logger } from '../observability/index.js';
import type { GroupCoordinator } from './groups/coordinator.js';
import type { RetentionSummary } from './log-manager-types.js';
import type { PartitionLog } from './partition-log.js';
import type { RetentionResult } from './partition-log-types.js';
import { writeRecoveryPoints, type RecoveryPoint } from './recovery-point.js';
import { isDiskFull, storageWriteError } from './storage-error.js';

/** What maintenance uses of the log manager. */
export interface LogMaintenanceHost {
  readonly options: CompiledLogManagerOptions;
  readonly logger: Logger;
  /** The group coordinator (committed offsets expire with retention). */
  groups(): GroupCoordinator;
  allPartitions(): PartitionLog[];
  /** @throws ConcordatError UNKNOWN_TOPIC_OR_PARTITION */
  partitionOrThrow(name: string, partition: number): PartitionLog;
  /** @throws ConcordatError LOG_CLOSED once the log closes */
  checkOpen(): void;
  /** The log cleaner's run over the compacted topics (`LogManager.cleanLogs`), which its timer starts. */
  cleanLogs(): Promise<unknown>;
}

/** Runs the log's maintenance tasks one at a time, by hand or on its timers. */
export class LogMaintenance {
  private chain: Promise<unknown> = Promise.resolve();
  private readonly timers: NodeJS.Timeout[] = [];

  /** Works on `host`'s partitions. */
  constructor(private readonly host: LogMaintenanceHost) {}

  /** `LogManager.enforceRetention` (its doc there is the contract). */
  enforceRetention(nowMs = Date.now()): Promise<RetentionSummary> {
    return this.run(async () => {
      const summary: RetentionSummary = { deletedSegments: 0, deletedBytes: 0, expiredGroups: [] };
      for (const partitionLog of this.host.allPartitions()) {
        const result: RetentionResult = await partitionLog.enforceRetention(nowMs);
        summary.deletedSegments += result.deletedSegments;
        summary.deletedBytes += result.deletedBytes;
        partitionLog.expireProducers(nowMs);
      }
      summary.expiredGroups = await this.host.groups().expireOffsets(nowMs);
      if (summary.deletedSegments > 0) await this.checkpointNow();
      return summary;
    });
  }

  /** `LogManager.deleteRecords` (its doc there is the contract). */
  deleteRecords(topic: string, partition: number, offset: number): Promise<number> {
    return this.run(async () => {
      const partitionLog = this.host.partitionOrThrow(topic, partition);
      const segments = partitionLog.describe().segmentCount;
      const logStartOffset = await partitionLog.deleteRecordsBefore(offset);
      if (partitionLog.describe().segmentCount < segments) await this.checkpointNow();
      return logStartOffset;
    });
  }

  /** `LogManager.checkpointRecoveryPoints` (its doc there is the contract). */
  checkpointRecoveryPoints(): Promise<void> {
    return this.run(() => this.checkpointNow());
  }

  /** Checkpoints every partition's recovery point, outside the one-at-a-time order (open, and tasks already in it). @throws ConcordatError KAFKA_STORAGE_ERROR when the disk is full */
  async checkpointNow(): Promise<void> {
    const points: RecoveryPoint[] = [];
    try {
      for (const partitionLog of this.host.allPartitions()) {
        const point = await partitionLog.checkpoint();
        if (point !== null) points.push(point);
      }
      await writeRecoveryPoints(this.host.options.dataDir, points);
    } catch (error) {
      if (isDiskFull(error))
        throw storageWriteError('checkpointing recovery points', 'the previous recovery points are kept', this.host.options.dataDir, error);
      throw error;
    }
  }

  /** Starts the recovery-point, retention and cleaner timers (stopped by {@link stopTimers}). */
  startTimers(): void {
    const every = (ms: number, task: () => Promise<unknown>): void => {
      const timer = setInterval(() => {
        task().catch((error: unknown) => {
          if (error instanceof ConcordatError && error.code === ErrorCode.LOG_CLOSED) return;
          this.host.logger.error({ err: error }, 'log maintenance failed; will retry');
        });
      }, ms);
      timer.unref();
      this.timers.push(timer);
    };
    every(this.host.options.recoveryCheckpointIntervalMs, () => this.checkpointRecoveryPoints());
    every(this.host.options.retentionCheckIntervalMs, () => this.enforceRetention());
    every(this.host.options.cleanerBackoffMs, () => this.host.cleanLogs());
  }

  /** Runs maintenance tasks one at a time, never after close began. */
  run<T>(task: () => Promise<T>): Promise<T> {
    const run = async (): Promise<T> => {
      this.host.checkOpen();
      return task();
    };
    const result = this.chain.then(run, run);
    this.chain = result.catch(() => {});
    return result;
  }

  /** Stops the timers (a task in flight goes on: see {@link idle}). */
  stopTimers(): void {
    for (const timer of this.timers) clearInterval(timer);
  }

  /** Resolves when the task in flight (if any) settled. */
  idle(): Promise<unknown> {
    return this.chain.catch(() => {});
  }
}
