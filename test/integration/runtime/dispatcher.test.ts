import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { ErrorCode, nonRetriable } from '../../../src/errors.js';
import { openDatabase, type Database } from '../../../src/persistence/index.js';
import { DeadLetterHeader } from '../../../src/inbox/index.js';
import { Dispatcher, OnMessage, Service, exploreHandlers, type MessageContext } from '../../../src/runtime/index.js';
import { outboxNotifierFor } from '../../../src/outbox/index.js';
import { until } from '../../../src/testing/index.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';
import { deliveryOf } from '../../support/deliveries.js';

/** A handler whose behaviour each test sets, counting its committed effects in a table. */
let behaviour: (context: MessageContext<{ n: number }>) => Promise<void> = async () => {};
/** Runs before the handler's own statement (a test may cut the connection there). */
let before: (context: MessageContext<{ n: number }>) => Promise<void> = async () => {};
let calls = 0;
let lookups = 0;

@Service('ledger')
class LedgerService {
  @OnMessage('ledger.entries', { retry: { maxAttempts: 3, strategy: 'fixed', initialDelayMs: 5 } })
  async record(context: MessageContext<{ n: number }>): Promise<void> {
    calls++;
    await before(context);
    await context.manager.query(`INSERT INTO ledger (message_id, n) VALUES ($1, $2)`, [context.message.id, context.data.n]);
    context.publish('ledger.recorded', { n: context.data.n }, { key: 'k' });
    await behaviour(context);
  }
}

/** An at-least-once handler: no transaction, no inbox. */
@Service('lookup')
class LookupService {
  @OnMessage('ledger.entries', { transactional: false })
  async look(context: MessageContext<{ n: number }>): Promise<void> {
    lookups++;
    await context.manager.query(`INSERT INTO lookups (n) VALUES ($1)`, [context.data.n]);
    context.publish('ledger.looked-up', { n: context.data.n });
  }
}

/** A handler that publishes nothing, so its transaction ends with a bare `COMMIT`; `swallow` decides whether it hides a failed statement. */
let swallow: (context: MessageContext<{ n: number }>) => boolean = () => false;
let audits = 0;

@Service('audit')
class AuditService {
  @OnMessage('audit.entries', { retry: { maxAttempts: 3, strategy: 'fixed', initialDelayMs: 5 } })
  async audit(context: MessageContext<{ n: number }>): Promise<void> {
    audits++;
    await context.manager.query(`INSERT INTO ledger (message_id, n) VALUES ($1, $2)`, [context.message.id, context.data.n]);
    // A statement that fails, its error caught: PostgreSQL has aborted the transaction all the same.
    if (swallow(context)) await context.manager.query(`SELECT 1/0`).catch(() => undefined);
  }
}

/** Round trips (queries sent by pg clients) while `work` runs, by their first words. */
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
  return sent;
}

