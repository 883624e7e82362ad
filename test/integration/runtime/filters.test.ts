import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { register } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConcordatApp, OnMessage, Service, type MessageContext } from '../../../src/runtime/index.js';
import { until } from '../../../src/testing/index.js';
import { EmbeddedTransport, KafkaTransport, type Transport } from '../../../src/transport/index.js';
import { startTestBroker, type TestBroker } from '../broker/helpers/broker.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';

/**
 * Filtering and routing (issue 14), end to end on each transport: two
 * handlers of one topic in one consumer group, each taking the messages of
 * its CloudEvents `type`; a predicate handler on another topic; messages no
 * filter takes are acknowledged without a handler transaction or an inbox
 * row, and counted. A sentinel published last on each topic (same key, one
 * partition) says when everything before it was dealt with.
 */

interface Order {
  orderId: string;
  cents: number;
}

@Service('filtering')
class Router {
  @OnMessage('filtered.orders', { filter: { type: 'order.placed' } })
  async placed(context: MessageContext<Order>): Promise<void> {
    await record(context, 'placed');
  }

  @OnMessage('filtered.orders', { filter: { type: ['order.cancelled', 'order.refunded'], region: 'eu' } })
  async cancelled(context: MessageContext<Order>): Promise<void> {
    await record(context, 'cancelled');
  }

  @OnMessage('filtered.audit', { filter: (message) => (message.data as Order).cents >= 100 })
  async audit(context: MessageContext<Order>): Promise<void> {
    await record(context, 'audit');
  }
}

const record = (context: MessageContext<Order>, handler: string) =>
  context.manager.query(`INSERT INTO routed (handler, order_id) VALUES ($1, $2)`, [handler, context.data.orderId]);

const testConsumer = { sessionTimeoutMs: 6000, heartbeatIntervalMs: 500, maxWaitMs: 100, retryBackoffMs: 20, retryBackoffMaxMs: 100 };

/** `concordat_messages_total{group="filtering", outcome}` in the default registry. */
async function counted(outcome: string): Promise<number> {
  const metric = await register.getSingleMetric('concordat_messages_total')?.get();
  return metric?.values.find((value) => value.labels.group === 'filtering' && value.labels.outcome === outcome)?.value ?? 0;
}

describe.each(['embedded', 'kafkajs → concordat broker'])('filtering and routing end to end (%s)', (kind) => {
  let testDb: TestDatabase;
  let transport: Transport;
  let broker: TestBroker | undefined;
  let dir: string;
  let app: ConcordatApp;

  beforeAll(async () => {
    testDb = await createTestDatabase('filters');
    dir = await mkdtemp(join(tmpdir(), 'concordat-filters-'));
    if (kind === 'embedded') {
      transport = new EmbeddedTransport({ dataDir: dir, consumer: { heartbeatIntervalMs: 200, maxWaitMs: 100, retryBackoffMs: 20, retryBackoffMaxMs: 200 } });
    } else {
      broker = await startTestBroker();
      transport = new KafkaTransport({ brokers: [broker.bootstrap], consumer: testConsumer });
    }
    app = ConcordatApp.create({
      name: 'filters-app',
      services: [Router],
      database: { url: testDb.url, poolSize: 4 },
      transport,
      partitions: 1,
      relay: { pollIntervalMs: 50 },
    });
    await app.start();
    await app.dataSource.query(`CREATE TABLE routed (handler text, order_id text)`);
  });
  afterAll(async () => {
    await app?.stop();
    await transport?.close();
    await broker?.stop();
    await testDb?.drop();
    await rm(dir, { recursive: true, force: true });
  });

  it('routes each message to the handler whose filter takes it; the rest are acknowledged, counted, and leave no inbox row', async () => {
    const filteredBefore = await counted('filtered');
    const key = { key: 'k' };
    await app.transaction(async (context) => {
      context.publish('filtered.orders', { orderId: 'o-1', cents: 10 }, { ...key, type: 'order.placed' });
      context.publish('filtered.orders', { orderId: 'o-2', cents: 10 }, { ...key, type: 'order.shipped' }); // no handler's type
      context.publish('filtered.orders', { orderId: 'o-3', cents: 10 }, { ...key, type: 'order.cancelled', extensions: { region: 'eu' } });
      context.publish('filtered.orders', { orderId: 'o-4', cents: 10 }, { ...key, type: 'order.refunded', extensions: { region: 'us' } }); // wrong region
      context.publish('filtered.orders', { orderId: 'o-5', cents: 10 }, { ...key, type: 'order.cancelled' }); // no region at all
      context.publish('filtered.audit', { orderId: 'a-1', cents: 50 }, key); // under the predicate's bound
      context.publish('filtered.audit', { orderId: 'a-2', cents: 500 }, key);
      // Sentinels: last on each topic.
      context.publish('filtered.orders', { orderId: 'o-end', cents: 1 }, { ...key, type: 'order.placed' });
      context.publish('filtered.audit', { orderId: 'a-end', cents: 100 }, key);
    });
    const routed = async () =>
      (await app.dataSource.query(`SELECT handler, order_id FROM routed ORDER BY handler, order_id`)) as Array<{ handler: string; order_id: string }>;
    await until(async () => (await routed()).some((row) => row.order_id === 'o-end') && (await routed()).some((row) => row.order_id === 'a-end'), {
      timeoutMs: 30_000,
      message: 'both sentinels handled',
    });
    expect((await routed()).map((row) => `${row.handler}:${row.order_id}`)).toEqual([
      'audit:a-2',
      'audit:a-end',
      'cancelled:o-3',
      'placed:o-1',
      'placed:o-end',
    ]);
    // Only the handled messages have inbox rows.
    expect(Number((await app.dataSource.query(`SELECT count(*) AS n FROM concordat.inbox WHERE consumer = 'filtering'`))[0].n)).toBe(5);
    const stats = app.stats().filtering!;
    expect(stats).toMatchObject({ filtered: 4, deadLettered: 0 });
    expect((await counted('filtered')) - filteredBefore).toBe(4);
  });
});

describe('misuse fails at app creation, before any I/O', () => {
  it('two handlers of one topic and group whose filters overlap', () => {
    @Service('overlapping')
    class Overlapping {
      @OnMessage('filtered.orders', { filter: { type: 'order.placed' } })
      async first(_context: MessageContext): Promise<void> {}
      @OnMessage('filtered.orders', { filter: { region: 'eu' } })
      async second(_context: MessageContext): Promise<void> {}
    }
    expect(() => ConcordatApp.create({ name: 'bad', services: [Overlapping] })).toThrow(
      "Overlapping.first and Overlapping.second both handle topic 'filtered.orders' in consumer group 'overlapping', and their filters ({ type: 'order.placed' } and { region: 'eu' }) can both match one message",
    );
  });
});
