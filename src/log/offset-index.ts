import { IndexEntries, readIndexFile } from './index-file.js';

/** Bytes of one offset-index entry: relative offset u32 and position u32. */
export const INDEX_ENTRY_BYTES = 8;
/** Relative offsets fit in Kafka's int32. */
export const MAX_RELATIVE_OFFSET = 0x7fffffff;

/** One offset-index entry: an absolute offset (a batch's lastOffset) and the byte where its batch starts. */
export interface IndexEntry {
  offset: number;
  position: number;
}

/**
 * The sparse offset index of one segment (Kafka's `OffsetIndex`).
 *
 * File `<20-digit baseOffset>.index` next to the segment's `.log`: a packed
 * array of fixed-width 8-byte entries, big-endian:
 * ```
 * relativeOffset u32   lastOffset of an indexed batch - segment baseOffset
 * position       u32   byte position of that batch in the .log file
 * ```
 * Entries are strictly increasing in both fields. An entry is added once at
 * least `indexIntervalBytes` of log were written since the previous one, so
 * a lookup finds the largest indexed batch whose lastOffset ≤ the target and
 * the reader scans forward from there over at most ~indexIntervalBytes.
 *
 * The entries live in memory (a lookup is a binary search without I/O) and
 * reach the file when flushed (index-file.ts). After a crash the file may
 * lag its log or hold garbage past its last good entry. {@link OffsetIndex.load}
 * rejects (for rebuilding) a file whose size is not a multiple of 8, whose
 * entries do not increase, or that points past its log; an entry that
 * passes those checks but is wrong (a flipped bit that keeps the order) is
 * caught when used, since the segment checks the batch header an entry
 * points at (segment.ts) and rebuilds the index when it disagrees.
 */
export class OffsetIndex extends IndexEntries {
  private constructor(path: string, baseOffset: number, entriesMax: number, initial: Buffer) {
    super(path, baseOffset, entriesMax, INDEX_ENTRY_BYTES, 0, initial);
  }

  /** An empty index (its file is written by the first flush). */
  static empty(path: string, baseOffset: number, entriesMax: number): OffsetIndex {
    return new OffsetIndex(path, baseOffset, entriesMax, Buffer.alloc(0));
  }

  /**
   * The index in `path`, checked against its log's size. Null when the file
   * is missing or fails the checks, so the caller rebuilds it.
   */
  static async load(path: string, baseOffset: number, entriesMax: number, logBytes: number): Promise<OffsetIndex | null> {
    const content = await readIndexFile(path);
    if (content === null || !isSaneOffsetIndex(content, entriesMax, logBytes)) return null;
    return new OffsetIndex(path, baseOffset, entriesMax, content);
  }

  /** The last entry, or null when empty. */
  lastEntry(): IndexEntry | null {
    return this.count === 0 ? null : this.entryAt(this.count - 1);
  }

  /** Adds an entry in memory; {@link flush} writes it. Asserts that entries increase. */
  append(offset: number, position: number): void {
    const relative = offset - this.baseOffset;
    if (relative < 0 || relative > MAX_RELATIVE_OFFSET) throw new RangeError(`offset ${offset} is outside index base ${this.baseOffset}`);
    if (this.isFull()) throw new Error(`offset index ${this.path} is full (${this.entriesMax} entries)`);
    const last = this.lastEntry();
    if (last !== null && (offset <= last.offset || position <= last.position)) {
      throw new Error(`index entry (${offset}, ${position}) does not follow (${last.offset}, ${last.position})`);
    }
    this.ensureCapacity(this.count + 1);
    const at = this.count * INDEX_ENTRY_BYTES;
    this.entries.writeUInt32BE(relative, at);
    this.entries.writeUInt32BE(position, at + 4);
    this.count += 1;
  }

  /**
   * The entry with the largest offset ≤ `target`, or `{ baseOffset, 0 }` when
   * every entry is larger (the scan then starts at the segment's first byte).
   */
  lookup(target: number): IndexEntry {
    let low = 0;
    let high = this.count - 1;
    let found = -1;
    while (low <= high) {
      const mid = (low + high) >>> 1;
      if (this.baseOffset + this.entries.readUInt32BE(mid * INDEX_ENTRY_BYTES) <= target) {
        found = mid;
        low = mid + 1;
      } else {
        high = mid - 1;
      }
    }
    return found < 0 ? { offset: this.baseOffset, position: 0 } : this.entryAt(found);
  }

  /** Drops entries pointing at `position` or beyond (after the log was truncated there). */
  truncateToPosition(position: number): void {
    let keep = this.count;
    while (keep > 0 && this.entries.readUInt32BE((keep - 1) * INDEX_ENTRY_BYTES + 4) >= position) keep -= 1;
    this.truncateToEntries(keep);
  }

  /** The `i`-th entry (0-based). */
  entryAt(i: number): IndexEntry {
    const at = i * INDEX_ENTRY_BYTES;
    return { offset: this.baseOffset + this.entries.readUInt32BE(at), position: this.entries.readUInt32BE(at + 4) };
  }
}

function isSaneOffsetIndex(content: Buffer, entriesMax: number, logBytes: number): boolean {
  if (content.length % INDEX_ENTRY_BYTES !== 0) return false;
  const count = content.length / INDEX_ENTRY_BYTES;
  if (count > entriesMax) return false;
  let previousOffset = -1;
  let previousPosition = -1;
  for (let i = 0; i < count; i++) {
    const relative = content.readUInt32BE(i * INDEX_ENTRY_BYTES);
    const position = content.readUInt32BE(i * INDEX_ENTRY_BYTES + 4);
    if (relative > MAX_RELATIVE_OFFSET || relative <= previousOffset || position <= previousPosition) return false;
    if (position >= logBytes) return false;
    previousOffset = relative;
    previousPosition = position;
  }
  return true;
}
