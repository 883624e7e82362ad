import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEnvelope } from '../../../src/messaging/index.js';
import { OUTBOX_SHARDS, shardFor, writeOutbox } from '../../../src/outbox/index.js';
import { openDatabase, type Database } from '../../../src/persistence/index.js';
import { TransactionContext } from '../../../src/runtime/index.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';

describe('outbox writer (real Postgres)', () => {
  let testDb: TestDatabase;
  let db: Database;

  beforeAll(async () => {
    testDb = await createTestDatabase('outbox_writer');
    db = await openDatabase({ url: testDb.url, poolSize: 2 });
    await db.dataSource.query(`CREATE TABLE accounts (id text PRIMARY KEY, balance int)`);
  });
  afterAll(async () => {
    await db.close();
    await testDb.drop();
  });

  const outboxIds = async (): Promise<string[]> =>
    (await db.dataSource.query(`SELECT message_id FROM concordat.outbox ORDER BY seq`)).map((r: { message_id: string }) => r.message_id);

  it('a message exists if and only if its business transaction commits', async () => {
    let committedId = '';
    await db.transaction(async (manager) => {
      const context = new TransactionContext(manager, 'accounts');
      await manager.query(`INSERT INTO accounts VALUES ('a', 100)`);
      committedId = context.publish('accounts.opened', { id: 'a' }, { key: 'a' });
      await context.flush();
    });
    let rolledBackId = '';
    await expect(
      db.transaction(async (manager) => {
        const context = new TransactionContext(manager, 'accounts');
        await manager.query(`INSERT INTO accounts VALUES ('b', 100)`);
        rolledBackId = context.publish('accounts.opened', { id: 'b' }, { key: 'b' });
        await context.flush();
        throw new Error('business rule failed after publishing');
      }),
    ).rejects.toThrow('business rule failed after publishing');
    // A transaction whose commit itself fails (constraint violation at the last statement).
    let failedCommitId = '';
    await expect(
      db.transaction(async (manager) => {
        const context = new TransactionContext(manager, 'accounts');
        failedCommitId = context.publish('accounts.opened', { id: 'a' });
        await context.flush();
        await manager.query(`INSERT INTO accounts VALUES ('a', 1)`);
      }),
    ).rejects.toThrow(/duplicate key value violates unique constraint/);
    expect(await outboxIds()).toEqual([committedId]);
    expect(rolledBackId).not.toBe('');
    expect(failedCommitId).not.toBe('');
    expect(await db.dataSource.query(`SELECT id FROM accounts ORDER BY id`)).toEqual([{ id: 'a' }]);
  });

  it('stores the record as it will be published: binary-mode headers, value bytes, key and its shard', async () => {
    const envelope = createEnvelope({ type: 'accounts.credited', source: 'accounts', data: { amount: 5 }, partitionkey: 'acct-7' });
    await db.transaction((manager) => writeOutbox(manager, [{ topic: 'accounts', envelope }]));
    const [row] = await db.dataSource.query(`SELECT topic, partition_key, shard, headers, payload FROM concordat.outbox WHERE message_id = $1`, [envelope.id]);
    expect(row).toEqual({
      topic: 'accounts',
      partition_key: 'acct-7',
      shard: shardFor('acct-7'),
      headers: {
        ce_specversion: '1.0',
        ce_id: envelope.id,
        ce_type: 'accounts.credited',
        ce_source: 'accounts',
        ce_time: envelope.time,
        'content-type': 'application/json',
        ce_partitionkey: 'acct-7',
      },
      payload: Buffer.from('{"amount":5}'),
    });
    expect(shardFor('acct-7')).toBeLessThan(OUTBOX_SHARDS);
  });
});
