import { describe, expect, it } from 'vitest';
import { cursor, readVarint, readVarlong, sizeOfVarint, sizeOfVarlong, writeVarint, writeVarlong } from '../../../src/log/varint.js';

function encodeVarint(value: number): number[] {
  const buf = Buffer.alloc(10);
  const end = writeVarint(buf, 0, value);
  expect(end).toBe(sizeOfVarint(value));
  return [...buf.subarray(0, end)];
}

function encodeVarlong(value: number): number[] {
  const buf = Buffer.alloc(10);
  const end = writeVarlong(buf, 0, value);
  expect(end).toBe(sizeOfVarlong(value));
  return [...buf.subarray(0, end)];
}

describe('varint (zigzag int32)', () => {
  // Expected bytes follow protobuf's zigzag table: 0→0, -1→1, 1→2, -2→3, ..., 2147483647→4294967294.
  it.each([
    [0, [0x00]],
    [-1, [0x01]],
    [1, [0x02]],
    [-2, [0x03]],
    [63, [0x7e]],
    [-64, [0x7f]],
    [64, [0x80, 0x01]],
    [300, [0xd8, 0x04]],
    [2147483647, [0xfe, 0xff, 0xff, 0xff, 0x0f]],
    [-2147483648, [0xff, 0xff, 0xff, 0xff, 0x0f]],
  ])('%i encodes as %j and decodes back', (value, bytes) => {
    expect(encodeVarint(value)).toEqual(bytes);
    expect(readVarint(cursor(Buffer.from(bytes)))).toBe(value);
  });

  it('reports a varint cut short', () => {
    expect(() => readVarint(cursor(Buffer.from([0x80, 0x80])))).toThrow('varint runs past the end of the record');
  });

  it('refuses a varint longer than 5 bytes', () => {
    expect(() => readVarint(cursor(Buffer.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x01])))).toThrow('varint is longer than 5 bytes');
  });
});

describe('varlong (zigzag int64 within the safe range)', () => {
  it.each([
    [0, [0x00]],
    [-1, [0x01]],
    [1, [0x02]],
    [2 ** 31, [0x80, 0x80, 0x80, 0x80, 0x10]],
    [-(2 ** 31) - 1, [0x81, 0x80, 0x80, 0x80, 0x10]],
    [1_700_000_000_000, [0x80, 0xa0, 0xab, 0xfe, 0xf9, 0x62]],
  ])('%i encodes as %j and decodes back', (value, bytes) => {
    expect(encodeVarlong(value)).toEqual(bytes);
    expect(readVarlong(cursor(Buffer.from(bytes)))).toBe(value);
  });

  it('round-trips values up to ±2^52', () => {
    for (const value of [2 ** 52 - 1, -(2 ** 52), 123_456_789_012_345, -98_765_432_109]) {
      const buf = Buffer.alloc(10);
      const end = writeVarlong(buf, 0, value);
      const c = cursor(buf, 0, end);
      expect(readVarlong(c)).toBe(value);
      expect(c.pos).toBe(end);
    }
  });

  it('refuses a value outside the safe range instead of rounding it', () => {
    // zigzag(2^62) needs 9 bytes: 0x80 ×8, then 0x01 → raw 2^63.
    const bytes = Buffer.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]);
    expect(() => readVarlong(cursor(bytes))).toThrow('varlong is outside the safe integer range');
  });

  it('refuses a varlong longer than 10 bytes', () => {
    expect(() => readVarlong(cursor(Buffer.alloc(11, 0x80)))).toThrow('varlong is longer than 10 bytes');
  });
});
