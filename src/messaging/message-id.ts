import { randomFillSync } from 'node:crypto';
import { v7 as uuidv7, validate, version } from 'uuid';

const POOL_IDS = 256;
const pool = Buffer.allocUnsafe(16 * POOL_IDS);
let nextInPool = POOL_IDS;
let lastMs = -Infinity;
let counter = 0;

/**
 * Message IDs are UUIDv7 (RFC 9562 §5.7): 48 bits of Unix-epoch milliseconds
 * then random bits, so IDs sort by creation time, which keeps the inbox's
 * primary-key index append-mostly. The ID is the dedup key everywhere.
 *
 * The `uuid` package builds the bytes and the text; the random bits come
 * from a pool filled 256 IDs at a time (one `randomFillSync` instead of a
 * WebCrypto `getRandomValues` call per ID, which cost more than the rest of
 * an envelope: every message, reply and command needs an ID). Within one
 * millisecond the 32 bits after the version are a counter seeded at random
 * (RFC 9562 §6.2, method 1, as `uuid` does itself), so IDs of one process
 * still increase.
 */
export function newMessageId(): string {
  if (nextInPool === POOL_IDS) {
    randomFillSync(pool);
    nextInPool = 0;
  }
  const random = pool.subarray(nextInPool * 16, nextInPool * 16 + 16);
  nextInPool++;
  const now = Date.now();
  if (now > lastMs) {
    counter = ((random[6]! & 0x7f) << 24) | (random[7]! << 16) | (random[8]! << 8) | random[9]!;
    lastMs = now;
  } else {
    counter = (counter + 1) | 0;
    if (counter === 0) lastMs++;
  }
  return uuidv7({ msecs: lastMs, seq: counter, random });
}

/** Whether `id` is a UUID of version 7. */
export function isMessageId(id: string): boolean {
  return validate(id) && version(id) === 7;
}
