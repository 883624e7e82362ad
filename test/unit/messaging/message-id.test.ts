import { describe, expect, it } from 'vitest';
import { isMessageId, newMessageId } from '../../../src/messaging/index.js';

describe('message IDs (UUIDv7 from a pool of random bytes)', () => {
  it('are valid version-7 UUIDs, unique, and increase within a process, also within one millisecond and across pool refills', () => {
    const ids = Array.from({ length: 5000 }, () => newMessageId());
    expect(ids.every(isMessageId)).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
    const notIncreasing = ids.filter((id, i) => i > 0 && id <= ids[i - 1]!);
    expect(notIncreasing).toEqual([]);
    // 5000 IDs in a few milliseconds: many share a millisecond, and the pool (256 IDs) was refilled many times.
    const millis = new Set(ids.map((id) => id.slice(0, 13)));
    expect(millis.size).toBeLessThan(ids.length);
  });

  it('carry the current time in their first 48 bits', () => {
    const before = Date.now();
    const id = newMessageId();
    const ms = parseInt(id.replace(/-/g, '').slice(0, 12), 16);
    expect(ms).toBeGreaterThanOrEqual(before);
    expect(ms).toBeLessThanOrEqual(Date.now() + 1);
  });
});
