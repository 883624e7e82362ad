/**
 * Kafka's default partitioner for keyed records: `toPositive(murmur2(key)) %
 * numPartitions`, with murmur2 exactly as Kafka's `Utils.murmur2` (seed
 * 0x9747b28c, little-endian 4-byte blocks, the tail mixed in by a
 * fall-through switch). Records with the same key land on the same partition
 * as they would with the Java client, librdkafka's `murmur2_random`
 * partitioner and kafkajs's DefaultPartitioner.
 *
 * Source: Apache Kafka, clients/src/main/java/org/apache/kafka/common/utils/Utils.java
 * (`murmur2`, `toPositive`) and BuiltInPartitioner.partitionForKey.
 *
 * @module
 */

const SEED = 0x9747b28c;
const M = 0x5bd1e995;
const R = 24;

/** Kafka's murmur2 of `bytes` as a signed int32, like the Java method. */
export function murmur2(bytes: Uint8Array): number {
  const length = bytes.length;
  let h = (SEED ^ length) | 0;
  const blocks = length >>> 2;
  for (let i = 0; i < blocks; i++) {
    const i4 = i << 2;
    let k = bytes[i4]! | (bytes[i4 + 1]! << 8) | (bytes[i4 + 2]! << 16) | (bytes[i4 + 3]! << 24);
    k = Math.imul(k, M);
    k ^= k >>> R;
    k = Math.imul(k, M);
    h = Math.imul(h, M);
    h ^= k;
  }
  // Java's fall-through switch on length % 4, unrolled.
  const tail = length & ~3;
  const rest = length & 3;
  if (rest === 3) h ^= bytes[tail + 2]! << 16;
  if (rest >= 2) h ^= bytes[tail + 1]! << 8;
  if (rest >= 1) {
    h ^= bytes[tail]!;
    h = Math.imul(h, M);
  }
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h | 0;
}

/** Kafka's `Utils.toPositive`: clears the sign bit (not `Math.abs`, which fails on -2^31). */
export function toPositive(value: number): number {
  return value & 0x7fffffff;
}

/** Partition of a keyed record: `toPositive(murmur2(key)) % partitions`. */
export function partitionForKey(key: Uint8Array, partitions: number): number {
  if (!Number.isInteger(partitions) || partitions < 1) throw new RangeError(`partitions must be ≥ 1, got ${partitions}`);
  return toPositive(murmur2(key)) % partitions;
}

/**
 * Spreads records without a key over a topic's partitions in turn (Kafka's
 * pre-2.4 round-robin for null keys; its newer sticky partitioner only
 * matters for client-side batching, which the callers of the log do
 * themselves). One counter per topic.
 */
export class RoundRobinPartitioner {
  private readonly next = new Map<string, number>();

  /** The next partition of `topic` in turn, 0..partitions-1. */
  partition(topic: string, partitions: number): number {
    const current = this.next.get(topic) ?? 0;
    this.next.set(topic, (current + 1) % partitions);
    return current % partitions;
  }

  /** Drops `topic`'s counter (the topic was deleted). */
  forget(topic: string): void {
    this.next.delete(topic);
  }
}
