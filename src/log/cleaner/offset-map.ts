import { hash } from 'node:crypto';

/** Bytes of one slot: the key's 16-byte MD5 and the offset (int64). */
export const OFFSET_MAP_SLOT_BYTES = 24;
/** Share of the slots filled before the map counts as full (Kafka's dedupe buffer load factor). */
export const OFFSET_MAP_LOAD_FACTOR = 0.9;
const HASH_BYTES = 16;

/**
 * The log cleaner's map from a record key to the offset of the latest record
 * with that key in the dirty section (Kafka's `SkimpyOffsetMap`), in a fixed
 * amount of memory.
 *
 * Layout: one Buffer of `slots × 24` bytes, open addressing with linear
 * probing; a slot is `md5(key) (16 bytes) · offset + 1 (int64, big-endian)`;
 * a slot whose offset field is 0 is empty (offset + 1 is stored, so that
 * offset 0 is not mistaken for empty). Keys are
 * compared by their MD5 only, as Kafka does: two keys colliding in 128 bits
 * would have the older's records dropped, which is not a practical risk.
 *
 * Bounded: {@link isFull} turns true at 90% of the slots; the cleaner stops
 * filling the map there and cleans the rest of the dirty section in a later
 * pass. Nothing here allocates after construction except the hash digest
 * of each key (a 16-byte Buffer, short-lived).
 *
 * Not for concurrent use; one cleaner owns one map and {@link clear}s it
 * between partitions and passes.
 */
export class OffsetMap {
  private readonly slots: Buffer;
  private readonly slotCount: number;
  private readonly capacity: number;
  private used = 0;
  /** Lookups and probes, for the cleaner's statistics. */
  probes = 0;

  /**
   * @param memoryBytes bytes of the table (at least one slot)
   * @throws RangeError when `memoryBytes` holds fewer than two slots
   */
  constructor(memoryBytes: number) {
    this.slotCount = Math.floor(memoryBytes / OFFSET_MAP_SLOT_BYTES);
    if (this.slotCount < 2) throw new RangeError(`an offset map of ${memoryBytes} bytes holds fewer than 2 slots of ${OFFSET_MAP_SLOT_BYTES} bytes`);
    this.capacity = Math.max(1, Math.floor(this.slotCount * OFFSET_MAP_LOAD_FACTOR));
    this.slots = Buffer.alloc(this.slotCount * OFFSET_MAP_SLOT_BYTES);
  }

  /** Keys the map holds. */
  get size(): number {
    return this.used;
  }

  /** Most keys the map takes ({@link OFFSET_MAP_LOAD_FACTOR} of its slots). */
  get keysMax(): number {
    return this.capacity;
  }

  /** Whether another new key would pass {@link keysMax}. */
  isFull(): boolean {
    return this.used >= this.capacity;
  }

  /** The 16-byte digest {@link put} and {@link get} take for `key`. */
  static digest(key: Buffer): Buffer {
    return hash('md5', key, 'buffer');
  }

  /**
   * Records `offset` as the latest of the key with digest `digest`.
   * @throws Error when the key is new and the map is full (the caller checks {@link isFull} first)
   */
  put(digest: Buffer, offset: number): void {
    const slot = this.find(digest);
    const at = slot * OFFSET_MAP_SLOT_BYTES;
    if (this.isEmpty(at)) {
      if (this.isFull()) throw new Error(`offset map is full (${this.capacity} keys)`);
      digest.copy(this.slots, at, 0, HASH_BYTES);
      this.used += 1;
    }
    writeOffset(this.slots, at + HASH_BYTES, offset + 1);
  }

  /** The latest offset recorded for the key with `digest`, or -1. */
  get(digest: Buffer): number {
    const at = this.find(digest) * OFFSET_MAP_SLOT_BYTES;
    return this.isEmpty(at) ? -1 : readOffset(this.slots, at + HASH_BYTES) - 1;
  }

  /** Whether the key with `digest` is in the map. */
  has(digest: Buffer): boolean {
    return !this.isEmpty(this.find(digest) * OFFSET_MAP_SLOT_BYTES);
  }

  /** Empties the map (the memory stays). */
  clear(): void {
    this.slots.fill(0);
    this.used = 0;
  }

  /** The slot holding `digest`, or the empty slot where it would go. */
  private find(digest: Buffer): number {
    let slot = digest.readUInt32BE(0) % this.slotCount;
    for (;;) {
      this.probes += 1;
      const at = slot * OFFSET_MAP_SLOT_BYTES;
      if (this.isEmpty(at) || this.slots.compare(digest, 0, HASH_BYTES, at, at + HASH_BYTES) === 0) return slot;
      slot = slot + 1 === this.slotCount ? 0 : slot + 1;
    }
  }

  private isEmpty(at: number): boolean {
    // offset + 1 is stored, so a used slot never has a zero offset field.
    return this.slots.readUInt32BE(at + HASH_BYTES) === 0 && this.slots.readUInt32BE(at + HASH_BYTES + 4) === 0;
  }
}

function writeOffset(buf: Buffer, at: number, value: number): void {
  const high = Math.floor(value / 0x1_0000_0000);
  buf.writeUInt32BE(high, at);
  buf.writeUInt32BE(value - high * 0x1_0000_0000, at + 4);
}

function readOffset(buf: Buffer, at: number): number {
  return buf.readUInt32BE(at) * 0x1_0000_0000 + buf.readUInt32BE(at + 4);
}
