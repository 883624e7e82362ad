/**
 * Kafka's RecordBatch v2 (magic 2), the log's storage format byte for byte
 * (https://kafka.apache.org/documentation/#recordbatch).
 *
 * ```
 * offset  size  field
 *      0     8  baseOffset            int64   rewritten by the log on append
 *      8     4  batchLength           int32   bytes after this field (total - 12)
 *     12     4  partitionLeaderEpoch  int32   rewritten by the log on append
 *     16     1  magic                 int8    = 2
 *     17     4  crc                   uint32  CRC-32C (Castagnoli) of bytes 21..end
 *     21     2  attributes            int16   bits 0-2 compression, 3 timestamp type,
 *                                              4 transactional, 5 control
 *     23     4  lastOffsetDelta       int32
 *     27     8  baseTimestamp         int64
 *     35     8  maxTimestamp          int64
 *     43     8  producerId            int64   -1 without an idempotent producer
 *     51     2  producerEpoch         int16
 *     53     4  baseSequence          int32
 *     57     4  recordsCount          int32
 *     61     …  records (compressed as a whole when bits 0-2 say so)
 * ```
 * A record (all lengths and deltas zigzag varints; varlong for the timestamp):
 * `length, attributes int8, timestampDelta varlong, offsetDelta varint,
 * keyLength (-1 = null), key, valueLength (-1 = null), value, headerCount,
 * headers: [keyLength, key utf8, valueLength (-1 = null), value]`.
 *
 * Because the CRC starts at `attributes`, the log assigns offsets by
 * rewriting `baseOffset` (and the leader epoch) in place and stores the
 * producer's bytes unchanged: no re-encoding on append, a file-range read on
 * fetch.
 *
 * @module
 */

import { crc32c } from '@node-rs/crc32';
import { ConcordatError, ErrorCode } from '../errors.js';
import { compress, compressionCode, compressionFromCode, CompressionType, decompress } from './compression.js';
import { cursor, readVarint, readVarlong, sizeOfVarint, sizeOfVarlong, writeVarint, writeVarlong, type Cursor } from './varint.js';

/** Bytes before `batchLength`'s count starts: baseOffset (8) and batchLength (4). A batch's size is LOG_OVERHEAD + batchLength. */
export const LOG_OVERHEAD = 12;
/** Bytes of a v2 batch header, up to the first record. */
export const RECORD_BATCH_HEADER_BYTES = 61;
/** The `magic` of RecordBatch v2, the only format the log stores. */
export const MAGIC_V2 = 2;

/** Byte offset of `baseOffset` (int64) in a batch. */
export const BASE_OFFSET_OFFSET = 0;
/** Byte offset of `batchLength` (int32): bytes after this field. */
export const BATCH_LENGTH_OFFSET = 8;
/** Byte offset of `partitionLeaderEpoch` (int32). */
export const PARTITION_LEADER_EPOCH_OFFSET = 12;
/** Byte offset of `magic` (int8). */
export const MAGIC_OFFSET = 16;
/** Byte offset of `crc` (uint32, CRC-32C of the bytes from `attributes` to the end). */
export const CRC_OFFSET = 17;
/** Byte offset of `attributes` (int16), where the CRC starts. */
export const ATTRIBUTES_OFFSET = 21;
/** Byte offset of `lastOffsetDelta` (int32). */
export const LAST_OFFSET_DELTA_OFFSET = 23;
/** Byte offset of `baseTimestamp` (int64, epoch ms). */
export const BASE_TIMESTAMP_OFFSET = 27;
/** Byte offset of `maxTimestamp` (int64, epoch ms). */
export const MAX_TIMESTAMP_OFFSET = 35;
/** Byte offset of `producerId` (int64, -1 for none). */
export const PRODUCER_ID_OFFSET = 43;
/** Byte offset of `producerEpoch` (int16). */
export const PRODUCER_EPOCH_OFFSET = 51;
/** Byte offset of `baseSequence` (int32). */
export const BASE_SEQUENCE_OFFSET = 53;
/** Byte offset of `recordsCount` (int32). */
export const RECORDS_COUNT_OFFSET = 57;
/** Byte offset of the first record (or of the compressed records section). */
export const RECORDS_OFFSET = 61;