describe('dispatcher (real Postgres)', () => {
  let testDb: TestDatabase;
  let db: Database;
  let dispatcher: Dispatcher;

  beforeAll(async () => {
    testDb = await createTestDatabase('dispatcher');
    db = await openDatabase({ url: testDb.url, poolSize: 4 });
    await db.dataSource.query(`CREATE TABLE ledger (message_id text, n int)`);
    await db.dataSource.query(`CREATE TABLE lookups (n int)`);
    const table = exploreHandlers([LedgerService]);
    const instance = new LedgerService();
    dispatcher = new Dispatcher(table.consumers[0]!, {
      dataSource: db.dataSource,
      resolve: () => instance,
      signal: new AbortController().signal,
    });
  });
  afterAll(async () => {
    await db.close();
    await testDb.drop();
  });
  beforeEach(async () => {
    behaviour = async () => {};
    before = async () => {};
    calls = 0;
    lookups = 0;
    swallow = () => false;
    audits = 0;
    await db.dataSource.query(`TRUNCATE ledger, lookups, concordat.outbox, concordat.inbox, concordat.dead_letter`);
  });

  const count = async (sql: string): Promise<number> => Number((await db.dataSource.query(sql))[0].n);
  const ledgerOf = async (): Promise<number[]> => (await db.dataSource.query(`SELECT n FROM ledger ORDER BY n`)).map((r: { n: number }) => r.n);

  it('a redelivered message has one effect, and publishes once', async () => {
    const delivery = deliveryOf('ledger.entries', { type: 'entry', source: 'test', data: { n: 1 } });
    await dispatcher.dispatch(delivery);
    await dispatcher.dispatch(delivery);
    await Promise.all([dispatcher.dispatch(delivery), dispatcher.dispatch(delivery)]);
    expect(calls).toBe(1);
    expect(await count(`SELECT count(*) AS n FROM ledger`)).toBe(1);
    expect(await count(`SELECT count(*) AS n FROM concordat.outbox WHERE topic = 'ledger.recorded'`)).toBe(1);
    expect(await count(`SELECT count(*) AS n FROM concordat.inbox WHERE consumer = 'ledger'`)).toBe(1);
    expect(dispatcher.stats).toMatchObject({ processed: 1, duplicates: 3 });
  });

  it('publishes with causation and correlation from the incoming message', async () => {
    const delivery = deliveryOf('ledger.entries', { type: 'entry', source: 'test', data: { n: 2 }, correlationid: 'corr-1', globaltxid: 'g-1' });
    await dispatcher.dispatch(delivery);
    const [row] = await db.dataSource.query(`SELECT headers FROM concordat.outbox`);
    expect(row.headers).toMatchObject({
      ce_source: 'ledger',
      ce_causationid: delivery.headers.ce_id!.toString(),
      ce_correlationid: 'corr-1',
      ce_globaltxid: 'g-1',
      ce_partitionkey: 'k',
    });
  });

  it('retries a failing handler, rolling back each failed attempt, until it succeeds', async () => {
    behaviour = async () => {
      if (calls < 3) throw new Error('transient');
    };
    await dispatcher.dispatch(deliveryOf('ledger.entries', { type: 'entry', source: 'test', data: { n: 3 } }));
    expect(calls).toBe(3);
    expect(await count(`SELECT count(*) AS n FROM ledger`)).toBe(1);
    expect(await count(`SELECT count(*) AS n FROM concordat.outbox`)).toBe(1);
  });

  it('dead-letters after the last attempt with the error, attempts and handler in headers', async () => {
    behaviour = async () => {
      throw new Error('always broken');
    };
    const delivery = deliveryOf('ledger.entries', { type: 'entry', source: 'test', data: { n: 4 } });
    await dispatcher.dispatch(delivery);
    expect(calls).toBe(3);
    expect(await count(`SELECT count(*) AS n FROM ledger`)).toBe(0);
    const rows = await db.dataSource.query(`SELECT topic, message_id, headers, payload FROM concordat.outbox`);
    expect(rows).toHaveLength(1);
    expect(rows[0].topic).toBe('ledger.entries.dlq');
    expect(rows[0].message_id).toBe(delivery.headers.ce_id!.toString());
    expect(rows[0].payload).toEqual(delivery.value);
    expect(rows[0].headers).toMatchObject({
      [DeadLetterHeader.ERROR]: 'Error: always broken',
      [DeadLetterHeader.ERROR_CODE]: 'Error',
      [DeadLetterHeader.ATTEMPTS]: '3',
      [DeadLetterHeader.HANDLER]: 'LedgerService.record',
      [DeadLetterHeader.CONSUMER]: 'ledger',
      [DeadLetterHeader.TOPIC]: 'ledger.entries',
      ce_id: delivery.headers.ce_id!.toString(),
    });
    // Delivered again (say the offset commit was lost): it fails again but is not dead-lettered twice.
    await dispatcher.dispatch(delivery);
    expect(await count(`SELECT count(*) AS n FROM concordat.outbox`)).toBe(1);
  });

  it('does not retry non-retriable errors or programmer errors', async () => {
    behaviour = async () => {
      throw nonRetriable(new Error('invalid order'));
    };
    await dispatcher.dispatch(deliveryOf('ledger.entries', { type: 'entry', source: 'test', data: { n: 5 } }));
    expect(calls).toBe(1);
    behaviour = async (context) => {
      (context.data as unknown as { missing: { field: number } }).missing.field;
    };
    await dispatcher.dispatch(deliveryOf('ledger.entries', { type: 'entry', source: 'test', data: { n: 6 } }));
    expect(calls).toBe(2);
    const codes = await db.dataSource.query(`SELECT headers->>'${DeadLetterHeader.ERROR_CODE}' AS code FROM concordat.outbox ORDER BY seq`);
    expect(codes).toEqual([{ code: 'Error' }, { code: 'TypeError' }]);
  });

  it('dead-letters a record that is not a CloudEvent without calling the handler', async () => {
    const delivery = deliveryOf('ledger.entries', { type: 'entry', source: 'test', data: { n: 7 } });
    delete delivery.headers.ce_specversion;
    await dispatcher.dispatch(delivery);
    expect(calls).toBe(0);
    const [row] = await db.dataSource.query(`SELECT topic, headers FROM concordat.outbox`);
    expect(row.topic).toBe('ledger.entries.dlq');
    expect(row.headers[DeadLetterHeader.ERROR_CODE]).toBe('ENVELOPE_INVALID');
    expect(row.headers[DeadLetterHeader.ATTEMPTS]).toBe('0');
  });

  describe('a handler that catches a failed statement (its transaction is aborted; COMMIT answers ROLLBACK)', () => {
    const auditDispatcher = (): Dispatcher =>
      new Dispatcher(exploreHandlers([AuditService]).consumers[0]!, {
        dataSource: db.dataSource,
        resolve: () => new AuditService(),
        signal: new AbortController().signal,
      });

    it('is a failed attempt, retried; the message takes effect once when a later attempt commits', async () => {
      const audit = auditDispatcher();
      swallow = () => audits === 1;
      const delivery = deliveryOf('audit.entries', { type: 'entry', source: 'test', data: { n: 1 } });
      await audit.dispatch(delivery);
      expect(audits).toBe(2);
      expect(audit.stats).toMatchObject({ processed: 1, retries: 1, deadLettered: 0 });
      expect(await count(`SELECT count(*) AS n FROM ledger`)).toBe(1);
      expect(await count(`SELECT count(*) AS n FROM concordat.inbox WHERE consumer = 'audit' AND message_id = '${delivery.headers.ce_id!.toString()}'`)).toBe(
        1,
      );
    });

    it('is dead-lettered after the last attempt with TRANSACTION_ROLLED_BACK, never counted as processed', async () => {
      const audit = auditDispatcher();
      swallow = () => true;
      const delivery = deliveryOf('audit.entries', { type: 'entry', source: 'test', data: { n: 2 } });
      await audit.dispatch(delivery);
      expect(audits).toBe(3);
      expect(audit.stats).toMatchObject({ processed: 0, retries: 2, deadLettered: 1 });
      expect(await count(`SELECT count(*) AS n FROM ledger`)).toBe(0);
      const [letter] = await db.dataSource.query(`SELECT message_id, error_code, attempts FROM concordat.dead_letter`);
      expect(letter).toEqual({ message_id: delivery.headers.ce_id!.toString(), error_code: ErrorCode.TRANSACTION_ROLLED_BACK, attempts: 3 });
    });

    it('in a batch: the batch rolls back, the others take effect, the failing one is dead-lettered', async () => {
      const audit = auditDispatcher();
      const batch = [1, 2, 3].map((n) => deliveryOf('audit.entries', { type: 'entry', source: 'test', data: { n }, partitionkey: 'k' }));
      swallow = (context) => context.data.n === 2;
      await audit.dispatchBatch(batch);
      expect((await db.dataSource.query(`SELECT n FROM ledger ORDER BY n`)).map((r: { n: number }) => r.n)).toEqual([1, 3]);
      expect(audit.stats).toMatchObject({ processed: 2, deadLettered: 1 });
      const [letter] = await db.dataSource.query(`SELECT message_id, error_code FROM concordat.dead_letter`);
      expect(letter).toEqual({ message_id: batch[1]!.headers.ce_id!.toString(), error_code: ErrorCode.TRANSACTION_ROLLED_BACK });
    });
  });

  describe('records the dead-letter store could not take as they came', () => {
    const letters = async (): Promise<Array<{ message_id: string; partition_key: string | null; headers: Record<string, string> }>> =>
      db.dataSource.query(`SELECT message_id, partition_key, headers FROM concordat.dead_letter ORDER BY id`);
    const dlqRecords = async (): Promise<Array<{ message_id: string; partition_key: string | null; headers: Record<string, string> }>> =>
      db.dataSource.query(`SELECT message_id, partition_key, headers FROM concordat.outbox WHERE topic = 'ledger.entries.dlq' ORDER BY seq`);
    const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

    it('a ce_id too long, or with control characters or a NUL byte: dead-lettered under a new ID, the original kept escaped and truncated', async () => {
      const ids = ['x'.repeat(5000), 'abc\u0001def', 'nul\u0000inside'];
      for (const id of ids) {
        const delivery = deliveryOf('ledger.entries', { type: 'entry', source: 'test', data: { n: 20 } });
        delivery.headers.ce_id = Buffer.from(id);
        await dispatcher.dispatch(delivery);
        await dispatcher.dispatch(delivery); // redelivered (offset commit lost): not dead-lettered twice
      }
      expect(calls).toBe(0);
      const stored = await letters();
      expect(stored).toHaveLength(3);
      for (const letter of stored) {
        expect(letter.message_id).toMatch(UUID);
        expect(letter.headers.ce_id).toBe(letter.message_id);
      }
      expect(new Set(stored.map((letter) => letter.message_id)).size).toBe(3);
      expect(stored[0]!.headers[DeadLetterHeader.ORIGINAL_ID]).toBe(`${'x'.repeat(256)}... (5000 characters)`);
      expect(stored[1]!.headers[DeadLetterHeader.ORIGINAL_ID]).toBe('abc\\u0001def');
      expect(stored[2]!.headers[DeadLetterHeader.ORIGINAL_ID]).toBe('nul\\u0000inside');
      const sent = await dlqRecords();
      expect(sent.map((record) => record.message_id)).toEqual(stored.map((letter) => letter.message_id));
      expect(sent.map((record) => record.headers.ce_id)).toEqual(stored.map((letter) => letter.message_id));
      expect(sent[2]!.headers[DeadLetterHeader.ORIGINAL_ID]).toBe('nul\\u0000inside');
    });

    it('NUL bytes in header names, header values and the key: dead-lettered with them escaped, the headers named', async () => {
      const delivery = deliveryOf('ledger.entries', { type: 'entry', source: 'test', data: { n: 21 } });
      delivery.headers['x-trace'] = Buffer.from('a\u0000b');
      delivery.headers['x-\u0000odd'] = Buffer.from('fine');
      delivery.key = Buffer.from('key\u0000tail');
      const id = delivery.headers.ce_id!.toString();
      await dispatcher.dispatch(delivery);
      expect(calls).toBe(0);
      const [letter] = await letters();
      expect(letter!.message_id).toBe(id); // a usable ID is kept
      expect(letter!.partition_key).toBe('key\\u0000tail');
      expect(letter!.headers).toMatchObject({
        ce_id: id,
        'x-trace': 'a\\u0000b',
        'x-\\u0000odd': 'fine',
        [DeadLetterHeader.SANITIZED]: 'key,x-trace,x-\\u0000odd',
      });
      expect(letter!.headers[DeadLetterHeader.ORIGINAL_ID]).toBeUndefined();
      const [sent] = await dlqRecords();
      expect(sent).toMatchObject({
        message_id: id,
        partition_key: 'key\\u0000tail',
        headers: { 'x-trace': 'a\\u0000b', [DeadLetterHeader.ERROR_CODE]: 'ENVELOPE_INVALID', [DeadLetterHeader.SANITIZED]: 'key,x-trace,x-\\u0000odd' },
      });
    });
  });

  describe('which failures mean the database is unavailable', () => {
    /** A statement PostgreSQL answers with SQLSTATE 08P01 (protocol violation): more than 65535 parameters. */
    const protocolViolation = async (manager: MessageContext['manager']): Promise<void> => {
      const n = 70_000;
      await manager.query(
        `SELECT 1 WHERE 1 = ANY(ARRAY[${Array.from({ length: n }, (_, i) => `$${i + 1}::int`).join(',')}])`,
        Array.from({ length: n }, (_, i) => i),
      );
    };

    it('08P01 from a bad statement, the database answering a fresh connection: attempts count, and the message is dead-lettered', async () => {
      before = async (context) => protocolViolation(context.manager);
      const stop = new AbortController();
      const single = new Dispatcher(exploreHandlers([LedgerService]).consumers[0]!, {
        dataSource: db.dataSource,
        resolve: () => new LedgerService(),
        signal: stop.signal,
      });
      const timer = setTimeout(() => stop.abort(), 10_000);
      try {
        await single.dispatch(deliveryOf('ledger.entries', { type: 'entry', source: 'test', data: { n: 30 } }));
      } finally {
        clearTimeout(timer);
      }
      expect(single.stats).toMatchObject({ processed: 0, retries: 2, deadLettered: 1, databaseWaits: 0 });
      expect(calls).toBe(3);
      const [letter] = await db.dataSource.query(`SELECT error FROM concordat.dead_letter`);
      expect(letter.error).toContain('bind message has');
    });

    it('08P01 while the database refuses new connections: not an attempt; the message waits and is tried again', async () => {
      const admin = new pg.Client({ connectionString: inject('databaseUrl') });
      await admin.connect();
      let failed = false;
      let reopened: Promise<void> | undefined;
      before = async (context) => {
        if (failed) return;
        failed = true;
        await admin.query(`ALTER DATABASE "${testDb.name}" ALLOW_CONNECTIONS false`);
        // Connections come back once the dispatcher has found them refused and waits (a fixed delay
        // raced the dispatcher's probe on a loaded machine: the probe got through and counted an attempt).
        reopened = (async () => {
          await until(() => single.stats.databaseWaits > 0, { timeoutMs: 20_000, intervalMs: 10, message: 'the dispatcher waiting for the database' });
          await admin.query(`ALTER DATABASE "${testDb.name}" ALLOW_CONNECTIONS true`);
        })();
        await protocolViolation(context.manager);
      };
      const single = new Dispatcher(exploreHandlers([LedgerService]).consumers[0]!, {
        dataSource: db.dataSource,
        resolve: () => new LedgerService(),
        signal: new AbortController().signal,
      });
      try {
        await single.dispatch(deliveryOf('ledger.entries', { type: 'entry', source: 'test', data: { n: 31 } }));
      } finally {
        await reopened;
        await admin.query(`ALTER DATABASE "${testDb.name}" ALLOW_CONNECTIONS true`);
        await admin.end();
      }
      expect(single.stats).toMatchObject({ processed: 1, retries: 0, deadLettered: 0, databaseWaits: 1 });
      expect(calls).toBe(2);
    });
  });

  describe('a replayed dead letter (concordat dlq replay) is for the group that dead-lettered it', () => {
    const replay = (n: number, group: string) => {
      const delivery = deliveryOf('ledger.entries', { type: 'entry', source: 'test', data: { n } });
      delivery.headers.concordat_replay_of = Buffer.from('17');
      delivery.headers.concordat_replay_for = Buffer.from(group);
      return delivery;
    };

    it("another group skips it without running its handler or writing its inbox, so the group's own replay later still runs", async () => {
      const foreign = replay(40, 'billing');
      const before = { ...dispatcher.stats };
      await dispatcher.dispatch(foreign);
      expect(calls).toBe(0);
      expect(await count(`SELECT count(*) AS n FROM concordat.inbox`)).toBe(0);
      expect(dispatcher.stats.replaysSkipped - before.replaysSkipped).toBe(1);
      // Its own replay of the same message ID is processed.
      const own = replay(40, 'ledger');
      own.headers.ce_id = foreign.headers.ce_id!;
      await dispatcher.dispatch(own);
      expect(calls).toBe(1);
      expect(await ledgerOf()).toEqual([40]);
    });

    it('in a batch: the others are processed in order, the foreign replay skipped', async () => {
      const batch = [deliveryOf('ledger.entries', { type: 'entry', source: 'test', data: { n: 41 } }), replay(42, 'billing'), replay(43, 'ledger')];
      const before = { ...dispatcher.stats };
      await dispatcher.dispatchBatch(batch);
      expect(await ledgerOf()).toEqual([41, 43]);
      expect(dispatcher.stats.replaysSkipped - before.replaysSkipped).toBe(1);
      expect(dispatcher.stats.processed - before.processed).toBe(2);
    });

    it('a foreign replay that is not even a CloudEvent is skipped, not dead-lettered by this group', async () => {
      const foreign = replay(44, 'billing');
      delete foreign.headers.ce_specversion;
      await dispatcher.dispatch(foreign);
      expect(await count(`SELECT count(*) AS n FROM concordat.dead_letter`)).toBe(0);
    });
  });

  it('an exactly-once handler costs three round trips: BEGIN with the inbox insert, its statement, the outbox insert with COMMIT', async () => {
    const delivery = deliveryOf('ledger.entries', { type: 'entry', source: 'test', data: { n: 8 } });
    await outboxNotifierFor(db.dataSource).idle(); // a wake-up left over from an earlier test goes out first
    const first = await roundTrips(async () => {
      await dispatcher.dispatch(delivery);
      await outboxNotifierFor(db.dataSource).idle();
    });
    // After the commit, outside the transaction: the wake-up for relays in other processes (no relay runs in this one).
    expect(first).toEqual(['BEGIN; WITH dead', 'INSERT INTO ledger', 'INSERT INTO concordat.outbox', 'SELECT pg_notify($1, $2)']);
    // A duplicate: the inbox insert finds the row, and the transaction is rolled back.
    expect(await roundTrips(() => dispatcher.dispatch(delivery))).toEqual(['BEGIN; WITH dead', 'ROLLBACK']);
    expect(calls).toBe(1);
  });

  it('a handler whose database connection is cut does not use up an attempt: the message waits for the database', async () => {
    let cut = false;
    before = async (context) => {
      if (cut) return;
      cut = true;
      await context.manager.query(`SELECT pg_terminate_backend(pg_backend_pid())`);
    };
    const single = new Dispatcher(exploreHandlers([LedgerService]).consumers[0]!, {
      dataSource: db.dataSource,
      resolve: () => new LedgerService(),
      signal: new AbortController().signal,
    });
    // maxAttempts is 3; had the cut counted, a policy of one attempt would dead-letter. The stats say it did not count.
    await single.dispatch(deliveryOf('ledger.entries', { type: 'entry', source: 'test', data: { n: 9 } }));
    expect(single.stats).toMatchObject({ processed: 1, retries: 0, deadLettered: 0, databaseWaits: 1 });
    expect(calls).toBe(2);
    expect(await count(`SELECT count(*) AS n FROM ledger`)).toBe(1);
    expect(await count(`SELECT count(*) AS n FROM concordat.dead_letter`)).toBe(0);
  });

  const entries = (...ns: number[]) => ns.map((n) => deliveryOf('ledger.entries', { type: 'entry', source: 'test', data: { n }, partitionkey: 'k' }));
  const ledger = async (): Promise<number[]> => (await db.dataSource.query(`SELECT n FROM ledger ORDER BY at, n`)).map((r: { n: number }) => r.n);
  const outboxTopics = async (): Promise<string[]> =>
    (await db.dataSource.query(`SELECT topic, payload FROM concordat.outbox ORDER BY seq`)).map(
      (r: { topic: string; payload: Buffer }) => `${r.topic}:${JSON.parse(r.payload.toString()).n}`,
    );

  describe('batches (several records of a partition in one transaction)', () => {
    beforeAll(async () => {
      await db.dataSource.query(`ALTER TABLE ledger ADD COLUMN at timestamptz NOT NULL DEFAULT clock_timestamp()`);
    });

    it('costs the round trips of one message: BEGIN with one inbox insert for all, the handlers in order, one outbox insert with COMMIT', async () => {
      const batch = entries(1, 2, 3);
      const before = { ...dispatcher.stats };
      await outboxNotifierFor(db.dataSource).idle(); // a wake-up left over from an earlier test goes out first
      const sent = await roundTrips(async () => {
        await dispatcher.dispatchBatch(batch);
        await outboxNotifierFor(db.dataSource).idle();
      });
      expect(sent).toEqual([
        'BEGIN; WITH dead',
        'INSERT INTO ledger',
        'INSERT INTO ledger',
        'INSERT INTO ledger',
        'INSERT INTO concordat.outbox',
        'SELECT pg_notify($1, $2)',
      ]);
      expect(await ledger()).toEqual([1, 2, 3]);
      expect(await outboxTopics()).toEqual(['ledger.recorded:1', 'ledger.recorded:2', 'ledger.recorded:3']);
      expect(await count(`SELECT count(*) AS n FROM concordat.inbox WHERE consumer = 'ledger'`)).toBe(3);
      expect(dispatcher.stats.processed - before.processed).toBe(3);
      expect(dispatcher.stats.batches - before.batches).toBe(1);
    });

    it('a handler failing in a batch: only its message is retried and dead-lettered; the others take effect once, in order', async () => {
      const batch = entries(1, 2, 3, 4);
      const failing = batch[1]!.headers.ce_id!.toString();
      const callsOf = new Map<number, number>();
      behaviour = async (context) => {
        callsOf.set(context.data.n, (callsOf.get(context.data.n) ?? 0) + 1);
        if (context.message.id === failing) throw new Error('always broken');
      };
      const before = { ...dispatcher.stats };
      await dispatcher.dispatchBatch(batch);
      expect(await ledger()).toEqual([1, 3, 4]);
      // Order kept: 1, then 2's dead letter, then 3 and 4.
      expect(await outboxTopics()).toEqual(['ledger.recorded:1', 'ledger.entries.dlq:2', 'ledger.recorded:3', 'ledger.recorded:4']);
      const [letter] = await db.dataSource.query(`SELECT message_id, attempts FROM concordat.dead_letter`);
      expect(letter).toEqual({ message_id: failing, attempts: 3 });
      // 2: its batch attempt and two more alone (maxAttempts 3). 1 ran again after the batch rolled back.
      expect(Object.fromEntries(callsOf)).toEqual({ 1: 2, 2: 3, 3: 1, 4: 1 });
      expect(dispatcher.stats.deadLettered - before.deadLettered).toBe(1);
      expect(dispatcher.stats.processed - before.processed).toBe(3);
      expect(dispatcher.stats.batchFallbacks - before.batchFallbacks).toBe(1);
    });

    it('a handler failing once in a batch is retried alone and the batch completes in order', async () => {
      const batch = entries(1, 2, 3);
      let failed = false;
      behaviour = async (context) => {
        if (context.data.n === 2 && !failed) {
          failed = true;
          throw new Error('transient');
        }
      };
      await dispatcher.dispatchBatch(batch);
      expect(await ledger()).toEqual([1, 2, 3]);
      expect(await outboxTopics()).toEqual(['ledger.recorded:1', 'ledger.recorded:2', 'ledger.recorded:3']);
      expect(await count(`SELECT count(*) AS n FROM concordat.dead_letter`)).toBe(0);
    });

    it('a message twice in one batch runs once', async () => {
      const [a, b] = entries(1, 2);
      const again = { ...a!, offset: a!.offset + 100 };
      const before = { ...dispatcher.stats };
      await dispatcher.dispatchBatch([a!, again, b!, { ...a!, offset: a!.offset + 200 }]);
      expect(calls).toBe(2);
      expect(await ledger()).toEqual([1, 2]);
      expect(await outboxTopics()).toEqual(['ledger.recorded:1', 'ledger.recorded:2']);
      expect(dispatcher.stats.processed - before.processed).toBe(2);
      expect(dispatcher.stats.duplicates - before.duplicates).toBe(2);
    });

    it('a redelivered batch has one effect, whether it comes again whole, in part, or twice at once', async () => {
      const batch = entries(1, 2, 3, 4);
      await dispatcher.dispatchBatch(batch);
      await dispatcher.dispatchBatch(batch);
      await dispatcher.dispatchBatch(batch.slice(1, 3));
      await Promise.all([dispatcher.dispatchBatch(batch), dispatcher.dispatchBatch([...batch].reverse())]);
      expect(calls).toBe(4);
      expect(await ledger()).toEqual([1, 2, 3, 4]);
      expect(await outboxTopics()).toEqual(['ledger.recorded:1', 'ledger.recorded:2', 'ledger.recorded:3', 'ledger.recorded:4']);
      expect(await count(`SELECT count(*) AS n FROM concordat.inbox WHERE consumer = 'ledger'`)).toBe(4);
    });

    it('a batch whose new messages all ran before is rolled back, not committed', async () => {
      const batch = entries(1, 2);
      await dispatcher.dispatchBatch(batch);
      await outboxNotifierFor(db.dataSource).idle(); // the wake-up after that commit goes out first
      expect(await roundTrips(() => dispatcher.dispatchBatch(batch))).toEqual(['BEGIN; WITH dead', 'ROLLBACK']);
    });
  });

  it('transactional: false is at-least-once: a redelivered message runs again, and what it publishes is written each time', async () => {
    const table = exploreHandlers([LookupService]);
    const lookup = new Dispatcher(table.consumers[0]!, { dataSource: db.dataSource, resolve: () => new LookupService(), signal: new AbortController().signal });
    const delivery = deliveryOf('ledger.entries', { type: 'entry', source: 'test', data: { n: 10 } });
    await lookup.dispatch(delivery);
    await lookup.dispatch(delivery);
    expect(lookups).toBe(2);
    expect(await count(`SELECT count(*) AS n FROM lookups`)).toBe(2);
    expect(await count(`SELECT count(*) AS n FROM concordat.outbox WHERE topic = 'ledger.looked-up'`)).toBe(2);
    expect(await count(`SELECT count(*) AS n FROM concordat.inbox`)).toBe(0);
    expect(lookup.stats).toMatchObject({ processed: 2, duplicates: 0 });
  });
});
