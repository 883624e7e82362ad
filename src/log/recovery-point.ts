/**
 * Recovery points (Kafka's `recovery-point-offset-checkpoint`): for every
 * partition, the point up to which its log is known to be on disk — synced,
 * with the offset and time index entries before it flushed, and its
 * idempotent-producer state snapshotted. After a crash only what lies past
 * it is validated (segment.ts); a clean close writes points at every
 * partition's end, so the next open validates nothing.
 *
 * File `<dataDir>/recovery-point-offset-checkpoint`, a checkpoint file
 * (checkpoint-file.ts: atomically replaced, length and CRC-32C in its
 * header). Body:
 * ```
 * { "partitions": [[topic, partition, segmentBase, position, nextOffset, indexEntries,
 *                   timeIndexEntries, maxTimestamp, offsetOfMaxTimestamp, producerStateOffset,
 *                   producerSnapshot (0 | 1)], ...] }
 * ```
 * `position` is a byte of segment `segmentBase` at which the batch of offset
 * `nextOffset` starts. The idempotent-producer state as of offset
 * `producerStateOffset` (at most `nextOffset`) is in file
 * `<producerStateOffset>.snapshot` when `producerSnapshot` is 1, and was
 * empty when it is 0; the batches after it are replayed on open. The log manager writes it every
 * `recoveryCheckpointIntervalMs` and on close; a partition missing from it
 * (created since) is validated whole after a crash.
 *
 * @module
 */

import { join } from 'node:path';
import { ConcordatError, ErrorCode } from '../errors.js';
import { readCheckpoint, writeCheckpoint } from './checkpoint-file.js';
import type { SegmentCheckpoint } from './segment.js';

/** Name of the recovery-point file in the data directory (Kafka's). */
export const RECOVERY_POINT_FILE = 'recovery-point-offset-checkpoint';
const KIND = 'recovery-points';

/** One partition's recovery point: the segment it lies in (`segmentBase`) and where its producer state was snapshotted. */
export interface RecoveryPoint extends SegmentCheckpoint {
  topic: string;
  partition: number;
  segmentBase: number;
  producerStateOffset: number;
  producerSnapshot: boolean;
}

type Row = [string, number, number, number, number, number, number, number, number, number, number];

/**
 * The recovery points in `dataDir`, by {@link recoveryPointKey}; empty when the file does not exist (a new log).
 * @throws ConcordatError STORAGE_CORRUPT when the file is damaged (the log then validates every partition in full)
 */
export async function readRecoveryPoints(dataDir: string): Promise<Map<string, RecoveryPoint>> {
  const path = join(dataDir, RECOVERY_POINT_FILE);
  const body = (await readCheckpoint(path, KIND)) as { partitions?: unknown } | null;
  const points = new Map<string, RecoveryPoint>();
  if (body === null) return points;
  if (!Array.isArray(body.partitions)) {
    throw new ConcordatError(`checkpoint ${path} is corrupt: no partitions array`, { code: ErrorCode.STORAGE_CORRUPT });
  }
  for (const row of body.partitions as Row[]) {
    const point: RecoveryPoint = {
      topic: row[0],
      partition: row[1],
      segmentBase: row[2],
      position: row[3],
      nextOffset: row[4],
      indexEntries: row[5],
      timeIndexEntries: row[6],
      maxTimestamp: row[7],
      offsetOfMaxTimestamp: row[8],
      producerStateOffset: row[9],
      producerSnapshot: row[10] === 1,
    };
    points.set(recoveryPointKey(point.topic, point.partition), point);
  }
  return points;
}

/**
 * Replaces the recovery-point file with `points` (atomically: checkpoint-file.ts). Partitions not in `points` lose theirs.
 * @throws ConcordatError KAFKA_STORAGE_ERROR (retriable) when the disk is full; other write errors as the OS gave them
 */
export async function writeRecoveryPoints(dataDir: string, points: Iterable<RecoveryPoint>): Promise<void> {
  const rows: Row[] = [];
  for (const p of points) {
    rows.push([
      p.topic,
      p.partition,
      p.segmentBase,
      p.position,
      p.nextOffset,
      p.indexEntries,
      p.timeIndexEntries,
      p.maxTimestamp,
      p.offsetOfMaxTimestamp,
      p.producerStateOffset,
      p.producerSnapshot ? 1 : 0,
    ]);
  }
  await writeCheckpoint(join(dataDir, RECOVERY_POINT_FILE), KIND, { partitions: rows });
}

/** The map key of a partition's recovery point: topic and partition joined by a NUL (no topic name contains one). */
export function recoveryPointKey(topic: string, partition: number): string {
  return `${topic}\u0000${partition}`;
}