const COMPRESSION_MASK = 0x07;
const TIMESTAMP_TYPE_BIT = 0x08;
const TRANSACTIONAL_BIT = 0x10;
const CONTROL_BIT = 0x20;

/** Smallest encoded record: length, attributes, timestampDelta, offsetDelta, key -1, value -1, headerCount. */
const MIN_RECORD_BYTES = 7;

/** A batch's timestamp type, attribute bit 3: the producer's CreateTime or the broker's LogAppendTime. */
export const TimestampType = { CREATE_TIME: 'CreateTime', LOG_APPEND_TIME: 'LogAppendTime' } as const;
/** One of the {@link TimestampType} values. */
export type TimestampType = (typeof TimestampType)[keyof typeof TimestampType];

/** A record header. Kafka allows repeated keys; order is kept. */
export interface RecordHeader {
  key: string;
  value: Buffer | null;
}

/** One record for {@link encodeRecordBatch}. */
export interface RecordInput {
  key: Buffer | null;
  value: Buffer | null;
  headers?: RecordHeader[];
  /** Epoch ms. @default the batch's timestamp (now) */
  timestampMs?: number;
}

/** Options of {@link encodeRecordBatch}: the header fields a producer sets. */
export interface EncodeBatchOptions {
  /** Codec of the records section. @default 'none' */
  compression?: CompressionType;
  /** Written into the header; the log rewrites it on append. @default 0 */
  baseOffset?: number;
  /** Timestamp of records that give none, epoch ms. @default Date.now() */
  timestampMs?: number;
  /** Idempotent producer fields. @default -1, -1, -1 (none) */
  producerId?: number;
  producerEpoch?: number;
  baseSequence?: number;
  /** @default false */
  transactional?: boolean;
  /** Marks a control batch (transaction markers). @default false */
  control?: boolean;
  /** @default 0 */
  partitionLeaderEpoch?: number;
}

/** One record of a decoded batch, offsets and timestamps made absolute. */
export interface DecodedRecord {
  /** baseOffset + offsetDelta. */
  offset: number;
  /** baseTimestamp + timestampDelta, epoch ms. */
  timestampMs: number;
  key: Buffer | null;
  value: Buffer | null;
  headers: RecordHeader[];
}

/** The header fields of one batch (see the layout at the top of this file). */
export interface RecordBatchHeader {
  baseOffset: number;
  /** baseOffset + lastOffsetDelta. */
  lastOffset: number;
  batchLength: number;
  partitionLeaderEpoch: number;
  magic: number;
  crc: number;
  attributes: number;
  compression: CompressionType;
  timestampType: TimestampType;
  isTransactional: boolean;
  isControl: boolean;
  lastOffsetDelta: number;
  baseTimestamp: number;
  maxTimestamp: number;
  producerId: number;
  producerEpoch: number;
  baseSequence: number;
  recordsCount: number;
}

/** A batch's header and its records, decompressed. */
export interface DecodedBatch extends RecordBatchHeader {
  records: DecodedRecord[];
}

/** Options of {@link decodeRecordBatches}. */
export interface DecodeOptions {
  /** Check each batch's CRC-32C. @default true */
  verifyCrc?: boolean;
  /** Largest decompressed records section, in bytes. @default 268435456 */
  decompressedBytesMax?: number;
}

// ---------------------------------------------------------------- int64 helpers

/** Reads an int64 as a JS number. @throws ConcordatError CORRUPT_MESSAGE outside the safe range */
export function readInt64(buf: Buffer, pos: number): number {
  const value = buf.readInt32BE(pos) * 0x1_0000_0000 + buf.readUInt32BE(pos + 4);
  if (!Number.isSafeInteger(value)) {
    throw new ConcordatError(`int64 at byte ${pos} is outside the safe integer range`, {
      code: ErrorCode.CORRUPT_MESSAGE,
    });
  }
  return value;
}

