import { gunzipSync, gzipSync } from 'node:zlib';
import { compressFrameSync, decompressFrameSync } from 'lz4-napi';
import snappy from 'snappy';
import { compress as zstdCompress, decompress as zstdDecompress } from 'zstd-napi';
import zstdBinding from 'zstd-napi/binding.js';
import { ConcordatError, ErrorCode } from '../errors.js';

/**
 * The codecs of a record batch's attribute bits 0-2 (Kafka's `CompressionType`).
 * The log stores batches as they came; these are used when the log itself
 * decodes a batch (embedded consumer, tests) or encodes one (embedded producer).
 *
 * Wire formats, as Kafka's Java client and librdkafka produce them:
 * - gzip: RFC 1952 (node:zlib).
 * - snappy: the Java client wraps blocks in xerial's framing (magic
 *   `\x82SNAPPY\0`, version, compatible version, then `[int32 length][raw
 *   snappy block]`...); librdkafka and kafkajs write one raw block (or, for
 *   librdkafka, the xerial framing too). Decoding accepts both; encoding
 *   writes xerial framing, which every client reads.
 * - lz4: the LZ4 frame format (https://github.com/lz4/lz4/blob/dev/doc/lz4_Frame_format.md),
 *   which is what RecordBatch v2 uses (the broken header checksum of magic 0 is gone).
 * - zstd: RFC 8878 frames.
 */
export const CompressionType = {
  NONE: 'none',
  GZIP: 'gzip',
  SNAPPY: 'snappy',
  LZ4: 'lz4',
  ZSTD: 'zstd',
} as const;
/** One of the {@link CompressionType} values. */
export type CompressionType = (typeof CompressionType)[keyof typeof CompressionType];

const BY_CODE: readonly CompressionType[] = [CompressionType.NONE, CompressionType.GZIP, CompressionType.SNAPPY, CompressionType.LZ4, CompressionType.ZSTD];

/** Attribute code (0..4) of a compression type. */
export function compressionCode(type: CompressionType): number {
  const code = BY_CODE.indexOf(type);
  if (code < 0) throw unsupported(`compression type '${String(type)}' is not one of ${BY_CODE.join(', ')}`);
  return code;
}

/** Compression type of attribute code 0..4. @throws ConcordatError UNSUPPORTED_COMPRESSION_TYPE for 5..7 */
export function compressionFromCode(code: number): CompressionType {
  const type = BY_CODE[code];
  if (type === undefined) throw unsupported(`compression code ${code} is not one Kafka defines (0..4)`);
  return type;
}

/**
 * Compresses a batch's records section with `type`, in the wire format the
 * file header gives (xerial framing for snappy, LZ4 frame, zstd frame).
 * @throws ConcordatError UNSUPPORTED_COMPRESSION_TYPE for a value not in {@link CompressionType}
 */
export function compress(type: CompressionType, data: Buffer): Buffer {
  switch (type) {
    case CompressionType.NONE:
      return data;
    case CompressionType.GZIP:
      return gzipSync(data);
    case CompressionType.SNAPPY:
      return snappyXerialCompress(data);
    case CompressionType.LZ4:
      return compressFrameSync(data);
    case CompressionType.ZSTD:
      return zstdCompress(data);
    default:
      throw unsupported(`compression type '${String(type)}' is not one of ${BY_CODE.join(', ')}`);
  }
}

/**
 * Decompresses `data`, refusing output larger than `maxBytes` (checked before
 * allocating where the format declares its size: gzip, raw and xerial snappy,
 * zstd frames with a content size; after, for lz4 frames).
 * @throws ConcordatError CORRUPT_MESSAGE when the bytes do not decode,
 *   LIMIT_EXCEEDED when the output would pass `maxBytes`
 */
export function decompress(type: CompressionType, data: Buffer, maxBytes: number): Buffer {
  let out: Buffer;
  try {
    out = decode(type, data, maxBytes);
  } catch (error) {
    if (error instanceof ConcordatError) throw error;
    if (isRangeErrorForLimit(error)) throw tooLarge(type, maxBytes);
    throw new ConcordatError(`${type} data does not decompress: ${(error as Error).message}`, {
      code: ErrorCode.CORRUPT_MESSAGE,
      cause: error,
    });
  }
  if (out.length > maxBytes) throw tooLarge(type, maxBytes);
  return out;
}

