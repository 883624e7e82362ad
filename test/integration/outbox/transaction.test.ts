import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ConcordatError, ErrorCode } from '../../../src/errors.js';
import { OUTBOX_INLINE_BYTES_MAX, runOutboxTransaction, shardFor, type OutboxRecord } from '../../../src/outbox/index.js';
import { openDatabase, type Database } from '../../../src/persistence/index.js';
import { runTransaction } from '../../../src/runtime/index.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';

/**
 * The round trips (queries sent) of the pool's clients while `work` runs,
 * by their first words. The wake-up NOTIFY for relays in other processes is
 * left out: it follows the commit, outside the transaction, on a timer.
 */
async function roundTrips(work: () => Promise<unknown>): Promise<string[]> {
  const sent: string[] = [];
  const original = pg.Client.prototype.query;
  pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
    const config = args[0] as string | { text: string };
    sent.push((typeof config === 'string' ? config : config.text).trim().split(/\s+/).slice(0, 3).join(' '));
    return (original as (...a: unknown[]) => unknown).apply(this, args);
  } as typeof original;
  try {
    await work();
  } finally {
    pg.Client.prototype.query = original;
  }
  return sent.filter((text) => !text.startsWith('SELECT pg_notify'));
}

describe('transactions whose outbox rows ride with COMMIT (real Postgres)', () => {
  let testDb: TestDatabase;
  let db: Database;

  beforeAll(async () => {
    testDb = await createTestDatabase('outbox_tx');
    db = await openDatabase({ url: testDb.url, poolSize: 2 });
    await db.dataSource.query(`CREATE TABLE accounts (id text PRIMARY KEY, balance int)`);
    await db.dataSource.query(
      `CREATE TABLE transfers (id text PRIMARY KEY, amount int CONSTRAINT positive CHECK (amount > 0),
         account text, CONSTRAINT known_account FOREIGN KEY (account) REFERENCES accounts (id) DEFERRABLE INITIALLY DEFERRED)`,
    );
  });
  afterAll(async () => {
    await db.close();
    await testDb.drop();
  });
  beforeEach(async () => {
    await db.dataSource.query(`TRUNCATE transfers, accounts, concordat.outbox`);
  });

  const outbox = async (): Promise<
    Array<{ message_id: string; topic: string; partition_key: string | null; shard: number; headers: unknown; payload: Buffer | null }>
  > => db.dataSource.query(`SELECT message_id, topic, partition_key, shard, headers, payload FROM concordat.outbox ORDER BY seq`);

  it('takes three round trips: BEGIN, the business statement, the outbox insert with COMMIT', async () => {
    const sent = await roundTrips(() =>
      runTransaction(db.dataSource, 'bank', async (context) => {
        await context.manager.query(`INSERT INTO accounts VALUES ('a', 10)`);
        context.publish('accounts.opened', { id: 'a' }, { key: 'a' });
        context.publish('accounts.opened', { id: 'a2' }, { key: 'a' });
      }),
    );
    expect(sent).toEqual(['BEGIN', 'INSERT INTO accounts', 'INSERT INTO concordat.outbox']);
    const rows = await outbox();
    expect(rows.map((row) => row.payload!.toString())).toEqual(['{"id":"a"}', '{"id":"a2"}']);
  });

  it('a commit that fails (a deferred constraint) takes the business rows and the outbox rows with it', async () => {
    await expect(
      runTransaction(db.dataSource, 'bank', async (context) => {
        await context.manager.query(`INSERT INTO transfers VALUES ('t1', 5, 'nobody')`);
        context.publish('transfers.made', { id: 't1' });
      }),
    ).rejects.toThrow('insert or update on table "transfers" violates foreign key constraint "known_account"');
    expect(await outbox()).toEqual([]);
    expect(await db.dataSource.query(`SELECT * FROM transfers`)).toEqual([]);
    // The connection went back to the pool usable (not stuck in an aborted transaction).
    await runTransaction(db.dataSource, 'bank', async (context) => void (await context.manager.query(`INSERT INTO accounts VALUES ('b', 1)`)));
    await runTransaction(db.dataSource, 'bank', async (context) => void (await context.manager.query(`INSERT INTO accounts VALUES ('c', 1)`)));
    expect(await db.dataSource.query(`SELECT id FROM accounts ORDER BY id`)).toEqual([{ id: 'b' }, { id: 'c' }]);
  });

  it('work that swallows a failed statement: COMMIT answers ROLLBACK, and that is an error, not a success', async () => {
    const failure = await runTransaction(db.dataSource, 'bank', async (context) => {
      await context.manager.query(`INSERT INTO accounts VALUES ('swallowed', 1)`);
      await context.manager.query(`INSERT INTO transfers VALUES ('t0', -1, NULL)`).catch(() => undefined); // CHECK fails; caught
    }).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(ConcordatError);
    expect(failure).toMatchObject({ code: ErrorCode.TRANSACTION_ROLLED_BACK, retriable: true });
    expect((failure as Error).message).toBe(
      'the transaction was rolled back, not committed: a statement inside it failed and the error was caught, ' +
        'which leaves a PostgreSQL transaction aborted (COMMIT then answers ROLLBACK). Let the error propagate, ' +
        'or run the statement that may fail in a savepoint (manager.transaction(...) inside the transaction) and catch its error there.',
    );
    expect(await db.dataSource.query(`SELECT * FROM accounts`)).toEqual([]);
    // The connection went back to the pool usable.
    await runTransaction(db.dataSource, 'bank', async (context) => void (await context.manager.query(`INSERT INTO accounts VALUES ('after', 1)`)));
    expect(await db.dataSource.query(`SELECT id FROM accounts`)).toEqual([{ id: 'after' }]);
  });

  it('work that swallows a failed statement and publishes: nothing is written, and the caller hears of it', async () => {
    await expect(
      runTransaction(db.dataSource, 'bank', async (context) => {
        await context.manager.query(`INSERT INTO transfers VALUES ('t0', -1, NULL)`).catch(() => undefined);
        context.publish('transfers.made', { id: 't0' });
      }),
    ).rejects.toThrow('current transaction is aborted');
    const big = Buffer.alloc(OUTBOX_INLINE_BYTES_MAX + 1, 7);
    await expect(
      runOutboxTransaction(db.dataSource, async ({ manager }) => {
        await manager.query(`SELECT 1/0`).catch(() => undefined);
        return { result: undefined, records: [{ messageId: 'big', topic: 't', key: 'k', headers: {}, payload: big }] };
      }),
    ).rejects.toThrow('current transaction is aborted');
    expect(await outbox()).toEqual([]);
  });

  it('a prelude that fails leaves no aborted transaction on the pooled connection', async () => {
    const single = await openDatabase({ url: testDb.url, poolSize: 1 });
    try {
      const failing = runOutboxTransaction(single.dataSource, async () => ({ result: 1, records: [] }), { prelude: () => 'SELECT 1/0' });
      await expect(failing).rejects.toThrow('division by zero');
      // The pool's only connection again: it must be out of the aborted block.
      expect(await single.dataSource.query(`SELECT 2 AS n`)).toEqual([{ n: 2 }]);
      expect(
        await runOutboxTransaction(single.dataSource, async ({ preludeRows }) => ({ result: preludeRows, records: [] }), { prelude: () => 'SELECT 3 AS n' }),
      ).toEqual([{ n: 3 }]);
    } finally {
      await single.close();
    }
  });

  it('work that throws rolls back: no business row, no message', async () => {
    await expect(
      runTransaction(db.dataSource, 'bank', async (context) => {
        await context.manager.query(`INSERT INTO accounts VALUES ('x', 1)`);
        context.publish('accounts.opened', { id: 'x' });
        throw new Error('business rule says no');
      }),
    ).rejects.toThrow('business rule says no');
    expect(await outbox()).toEqual([]);
    expect(await db.dataSource.query(`SELECT * FROM accounts`)).toEqual([]);
  });

  it('nested manager.transaction() calls are savepoints of the outer transaction', async () => {
    await runTransaction(db.dataSource, 'bank', async (context) => {
      await context.manager.query(`INSERT INTO accounts VALUES ('outer', 1)`);
      await expect(
        context.manager.transaction(async (inner) => {
          await inner.query(`INSERT INTO accounts VALUES ('inner-rolled-back', 1)`);
          throw new Error('inner fails');
        }),
      ).rejects.toThrow('inner fails');
      await context.manager.transaction(async (inner) => void (await inner.query(`INSERT INTO accounts VALUES ('inner-kept', 1)`)));
      context.publish('accounts.opened', { id: 'outer' });
    });
    expect(await db.dataSource.query(`SELECT id FROM accounts ORDER BY id`)).toEqual([{ id: 'inner-kept' }, { id: 'outer' }]);
    expect(await outbox()).toHaveLength(1);
  });

  it('keeps every byte of awkward keys, headers and payloads through the inlined literals', async () => {
    const awkward = `O'Brien \\ "quoted" \\x00 é 漢字 🚀 $1 $$ ; COMMIT; --`;
    const payload = Buffer.from([0, 1, 2, 39, 92, 255, 254, 10, 13]);
    const record: OutboxRecord = { messageId: `id-${awkward}`, topic: 'awkward.topic', key: awkward, headers: { ce_id: awkward, 'x-quote': "'" }, payload };
    await runOutboxTransaction(db.dataSource, async () => ({
      result: undefined,
      records: [record, { ...record, messageId: 'no-key', key: null, payload: null }],
    }));
    expect(await outbox()).toEqual([
      {
        message_id: `id-${awkward}`,
        topic: 'awkward.topic',
        partition_key: awkward,
        shard: shardFor(awkward),
        headers: { ce_id: awkward, 'x-quote': "'" },
        payload,
      },
      {
        message_id: 'no-key',
        topic: 'awkward.topic',
        partition_key: null,
        shard: shardFor('no-key'),
        headers: { ce_id: awkward, 'x-quote': "'" },
        payload: null,
      },
    ]);
  });

  it(`over ${OUTBOX_INLINE_BYTES_MAX} payload bytes, inserts with parameters, then commits`, async () => {
    const big = Buffer.alloc(OUTBOX_INLINE_BYTES_MAX + 1, 7);
    const sent = await roundTrips(() =>
      runOutboxTransaction(db.dataSource, async () => ({
        result: undefined,
        records: [{ messageId: 'big', topic: 't', key: 'k', headers: {}, payload: big }],
      })),
    );
    expect(sent).toEqual(['BEGIN', 'INSERT INTO concordat.outbox', 'COMMIT']);
    const [row] = await outbox();
    expect(row!.payload!.equals(big)).toBe(true);
  });

  it('a rollback ending writes nothing and returns the result', async () => {
    const result = await runOutboxTransaction(db.dataSource, async ({ manager }) => {
      await manager.query(`INSERT INTO accounts VALUES ('gone', 1)`);
      return { result: 'skipped', rollback: true as const };
    });
    expect(result).toBe('skipped');
    expect(await db.dataSource.query(`SELECT * FROM accounts`)).toEqual([]);
  });
});
