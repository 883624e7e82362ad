const INITIAL_BYTES = 256;
/** Byte fields at least this long become their own chunk instead of being copied. */
const CHUNK_THRESHOLD_BYTES = 4096;

/**
 * Encodes Kafka's primitive types into a response
 * (https://kafka.apache.org/protocol#protocol_types).
 *
 * Small fields go into a growing scratch buffer; large byte fields (the
 * record batches a Fetch serves) are kept as separate chunks, so a response
 * is written to the socket with `writev` and the log's buffers are never
 * copied.
 */
export class Writer {
  private readonly chunks: Buffer[] = [];
  private chunksBytes = 0;
  private scratch: Buffer;
  private position = 0;

  /**
   * Whether the body being written is a flexible version (KIP-482): the
   * `flex*` writers below then use the compact encodings and write the
   * tagged-field sections. The connection sets it from the API's first
   * flexible version.
   */
  flexible = false;

  constructor(initialBytes = INITIAL_BYTES) {
    this.scratch = Buffer.allocUnsafe(initialBytes);
  }

  /** Bytes written so far. */
  get length(): number {
    return this.chunksBytes + this.position;
  }

  private ensure(bytes: number): number {
    if (this.position + bytes > this.scratch.length) {
      const grown = Buffer.allocUnsafe(Math.max(this.scratch.length * 2, this.position + bytes));
      this.scratch.copy(grown, 0, 0, this.position);
      this.scratch = grown;
    }
    const at = this.position;
    this.position += bytes;
    return at;
  }

  /** INT8. Every writer returns `this`, for chaining. */
  int8(value: number): this {
    const at = this.ensure(1);
    this.scratch.writeInt8(value, at);
    return this;
  }

  /** BOOLEAN: 1 or 0. */
  boolean(value: boolean): this {
    const at = this.ensure(1);
    this.scratch.writeUInt8(value ? 1 : 0, at);
    return this;
  }

  /** INT16, big-endian. */
  int16(value: number): this {
    const at = this.ensure(2);
    this.scratch.writeInt16BE(value, at);
    return this;
  }

  /** INT32, big-endian. */
  int32(value: number): this {
    const at = this.ensure(4);
    this.scratch.writeInt32BE(value, at);
    return this;
  }

  /** UINT32, big-endian. */
  uint32(value: number): this {
    const at = this.ensure(4);
    this.scratch.writeUInt32BE(value, at);
    return this;
  }

  /** INT64 from a safe integer or a bigint. */
  int64(value: number | bigint): this {
    const at = this.ensure(8);
    this.scratch.writeBigInt64BE(BigInt(value), at);
    return this;
  }

  /** UUID. @throws RangeError unless `value` is 16 bytes */
  uuid(value: Buffer): this {
    if (value.length !== 16) throw new RangeError(`UUID must be 16 bytes, got ${value.length}`);
    return this.raw(value);
  }

  /** UNSIGNED_VARINT (7 bits a byte, low first). @throws RangeError outside 0..2^32-1 */
  uvarint(value: number): this {
    if (!Number.isInteger(value) || value < 0 || value > 0xffff_ffff) {
      throw new RangeError(`UNSIGNED_VARINT out of range: ${value}`);
    }
    let rest = value;
    while (rest >= 0x80) {
      const at = this.ensure(1);
      this.scratch.writeUInt8((rest % 0x80) | 0x80, at);
      rest = Math.floor(rest / 0x80);
    }
    const at = this.ensure(1);
    this.scratch.writeUInt8(rest, at);
    return this;
  }

  /** VARINT: zigzag. */
  varint(value: number): this {
    return this.uvarint(value >= 0 ? value * 2 : -value * 2 - 1);
  }

  /** VARLONG: zigzag over 64 bits. */
  varlong(value: number | bigint): this {
    const big = BigInt(value);
    let raw = BigInt.asUintN(64, (big << 1n) ^ (big >> 63n));
    while (raw >= 0x80n) {
      const at = this.ensure(1);
      this.scratch.writeUInt8(Number(raw & 0x7fn) | 0x80, at);
      raw >>= 7n;
    }
    const at = this.ensure(1);
    this.scratch.writeUInt8(Number(raw), at);
    return this;
  }

  /** Appends bytes as they are; large buffers are kept by reference, not copied. */
  raw(bytes: Buffer): this {
    if (bytes.length >= CHUNK_THRESHOLD_BYTES) {
      this.flushScratch();
      this.chunks.push(bytes);
      this.chunksBytes += bytes.length;
      return this;
    }
    const at = this.ensure(bytes.length);
    bytes.copy(this.scratch, at);
    return this;
  }

  private flushScratch(): void {
    if (this.position === 0) return;
    const done = this.scratch.subarray(0, this.position);
    this.chunks.push(done);
    this.chunksBytes += done.length;
    this.scratch = this.scratch.subarray(this.position);
    if (this.scratch.length < INITIAL_BYTES) this.scratch = Buffer.allocUnsafe(INITIAL_BYTES);
    this.position = 0;
  }

  /** STRING: INT16 length, then UTF-8. @throws RangeError over 32767 bytes */
  string(value: string): this {
    const bytes = Buffer.from(value, 'utf8');
    if (bytes.length > 0x7fff) throw new RangeError(`STRING too long: ${bytes.length} bytes`);
    return this.int16(bytes.length).raw(bytes);
  }