function decode(type: CompressionType, data: Buffer, maxBytes: number): Buffer {
  switch (type) {
    case CompressionType.NONE:
      return data;
    case CompressionType.GZIP:
      return gunzipSync(data, { maxOutputLength: maxBytes });
    case CompressionType.SNAPPY:
      return isXerial(data) ? snappyXerialDecompress(data, maxBytes) : snappyRawDecompress(data, maxBytes);
    case CompressionType.LZ4:
      return decompressFrameSync(data);
    case CompressionType.ZSTD:
      checkZstdContentSize(data, maxBytes);
      return zstdDecompress(data);
    default:
      throw unsupported(`compression type '${String(type)}' is not one of ${BY_CODE.join(', ')}`);
  }
}

// xerial snappy-java framing: magic (8) + version (4) + compatible version (4), then blocks.
const XERIAL_MAGIC = Buffer.from([0x82, 0x53, 0x4e, 0x41, 0x50, 0x50, 0x59, 0x00]);
const XERIAL_HEADER_BYTES = 16;
/** Input bytes per xerial block, as snappy-java's default block size. */
const XERIAL_BLOCK_BYTES = 32 * 1024;

function isXerial(data: Buffer): boolean {
  return data.length >= XERIAL_HEADER_BYTES && data.subarray(0, 8).equals(XERIAL_MAGIC);
}

function snappyXerialCompress(data: Buffer): Buffer {
  const parts: Buffer[] = [];
  const header = Buffer.alloc(XERIAL_HEADER_BYTES);
  XERIAL_MAGIC.copy(header, 0);
  header.writeInt32BE(1, 8);
  header.writeInt32BE(1, 12);
  parts.push(header);
  for (let start = 0; start < data.length; start += XERIAL_BLOCK_BYTES) {
    const block = snappy.compressSync(data.subarray(start, start + XERIAL_BLOCK_BYTES));
    const length = Buffer.allocUnsafe(4);
    length.writeInt32BE(block.length, 0);
    parts.push(length, block);
  }
  return Buffer.concat(parts);
}

function snappyXerialDecompress(data: Buffer, maxBytes: number): Buffer {
  const blocks: Buffer[] = [];
  let total = 0;
  let pos = XERIAL_HEADER_BYTES;
  while (pos < data.length) {
    if (pos + 4 > data.length) throw corrupt('snappy', 'xerial block length runs past the end');
    const length = data.readInt32BE(pos);
    pos += 4;
    if (length < 0 || pos + length > data.length) throw corrupt('snappy', `xerial block of ${length} bytes runs past the end`);
    const block = snappyRawDecompress(data.subarray(pos, pos + length), maxBytes - total);
    total += block.length;
    blocks.push(block);
    pos += length;
  }
  return blocks.length === 1 ? blocks[0]! : Buffer.concat(blocks, total);
}

function snappyRawDecompress(data: Buffer, maxBytes: number): Buffer {
  // A raw snappy block starts with its uncompressed length as an unsigned varint.
  let declared = 0;
  let scale = 1;
  for (let i = 0; i < 5 && i < data.length; i++) {
    const byte = data[i]!;
    declared += (byte & 0x7f) * scale;
    if ((byte & 0x80) === 0) break;
    scale *= 128;
  }
  if (declared > maxBytes) throw tooLarge(CompressionType.SNAPPY, maxBytes);
  return snappy.uncompressSync(data, { asBuffer: true }) as Buffer;
}

function checkZstdContentSize(data: Buffer, maxBytes: number): void {
  let declared = 0;
  let frame = data;
  while (frame.length > 0) {
    const size = zstdBinding.getFrameContentSize(frame);
    if (size === null) return; // not declared: checked after decoding
    declared += size;
    if (declared > maxBytes) throw tooLarge(CompressionType.ZSTD, maxBytes);
    frame = frame.subarray(zstdBinding.findFrameCompressedSize(frame));
  }
}

function isRangeErrorForLimit(error: unknown): boolean {
  return error instanceof RangeError && /maxOutputLength|Cannot create a Buffer larger/i.test(error.message);
}

function tooLarge(type: CompressionType, maxBytes: number): ConcordatError {
  return new ConcordatError(`${type} batch decompresses to more than ${maxBytes} bytes; raise the log option decompressedBatchBytesMax to accept it`, {
    code: ErrorCode.LIMIT_EXCEEDED,
    context: { limit: 'decompressedBatchBytesMax', maxBytes },
  });
}

function corrupt(type: CompressionType, detail: string): ConcordatError {
  return new ConcordatError(`${type} data does not decompress: ${detail}`, { code: ErrorCode.CORRUPT_MESSAGE });
}

function unsupported(message: string): ConcordatError {
  return new ConcordatError(message, { code: ErrorCode.UNSUPPORTED_COMPRESSION_TYPE });
}
