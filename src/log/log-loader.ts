/*
 * Opening the log (Kafka's LogManager.loadLogs): leftover partition
 * directories of deleted topics removed, recovery points read, partitions
 * opened (each validated past its recovery point by PartitionLog.open and
 * partition-loader.ts, Kafka's LogLoader), dedup windows refilled from the
 * log, and what recovery did said in the start-up log.
 */

import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ConcordatError, ErrorCode } from '../errors.js';
import type { Logger } from '../observability/index.js';
import { fsyncDir } from './checkpoint-file.js';
import { messageId } from './dedup-window.js';
import { logFs } from './file-system.js';
import { GROUPS_DIR } from './groups/offset-store.js';
import type { Topic } from './log-manager-types.js';
import { PartitionLog } from './partition-log.js';
import type { PartitionLogContext, RecoveryEvent } from './partition-log-types.js';
import { decodeRecordBatches } from './record-batch.js';
import { readRecoveryPoints, RECOVERY_POINT_FILE, recoveryPointKey, type RecoveryPoint } from './recovery-point.js';
import { segmentFileName } from './segment.js';
import { isValidTopicName } from './topic-name.js';
import { TOPIC_REGISTRY_FILE, type TopicRegistry } from './topic-registry.js';

/** Partitions opened at once when the log opens. */
export const OPEN_CONCURRENCY = 16;
/** Partitions named one by one in the start-up log after an unclean shutdown; the summary counts all. */
const RECOVERY_LOG_PARTITIONS_MAX = 100;
/** Bytes per read when rebuilding a dedup window. */
const DEDUP_REBUILD_READ_BYTES = 1024 * 1024;

/**
 * After an unclean shutdown (the lock file still named its owner, or some
 * partition had bytes past its recovery point), says at info what open
 * did: one line per partition it validated (at most
 * RECOVERY_LOG_PARTITIONS_MAX) and a summary with the time it took.
 * Returns whether the shutdown was unclean.
 */
export function logRecovery(
  logger: Logger,
  previousOwnerPid: number | null,
  partitions: readonly PartitionLog[],
  repairs: number,
  durationMs: number,
): boolean {
  const recovered = partitions.filter((partitionLog) => partitionLog.openRecovery.bytesValidated > 0);
  if (previousOwnerPid === null && recovered.length === 0) return false;
  for (const partitionLog of recovered.slice(0, RECOVERY_LOG_PARTITIONS_MAX)) logPartitionRecovery(logger, partitionLog);
  const total = { segmentsValidated: 0, bytesValidated: 0, truncatedBytes: 0 };
  for (const partitionLog of recovered) {
    total.segmentsValidated += partitionLog.openRecovery.segmentsValidated;
    total.bytesValidated += partitionLog.openRecovery.bytesValidated;
    total.truncatedBytes += partitionLog.openRecovery.truncatedBytes;
  }
  const truncatedPartitions = recovered.filter((partitionLog) => partitionLog.openRecovery.truncatedBytes > 0).length;
  logger.info(
    {
      previousOwnerPid,
      partitions: partitions.length,
      partitionsValidated: recovered.length,
      ...total,
      truncatedPartitions,
      repairs: repairs,
      durationMs,
    },
    `unclean shutdown${previousOwnerPid === null ? '' : ` of process ${previousOwnerPid}`}: validated ${plural(total.segmentsValidated, 'segment')} ` +
      `(${total.bytesValidated} bytes) past the recovery points of ${plural(recovered.length, 'partition')}, ` +
      `truncated ${total.truncatedBytes} bytes in ${plural(truncatedPartitions, 'partition')}, ${repairs} repairs; recovery took ${durationMs} ms`,
  );
  return true;
}

/** The start-up line of one partition that open validated past its recovery point. */
function logPartitionRecovery(logger: Logger, partitionLog: PartitionLog): void {
  const r = partitionLog.openRecovery;
  const logEndOffset = partitionLog.describe().logEndOffset;
  const from =
    r.recoveryPoint === null
      ? 'the first segment (no recovery point)'
      : `recovery point offset ${r.recoveryPoint.offset} (${segmentFileName(r.recoveryPoint.segmentBase, '.log')} byte ${r.recoveryPoint.position})`;
  logger.info(
    { topic: partitionLog.topic, partition: partitionLog.partition, ...r, logEndOffset },
    `topic '${partitionLog.topic}' partition ${partitionLog.partition}: validated ${plural(r.segmentsValidated, 'segment')} (${r.bytesValidated} bytes) from ${from}, ` +
      `${r.truncatedBytes > 0 ? `truncated ${r.truncatedBytes} bytes` : 'truncated nothing'}; log end offset ${logEndOffset}`,
  );
}

/**
 * The recovery points; a damaged file is not fatal — every partition is
 * then validated in full, as if the log had never been checkpointed.
 */
