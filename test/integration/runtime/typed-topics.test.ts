import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ErrorCode, ValidationError } from '../../../src/errors.js';
import { openDatabase, type Database } from '../../../src/persistence/index.js';
import { DeadLetterHeader } from '../../../src/inbox/index.js';
import { ConcordatApp, Dispatcher, OnMessage, Service, defineTopic, exploreHandlers, type TopicContext } from '../../../src/runtime/index.js';
import { EmbeddedTransport, KafkaTransport, type Transport } from '../../../src/transport/index.js';
import { until } from '../../../src/testing/index.js';
import { startTestBroker, type TestBroker } from '../broker/helpers/broker.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';
import { deliveryOf } from '../../support/deliveries.js';

/**
 * Typed topics at run time (issue 14): the consumer validates each message
 * with the topic's schema before its handler runs, hands it the schema's
 * output, and dead-letters a message the schema refuses at once, without
 * an attempt, with the issues in its headers; the publisher refuses an
 * invalid payload before the outbox. First on the dispatcher (one at a time
 * and in a batch), then end to end in an app on each transport.
 */

const payments = defineTopic(
  'typed.payments',
  z.object({ orderId: z.string().min(1), cents: z.number().int().positive(), currency: z.enum(['EUR', 'USD']).default('EUR') }),
);

/** What the handler saw, in order: its data, as the schema output it. */
const seen: Array<{ orderId: string; cents: number; currency: string }> = [];

@Service('typed-billing')
class Billing {
  @OnMessage(payments, { retry: { maxAttempts: 3, strategy: 'fixed', initialDelayMs: 5 } })
  async pay(context: TopicContext<typeof payments>): Promise<void> {
    seen.push(context.data);
    await context.manager.query(`INSERT INTO paid (order_id, cents, currency) VALUES ($1, $2, $3)`, [
      context.data.orderId,
      context.data.cents,
      context.data.currency,
    ]);
  }
}

const paidTable = `CREATE TABLE paid (order_id text, cents int, currency text)`;

describe('typed topics on the dispatcher (real Postgres)', () => {
  let testDb: TestDatabase;
  let db: Database;
  let dispatcher: Dispatcher;

  beforeAll(async () => {
    testDb = await createTestDatabase('typed_dispatch');
    db = await openDatabase({ url: testDb.url, poolSize: 4 });
    await db.dataSource.query(paidTable);
    const instance = new Billing();
    dispatcher = new Dispatcher(exploreHandlers([Billing]).consumers[0]!, {
      dataSource: db.dataSource,
      resolve: () => instance,
      signal: new AbortController().signal,
    });
  });
  afterAll(async () => {
    await db?.close();
    await testDb?.drop();
  });
  beforeEach(async () => {
    seen.length = 0;
    await db.dataSource.query(`TRUNCATE paid, concordat.outbox, concordat.inbox, concordat.dead_letter`);
  });

  const deadLetters = () =>
    db.dataSource.query(`SELECT message_id, error_code, error, attempts, headers FROM concordat.dead_letter ORDER BY id`) as Promise<
      Array<{ message_id: string; error_code: string; error: string; attempts: number; headers: Record<string, string> }>
    >;

  it('hands the handler the schema output (defaults filled in)', async () => {
    await dispatcher.dispatch(deliveryOf('typed.payments', { type: 'paid', source: 'test', data: { orderId: 'o-1', cents: 250 } }));
    expect(seen).toEqual([{ orderId: 'o-1', cents: 250, currency: 'EUR' }]);
    expect(await db.dataSource.query(`SELECT order_id, cents, currency FROM paid`)).toEqual([{ order_id: 'o-1', cents: 250, currency: 'EUR' }]);
  });

  it('dead-letters an invalid message at once: no attempt, no inbox row, VALIDATION_FAILED with the issues in its headers', async () => {
    const delivery = deliveryOf('typed.payments', { type: 'paid', source: 'test', data: { orderId: '', cents: 1.5, currency: 'GBP' } });
    await dispatcher.dispatch(delivery);
    expect(seen).toEqual([]);
    const [letter, ...more] = await deadLetters();
    expect(more).toEqual([]);
    expect(letter).toMatchObject({ message_id: delivery.headers.ce_id!.toString(), error_code: ErrorCode.VALIDATION_FAILED, attempts: 0 });
    expect(letter!.error).toMatch(/^ValidationError: the payload of message \S+ on topic 'typed.payments' is invalid: orderId: .+; cents: .+; currency: .+$/);
    const issues = JSON.parse(letter!.headers[DeadLetterHeader.ISSUES]!) as Array<{ path: string; message: string }>;
    expect(issues.map((issue) => issue.path)).toEqual(['orderId', 'cents', 'currency']);
    expect(issues.every((issue) => issue.message.length > 0)).toBe(true);
    // The record sent to the dead-letter topic carries the same headers.
    const [dlq] = await db.dataSource.query(`SELECT headers FROM concordat.outbox WHERE topic = 'typed.payments.dlq'`);
    expect(dlq.headers[DeadLetterHeader.ISSUES]).toBe(letter!.headers[DeadLetterHeader.ISSUES]);
    expect(dlq.headers[DeadLetterHeader.ERROR_CODE]).toBe('VALIDATION_FAILED');
    expect(Number((await db.dataSource.query(`SELECT count(*) AS n FROM concordat.inbox`))[0].n)).toBe(0);
    expect(dispatcher.stats).toMatchObject({ retries: 0 });
  });

  it('in a batch: the invalid message is dead-lettered, the valid ones around it processed in order', async () => {
    const valid = (orderId: string) => deliveryOf('typed.payments', { type: 'paid', source: 'test', data: { orderId, cents: 100, currency: 'USD' } });
    const invalid = deliveryOf('typed.payments', { type: 'paid', source: 'test', data: { orderId: 'bad' } });
    await dispatcher.dispatchBatch([valid('b-1'), invalid, valid('b-2')]);
    expect(seen.map((data) => data.orderId)).toEqual(['b-1', 'b-2']);
    const letters = await deadLetters();
    expect(letters.map((letter) => [letter.error_code, letter.attempts, JSON.parse(letter.headers[DeadLetterHeader.ISSUES]!)[0].path])).toEqual([
      ['VALIDATION_FAILED', 0, 'cents'],
    ]);
  });
});

