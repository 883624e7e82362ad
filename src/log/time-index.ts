import type { FileHandle } from 'node:fs/promises';
import { IndexEntries, readIndexFile } from './index-file.js';
import { openFile } from './open-file.js';
import { MAX_RELATIVE_OFFSET } from './offset-index.js';

/** Bytes of one time-index entry: timestamp i64 and relative offset u32. */
export const TIME_INDEX_ENTRY_BYTES = 12;

/** One time-index entry: the segment's largest timestamp (epoch ms) up to the batch ending at `offset` (absolute). */
export interface TimeIndexEntry {
  timestampMs: number;
  offset: number;
}

/**
 * The time index of one segment (Kafka's `TimeIndex`): from a timestamp to
 * the region of the segment where records reach it.
 *
 * File `<20-digit baseOffset>.timeindex` next to the segment's `.log`: a
 * packed array of fixed-width 12-byte entries, big-endian:
 * ```
 * timestamp      i64   largest record timestamp (ms) in the segment up to this batch
 * relativeOffset u32   lastOffset of the batch that holds that timestamp - segment baseOffset
 * ```
 * Timestamps strictly increase and offsets never decrease. When the
 * segment adds an offset-index entry (every `indexIntervalBytes`), it adds a
 * time-index entry too if its running largest timestamp grew since the last
 * one; when the segment is rolled or closed it adds a final entry for its
 * largest timestamp, so the last entry of a rolled segment's time index is
 * that segment's largest timestamp (what time retention compares) — one
 * slot is reserved for it beyond `entriesMax`.
 *
 * Reading it: every record at or before an entry's offset has a timestamp
 * at most the entry's, so the first record at or after a timestamp T lies
 * after the offset of the last entry whose timestamp is below T
 * ({@link TimeIndex.lookupBefore}); the segment scans batches from there and
 * skips those whose maxTimestamp is below T.
 *
 * After a crash the file is checked like the offset index (size, order,
 * offsets within the segment) and rebuilt when it fails; an entry that
 * passes but is wrong is caught when used, since the batch its offset points
 * into must have exactly the entry's timestamp as its maxTimestamp.
 */
export class TimeIndex extends IndexEntries {
  private constructor(path: string, baseOffset: number, entriesMax: number, initial: Buffer) {
    super(path, baseOffset, entriesMax, TIME_INDEX_ENTRY_BYTES, 1, initial);
  }

  /** An index with no entries (a new segment); the file is created by the segment. */
  static empty(path: string, baseOffset: number, entriesMax: number): TimeIndex {
    return new TimeIndex(path, baseOffset, entriesMax, Buffer.alloc(0));
  }

  /**
   * The index in `path`, checked for order and for offsets below
   * `nextOffset` (when known). Null when missing or failing, so the caller rebuilds it.
   */
  static async load(path: string, baseOffset: number, entriesMax: number, nextOffset: number | null): Promise<TimeIndex | null> {
    const content = await readIndexFile(path);
    if (content === null || !isSaneTimeIndex(content, baseOffset, entriesMax + 1, nextOffset)) return null;
    return new TimeIndex(path, baseOffset, entriesMax, content);
  }

  /**
   * Only the last entry of the file at `path` (a rolled segment's largest
   * timestamp), reading 12 bytes: the size must be a whole number of
   * entries and the entry's offset inside the segment, as Kafka's
   * `sanityCheck` asks. 'empty' for an empty file (a segment whose records
   * carry no timestamp), null when missing or bad.
   */
  static async loadLastEntry(path: string, baseOffset: number, entriesMax: number, nextOffset: number): Promise<TimeIndexEntry | 'empty' | null> {
    let file: FileHandle;
    try {
      file = await openFile(path, 'r');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw error;
    }
    try {
      const { size } = await file.stat();
      if (size === 0) return 'empty';
      if (size % TIME_INDEX_ENTRY_BYTES !== 0 || size / TIME_INDEX_ENTRY_BYTES > entriesMax + 1) return null;
      const entry = Buffer.alloc(TIME_INDEX_ENTRY_BYTES);
      const { bytesRead } = await file.read(entry, 0, TIME_INDEX_ENTRY_BYTES, size - TIME_INDEX_ENTRY_BYTES);
      if (bytesRead !== TIME_INDEX_ENTRY_BYTES) return null;
      const timestampMs = readTimestamp(entry, 0);
      const offset = baseOffset + entry.readUInt32BE(8);
      if (!Number.isSafeInteger(timestampMs) || offset >= nextOffset) return null;
      return { timestampMs, offset };
    } finally {
      await file.close();
    }
  }

