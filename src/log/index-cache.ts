/** A rolled segment whose loaded indexes the cache may drop (segment.ts). */
export interface IndexHolder {
  /** Forgets the loaded indexes (a later lookup loads them again). */
  dropIndexes(): void;
}

/**
 * Bounds the memory taken by the indexes of rolled segments.
 *
 * The active segment of every partition keeps its offset and time indexes
 * in memory (every append adds to them). A rolled segment's indexes are
 * loaded from their files on first use and registered here; beyond
 * `indexCacheBytesMax` the least recently used are dropped, to be loaded
 * again when next needed. Kafka memory-maps its index files and lets the
 * page cache do this; Node has no mmap, so the bound is explicit.
 *
 * Concurrency: synchronous and shared by every partition of the log; a
 * holder dropped while one of its lookups is loading keeps that load (the
 * segment drops only indexes that are loaded and not loading).
 */
export class IndexCache {
  /** Insertion order is recency. */
  private readonly holders = new Map<IndexHolder, number>();
  private bytes = 0;

  constructor(readonly bytesMax: number) {}

  /** Bytes of the indexes held now (at most `bytesMax`, but for one holder bigger than it). */
  get usedBytes(): number {
    return this.bytes;
  }

  /** Rolled segments whose indexes are held now. */
  get size(): number {
    return this.holders.size;
  }

  /** Marks `holder` (whose indexes take `bytes`) as just used, dropping others beyond the bound. */
  touch(holder: IndexHolder, bytes: number): void {
    const previous = this.holders.get(holder);
    if (previous !== undefined) {
      this.holders.delete(holder);
      this.bytes -= previous;
    }
    this.holders.set(holder, bytes);
    this.bytes += bytes;
    for (const [other, otherBytes] of this.holders) {
      if (this.bytes <= this.bytesMax || other === holder) break;
      this.holders.delete(other);
      this.bytes -= otherBytes;
      other.dropIndexes();
    }
  }

  /** Stops tracking `holder` (its segment became active again, or was deleted). */
  remove(holder: IndexHolder): void {
    const bytes = this.holders.get(holder);
    if (bytes === undefined) return;
    this.holders.delete(holder);
    this.bytes -= bytes;
  }
}
