import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OutboxStatus } from '../../../src/admin/index.js';
import { shardFor } from '../../../src/outbox/index.js';
import { openDatabase, type Database } from '../../../src/persistence/index.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';
import { cli } from './helpers.js';

/**
 * `concordat outbox status` as a process on real PostgreSQL: rows waiting
 * on two shards and one relay membership holding a lease, as JSON (every
 * shard; dates as ISO strings) and as the operator's table (only shards
 * with a backlog).
 */
describe('concordat outbox status', { timeout: 180_000 }, () => {
  let testDb: TestDatabase;
  let db: Database;

  beforeAll(async () => {
    testDb = await createTestDatabase('cli_outbox');
    db = await openDatabase({ url: testDb.url, poolSize: 2 });
  });
  afterAll(async () => {
    await db?.close();
    await testDb?.drop();
  });

  it('shows the backlog and oldest age per shard, the relays and their leases', async () => {
    const a = shardFor('order-1');
    const b = shardFor('order-2');
    await db.dataSource.query(
      `INSERT INTO concordat.outbox (message_id, topic, partition_key, shard, headers, payload, created_at)
       VALUES ('m1', 'orders', 'order-1', $1, '{}', 'x', now() - interval '300 seconds'),
              ('m2', 'orders', 'order-1', $1, '{}', 'x', now()),
              ('m3', 'orders', 'order-2', $2, '{}', 'x', now() - interval '20 seconds')`,
      [a, b],
    );
    // A relay's membership and its lease on shard a, as shard-leases.ts writes them.
    await db.dataSource.query(`INSERT INTO concordat.outbox_relay (relay_id, expires_at) VALUES ('relay-test', now() + interval '1 hour')`);
    await db.dataSource.query(`UPDATE concordat.outbox_shard SET owner = 'relay-test', expires_at = now() + interval '1 hour', epoch = 1 WHERE shard = $1`, [
      a,
    ]);

    const json = await cli(['outbox', 'status', '--url', testDb.url, '--json']);
    expect(json.stderr).toBe('');
    expect(json.code).toBe(0);
    const status = JSON.parse(json.stdout) as OutboxStatus & { at: string };
    expect(status).toMatchObject({ backlogRows: 3, backlogCapped: false, failedRows: 0 });
    expect(status.oldestAgeMs).toBeGreaterThanOrEqual(300_000);
    expect(status.shards).toHaveLength(256);
    expect(status.shards[a]).toMatchObject({ shard: a, backlogRows: 2, backlogCapped: false, owner: 'relay-test', epoch: 1 });
    expect(status.shards[a]!.leaseRemainingMs).toBeGreaterThan(3_000_000);
    expect(status.shards[b]).toMatchObject({ shard: b, backlogRows: 1, owner: null, leaseRemainingMs: null, epoch: 0 });
    expect(status.relays).toEqual([{ relayId: 'relay-test', startedAt: expect.any(String), expiresAt: expect.any(String), alive: true, shards: [a] }]);
    expect(Number.isNaN(Date.parse(status.at))).toBe(false);

    const text = await cli(['outbox', 'status', '--count-max', '1'], { env: { DATABASE_URL: testDb.url } });
    expect(text.code).toBe(0);
    const lines = text.stdout.split('\n');
    // Counting stops at one row per shard: each shard shows at least one, the total at least two.
    expect(lines[0]).toMatch(/^outbox: at least 2 row\(s\) waiting, oldest 5\.\d+m; 0 failed row\(s\); 1 live relay\(s\)$/);
    expect(lines.slice(2, 5).map((l) => l.split(/ +/).slice(0, 2))).toEqual([
      ['SHARD', 'BACKLOG'],
      [String(Math.min(a, b)), '>=1'],
      [String(Math.max(a, b)), '>=1'],
    ]);
    expect(text.stdout).toMatch(new RegExp(`^relay-test +yes +\\S+ +\\S+ +${a}$`, 'm'));
  });
});
