import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { nonRetriable } from '../../../src/errors.js';
import { openDatabase, type Database } from '../../../src/persistence/index.js';
import { REPLAY_FOR_HEADER, REPLAY_OF_HEADER, replayDeadLetters } from '../../../src/inbox/index.js';
import { Dispatcher, exploreHandlers, OnMessage, Service, type MessageContext } from '../../../src/runtime/index.js';
import type { Delivery } from '../../../src/transport/index.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';
import { deliveryOf } from '../../support/deliveries.js';

/** Messages whose data says `fail` fail on every attempt; the others write a row. */
const attempts: number[] = [];

@Service('billing')
class BillingService {
  @OnMessage('billing.charges', { retry: { maxAttempts: 3, strategy: 'fixed', initialDelayMs: 5 } })
  async charge(context: MessageContext<{ n: number; fail?: boolean }>): Promise<void> {
    attempts.push(context.data.n);
    if (context.data.fail === true && !failuresCured) throw new Error(`charge ${context.data.n} refused`);
    await context.manager.query(`INSERT INTO charges (n) VALUES ($1)`, [context.data.n]);
  }
}
let failuresCured = false;

describe('a message dead-lettered before a restart is recognised before its first attempt (issue 10 §3)', () => {
  let testDb: TestDatabase;
  let db: Database;
  const table = exploreHandlers([BillingService]);
  const instance = new BillingService();
  /** A dispatcher as a (re)started app makes it: nothing in memory from before. */
  const startDispatcher = (): Dispatcher =>
    new Dispatcher(table.consumers[0]!, { dataSource: db.dataSource, resolve: () => instance, signal: new AbortController().signal });

  beforeAll(async () => {
    testDb = await createTestDatabase('dead_known');
    db = await openDatabase({ url: testDb.url, poolSize: 4 });
    await db.dataSource.query(`CREATE TABLE charges (n int)`);
  });
  afterAll(async () => {
    await db?.close();
    await testDb?.drop();
  });
  beforeEach(async () => {
    attempts.length = 0;
    failuresCured = false;
    await db.dataSource.query(`TRUNCATE charges, concordat.outbox, concordat.inbox, concordat.dead_letter`);
  });

  const count = async (sql: string): Promise<number> => Number((await db.dataSource.query(sql))[0].n);

  /** Dead-letters `delivery` in a first life, as the app did before it crashed before committing the offset. */
  async function deadLetterBeforeRestart(delivery: Delivery): Promise<void> {
    const before = startDispatcher();
    await before.dispatch(delivery);
    expect(before.stats.deadLettered).toBe(1);
    expect(await count(`SELECT count(*) AS n FROM concordat.dead_letter WHERE replayed_at IS NULL`)).toBe(1);
  }

  it('one at a time: the redelivered dead message runs no attempt, is not dead-lettered twice, and leaves the inbox alone', async () => {
    const delivery = deliveryOf('billing.charges', { type: 'charge', source: 'test', data: { n: 1, fail: true } });
    await deadLetterBeforeRestart(delivery);
    expect(attempts).toEqual([1, 1, 1]);

    const after = startDispatcher();
    await after.dispatch(delivery);
    expect(attempts).toEqual([1, 1, 1]); // no fourth attempt
    expect(after.stats).toMatchObject({ alreadyDeadLettered: 1, retries: 0, deadLettered: 0, processed: 0, duplicates: 0 });
    expect(await count(`SELECT count(*) AS n FROM concordat.dead_letter`)).toBe(1);
    expect(await count(`SELECT count(*) AS n FROM concordat.outbox WHERE topic = 'billing.charges.dlq'`)).toBe(1);
    // No inbox row: a replay of the dead letter must still run.
    expect(await count(`SELECT count(*) AS n FROM concordat.inbox`)).toBe(0);
  });

  it('in a batch: the dead one is skipped, the others are processed in the same transaction', async () => {
    const dead = deliveryOf('billing.charges', { type: 'charge', source: 'test', data: { n: 10, fail: true } });
    await deadLetterBeforeRestart(dead);
    attempts.length = 0;
    const fresh = [11, 12].map((n) => deliveryOf('billing.charges', { type: 'charge', source: 'test', data: { n } }));

    const after = startDispatcher();
    await after.dispatchBatch([fresh[0]!, dead, fresh[1]!]);
    expect(attempts).toEqual([11, 12]);
    expect(after.stats).toMatchObject({ alreadyDeadLettered: 1, processed: 2, duplicates: 0, retries: 0, deadLettered: 0, batchFallbacks: 0 });
    expect((await db.dataSource.query(`SELECT n FROM charges ORDER BY n`)).map((row: { n: number }) => row.n)).toEqual([11, 12]);
    expect(await count(`SELECT count(*) AS n FROM concordat.inbox`)).toBe(2);
  });

  it('once replayed, the message runs again (its dead letter is no longer pending)', async () => {
    const delivery = deliveryOf('billing.charges', { type: 'charge', source: 'test', data: { n: 20, fail: true } });
    await deadLetterBeforeRestart(delivery);
    attempts.length = 0;
    failuresCured = true;
    const [letter] = await replayDeadLetters(db.dataSource, { consumer: 'billing' });
    const replayed: Delivery = {
      ...delivery,
      offset: delivery.offset + 1000,
      headers: { ...delivery.headers, [REPLAY_OF_HEADER]: Buffer.from(letter!.id), [REPLAY_FOR_HEADER]: Buffer.from('billing') },
    };
    const after = startDispatcher();
    await after.dispatch(replayed);
    expect(attempts).toEqual([20]);
    expect(after.stats).toMatchObject({ alreadyDeadLettered: 0, processed: 1 });
  });

  it('the same message ID sent again as a new record (a coordinator resending a decision) is attempted again, and dead-lettered once', async () => {
    const delivery = deliveryOf('billing.charges', { type: 'charge', source: 'test', data: { n: 40, fail: true } });
    await deadLetterBeforeRestart(delivery);
    attempts.length = 0;
    const resent: Delivery = { ...delivery, offset: delivery.offset + 7 };
    const after = startDispatcher();
    await after.dispatch(resent);
    expect(attempts).toEqual([40, 40, 40]);
    expect(after.stats).toMatchObject({ alreadyDeadLettered: 0, processed: 0 });
    expect(await count(`SELECT count(*) AS n FROM concordat.dead_letter`)).toBe(1);
    // Once the handler is fixed, the next resend succeeds.
    attempts.length = 0;
    failuresCured = true;
    await after.dispatch({ ...delivery, offset: delivery.offset + 9 });
    expect(attempts).toEqual([40]);
    expect(after.stats).toMatchObject({ alreadyDeadLettered: 0, processed: 1 });
  });

  it('a message dead-lettered by another consumer group is not skipped by this one', async () => {
    const delivery = deliveryOf('billing.charges', { type: 'charge', source: 'test', data: { n: 30 } });
    await db.dataSource.query(
      `INSERT INTO concordat.dead_letter (consumer, message_id, handler, topic, partition, "offset", headers, error, error_code, attempts)
       VALUES ('another-group', $1, 'Other.handle', 'billing.charges', 0, 0, '{}', 'x', 'Error', 1)`,
      [delivery.headers.ce_id!.toString()],
    );
    const after = startDispatcher();
    await after.dispatch(delivery);
    expect(attempts).toEqual([30]);
    expect(after.stats).toMatchObject({ alreadyDeadLettered: 0, processed: 1 });
  });
});
