import { describe, expect, it } from 'vitest';
import { ConcordatError } from '../../../src/errors.js';
import { Reader, type ReaderLimits } from '../../../src/broker/codec/reader.js';
import { Writer } from '../../../src/broker/codec/writer.js';
import { KafkaError, kafkaErrorCodeOf, kafkaErrorName } from '../../../src/broker/codec/error-codes.js';
import { ErrorCode } from '../../../src/errors.js';

const limits: ReaderLimits = { stringBytesMax: 16, arrayLengthMax: 4, taggedFieldsMax: 2 };

function reader(bytes: Buffer | number[], custom: ReaderLimits = limits): Reader {
  return new Reader(Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes), custom);
}

function frameError(read: () => unknown): string {
  try {
    read();
  } catch (error) {
    expect(error).toBeInstanceOf(ConcordatError);
    expect((error as ConcordatError).code).toBe('FRAME_INVALID');
    return (error as Error).message;
  }
  throw new Error('expected a FRAME_INVALID error');
}

describe('Writer → Reader round trips', () => {
  it('fixed-width integers at their edges', () => {
    const w = new Writer(1);
    w.int8(-128)
      .int8(127)
      .int16(-32768)
      .int16(32767)
      .int32(-(2 ** 31))
      .int32(2 ** 31 - 1);
    w.uint32(0xffff_ffff)
      .int64(Number.MAX_SAFE_INTEGER)
      .int64(-1)
      .int64(-(2n ** 63n))
      .boolean(true)
      .boolean(false);
    const r = reader(w.toBuffer());
    expect([r.int8(), r.int8(), r.int16(), r.int16(), r.int32(), r.int32(), r.uint32()]).toEqual([
      -128,
      127,
      -32768,
      32767,
      -(2 ** 31),
      2 ** 31 - 1,
      0xffff_ffff,
    ]);
    expect(r.int64()).toBe(Number.MAX_SAFE_INTEGER);
    expect(r.int64()).toBe(-1);
    expect(r.int64Big()).toBe(-(2n ** 63n));
    expect([r.boolean(), r.boolean(), r.remaining]).toEqual([true, false, 0]);
  });

  it('unsigned varints match the protocol guide bytes', () => {
    const cases: [number, number[]][] = [
      [0, [0x00]],
      [1, [0x01]],
      [127, [0x7f]],
      [128, [0x80, 0x01]],
      [300, [0xac, 0x02]],
      [0xffff_ffff, [0xff, 0xff, 0xff, 0xff, 0x0f]],
    ];
    for (const [value, bytes] of cases) {
      expect([...new Writer().uvarint(value).toBuffer()]).toEqual(bytes);
      expect(reader(bytes).uvarint()).toBe(value);
    }
  });

  it('zigzag varints and varlongs', () => {
    const cases: [number, number[]][] = [
      [0, [0x00]],
      [-1, [0x01]],
      [1, [0x02]],
      [-64, [0x7f]],
      [64, [0x80, 0x01]],
      [2 ** 31 - 1, [0xfe, 0xff, 0xff, 0xff, 0x0f]],
      [-(2 ** 31), [0xff, 0xff, 0xff, 0xff, 0x0f]],
    ];
    for (const [value, bytes] of cases) {
      expect([...new Writer().varint(value).toBuffer()]).toEqual(bytes);
      expect(reader(bytes).varint()).toBe(value);
      expect(reader(new Writer().varlong(value).toBuffer()).varlong()).toBe(value);
    }
    for (const value of [Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, 1_700_000_000_000, -1_700_000_000_000]) {
      expect(reader(new Writer().varlong(value).toBuffer()).varlong()).toBe(value);
    }
  });

  it('classic and compact strings, bytes and arrays, including null', () => {
    const w = new Writer();
    w.string('héllo').nullableString(null).nullableString('').compactString('abc').compactNullableString(null);
    w.bytes(Buffer.from([1, 2]))
      .nullableBytes(null)
      .compactBytes(Buffer.alloc(0))
      .compactNullableBytes(null);
    w.array([1, 2, 3], (x, v) => x.int32(v)).nullableArray(null, (x, v: number) => x.int8(v));
    w.compactArray(['x', 'y'], (x, v) => x.compactString(v)).compactNullableArray(null, (x, v: number) => x.int8(v));
    w.emptyTaggedFields();
    const r = reader(w.toBuffer());
    expect(r.string()).toBe('héllo');
    expect(r.nullableString()).toBeNull();
    expect(r.nullableString()).toBe('');
    expect(r.compactString()).toBe('abc');
    expect(r.compactNullableString()).toBeNull();
    expect([...r.bytes()]).toEqual([1, 2]);
    expect(r.nullableBytes()).toBeNull();
    expect(r.compactBytes().length).toBe(0);
    expect(r.compactNullableBytes()).toBeNull();
    expect(r.array((x) => x.int32())).toEqual([1, 2, 3]);
    expect(r.nullableArray((x) => x.int8())).toBeNull();
    expect(r.compactArray((x) => x.compactString())).toEqual(['x', 'y']);
    expect(r.compactNullableArray((x) => x.int8())).toBeNull();
    expect(r.taggedFields().size).toBe(0);
    expect(r.remaining).toBe(0);
  });

  it('keeps large byte fields as chunks without copying them', () => {
    const big = Buffer.alloc(10_000, 7);
    const w = new Writer().int32(1).bytes(big).int16(2);
    const chunks = w.toChunks();
    expect(chunks.some((chunk) => chunk === big)).toBe(true);
    expect(w.length).toBe(4 + 4 + 10_000 + 2);
    const r = reader(w.toBuffer(), { ...limits });
    expect([r.int32(), r.bytes().equals(big), r.int16()]).toEqual([1, true, 2]);
  });

  it('bytes() returns a view on the frame, not a copy', () => {
    const frame = Buffer.from([0, 0, 0, 2, 9, 9]);
    const view = reader(frame).bytes();
    view[0] = 1;
    expect(frame[4]).toBe(1);
  });

  it('reads tagged fields with ascending tags', () => {
    const r = reader([2, 0, 1, 0xaa, 5, 2, 0xbb, 0xcc]);
    const fields = r.taggedFields();
    expect([...fields.keys()]).toEqual([0, 5]);
    expect([...fields.get(5)!]).toEqual([0xbb, 0xcc]);
  });
});

