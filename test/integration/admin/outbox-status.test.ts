import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { outboxStatus } from '../../../src/admin/index.js';
import { OutboxRelay, shardFor } from '../../../src/outbox/index.js';
import { openDatabase, type Database } from '../../../src/persistence/index.js';
import { until } from '../../../src/testing/index.js';
import { EmbeddedTransport } from '../../../src/transport/index.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';

/** outboxStatus on real PostgreSQL: backlog and age per shard, the count limit, then a real relay's membership and leases. */
describe('outboxStatus', () => {
  let testDb: TestDatabase;
  let db: Database;
  let dir: string;
  let transport: EmbeddedTransport;

  beforeAll(async () => {
    testDb = await createTestDatabase('outbox_status');
    db = await openDatabase({ url: testDb.url, poolSize: 4 });
    dir = await mkdtemp(join(tmpdir(), 'concordat-outbox-status-'));
    transport = new EmbeddedTransport({ dataDir: dir });
  });
  afterAll(async () => {
    await transport?.close();
    await db?.close();
    await testDb?.drop();
    await rm(dir, { recursive: true, force: true });
  });

  it('counts the backlog and the oldest age per shard, stops counting at the limit, and shows a relay taking the leases and draining it', async () => {
    const empty = await outboxStatus(db.dataSource);
    expect(empty).toMatchObject({ backlogRows: 0, backlogCapped: false, oldestAgeMs: 0, failedRows: 0, relays: [] });
    expect(empty.shards.map((s) => s.shard)).toEqual(Array.from({ length: 256 }, (_, i) => i));
    expect(empty.shards[0]).toEqual({ shard: 0, backlogRows: 0, backlogCapped: false, oldestAgeMs: 0, owner: null, leaseRemainingMs: null, epoch: 0 });

    await transport.ensureTopics([{ name: 'status-topic', partitions: 1 }]);
    const a = shardFor('key-a');
    const b = shardFor('key-b');
    expect(a).not.toBe(b);
    // Three rows on key-a's shard, the oldest 90 s old; one on key-b's.
    await db.dataSource.query(
      `INSERT INTO concordat.outbox (message_id, topic, partition_key, shard, headers, payload, created_at)
       VALUES ('m1', 'status-topic', 'key-a', $1, '{}', 'x', now() - interval '90 seconds'),
              ('m2', 'status-topic', 'key-a', $1, '{}', 'x', now() - interval '10 seconds'),
              ('m3', 'status-topic', 'key-a', $1, '{}', 'x', now()),
              ('m4', 'status-topic', 'key-b', $2, '{}', 'x', now() - interval '30 seconds')`,
      [a, b],
    );
    const waiting = await outboxStatus(db.dataSource);
    expect(waiting.backlogRows).toBe(4);
    expect(waiting.oldestAgeMs).toBeGreaterThanOrEqual(90_000);
    expect(waiting.shards[a]).toMatchObject({ backlogRows: 3, backlogCapped: false });
    expect(waiting.shards[a]!.oldestAgeMs).toBeGreaterThanOrEqual(90_000);
    expect(waiting.shards[b]!.oldestAgeMs).toBeGreaterThanOrEqual(30_000);
    expect(waiting.shards[b]!.oldestAgeMs).toBeLessThan(90_000);

    const capped = await outboxStatus(db.dataSource, { backlogCountMax: 2 });
    expect(capped.shards[a]).toMatchObject({ backlogRows: 2, backlogCapped: true });
    expect(capped).toMatchObject({ backlogRows: 3, backlogCapped: true });
    await expect(outboxStatus(db.dataSource, { backlogCountMax: 0 })).rejects.toThrow('backlogCountMax must be an integer in 1..10000000 (got 0)');

    const relay = new OutboxRelay(db, transport, { pollIntervalMs: 100 }, { metricsRegistry: new Registry() });
    await relay.start();
    try {
      await until(
        async () => {
          const s = await outboxStatus(db.dataSource);
          return s.backlogRows === 0 && s.relays.length === 1 && s.relays[0]!.shards.length === 256;
        },
        { message: 'the relay owns every shard and drained the outbox' },
      );
      const running = await outboxStatus(db.dataSource);
      expect(running.relays[0]).toMatchObject({ alive: true, shards: Array.from({ length: 256 }, (_, i) => i) });
      expect(running.shards[a]!.owner).toBe(running.relays[0]!.relayId);
      expect(running.shards[a]!.leaseRemainingMs).toBeGreaterThan(0);
      expect(running.shards[a]!.epoch).toBeGreaterThan(0);
    } finally {
      await relay.stop();
    }
  });
});
