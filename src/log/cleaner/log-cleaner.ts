import type { TopicConfig } from '../../config/index.js';
import { ConcordatError, ErrorCode } from '../../errors.js';
import { MAX_RELATIVE_OFFSET } from '../offset-index.js';
import type { PartitionLog } from '../partition-log.js';
import { BATCH_LENGTH_OFFSET, LAST_OFFSET_DELTA_OFFSET, LOG_OVERHEAD, PRODUCER_ID_OFFSET, readInt64, RECORDS_COUNT_OFFSET } from '../record-batch.js';
import { segmentConfigOf, type Segment } from '../segment.js';
import { filterBatch, forEachRecord, isTransactionalOrControl } from './batch-filter.js';
import { CleanedSegmentWriter } from './cleaned-segment.js';
import { readCleanerPoint, writeCleanerPoint, type CleanerPoint } from './cleaner-point.js';
import { OffsetMap } from './offset-map.js';
import { commitSwap } from './swap.js';

/** Bytes read from a segment at a time (grown for a larger batch). */
const READ_BUFFER_BYTES = 1024 * 1024;

/** Settings of a {@link LogCleaner}. */
export interface LogCleanerOptions {
  /** Bytes of the offset map (24 per key, filled to 90%). */
  offsetMapBytes: number;
  /** Largest decompressed batch the cleaner decodes, in bytes. */
  decompressedBatchBytesMax: number;
}

/** What cleaning one partition did ({@link LogCleaner.clean}). */
export interface CleanResult {
  topic: string;
  partition: number;
  /** Passes made: one per offset map's worth of dirty keys. */
  passes: number;
  /** Segments rewritten (a segment rewritten in two passes counts twice). */
  segmentsCleaned: number;
  /** Bytes of the segments rewritten, and of what replaced them. */
  bytesRead: number;
  bytesWritten: number;
  /** Records read while rewriting, and of those removed (superseded, or tombstones past deleteRetentionMs). */
  recordsRead: number;
  recordsRemoved: number;
  /** The cleaner point afterwards: offsets below it are clean. */
  cleanedThrough: number;
  /** True when the log changed under the cleaner (retention, a closed partition) and the clean stopped early. */
  interrupted: boolean;
}

/** Why a partition is not cleaned now, or null when it is to be. */
type Skip = string | null;

/**
 * Kafka's log cleaner (`LogCleaner`, `Cleaner`) for one partition at a time:
 * keeps, in the rolled segments of a topic with `cleanup.policy` `compact`
 * (or `compact,delete`), only the latest record of each key.
 *
 * The log of a partition, from the cleaner's point of view:
 * ```
 * logStartOffset        cleaner point (firstDirty)            cleanable end          active segment
 * | clean section: cleaned | dirty section: appended since | not yet cleanable  | never cleaned |
 * ```
 * The cleaner point is kept in `<partition dir>/cleaner-offset.checkpoint`
 * (a stale or missing one only makes the cleaner redo work). The cleanable
 * end is where the partition's {@link PartitionLog.cleanerView} stops (the
 * active segment, the recovery point's segment, the last stable offset),
 * brought down to the first segment with records younger than
 * `minCompactionLagMs`. A partition is cleaned when its dirty bytes are at
 * least `minCleanableDirtyRatio` of the clean and dirty bytes (or always,
 * when forced).
 *
 * One pass:
 * 1. build the offset map (offset-map.ts): key → offset of the key's latest
 *    record in the dirty section, reading from the cleaner point until the
 *    map is full (bounded memory: the pass then ends at that batch) or the
 *    dirty section ends;
 * 2. rewrite every segment from the log start up to the one where the pass
 *    ended, in groups whose sizes together fit `segmentBytes` (and whose
 *    offsets fit an index), each group into one new segment with the
 *    group's first base offset (cleaned-segment.ts), keeping a record when
 *    its key is not in the map or it is the latest (offset ≥ the map's),
 *    dropping a tombstone (null value) whose segment's largest timestamp
 *    is older than `deleteRetentionMs`, and keeping records past the pass
 *    end untouched;
 * 3. swap each group's new segment in, crash-safely (swap.ts), and move
 *    the cleaner point to the pass end.
 * Passes repeat until the cleaner point reaches the cleanable end.
 *
 * Kept as Kafka keeps them: batches keep their base offsets, last offset
 * deltas and producer fields (batch-filter.ts), so offsets never change
 * and readers see gaps (a read from a removed offset gets the next batch);
 * the latest batch of each idempotent producer is kept, emptied if all its
 * records go. Conservative where Kafka is clever: transactional and control
 * batches are kept whole and their keys are not put in the map (so an
 * aborted record never hides a committed one, and no marker is removed);
 * records without a key are kept (Kafka refuses them on a compacted topic
 * and drops them here).
 *
 * Memory: the offset map, a 1 MiB read buffer, a 1 MiB write buffer, the
 * cleaned segment's indexes, and one batch decompressed at a time.
 * Not thread-safe: one clean at a time per cleaner (LogManager runs one).
 * {@link stop} makes a clean under way give up at its next batch, removing
 * its `.cleaned` files.
 */
