import 'reflect-metadata';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { register } from 'prom-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { armFault, disarmFaults } from '../../../src/observability/index.js';
import { openDatabase, type Database } from '../../../src/persistence/index.js';
import { ConcordatApp, OnMessage, Service, type MessageContext } from '../../../src/runtime/index.js';
import { until } from '../../../src/testing/index.js';
import { EmbeddedTransport } from '../../../src/transport/index.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';

const handled: number[] = [];

@Service('ledger-watch')
class LedgerWatch {
  @OnMessage('ledger.entries')
  async record(context: MessageContext<{ n: number }>): Promise<void> {
    handled.push(context.data.n);
  }
}

/**
 * A consumer failure the transport recovers from (here: a partition worker of
 * the embedded transport that cannot decode, three times) is visible in the
 * app: in `stats()` and in `concordat_consumer_failures_total`, and the
 * messages are still all handled once.
 */
describe('consumer failures reach the app', () => {
  let testDb: TestDatabase;
  let db: Database;
  let dir: string;
  let app: ConcordatApp | undefined;

  beforeAll(async () => {
    testDb = await createTestDatabase('consumer_failures');
    db = await openDatabase({ url: testDb.url, poolSize: 4 });
    dir = await mkdtemp(join(tmpdir(), 'concordat-consumer-failures-'));
  });
  afterEach(() => disarmFaults());
  afterAll(async () => {
    await app?.stop();
    await db.close();
    await testDb.drop();
    await rm(dir, { recursive: true, force: true });
  });

  it('counts them in stats() and the metric; every message is handled once', { timeout: 30_000 }, async () => {
    const transport = new EmbeddedTransport({ dataDir: dir, consumer: { retryBackoffMs: 20, maxWaitMs: 100 } });
    app = ConcordatApp.create({ name: 'watch', services: [LedgerWatch], database: db, transport, partitions: 1 });
    armFault('embedded.before-decode', 'throw', { times: 3 });
    await app.start();
    for (let n = 1; n <= 10; n++) await app.publish('ledger.entries', { n }, { key: 'k' });
    await until(() => handled.length >= 10, { timeoutMs: 20_000, message: () => `handled ${handled.join(',')}` });
    // A sentinel behind them in the one partition: once it is handled, any redelivery of the ten would have shown.
    await app.publish('ledger.entries', { n: 11 }, { key: 'k' });
    await until(() => handled.includes(11), { timeoutMs: 20_000, message: () => `handled ${handled.join(',')}` });

    expect(handled).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    const stats = app.stats()['ledger-watch']!;
    expect(stats.consumerFailures).toBe(3);
    expect(stats.lastConsumerFailure).toMatchObject({ topic: 'ledger.entries', partition: 0, failures: 3, stalled: false });
    const metric = await register.getSingleMetric('concordat_consumer_failures_total')!.get();
    expect(metric.values.find((v) => v.labels.group === 'ledger-watch' && v.labels.stalled === 'false')?.value).toBe(3);
  });
});
