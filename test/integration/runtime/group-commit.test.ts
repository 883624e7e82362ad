import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../../../src/persistence/index.js';
import { Dispatcher, OnMessage, Service, exploreHandlers, type DispatcherOptions, type MessageContext } from '../../../src/runtime/index.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';
import { deliveryOf } from '../../support/deliveries.js';

interface Move {
  first: number;
  second: number;
}

/** Two hot rows, taken in the order the message says, with a pause between: what makes concurrent batches deadlock. */
@Service('hot')
class HotRows {
  @OnMessage('hot.moves')
  async move(context: MessageContext<Move>): Promise<void> {
    await context.manager.query(`UPDATE hot SET n = n + 1 WHERE id = $1`, [context.data.first]);
    await context.manager.query(`SELECT pg_sleep(0.002)`);
    await context.manager.query(`UPDATE hot SET n = n + 1 WHERE id = $1`, [context.data.second]);
  }
}

let failFirstWith: string | undefined;
let conflictCalls = 0;
/** Runs in the first call of the handler (a test stops the app there). */
let onFirstCall: (() => void) | undefined;

@Service('conflicted')
class Conflicted {
  // A retry delay of an hour: a retry that waited for it would never finish within the test.
  @OnMessage('conflicted.entries', { retry: { maxAttempts: 3, strategy: 'fixed', initialDelayMs: 3_600_000, maxDelayMs: 3_600_000 } })
  async handle(context: MessageContext<{ n: number }>): Promise<void> {
    conflictCalls++;
    if (conflictCalls === 1) onFirstCall?.();
    await context.manager.query(`UPDATE hot SET n = n + $1 WHERE id = 1`, [context.data.n]);
    if (failFirstWith !== undefined && conflictCalls === 1) {
      // What TypeORM throws for a statement PostgreSQL answered with this SQLSTATE (the fault injected at the driver seam).
      throw Object.assign(new Error('deadlock detected'), {
        name: 'QueryFailedError',
        driverError: Object.assign(new Error('deadlock detected'), { code: failFirstWith }),
      });
    }
  }
}

