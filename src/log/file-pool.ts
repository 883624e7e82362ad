import type { FileHandle } from 'node:fs/promises';
import { openFile as openLogFile } from './open-file.js';

interface Entry {
  path: string;
  handle: Promise<FileHandle>;
  users: number;
  /** Close when the last user releases it (the file was discarded). */
  doomed: boolean;
}

/** Counters for tests and benchmarks. */
export interface FilePoolStats {
  /** Descriptors open now. */
  open: number;
  /** Opens since the pool was made. */
  opened: number;
  /** Closes since the pool was made (evictions, discards, closeAll). */
  closed: number;
  /** Uses that had to wait for a descriptor (every one busy at openFilesMax). */
  waits: number;
}

/**
 * The open segment files of the whole log, bounded by `openFilesMax`.
 *
 * Every read, write and sync of a `.log` file goes through {@link use}: the
 * file is opened on first use (`r+`), kept open afterwards, and the least
 * recently used idle file is closed when opening another would pass the
 * bound. When every open file is in use, the next use waits for one to be
 * released; no caller holds a file while waiting for another, so this
 * cannot deadlock. Index files are not pooled: they are read whole into
 * memory and written only when flushed (roll, checkpoint, close).
 *
 * All I/O is positional (pread/pwrite), so readers and the writer share one
 * descriptor. Closing an idle descriptor between a write and its fdatasync
 * is safe: fdatasync on any descriptor of a file flushes all of the file's
 * dirty pages, and Linux (≥ 4.13, errseq) reports a writeback error to a
 * descriptor opened after it happened if no one saw it yet.
 *
 * A removed file's descriptor is closed once its last user releases it
 * ({@link discard}); its bytes stay readable until then, as POSIX keeps an
 * unlinked inode alive while it is open. Running out of descriptors anyway
 * (EMFILE) is LIMIT_EXCEEDED naming openFilesMax (open-file.ts).
 *
 * Concurrency (one event loop; calls interleave at every await): any number
 * of `use` calls may overlap, on one path or many; one path's users share
 * one descriptor. `discard` and `closeAll` may overlap uses: a descriptor in
 * use is closed when its last user releases it. Callers must not nest `use`
 * calls (hold one file while waiting for another): that is what keeps a
 * full pool from deadlocking.
 */
export class FilePool {
  /** Insertion order is recency: an entry is moved to the end on every use. */
  private readonly entries = new Map<string, Entry>();
  private readonly waiters: (() => void)[] = [];
  private readonly counters = { opened: 0, closed: 0, waits: 0 };
  private openCount = 0;

  constructor(readonly openFilesMax: number) {}

  /** Descriptors open now and the counters since the pool was made (a copy). */
  get stats(): FilePoolStats {
    return { open: this.openCount, ...this.counters };
  }

  /**
   * Runs `fn` with an open handle of `path`, opening it when needed, and
   * returns what `fn` returns. `create` opens with `w+` (create or truncate)
   * instead of `r+`. Waits while every descriptor is in use. `fn` must not
   * close the handle, nor call `use` itself.
   * @throws ConcordatError LIMIT_EXCEEDED when the process has no descriptor left (EMFILE/ENFILE)
   */
  async use<T>(path: string, fn: (file: FileHandle) => Promise<T>, create = false): Promise<T> {
    const entry = await this.acquire(path, create);
    try {
      return await fn(await entry.handle);
    } finally {
      this.release(entry);
    }
  }

  /** Closes `path`'s descriptor now, or when its last user is done. Later uses reopen the path. */
  async discard(path: string): Promise<void> {
    const entry = this.entries.get(path);
    if (entry === undefined) return;
    this.entries.delete(path);
    entry.doomed = true;
    if (entry.users === 0) await this.close(entry);
  }

  /** Closes every idle descriptor; used ones close when released. */
  async closeAll(): Promise<void> {
    const closing: Promise<void>[] = [];
    for (const entry of [...this.entries.values()]) {
      this.entries.delete(entry.path);
      entry.doomed = true;
      if (entry.users === 0) closing.push(this.close(entry));
    }
    await Promise.allSettled(closing);
  }

  private async acquire(path: string, create: boolean): Promise<Entry> {
    for (;;) {
      const existing = create ? undefined : this.entries.get(path);
      if (existing !== undefined) {
        this.entries.delete(path);
        this.entries.set(path, existing);
        existing.users += 1;
        return existing;
      }
      if (create) await this.discard(path);
      if (this.openCount < this.openFilesMax || this.evictIdle()) return this.openEntry(path, create);
      this.counters.waits += 1;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  private openEntry(path: string, create: boolean): Entry {
    this.openCount += 1;
    this.counters.opened += 1;
    const entry: Entry = { path, handle: openFile(path, create, this.openFilesMax), users: 1, doomed: false };
    this.entries.set(path, entry);
    entry.handle.catch(() => {
      // A failed open takes no descriptor; later uses try again.
      if (this.entries.get(path) === entry) this.entries.delete(path);
      entry.doomed = true;
    });
    return entry;
  }

  /** Closes the least recently used idle descriptor; false when every one is in use. */
  private evictIdle(): boolean {
    for (const entry of this.entries.values()) {
      if (entry.users > 0) continue;
      this.entries.delete(entry.path);
      entry.doomed = true;
      void this.close(entry);
      return true;
    }
    return false;
  }

  private release(entry: Entry): void {
    entry.users -= 1;
    if (entry.users === 0 && entry.doomed) void this.close(entry);
    else if (entry.users === 0) this.waiters.shift()?.();
  }

  private async close(entry: Entry): Promise<void> {
    let handle: FileHandle | null = null;
    try {
      handle = await entry.handle;
    } catch {
      // Never opened: nothing to close.
    }
    if (handle !== null) await handle.close().catch(() => {});
    this.openCount -= 1;
    this.counters.closed += 1;
    this.waiters.shift()?.();
  }
}

function openFile(path: string, create: boolean, openFilesMax: number): Promise<FileHandle> {
  return openLogFile(path, create ? 'w+' : 'r+', openFilesMax);
}
