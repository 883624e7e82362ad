import { crc32c } from '@node-rs/crc32';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { ConcordatError } from '../../../src/errors.js';
import { assignOffsets, decodeRecordBatches, encodeRecordBatch, readBatchHeader, validateBatchesForAppend } from '../../../src/log/record-batch.js';

// kafkajs's own RecordBatch v2 encoder and decoder: an independent implementation to check bytes against.
const require = createRequire(import.meta.url);
const { RecordBatch: KafkajsRecordBatch } = require('kafkajs/src/protocol/recordBatch/v0/index.js');
const KafkajsRecord = require('kafkajs/src/protocol/recordBatch/record/v0/index.js');
const kafkajsBatchDecoder = require('kafkajs/src/protocol/recordBatch/v0/decoder.js');
const KafkajsDecoder = require('kafkajs/src/protocol/decoder.js');
const { Types: KafkajsCompression } = require('kafkajs/src/protocol/message/compression/index.js');

const LIMITS = { batchBytesMax: 1_048_588, segmentBytes: 1 << 30, topic: 'orders', partition: 2 };

function sampleBatch(): Buffer {
  return encodeRecordBatch(
    [
      {
        key: Buffer.from('order-1'),
        value: Buffer.from('{"total":12}'),
        headers: [{ key: 'ce_id', value: Buffer.from('0190-a') }],
        timestampMs: 1_700_000_000_000,
      },
      { key: null, value: null, timestampMs: 1_700_000_000_005 },
      {
        key: Buffer.from('order-2'),
        value: Buffer.alloc(0),
        headers: [
          { key: 'h', value: null },
          { key: 'h', value: Buffer.from('2') },
        ],
        timestampMs: 1_699_999_999_990,
      },
    ],
    { baseOffset: 0 },
  );
}

describe('encodeRecordBatch / decodeRecordBatches', () => {
  it('round-trips keys, null values, headers (repeated, null) and timestamps', () => {
    const [batch] = decodeRecordBatches(sampleBatch());
    expect(batch!.recordsCount).toBe(3);
    expect(batch!.lastOffsetDelta).toBe(2);
    expect(batch!.baseTimestamp).toBe(1_700_000_000_000);
    expect(batch!.maxTimestamp).toBe(1_700_000_000_005);
    expect(batch!.producerId).toBe(-1);
    expect(batch!.producerEpoch).toBe(-1);
    expect(batch!.baseSequence).toBe(-1);
    expect(batch!.records.map((r) => ({ ...r, key: r.key?.toString() ?? null, value: r.value?.toString() ?? null }))).toEqual([
      { offset: 0, timestampMs: 1_700_000_000_000, key: 'order-1', value: '{"total":12}', headers: [{ key: 'ce_id', value: Buffer.from('0190-a') }] },
      { offset: 1, timestampMs: 1_700_000_000_005, key: null, value: null, headers: [] },
      {
        offset: 2,
        timestampMs: 1_699_999_999_990,
        key: 'order-2',
        value: '',
        headers: [
          { key: 'h', value: null },
          { key: 'h', value: Buffer.from('2') },
        ],
      },
    ]);
  });

  it('lays out the 61-byte header as Kafka does, with CRC-32C over attributes..end', () => {
    const bytes = sampleBatch();
    expect(bytes.readInt32BE(8)).toBe(bytes.length - 12); // batchLength
    expect(bytes.readInt8(16)).toBe(2); // magic
    expect(bytes.readUInt32BE(17)).toBe(crc32c(bytes.subarray(21)) >>> 0);
    expect(bytes.readInt32BE(57)).toBe(3); // recordsCount
    expect(readBatchHeader(bytes)).toMatchObject({ baseOffset: 0, lastOffset: 2, compression: 'none', isControl: false, isTransactional: false });
  });

  it('produces bytes kafkajs decodes, and decodes bytes kafkajs encodes', async () => {
    const ours = encodeRecordBatch([{ key: Buffer.from('k'), value: Buffer.from('v'), headers: [{ key: 'a', value: Buffer.from('b') }], timestampMs: 1000 }], {
      baseOffset: 41,
    });
    const decoded = await kafkajsBatchDecoder(new KafkajsDecoder(ours));
    expect(decoded.firstOffset).toBe('41');
    expect(decoded.records[0].key.toString()).toBe('k');
    expect(decoded.records[0].value.toString()).toBe('v');
    expect(decoded.records[0].headers.a.toString()).toBe('b');
    expect(decoded.records[0].offset).toBe('41');

    const records = [
      KafkajsRecord({ offsetDelta: 0, timestampDelta: 0, key: Buffer.from('x'), value: Buffer.from('1'), headers: { ce_id: 'abc' } }),
      KafkajsRecord({ offsetDelta: 1, timestampDelta: 7, key: Buffer.from('y'), value: Buffer.from('2') }),
    ];
    for (const compression of [KafkajsCompression.None, KafkajsCompression.GZIP]) {
      const theirs = (await KafkajsRecordBatch({ compression, firstTimestamp: 5000, maxTimestamp: 5007, lastOffsetDelta: 1, records })).buffer as Buffer;
      validateBatchesForAppend(theirs, LIMITS);
      const [batch] = decodeRecordBatches(theirs);
      expect(batch!.compression).toBe(compression === KafkajsCompression.None ? 'none' : 'gzip');
      expect(batch!.records.map((r) => [r.offset, r.timestampMs, r.key!.toString(), r.value!.toString()])).toEqual([
        [0, 5000, 'x', '1'],
        [1, 5007, 'y', '2'],
      ]);
      expect(batch!.records[0]!.headers).toEqual([{ key: 'ce_id', value: Buffer.from('abc') }]);
    }
  });

  it('detects a CRC mismatch when decoding', () => {
    const bytes = sampleBatch();
    bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 0xff;
    const stored = bytes.readUInt32BE(17).toString(16).padStart(8, '0');
    const computed = (crc32c(bytes.subarray(21)) >>> 0).toString(16).padStart(8, '0');
    expect(() => decodeRecordBatches(bytes)).toThrow(`batch at byte 0 fails its CRC-32C check (stored 0x${stored}, computed 0x${computed})`);
  });

  it('ignores a trailing partial batch, as Kafka clients do with a fetch cut at maxBytes', () => {
    const one = sampleBatch();
    const two = Buffer.concat([one, one.subarray(0, 30)]);
    expect(decodeRecordBatches(two)).toHaveLength(1);
  });
});