describe('Reader limits and malformed input', () => {
  it('rejects truncated fields with the position', () => {
    expect(frameError(() => reader([0, 0, 1]).int32())).toBe('INT32 needs 4 byte(s) at offset 0, 3 left');
    expect(frameError(() => reader([0, 5, 0x61]).string())).toBe('STRING needs 5 byte(s) at offset 2, 1 left');
  });

  it('rejects strings over the limit before reading them', () => {
    expect(frameError(() => reader([0, 17, ...Buffer.alloc(17)]).string())).toBe('STRING at offset 2 is 17 bytes, limit 16');
    expect(frameError(() => reader([18, ...Buffer.alloc(17)]).compactString())).toBe('COMPACT_STRING at offset 1 is 17 bytes, limit 16');
  });

  it('rejects invalid UTF-8 and negative lengths', () => {
    expect(frameError(() => reader([0, 1, 0xff]).string())).toBe('STRING at offset 2 is not valid UTF-8');
    expect(frameError(() => reader([0xff, 0xfe]).string())).toBe('STRING at offset 0 has negative length -2');
    expect(frameError(() => reader([0xff, 0xff]).string())).toBe('STRING at offset 0 has negative length -1');
    expect(frameError(() => reader([0xff, 0xff, 0xff, 0xfe]).nullableBytes())).toBe('NULLABLE_BYTES at offset 0 has length -2');
    expect(frameError(() => reader([0]).compactString())).toBe('COMPACT_STRING ending at 1 is null');
  });

  it('rejects array counts over the limit or beyond the bytes left', () => {
    expect(frameError(() => reader([0, 0, 0, 5, 1, 2, 3, 4, 5]).array((x) => x.int8()))).toBe('ARRAY at offset 4 has 5 elements, limit 4');
    expect(frameError(() => reader([0, 0, 0, 3, 1]).array((x) => x.int8()))).toBe('ARRAY at offset 4 claims 3 elements with 1 byte(s) left');
    expect(frameError(() => reader([0x7f, 0xff, 0xff, 0xff]).array((x) => x.int8()))).toBe('ARRAY at offset 4 has 2147483647 elements, limit 4');
  });

  it('rejects varints that are too long or too large', () => {
    expect(frameError(() => reader([0xff, 0xff, 0xff, 0xff, 0xff, 0x01]).uvarint())).toBe('UNSIGNED_VARINT ending at 5 is longer than 5 bytes');
    expect(frameError(() => reader([0xff, 0xff, 0xff, 0xff, 0x1f]).uvarint())).toBe('UNSIGNED_VARINT ending at 5 exceeds 32 bits');
    expect(frameError(() => reader(Buffer.alloc(11, 0xff)).varlong())).toBe('VARLONG ending at 10 is longer than 10 bytes');
  });

  it('rejects INT64 values a JavaScript number cannot hold exactly', () => {
    const bytes = new Writer().int64(2n ** 60n).toBuffer();
    expect(frameError(() => reader(bytes).int64())).toBe('INT64 at offset 0 is outside the safe integer range: 1152921504606846976');
  });

  it('rejects tagged fields out of order or too many', () => {
    expect(frameError(() => reader([2, 5, 0, 5, 0]).taggedFields())).toBe('TAGGED_FIELDS tag 5 after 5 is not ascending');
    expect(frameError(() => reader([3, 0, 0, 1, 0, 2, 0]).taggedFields())).toBe('TAGGED_FIELDS at offset 1 has 3 fields, limit 2');
  });
});