const testConsumer = { sessionTimeoutMs: 6000, heartbeatIntervalMs: 500, maxWaitMs: 100, retryBackoffMs: 20, retryBackoffMaxMs: 100 };

describe.each(['embedded', 'kafkajs → concordat broker'])('typed topics end to end (%s)', (kind) => {
  let testDb: TestDatabase;
  let transport: Transport;
  let broker: TestBroker | undefined;
  let dir: string;
  let app: ConcordatApp;

  beforeAll(async () => {
    testDb = await createTestDatabase('typed_app');
    dir = await mkdtemp(join(tmpdir(), 'concordat-typed-'));
    if (kind === 'embedded') {
      transport = new EmbeddedTransport({ dataDir: dir, consumer: { heartbeatIntervalMs: 200, maxWaitMs: 100, retryBackoffMs: 20, retryBackoffMaxMs: 200 } });
    } else {
      broker = await startTestBroker();
      transport = new KafkaTransport({ brokers: [broker.bootstrap], consumer: testConsumer });
    }
    app = ConcordatApp.create({
      name: 'typed-app',
      services: [Billing],
      database: { url: testDb.url, poolSize: 4 },
      transport,
      partitions: 1,
      relay: { pollIntervalMs: 50 },
    });
    await app.start();
    await app.dataSource.query(paidTable);
    seen.length = 0;
  });
  afterAll(async () => {
    await app?.stop();
    await transport?.close();
    await broker?.stop();
    await testDb?.drop();
    await rm(dir, { recursive: true, force: true });
  });

  it("a valid message is handled; an invalid publish is refused before the outbox; an untyped publisher's bad payload is dead-lettered", async () => {
    await expect(app.publish(payments, { orderId: 'o-1', cents: -5 })).rejects.toBeInstanceOf(ValidationError);
    // A publisher that uses the plain name skips the check: the consumer's schema catches it.
    const bad = await app.publish('typed.payments', { orderId: 'o-2', cents: 'ten' }, { key: 'k' });
    // Behind it on the same key: once this one is handled, the bad one was dealt with.
    await app.publish(payments, { orderId: 'o-3', cents: 300, currency: 'USD' }, { key: 'k' });
    await until(async () => seen.length >= 1, { timeoutMs: 30_000, intervalMs: 25, message: 'the valid message handled' });
    expect(seen).toEqual([{ orderId: 'o-3', cents: 300, currency: 'USD' }]);
    const letters = await app.dataSource.query(`SELECT message_id, error_code, attempts, headers FROM concordat.dead_letter`);
    expect(letters).toHaveLength(1);
    expect(letters[0]).toMatchObject({ message_id: bad, error_code: 'VALIDATION_FAILED', attempts: 0 });
    expect(JSON.parse(letters[0].headers[DeadLetterHeader.ISSUES])).toEqual([{ path: 'cents', message: expect.any(String) }]);
    // The refused publish left nothing behind: o-1 was neither sent nor handled.
    expect((await app.dataSource.query(`SELECT order_id FROM paid`)).map((row: { order_id: string }) => row.order_id)).toEqual(['o-3']);
  });
});