describe('validateBatchesForAppend', () => {
  function validationError(bytes: Buffer, limits = LIMITS): ConcordatError {
    try {
      validateBatchesForAppend(bytes, limits);
    } catch (error) {
      return error as ConcordatError;
    }
    throw new Error('expected validation to fail');
  }

  it('accepts several whole batches and counts their offsets', () => {
    const bytes = Buffer.concat([sampleBatch(), encodeRecordBatch([{ key: null, value: Buffer.from('x') }])]);
    expect(validateBatchesForAppend(bytes, LIMITS)).toMatchObject({ batchCount: 2, offsetCount: 4, recordCount: 4 });
  });

  it('rejects a flipped byte with CORRUPT_MESSAGE', () => {
    const bytes = sampleBatch();
    bytes[70] = bytes[70]! ^ 0x01;
    const error = validationError(bytes);
    expect(error.code).toBe('CORRUPT_MESSAGE');
    expect(error.message).toMatch(/^topic 'orders' partition 2: batch at byte 0 fails its CRC-32C check \(stored 0x[0-9a-f]{8}, computed 0x[0-9a-f]{8}\)$/);
  });

  it('rejects a batch that claims more bytes than follow', () => {
    const error = validationError(sampleBatch().subarray(0, 80));
    expect(error.code).toBe('CORRUPT_MESSAGE');
    expect(error.message).toBe(`topic 'orders' partition 2: batch at byte 0 claims ${sampleBatch().length} bytes but only 80 follow`);
  });

  it('rejects magic other than 2', () => {
    const bytes = sampleBatch();
    bytes.writeInt8(1, 16);
    const error = validationError(bytes);
    expect(error.code).toBe('UNSUPPORTED_FOR_MESSAGE_FORMAT');
    expect(error.message).toBe("topic 'orders' partition 2: batch at byte 0 has magic 1; only RecordBatch v2 (magic 2) is stored");
  });

  it('rejects a batch over maxMessageBytes, naming the limit and how to change it', () => {
    const bytes = sampleBatch();
    const error = validationError(bytes, { ...LIMITS, batchBytesMax: 100 });
    expect(error.code).toBe('MESSAGE_TOO_LARGE');
    expect(error.message).toBe(
      `topic 'orders' partition 2: record batch of ${bytes.length} bytes exceeds the topic's maxMessageBytes (100); ` +
        'raise the topic config maxMessageBytes or send smaller batches',
    );
  });

  it('rejects lastOffsetDelta inconsistent with recordsCount (CRC recomputed so only that is wrong)', () => {
    const bytes = sampleBatch();
    bytes.writeInt32BE(5, 23);
    bytes.writeUInt32BE(crc32c(bytes.subarray(21)) >>> 0, 17);
    const error = validationError(bytes);
    expect(error.code).toBe('INVALID_RECORD');
    expect(error.message).toBe("topic 'orders' partition 2: batch at byte 0 has lastOffsetDelta 5 but 3 records (expected 2)");
  });

  it('rejects control batches from producers', () => {
    const control = encodeRecordBatch([{ key: null, value: null }], { control: true });
    expect(validationError(control).message).toBe("topic 'orders' partition 2: batch at byte 0 is a control batch; producers may not send control batches");
  });

  it('rejects compression codes Kafka does not define', () => {
    const bytes = sampleBatch();
    bytes.writeInt16BE(6, 21);
    bytes.writeUInt32BE(crc32c(bytes.subarray(21)) >>> 0, 17);
    const error = validationError(bytes);
    expect(error.code).toBe('UNSUPPORTED_COMPRESSION_TYPE');
    expect(error.message).toBe('compression code 6 is not one Kafka defines (0..4)');
  });
});

describe('assignOffsets', () => {
  it('rewrites baseOffset and leader epoch in place and keeps the CRC valid', () => {
    const bytes = Buffer.concat([sampleBatch(), sampleBatch()]);
    expect(assignOffsets(bytes, 2 ** 40, 0)).toBe(2 ** 40 + 6);
    const batches = decodeRecordBatches(bytes);
    expect(batches.map((b) => b.baseOffset)).toEqual([2 ** 40, 2 ** 40 + 3]);
    expect(batches[1]!.records.map((r) => r.offset)).toEqual([2 ** 40 + 3, 2 ** 40 + 4, 2 ** 40 + 5]);
    validateBatchesForAppend(bytes, LIMITS);
  });
});
