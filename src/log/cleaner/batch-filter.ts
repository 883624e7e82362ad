import { compress, CompressionType, compressionFromCode, decompress } from '../compression.js';
import {
  ATTRIBUTES_OFFSET,
  BASE_TIMESTAMP_OFFSET,
  BATCH_LENGTH_OFFSET,
  computeBatchCrc,
  CRC_OFFSET,
  LOG_OVERHEAD,
  MAX_TIMESTAMP_OFFSET,
  readInt64,
  RECORD_BATCH_HEADER_BYTES,
  RECORDS_COUNT_OFFSET,
  RECORDS_OFFSET,
  writeInt64,
} from '../record-batch.js';
import { cursor, readVarint, readVarlong } from '../varint.js';

const COMPRESSION_MASK = 0x07;
const TIMESTAMP_TYPE_BIT = 0x08;
const TRANSACTIONAL_BIT = 0x10;
const CONTROL_BIT = 0x20;

/** Whether to keep one record: its key (null when it has none), absolute offset, and whether its value is null (a tombstone). */
export type RecordFilter = (key: Buffer | null, offset: number, tombstone: boolean) => boolean;

/** What {@link filterBatch} decided for a batch: keep its bytes as they are, drop it, or store `bytes` instead. */
export type FilteredBatch = { kind: 'unchanged' } | { kind: 'dropped' } | { kind: 'rewritten'; bytes: Buffer; records: number };

/** Whether the batch at `at` is a transactional or a control batch (the cleaner keeps those whole: see log-cleaner.ts). */
export function isTransactionalOrControl(buf: Buffer, at: number): boolean {
  return (buf.readInt16BE(at + ATTRIBUTES_OFFSET) & (TRANSACTIONAL_BIT | CONTROL_BIT)) !== 0;
}

/**
 * Calls `visit` for every record of the batch at `buf[at, at + total)`
 * (decompressed first when the batch is), with the record's key, absolute
 * offset, tombstone flag, timestamp and its bytes' bounds in `section`.
 * Returns the records section walked (the decompressed one, or a view).
 * @throws ConcordatError as decompress() throws; RangeError on a record that runs past its batch
 */
export function forEachRecord(
  buf: Buffer,
  at: number,
  total: number,
  decompressedBytesMax: number,
  visit: (key: Buffer | null, offset: number, tombstone: boolean, timestampMs: number, start: number, end: number) => void,
): Buffer {
  const attributes = buf.readInt16BE(at + ATTRIBUTES_OFFSET);
  const compression = compressionFromCode(attributes & COMPRESSION_MASK);
  const raw = buf.subarray(at + RECORDS_OFFSET, at + total);
  const section = compression === CompressionType.NONE ? raw : decompress(compression, raw, decompressedBytesMax);
  const baseOffset = readInt64(buf, at);
  const baseTimestamp = readInt64(buf, at + BASE_TIMESTAMP_OFFSET);
  const count = buf.readInt32BE(at + RECORDS_COUNT_OFFSET);
  const c = cursor(section);
  for (let i = 0; i < count; i++) {
    const start = c.pos;
    const length = readVarint(c);
    const end = c.pos + length;
    if (length < 0 || end > section.length) throw new RangeError(`record ${i} of the batch at offset ${baseOffset} runs past the batch`);
    c.pos += 1; // attributes
    const timestampDelta = readVarlong(c);
    const offsetDelta = readVarint(c);
    const keyLength = readVarint(c);
    const key = keyLength < 0 ? null : section.subarray(c.pos, c.pos + keyLength);
    if (keyLength > 0) c.pos += keyLength;
    const valueLength = readVarint(c);
    visit(key, baseOffset + offsetDelta, valueLength < 0, baseTimestamp + timestampDelta, start, end);
    c.pos = end;
  }
  return section;
}

/**
 * The batch at `buf[at, at + total)` with only the records `keep` accepts
 * (Kafka's MemoryRecords.filterTo for one batch). A rewritten batch keeps
 * the header: its baseOffset, lastOffsetDelta (so the batch still ends at
 * its last offset, and the offsets of the records kept do not change),
 * baseTimestamp, producer id, epoch and base sequence; its records are the
 * kept records' bytes unchanged (their deltas stay valid), recompressed
 * with the batch's codec; recordsCount, batchLength, maxTimestamp
 * (CreateTime) and the CRC are recomputed. A batch left with no record is
 * dropped, unless `keepEmpty` (an idempotent producer's last batch), then
 * it is kept as a header with recordsCount 0, as Kafka keeps it.
 */
export function filterBatch(buf: Buffer, at: number, total: number, keep: RecordFilter, keepEmpty: boolean, decompressedBytesMax: number): FilteredBatch {
  const kept: [number, number][] = [];
  let count = 0;
  let keptRecords = 0;
  let maxTimestamp = -1;
  const section = forEachRecord(buf, at, total, decompressedBytesMax, (key, offset, tombstone, timestampMs, start, end) => {
    count += 1;
    if (!keep(key, offset, tombstone)) return;
    keptRecords += 1;
    const last = kept[kept.length - 1];
    if (last !== undefined && last[1] === start) last[1] = end;
    else kept.push([start, end]);
    if (timestampMs > maxTimestamp) maxTimestamp = timestampMs;
  });
  if (keptRecords === count) return { kind: 'unchanged' };
  if (keptRecords === 0 && !keepEmpty) return { kind: 'dropped' };
  const attributes = buf.readInt16BE(at + ATTRIBUTES_OFFSET);
  const compression = compressionFromCode(attributes & COMPRESSION_MASK);
  const records = Buffer.concat(kept.map(([start, end]) => section.subarray(start, end)));
  const stored = compression === CompressionType.NONE || records.length === 0 ? records : compress(compression, records);
  const bytes = Buffer.allocUnsafe(RECORD_BATCH_HEADER_BYTES + stored.length);
  buf.copy(bytes, 0, at, at + RECORD_BATCH_HEADER_BYTES);
  stored.copy(bytes, RECORDS_OFFSET);
  bytes.writeInt32BE(bytes.length - LOG_OVERHEAD, BATCH_LENGTH_OFFSET);
  bytes.writeInt32BE(keptRecords, RECORDS_COUNT_OFFSET);
  if ((attributes & TIMESTAMP_TYPE_BIT) === 0 && keptRecords > 0) writeInt64(bytes, MAX_TIMESTAMP_OFFSET, maxTimestamp);
  bytes.writeUInt32BE(computeBatchCrc(bytes, 0, bytes.length), CRC_OFFSET);
  return { kind: 'rewritten', bytes, records: keptRecords };
}