export class LogCleaner {
  private readonly map: OffsetMap;
  private stopped = false;

  constructor(private readonly options: LogCleanerOptions) {
    this.map = new OffsetMap(options.offsetMapBytes);
  }

  /** Keys one pass can hold. */
  get keysPerPass(): number {
    return this.map.keysMax;
  }

  /** Makes a clean under way stop at its next batch (LogManager.close). */
  stop(): void {
    this.stopped = true;
  }

  /**
   * Whether {@link clean} would find work on `partitionLog` once its recovery point
   * is recorded anew (the recovery point is left out: the log manager
   * records it only when some partition has work, so as not to checkpoint
   * every cleanerBackoffMs for nothing).
   * @throws ConcordatError STORAGE_CORRUPT when the cleaner point file is damaged
   */
  async hasWork(partitionLog: PartitionLog, nowMs: number, force = false): Promise<boolean> {
    const view = partitionLog.cleanerView(Infinity, false);
    if (!view.config.cleanupPolicy.includes('compact') || view.segments.length === 0) return false;
    const point = await readCleanerPoint(view.dir);
    const firstDirty = Math.max(view.logStartOffset, point?.offset ?? 0);
    return this.whyNot(cleanable(view.segments, view.config, nowMs), firstDirty, view.config, force) === null;
  }

  /**
   * Cleans one partition if its topic compacts and it has enough dirty bytes
   * (any, with `force`). `recordedPointBase`: see PartitionLog.cleanerView.
   * Returns what it did, or null when there was nothing to do.
   * @throws file errors, ConcordatError KAFKA_STORAGE_ERROR; ConcordatError
   *   LIMIT_EXCEEDED when one batch has more records than the offset map holds
   */
  async clean(partitionLog: PartitionLog, nowMs: number, force = false, recordedPointBase = Infinity): Promise<CleanResult | null> {
    const view = partitionLog.cleanerView(recordedPointBase);
    if (!view.config.cleanupPolicy.includes('compact')) return null;
    const point: CleanerPoint = (await readCleanerPoint(view.dir)) ?? { offset: 0, compactedBelow: 0 };
    let firstDirty = Math.max(view.logStartOffset, point.offset);
    const skip = this.whyNot(cleanable(view.segments, view.config, nowMs), firstDirty, view.config, force);
    if (skip !== null) return null;
    const result: CleanResult = {
      topic: partitionLog.topic,
      partition: partitionLog.partition,
      passes: 0,
      segmentsCleaned: 0,
      bytesRead: 0,
      bytesWritten: 0,
      recordsRead: 0,
      recordsRemoved: 0,
      cleanedThrough: firstDirty,
      interrupted: false,
    };
    for (;;) {
      if (this.stopped) return { ...result, interrupted: true };
      const pass = partitionLog.cleanerView(recordedPointBase);
      const segments = cleanable(pass.segments, pass.config, nowMs);
      const end = segments.length === 0 ? firstDirty : segments[segments.length - 1]!.nextOffset;
      firstDirty = Math.max(firstDirty, pass.logStartOffset);
      if (firstDirty >= end) break;
      this.map.clear();
      const passEnd = await this.buildOffsetMap(segments, firstDirty, end);
      result.passes += 1;
      const rewriteEnd = segments[lastSegmentOfPass(segments, passEnd)]!.nextOffset;
      if (rewriteEnd > point.compactedBelow) {
        point.compactedBelow = rewriteEnd;
        await writeCleanerPoint(pass.dir, point);
      }
      const done = await this.rewrite(partitionLog, pass, segments, passEnd, nowMs, result);
      if (!done) return { ...result, interrupted: true };
      firstDirty = passEnd;
      result.cleanedThrough = passEnd;
      point.offset = passEnd;
      await writeCleanerPoint(pass.dir, point);
    }
    return result.passes === 0 ? null : result;
  }

