import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OutboxRelay, outboxMetrics, SCHEDULED_COUNT_EXACT_MAX } from '../../../src/outbox/index.js';
import { openDatabase, type Database } from '../../../src/persistence/index.js';
import { runTransaction } from '../../../src/runtime/index.js';
import { until } from '../../../src/testing/index.js';
import { EmbeddedTransport } from '../../../src/transport/index.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';

/**
 * The scheduled messages' gauges (`concordat_outbox_scheduled_pending`,
 * `concordat_outbox_scheduled_lateness_seconds`) and the moved counter,
 * against real PostgreSQL: `relay.scheduledLag()` and the Prometheus text.
 */
describe('scheduled message metrics (real Postgres)', () => {
  let testDb: TestDatabase;
  let db: Database;
  let dir: string;
  let transport: EmbeddedTransport;
  let relay: OutboxRelay | undefined;

  beforeAll(async () => {
    testDb = await createTestDatabase('scheduled_metrics');
    db = await openDatabase({ url: testDb.url, poolSize: 4 });
    dir = await mkdtemp(join(tmpdir(), 'concordat-scheduled-metrics-'));
    transport = new EmbeddedTransport({ dataDir: dir });
  });
  afterAll(async () => {
    await relay?.stop();
    await transport.close();
    await db.close();
    await testDb.drop();
    await rm(dir, { recursive: true, force: true });
  });

  /** One gauge's value in the registry's text, read after the gauges' 1 s cache expired. */
  async function scrape(registry: Registry, name: string): Promise<number> {
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const line = (await registry.metrics()).split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
    if (line === undefined) throw new Error(`no ${name} in the metrics`);
    return Number(line.slice(line.lastIndexOf(' ') + 1));
  }

  it('counts pending messages, reports how late the earliest due one is, and counts the moves', async () => {
    const registry = new Registry();
    relay = new OutboxRelay(db, transport, { relayId: 'sched-metrics', pollIntervalMs: 100 }, { metricsRegistry: registry });
    // Before the relay starts, nothing moves the due rows: attach it to the gauges by hand.
    const detach = outboxMetrics(registry).attach(relay);
    expect(await relay.scheduledLag()).toEqual({ pendingMessages: 0, oldestDueLatenessMs: 0 });

    await runTransaction(db.dataSource, 'test', async (context) => {
      for (let i = 0; i < 3; i++) context.publish('sched.metrics', { i }, { key: `later-${i}`, delayMs: 3_600_000 });
      for (let i = 0; i < 2; i++) context.publish('sched.metrics', { i }, { key: `due-${i}`, deliverAt: new Date(Date.now() - 5000) });
    });
    const lag = await relay.scheduledLag();
    expect(lag.pendingMessages).toBe(5);
    expect(lag.oldestDueLatenessMs).toBeGreaterThanOrEqual(4900);
    expect(lag.oldestDueLatenessMs).toBeLessThan(60_000);
    expect(await scrape(registry, 'concordat_outbox_scheduled_pending')).toBe(5);
    const lateness = await scrape(registry, 'concordat_outbox_scheduled_lateness_seconds');
    expect(lateness).toBeGreaterThanOrEqual(4.9);
    expect(lateness).toBeLessThan(60);
    detach();

    // The relay's scheduler moves the two due rows into the outbox (and its lanes publish them).
    await relay.start();
    await until(async () => (await relay!.scheduledLag()).pendingMessages === 3, { message: 'the due rows are moved' });
    expect(await relay.scheduledLag()).toEqual({ pendingMessages: 3, oldestDueLatenessMs: 0 });
    expect(await scrape(registry, 'concordat_outbox_scheduled_pending')).toBe(3);
    expect(await scrape(registry, 'concordat_outbox_scheduled_lateness_seconds')).toBe(0);
    expect(await registry.metrics()).toContain('concordat_outbox_scheduled_moved_total{relay="sched-metrics"} 2');
  });

  it(`above ${SCHEDULED_COUNT_EXACT_MAX} pending, reads PostgreSQL's live-row estimate instead of counting every row`, async () => {
    const extra = SCHEDULED_COUNT_EXACT_MAX + 50;
    // Straight into the table (one statement, not 10,050 publishes), due tomorrow, with the session's statistics flushed at once.
    const runner = db.dataSource.createQueryRunner();
    try {
      await runner.query(
        `INSERT INTO concordat.outbox_scheduled (message_id, topic, partition_key, shard, headers, payload, deliver_at)
         SELECT 'bulk-' || n, 'sched.metrics', 'bulk', 0, '{}'::jsonb, NULL, now() + interval '1 day' FROM generate_series(1, $1) AS n`,
        [extra],
      );
      await runner.query(`SELECT pg_stat_force_next_flush()`);
    } finally {
      await runner.release();
    }
    // Never less than the exact bound, even before the statistics have the rows.
    expect((await relay!.scheduledLag()).pendingMessages).toBeGreaterThan(SCHEDULED_COUNT_EXACT_MAX);
    // The three rows of the first test are still pending: the estimate counts them too.
    await until(async () => (await relay!.scheduledLag()).pendingMessages === extra + 3, {
      timeoutMs: 20_000,
      message: `the estimate reaches ${extra + 3}`,
    });
    expect((await relay!.scheduledLag()).oldestDueLatenessMs).toBe(0);
  });
});
