import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ConcordatError, ErrorCode } from '../../../src/errors.js';
import { InboxCleaner } from '../../../src/inbox/index.js';
import { INBOX_CLEANUP_BATCH_SQL } from '../../../src/inbox/cleanup.js';
import { ConcordatInboxConsumerProcessedAt1795200002000 } from '../../../src/persistence/migrations/0020-inbox-consumer-processed-at.js';
import { openDatabase, type Database } from '../../../src/persistence/index.js';
import type { InboxOptions } from '../../../src/config/index.js';
import { ConcordatApp, OnMessage, Service } from '../../../src/runtime/index.js';
import { EmbeddedTransport } from '../../../src/transport/index.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';

const DAY = 86_400_000;

@Service('payments')
class PaymentsService {
  @OnMessage('payments.requested')
  async pay(): Promise<void> {}
}

describe('the inbox dedup window against the log retention (real Postgres, real log)', () => {
  let testDb: TestDatabase;
  let db: Database;
  const cleanups: Array<() => Promise<void>> = [];

  beforeAll(async () => {
    testDb = await createTestDatabase('inbox_window');
    db = await openDatabase({ url: testDb.url, poolSize: 4 });
  });
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  });
  afterAll(async () => {
    await db.close();
    await testDb.drop();
  });

  /** Starts an app whose log gives its topics `retentionMs`; returns the app or the start error. */
  async function start(
    retentionMs: number | undefined,
    inbox: InboxOptions,
    adjust?: (transport: EmbeddedTransport) => void,
  ): Promise<ConcordatApp | ConcordatError> {
    const dir = await mkdtemp(join(tmpdir(), 'concordat-window-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const transport = new EmbeddedTransport({ dataDir: dir, log: retentionMs === undefined ? {} : { topicDefaults: { retentionMs } } });
    adjust?.(transport);
    cleanups.push(() => transport.close());
    const app = ConcordatApp.create({ name: 'pay', services: [PaymentsService], database: db, transport, inbox, relay: false });
    try {
      await app.start();
    } catch (error) {
      return error as ConcordatError;
    }
    cleanups.push(() => app.stop());
    return app;
  }

  it('refuses to start when the window is shorter than a consumed topic’s retention, naming the option', async () => {
    const refused = await start(7 * DAY, { dedupWindowMs: DAY });
    expect(refused).toBeInstanceOf(ConcordatError);
    expect((refused as ConcordatError).code).toBe(ErrorCode.DEDUP_WINDOW_TOO_SHORT);
    expect((refused as ConcordatError).message).toBe(
      "inbox.dedupWindowMs is 86400000 ms (1 d) but the log keeps records for 604800000 ms (7 d) for topic 'payments.requested': " +
        'a record redelivered after its inbox row is deleted would be processed twice. To fix it, raise inbox.dedupWindowMs to at least 604800000 ' +
        "(or leave it unset to follow the log), or lower the retention of topic 'payments.requested'; " +
        'or, to accept duplicates after a reset or rewind past the window, set inbox.allowShorterThanLogRetention: true.',
    );
    expect((refused as ConcordatError).context).toEqual({ option: 'inbox.dedupWindowMs', windowMs: DAY, topic: 'payments.requested', retentionMs: 7 * DAY });
  });

  it('refuses a finite window when the log keeps records forever', async () => {
    const refused = await start(-1, { dedupWindowMs: 30 * DAY });
    expect((refused as ConcordatError).message).toBe(
      "inbox.dedupWindowMs is 2592000000 ms (30 d) but the log keeps records forever (no retention) for topic 'payments.requested': " +
        "a record redelivered after its inbox row is deleted would be processed twice. To fix it, set inbox.dedupWindowMs to Infinity (or leave it unset), or give topic 'payments.requested' a retention; " +
        'or, to accept duplicates after a reset or rewind past the window, set inbox.allowShorterThanLogRetention: true.',
    );
  });

  it('starts with a window at least the retention; unset, the window follows the log', async () => {
    const equal = (await start(3 * DAY, { dedupWindowMs: 3 * DAY })) as ConcordatApp;
    expect(equal.dedupWindow).toEqual({ windowMs: 3 * DAY, retentionMs: { 'payments.requested': 3 * DAY }, derived: false, warnings: [] });
    await equal.stop();
    const followed = (await start(undefined, {})) as ConcordatApp;
    expect(followed.dedupWindow).toEqual({ windowMs: 7 * DAY, retentionMs: { 'payments.requested': 7 * DAY }, derived: true, warnings: [] });
    await followed.stop();
    const forever = (await start(-1, {})) as ConcordatApp;
    expect(forever.dedupWindow).toEqual({ windowMs: Infinity, retentionMs: { 'payments.requested': Infinity }, derived: true, warnings: [] });
  });

  it('with inbox.allowShorterThanLogRetention, a window shorter than the retention starts, with a warning naming both', async () => {
    const app = (await start(7 * DAY, { dedupWindowMs: DAY, allowShorterThanLogRetention: true })) as ConcordatApp;
    expect(app).toBeInstanceOf(ConcordatApp);
    expect(app.dedupWindow).toEqual({
      windowMs: DAY,
      retentionMs: { 'payments.requested': 7 * DAY },
      derived: false,
      warnings: [
        "inbox.dedupWindowMs is 86400000 ms (1 d) but the log keeps records for 604800000 ms (7 d) for topic 'payments.requested', " +
          'accepted because inbox.allowShorterThanLogRetention is set: a record redelivered after its inbox row is deleted ' +
          '(a consumer group reset or rewound past the window) will be processed twice',
      ],
    });
  });

  it('a transport that cannot report retention (no retentionMs, or asking fails): a warning, and start-up goes on', async () => {
    const refusing = (await start(3 * DAY, { dedupWindowMs: DAY }, (transport) => {
      transport.retentionMs = async () => {
        throw new ConcordatError('the brokers do not serve DescribeConfigs', { code: ErrorCode.UNSUPPORTED_VERSION });
      };
    })) as ConcordatApp;
    expect(refusing.dedupWindow).toEqual({
      windowMs: DAY,
      retentionMs: {},
      derived: false,
      warnings: [
        "the retention of 'payments.requested' could not be read (ConcordatError: the brokers do not serve DescribeConfigs), " +
          'so inbox.dedupWindowMs (86400000 ms, 1 d) cannot be checked against it; make sure it is at least the retention of every consumed topic',
      ],
    });
    await refusing.stop();
    const silent = (await start(3 * DAY, {}, (transport) => {
      Object.defineProperty(transport, 'retentionMs', { value: undefined });
    })) as ConcordatApp;
    expect(silent.dedupWindow).toEqual({
      windowMs: 7 * DAY,
      retentionMs: {},
      derived: true,
      warnings: [
        'the embedded transport does not report topic retention, so inbox.dedupWindowMs (604800000 ms, 7 d) cannot be checked against it; ' +
          'make sure it is at least the retention of every consumed topic',
      ],
    });
  });

  it('rejects a bad option at create, naming it', () => {
    expect(() => ConcordatApp.create({ name: 'pay', services: [PaymentsService], inbox: { dedupWindowMs: 1000 } })).toThrow(
      'invalid options: inbox.dedupWindowMs: Too small: expected number to be >=60000 (got 1000)',
    );
    expect(() => ConcordatApp.create({ name: 'pay', services: [PaymentsService], inbox: { cleanupBatchRowsMax: 10 } })).toThrow(
      'invalid options: inbox.cleanupBatchRowsMax: Too small: expected number to be >=100 (got 10)',
    );
  });
});

