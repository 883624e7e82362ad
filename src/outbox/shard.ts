/**
 * Outbox shards: each row carries `shard = fnv1a32(partition key) mod 256`,
 * so rows with the same key always share a shard. Relays split the table by
 * shard; a shard has at most one owner at a time, hence each key is published
 * by one relay, in `seq` order. Rows without a key get a shard from their
 * message ID (any shard keeps their order, which nobody relies on).
 *
 * FNV-1a, 32-bit (http://www.isthe.com/chongo/tech/comp/fnv/): fast, stable
 * across processes and releases, which is all a shard function needs.
 *
 * @module
 */

/** Number of outbox shards; a row's shard is 0..OUTBOX_SHARDS-1. */
export const OUTBOX_SHARDS = 256;

/** The shard of a partition key: FNV-1a 32-bit over the key's UTF-16 code units, mod {@link OUTBOX_SHARDS}. */
export function shardFor(key: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    hash ^= key.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) % OUTBOX_SHARDS;
}
