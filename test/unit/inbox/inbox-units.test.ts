import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { compileInboxOptions } from '../../../src/config/index.js';
import { human, inboxInsertSql } from '../../../src/inbox/index.js';

describe('inbox pieces without I/O', () => {
  it('builds the inbox insert with escaped literals', () => {
    expect(inboxInsertSql("group'1", 'id\\x', pg.escapeLiteral)).toBe(
      `INSERT INTO concordat.inbox (consumer, message_id) VALUES ('group''1',  E'id\\\\x') ON CONFLICT DO NOTHING RETURNING 1`,
    );
  });

  it('inbox options: defaults, Infinity, and messages naming the option', () => {
    expect(compileInboxOptions()).toEqual({ cleanupIntervalMs: 60_000, cleanupBatchRowsMax: 5000, cleanupBatchesMax: 200, allowShorterThanLogRetention: false, deadLetterRetentionMs: 30 * 86_400_000 });
    expect(() => compileInboxOptions({ deadLetterRetentionMs: 1000 })).toThrow('invalid options: inbox.deadLetterRetentionMs: Too small: expected number to be >=3600000 (got 1000)');
    expect(compileInboxOptions({ deadLetterRetentionMs: Infinity }).deadLetterRetentionMs).toBe(Infinity);
    expect(compileInboxOptions({ dedupWindowMs: Infinity }).dedupWindowMs).toBe(Infinity);
    expect(() => compileInboxOptions({ dedupWindowMs: 59_999 })).toThrow('invalid options: inbox.dedupWindowMs: Too small: expected number to be >=60000 (got 59999)');
    expect(() => compileInboxOptions({ cleanupIntervalMs: 1.5 } as never)).toThrow('invalid options: inbox.cleanupIntervalMs: Invalid input: expected int, received number (got 1.5)');
  });

  it('says durations the way people read them', () => {
    expect([Infinity, 604_800_000, 5_400_000, 90_000, 1500, 20].map(human)).toEqual(['forever', '7 d', '1.5 h', '1.5 min', '1.5 s', '20 ms']);
  });
});
