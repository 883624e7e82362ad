import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertPreparedTransactionsEnabled, concordatMigrations, openDatabase, type Database } from '../../../src/persistence/index.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';

describe('openDatabase', () => {
  let testDb: TestDatabase;

  beforeAll(async () => {
    testDb = await createTestDatabase('persistence');
  });
  afterAll(async () => {
    await testDb.drop();
  });

  it('creates Concordat tables, once, when several processes open it together', async () => {
    const opened: Database[] = await Promise.all([1, 2, 3].map(() => openDatabase({ url: testDb.url, poolSize: 2 })));
    try {
      const tables: Array<{ table_name: string }> = await opened[0]!.dataSource.query(
        `SELECT table_name FROM information_schema.tables WHERE table_schema = 'concordat' ORDER BY table_name`,
      );
      expect(tables.map((t) => t.table_name)).toEqual(expect.arrayContaining(['branch', 'fence', 'global_transaction', 'inbox', 'outbox']));
      // Every migration ran exactly once although three processes opened the database at once.
      const migrations: Array<{ name: string }> = await opened[0]!.dataSource.query(`SELECT name FROM concordat_migrations ORDER BY id`);
      expect(migrations.map((m) => m.name)).toEqual(concordatMigrations.map((migration) => new migration().name));
    } finally {
      await Promise.all(opened.map((db) => db.close()));
    }
  });

  it('names the option when one is out of range', async () => {
    await expect(openDatabase({ url: testDb.url, poolSize: 0 })).rejects.toThrow(
      'invalid options: database.poolSize: Too small: expected number to be >=1 (got 0)',
    );
  });

  it('says where it could not connect, without the password', async () => {
    await expect(openDatabase({ url: 'postgres://someone:secret@127.0.0.1:1/nowhere', connectTimeoutMs: 500 })).rejects.toThrow(
      /^cannot connect to PostgreSQL at postgres:\/\/someone:\*\*\*@127\.0\.0\.1:1\/nowhere \(from database\.url\): /,
    );
  });

  it('checks max_prepared_transactions with a message naming the setting', async () => {
    const db = await openDatabase({ url: testDb.url, poolSize: 1 });
    try {
      const [{ max_prepared_transactions: setting }] = await db.dataSource.query('SHOW max_prepared_transactions');
      if (Number(setting) > 0) {
        await expect(assertPreparedTransactionsEnabled(db.dataSource)).resolves.toBeUndefined();
      } else {
        await expect(assertPreparedTransactionsEnabled(db.dataSource)).rejects.toThrow(
          /max_prepared_transactions = 0, so 2PC participants cannot PREPARE TRANSACTION/,
        );
      }
    } finally {
      await db.close();
    }
  });

  it('transaction() throws TRANSACTION_ROLLED_BACK when the work caught a failed statement, and keeps nothing', async () => {
    const db = await openDatabase({ url: testDb.url, poolSize: 2 });
    try {
      await db.dataSource.query('CREATE TABLE IF NOT EXISTS tx_check (id int PRIMARY KEY)');
      await expect(
        db.transaction(async (manager) => {
          await manager.query('INSERT INTO tx_check VALUES (1)');
          await manager.query('SELECT 1/0').catch(() => undefined); // swallowed: the transaction is now aborted
          return 'done';
        }),
      ).rejects.toMatchObject({ code: 'TRANSACTION_ROLLED_BACK' });
      expect(await db.dataSource.query('SELECT count(*)::int AS n FROM tx_check')).toEqual([{ n: 0 }]);

      // A failure caught inside a savepoint leaves the transaction usable, and it commits.
      await expect(
        db.transaction(async (manager) => {
          await manager.query('INSERT INTO tx_check VALUES (2)');
          await manager.transaction((inner) => inner.query('SELECT 1/0')).catch(() => undefined);
          return 'done';
        }),
      ).resolves.toBe('done');
      expect(await db.dataSource.query('SELECT id FROM tx_check')).toEqual([{ id: 2 }]);

      // A thrown error rolls back and propagates unchanged.
      await expect(
        db.transaction(async (manager) => {
          await manager.query('INSERT INTO tx_check VALUES (3)');
          throw new Error('business rule');
        }),
      ).rejects.toThrow('business rule');
      expect(await db.dataSource.query('SELECT id FROM tx_check')).toEqual([{ id: 2 }]);
    } finally {
      await db.close();
    }
  });

  it('transaction() rolls back when a subscriber throws before COMMIT, and leaves no pooled connection inside a transaction', async () => {
    const db = await openDatabase({ url: testDb.url, poolSize: 1 });
    try {
      await db.dataSource.query('CREATE TABLE IF NOT EXISTS tx_subscriber (id int PRIMARY KEY)');
      const subscriber = {
        beforeTransactionCommit: () => {
          throw new Error('subscriber refused');
        },
      };
      db.dataSource.subscribers.push(subscriber);
      try {
        await expect(db.transaction((manager) => manager.query('INSERT INTO tx_subscriber VALUES (1)'))).rejects.toThrow('subscriber refused');
      } finally {
        db.dataSource.subscribers.splice(db.dataSource.subscribers.indexOf(subscriber), 1);
      }
      // The pool's only connection: outside any transaction, and the insert is gone.
      expect(await db.dataSource.query(`SELECT now() = statement_timestamp() AS outside`)).toEqual([{ outside: true }]);
      expect(await db.dataSource.query('SELECT count(*)::int AS n FROM tx_subscriber')).toEqual([{ n: 0 }]);
    } finally {
      await db.close();
    }
  });
});
