import { gzipSync } from 'node:zlib';
import snappy from 'snappy';
import { describe, expect, it } from 'vitest';
import { compress, CompressionType, decompress } from '../../../src/log/compression.js';
import { decodeRecordBatches, encodeRecordBatch, validateBatchesForAppend } from '../../../src/log/record-batch.js';

const CODECS = [CompressionType.GZIP, CompressionType.SNAPPY, CompressionType.LZ4, CompressionType.ZSTD] as const;
const text = Buffer.from('the quick brown fox jumps over the lazy dog; '.repeat(200));

describe('compression codecs', () => {
  it.each(CODECS)('%s round-trips a batch, which stays valid for append and shrinks', (codec) => {
    const records = Array.from({ length: 50 }, (_, i) => ({
      key: Buffer.from(`key-${i}`),
      value: text.subarray(0, 500 + i),
      headers: [{ key: 'ce_id', value: Buffer.from(`id-${i}`) }],
      timestampMs: 1_700_000_000_000 + i,
    }));
    const plain = encodeRecordBatch(records);
    const packed = encodeRecordBatch(records, { compression: codec });
    expect(packed.length).toBeLessThan(plain.length / 4);
    expect(validateBatchesForAppend(packed, { batchBytesMax: 1 << 20, segmentBytes: 1 << 30, topic: 't', partition: 0 }).recordCount).toBe(50);
    const [batch] = decodeRecordBatches(packed);
    expect(batch!.compression).toBe(codec);
    expect(batch!.records).toHaveLength(50);
    batch!.records.forEach((record, i) => {
      expect(record.offset).toBe(i);
      expect(record.key!.toString()).toBe(`key-${i}`);
      expect(record.value!.equals(text.subarray(0, 500 + i))).toBe(true);
      expect(record.timestampMs).toBe(1_700_000_000_000 + i);
    });
  });

  it('snappy writes xerial framing (as the Java client) and reads both xerial and raw blocks (librdkafka, kafkajs)', () => {
    const framed = compress(CompressionType.SNAPPY, text);
    expect([...framed.subarray(0, 8)]).toEqual([0x82, 0x53, 0x4e, 0x41, 0x50, 0x50, 0x59, 0x00]);
    expect(framed.readInt32BE(8)).toBe(1);
    expect(decompress(CompressionType.SNAPPY, framed, 1 << 20).equals(text)).toBe(true);
    const raw = snappy.compressSync(text);
    expect(decompress(CompressionType.SNAPPY, raw, 1 << 20).equals(text)).toBe(true);
  });

  it('snappy xerial framing spans several 32 KiB blocks', () => {
    const big = Buffer.alloc(100_000, 'abcdefgh');
    expect(decompress(CompressionType.SNAPPY, compress(CompressionType.SNAPPY, big), 1 << 20).equals(big)).toBe(true);
  });

  it.each(CODECS)('%s refuses output beyond the limit, naming the option', (codec) => {
    expect(() => decompress(codec, compress(codec, text), 1000)).toThrow(
      `${codec} batch decompresses to more than 1000 bytes; raise the log option decompressedBatchBytesMax to accept it`,
    );
  });

  it('reports bytes that do not decompress as CORRUPT_MESSAGE', () => {
    expect(() => decompress(CompressionType.GZIP, Buffer.from('not gzip at all'), 1 << 20)).toThrow(/^gzip data does not decompress: /);
    expect(() => decompress(CompressionType.LZ4, Buffer.from('not lz4'), 1 << 20)).toThrow(/^lz4 data does not decompress: /);
    expect(() => decompress(CompressionType.ZSTD, Buffer.from('not zstd'), 1 << 20)).toThrow(/^zstd data does not decompress: /);
  });

  it('decodes gzip produced by another implementation (node:zlib directly)', () => {
    expect(decompress(CompressionType.GZIP, gzipSync(text, { level: 9 }), 1 << 20).equals(text)).toBe(true);
  });
});