  /** The newest entry (the largest timestamp indexed), or null when empty. */
  lastEntry(): TimeIndexEntry | null {
    return this.count === 0 ? null : this.entryAt(this.count - 1);
  }

  /**
   * Adds `(timestampMs, offset)` if the timestamp is larger than the last
   * entry's. `final` may use the reserved slot (the entry written at roll).
   */
  maybeAppend(timestampMs: number, offset: number, final = false): void {
    const last = this.lastEntry();
    if (last !== null && timestampMs <= last.timestampMs) return;
    if (this.isFull() && !final) return;
    if (this.count >= this.entriesMax + 1) return;
    const relative = offset - this.baseOffset;
    if (relative < 0 || relative > MAX_RELATIVE_OFFSET) throw new RangeError(`offset ${offset} is outside time index base ${this.baseOffset}`);
    if (last !== null && offset < last.offset) throw new Error(`time index entry (${timestampMs}, ${offset}) goes back from offset ${last.offset}`);
    this.ensureCapacity(this.count + 1);
    const at = this.count * TIME_INDEX_ENTRY_BYTES;
    writeTimestamp(this.entries, at, timestampMs);
    this.entries.writeUInt32BE(relative, at + 8);
    this.count += 1;
  }

  /** The last entry whose timestamp is below `timestampMs`, or null when none is. */
  lookupBefore(timestampMs: number): TimeIndexEntry | null {
    let low = 0;
    let high = this.count - 1;
    let found = -1;
    while (low <= high) {
      const mid = (low + high) >>> 1;
      if (readTimestamp(this.entries, mid * TIME_INDEX_ENTRY_BYTES) < timestampMs) {
        found = mid;
        low = mid + 1;
      } else {
        high = mid - 1;
      }
    }
    return found < 0 ? null : this.entryAt(found);
  }

  /** Drops entries at or past `offset` (after the log was truncated before it). */
  truncateToOffset(offset: number): void {
    let keep = this.count;
    while (keep > 0 && this.baseOffset + this.entries.readUInt32BE((keep - 1) * TIME_INDEX_ENTRY_BYTES + 8) >= offset) keep -= 1;
    this.truncateToEntries(keep);
  }

  /** The `i`-th entry (0-based). */
  entryAt(i: number): TimeIndexEntry {
    const at = i * TIME_INDEX_ENTRY_BYTES;
    return { timestampMs: readTimestamp(this.entries, at), offset: this.baseOffset + this.entries.readUInt32BE(at + 8) };
  }
}

function readTimestamp(buf: Buffer, at: number): number {
  return buf.readInt32BE(at) * 0x1_0000_0000 + buf.readUInt32BE(at + 4);
}

function writeTimestamp(buf: Buffer, at: number, value: number): void {
  const high = Math.floor(value / 0x1_0000_0000);
  buf.writeInt32BE(high, at);
  buf.writeUInt32BE(value - high * 0x1_0000_0000, at + 4);
}

function isSaneTimeIndex(content: Buffer, baseOffset: number, entriesMax: number, nextOffset: number | null): boolean {
  if (content.length % TIME_INDEX_ENTRY_BYTES !== 0) return false;
  const count = content.length / TIME_INDEX_ENTRY_BYTES;
  if (count > entriesMax) return false;
  let previousTimestamp = -Infinity;
  let previousOffset = -1;
  for (let i = 0; i < count; i++) {
    const timestamp = readTimestamp(content, i * TIME_INDEX_ENTRY_BYTES);
    const relative = content.readUInt32BE(i * TIME_INDEX_ENTRY_BYTES + 8);
    if (!Number.isSafeInteger(timestamp) || timestamp <= previousTimestamp) return false;
    if (relative > MAX_RELATIVE_OFFSET || relative < previousOffset) return false;
    if (nextOffset !== null && baseOffset + relative >= nextOffset) return false;
    previousTimestamp = timestamp;
    previousOffset = relative;
  }
  return true;
}