/** Writes a safe integer as an int64 without allocating a BigInt. */
export function writeInt64(buf: Buffer, pos: number, value: number): void {
  if (!Number.isSafeInteger(value)) throw new RangeError(`int64 value ${value} is not a safe integer`);
  const high = Math.floor(value / 0x1_0000_0000);
  buf.writeInt32BE(high, pos);
  buf.writeUInt32BE(value - high * 0x1_0000_0000, pos + 4);
}

// ---------------------------------------------------------------- header access

/** CRC-32C over attributes..end of the batch at `pos` with `totalBytes` bytes. */
export function computeBatchCrc(buf: Buffer, pos: number, totalBytes: number): number {
  return crc32c(buf.subarray(pos + ATTRIBUTES_OFFSET, pos + totalBytes)) >>> 0;
}

/** Parses the 61-byte header at `pos` (no CRC check, no records). */
export function readBatchHeader(buf: Buffer, pos = 0): RecordBatchHeader {
  const attributes = buf.readInt16BE(pos + ATTRIBUTES_OFFSET);
  const baseOffset = readInt64(buf, pos + BASE_OFFSET_OFFSET);
  const lastOffsetDelta = buf.readInt32BE(pos + LAST_OFFSET_DELTA_OFFSET);
  return {
    baseOffset,
    lastOffset: baseOffset + lastOffsetDelta,
    batchLength: buf.readInt32BE(pos + BATCH_LENGTH_OFFSET),
    partitionLeaderEpoch: buf.readInt32BE(pos + PARTITION_LEADER_EPOCH_OFFSET),
    magic: buf.readInt8(pos + MAGIC_OFFSET),
    crc: buf.readUInt32BE(pos + CRC_OFFSET),
    attributes,
    compression: compressionFromCode(attributes & COMPRESSION_MASK),
    timestampType: (attributes & TIMESTAMP_TYPE_BIT) !== 0 ? TimestampType.LOG_APPEND_TIME : TimestampType.CREATE_TIME,
    isTransactional: (attributes & TRANSACTIONAL_BIT) !== 0,
    isControl: (attributes & CONTROL_BIT) !== 0,
    lastOffsetDelta,
    baseTimestamp: readInt64(buf, pos + BASE_TIMESTAMP_OFFSET),
    maxTimestamp: readInt64(buf, pos + MAX_TIMESTAMP_OFFSET),
    producerId: readInt64(buf, pos + PRODUCER_ID_OFFSET),
    producerEpoch: buf.readInt16BE(pos + PRODUCER_EPOCH_OFFSET),
    baseSequence: buf.readInt32BE(pos + BASE_SEQUENCE_OFFSET),
    recordsCount: buf.readInt32BE(pos + RECORDS_COUNT_OFFSET),
  };
}

// ---------------------------------------------------------------- validation for append

/** Limits an append is checked against. */
export interface BatchLimits {
  /** Largest batch including its 12-byte log overhead (topic config maxMessageBytes). */
  batchBytesMax: number;
  /** Largest batch a segment can hold (topic config segmentBytes). */
  segmentBytes: number;
  topic: string;
  partition: number;
}

/** What {@link validateBatchesForAppend} learned, for offset assignment. */
export interface AppendBatchesInfo {
  batchCount: number;
  /** Offsets the batches take together: sum of lastOffsetDelta + 1. */
  offsetCount: number;
  recordCount: number;
  maxTimestamp: number;
}

/**
 * Checks that `bytes` is one or more whole RecordBatch v2 batches as a
 * producer sends them: length, magic, CRC-32C, a known codec, at least one
 * record, `lastOffsetDelta == recordsCount - 1`, no control batch, within the
 * limits. Touches no record, allocates nothing per record.
 * @throws ConcordatError CORRUPT_MESSAGE (length, CRC), UNSUPPORTED_FOR_MESSAGE_FORMAT
 *   (magic), UNSUPPORTED_COMPRESSION_TYPE, INVALID_RECORD, MESSAGE_TOO_LARGE,
 *   RECORD_LIST_TOO_LARGE
 */
