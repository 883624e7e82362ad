/**
 * Zigzag variable-length integers as Kafka's records use them (protobuf's
 * encoding: https://protobuf.dev/programming-guides/encoding/#signed-ints;
 * Kafka's `ByteUtils.writeVarint` / `writeVarlong`).
 *
 * A varint holds an int32 in 1..5 bytes; a varlong an int64 in 1..10 bytes.
 * Varlongs are JS numbers here: the fields that use them (timestamp deltas)
 * stay far inside ±2^52, and a value outside the safe range is reported as an
 * invalid record rather than silently rounded.
 *
 * @module
 */

import { ConcordatError, ErrorCode } from '../errors.js';

/** A read position in a buffer, advanced by the readers below (one object per decode, not per field). */
export interface Cursor {
  buf: Buffer;
  pos: number;
  /** Exclusive end of the readable region. */
  end: number;
}

/** A cursor over `buf[pos, end)`. */
export function cursor(buf: Buffer, pos = 0, end = buf.length): Cursor {
  return { buf, pos, end };
}

const TWO_POW_28 = 2 ** 28;

/** Bytes `writeVarint(value)` takes. */
export function sizeOfVarint(value: number): number {
  let v = ((value << 1) ^ (value >> 31)) >>> 0;
  let bytes = 1;
  while (v >= 0x80) {
    v >>>= 7;
    bytes += 1;
  }
  return bytes;
}

/** Writes an int32 as a zigzag varint at `pos`; returns the position after it. */
export function writeVarint(buf: Buffer, pos: number, value: number): number {
  let v = ((value << 1) ^ (value >> 31)) >>> 0;
  while (v >= 0x80) {
    buf[pos++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  buf[pos++] = v;
  return pos;
}

/** Reads a zigzag varint (int32). @throws ConcordatError INVALID_RECORD when truncated or longer than 5 bytes */
export function readVarint(c: Cursor): number {
  let raw = 0;
  let shift = 0;
  for (;;) {
    if (c.pos >= c.end) throw truncated('varint');
    const byte = c.buf[c.pos++]!;
    raw |= (byte & 0x7f) << shift;
    if ((byte & 0x80) === 0) break;
    shift += 7;
    if (shift > 28) throw invalid('varint is longer than 5 bytes');
  }
  return (raw >>> 1) ^ -(raw & 1);
}

function zigzagLong(value: number): number {
  return value >= 0 ? value * 2 : -value * 2 - 1;
}

/** Bytes `writeVarlong(value)` takes. */
export function sizeOfVarlong(value: number): number {
  let v = zigzagLong(value);
  let bytes = 1;
  while (v >= 0x80) {
    v = Math.floor(v / 128);
    bytes += 1;
  }
  return bytes;
}

/** Writes a safe integer as a zigzag varlong at `pos`; returns the position after it. */
export function writeVarlong(buf: Buffer, pos: number, value: number): number {
  let v = zigzagLong(value);
  if (!Number.isSafeInteger(v)) throw new RangeError(`varlong value ${value} is outside ±2^52`);
  while (v >= 0x80) {
    buf[pos++] = (v % 128) | 0x80;
    v = Math.floor(v / 128);
  }
  buf[pos++] = v;
  return pos;
}

/** Reads a zigzag varlong. @throws ConcordatError INVALID_RECORD when truncated, too long or outside the safe range */
export function readVarlong(c: Cursor): number {
  let low = 0; // first 28 bits, exact with bit operations
  let shift = 0;
  let byte: number;
  do {
    if (c.pos >= c.end) throw truncated('varlong');
    byte = c.buf[c.pos++]!;
    low |= (byte & 0x7f) << shift;
    shift += 7;
  } while ((byte & 0x80) !== 0 && shift < 28);
  let raw = low >>> 0;
  let scale = TWO_POW_28;
  while ((byte & 0x80) !== 0) {
    if (shift >= 70) throw invalid('varlong is longer than 10 bytes');
    if (c.pos >= c.end) throw truncated('varlong');
    byte = c.buf[c.pos++]!;
    raw += (byte & 0x7f) * scale;
    scale *= 128;
    shift += 7;
  }
  if (!Number.isSafeInteger(raw)) throw invalid('varlong is outside the safe integer range');
  return raw % 2 === 0 ? raw / 2 : -(raw + 1) / 2;
}

function truncated(what: string): ConcordatError {
  return invalid(`${what} runs past the end of the record`);
}

function invalid(message: string): ConcordatError {
  return new ConcordatError(message, { code: ErrorCode.INVALID_RECORD });
}