describe('inbox cleanup (real Postgres)', () => {
  let testDb: TestDatabase;
  let db: Database;

  beforeAll(async () => {
    testDb = await createTestDatabase('inbox_cleanup');
    db = await openDatabase({ url: testDb.url, poolSize: 4 });
  });
  afterAll(async () => {
    await db.close();
    await testDb.drop();
  });

  it('deletes rows past the window in bounded batches, one process at a time, and keeps the rest', async () => {
    await db.dataSource.query(
      `INSERT INTO concordat.inbox (consumer, message_id, processed_at)
       SELECT 'c', 'old-' || i, now() - interval '2 hours' FROM generate_series(1, 1250) AS i
       UNION ALL SELECT 'c', 'new-' || i, now() - interval '10 minutes' FROM generate_series(1, 30) AS i`,
    );
    const cleaner = new InboxCleaner(db.dataSource, { consumers: ['c'], windowMs: 3_600_000, intervalMs: 60_000, batchRowsMax: 100, batchesMax: 5 });

    // Another process holds the turn of consumer 'c': this run does nothing.
    const other = new pg.Client({ connectionString: testDb.url });
    await other.connect();
    await other.query(`SELECT pg_advisory_lock($1, hashtext('c'))`, [0x496e6278]);
    expect(await cleaner.runOnce()).toBe(0);
    await other.query(`SELECT pg_advisory_unlock($1, hashtext('c'))`, [0x496e6278]);
    await other.end();

    expect(await cleaner.runOnce()).toBe(500); // five batches of 100 at most per run
    expect(await cleaner.runOnce()).toBe(500);
    expect(await cleaner.runOnce()).toBe(250);
    expect(await cleaner.runOnce()).toBe(0);
    const left = await db.dataSource.query(`SELECT count(*)::int AS n, bool_and(message_id LIKE 'new-%') AS all_new FROM concordat.inbox`);
    expect(left).toEqual([{ n: 30, all_new: true }]);
    expect(cleaner.deleted).toBe(1250);
  });

  it('an unlimited window deletes nothing', async () => {
    await db.dataSource.query(`INSERT INTO concordat.inbox (consumer, message_id, processed_at) VALUES ('c', 'ancient', now() - interval '10 years')`);
    expect(
      await new InboxCleaner(db.dataSource, { consumers: ['c'], windowMs: Infinity, intervalMs: 60_000, batchRowsMax: 100, batchesMax: 5 }).runOnce(),
    ).toBe(0);
    expect(await db.dataSource.query(`SELECT message_id FROM concordat.inbox WHERE message_id = 'ancient'`)).toEqual([{ message_id: 'ancient' }]);
  });

  it("deletes only the rows of this app's consumer groups, sharing the run's batches between them; other apps' rows stay", async () => {
    await db.dataSource.query(`TRUNCATE concordat.inbox`);
    await db.dataSource.query(
      `INSERT INTO concordat.inbox (consumer, message_id, processed_at)
       SELECT c, c || '-old-' || i, now() - interval '2 hours' FROM unnest(ARRAY['mine-a', 'mine-b', 'theirs']) AS c, generate_series(1, 150) AS i
       UNION ALL SELECT 'mine-a', 'mine-a-new-' || i, now() FROM generate_series(1, 10) AS i`,
    );
    const cleaner = new InboxCleaner(db.dataSource, {
      consumers: ['mine-a', 'mine-b'],
      windowMs: 3_600_000,
      intervalMs: 60_000,
      batchRowsMax: 100,
      batchesMax: 3,
    });
    expect(await cleaner.runOnce()).toBe(250); // three batches: 100 of each, then 50 of mine-a
    expect(await cleaner.runOnce()).toBe(50);
    expect(await cleaner.runOnce()).toBe(0);
    const left = await db.dataSource.query(`SELECT consumer, count(*)::int AS n FROM concordat.inbox GROUP BY consumer ORDER BY consumer`);
    expect(left).toEqual([
      { consumer: 'mine-a', n: 10 },
      { consumer: 'theirs', n: 150 },
    ]);
    // The other app's own cleaner deletes its rows.
    expect(
      await new InboxCleaner(db.dataSource, { consumers: ['theirs'], windowMs: 3_600_000, intervalMs: 60_000, batchRowsMax: 100, batchesMax: 3 }).runOnce(),
    ).toBe(150);
  });

  it('deletes replayed dead letters past their retention, for its own groups only; pending ones are kept whatever their age', async () => {
    await db.dataSource.query(`TRUNCATE concordat.dead_letter`);
    const letter = (consumer: string, id: string, failedAgo: string, replayedAgo: string | null): string =>
      `('${consumer}', '${id}', 'h', 't', 0, 0, '{}'::jsonb, 'boom', 'HANDLER_FAILED', 3, now() - interval '${failedAgo}', ` +
      (replayedAgo === null ? 'NULL' : `now() - interval '${replayedAgo}'`) +
      ')';
    await db.dataSource.query(
      `INSERT INTO concordat.dead_letter (consumer, message_id, handler, topic, partition, "offset", headers, error, error_code, attempts, failed_at, replayed_at) VALUES ` +
        [
          letter('mine', 'replayed-long-ago', '40 days', '31 days'),
          letter('mine', 'replayed-recently', '40 days', '1 day'),
          letter('mine', 'pending-ancient', '400 days', null),
          letter('theirs', 'theirs-replayed-long-ago', '40 days', '31 days'),
        ].join(', '),
    );
    const cleaner = new InboxCleaner(db.dataSource, { consumers: ['mine'], windowMs: Infinity, intervalMs: 60_000, batchRowsMax: 100, batchesMax: 5 });
    await cleaner.runOnce();
    expect(cleaner.deadLettersDeleted).toBe(1);
    const left = await db.dataSource.query(`SELECT message_id FROM concordat.dead_letter ORDER BY message_id`);
    expect(left.map((row: { message_id: string }) => row.message_id)).toEqual(['pending-ancient', 'replayed-recently', 'theirs-replayed-long-ago']);
    // Infinity keeps even replayed ones.
    const keeper = new InboxCleaner(db.dataSource, {
      consumers: ['theirs'],
      windowMs: Infinity,
      deadLetterRetentionMs: Infinity,
      intervalMs: 60_000,
      batchRowsMax: 100,
      batchesMax: 5,
    });
    await keeper.runOnce();
    expect(keeper.deadLettersDeleted).toBe(0);
    expect(await db.dataSource.query(`SELECT count(*)::int AS n FROM concordat.dead_letter`)).toEqual([{ n: 3 }]);
  });

  it('migration 0020 builds the index, and builds again one a failed concurrent build left invalid', async () => {
    const validity = async (): Promise<unknown[]> =>
      db.dataSource.query(`SELECT indisvalid AS valid FROM pg_index WHERE indexrelid = 'concordat.inbox_consumer_processed_at'::regclass`);
    expect(await validity()).toEqual([{ valid: true }]);
    await db.dataSource.query(`UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'concordat.inbox_consumer_processed_at'::regclass`);
    const runner = db.dataSource.createQueryRunner();
    try {
      await new ConcordatInboxConsumerProcessedAt1795200002000().up(runner);
      await new ConcordatInboxConsumerProcessedAt1795200002000().up(runner); // valid now: nothing to do
    } finally {
      await runner.release();
    }
    expect(await validity()).toEqual([{ valid: true }]);
  });

  it('finds the rows to delete by an index range scan on (consumer, processed_at), most rows being within the window', async () => {
    await db.dataSource.query(`TRUNCATE concordat.inbox`);
    await db.dataSource.query(
      `INSERT INTO concordat.inbox (consumer, message_id, processed_at)
       SELECT 'busy-' || (i % 20), 'm-' || i, now() - CASE WHEN i % 100 = 0 THEN interval '2 hours' ELSE (i % 1000) * interval '1 second' END
         FROM generate_series(1, 50000) AS i`,
    );
    await db.dataSource.query(`ANALYZE concordat.inbox`);
    const [{ 'QUERY PLAN': plan }] = await db.dataSource.query(`EXPLAIN (FORMAT JSON) ${INBOX_CLEANUP_BATCH_SQL}`, ['busy-3', 3_600_000, 100]);
    const scans: Array<{ 'Node Type': string; 'Index Name'?: string; 'Index Cond'?: string }> = [];
    const walk = (node: { Plans?: unknown[] } & Record<string, unknown>): void => {
      if (typeof node['Index Name'] === 'string') scans.push(node as never);
      for (const child of node.Plans ?? []) walk(child as never);
    };
    walk(plan[0].Plan);
    const range = scans.find((scan) => scan['Index Name'] === 'inbox_consumer_processed_at');
    expect(range, JSON.stringify(plan)).toBeDefined();
    expect(range!['Index Cond']).toMatch(/consumer = .*processed_at </);
  });
});
