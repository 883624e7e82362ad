/*
 * Opening one partition's directory after a clean close or a crash: Kafka's
 * LogLoader (one partition), where log-loader.ts is Kafka's
 * LogManager.loadLogs (every partition). It finishes an interrupted cleaner
 * swap, removes stray files, opens the segments (validating those past the
 * recovery point, truncating a torn tail) and reads the log start offset
 * DeleteRecords recorded. PartitionLog.open (partition-log.ts) builds the
 * partition from what it returns, then loads the producer state
 * (producer-snapshots.ts), as Kafka's UnifiedLog.apply runs LogLoader.
 */
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ConcordatError, ErrorCode } from '../errors.js';
import { logFs } from './file-system.js';
import { readLogStartOffset } from './log-start-offset.js';
import type { PartitionLogContext } from './partition-log-types.js';
import type { RecoveryPoint } from './recovery-point.js';
import { Segment, segmentConfigOf, segmentFileName, type SegmentEnv } from './segment.js';
import { readCleanerPoint } from './cleaner/cleaner-point.js';
import { recoverSwap } from './cleaner/swap.js';

/**
 * What opening a partition validated and cut, for the start-up log after an
 * unclean shutdown. All zero (and no recovery point) after a clean close.
 */
export interface PartitionRecovery {
  /** Where validation started: the recovery point (segment base offset, byte in it, offset of the batch there), or null when there was none and every segment was validated. */
  recoveryPoint: { segmentBase: number; position: number; offset: number } | null;
  /** Segments that had bytes past the recovery point, each validated batch by batch. */
  segmentsValidated: number;
  /** Bytes validated, truncated ones included. */
  bytesValidated: number;
  /** Bytes cut from the active segment's tail (a torn or unsynced write). */
  truncatedBytes: number;
}

/** The recovery of a partition that was created, or opened with nothing past its recovery point. */
export const NOTHING_RECOVERED: PartitionRecovery = { recoveryPoint: null, segmentsValidated: 0, bytesValidated: 0, truncatedBytes: 0 };

/** A partition directory's segments, opened and checked ({@link loadSegments}). */
export interface LoadedSegments {
  /** The directory's file names as listed before any segment was opened (the `.snapshot` files among them are loaded next). */
  files: string[];
  /** Every segment, oldest first; the last is the active one. */
  segments: Segment[];
  /** The recovery point validation started from; null when there was none or its segment was deleted by retention. */
  recoveryPoint: RecoveryPoint | null;
  /** What was validated and cut. */
  recovery: PartitionRecovery;
}

/**
 * Opens the segments of the partition directory `ctx.dir` (creating the
 * directory when missing). First a cleaner swap a crash interrupted is
 * finished or dropped (cleaner/swap.ts), and index files without their
 * `.log` and leftover `.tmp` files are removed. Segments before
 * `recoveryPoint` are trusted; every batch past it is validated: a bad tail
 * of the active segment is truncated (reported through the segment env), a
 * bad batch in a rolled segment is reported. Without a usable recovery
 * point everything is validated.
 * @returns the segments, or null when the directory holds none (a new partition: the caller creates its first)
 * @throws ConcordatError STORAGE_CORRUPT for damage it cannot repair (the recovery point's segment is missing; a
 *   base offset beyond 2^53); file errors. The segments opened so far are closed first.
 */
export async function loadSegments(ctx: PartitionLogContext, env: SegmentEnv, recoveryPoint: RecoveryPoint | null): Promise<LoadedSegments | null> {
  await logFs().mkdir(ctx.dir, { recursive: true });
  // A log cleaner swap cut short by a crash: finish it (committed) or drop its files (not committed). See cleaner/swap.ts.
  const swapped = await recoverSwap(ctx.dir);
  if (swapped !== null) ctx.logger.info({ topic: ctx.topic, partition: ctx.partition, ...swapped }, 'finished a cleaner swap a crash interrupted');
  const files = await readdir(ctx.dir);
  const bases = segmentBases(ctx.dir, files);
  await removeStrayFiles(ctx.dir, files, new Set(bases));
  if (bases.length === 0) return null;
  const rpIndex = recoveryPointSegment(ctx, bases, recoveryPoint);
  const point = rpIndex < 0 ? null : recoveryPoint;
  const segments: Segment[] = [];
  try {
    const compactedBelow = (await readCleanerPoint(ctx.dir))?.compactedBelow ?? 0;
    const recovery = await openSegments(ctx, env, bases, point, rpIndex, segments, compactedBelow);
    return { files, segments, recoveryPoint: point, recovery };
  } catch (error) {
    await Promise.allSettled(segments.map((segment) => segment.close()));
    throw error;
  }
}

/**
 * The log start offset DeleteRecords recorded (log-start-offset.ts), or 0
 * when none is. One past `logEndOffset` (a crash lost the tail it pointed
 * into, possible with flushMode `os` or `interval`) is lowered to
 * `logEndOffset` and reported.
 * @throws ConcordatError STORAGE_CORRUPT (a damaged file); file errors
 */
