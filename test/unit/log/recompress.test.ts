import { describe, expect, it } from 'vitest';
import { decodeRecordBatches, encodeRecordBatch, readBatchHeader, type CompressionType } from '../../../src/log/index.js';
import { recompressBatches } from '../../../src/log/recompress.js';

/**
 * compression.type's recompression (src/log/recompress.ts): every codec to
 * every codec, the records and the producer fields kept, the CRC-32C valid
 * (decodeRecordBatches checks it), batches already in the codec untouched.
 */
const CODECS: CompressionType[] = ['none', 'gzip', 'snappy', 'lz4', 'zstd'];
const MAX = 1 << 20;

function batch(compression: CompressionType, first: number): Buffer {
  return encodeRecordBatch(
    [
      { key: Buffer.from(`k${first}`), value: Buffer.from('v'.repeat(200)), headers: [{ key: 'h', value: Buffer.from([0, 255]) }], timestampMs: 1000 + first },
      { key: null, value: null, timestampMs: 2000 + first },
    ],
    { compression, producerId: 42, producerEpoch: 3, baseSequence: first, transactional: true },
  );
}

describe('recompressBatches', () => {
  for (const from of CODECS) {
    for (const to of CODECS) {
      it(`${from} → ${to}`, () => {
        const input = Buffer.concat([batch(from, 0), batch(from, 2)]);
        const output = recompressBatches(input, to, MAX);
        if (from === to) expect(output).toBe(input);
        const before = decodeRecordBatches(input);
        const after = decodeRecordBatches(output);
        expect(after.map((b) => b.compression)).toEqual([to, to]);
        expect(
          after.map(({ producerId, producerEpoch, baseSequence, isTransactional, baseTimestamp, maxTimestamp, lastOffsetDelta, recordsCount }) => ({
            producerId,
            producerEpoch,
            baseSequence,
            isTransactional,
            baseTimestamp,
            maxTimestamp,
            lastOffsetDelta,
            recordsCount,
          })),
        ).toEqual(
          before.map(({ producerId, producerEpoch, baseSequence, isTransactional, baseTimestamp, maxTimestamp, lastOffsetDelta, recordsCount }) => ({
            producerId,
            producerEpoch,
            baseSequence,
            isTransactional,
            baseTimestamp,
            maxTimestamp,
            lastOffsetDelta,
            recordsCount,
          })),
        );
        expect(after.map((b) => b.records)).toEqual(before.map((b) => b.records));
      });
    }
  }

  it('recompresses only the batches not in the target codec', () => {
    const lz4 = batch('lz4', 0);
    const input = Buffer.concat([lz4, batch('gzip', 2)]);
    const output = recompressBatches(input, 'lz4', MAX);
    expect(output.subarray(0, lz4.length).equals(lz4)).toBe(true);
    expect(readBatchHeader(output, lz4.length).compression).toBe('lz4');
  });

  it('refuses a section that decompresses past the limit (LIMIT_EXCEEDED), as a decoding read would', () => {
    expect(() => recompressBatches(batch('gzip', 0), 'none', 64)).toThrow(expect.objectContaining({ code: 'LIMIT_EXCEEDED' }));
  });
});
