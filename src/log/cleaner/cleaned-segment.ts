import type { FileHandle } from 'node:fs/promises';
import { createIndexFile, writeFully } from '../index-file.js';
import { OffsetIndex } from '../offset-index.js';
import { BATCH_LENGTH_OFFSET, LAST_OFFSET_DELTA_OFFSET, LOG_OVERHEAD, MAX_TIMESTAMP_OFFSET, readInt64 } from '../record-batch.js';
import type { SegmentConfig } from '../segment.js';
import { openFile } from '../open-file.js';
import { TimeIndex } from '../time-index.js';
import { logFs } from '../file-system.js';
import { cleanedPath } from './swap.js';

/** Bytes gathered before one write to the cleaned `.log`. */
const WRITE_BUFFER_BYTES = 1024 * 1024;

/**
 * The cleaned copy of a group of segments, written to
 * `<base>.log.cleaned`, `<base>.index.cleaned` and `<base>.timeindex.cleaned`
 * (base: the group's first base offset, so the partition's log start offset
 * does not move). Batches are appended in offset order with their offsets
 * unchanged; the offset and time indexes are built as the segment builds
 * them on append (an entry every `indexIntervalBytes`; entries past a full
 * index are left out: the index is sparse, a lookup scans on from the last
 * one) and, as at a roll, end with the segment's largest timestamp.
 *
 * {@link finish} fdatasyncs the `.log` and both indexes; the files become
 * the segment only through swap.ts. {@link abort} removes them. Memory:
 * one 1 MiB write buffer and the two indexes. Not for concurrent use.
 */
export class CleanedSegmentWriter {
  private readonly buffer = Buffer.allocUnsafe(WRITE_BUFFER_BYTES);
  private buffered = 0;
  private written = 0;
  private bytesSinceIndexEntry = 0;
  private maxTimestamp = -1;
  private offsetOfMaxTimestamp = -1;
  private readonly offsetIndex: OffsetIndex;
  private readonly timeIndex: TimeIndex;

  private constructor(
    private readonly file: FileHandle,
    readonly dir: string,
    readonly baseOffset: number,
    private readonly config: SegmentConfig,
  ) {
    this.offsetIndex = OffsetIndex.empty(cleanedPath(dir, baseOffset, '.index'), baseOffset, config.indexEntriesMax);
    this.timeIndex = TimeIndex.empty(cleanedPath(dir, baseOffset, '.timeindex'), baseOffset, config.timeIndexEntriesMax);
  }

  /** Creates (truncating) `<base>.log.cleaned`. */
  static async create(dir: string, baseOffset: number, config: SegmentConfig): Promise<CleanedSegmentWriter> {
    const file = await openFile(cleanedPath(dir, baseOffset, '.log'), 'w+');
    return new CleanedSegmentWriter(file, dir, baseOffset, config);
  }

  /** Bytes appended so far. */
  get sizeBytes(): number {
    return this.written + this.buffered;
  }

  /** Appends one whole batch (`bytes` is copied before this returns, so it may be a view of a reused buffer). */
  async append(bytes: Buffer): Promise<void> {
    const total = LOG_OVERHEAD + bytes.readInt32BE(BATCH_LENGTH_OFFSET);
    if (total !== bytes.length) throw new Error(`a cleaned batch of ${bytes.length} bytes says it has ${total}`);
    this.index(bytes, this.sizeBytes);
    if (this.buffered + bytes.length > this.buffer.length) await this.flushBuffer();
    if (bytes.length > this.buffer.length) {
      await writeFully(this.file, bytes, this.written);
      this.written += bytes.length;
      return;
    }
    bytes.copy(this.buffer, this.buffered);
    this.buffered += bytes.length;
  }

  /** Writes what is buffered, fdatasyncs and closes the `.log`, and writes and syncs both indexes. */
  async finish(): Promise<void> {
    try {
      await this.flushBuffer();
      await this.file.datasync();
    } finally {
      await this.file.close();
    }
    if (this.maxTimestamp >= 0) this.timeIndex.maybeAppend(this.maxTimestamp, this.offsetOfMaxTimestamp, true);
    // Created even when empty: the swap renames both over the old segment's indexes.
    await createIndexFile(this.offsetIndex.path);
    await createIndexFile(this.timeIndex.path);
    await this.offsetIndex.flush();
    await this.timeIndex.flush();
  }

  /** Closes and removes the `.cleaned` files (a clean given up). Never throws. */
  async abort(): Promise<void> {
    await this.file.close().catch(() => {});
    for (const extension of ['.log', '.index', '.timeindex'] as const) {
      await logFs()
        .unlink(cleanedPath(this.dir, this.baseOffset, extension))
        .catch(() => {});
    }
  }

  private index(bytes: Buffer, position: number): void {
    const lastOffset = readInt64(bytes, 0) + bytes.readInt32BE(LAST_OFFSET_DELTA_OFFSET);
    const maxTimestamp = readInt64(bytes, MAX_TIMESTAMP_OFFSET);
    if (maxTimestamp > this.maxTimestamp) {
      this.maxTimestamp = maxTimestamp;
      this.offsetOfMaxTimestamp = lastOffset;
    }
    if (this.bytesSinceIndexEntry > this.config.indexIntervalBytes) {
      if (!this.offsetIndex.isFull()) this.offsetIndex.append(lastOffset, position);
      if (this.offsetOfMaxTimestamp >= 0) this.timeIndex.maybeAppend(this.maxTimestamp, this.offsetOfMaxTimestamp);
      this.bytesSinceIndexEntry = 0;
    }
    this.bytesSinceIndexEntry += bytes.length;
  }

  private async flushBuffer(): Promise<void> {
    if (this.buffered === 0) return;
    await writeFully(this.file, this.buffer.subarray(0, this.buffered), this.written);
    this.written += this.buffered;
    this.buffered = 0;
  }
}
