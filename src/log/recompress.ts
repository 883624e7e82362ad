/**
 * A topic's `compression` other than `producer` (Kafka's topic config
 * `compression.type`): the batches of an append are stored with that codec
 * whatever the producer used, as Kafka's broker recompresses them.
 *
 * Only the records section changes codec: its bytes are decompressed and
 * compressed again, and the batch header gets the new length, the codec
 * bits of its attributes and a new CRC-32C (it covers the attributes and
 * the records). Offsets, timestamps, the producer ID, epoch and sequence,
 * the transactional bit and every record byte stay as the producer sent
 * them, so idempotent producers, transactions and the dedup window see the
 * same batch. Batches already in the target codec are not touched (no copy).
 *
 * @module
 */

import { compress, compressionCode, compressionFromCode, decompress, type CompressionType } from './compression.js';
import { ATTRIBUTES_OFFSET, BATCH_LENGTH_OFFSET, computeBatchCrc, CRC_OFFSET, LOG_OVERHEAD, RECORDS_OFFSET } from './record-batch.js';

/**
 * `bytes` (validated whole batches) with every batch in `target`; `bytes`
 * itself when none needed a change.
 * @throws ConcordatError CORRUPT_MESSAGE (a section that does not decompress), LIMIT_EXCEEDED (decompressedBytesMax)
 */
export function recompressBatches(bytes: Buffer, target: CompressionType, decompressedBytesMax: number): Buffer {
  const parts: Buffer[] = [];
  let changed = false;
  let pos = 0;
  while (pos < bytes.length) {
    const total = LOG_OVERHEAD + bytes.readInt32BE(pos + BATCH_LENGTH_OFFSET);
    const batch = bytes.subarray(pos, pos + total);
    const attributes = batch.readInt16BE(ATTRIBUTES_OFFSET);
    const codec = compressionFromCode(attributes & 0x07);
    if (codec === target) {
      parts.push(batch);
    } else {
      parts.push(recompressBatch(batch, codec, target, attributes, decompressedBytesMax));
      changed = true;
    }
    pos += total;
  }
  return changed ? Buffer.concat(parts) : bytes;
}

function recompressBatch(batch: Buffer, codec: CompressionType, target: CompressionType, attributes: number, decompressedBytesMax: number): Buffer {
  const section = decompress(codec, batch.subarray(RECORDS_OFFSET), decompressedBytesMax);
  const packed = compress(target, section);
  const out = Buffer.allocUnsafe(RECORDS_OFFSET + packed.length);
  batch.copy(out, 0, 0, RECORDS_OFFSET);
  packed.copy(out, RECORDS_OFFSET);
  out.writeInt32BE(out.length - LOG_OVERHEAD, BATCH_LENGTH_OFFSET);
  out.writeInt16BE((attributes & ~0x07) | compressionCode(target), ATTRIBUTES_OFFSET);
  out.writeUInt32BE(computeBatchCrc(out, 0, out.length), CRC_OFFSET);
  return out;
}
