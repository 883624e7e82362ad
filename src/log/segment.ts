/*
 * One log segment: its .log, .index and .timeindex files, appends, reads by offset and time, and recovery after a crash.
 * One concept, over 400 lines because a segment's file format and its recovery checks stay together.
 */
import { stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { TopicConfig } from '../config/index.js';
import { ConcordatError, ErrorCode } from '../errors.js';
import type { FilePool } from './file-pool.js';
import { logFs } from './file-system.js';
import type { IndexCache, IndexHolder } from './index-cache.js';
import { createIndexFile } from './index-file.js';
import { INDEX_ENTRY_BYTES, MAX_RELATIVE_OFFSET, OffsetIndex } from './offset-index.js';
import {
  BASE_OFFSET_OFFSET,
  BATCH_LENGTH_OFFSET,
  computeBatchCrc,
  CRC_OFFSET,
  LAST_OFFSET_DELTA_OFFSET,
  LOG_OVERHEAD,
  MAGIC_OFFSET,
  MAGIC_V2,
  MAX_TIMESTAMP_OFFSET,
  readInt64,
  RECORD_BATCH_HEADER_BYTES,
} from './record-batch.js';
import { TIME_INDEX_ENTRY_BYTES, TimeIndex } from './time-index.js';

/** Settings a segment reads; the partition may change them (topic config updates). */
export interface SegmentConfig {
  /** Roll when an append would take the `.log` past this many bytes. */
  segmentBytes: number;
  /** Roll when the segment's records span more than this many ms (Kafka's `segment.ms`). */
  segmentMs: number;
  /** Bytes of batches between two offset-index entries. */
  indexIntervalBytes: number;
  /** segmentIndexBytes / 8. */
  indexEntriesMax: number;
  /** segmentIndexBytes / 12. */
  timeIndexEntriesMax: number;
}

/** A topic's segment settings: its config's sizes and times, and its index size in entries of each index. */
export function segmentConfigOf(config: TopicConfig): SegmentConfig {
  return {
    segmentBytes: config.segmentBytes,
    segmentMs: config.segmentMs,
    indexIntervalBytes: config.indexIntervalBytes,
    indexEntriesMax: Math.max(1, Math.floor(config.segmentIndexBytes / INDEX_ENTRY_BYTES)),
    timeIndexEntriesMax: Math.max(1, Math.floor(config.segmentIndexBytes / TIME_INDEX_ENTRY_BYTES)),
  };
}

/** A repair or finding, reported to the partition (which logs it and keeps it for `LogManager.recoveryReport`). */
export interface SegmentEvent {
  /** Path of the file repaired or found damaged. */
  file: string;
  /** 'truncated': a torn tail was cut; 'index-rebuilt': damaged or missing derived state (an index, a snapshot, the recovery points) was rebuilt from the log. */
  action: 'truncated' | 'index-rebuilt';
  /** What was found and done, in a sentence. */
  detail: string;
}

/** What a segment needs from the log around it. */
export interface SegmentEnv {
  /** Descriptors of `.log` files, shared by the whole log (openFilesMax). */
  pool: FilePool;
  /** Bounds the memory of rolled segments' loaded indexes. */
  indexCache: IndexCache;
  /** Told of each repair or damage found. */
  report(event: SegmentEvent): void;
}

/** Where the recovery point lies inside the active segment: everything before `position` was synced, with its index entries. */
export interface SegmentCheckpoint {
  /** Byte in the `.log` up to which it was synced (a batch boundary). */
  position: number;
  /** Offset of the batch starting at `position`. */
  nextOffset: number;
  /** Offset-index entries flushed, all below `position`. */
  indexEntries: number;
  /** Time-index entries flushed, all below `nextOffset`. */
  timeIndexEntries: number;
  /** Largest record timestamp (ms) before `position`, -1 when none. */
  maxTimestamp: number;
  /** lastOffset of the batch holding it, -1 when none. */
  offsetOfMaxTimestamp: number;
}

/** One batch seen by a scan: its bytes are `buf[at, at + total)`, at file `position`. */
export interface ScannedBatch {
  buf: Buffer;
  at: number;
  total: number;
  position: number;
}

interface Indexes {
  offset: OffsetIndex;
  time: TimeIndex;
}

interface ScanOutcome {
  end: number;
  nextOffset: number;
  batches: number;
  /** Why the scan stopped before `to`, or null. */
  stopReason: string | null;
}

/** Bytes of a batch header up to and including maxTimestamp. */
const HEADER_PROBE_BYTES = MAX_TIMESTAMP_OFFSET + 8;
const SCAN_WINDOW_BYTES = 16 * 1024;
const RECOVERY_CHUNK_BYTES = 1024 * 1024;
const EMPTY = Buffer.alloc(0);

/** The three files of a segment. */
export type SegmentFileExtension = '.log' | '.index' | '.timeindex';

/** `<baseOffset in 20 digits, zero-padded><extension>`, Kafka's file naming (`00000000000000001048.log`). */
export function segmentFileName(baseOffset: number, extension: SegmentFileExtension): string {
  return `${String(baseOffset).padStart(20, '0')}${extension}`;
}

/**
 * One segment of a partition's log (Kafka's `LogSegment`).
 *
 * Files, in the partition directory `<topic>-<partition>/`, named by the
 * segment's base offset (the offset of its first record) in 20 digits:
 * ```
 * 00000000000000000000.log        record batches (RecordBatch v2) back to back,
 *                                 exactly as producers sent them, baseOffset rewritten
 * 00000000000000000000.index      sparse offset index (offset-index.ts)
 * 00000000000000000000.timeindex  sparse time index (time-index.ts)
 * 00000000000001048576.log        next segment, whose first offset is 1048576
 * ```
 * Offsets inside a segment are contiguous: each batch's baseOffset is the
 * previous batch's lastOffset + 1, the first equals the segment's base;
 * except in a rolled segment the log cleaner rewrote ({@link compacted},
 * cleaner/), where batches keep their offsets with gaps between them (and
 * inside them: a batch keeps its baseOffset and lastOffsetDelta with fewer
 * records), the first may start after the base and the last end before the
 * next segment. The partition knows which segments those are from the
 * cleaner point file (cleaner/cleaner-point.ts); in any other segment a
 * gap is damage, reported as such.
 * Only the last (active) segment is appended to. It is rolled when the next
 * append would pass `segmentBytes`, when it is older than `segmentMs` (the
 * append's largest timestamp minus the first batch's, as Kafka measures it),
 * when an index is full, or when a relative offset would pass 2^31-1. A
 * rolled segment gets a final time-index entry, its indexes and `.log` are
 * fsynced ({@link seal}) before the next segment receives a byte, and it is
 * never written again.
 *
 * Memory: the active segment holds its indexes; a rolled segment loads them
 * on first use, bounded by the index cache (index-cache.ts). Descriptors:
 * the `.log` is used through the file pool (file-pool.ts); index files are
 * opened only to be read whole or flushed.
 *
 * After a crash: a recovery point (recovery-point.ts) says up to which
 * byte of which segment the log was synced and its indexes flushed. Bytes
 * past it may end in a torn batch (a write the OS had not finished) or in
 * zeros (the file's size reached disk before its data). {@link Segment.openActive}
 * validates every batch past the recovery point — length, magic, CRC-32C,
 * offset contiguity — truncates the file at the first that fails, and
 * indexes the rest. Nothing acknowledged with flushMode `sync` can be in the
 * truncated tail: an acknowledgement follows the fdatasync of every byte
 * before it. A rolled segment past the recovery point was synced whole when
 * rolled, so a bad batch there is damage, not a torn write: it is reported
 * (STORAGE_CORRUPT), never truncated. A missing or inconsistent index is
 * rebuilt from its log.
 *
 * Concurrency (one event loop; calls interleave at every await): a segment
 * has one writer, its partition's writer loop, which never overlaps
 * {@link append}, {@link truncateTo}, {@link seal} and {@link datasync} of
 * one segment with each other. Reads ({@link findBatchPosition},
 * {@link readBatches}, {@link searchTimestamp}) may overlap the writer and
 * each other in any number: each is bounded by a `limit` (the bytes the
 * partition made readable), so it never sees a write in progress.
 * {@link flushIndexes} may overlap reads and appends (the partition's
 * recovery checkpoint calls it while appends run): it writes the index
 * entries present when it began, and an entry added meanwhile waits for the
 * next flush (index-file.ts). A read overlapping {@link delete} may
 * fail with a file error; the partition then retries against its new
 * segment list. Programmer errors (appending to a sealed segment) throw a
 * plain Error; file errors are passed on as Node gives them (the partition
 * turns write errors into KAFKA_STORAGE_ERROR).
 */
export class Segment implements IndexHolder {
  readonly logPath: string;
  readonly indexPath: string;
  readonly timeIndexPath: string;
  /** Largest record timestamp (ms) in the segment, -1 when empty. */
  maxTimestamp = -1;
  /** lastOffset of the batch holding maxTimestamp. */
  offsetOfMaxTimestamp = -1;
  /** Rewritten by the log cleaner (cleaner/): its batches may have offset gaps, checked as the class comment says. */
  compacted = false;
  private size: number;
  private next: number;
  private sealed: boolean;
  private indexes: Indexes | null = null;
  private loading: Promise<Indexes> | null = null;
  /** The active segment's index lost trust (a bad entry was found): lookups scan from the start until it is rebuilt at roll. */
  private indexSuspect = false;
  private bytesSinceIndexEntry = 0;
  /** maxTimestamp of the first batch (Kafka's rollingBasedTimestamp), null when empty or not loaded. */
  private rollBaseTimestamp: number | null = null;
  private readonly createdAtMs = Date.now();
  /** When the segment was last written (file mtime at open, the clock at seal): its age when its records carry no timestamp. */
  private lastModifiedMs = Date.now();

  private constructor(
    readonly dir: string,
    readonly baseOffset: number,
    private config: SegmentConfig,
    private readonly env: SegmentEnv,
    size: number,
    next: number,
    sealed: boolean,
  ) {
    this.logPath = join(dir, segmentFileName(baseOffset, '.log'));
    this.indexPath = join(dir, segmentFileName(baseOffset, '.index'));
    this.timeIndexPath = join(dir, segmentFileName(baseOffset, '.timeindex'));
    this.size = size;
    this.next = next;
    this.sealed = sealed;
  }

  // ------------------------------------------------------------------ opening

  /** Creates an empty active segment (truncating leftover files of the same name). */
  static async create(dir: string, baseOffset: number, config: SegmentConfig, env: SegmentEnv): Promise<Segment> {
    const segment = new Segment(dir, baseOffset, config, env, 0, baseOffset, false);
    await env.pool.use(segment.logPath, async () => {}, true);
    await createIndexFile(segment.indexPath);
    await createIndexFile(segment.timeIndexPath);
    segment.indexes = segment.emptyIndexes();
    return segment;
  }

  /**
   * Opens a rolled segment that ends where the next one begins, without
   * reading it: its largest timestamp comes from its time index's final
   * entry; its indexes are loaded on first use. A missing or bad time index
   * is rebuilt now (that reads the whole segment). `compacted`: the log
   * cleaner may have rewritten it (offset gaps allowed).
   * @throws ConcordatError STORAGE_CORRUPT when a rebuild finds a bad batch
   */
  static async openSealed(dir: string, baseOffset: number, config: SegmentConfig, env: SegmentEnv, nextBase: number, compacted = false): Promise<Segment> {
    const segment = new Segment(dir, baseOffset, config, env, 0, nextBase, true);
    segment.compacted = compacted;
    const info = await stat(segment.logPath);
    segment.size = info.size;
    segment.lastModifiedMs = info.mtimeMs;
    if (segment.size === 0) return segment;
    const last = await TimeIndex.loadLastEntry(segment.timeIndexPath, baseOffset, config.timeIndexEntriesMax, nextBase);
    if (last === 'empty') return segment;
    if (last !== null) {
      segment.maxTimestamp = last.timestampMs;
      segment.offsetOfMaxTimestamp = last.offset;
      return segment;
    }
    await segment.rebuildSealedIndexes('the time index is missing or inconsistent');
    return segment;
  }

  /**
   * Opens the active segment. With a checkpoint (the recovery point lies in
   * this segment) the indexes are loaded up to it and only the bytes after
   * it are validated; without one every batch is. A tail that fails
   * validation is truncated. `onBatch` sees every batch validated.
   * @throws ConcordatError STORAGE_CORRUPT when the file is shorter than its recovery point
   */
  static async openActive(
    dir: string,
    baseOffset: number,
    config: SegmentConfig,
    env: SegmentEnv,
    checkpoint: SegmentCheckpoint | null,
    onBatch?: (batch: ScannedBatch) => void,
  ): Promise<Segment> {
    const segment = new Segment(dir, baseOffset, config, env, 0, baseOffset, false);
    segment.size = (await stat(segment.logPath)).size;
    if (checkpoint !== null && checkpoint.position > segment.size) {
      throw storageCorrupt(
        `${segment.logPath} has ${segment.size} bytes but its recovery point is at byte ${checkpoint.position} ` +
          `(offset ${checkpoint.nextOffset}): acknowledged records are missing; restore the partition from a backup`,
      );
    }
    const start = checkpoint === null ? null : await segment.loadIndexesUpTo(checkpoint);
    if (start === null) {
      segment.indexes = segment.emptyIndexes();
      await segment.recoverFrom(0, baseOffset, onBatch);
    } else {
      await segment.recoverFrom(checkpoint!.position, checkpoint!.nextOffset, onBatch);
    }
    segment.rollBaseTimestamp = segment.size === 0 ? null : await segment.readFirstBatchMaxTimestamp();
    return segment;
  }

  /** Loads the indexes as the checkpoint left them; null when they are not usable (then everything is rescanned). */
  private async loadIndexesUpTo(checkpoint: SegmentCheckpoint): Promise<number | null> {
    // Checked against the whole file: a crash during a checkpoint may leave entries past the recorded ones, cut below.
    const offset = await OffsetIndex.load(this.indexPath, this.baseOffset, this.config.indexEntriesMax, this.size);
    const time = await TimeIndex.load(this.timeIndexPath, this.baseOffset, this.config.timeIndexEntriesMax, null);
    if (offset === null || time === null || offset.entryCount < checkpoint.indexEntries || time.entryCount < checkpoint.timeIndexEntries) {
      if (checkpoint.position > 0) {
        this.env.report({ file: this.indexPath, action: 'index-rebuilt', detail: 'the indexes did not match the recovery point; rebuilt from the log' });
      }
      return null;
    }
    offset.truncateToEntries(checkpoint.indexEntries);
    time.truncateToEntries(checkpoint.timeIndexEntries);
    this.indexes = { offset, time };
    this.maxTimestamp = checkpoint.maxTimestamp;
    this.offsetOfMaxTimestamp = checkpoint.offsetOfMaxTimestamp;
    this.bytesSinceIndexEntry = checkpoint.position - (offset.lastEntry()?.position ?? 0);
    return checkpoint.position;
  }

  // ------------------------------------------------------------------ state

  /** Bytes in the `.log` file. */
  get sizeBytes(): number {
    return this.size;
  }

  /** Offset after the last batch (the base offset when empty). */
  get nextOffset(): number {
    return this.next;
  }

  /** True once rolled ({@link seal}ed): never written again. */
  get isSealed(): boolean {
    return this.sealed;
  }

  /** What time retention compares (Kafka's `largestTimestamp`): the largest record timestamp, else the last write. */
  get largestTimestamp(): number {
    return this.maxTimestamp >= 0 ? this.maxTimestamp : this.lastModifiedMs;
  }

  /** Takes a changed topic config; the next roll decision and index entry use it. */
  setConfig(config: SegmentConfig): void {
    this.config = config;
  }

  /** Where a recovery point at the current end of this (active) segment would stand. */
  checkpointAt(position: number, nextOffset: number): SegmentCheckpoint {
    const indexes = this.indexes!;
    let indexEntries = indexes.offset.entryCount;
    while (indexEntries > 0 && indexes.offset.entryAt(indexEntries - 1).position >= position) indexEntries -= 1;
    let timeIndexEntries = indexes.time.entryCount;
    while (timeIndexEntries > 0 && indexes.time.entryAt(timeIndexEntries - 1).offset >= nextOffset) timeIndexEntries -= 1;
    return {
      position,
      nextOffset,
      indexEntries,
      timeIndexEntries,
      maxTimestamp: this.maxTimestamp,
      offsetOfMaxTimestamp: this.offsetOfMaxTimestamp,
    };
  }

  /**
   * Whether an append of `bytes` ending at `lastOffset` with largest
   * timestamp `maxTimestamp` must go to a new segment (Kafka's `shouldRoll`).
   */
  shouldRoll(bytes: number, lastOffset: number, maxTimestamp: number, nowMs: number): boolean {
    const indexes = this.indexes!;
    if (indexes.offset.isFull() || indexes.time.isFull() || lastOffset - this.baseOffset > MAX_RELATIVE_OFFSET) return true;
    if (this.size === 0) return false;
    if (this.size + bytes > this.config.segmentBytes) return true;
    const waited = this.rollBaseTimestamp !== null && this.rollBaseTimestamp >= 0 ? maxTimestamp - this.rollBaseTimestamp : nowMs - this.createdAtMs;
    return waited > this.config.segmentMs;
  }

  // ------------------------------------------------------------------ append

  /**
   * Writes whole batches (offsets already assigned) at the end of the file
   * and indexes them in memory. Does not sync. On failure the file may hold
   * part of the bytes: the caller truncates back with {@link truncateTo}.
   * `bytes` is the chunks' total length, checked against the batches' own.
   * @throws Error on a sealed segment or a length mismatch (programmer errors); the file error of the write
   */
  async append(chunks: readonly Buffer[], bytes: number): Promise<void> {
    if (this.sealed) throw new Error(`segment ${this.logPath} is sealed`);
    const start = this.size;
    await this.env.pool.use(this.logPath, (file) => writevFully(file, chunks, start));
    let position = start;
    for (const chunk of chunks) {
      let pos = 0;
      while (pos < chunk.length) {
        const total = LOG_OVERHEAD + chunk.readInt32BE(pos + BATCH_LENGTH_OFFSET);
        const lastOffset = readInt64(chunk, pos + BASE_OFFSET_OFFSET) + chunk.readInt32BE(pos + LAST_OFFSET_DELTA_OFFSET);
        this.indexBatch(lastOffset, readInt64(chunk, pos + MAX_TIMESTAMP_OFFSET), position, total);
        this.next = lastOffset + 1;
        position += total;
        pos += total;
      }
    }
    if (position !== start + bytes) throw new Error(`appended ${position - start} bytes, expected ${bytes}`);
    this.size = position;
  }

  private indexBatch(lastOffset: number, maxTimestamp: number, position: number, total: number): void {
    const indexes = this.indexes!;
    if (maxTimestamp > this.maxTimestamp) {
      this.maxTimestamp = maxTimestamp;
      this.offsetOfMaxTimestamp = lastOffset;
    }
    if (position === 0) this.rollBaseTimestamp = maxTimestamp;
    if (this.bytesSinceIndexEntry > this.config.indexIntervalBytes) {
      if (!indexes.offset.isFull()) indexes.offset.append(lastOffset, position);
      if (this.offsetOfMaxTimestamp >= 0) indexes.time.maybeAppend(this.maxTimestamp, this.offsetOfMaxTimestamp);
      this.bytesSinceIndexEntry = 0;
    }
    this.bytesSinceIndexEntry += total;
  }

  /** fdatasync of the `.log` file (the group-commit flusher calls this). */
  async datasync(): Promise<void> {
    await this.env.pool.use(this.logPath, (file) => file.datasync());
  }

  /** Writes the in-memory index entries to their files and fsyncs them (recovery checkpoints). */
  async flushIndexes(): Promise<void> {
    const indexes = this.indexes;
    if (indexes === null) return;
    await indexes.offset.flush();
    await indexes.time.flush();
  }

  /**
   * Ends the active segment's life: adds the final time-index entry (its
   * largest timestamp), rebuilds a distrusted index, flushes both indexes
   * and fsyncs the log. Afterwards its indexes may be dropped from memory.
   */
  async seal(): Promise<void> {
    if (this.sealed) return;
    if (this.indexSuspect) await this.rebuildIndexesInMemory(this.size);
    const indexes = this.indexes!;
    if (this.maxTimestamp >= 0) indexes.time.maybeAppend(this.maxTimestamp, this.offsetOfMaxTimestamp, true);
    await this.datasync();
    await this.flushIndexes();
    this.sealed = true;
    this.lastModifiedMs = Date.now();
    this.env.indexCache.touch(this, indexes.offset.memoryBytes + indexes.time.memoryBytes);
  }

  /** Syncs the log and flushes the indexes of the active segment (close). */
  async syncAll(): Promise<void> {
    if (this.sealed) return;
    await this.datasync();
    await this.flushIndexes();
  }

  /**
   * Cuts the active segment at `position` (a batch boundary) whose batch
   * starts at `nextOffset`, and recomputes its largest timestamp. Deletes
   * every byte from `position` on and the index entries at or past it; does
   * not sync (the partition syncs after a repair).
   */
  async truncateTo(position: number, nextOffset: number): Promise<void> {
    await this.env.pool.use(this.logPath, (file) => file.truncate(position));
    const indexes = this.indexes!;
    indexes.offset.truncateToPosition(position);
    indexes.time.truncateToOffset(nextOffset);
    this.size = position;
    this.next = nextOffset;
    const lastEntry = indexes.offset.lastEntry();
    this.bytesSinceIndexEntry = position - (lastEntry?.position ?? 0);
    const lastTime = indexes.time.lastEntry();
    this.maxTimestamp = lastTime?.timestampMs ?? -1;
    this.offsetOfMaxTimestamp = lastTime?.offset ?? -1;
    if (position === 0) this.rollBaseTimestamp = null;
    let pos = lastEntry?.position ?? 0;
    while (pos < position) {
      const head = await this.readAt(pos, HEADER_PROBE_BYTES);
      const lastOffset = readInt64(head, BASE_OFFSET_OFFSET) + head.readInt32BE(LAST_OFFSET_DELTA_OFFSET);
      const maxTimestamp = readInt64(head, MAX_TIMESTAMP_OFFSET);
      if (maxTimestamp > this.maxTimestamp) {
        this.maxTimestamp = maxTimestamp;
        this.offsetOfMaxTimestamp = lastOffset;
      }
      pos += LOG_OVERHEAD + head.readInt32BE(BATCH_LENGTH_OFFSET);
    }
  }

  /** Drops the loaded indexes of a rolled segment (index cache eviction). */
  dropIndexes(): void {
    if (this.sealed && this.loading === null) this.indexes = null;
  }

  /** Closes the segment's descriptor and forgets its indexes; the files stay. Unsynced bytes stay in the OS's cache. */
  async close(): Promise<void> {
    this.env.indexCache.remove(this);
    await this.env.pool.discard(this.logPath);
  }

  /** Closes and removes the segment's files (`.log` first: the segment is gone once it is). */
  async delete(): Promise<void> {
    await this.close();
    for (const path of [this.logPath, this.indexPath, this.timeIndexPath]) {
      await logFs()
        .unlink(path)
        .catch((error: NodeJS.ErrnoException) => {
          if (error.code !== 'ENOENT') throw error;
        });
    }
  }

  // ------------------------------------------------------------------ read

  /** Position of the first batch whose lastOffset ≥ `offset`, scanning below `limit`; null if none. */
  async findBatchPosition(offset: number, limit: number): Promise<number | null> {
    const start = await this.indexedPosition(offset, limit);
    return this.scanHeaders(start, limit, (lastOffset) => lastOffset >= offset);
  }

  /**
   * Whole batches from `position`: as many as fit in `maxBytes`, but at
   * least the first one, never reading at or past `limit`. Reads into
   * `into` when the bytes fit there (the result is then a view of it).
   */
  async readBatches(position: number, maxBytes: number, limit: number, into?: Buffer): Promise<Buffer> {
    const available = limit - position;
    if (available <= 0) return EMPTY;
    const data = await this.readAt(position, Math.min(maxBytes, available), into);
    const whole = wholeBatchesLength(data);
    if (whole > 0) return whole === data.length ? data : data.subarray(0, whole);
    if (data.length < LOG_OVERHEAD) {
      // maxBytes below one header: read the header to learn the first batch's size.
      const header = await this.readAt(position, Math.min(LOG_OVERHEAD, available));
      if (header.length < LOG_OVERHEAD) return EMPTY;
      return this.readFirstBatch(position, header, limit);
    }
    return this.readFirstBatch(position, data, limit);
  }

  /**
   * The first batch, at or after the batch holding `fromOffset` and below
   * `limit`, whose maxTimestamp ≥ `timestampMs` and for which `accept`
   * (given the whole batch) returns a result; that result, or null.
   * Starts after the last time-index entry below the timestamp.
   */
  async searchTimestamp<T>(timestampMs: number, fromOffset: number, limit: number, accept: (batch: Buffer) => T | null): Promise<T | null> {
    let position = await this.timeIndexedPosition(timestampMs, fromOffset, limit);
    while (position !== null && position < limit) {
      const found = await this.scanHeaders(position, limit, (lastOffset, maxTimestamp) => lastOffset >= fromOffset && maxTimestamp >= timestampMs);
      if (found === null) return null;
      const batch = await this.readBatches(found, 1, limit);
      const result = accept(batch);
      if (result !== null) return result;
      position = found + batch.length;
    }
    return null;
  }

  // ------------------------------------------------------------------ indexes

  /** The segment's indexes, loading (and, when damaged, rebuilding) them for a rolled segment. */
  private async loadIndexes(): Promise<Indexes> {
    if (this.indexes !== null) {
      if (this.sealed) this.env.indexCache.touch(this, this.indexes.offset.memoryBytes + this.indexes.time.memoryBytes);
      return this.indexes;
    }
    this.loading ??= this.readSealedIndexes().finally(() => {
      this.loading = null;
    });
    return this.loading;
  }

  private async readSealedIndexes(): Promise<Indexes> {
    const offset = await OffsetIndex.load(this.indexPath, this.baseOffset, this.config.indexEntriesMax, this.size);
    const time = await TimeIndex.load(this.timeIndexPath, this.baseOffset, this.config.timeIndexEntriesMax, this.next);
    if (offset === null || time === null) {
      return this.rebuildSealedIndexes(`the ${offset === null ? 'offset' : 'time'} index is missing or inconsistent`);
    }
    await this.checkTail(offset.lastEntry()?.position ?? 0);
    this.indexes = { offset, time };
    this.env.indexCache.touch(this, offset.memoryBytes + time.memoryBytes);
    return this.indexes;
  }

  /**
   * Walks the batch headers after the last offset-index entry of a rolled
   * segment (a few, by construction) to check that its batches end exactly
   * at its size and at the next segment's base offset: a cut `.log` is damage.
   * @throws ConcordatError STORAGE_CORRUPT
   */
  private async checkTail(from: number): Promise<void> {
    let pos = from;
    let end = from === 0 ? this.baseOffset : -1;
    while (pos + HEADER_PROBE_BYTES <= this.size) {
      const head = await this.readAt(pos, HEADER_PROBE_BYTES);
      end = readInt64(head, BASE_OFFSET_OFFSET) + head.readInt32BE(LAST_OFFSET_DELTA_OFFSET) + 1;
      const total = LOG_OVERHEAD + head.readInt32BE(BATCH_LENGTH_OFFSET);
      if (total < RECORD_BATCH_HEADER_BYTES) break;
      pos += total;
    }
    if (pos !== this.size) {
      throw storageCorrupt(`${this.logPath}: its batches end at byte ${pos} but the file has ${this.size} bytes; restore the partition from a backup`);
    }
    // A compacted segment may end before the next one starts (cleaner/), never after.
    if (this.compacted ? end > this.next : end !== this.next) throw storageCorrupt(this.gapMessage(end));
  }

  /** Rebuilds a rolled segment's indexes from its log (validating every batch) and writes them. */
  private async rebuildSealedIndexes(reason: string): Promise<Indexes> {
    const indexes = await this.rebuildIndexesInMemory(this.size);
    if (this.next !== this.baseOffset && this.maxTimestamp >= 0) indexes.time.maybeAppend(this.maxTimestamp, this.offsetOfMaxTimestamp, true);
    await indexes.offset.flush();
    await indexes.time.flush();
    this.env.report({ file: this.indexPath, action: 'index-rebuilt', detail: `${reason}; rebuilt both indexes from the log` });
    this.env.indexCache.touch(this, indexes.offset.memoryBytes + indexes.time.memoryBytes);
    return indexes;
  }

  /**
   * Scans [0, end) validating every batch and indexes it afresh.
   * @throws ConcordatError STORAGE_CORRUPT on a bad batch (not a torn write: this runs on synced bytes)
   */
  private async rebuildIndexesInMemory(end: number): Promise<Indexes> {
    const indexes = this.emptyIndexes();
    const previous = this.indexes;
    this.indexes = indexes;
    this.bytesSinceIndexEntry = 0;
    this.maxTimestamp = -1;
    this.offsetOfMaxTimestamp = -1;
    try {
      const outcome = await this.scan(0, end, this.baseOffset, (batch) => this.indexScanned(batch), this.compacted);
      if (outcome.stopReason !== null) throw storageCorrupt(this.damageMessage(outcome));
      if (this.compacted ? outcome.nextOffset > this.next : outcome.nextOffset !== this.next) throw storageCorrupt(this.gapMessage(outcome.nextOffset));
    } catch (error) {
      this.indexes = previous;
      throw error;
    }
    this.indexSuspect = false;
    return indexes;
  }

  /** Where to start scanning for `offset`: an index entry whose batch header agrees with it, else the segment start. */
  private async indexedPosition(offset: number, limit: number): Promise<number> {
    if (this.indexSuspect) return 0;
    const indexes = await this.loadIndexes();
    const entry = indexes.offset.lookup(offset);
    if (entry.position === 0 || entry.position >= limit) return entry.position >= limit ? 0 : entry.position;
    const head = await this.readAt(entry.position, HEADER_PROBE_BYTES);
    if (head.length === HEADER_PROBE_BYTES && head.readInt8(MAGIC_OFFSET) === MAGIC_V2) {
      const lastOffset = readInt64(head, BASE_OFFSET_OFFSET) + head.readInt32BE(LAST_OFFSET_DELTA_OFFSET);
      if (lastOffset === entry.offset) return entry.position;
    }
    await this.indexDamaged(`offset index entry (${entry.offset}, ${entry.position}) does not point at the batch ending at offset ${entry.offset}`);
    return 0;
  }

  /** Where to start looking for `timestampMs` at or after `fromOffset`: after the last time-index entry below it, checked. */
  private async timeIndexedPosition(timestampMs: number, fromOffset: number, limit: number): Promise<number | null> {
    if (this.indexSuspect) return this.findBatchPosition(fromOffset, limit);
    const indexes = await this.loadIndexes();
    const entry = indexes.time.lookupBefore(timestampMs);
    if (entry === null || entry.offset < fromOffset) return this.findBatchPosition(fromOffset, limit);
    const position = await this.findBatchPosition(entry.offset, limit);
    if (position === null) return null;
    const head = await this.readAt(position, HEADER_PROBE_BYTES);
    if (head.length === HEADER_PROBE_BYTES) {
      const lastOffset = readInt64(head, BASE_OFFSET_OFFSET) + head.readInt32BE(LAST_OFFSET_DELTA_OFFSET);
      if (lastOffset === entry.offset && readInt64(head, MAX_TIMESTAMP_OFFSET) === entry.timestampMs) return position;
    }
    await this.indexDamaged(`time index entry (${entry.timestampMs}, ${entry.offset}) does not match the batch holding offset ${entry.offset}`);
    return this.findBatchPosition(fromOffset, limit);
  }

  /** A bad index entry: rebuild a rolled segment's indexes now; distrust the active one's until it is sealed. */
  private async indexDamaged(detail: string): Promise<void> {
    if (this.sealed) {
      this.indexes = null;
      this.loading ??= this.rebuildSealedIndexes(detail).finally(() => {
        this.loading = null;
      });
      await this.loading;
      return;
    }
    this.indexSuspect = true;
    this.env.report({ file: this.indexPath, action: 'index-rebuilt', detail: `${detail}; lookups scan from the segment start until the segment is rolled` });
  }

  private emptyIndexes(): Indexes {
    return {
      offset: OffsetIndex.empty(this.indexPath, this.baseOffset, this.config.indexEntriesMax),
      time: TimeIndex.empty(this.timeIndexPath, this.baseOffset, this.config.timeIndexEntriesMax),
    };
  }

  // ------------------------------------------------------------------ scans

  /**
   * Validates the active segment from `position` (whose batch starts at
   * `nextOffset`), indexing every good batch, and truncates at the first bad one.
   */
  private async recoverFrom(position: number, nextOffset: number, onBatch?: (batch: ScannedBatch) => void): Promise<void> {
    const indexes = this.indexes!;
    indexes.offset.truncateToPosition(position);
    indexes.time.truncateToOffset(nextOffset);
    const outcome = await this.scan(position, this.size, nextOffset, (batch) => {
      this.indexScanned(batch);
      onBatch?.(batch);
    });
    this.next = outcome.nextOffset;
    const truncatedBytes = this.size - outcome.end;
    // Bytes that passed validation may still be only in the page cache (the process was killed, not the machine): sync them before anyone sees them.
    if (outcome.end > position && truncatedBytes === 0) await this.datasync();
    if (truncatedBytes > 0) {
      await this.env.pool.use(this.logPath, async (file) => {
        await file.truncate(outcome.end);
        await file.datasync();
      });
      this.env.report({
        file: this.logPath,
        action: 'truncated',
        detail: `${outcome.stopReason}; cut ${truncatedBytes} bytes at byte ${outcome.end} (offset ${outcome.nextOffset})`,
      });
      this.size = outcome.end;
    }
    await this.flushIndexes();
  }

  /**
   * Validates a rolled segment from `position` (whose batch starts at
   * `nextOffset`) to its end without changing it.
   * @throws ConcordatError STORAGE_CORRUPT naming the file, the byte and what to do
   */
  async validateFrom(position: number, nextOffset: number, onBatch?: (batch: ScannedBatch) => void): Promise<void> {
    const outcome = await this.scan(position, this.size, nextOffset, (batch) => onBatch?.(batch), this.compacted);
    if (outcome.stopReason !== null) throw storageCorrupt(this.damageMessage(outcome));
    if (this.compacted ? outcome.nextOffset > this.next : outcome.nextOffset !== this.next) throw storageCorrupt(this.gapMessage(outcome.nextOffset));
  }

  private gapMessage(endOffset: number): string {
    if (endOffset > this.next) {
      return `${this.logPath} ends at offset ${endOffset}, past the next segment's base offset ${this.next}: the segments overlap; restore the partition from a backup`;
    }
    return (
      `${this.logPath} ends at offset ${endOffset} but the next segment starts at ${this.next}: ` +
      `offsets ${endOffset}..${this.next - 1} are missing; restore the partition from a backup`
    );
  }

  private damageMessage(outcome: ScanOutcome): string {
    return (
      `${this.logPath}: ${outcome.stopReason}; this segment was synced whole when it was rolled, so this is damage, not a torn write. ` +
      `Restore the partition from a backup, or move this segment and the ones after it out of ${this.dir} ` +
      `to cut the partition at offset ${outcome.nextOffset} (what follows is lost)`
    );
  }

  private indexScanned({ buf, at, total, position }: ScannedBatch): void {
    const lastOffset = readInt64(buf, at + BASE_OFFSET_OFFSET) + buf.readInt32BE(at + LAST_OFFSET_DELTA_OFFSET);
    this.indexBatch(lastOffset, readInt64(buf, at + MAX_TIMESTAMP_OFFSET), position, total);
  }

  /**
   * Validates batches in [from, to) read in 1 MiB chunks; stops at the first bad one.
   * With `gaps` (a segment the log cleaner rewrote: cleaner/) a batch may
   * start after the previous one's end, never before.
   */
  private async scan(from: number, to: number, nextOffset: number, onBatch: (batch: ScannedBatch) => void, gaps = false): Promise<ScanOutcome> {
    let pos = from;
    let expected = nextOffset;
    let batches = 0;
    let chunk: Buffer = EMPTY;
    let chunkStart = from;
    while (pos < to) {
      if (pos + LOG_OVERHEAD > chunkStart + chunk.length) {
        chunkStart = pos;
        chunk = await this.readAt(pos, Math.min(RECOVERY_CHUNK_BYTES, to - pos));
      }
      if (chunk.length - (pos - chunkStart) < LOG_OVERHEAD) return { end: pos, nextOffset: expected, batches, stopReason: `torn batch header at byte ${pos}` };
      const total = LOG_OVERHEAD + chunk.readInt32BE(pos - chunkStart + BATCH_LENGTH_OFFSET);
      if (total < RECORD_BATCH_HEADER_BYTES || pos + total > to) {
        return { end: pos, nextOffset: expected, batches, stopReason: `batch at byte ${pos} claims ${total} bytes, ${to - pos} remain` };
      }
      if (pos + total > chunkStart + chunk.length) {
        chunkStart = pos;
        chunk = await this.readAt(pos, Math.max(total, Math.min(RECOVERY_CHUNK_BYTES, to - pos)));
      }
      const problem = checkStoredBatch(chunk, pos - chunkStart, total, expected, gaps);
      if (problem !== null) return { end: pos, nextOffset: expected, batches, stopReason: `batch at byte ${pos}: ${problem}` };
      onBatch({ buf: chunk, at: pos - chunkStart, total, position: pos });
      expected = readInt64(chunk, pos - chunkStart + BASE_OFFSET_OFFSET) + chunk.readInt32BE(pos - chunkStart + LAST_OFFSET_DELTA_OFFSET) + 1;
      batches += 1;
      pos += total;
    }
    return { end: pos, nextOffset: expected, batches, stopReason: null };
  }

  /** Walks batch headers from `position` below `limit`; the position of the first for which `stop` holds, or null. */
  private async scanHeaders(position: number, limit: number, stop: (lastOffset: number, maxTimestamp: number) => boolean): Promise<number | null> {
    let pos = position;
    let window: Buffer = EMPTY;
    let windowStart = 0;
    while (pos + HEADER_PROBE_BYTES <= limit) {
      if (pos + HEADER_PROBE_BYTES > windowStart + window.length) {
        windowStart = pos;
        window = await this.readAt(pos, Math.min(SCAN_WINDOW_BYTES, limit - pos));
        if (window.length < HEADER_PROBE_BYTES) return null;
      }
      const at = pos - windowStart;
      const header = this.trustedHeader(window, at, pos);
      if (stop(header.lastOffset, header.maxTimestamp)) return pos;
      pos += header.total;
    }
    return null;
  }

  /**
   * The header fields a lookup walks by, from bytes that were validated
   * when written or recovered; damage found here (bit rot, a hand edit) is
   * reported, naming the file and byte.
   * @throws ConcordatError STORAGE_CORRUPT
   */
  private trustedHeader(buf: Buffer, at: number, position: number): { lastOffset: number; maxTimestamp: number; total: number } {
    const total = LOG_OVERHEAD + buf.readInt32BE(at + BATCH_LENGTH_OFFSET);
    const base = buf.readInt32BE(at + BASE_OFFSET_OFFSET) * 0x1_0000_0000 + buf.readUInt32BE(at + BASE_OFFSET_OFFSET + 4);
    const maxTimestamp = buf.readInt32BE(at + MAX_TIMESTAMP_OFFSET) * 0x1_0000_0000 + buf.readUInt32BE(at + MAX_TIMESTAMP_OFFSET + 4);
    const delta = buf.readInt32BE(at + LAST_OFFSET_DELTA_OFFSET);
    if (
      buf.readInt8(at + MAGIC_OFFSET) !== MAGIC_V2 ||
      total < RECORD_BATCH_HEADER_BYTES ||
      base < this.baseOffset ||
      delta < 0 ||
      !Number.isSafeInteger(base + delta) ||
      !Number.isSafeInteger(maxTimestamp)
    ) {
      throw storageCorrupt(`${this.logPath}: the batch header at byte ${position} is damaged; restore the partition from a backup`);
    }
    return { lastOffset: base + delta, maxTimestamp, total };
  }

  private async readFirstBatchMaxTimestamp(): Promise<number> {
    const head = await this.readAt(0, HEADER_PROBE_BYTES);
    return head.length === HEADER_PROBE_BYTES ? readInt64(head, MAX_TIMESTAMP_OFFSET) : -1;
  }

  private async readFirstBatch(position: number, head: Buffer, limit: number): Promise<Buffer> {
    const total = LOG_OVERHEAD + head.readInt32BE(BATCH_LENGTH_OFFSET);
    if (total < RECORD_BATCH_HEADER_BYTES || position + total > limit) {
      throw storageCorrupt(`${this.logPath}: batch at byte ${position} claims ${total} bytes, past the readable end ${limit}`);
    }
    return this.readAt(position, total);
  }

  /** Reads up to `length` bytes at `position` (fewer at the end of the file), into `into` when it is big enough. */
  private readAt(position: number, length: number, into?: Buffer): Promise<Buffer> {
    const buf = into !== undefined && into.length >= length ? into.subarray(0, length) : Buffer.allocUnsafe(length);
    return this.env.pool.use(this.logPath, (file) => readFully(file, buf, position));
  }
}

/** Why the stored batch at `at` is not valid, or null. With `gaps` its base offset may be above `expectedBase` (a compacted segment). */
function checkStoredBatch(buf: Buffer, at: number, total: number, expectedBase: number, gaps: boolean): string | null {
  const magic = buf.readInt8(at + MAGIC_OFFSET);
  if (magic !== MAGIC_V2) return `magic ${magic}`;
  const stored = buf.readUInt32BE(at + CRC_OFFSET);
  if (stored !== computeBatchCrc(buf, at, total)) return 'CRC-32C mismatch';
  const base = buf.readInt32BE(at + BASE_OFFSET_OFFSET) * 0x1_0000_0000 + buf.readUInt32BE(at + BASE_OFFSET_OFFSET + 4);
  if (gaps ? base < expectedBase || !Number.isSafeInteger(base) : base !== expectedBase)
    return `baseOffset ${base}, expected ${gaps ? 'at least ' : ''}${expectedBase}`;
  if (buf.readInt32BE(at + LAST_OFFSET_DELTA_OFFSET) < 0) return 'negative lastOffsetDelta';
  return null;
}

/** Length of the whole batches at the start of `data`. */
function wholeBatchesLength(data: Buffer): number {
  let pos = 0;
  while (data.length - pos >= LOG_OVERHEAD) {
    const total = LOG_OVERHEAD + data.readInt32BE(pos + BATCH_LENGTH_OFFSET);
    if (total < RECORD_BATCH_HEADER_BYTES || pos + total > data.length) break;
    pos += total;
  }
  return pos;
}

async function readFully(file: FileHandle, buf: Buffer, position: number): Promise<Buffer> {
  let done = 0;
  while (done < buf.length) {
    const { bytesRead } = await file.read(buf, done, buf.length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done === buf.length ? buf : buf.subarray(0, done);
}

/** Positional writev of every chunk, continuing after short writes. */
async function writevFully(file: FileHandle, chunks: readonly Buffer[], position: number): Promise<void> {
  let pending = chunks.filter((chunk) => chunk.length > 0);
  let at = position;
  while (pending.length > 0) {
    const { bytesWritten } = await file.writev(pending, at);
    if (bytesWritten <= 0) {
      throw new ConcordatError(`short write at byte ${at}`, { code: ErrorCode.KAFKA_STORAGE_ERROR });
    }
    at += bytesWritten;
    let skip = bytesWritten;
    const rest: Buffer[] = [];
    for (const chunk of pending) {
      if (skip >= chunk.length) {
        skip -= chunk.length;
        continue;
      }
      rest.push(skip > 0 ? chunk.subarray(skip) : chunk);
      skip = 0;
    }
    pending = rest;
  }
}

function storageCorrupt(message: string): ConcordatError {
  return new ConcordatError(message, { code: ErrorCode.STORAGE_CORRUPT });
}
