import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { compileInboxOptions } from '../../../src/config/index.js';
import { human, inboxClaimCheckingDeadLettersSql, inboxClaimSql, readInboxClaim } from '../../../src/inbox/index.js';

describe('inbox pieces without I/O', () => {
  it('builds the inbox claim with escaped literals, IDs deduplicated and sorted', () => {
    expect(inboxClaimSql("group'1", ['b', 'id\\x', 'b', 'a'], pg.escapeLiteral)).toBe(
      `INSERT INTO concordat.inbox (consumer, message_id) SELECT 'group''1', m.id FROM (VALUES ('a'), ('b'), ( E'id\\\\x')) AS m(id) ` +
        `ORDER BY m.id ON CONFLICT DO NOTHING RETURNING message_id`,
    );
    expect(() => inboxClaimSql('g', [], pg.escapeLiteral)).toThrow('assertion failed: an inbox claim needs at least one message');
  });

  it("the dispatcher's claim uses the same insert, leaving out the records dead-lettered before", () => {
    const sql = inboxClaimCheckingDeadLettersSql(
      'g',
      [
        { messageId: 'b', topic: 't', partition: 0, offset: 7 },
        { messageId: 'a', topic: 't', partition: 1, offset: 3 },
        { messageId: 'b', topic: 't', partition: 2, offset: 9 },
      ],
      pg.escapeLiteral,
    );
    expect(sql).toContain(
      `claimed AS (INSERT INTO concordat.inbox (consumer, message_id) SELECT 'g', m.id FROM (VALUES ('a'), ('b')) AS m(id) ` +
        `WHERE NOT EXISTS (SELECT 1 FROM dead WHERE dead.message_id = m.id) ORDER BY m.id ON CONFLICT DO NOTHING RETURNING message_id)`,
    );
    expect(sql).toContain(`JOIN (VALUES ('b', 't', 0, 7::bigint), ('a', 't', 1, 3::bigint), ('b', 't', 2, 9::bigint))`);
  });

  it('reads a claim: new IDs taken once, dead letters found by the place of their record', () => {
    const claim = readInboxClaim([
      { message_id: 'a', dead_letter_id: null, topic: null, partition: null, offset: null },
      { message_id: 'b' },
      { message_id: 'c', dead_letter_id: '17', topic: 't', partition: 2, offset: '9' },
    ]);
    expect([claim.claimed('a'), claim.take('a'), claim.take('a'), claim.take('b'), claim.take('c')]).toEqual([true, true, false, true, false]);
    expect([claim.deadLetterAt('t', 2, 9), claim.deadLetterAt('t', 2, 8), claim.deadLetterAt('u', 2, 9)]).toEqual(['17', undefined, undefined]);
  });

  it('inbox options: defaults, Infinity, and messages naming the option', () => {
    expect(compileInboxOptions()).toEqual({
      cleanupIntervalMs: 60_000,
      cleanupBatchRowsMax: 5000,
      cleanupBatchesMax: 200,
      allowShorterThanLogRetention: false,
      deadLetterRetentionMs: 30 * 86_400_000,
    });
    expect(() => compileInboxOptions({ deadLetterRetentionMs: 1000 })).toThrow(
      'invalid options: inbox.deadLetterRetentionMs: Too small: expected number to be >=3600000 (got 1000)',
    );
    expect(compileInboxOptions({ deadLetterRetentionMs: Infinity }).deadLetterRetentionMs).toBe(Infinity);
    expect(compileInboxOptions({ dedupWindowMs: Infinity }).dedupWindowMs).toBe(Infinity);
    expect(() => compileInboxOptions({ dedupWindowMs: 59_999 })).toThrow(
      'invalid options: inbox.dedupWindowMs: Too small: expected number to be >=60000 (got 59999)',
    );
    expect(() => compileInboxOptions({ cleanupIntervalMs: 1.5 } as never)).toThrow(
      'invalid options: inbox.cleanupIntervalMs: Invalid input: expected int, received number (got 1.5)',
    );
  });

  it('says durations the way people read them', () => {
    expect([Infinity, 604_800_000, 5_400_000, 90_000, 1500, 20].map(human)).toEqual(['forever', '7 d', '1.5 h', '1.5 min', '1.5 s', '20 ms']);
  });
});