export async function loadLogStartOffset(ctx: PartitionLogContext, logEndOffset: number): Promise<number> {
  const recorded = await readLogStartOffset(ctx.dir);
  if (recorded === null) return 0;
  if (recorded > logEndOffset) {
    ctx.report({
      topic: ctx.topic,
      partition: ctx.partition,
      file: ctx.dir,
      action: 'index-rebuilt',
      detail: `the recorded log start offset ${recorded} is past the log end offset ${logEndOffset} (an unsynced tail was lost); the log starts at ${logEndOffset}`,
    });
  }
  return Math.min(recorded, logEndOffset);
}

/**
 * Opens the segments, validating those past the recovery point (in segment
 * `rpIndex`, or all when it is -1); fills `segments` as it goes so the
 * caller can close them on failure. Returns what it validated and cut.
 */
async function openSegments(
  ctx: PartitionLogContext,
  env: SegmentEnv,
  bases: readonly number[],
  point: RecoveryPoint | null,
  rpIndex: number,
  segments: Segment[],
  compactedBelow: number,
): Promise<PartitionRecovery> {
  const config = segmentConfigOf(ctx.config);
  const last = bases.length - 1;
  const recovery: PartitionRecovery = {
    recoveryPoint: point === null ? null : { segmentBase: point.segmentBase, position: point.position, offset: point.nextOffset },
    segmentsValidated: 0,
    bytesValidated: 0,
    truncatedBytes: 0,
  };
  const validated = (bytes: number): void => {
    if (bytes <= 0) return;
    recovery.segmentsValidated += 1;
    recovery.bytesValidated += bytes;
  };
  for (let i = 0; i < last; i++) {
    // Segments the log cleaner may have rewritten (cleaner/cleaner-point.ts) may have offset gaps.
    const segment = await Segment.openSealed(ctx.dir, bases[i]!, config, env, bases[i + 1]!, bases[i + 1]! <= compactedBelow);
    segments.push(segment);
    if (i > rpIndex) {
      await segment.validateFrom(0, bases[i]!);
      validated(segment.sizeBytes);
    } else if (i === rpIndex && point!.position < segment.sizeBytes) {
      await segment.validateFrom(point!.position, point!.nextOffset);
      validated(segment.sizeBytes - point!.position);
    }
  }
  const activeBytes = (await stat(join(ctx.dir, segmentFileName(bases[last]!, '.log')))).size;
  const active = await Segment.openActive(ctx.dir, bases[last]!, config, env, rpIndex === last ? point : null);
  segments.push(active);
  validated(rpIndex === last ? activeBytes - point!.position : activeBytes);
  recovery.truncatedBytes = activeBytes - active.sizeBytes;
  return recovery;
}

/**
 * Index of the segment holding the recovery point, or -1 when everything is
 * to be validated (no point, or its segment was deleted by retention).
 * @throws ConcordatError STORAGE_CORRUPT when the point's segment is missing but older ones exist
 */
function recoveryPointSegment(ctx: PartitionLogContext, bases: readonly number[], point: RecoveryPoint | null): number {
  if (point === null) return -1;
  const index = bases.indexOf(point.segmentBase);
  if (index >= 0) return index;
  if (point.segmentBase < bases[0]!) return -1;
  throw new ConcordatError(
    `topic '${ctx.topic}' partition ${ctx.partition}: segment ${String(point.segmentBase).padStart(20, '0')}.log, which holds the recovery point ` +
      `(offset ${point.nextOffset}), is missing from ${ctx.dir}: acknowledged records are gone; restore the partition from a backup`,
    { code: ErrorCode.STORAGE_CORRUPT, context: { topic: ctx.topic, partition: ctx.partition } },
  );
}

function segmentBases(dir: string, names: readonly string[]): number[] {
  const bases: number[] = [];
  for (const name of names) {
    const match = /^(\d{20})\.log$/.exec(name);
    if (match === null) continue;
    const base = Number(match[1]);
    if (!Number.isSafeInteger(base)) {
      throw new ConcordatError(`segment ${join(dir, name)} has a base offset beyond 2^53`, { code: ErrorCode.STORAGE_CORRUPT });
    }
    bases.push(base);
  }
  return bases.sort((a, b) => a - b);
}

/** Index files whose `.log` is gone (a deletion interrupted by a crash) and leftover temporary files. */
async function removeStrayFiles(dir: string, names: readonly string[], bases: ReadonlySet<number>): Promise<void> {
  for (const name of names) {
    const index = /^(\d{20})\.(index|timeindex)$/.exec(name);
    const stray = (index !== null && !bases.has(Number(index[1]))) || name.endsWith('.tmp');
    if (stray)
      await logFs()
        .unlink(join(dir, name))
        .catch(() => {});
  }
}