export function validateBatchesForAppend(bytes: Buffer, limits: BatchLimits): AppendBatchesInfo {
  const where = `topic '${limits.topic}' partition ${limits.partition}`;
  if (bytes.length === 0) throw invalidRecord(`empty append to ${where}: no record batch`);
  const info: AppendBatchesInfo = { batchCount: 0, offsetCount: 0, recordCount: 0, maxTimestamp: -1 };
  let pos = 0;
  while (pos < bytes.length) {
    if (bytes.length - pos < RECORD_BATCH_HEADER_BYTES) {
      throw corrupt(`${where}: ${bytes.length - pos} trailing bytes are not a whole record batch header (61 bytes)`);
    }
    const total = LOG_OVERHEAD + bytes.readInt32BE(pos + BATCH_LENGTH_OFFSET);
    checkBatchFrame(bytes, pos, total, where);
    checkBatchLimits(total, limits, where);
    checkBatchContent(bytes, pos, total, where);
    info.batchCount += 1;
    info.offsetCount += bytes.readInt32BE(pos + LAST_OFFSET_DELTA_OFFSET) + 1;
    info.recordCount += bytes.readInt32BE(pos + RECORDS_COUNT_OFFSET);
    info.maxTimestamp = Math.max(info.maxTimestamp, readInt64(bytes, pos + MAX_TIMESTAMP_OFFSET));
    pos += total;
  }
  return info;
}

function checkBatchFrame(bytes: Buffer, pos: number, total: number, where: string): void {
  if (total < RECORD_BATCH_HEADER_BYTES) {
    throw corrupt(`${where}: batch at byte ${pos} has batchLength ${total - LOG_OVERHEAD}, less than the 49-byte header`);
  }
  if (pos + total > bytes.length) {
    throw corrupt(`${where}: batch at byte ${pos} claims ${total} bytes but only ${bytes.length - pos} follow`);
  }
  const magic = bytes.readInt8(pos + MAGIC_OFFSET);
  if (magic !== MAGIC_V2) {
    throw new ConcordatError(`${where}: batch at byte ${pos} has magic ${magic}; only RecordBatch v2 (magic 2) is stored`, {
      code: ErrorCode.UNSUPPORTED_FOR_MESSAGE_FORMAT,
    });
  }
  const stored = bytes.readUInt32BE(pos + CRC_OFFSET);
  const computed = computeBatchCrc(bytes, pos, total);
  if (stored !== computed) {
    throw corrupt(`${where}: batch at byte ${pos} fails its CRC-32C check (stored ${hex(stored)}, computed ${hex(computed)})`);
  }
}

function checkBatchLimits(total: number, limits: BatchLimits, where: string): void {
  if (total > limits.batchBytesMax) {
    throw new ConcordatError(
      `${where}: record batch of ${total} bytes exceeds the topic's maxMessageBytes (${limits.batchBytesMax}); ` +
        'raise the topic config maxMessageBytes or send smaller batches',
      { code: ErrorCode.MESSAGE_TOO_LARGE, context: { limit: 'maxMessageBytes', bytes: total, max: limits.batchBytesMax } },
    );
  }
  if (total > limits.segmentBytes) {
    throw new ConcordatError(
      `${where}: record batch of ${total} bytes does not fit in a segment of segmentBytes ${limits.segmentBytes}; ` + 'raise the topic config segmentBytes',
      { code: ErrorCode.RECORD_LIST_TOO_LARGE, context: { limit: 'segmentBytes', bytes: total, max: limits.segmentBytes } },
    );
  }
}