  /** Null when the partition is to be cleaned, else why not. */
  private whyNot(segments: readonly Segment[], firstDirty: number, config: TopicConfig, force: boolean): Skip {
    if (segments.length === 0) return 'no rolled segment is cleanable';
    if (firstDirty >= segments[segments.length - 1]!.nextOffset) return 'nothing dirty';
    let clean = 0;
    let dirty = 0;
    for (const segment of segments) {
      if (segment.nextOffset <= firstDirty) clean += segment.sizeBytes;
      else dirty += segment.sizeBytes;
    }
    if (force || clean + dirty === 0) return null;
    return dirty / (clean + dirty) >= config.minCleanableDirtyRatio ? null : 'dirty ratio below minCleanableDirtyRatio';
  }

  /**
   * Fills the map from `firstDirty` up to `end` with each key's latest
   * offset; returns the offset where it stopped: `end`, or the base offset
   * of the first batch whose records might not fit.
   */
  private async buildOffsetMap(segments: readonly Segment[], firstDirty: number, end: number): Promise<number> {
    const map = this.map;
    for (const segment of segments) {
      if (segment.nextOffset <= firstDirty) continue;
      const start = segment.baseOffset >= firstDirty ? 0 : await segment.findBatchPosition(firstDirty, segment.sizeBytes);
      if (start === null) continue;
      const stop = await eachBatch(segment, start, (buf, at, total) => {
        if (this.stopped) return -1;
        const base = readInt64(buf, at);
        if (isTransactionalOrControl(buf, at)) return 0;
        const count = buf.readInt32BE(at + RECORDS_COUNT_OFFSET);
        if (map.size + count > map.keysMax) {
          if (map.size === 0) {
            throw new ConcordatError(
              `the batch at offset ${base} has ${count} records, more than the log cleaner's offset map holds (${map.keysMax} keys); raise cleanerOffsetMapBytes`,
              { code: ErrorCode.LIMIT_EXCEEDED, context: { limit: 'cleanerOffsetMapBytes' } },
            );
          }
          return base;
        }
        forEachRecord(buf, at, total, this.options.decompressedBatchBytesMax, (key, offset) => {
          if (key !== null && offset >= firstDirty) map.put(OffsetMap.digest(key), offset);
        });
        return 0;
      });
      if (stop === -1) return firstDirty;
      if (stop > 0) return stop;
    }
    return end;
  }

  /**
   * Rewrites the segments from the log start through the one holding the
   * last offset below `passEnd`, group by group. False when it had to stop
   * (the log changed, or the cleaner was stopped).
   */
  private async rewrite(
    partitionLog: PartitionLog,
    view: ReturnType<PartitionLog['cleanerView']>,
    segments: readonly Segment[],
    passEnd: number,
    nowMs: number,
    result: CleanResult,
  ): Promise<boolean> {
    const last = lastSegmentOfPass(segments, passEnd);
    const config = segmentConfigOf(view.config);
    for (const group of groups(segments.slice(0, last + 1), view.config.segmentBytes)) {
      if (this.stopped) return false;
      const writer = await CleanedSegmentWriter.create(view.dir, group[0]!.baseOffset, config);
      let swapped = false;
      // Once the commit began, the `.cleaned` files may be all that is left of the group: never remove them then
      // (the partition goes offline and reopening finishes the swap: swap.ts).
      let committing = false;
      try {
        for (const segment of group) {
          const tombstonesExpire = segment.sizeBytes > 0 && segment.largestTimestamp < nowMs - view.config.deleteRetentionMs;
          if (!(await this.copySegment(segment, writer, passEnd, tombstonesExpire, view.producerLastOffsets, result))) return false;
          result.bytesRead += segment.sizeBytes;
        }
        await writer.finish();
        const record = { base: group[0]!.baseOffset, replaced: group.map((segment) => segment.baseOffset) };
        swapped = await partitionLog.swapSegments(group, () => {
          committing = true;
          return commitSwap(view.dir, record);
        });
        if (!swapped) return false;
        result.segmentsCleaned += group.length;
        result.bytesWritten += writer.sizeBytes;
      } finally {
        if (!swapped && !committing) await writer.abort();
      }
    }
    return true;
  }