describe("group commit of a consumer group's handler transactions (real Postgres)", () => {
  let testDb: TestDatabase;
  let db: Database;

  beforeAll(async () => {
    testDb = await createTestDatabase('group_commit');
    db = await openDatabase({ url: testDb.url, poolSize: 8 });
    await db.dataSource.query(`CREATE TABLE hot (id int PRIMARY KEY, n int NOT NULL)`);
  });
  afterAll(async () => {
    await db.close();
    await testDb.drop();
  });
  beforeEach(async () => {
    failFirstWith = undefined;
    conflictCalls = 0;
    onFirstCall = undefined;
    await db.dataSource.query(`TRUNCATE hot, concordat.inbox, concordat.outbox`);
    await db.dataSource.query(`INSERT INTO hot VALUES (1, 0), (2, 0)`);
  });

  const dispatcherFor = (service: Function, options: DispatcherOptions = {}): Dispatcher =>
    new Dispatcher(
      exploreHandlers([service]).consumers[0]!,
      { dataSource: db.dataSource, resolve: () => new (service as new () => object)(), signal: new AbortController().signal },
      options,
    );
  const rows = async (): Promise<Array<{ id: number; n: number }>> => db.dataSource.query(`SELECT id, n FROM hot ORDER BY id`);

  /** Two partitions' batches, `rounds` times, each message taking rows 1 and 2 — in opposite orders in the two partitions. */
  async function crossedBatches(dispatcher: Dispatcher, rounds: number, perBatch: number): Promise<number> {
    for (let round = 0; round < rounds; round++) {
      const forward = Array.from({ length: perBatch }, () => deliveryOf('hot.moves', { type: 'move', source: 'test', data: { first: 1, second: 2 } }, 0));
      const backward = Array.from({ length: perBatch }, () => deliveryOf('hot.moves', { type: 'move', source: 'test', data: { first: 2, second: 1 } }, 1));
      await Promise.all([dispatcher.dispatchBatch(forward), dispatcher.dispatchBatch(backward)]);
    }
    return rounds * perBatch * 2;
  }

  it('at the default, transactions with room run one at a time: batches of two partitions that take the same rows in opposite orders never wait on each other', async () => {
    const dispatcher = dispatcherFor(HotRows);
    const moves = await crossedBatches(dispatcher, 5, 10);
    expect(await rows()).toEqual([
      { id: 1, n: moves },
      { id: 2, n: moves },
    ]);
    expect(dispatcher.stats).toMatchObject({ processed: moves, duplicates: 0, retries: 0, conflictRetries: 0, batchFallbacks: 0, deadLettered: 0 });
  });

  it('with full transactions (adapting up to 4): the same crossed batches cost one guarded lock wait at most, then run one at a time; no deadlock', async () => {
    // Batches of 10 fill a transaction of batchRecordsMax 10, so the group goes to two in flight.
    const dispatcher = dispatcherFor(HotRows, { concurrentTransactionsMax: 4, batchRecordsMax: 10 });
    const moves = await crossedBatches(dispatcher, 5, 10);
    expect(await rows()).toEqual([
      { id: 1, n: moves },
      { id: 2, n: moves },
    ]);
    // Once two transactions were in flight, they met on the rows and timed out their waits (55P03
    // within 50 ms, not a deadlock found after deadlock_timeout; both of them, at worst), which brought
    // the group back to one transaction at a time for 1 s, then 2 s (the calm period doubles per conflict).
    expect(dispatcher.stats.conflictRetries).toBeLessThanOrEqual(4);
    expect(dispatcher.stats).toMatchObject({ processed: moves, duplicates: 0, retries: 0, deadLettered: 0 });
  });

  it('a deadlock is retried at once, not after the retry delay, and takes effect once', async () => {
    const dispatcher = dispatcherFor(Conflicted);
    failFirstWith = '40P01';
    await dispatcher.dispatch(deliveryOf('conflicted.entries', { type: 'entry', source: 'test', data: { n: 5 } }));
    expect(conflictCalls).toBe(2);
    expect(await rows()).toEqual([
      { id: 1, n: 5 },
      { id: 2, n: 0 },
    ]);
    expect(dispatcher.stats).toMatchObject({ processed: 1, retries: 1, conflictRetries: 1, deadLettered: 0 });
  });

  it('a serialization failure is retried at once as well', async () => {
    const dispatcher = dispatcherFor(Conflicted);
    failFirstWith = '40001';
    await dispatcher.dispatch(deliveryOf('conflicted.entries', { type: 'entry', source: 'test', data: { n: 7 } }));
    expect(conflictCalls).toBe(2);
    expect(dispatcher.stats).toMatchObject({ processed: 1, retries: 1, conflictRetries: 1 });
  });

  it('an app stopping during a retry at once leaves the message for redelivery (no further attempt, no dead letter)', async () => {
    const stopping = new AbortController();
    const dispatcher = new Dispatcher(exploreHandlers([Conflicted]).consumers[0]!, {
      dataSource: db.dataSource,
      resolve: () => new Conflicted(),
      signal: stopping.signal,
    });
    failFirstWith = '40P01';
    onFirstCall = () => stopping.abort();
    const dispatched = dispatcher.dispatch(deliveryOf('conflicted.entries', { type: 'entry', source: 'test', data: { n: 9 } }));
    await expect(dispatched).rejects.toThrow('the app is stopping; the message will be delivered again');
    expect(conflictCalls).toBe(1);
    expect(dispatcher.stats).toMatchObject({ processed: 0, deadLettered: 0 });
  });

  it('refuses a concurrentTransactionsMax out of range, naming the option', () => {
    expect(() => dispatcherFor(HotRows, { concurrentTransactionsMax: 0 })).toThrow(
      'invalid options: dispatcher.concurrentTransactionsMax: must be an integer in 1..64 (got 0)',
    );
  });
});