  /** NULLABLE_STRING: INT16 length (-1 for null), then UTF-8. */
  nullableString(value: string | null): this {
    return value === null ? this.int16(-1) : this.string(value);
  }

  /** COMPACT_STRING: UNSIGNED_VARINT length + 1, then UTF-8. */
  compactString(value: string): this {
    const bytes = Buffer.from(value, 'utf8');
    return this.uvarint(bytes.length + 1).raw(bytes);
  }

  /** COMPACT_NULLABLE_STRING: UNSIGNED_VARINT length + 1 (0 for null), then UTF-8. */
  compactNullableString(value: string | null): this {
    return value === null ? this.uvarint(0) : this.compactString(value);
  }

  /** BYTES: INT32 length, then the bytes (kept by reference when large). */
  bytes(value: Buffer): this {
    return this.int32(value.length).raw(value);
  }

  /** NULLABLE_BYTES: INT32 length (-1 for null), then the bytes. */
  nullableBytes(value: Buffer | null): this {
    return value === null ? this.int32(-1) : this.bytes(value);
  }

  /** COMPACT_BYTES: UNSIGNED_VARINT length + 1, then the bytes. */
  compactBytes(value: Buffer): this {
    return this.uvarint(value.length + 1).raw(value);
  }

  /** COMPACT_NULLABLE_BYTES: UNSIGNED_VARINT length + 1 (0 for null), then the bytes. */
  compactNullableBytes(value: Buffer | null): this {
    return value === null ? this.uvarint(0) : this.compactBytes(value);
  }

  /** ARRAY: INT32 count, then each element as `element` writes it. */
  array<T>(items: readonly T[], element: (writer: Writer, item: T) => void): this {
    this.int32(items.length);
    for (const item of items) element(this, item);
    return this;
  }

  /** Nullable ARRAY: INT32 count (-1 for null), then the elements. */
  nullableArray<T>(items: readonly T[] | null, element: (writer: Writer, item: T) => void): this {
    return items === null ? this.int32(-1) : this.array(items, element);
  }

  /** COMPACT_ARRAY: UNSIGNED_VARINT count + 1, then the elements. */
  compactArray<T>(items: readonly T[], element: (writer: Writer, item: T) => void): this {
    this.uvarint(items.length + 1);
    for (const item of items) element(this, item);
    return this;
  }

  /** Nullable COMPACT_ARRAY: UNSIGNED_VARINT count + 1 (0 for null), then the elements. */
  compactNullableArray<T>(items: readonly T[] | null, element: (writer: Writer, item: T) => void): this {
    return items === null ? this.uvarint(0) : this.compactArray(items, element);
  }

  /** TAGGED_FIELDS: Concordat writes no tagged field yet, only the empty section. */
  emptyTaggedFields(): this {
    return this.uvarint(0);
  }

  /**
   * TAGGED_FIELDS with the fields given (tag ascending, each value already
   * encoded), for the few tagged fields Concordat answers (e.g. Fetch's
   * current leader). @throws RangeError when the tags do not ascend
   */
  taggedFields(fields: readonly { tag: number; value: Buffer }[]): this {
    this.uvarint(fields.length);
    let previous = -1;
    for (const field of fields) {
      if (field.tag <= previous) throw new RangeError(`tagged field ${field.tag} after ${previous} is not ascending`);
      previous = field.tag;
      this.uvarint(field.tag).uvarint(field.value.length).raw(field.value);
    }
    return this;
  }

  /** STRING, or COMPACT_STRING in a flexible version. */
  flexString(value: string): this {
    return this.flexible ? this.compactString(value) : this.string(value);
  }

  /** NULLABLE_STRING, or COMPACT_NULLABLE_STRING in a flexible version. */
  flexNullableString(value: string | null): this {
    return this.flexible ? this.compactNullableString(value) : this.nullableString(value);
  }

  /** BYTES, or COMPACT_BYTES in a flexible version. */
  flexBytes(value: Buffer): this {
    return this.flexible ? this.compactBytes(value) : this.bytes(value);
  }

  /** NULLABLE_BYTES (and RECORDS), or their compact forms in a flexible version. */
  flexNullableBytes(value: Buffer | null): this {
    return this.flexible ? this.compactNullableBytes(value) : this.nullableBytes(value);
  }

  /** ARRAY, or COMPACT_ARRAY in a flexible version. */
  flexArray<T>(items: readonly T[], element: (writer: Writer, item: T) => void): this {
    return this.flexible ? this.compactArray(items, element) : this.array(items, element);
  }

  /** Nullable ARRAY, or nullable COMPACT_ARRAY in a flexible version. */
  flexNullableArray<T>(items: readonly T[] | null, element: (writer: Writer, item: T) => void): this {
    return this.flexible ? this.compactNullableArray(items, element) : this.nullableArray(items, element);
  }

  /** The empty tagged-field section that ends a structure in a flexible version (nothing in a classic one). */
  flexTags(): this {
    return this.flexible ? this.emptyTaggedFields() : this;
  }

  /** Everything written, as the chunks to hand to `writev`. */
  toChunks(): Buffer[] {
    this.flushScratch();
    return this.chunks.slice();
  }

  /** Everything written, as one buffer (copies; for tests and small messages). */
  toBuffer(): Buffer {
    return Buffer.concat(this.toChunks());
  }
}