describe('Kafka error table', () => {
  it('maps Concordat codes named after Kafka errors to their numbers', () => {
    const error = (code: ErrorCode) => new ConcordatError('x', { code });
    expect(kafkaErrorCodeOf(error(ErrorCode.OFFSET_OUT_OF_RANGE))).toBe(1);
    expect(kafkaErrorCodeOf(error(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION))).toBe(3);
    expect(kafkaErrorCodeOf(error(ErrorCode.ILLEGAL_GENERATION))).toBe(22);
    expect(kafkaErrorCodeOf(error(ErrorCode.REBALANCE_IN_PROGRESS))).toBe(27);
    expect(kafkaErrorCodeOf(error(ErrorCode.TOPIC_ALREADY_EXISTS))).toBe(36);
    expect(kafkaErrorCodeOf(error(ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER))).toBe(45);
    expect(kafkaErrorCodeOf(error(ErrorCode.MEMBER_ID_REQUIRED))).toBe(79);
    expect(kafkaErrorCodeOf(error(ErrorCode.LIMIT_EXCEEDED))).toBe(KafkaError.POLICY_VIOLATION);
    expect(kafkaErrorCodeOf(error(ErrorCode.CONFIG_INVALID))).toBe(-1);
    expect(kafkaErrorCodeOf(new Error('boom'))).toBe(-1);
  });

  it('every Concordat code that is a Kafka name maps to itself', () => {
    for (const code of Object.values(ErrorCode)) {
      const number = kafkaErrorCodeOf(new ConcordatError('x', { code }));
      if (number !== -1 && code in KafkaError) expect(kafkaErrorName(number)).toBe(code);
    }
  });

  it('names numbers, unknown ones as UNKNOWN_SERVER_ERROR', () => {
    expect(kafkaErrorName(35)).toBe('UNSUPPORTED_VERSION');
    expect(kafkaErrorName(9999)).toBe('UNKNOWN_SERVER_ERROR');
  });
});
