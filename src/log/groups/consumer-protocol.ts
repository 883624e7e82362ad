/**
 * The bytes consumer-group members exchange through the coordinator when
 * their protocolType is `consumer` (Kafka's `ConsumerProtocol`; schemas
 * ConsumerProtocolSubscription.json and ConsumerProtocolAssignment.json).
 * The coordinator never reads them; the leader's assignor does. Using
 * Kafka's format lets the embedded consumer, kafkajs and the Java client
 * share a group.
 *
 * ```
 * Subscription => version:int16 topics:[string] userData:bytes
 *                 ownedPartitions:[topic:string partitions:[int32]]   (v1+)
 *                 generationId:int32                                   (v2+)
 *                 rackId:nullable string                               (v3+)
 * Assignment   => version:int16 assignedPartitions:[topic:string partitions:[int32]] userData:bytes
 * ```
 * Arrays are int32 count + elements; strings int16 length + UTF-8; bytes
 * int32 length (-1 = null) + data. A version newer than these is read as far
 * as the known fields go (Kafka's rule: later versions only append fields).
 *
 * @module
 */

import { ConcordatError, ErrorCode } from '../../errors.js';

/** Partitions of one topic, as subscriptions and assignments list them. */
export interface TopicPartitions {
  topic: string;
  partitions: number[];
}

/** A decoded Subscription (v0-v3; fields a version lacks get their defaults: [], -1, null). */
export interface ConsumerSubscription {
  version: number;
  topics: string[];
  userData: Buffer | null;
  ownedPartitions: TopicPartitions[];
  generationId: number;
  rackId: string | null;
}

/** A decoded Assignment. */
export interface ConsumerAssignment {
  version: number;
  assignedPartitions: TopicPartitions[];
  userData: Buffer | null;
}

/** The protocolType of consumer groups whose metadata is ConsumerProtocol bytes. */
export const CONSUMER_PROTOCOL_TYPE = 'consumer';

/**
 * Subscription bytes for JoinGroup's protocol metadata; v0 by default (v1+ written with no owned partitions: the eager protocol).
 * @throws RangeError for a topic name over 32767 UTF-8 bytes
 */
export function encodeSubscription(subscription: { topics: readonly string[]; userData?: Buffer | null; version?: number }): Buffer {
  const writer = new Writer();
  writer.int16(subscription.version ?? 0);
  writer.int32(subscription.topics.length);
  for (const topic of subscription.topics) writer.string(topic);
  writer.bytes(subscription.userData ?? null);
  if ((subscription.version ?? 0) >= 1) writer.int32(0); // no owned partitions: eager protocol
  return writer.finish();
}

/**
 * Decodes Subscription bytes of any version (fields of later versions are ignored).
 * @throws ConcordatError INVALID_RECORD when the bytes are truncated or malformed
 */
export function decodeSubscription(bytes: Buffer): ConsumerSubscription {
  const reader = new Reader(bytes, 'subscription');
  const version = reader.int16();
  const topics = reader.array(() => reader.string());
  const userData = reader.remaining() > 0 ? reader.bytes() : null;
  const ownedPartitions = version >= 1 && reader.remaining() > 0 ? readTopicPartitions(reader) : [];
  const generationId = version >= 2 && reader.remaining() >= 4 ? reader.int32() : -1;
  const rackId = version >= 3 && reader.remaining() >= 2 ? reader.nullableString() : null;
  return { version, topics, userData, ownedPartitions, generationId, rackId };
}

/**
 * Assignment bytes for SyncGroup; v0 by default.
 * @throws RangeError for a topic name over 32767 UTF-8 bytes
 */
export function encodeAssignment(assignment: { assignedPartitions: readonly TopicPartitions[]; userData?: Buffer | null; version?: number }): Buffer {
  const writer = new Writer();
  writer.int16(assignment.version ?? 0);
  writer.int32(assignment.assignedPartitions.length);
  for (const { topic, partitions } of assignment.assignedPartitions) {
    writer.string(topic);
    writer.int32(partitions.length);
    for (const partition of partitions) writer.int32(partition);
  }
  writer.bytes(assignment.userData ?? null);
  return writer.finish();
}

/** An empty buffer (what the coordinator hands a member the leader left out) decodes to no partitions. */
export function decodeAssignment(bytes: Buffer): ConsumerAssignment {
  if (bytes.length === 0) return { version: 0, assignedPartitions: [], userData: null };
  const reader = new Reader(bytes, 'assignment');
  const version = reader.int16();
  const assignedPartitions = readTopicPartitions(reader);
  const userData = reader.remaining() > 0 ? reader.bytes() : null;
  return { version, assignedPartitions, userData };
}

function readTopicPartitions(reader: Reader): TopicPartitions[] {
  return reader.array(() => ({ topic: reader.string(), partitions: reader.array(() => reader.int32()) }));
}

class Writer {
  private readonly parts: Buffer[] = [];

  int16(value: number): void {
    const buf = Buffer.allocUnsafe(2);
    buf.writeInt16BE(value, 0);
    this.parts.push(buf);
  }

  int32(value: number): void {
    const buf = Buffer.allocUnsafe(4);
    buf.writeInt32BE(value, 0);
    this.parts.push(buf);
  }

  string(value: string): void {
    const data = Buffer.from(value, 'utf8');
    if (data.length > 0x7fff) throw new RangeError(`string of ${data.length} bytes exceeds int16 length`);
    this.int16(data.length);
    this.parts.push(data);
  }

  bytes(value: Buffer | null): void {
    if (value === null) {
      this.int32(-1);
      return;
    }
    this.int32(value.length);
    this.parts.push(value);
  }

  finish(): Buffer {
    return Buffer.concat(this.parts);
  }
}

class Reader {
  private pos = 0;

  constructor(
    private readonly buf: Buffer,
    private readonly what: string,
  ) {}

  remaining(): number {
    return this.buf.length - this.pos;
  }

  int16(): number {
    this.need(2);
    const value = this.buf.readInt16BE(this.pos);
    this.pos += 2;
    return value;
  }

  int32(): number {
    this.need(4);
    const value = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return value;
  }

  string(): string {
    const length = this.int16();
    if (length < 0) throw this.invalid(`string length ${length}`);
    this.need(length);
    const value = this.buf.toString('utf8', this.pos, this.pos + length);
    this.pos += length;
    return value;
  }

  nullableString(): string | null {
    if (this.buf.readInt16BE(this.pos) === -1) {
      this.pos += 2;
      return null;
    }
    return this.string();
  }

  bytes(): Buffer | null {
    const length = this.int32();
    if (length < 0) return null;
    this.need(length);
    const value = this.buf.subarray(this.pos, this.pos + length);
    this.pos += length;
    return value;
  }

  array<T>(element: () => T): T[] {
    const count = this.int32();
    if (count < 0) return [];
    if (count > this.remaining()) throw this.invalid(`array count ${count} with ${this.remaining()} bytes left`);
    const items: T[] = [];
    for (let i = 0; i < count; i++) items.push(element());
    return items;
  }

  private need(bytes: number): void {
    if (this.pos + bytes > this.buf.length) throw this.invalid(`needs ${bytes} more bytes at ${this.pos}`);
  }

  private invalid(detail: string): ConcordatError {
    return new ConcordatError(`malformed consumer protocol ${this.what}: ${detail}`, { code: ErrorCode.INVALID_RECORD });
  }
}
