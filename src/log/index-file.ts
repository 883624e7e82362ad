import type { FileHandle } from 'node:fs/promises';
import { ConcordatError, ErrorCode } from '../errors.js';
import { openFile, readWholeFile } from './open-file.js';

/**
 * What the offset index (offset-index.ts) and the time index
 * (time-index.ts) share: a packed array of fixed-width entries, held in
 * memory and appended to its file only when flushed.
 *
 * The entries live in a Buffer that grows by doubling up to `entriesMax`
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
  /** Truncations so far (a flush that saw one happen while it ran does not count its entries as persisted). */
  private truncations = 0;

  protected constructor(
    readonly path: string,
    readonly baseOffset: number,
    /** Most entries the index takes before its segment must roll. */
    readonly entriesMax: number,
    protected readonly entryBytes: number,
    /** Slots beyond entriesMax (the time index keeps one for the entry written at roll). */
    private readonly reservedEntries: number,
    initial: Buffer,
  ) {
    const capacity = (entriesMax + reservedEntries) * entryBytes;
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

  /** Whether the index holds `entriesMax`: the segment must roll before another entry. */
  isFull(): boolean {
    return this.count >= this.entriesMax;
  }

  /** Keeps the first `count` entries. */
  truncateToEntries(count: number): void {
    if (count >= this.count) return;
    this.count = Math.max(0, count);
    this.truncations++;
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

  /** The flush running now, if any: flushes run one at a time (two cutting the file to different lengths would race). */
  private flushing: Promise<void> | null = null;

  /**
   * Writes the entries not yet in the file, cuts the file to the entries,
   * fdatasyncs it, and closes it. Everything else here is synchronous, so
   * only a flush can interleave with other calls, and any call may overlap
   * it: the flush writes the entries as they were when it began, and an
   * entry appended meanwhile stays unpersisted for the next flush (an
   * entry truncated meanwhile makes the next flush cut the file again).
   * Flushes are serialized: one called while another runs starts after it.
   * @throws the file error of the write, truncate or sync (the entries stay unpersisted and the next flush writes them again)
   */
  flush(): Promise<void> {
    const previous = this.flushing ?? Promise.resolve();
    const run = previous.then(
      () => this.flushNow(),
      () => this.flushNow(),
    );
    const settled = run.finally(() => {
      if (this.flushing === settled) this.flushing = null;
    });
    this.flushing = settled;
    return settled;
  }

  private async flushNow(): Promise<void> {
    if (this.persisted === this.count && !this.fileDirty) return;
    // What this flush writes: the entries present now. Appends and truncations may run while it awaits.
    const from = this.persisted;
    const target = this.count;
    const truncations = this.truncations;
    // A copy: an append may grow (replace) the buffer, a truncation and appends may rewrite its tail, while this flush awaits.
    const bytes = Buffer.from(this.entries.subarray(from * this.entryBytes, target * this.entryBytes));
    this.fileDirty = false;
    const file = await openIndexFile(this.path);
    try {
      if (bytes.length > 0) await writeFully(file, bytes, from * this.entryBytes);
      await file.truncate(target * this.entryBytes);
      await file.datasync();
      if (this.truncations === truncations) {
        this.persisted = Math.max(this.persisted, target); // entries appended meanwhile stay for the next flush
      } else {
        // Truncated while this flush ran: what it wrote may no longer be the entries; the next flush rewrites and cuts from the new count.
        this.persisted = Math.min(this.persisted, this.count);
        this.fileDirty = true;
      }
    } catch (error) {
      this.fileDirty = true;
      throw error;
    } finally {
      await file.close();
    }
  }

  /** Makes room for one more entry (within entriesMax + reserved slots). */
  protected ensureCapacity(entries: number): void {
    const needed = entries * this.entryBytes;
    if (needed <= this.entries.length) return;
    const capacity = (this.entriesMax + this.reservedEntries) * this.entryBytes;
    if (needed > capacity) throw new Error(`index ${this.path} is full (${this.entriesMax} entries)`);
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
      throw new ConcordatError(`short write to ${position + done}`, { code: ErrorCode.KAFKA_STORAGE_ERROR });
    }
    done += bytesWritten;
  }
}
