import { ConcordatError, ErrorCode } from '../../errors.js';

/**
 * Bounds a {@link Reader} applies to every variable-length field it decodes.
 * Lengths are also always checked against the bytes left in the frame, so a
 * forged length can never make the broker allocate more than the frame holds.
 */
export interface ReaderLimits {
  /** Longest string accepted, in bytes (Kafka's own INT16 strings stop at 32767). */
  stringBytesMax: number;
  /** Most elements accepted in one array. */
  arrayLengthMax: number;
  /** Most tagged fields accepted in one tagged-field section. */
  taggedFieldsMax: number;
}

/** The limits of a Reader given none: Kafka's INT16 string bound, 100 000 array elements, 64 tagged fields. */
export const DEFAULT_READER_LIMITS: ReaderLimits = Object.freeze({
  stringBytesMax: 32_767,
  arrayLengthMax: 100_000,
  taggedFieldsMax: 64,
});

/** A frame that breaks the grammar or a limit: the connection that sent it is closed. */
export function frameInvalid(reason: string, context: Record<string, unknown> = {}): ConcordatError {
  return new ConcordatError(reason, { code: ErrorCode.FRAME_INVALID, context });
}

const decoder = new TextDecoder('utf-8', { fatal: true });

/**
 * Decodes Kafka's primitive types from one request frame
 * (https://kafka.apache.org/protocol#protocol_types): fixed-width big-endian
 * integers, unsigned and zigzag varints, classic (INT16/INT32 length) and
 * compact (UNSIGNED_VARINT length + 1) strings, bytes and arrays, and tagged
 * field sections. Every read is bounds-checked; any violation throws a
 * FRAME_INVALID {@link ConcordatError} naming the field's position.
 *
 * `bytes()` returns a view on the frame, not a copy: Produce hands the
 * client's record batches to the log exactly as they came.
 */
export class Reader {
  private position: number;

  /**
   * Whether the body being read is a flexible version (KIP-482). The
   * `flex*` reads below pick the compact encoding (and read tagged-field
   * sections) when set, the classic one otherwise, so one decoder serves
   * both; the connection sets it from the API's first flexible version.
   */
  flexible = false;

  constructor(
    private readonly buffer: Buffer,
    private readonly limits: ReaderLimits = DEFAULT_READER_LIMITS,
    offset = 0,
  ) {
    this.position = offset;
  }

  /** Bytes read so far, from the start of the buffer. */
  get offset(): number {
    return this.position;
  }

  /** Bytes left to read. */
  get remaining(): number {
    return this.buffer.length - this.position;
  }

  private need(bytes: number, what: string): number {
    if (bytes > this.remaining) {
      throw frameInvalid(`${what} needs ${bytes} byte(s) at offset ${this.position}, ${this.remaining} left`);
    }
    const at = this.position;
    this.position += bytes;
    return at;
  }

  /** INT8. Every read below throws FRAME_INVALID when the frame ends before the field. */
  int8(): number {
    return this.buffer.readInt8(this.need(1, 'INT8'));
  }

  /** BOOLEAN: any non-zero byte is true. */
  boolean(): boolean {
    return this.buffer.readUInt8(this.need(1, 'BOOLEAN')) !== 0;
  }

  /** INT16, big-endian. */
  int16(): number {
    return this.buffer.readInt16BE(this.need(2, 'INT16'));
  }

  /** INT32, big-endian. */
  int32(): number {
    return this.buffer.readInt32BE(this.need(4, 'INT32'));
  }

  /** UINT32, big-endian. */
  uint32(): number {
    return this.buffer.readUInt32BE(this.need(4, 'UINT32'));
  }

  /** INT64, big-endian, as a bigint. */
  int64Big(): bigint {
    return this.buffer.readBigInt64BE(this.need(8, 'INT64'));
  }