function checkBatchContent(bytes: Buffer, pos: number, total: number, where: string): void {
  const attributes = bytes.readInt16BE(pos + ATTRIBUTES_OFFSET);
  compressionFromCode(attributes & COMPRESSION_MASK);
  if ((attributes & CONTROL_BIT) !== 0) {
    throw invalidRecord(`${where}: batch at byte ${pos} is a control batch; producers may not send control batches`);
  }
  const count = bytes.readInt32BE(pos + RECORDS_COUNT_OFFSET);
  const lastOffsetDelta = bytes.readInt32BE(pos + LAST_OFFSET_DELTA_OFFSET);
  if (count < 1) throw invalidRecord(`${where}: batch at byte ${pos} has recordsCount ${count}; a batch needs a record`);
  if (lastOffsetDelta !== count - 1) {
    throw invalidRecord(`${where}: batch at byte ${pos} has lastOffsetDelta ${lastOffsetDelta} but ${count} records (expected ${count - 1})`);
  }
  const uncompressed = (attributes & COMPRESSION_MASK) === 0;
  if (uncompressed && count > (total - RECORD_BATCH_HEADER_BYTES) / MIN_RECORD_BYTES) {
    throw invalidRecord(`${where}: batch at byte ${pos} claims ${count} records in ${total - RECORDS_OFFSET} bytes`);
  }
}

/**
 * Rewrites baseOffset (and the leader epoch) of every batch in `bytes`, in
 * place, starting at `firstOffset`; the CRC stays valid because it does not
 * cover these fields. Returns the offset after the last batch.
 */
export function assignOffsets(bytes: Buffer, firstOffset: number, partitionLeaderEpoch: number): number {
  let next = firstOffset;
  let pos = 0;
  while (pos < bytes.length) {
    writeInt64(bytes, pos + BASE_OFFSET_OFFSET, next);
    bytes.writeInt32BE(partitionLeaderEpoch, pos + PARTITION_LEADER_EPOCH_OFFSET);
    next += bytes.readInt32BE(pos + LAST_OFFSET_DELTA_OFFSET) + 1;
    pos += LOG_OVERHEAD + bytes.readInt32BE(pos + BATCH_LENGTH_OFFSET);
  }
  if (!Number.isSafeInteger(next)) throw new RangeError(`offset ${next} is not a safe integer`);
  return next;
}

// ---------------------------------------------------------------- encoding

interface SizedRecord {
  bodyBytes: number;
  timestampDelta: number;
}

/**
 * Encodes `records` as one RecordBatch v2 with a valid CRC, compressing the
 * records section when asked. Offsets are deltas 0..n-1 from `baseOffset`.
 */
export function encodeRecordBatch(records: readonly RecordInput[], options: EncodeBatchOptions = {}): Buffer {
  if (records.length === 0) throw new RangeError('a record batch needs at least one record');
  const compression = options.compression ?? CompressionType.NONE;
  const now = options.timestampMs ?? Date.now();
  const baseTimestamp = records[0]!.timestampMs ?? now;
  let maxTimestamp = baseTimestamp;
  const sized: SizedRecord[] = new Array<SizedRecord>(records.length);
  let recordsBytes = 0;
  for (let i = 0; i < records.length; i++) {
    const record = records[i]!;
    const timestamp = record.timestampMs ?? now;
    if (timestamp > maxTimestamp) maxTimestamp = timestamp;
    const body = recordBodyBytes(record, timestamp - baseTimestamp, i);
    sized[i] = { bodyBytes: body, timestampDelta: timestamp - baseTimestamp };
    recordsBytes += sizeOfVarint(body) + body;
  }
  let section: Buffer = Buffer.allocUnsafe(recordsBytes);
  let pos = 0;
  for (let i = 0; i < records.length; i++) pos = writeRecord(section, pos, records[i]!, sized[i]!, i);
  if (pos !== recordsBytes) throw new Error(`record encoding wrote ${pos} bytes, sized ${recordsBytes}`);
  if (compression !== CompressionType.NONE) section = compress(compression, section);

  const total = RECORD_BATCH_HEADER_BYTES + section.length;
  const batch = Buffer.allocUnsafe(total);
  section.copy(batch, RECORDS_OFFSET);
  writeInt64(batch, BASE_OFFSET_OFFSET, options.baseOffset ?? 0);
  batch.writeInt32BE(total - LOG_OVERHEAD, BATCH_LENGTH_OFFSET);
  batch.writeInt32BE(options.partitionLeaderEpoch ?? 0, PARTITION_LEADER_EPOCH_OFFSET);
  batch.writeInt8(MAGIC_V2, MAGIC_OFFSET);
  let attributes = compressionCode(compression);
  if (options.transactional) attributes |= TRANSACTIONAL_BIT;
  if (options.control) attributes |= CONTROL_BIT;
  batch.writeInt16BE(attributes, ATTRIBUTES_OFFSET);
  batch.writeInt32BE(records.length - 1, LAST_OFFSET_DELTA_OFFSET);
  writeInt64(batch, BASE_TIMESTAMP_OFFSET, baseTimestamp);
  writeInt64(batch, MAX_TIMESTAMP_OFFSET, maxTimestamp);
  writeInt64(batch, PRODUCER_ID_OFFSET, options.producerId ?? -1);
  batch.writeInt16BE(options.producerEpoch ?? -1, PRODUCER_EPOCH_OFFSET);
  batch.writeInt32BE(options.baseSequence ?? -1, BASE_SEQUENCE_OFFSET);
  batch.writeInt32BE(records.length, RECORDS_COUNT_OFFSET);
  batch.writeUInt32BE(computeBatchCrc(batch, 0, total), CRC_OFFSET);
  return batch;
}

