import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openDatabase } from '../../../src/persistence/index.js';
import {
  ConcordatApp,
  CRON_TOPIC_PREFIX,
  CronSchedule,
  cronTickId,
  exploreHandlers,
  runTransaction,
  Scheduled,
  Service,
  type CronTick,
  type ScheduledContext,
} from '../../../src/runtime/index.js';
import { EmbeddedTransport, KafkaTransport, type Transport } from '../../../src/transport/index.js';
import { until } from '../../../src/testing/index.js';
import { startTestBroker, type TestBroker } from '../broker/helpers/broker.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';

/**
 * Cron schedules (issue 14): `@Scheduled` runs its method once per tick
 * across all instances of an app, on the embedded log and through kafkajs
 * to `concordat broker`; a tick missed while the app was down runs or is
 * skipped according to `missed`; a bad expression fails start-up.
 */

@Service('cron-app')
class EverySecond {
  @Scheduled('* * * * * *')
  async tick(context: ScheduledContext): Promise<void> {
    await context.manager.query(`INSERT INTO cron_effects (tick_at) VALUES ($1)`, [context.data.tickAt]);
  }
}

const YEARLY = '0 0 1 1 *';

@Service('cron-missed')
class Yearly {
  @Scheduled(YEARLY, { missed: 'skip', misfireThresholdMs: 1000 })
  async skipIt(context: ScheduledContext): Promise<void> {
    await context.manager.query(`INSERT INTO cron_effects (tick_at, method) VALUES ($1, 'skipIt')`, [context.data.tickAt]);
  }

  @Scheduled(YEARLY, { missed: 'run', misfireThresholdMs: 1000, timezone: 'Europe/Berlin' })
  async runIt(context: ScheduledContext): Promise<void> {
    await context.manager.query(`INSERT INTO cron_effects (tick_at, method) VALUES ($1, 'runIt')`, [context.data.tickAt]);
  }
}

const effectsTable = `CREATE TABLE cron_effects (tick_at text NOT NULL, method text, handled_at timestamptz NOT NULL DEFAULT clock_timestamp())`;
const testConsumer = { sessionTimeoutMs: 6000, heartbeatIntervalMs: 500, maxWaitMs: 50, retryBackoffMs: 20, retryBackoffMaxMs: 100 };