  /** Copies what survives of one segment's batches to `writer`; false when stopped. */
  private async copySegment(
    segment: Segment,
    writer: CleanedSegmentWriter,
    passEnd: number,
    tombstonesExpire: boolean,
    producerLastOffsets: ReadonlySet<number>,
    result: CleanResult,
  ): Promise<boolean> {
    const map = this.map;
    const keep = (key: Buffer | null, offset: number, tombstone: boolean): boolean => {
      result.recordsRead += 1;
      let kept = true;
      // A key absent from the map (-1) was last written in the clean section: of its records only an expired tombstone goes.
      if (offset < passEnd && key !== null) kept = map.get(OffsetMap.digest(key)) <= offset && !(tombstone && tombstonesExpire);
      if (!kept) result.recordsRemoved += 1;
      return kept;
    };
    const pending: Buffer[] = [];
    const stop = await eachBatch(
      segment,
      0,
      (buf, at, total) => {
        if (this.stopped) return -1;
        const base = readInt64(buf, at);
        if (base >= passEnd || isTransactionalOrControl(buf, at)) {
          result.recordsRead += buf.readInt32BE(at + RECORDS_COUNT_OFFSET);
          pending.push(Buffer.from(buf.subarray(at, at + total)));
          return 0;
        }
        const lastOffset = base + buf.readInt32BE(at + LAST_OFFSET_DELTA_OFFSET);
        const keepEmpty = readInt64(buf, at + PRODUCER_ID_OFFSET) >= 0 && producerLastOffsets.has(lastOffset);
        const filtered = filterBatch(buf, at, total, keep, keepEmpty, this.options.decompressedBatchBytesMax);
        if (filtered.kind === 'unchanged') pending.push(Buffer.from(buf.subarray(at, at + total)));
        else if (filtered.kind === 'rewritten') pending.push(filtered.bytes);
        return 0;
      },
      async () => {
        for (const bytes of pending) await writer.append(bytes);
        pending.length = 0;
      },
    );
    return stop !== -1;
  }
}

/**
 * The segments the cleaner may take now: those before the first with records younger than minCompactionLagMs
 * (by its largest record timestamp; an empty segment has no record to wait for).
 */
function cleanable(segments: readonly Segment[], config: TopicConfig, nowMs: number): Segment[] {
  if (config.minCompactionLagMs === 0) return [...segments];
  const young = segments.findIndex((segment) => segment.sizeBytes > 0 && segment.largestTimestamp > nowMs - config.minCompactionLagMs);
  return young < 0 ? [...segments] : segments.slice(0, young);
}

/** Index of the last segment a pass ending at `passEnd` rewrites: the one holding offset passEnd - 1. */
function lastSegmentOfPass(segments: readonly Segment[], passEnd: number): number {
  const last = segments.findIndex((segment) => segment.nextOffset >= passEnd);
  return last < 0 ? segments.length - 1 : last;
}

/** Consecutive segments whose sizes together fit `segmentBytes` and whose offsets fit one index (Kafka's groupSegmentsBySize). */
function groups(segments: readonly Segment[], segmentBytes: number): Segment[][] {
  const out: Segment[][] = [];
  let current: Segment[] = [];
  let bytes = 0;
  for (const segment of segments) {
    const first = current[0];
    const fits = first !== undefined && bytes + segment.sizeBytes <= segmentBytes && segment.nextOffset - 1 - first.baseOffset <= MAX_RELATIVE_OFFSET;
    if (first !== undefined && !fits) {
      out.push(current);
      current = [];
      bytes = 0;
    }
    current.push(segment);
    bytes += segment.sizeBytes;
  }
  if (current.length > 0) out.push(current);
  return out;
}

/**
 * Calls `visit` for each batch of `segment` from byte `start`, reading 1 MiB
 * at a time; `visit` returns 0 to go on, anything else to stop (returned).
 * `afterChunk` runs after each chunk's batches (before the buffer is reused).
 */
async function eachBatch(
  segment: Segment,
  start: number,
  visit: (buf: Buffer, at: number, total: number) => number,
  afterChunk?: () => Promise<void>,
): Promise<number> {
  const limit = segment.sizeBytes;
  let buffer = Buffer.allocUnsafe(READ_BUFFER_BYTES);
  let position = start;
  while (position < limit) {
    const chunk = await segment.readBatches(position, buffer.length, limit, buffer);
    if (chunk.length === 0) break;
    if (chunk.length > buffer.length) buffer = Buffer.allocUnsafe(chunk.length);
    let at = 0;
    while (at + LOG_OVERHEAD <= chunk.length) {
      const total = LOG_OVERHEAD + chunk.readInt32BE(at + BATCH_LENGTH_OFFSET);
      const stop = visit(chunk, at, total);
      if (stop !== 0) {
        await afterChunk?.();
        return stop;
      }
      at += total;
    }
    await afterChunk?.();
    position += chunk.length;
  }
  return 0;
}