function bytesFieldSize(value: Buffer | null): number {
  return value === null ? sizeOfVarint(-1) : sizeOfVarint(value.length) + value.length;
}

function recordBodyBytes(record: RecordInput, timestampDelta: number, offsetDelta: number): number {
  let bytes = 1 + sizeOfVarlong(timestampDelta) + sizeOfVarint(offsetDelta);
  bytes += bytesFieldSize(record.key) + bytesFieldSize(record.value);
  const headers = record.headers ?? [];
  bytes += sizeOfVarint(headers.length);
  for (const header of headers) {
    const keyBytes = Buffer.byteLength(header.key, 'utf8');
    bytes += sizeOfVarint(keyBytes) + keyBytes + bytesFieldSize(header.value);
  }
  return bytes;
}

function writeBytesField(buf: Buffer, pos: number, value: Buffer | null): number {
  if (value === null) return writeVarint(buf, pos, -1);
  pos = writeVarint(buf, pos, value.length);
  return pos + value.copy(buf, pos);
}

function writeRecord(buf: Buffer, pos: number, record: RecordInput, sized: SizedRecord, offsetDelta: number): number {
  pos = writeVarint(buf, pos, sized.bodyBytes);
  buf[pos++] = 0; // record attributes: unused
  pos = writeVarlong(buf, pos, sized.timestampDelta);
  pos = writeVarint(buf, pos, offsetDelta);
  pos = writeBytesField(buf, pos, record.key);
  pos = writeBytesField(buf, pos, record.value);
  const headers = record.headers ?? [];
  pos = writeVarint(buf, pos, headers.length);
  for (const header of headers) {
    pos = writeVarint(buf, pos, Buffer.byteLength(header.key, 'utf8'));
    pos += buf.write(header.key, pos, 'utf8');
    pos = writeBytesField(buf, pos, header.value);
  }
  return pos;
}

// ---------------------------------------------------------------- decoding

/**
 * Decodes every whole batch in `bytes` (a read result or a produce payload),
 * decompressing records. A trailing partial batch is ignored, as Kafka
 * clients do with a fetch response cut at maxBytes. Keys, values and header
 * values of uncompressed batches are views into `bytes`, not copies.
 * @throws ConcordatError CORRUPT_MESSAGE (CRC, framing), UNSUPPORTED_FOR_MESSAGE_FORMAT,
 *   UNSUPPORTED_COMPRESSION_TYPE, INVALID_RECORD (record framing), LIMIT_EXCEEDED (decompressed size)
 */