export async function readRecoveryPointsForOpen(dataDir: string, report: (event: RecoveryEvent) => void): Promise<Map<string, RecoveryPoint>> {
  try {
    return await readRecoveryPoints(dataDir);
  } catch (error) {
    if (!(error instanceof ConcordatError && error.code === ErrorCode.STORAGE_CORRUPT)) throw error;
    report({
      topic: '',
      partition: -1,
      file: join(dataDir, RECOVERY_POINT_FILE),
      action: 'index-rebuilt',
      detail: `${error.message}; validating every partition in full`,
    });
    return new Map();
  }
}

/** Opens the topic's partitions one after another, each validated past its recovery point; on a failure the ones opened are closed. */
export async function openPartitions(
  topic: Topic,
  points: ReadonlyMap<string, RecoveryPoint>,
  contextOf: (partition: number) => PartitionLogContext,
): Promise<PartitionLog[]> {
  const partitions: PartitionLog[] = [];
  try {
    for (let partition = 0; partition < topic.record.partitions; partition++) {
      const point = points.get(recoveryPointKey(topic.record.name, partition)) ?? null;
      partitions.push(await PartitionLog.open(contextOf(partition), point));
    }
  } catch (error) {
    await Promise.allSettled(partitions.map((partitionLog) => partitionLog.close()));
    throw error;
  }
  return partitions;
}

/**
 * Refills a topic's dedup window from the records of its last
 * dedupWindowMs (each partition read from the offset its time index gives),
 * in timestamp order, keeping the newest dedupWindowIdsMax.
 */
export async function rebuildDedupWindow(topic: Topic, decompressedBatchBytesMax: number): Promise<void> {
  const window = topic.dedup!;
  const horizon = Date.now() - topic.record.config.dedupWindowMs;
  const found: { id: string; partition: number; offset: number; timestampMs: number }[] = [];
  const keep = topic.record.config.dedupWindowIdsMax;
  for (const partitionLog of topic.partitions) {
    const start = await partitionLog.offsetForTimestamp(horizon);
    let offset = start?.offset ?? partitionLog.describe().highWatermark;
    while (offset < partitionLog.describe().highWatermark) {
      const { records } = await partitionLog.read(offset, { maxBytes: DEDUP_REBUILD_READ_BYTES });
      if (records.length === 0) break;
      for (const batch of decodeRecordBatches(records, { verifyCrc: false, decompressedBytesMax: decompressedBatchBytesMax })) {
        for (const record of batch.records) {
          const id = record.offset >= offset && record.timestampMs >= horizon ? messageId(record) : null;
          if (id !== null) found.push({ id, partition: partitionLog.partition, offset: record.offset, timestampMs: record.timestampMs });
        }
        offset = Math.max(offset, batch.lastOffset + 1);
      }
      // Bound the memory of the rebuild: keep the newest `keep` seen so far.
      if (found.length > 2 * keep) found.splice(0, found.length, ...newest(found, keep));
    }
  }
  for (const entry of newest(found, keep)) window.restore(entry.id, { partition: entry.partition, offset: entry.offset }, entry.timestampMs);
}

/**
 * Removes partition directories the registry does not list: leftovers of
 * a crash during deleteTopic. Refuses to touch anything when the registry
 * is missing but partition directories exist (a damaged data directory).
 */
export async function removeOrphans(dataDir: string, registry: TopicRegistry, logger: Logger): Promise<void> {
  const entries = await readdir(dataDir, { withFileTypes: true });
  const orphans: string[] = [];
  for (const entry of entries) {
    if (!entry.isDirectory() || entry.name === GROUPS_DIR) continue;
    const match = /^(.+)-(\d+)$/.exec(entry.name);
    if (match === null || !isValidTopicName(match[1]!)) continue;
    const record = registry.get(match[1]!);
    if (record === undefined || Number(match[2]) >= record.partitions) orphans.push(entry.name);
  }
  if (orphans.length === 0) return;
  if (!registry.existed) {
    throw new ConcordatError(
      `${join(dataDir, TOPIC_REGISTRY_FILE)} is missing but partition directories exist (${orphans.slice(0, 5).join(', ')}); ` +
        'restore the file or remove the directories',
      { code: ErrorCode.STORAGE_CORRUPT },
    );
  }
  for (const name of orphans) {
    logger.warn({ dir: name }, 'removing partition directory of a deleted topic');
    await logFs().rm(join(dataDir, name), { recursive: true, force: true });
  }
  await fsyncDir(dataDir);
}

/** `1 segment`, `2 segments`. */
function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`;
}

/** The `keep` entries with the largest timestamps, oldest first. */
function newest<T extends { timestampMs: number }>(entries: T[], keep: number): T[] {
  return [...entries].sort((a, b) => a.timestampMs - b.timestampMs).slice(-keep);
}

/** Runs `work` on each item, at most `limit` at once. */
export async function forEachLimited<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await work(items[next++]!);
  });
  await Promise.all(workers);
}
