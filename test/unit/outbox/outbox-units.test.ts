import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { compileRelayOptions } from '../../../src/config/index.js';
import { fairShare, OUTBOX_INLINE_BYTES_MAX, OUTBOX_SHARDS, outboxInsertSql, quoteLiteral, shardFor } from '../../../src/outbox/index.js';
import { withinBytes } from '../../../src/outbox/lane.js';
import { isScheduledNotification, shardsOfNotification } from '../../../src/outbox/notifier.js';

describe('outbox pieces without I/O', () => {
  it('inlines records as escaped literals: quotes doubled, backslashes in E-strings, bytes as hex bytea', () => {
    const sql = outboxInsertSql(
      [
        { messageId: "m'1", topic: 't', key: 'k\\1', headers: { a: "x'y" }, payload: Buffer.from([0, 255]) },
        { messageId: 'm2', topic: 't', key: null, headers: {}, payload: null },
      ],
      pg.escapeLiteral,
    );
    expect(sql).toBe(
      'INSERT INTO concordat.outbox (message_id, topic, partition_key, shard, headers, payload) VALUES ' +
        `('m''1','t', E'k\\\\1',${shardFor('k\\1')},'{"a":"x''y"}'::jsonb,'\\x00ff'::bytea),` +
        `('m2','t',NULL,${shardFor('m2')},'{}'::jsonb,NULL)`,
    );
    expect(outboxInsertSql([], pg.escapeLiteral)).toBe('');
    const big = { messageId: 'b', topic: 't', key: null, headers: {}, payload: Buffer.alloc(OUTBOX_INLINE_BYTES_MAX + 1) };
    expect(outboxInsertSql([big], pg.escapeLiteral)).toBeUndefined();
  });

  it('quotes literals exactly as node-postgres does', () => {
    const cases = ['', 'a', "it's", 'back\\slash', "both ' and \\", "\\'\\'", '漢字 🚀', "''", '\\\\', "E'x'", 'a\nb'];
    expect(cases.map(quoteLiteral)).toEqual(cases.map(pg.escapeLiteral));
  });

  it('hashes keys to 256 shards with FNV-1a, stable across releases', () => {
    expect(OUTBOX_SHARDS).toBe(256);
    // FNV-1a 32-bit of "a" is 0xe40c292c; of "foobar" 0xbf9cf968 (reference vectors).
    expect(shardFor('a')).toBe(0xe40c292c % 256);
    expect(shardFor('foobar')).toBe(0xbf9cf968 % 256);
    expect(shardFor('')).toBe(0x811c9dc5 % 256);
  });

  it('shares 256 shards fairly, the remainder to the first relays by ID', () => {
    expect([0, 1, 2].map((i) => fairShare(i, 3))).toEqual([86, 85, 85]);
    expect([0, 1].map((i) => fairShare(i, 2))).toEqual([128, 128]);
    expect(fairShare(0, 1)).toBe(256);
    expect(Array.from({ length: 300 }, (_, i) => fairShare(i, 300)).reduce((a, b) => a + b, 0)).toBe(256);
    expect(fairShare(-1, 3)).toBe(0);
  });

  it('cuts a batch at the byte bound, keeping at least one row, as a prefix', () => {
    const rows = [3, 3, 3].map((kb) => ({ payload: Buffer.alloc(kb * 1024) }));
    expect(withinBytes(rows, 8 * 1024)).toHaveLength(2);
    expect(withinBytes([{ payload: Buffer.alloc(20_000) }, { payload: null }], 1024)).toHaveLength(1);
    expect(withinBytes([{ payload: null }, { payload: null }], 1024)).toHaveLength(2);
  });

  it('reads the shards a NOTIFY names; anything else wakes every lane', () => {
    expect(shardsOfNotification('a1b2c3|4,17,255')).toEqual([4, 17, 255]);
    expect(shardsOfNotification('')).toBeUndefined();
    expect(shardsOfNotification(undefined)).toBeUndefined();
    expect(shardsOfNotification('x|')).toBeUndefined();
    // Scheduled messages were committed: the token is not a shard.
    expect(shardsOfNotification('a1b2c3|4,s')).toEqual([4]);
    expect(shardsOfNotification('a1b2c3|s')).toBeUndefined();
    expect([isScheduledNotification('a1b2c3|4,s'), isScheduledNotification('a1b2c3|s'), isScheduledNotification('a1b2c3|4,17')]).toEqual([true, true, false]);
  });

  it('relay options: defaults, and messages that name the option', () => {
    expect(compileRelayOptions()).toEqual({
      batchRowsMax: 500,
      batchBytesMax: 4 * 1024 * 1024,
      lanes: 1,
      pollIntervalMs: 1000,
      notifyIntervalMs: 10,
      retryBackoffMs: 100,
      retryBackoffMaxMs: 5000,
      publishTimeoutMs: 30_000,
      leaseMs: 10_000,
      leaseRenewIntervalMs: 2000,
      defaultPartitions: 8,
      scheduleTickMs: 10,
    });
    expect(() => compileRelayOptions({ leaseMs: 1000, leaseRenewIntervalMs: 500 })).toThrow(
      'invalid options: relay.leaseRenewIntervalMs: leaseRenewIntervalMs must be at most a third of leaseMs, so that a late renewal does not lose the lease (got 500)',
    );
    expect(() => compileRelayOptions({ lanes: 0 })).toThrow('invalid options: relay.lanes: Too small: expected number to be >=1 (got 0)');
    expect(() => compileRelayOptions({ batchSize: 3 } as never)).toThrow('invalid options: relay: Unrecognized key: "batchSize"');
  });
});