  /** An INT64 that must fit a JavaScript safe integer (offsets, timestamps, producer IDs). */
  int64(): number {
    const at = this.position;
    const value = this.int64Big();
    if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) {
      throw frameInvalid(`INT64 at offset ${at} is outside the safe integer range: ${value}`);
    }
    return Number(value);
  }

  /** UUID: 16 bytes (a view into the frame). */
  uuid(): Buffer {
    const at = this.need(16, 'UUID');
    return this.buffer.subarray(at, at + 16);
  }

  /** UNSIGNED_VARINT: at most 5 bytes, at most 2^32 - 1. */
  uvarint(): number {
    let result = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      const byte = this.buffer.readUInt8(this.need(1, 'UNSIGNED_VARINT'));
      result += (byte & 0x7f) * 2 ** shift;
      if ((byte & 0x80) === 0) {
        if (result > 0xffff_ffff) throw frameInvalid(`UNSIGNED_VARINT ending at ${this.position} exceeds 32 bits`);
        return result;
      }
    }
    throw frameInvalid(`UNSIGNED_VARINT ending at ${this.position} is longer than 5 bytes`);
  }

  /** VARINT: zigzag-encoded signed 32-bit integer. */
  varint(): number {
    const raw = this.uvarint();
    return raw % 2 === 0 ? raw / 2 : -(raw + 1) / 2;
  }

  /** VARLONG: zigzag-encoded signed 64-bit integer, at most 10 bytes; must fit a safe integer. */
  varlong(): number {
    let raw = 0n;
    for (let shift = 0n; shift < 70n; shift += 7n) {
      const byte = this.buffer.readUInt8(this.need(1, 'VARLONG'));
      raw |= BigInt(byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) {
        const value = (raw >> 1n) ^ -(raw & 1n);
        if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) {
          throw frameInvalid(`VARLONG ending at ${this.position} is outside the safe integer range`);
        }
        return Number(value);
      }
    }
    throw frameInvalid(`VARLONG ending at ${this.position} is longer than 10 bytes`);
  }

  private text(length: number, what: string): string {
    if (length > this.limits.stringBytesMax) {
      throw frameInvalid(`${what} at offset ${this.position} is ${length} bytes, limit ${this.limits.stringBytesMax}`);
    }
    const at = this.need(length, what);
    try {
      return decoder.decode(this.buffer.subarray(at, at + length));
    } catch {
      throw frameInvalid(`${what} at offset ${at} is not valid UTF-8`);
    }
  }

  /** STRING: INT16 length, then UTF-8 bytes. */
  string(): string {
    const length = this.int16();
    if (length < 0) throw frameInvalid(`STRING at offset ${this.position - 2} has negative length ${length}`);
    return this.text(length, 'STRING');
  }

  /** NULLABLE_STRING: INT16 length, -1 for null. */
  nullableString(): string | null {
    const length = this.int16();
    if (length === -1) return null;
    if (length < 0) throw frameInvalid(`NULLABLE_STRING at offset ${this.position - 2} has length ${length}`);
    return this.text(length, 'NULLABLE_STRING');
  }

  /** COMPACT_STRING: UNSIGNED_VARINT length + 1. */
  compactString(): string {
    const length = this.uvarint() - 1;
    if (length < 0) throw frameInvalid(`COMPACT_STRING ending at ${this.position} is null`);
    return this.text(length, 'COMPACT_STRING');
  }

  /** COMPACT_NULLABLE_STRING: UNSIGNED_VARINT length + 1, 0 for null. */
  compactNullableString(): string | null {
    const length = this.uvarint() - 1;
    if (length < 0) return null;
    return this.text(length, 'COMPACT_NULLABLE_STRING');
  }

  private slice(length: number, what: string): Buffer {
    const at = this.need(length, what);
    return this.buffer.subarray(at, at + length);
  }

  /** BYTES: INT32 length, then that many bytes (a view on the frame). */
  bytes(): Buffer {
    const length = this.int32();
    if (length < 0) throw frameInvalid(`BYTES at offset ${this.position - 4} has negative length ${length}`);
    return this.slice(length, 'BYTES');
  }

  /** NULLABLE_BYTES (and RECORDS): INT32 length, -1 for null. */
  nullableBytes(): Buffer | null {
    const length = this.int32();
    if (length === -1) return null;
    if (length < 0) throw frameInvalid(`NULLABLE_BYTES at offset ${this.position - 4} has length ${length}`);
    return this.slice(length, 'NULLABLE_BYTES');
  }

  /** COMPACT_BYTES: UNSIGNED_VARINT length + 1, then the bytes (a view); null is refused. */
  compactBytes(): Buffer {
    const length = this.uvarint() - 1;
    if (length < 0) throw frameInvalid(`COMPACT_BYTES ending at ${this.position} is null`);
    return this.slice(length, 'COMPACT_BYTES');
  }

  /** COMPACT_NULLABLE_BYTES: UNSIGNED_VARINT length + 1 (0 for null), then the bytes (a view). */
  compactNullableBytes(): Buffer | null {
    const length = this.uvarint() - 1;
    if (length < 0) return null;
    return this.slice(length, 'COMPACT_NULLABLE_BYTES');
  }

  private checkCount(count: number, what: string): void {
    if (count > this.limits.arrayLengthMax) {
      throw frameInvalid(`${what} at offset ${this.position} has ${count} elements, limit ${this.limits.arrayLengthMax}`);
    }
    // Every element takes at least one byte: a count beyond the bytes left is a lie.
    if (count > this.remaining) {
      throw frameInvalid(`${what} at offset ${this.position} claims ${count} elements with ${this.remaining} byte(s) left`);
    }
  }

  private elements<T>(count: number, what: string, element: (reader: Reader) => T): T[] {
    this.checkCount(count, what);
    const result: T[] = [];
    for (let i = 0; i < count; i += 1) result.push(element(this));
    return result;
  }

  /** ARRAY: INT32 count (null not allowed), then the elements. */
  array<T>(element: (reader: Reader) => T): T[] {
    const count = this.int32();
    if (count < 0) throw frameInvalid(`ARRAY at offset ${this.position - 4} has count ${count}`);
    return this.elements(count, 'ARRAY', element);
  }

  /** Nullable ARRAY: INT32 count, -1 for null. */
  nullableArray<T>(element: (reader: Reader) => T): T[] | null {
    const count = this.int32();
    if (count === -1) return null;
    if (count < 0) throw frameInvalid(`ARRAY at offset ${this.position - 4} has count ${count}`);
    return this.elements(count, 'ARRAY', element);
  }

  /** COMPACT_ARRAY: UNSIGNED_VARINT count + 1 (null not allowed). */
  compactArray<T>(element: (reader: Reader) => T): T[] {
    const count = this.uvarint() - 1;
    if (count < 0) throw frameInvalid(`COMPACT_ARRAY ending at ${this.position} is null`);
    return this.elements(count, 'COMPACT_ARRAY', element);
  }

  /** Nullable COMPACT_ARRAY: UNSIGNED_VARINT count + 1, 0 for null. */
  compactNullableArray<T>(element: (reader: Reader) => T): T[] | null {
    const count = this.uvarint() - 1;
    if (count < 0) return null;
    return this.elements(count, 'COMPACT_ARRAY', element);
  }

  /**
   * TAGGED_FIELDS: UNSIGNED_VARINT count, then (tag, size, bytes) each.
   * Tags must ascend strictly (KIP-482). No field Concordat decodes has a
   * tag yet, so the values are returned raw for the caller to ignore.
   */
  taggedFields(): Map<number, Buffer> {
    const count = this.uvarint();
    if (count > this.limits.taggedFieldsMax) {
      throw frameInvalid(`TAGGED_FIELDS at offset ${this.position} has ${count} fields, limit ${this.limits.taggedFieldsMax}`);
    }
    const fields = new Map<number, Buffer>();
    let previous = -1;
    for (let i = 0; i < count; i += 1) {
      const tag = this.uvarint();
      if (tag <= previous) throw frameInvalid(`TAGGED_FIELDS tag ${tag} after ${previous} is not ascending`);
      previous = tag;
      const size = this.uvarint();
      fields.set(tag, this.slice(size, 'TAGGED_FIELD'));
    }
    return fields;
  }

  /** STRING, or COMPACT_STRING in a flexible version. */
  flexString(): string {
    return this.flexible ? this.compactString() : this.string();
  }

  /** NULLABLE_STRING, or COMPACT_NULLABLE_STRING in a flexible version. */
  flexNullableString(): string | null {
    return this.flexible ? this.compactNullableString() : this.nullableString();
  }

  /** BYTES, or COMPACT_BYTES in a flexible version (a view on the frame). */
  flexBytes(): Buffer {
    return this.flexible ? this.compactBytes() : this.bytes();
  }

  /** NULLABLE_BYTES (and RECORDS), or their compact forms in a flexible version (a view on the frame). */
  flexNullableBytes(): Buffer | null {
    return this.flexible ? this.compactNullableBytes() : this.nullableBytes();
  }

  /** ARRAY, or COMPACT_ARRAY in a flexible version. */
  flexArray<T>(element: (reader: Reader) => T): T[] {
    return this.flexible ? this.compactArray(element) : this.array(element);
  }

  /** Nullable ARRAY, or nullable COMPACT_ARRAY in a flexible version. */
  flexNullableArray<T>(element: (reader: Reader) => T): T[] | null {
    return this.flexible ? this.compactNullableArray(element) : this.nullableArray(element);
  }

  /** The tagged-field section that ends a structure in a flexible version (nothing in a classic one); returned raw, empty when classic. */
  flexTags(): Map<number, Buffer> {
    return this.flexible ? this.taggedFields() : new Map<number, Buffer>();
  }
}