export function decodeRecordBatches(bytes: Buffer, options: DecodeOptions = {}): DecodedBatch[] {
  const verifyCrc = options.verifyCrc ?? true;
  const decompressedBytesMax = options.decompressedBytesMax ?? 256 * 1024 * 1024;
  const batches: DecodedBatch[] = [];
  let pos = 0;
  while (bytes.length - pos >= LOG_OVERHEAD) {
    const total = LOG_OVERHEAD + bytes.readInt32BE(pos + BATCH_LENGTH_OFFSET);
    if (total < RECORD_BATCH_HEADER_BYTES) {
      throw corrupt(`batch at byte ${pos} has batchLength ${total - LOG_OVERHEAD}, less than the 49-byte header`);
    }
    if (pos + total > bytes.length) break;
    const magic = bytes.readInt8(pos + MAGIC_OFFSET);
    if (magic !== MAGIC_V2) {
      throw new ConcordatError(`batch at byte ${pos} has magic ${magic}; only RecordBatch v2 (magic 2) is decoded`, {
        code: ErrorCode.UNSUPPORTED_FOR_MESSAGE_FORMAT,
      });
    }
    const header = readBatchHeader(bytes, pos);
    if (verifyCrc) {
      const computed = computeBatchCrc(bytes, pos, total);
      if (computed !== header.crc) {
        throw corrupt(`batch at byte ${pos} fails its CRC-32C check (stored ${hex(header.crc)}, computed ${hex(computed)})`);
      }
    }
    const section = decompress(header.compression, bytes.subarray(pos + RECORDS_OFFSET, pos + total), decompressedBytesMax);
    batches.push({ ...header, records: decodeRecords(section, header) });
    pos += total;
  }
  return batches;
}

function decodeRecords(section: Buffer, header: RecordBatchHeader): DecodedRecord[] {
  const count = header.recordsCount;
  if (count < 0 || count > section.length / MIN_RECORD_BYTES + 1) {
    throw invalidRecord(`batch at offset ${header.baseOffset} claims ${count} records in ${section.length} bytes`);
  }
  const records: DecodedRecord[] = new Array<DecodedRecord>(count);
  const c = cursor(section);
  for (let i = 0; i < count; i++) {
    const length = readVarint(c);
    const end = c.pos + length;
    if (length < 0 || end > section.length) throw invalidRecord(`record ${i} of batch at offset ${header.baseOffset} runs past the batch`);
    const record = cursor(section, c.pos, end);
    record.pos += 1; // attributes
    const timestampDelta = readVarlong(record);
    const offsetDelta = readVarint(record);
    const key = readBytesField(record);
    const value = readBytesField(record);
    const headers = readHeaders(record);
    if (record.pos !== end) throw invalidRecord(`record ${i} of batch at offset ${header.baseOffset} has ${end - record.pos} stray bytes`);
    const timestampMs = header.timestampType === TimestampType.LOG_APPEND_TIME ? header.maxTimestamp : header.baseTimestamp + timestampDelta;
    records[i] = { offset: header.baseOffset + offsetDelta, timestampMs, key, value, headers };
    c.pos = end;
  }
  return records;
}

function readBytesField(c: Cursor): Buffer | null {
  const length = readVarint(c);
  if (length < 0) return null;
  if (c.pos + length > c.end) throw invalidRecord('a key, value or header runs past the end of its record');
  const value = c.buf.subarray(c.pos, c.pos + length);
  c.pos += length;
  return value;
}

function readHeaders(c: Cursor): RecordHeader[] {
  const count = readVarint(c);
  if (count < 0 || count > c.end - c.pos) throw invalidRecord(`header count ${count} does not fit in the record`);
  const headers: RecordHeader[] = new Array<RecordHeader>(count);
  for (let i = 0; i < count; i++) {
    const key = readBytesField(c);
    if (key === null) throw invalidRecord('a header key is null');
    headers[i] = { key: key.toString('utf8'), value: readBytesField(c) };
  }
  return headers;
}

function hex(value: number): string {
  return `0x${value.toString(16).padStart(8, '0')}`;
}

function corrupt(message: string): ConcordatError {
  return new ConcordatError(message, { code: ErrorCode.CORRUPT_MESSAGE });
}

function invalidRecord(message: string): ConcordatError {
  return new ConcordatError(message, { code: ErrorCode.INVALID_RECORD });
}