describe('@Scheduled cron schedules', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  });

  async function database(prefix: string): Promise<TestDatabase> {
    const testDb = await createTestDatabase(prefix);
    cleanups.push(() => testDb.drop());
    const db = await openDatabase({ url: testDb.url, poolSize: 2 });
    await db.dataSource.query(effectsTable);
    await db.close();
    return testDb;
  }

  async function embedded(): Promise<EmbeddedTransport> {
    const dir = await mkdtemp(join(tmpdir(), 'concordat-cron-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const transport = new EmbeddedTransport({
      dataDir: dir,
      consumer: { heartbeatIntervalMs: 200, maxWaitMs: 50, retryBackoffMs: 20, retryBackoffMaxMs: 200 },
    });
    cleanups.push(() => transport.close());
    return transport;
  }

  async function started(url: string, transport: Transport, services: Function[], name = 'cron-app'): Promise<ConcordatApp> {
    const app = ConcordatApp.create({ name, services, database: { url, poolSize: 4 }, transport, partitions: 1, relay: { pollIntervalMs: 200 } });
    await app.start();
    cleanups.push(() => app.stop());
    return app;
  }

  const effects = async (url: string): Promise<Array<{ tick_at: string; method: string | null; handled_at: Date }>> => {
    const db = await openDatabase({ url, poolSize: 1 });
    try {
      return await db.dataSource.query(`SELECT tick_at, method, handled_at FROM cron_effects ORDER BY tick_at`);
    } finally {
      await db.close();
    }
  };

  /** Each tick ran once, at or after its time, on a second boundary. */
  function expectOncePerTick(rows: Array<{ tick_at: string; handled_at: Date }>): void {
    const ticks = rows.map((row) => row.tick_at);
    expect(new Set(ticks).size).toBe(ticks.length);
    for (const row of rows) {
      expect(new Date(row.tick_at).getMilliseconds()).toBe(0);
      expect(row.handled_at.getTime()).toBeGreaterThanOrEqual(new Date(row.tick_at).getTime());
    }
  }

  it('every second on the embedded log: each tick runs once, at or after its time', async () => {
    const testDb = await database('cron_embedded');
    const app = await started(testDb.url, await embedded(), [EverySecond]);
    await until(async () => (await app.dataSource.query(`SELECT count(*)::int AS n FROM cron_effects`))[0].n >= 3, {
      timeoutMs: 30_000,
      message: '3 ticks ran',
    });
    await app.stop();
    expectOncePerTick(await effects(testDb.url));
  });

  it('two instances through kafkajs → concordat broker: each tick runs once across both', async () => {
    const broker: TestBroker = await startTestBroker();
    cleanups.push(() => broker.stop());
    const testDb = await database('cron_two');
    const transports = [0, 1].map((i) => new KafkaTransport({ brokers: [broker.bootstrap], clientId: `cron-${i}`, consumer: testConsumer }));
    for (const transport of transports) cleanups.push(() => transport.close());
    const apps = [await started(testDb.url, transports[0]!, [EverySecond]), await started(testDb.url, transports[1]!, [EverySecond])];
    await until(async () => (await apps[0]!.dataSource.query(`SELECT count(*)::int AS n FROM cron_effects`))[0].n >= 4, {
      timeoutMs: 45_000,
      message: '4 ticks ran',
    });
    for (const app of apps) await app.stop();
    const rows = await effects(testDb.url);
    expectOncePerTick(rows);
    // Both instances scheduled the next tick at start, and each handled tick scheduled its follower: one row per tick regardless.
    expect(rows.length).toBeGreaterThanOrEqual(4);
  });

  it('a tick missed while the app was down: skipped with missed: skip, run with missed: run; the next tick is scheduled', async () => {
    const testDb = await database('cron_missed');
    // The ticks of a schedule whose app was down at their time (five seconds ago), as the last run left them.
    const tickAt = new Date(Math.floor(Date.now() / 1000) * 1000 - 5000);
    const db = await openDatabase({ url: testDb.url, poolSize: 2 });
    const ids = await runTransaction(db.dataSource, 'cron-missed', async (context) =>
      ['Yearly.skipIt', 'Yearly.runIt'].map((name) => {
        const data: CronTick = { schedule: name, tickAt: tickAt.toISOString() };
        return context.publish(`${CRON_TOPIC_PREFIX}${name}`, data, { id: cronTickId(name, tickAt), key: name, deliverAt: tickAt });
      }),
    );
    await db.close();
    const app = await started(testDb.url, await embedded(), [Yearly], 'cron-missed');
    // Both missed ticks handled (their inbox rows), whether the method ran or not.
    await until(async () => (await app.dataSource.query(`SELECT count(*)::int AS n FROM concordat.inbox WHERE message_id = ANY($1)`, [ids]))[0].n === 2, {
      timeoutMs: 30_000,
      message: 'both missed ticks handled',
    });
    expect((await effects(testDb.url)).map((row) => [row.method, row.tick_at])).toEqual([['runIt', tickAt.toISOString()]]);
    // The next tick of each: the start hook's and the handler's are one row (one message ID).
    const nextUtc = CronSchedule.parse(YEARLY).nextAfter(new Date());
    const nextBerlin = CronSchedule.parse(YEARLY, 'Europe/Berlin').nextAfter(new Date());
    const pending: Array<{ message_id: string }> = await app.dataSource.query(`SELECT message_id FROM concordat.outbox_scheduled ORDER BY message_id`);
    expect(pending.map((row) => row.message_id)).toEqual([cronTickId('Yearly.runIt', nextBerlin), cronTickId('Yearly.skipIt', nextUtc)]);
  });

  it('a bad expression or time zone fails start-up, naming the method and the problem', () => {
    @Service('cron-bad')
    class Bad {
      @Scheduled('61 * * * *')
      async minute(): Promise<void> {}

      @Scheduled('* * * * *', { timezone: 'Mars/Olympus_Mons' })
      async mars(): Promise<void> {}
    }
    expect(() => exploreHandlers([Bad])).toThrow(
      /Bad: @Scheduled on minute: .*invalid cron schedule '61 \* \* \* \*' \(time zone 'UTC'\): Constraint error, got value 61 expected range 0-59/,
    );
    expect(() => exploreHandlers([Bad])).toThrow(/Bad: @Scheduled on mars: .*unknown time zone 'Mars\/Olympus_Mons'/);
  });
});
