import type { FileHandle } from 'node:fs/promises';
import { ConcordatError, ErrorCode } from '../errors.js';
import { openFile, readWholeFile } from './open-file.js';

/**
 * What the offset index (offset-index.ts) and the time index
 * (time-index.ts) share: a packed array of fixed-width entries, held in
 * memory and appended to its file only when flushed.
 *
 * The entries live in a Buffer that grows by doubling up to `maxEntries`
 * (plus the reserved slots of a subclass). {@link flush} writes the entries
 * added since the last flush with one positional write, cuts the file to the
 * entries, fdatasyncs it and closes it: an index file is never held open, so
 * thousands of segments cost no descriptors (file-pool.ts holds the `.log`
 * files). A flush happens when a segment is rolled, when the recovery point
 * is checkpointed, after a recovery scan, and on close; between flushes the
 * file lags the memory, which recovery allows for (segment.ts).
 */
export abstract class IndexEntries {
  protected entries: Buffer;
  protected count = 0;
  /** Entries already written to the file. */
  private persisted = 0;
  /** The file may hold more (or other) bytes than the persisted entries: cut it on the next flush. */
  private fileDirty = false;

  protected constructor(
    readonly path: string,
    readonly baseOffset: number,
    /** Most entries the index takes before its segment must roll. */
    readonly maxEntries: number,
    protected readonly entryBytes: number,
    /** Slots beyond maxEntries (the time index keeps one for the entry written at roll). */
    private readonly reservedEntries: number,
    initial: Buffer,
  ) {
    const capacity = (maxEntries + reservedEntries) * entryBytes;
    this.entries = Buffer.alloc(Math.min(Math.max(initial.length, 64 * entryBytes), capacity));
    initial.copy(this.entries, 0);
    this.count = initial.length / entryBytes;
    this.persisted = this.count;
  }

  /** Entries in memory (the file may hold fewer until the next flush). */
  get entryCount(): number {
    return this.count;
  }

  /** Bytes of memory the entries take (for the index cache's bound). */
  get memoryBytes(): number {
    return this.entries.length;
  }

  /** Whether the index holds `maxEntries`: the segment must roll before another entry. */
  isFull(): boolean {
    return this.count >= this.maxEntries;
  }

  /** Keeps the first `count` entries. */
  truncateToEntries(count: number): void {
    if (count >= this.count) return;
    this.count = Math.max(0, count);
    if (this.persisted > this.count) {
      this.persisted = this.count;
      this.fileDirty = true;
    }
  }

  /** Drops every entry (before a rebuild). */
  reset(): void {
    this.truncateToEntries(0);
    this.fileDirty = true;
  }

  /**
   * Writes the entries not yet in the file, cuts the file to the entries,
   * fdatasyncs it, and closes it. Everything else here is synchronous, so
   * only a flush can interleave with other calls: reads of the entries may
   * overlap it; appends and truncations should not, since the entries added
   * meanwhile are counted as persisted without being written (the file is
   * cut or zero-extended to the new count) and the next load of the file
   * fails its checks and rebuilds the index from the log.
   * @throws the file error of the write, truncate or sync (the entries stay unpersisted and the next flush writes them again)
   */
  async flush(): Promise<void> {
    if (this.persisted === this.count && !this.fileDirty) return;
    const file = await openIndexFile(this.path);
    try {
      if (this.persisted < this.count) {
        const from = this.persisted * this.entryBytes;
        await writeFully(file, this.entries.subarray(from, this.count * this.entryBytes), from);
      }
      await file.truncate(this.count * this.entryBytes);
      await file.datasync();
      this.persisted = this.count;
      this.fileDirty = false;
    } finally {
      await file.close();
    }
  }

  /** Makes room for one more entry (within maxEntries + reserved slots). */
  protected ensureCapacity(entries: number): void {
    const needed = entries * this.entryBytes;
    if (needed <= this.entries.length) return;
    const capacity = (this.maxEntries + this.reservedEntries) * this.entryBytes;
    if (needed > capacity) throw new Error(`index ${this.path} is full (${this.maxEntries} entries)`);
    const grown = Buffer.alloc(Math.min(Math.max(needed, this.entries.length * 2), capacity));
    this.entries.copy(grown, 0, 0, this.count * this.entryBytes);
    this.entries = grown;
  }
}

/** Reads an index file whole; null when it does not exist. */
export async function readIndexFile(path: string): Promise<Buffer | null> {
  try {
    return await readWholeFile(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

/** Creates (or empties) an index file. */
export async function createIndexFile(path: string): Promise<void> {
  const file = await openFile(path, 'w');
  await file.close();
}

async function openIndexFile(path: string): Promise<FileHandle> {
  try {
    return await openFile(path, 'r+');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return openFile(path, 'w+');
    throw error;
  }
}

/** Positional write of all of `data`, continuing after short writes. */
export async function writeFully(file: FileHandle, data: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await file.write(data, done, data.length - done, position + done);
    if (bytesWritten <= 0) {
      throw new ConcordatError(`short write to ${position + done}`, { code: ErrorCode.KAFKA_STORAGE_ERROR, retriable: true });
    }
    done += bytesWritten;
  }
}
