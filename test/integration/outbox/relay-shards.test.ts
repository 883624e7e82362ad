import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { OutboxRelay, type OutboxRecord, writeOutboxRecords } from '../../../src/outbox/index.js';
import { openDatabase, type Database } from '../../../src/persistence/index.js';
import { runTransaction } from '../../../src/runtime/index.js';
import { until } from '../../../src/testing/index.js';
import { EmbeddedTransport, type Delivery, type OutgoingRecord, type PublishAck, type Transport } from '../../../src/transport/index.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';

/** A seam that records the size of each publish and can hang the first ones. */
class RecordingTransport implements Transport {
  readonly kind = 'embedded' as const;
  readonly batches: Array<{ rows: number; bytes: number }> = [];
  hang = 0;
  constructor(private readonly inner: Transport) {}
  connect(): Promise<void> {
    return this.inner.connect();
  }
  ensureTopics(topics: Parameters<Transport['ensureTopics']>[0]): Promise<void> {
    return this.inner.ensureTopics(topics);
  }
  publish(records: OutgoingRecord[]): Promise<PublishAck[]> {
    if (this.hang > 0) {
      this.hang--;
      return new Promise(() => {});
    }
    this.batches.push({ rows: records.length, bytes: records.reduce((sum, r) => sum + (r.value?.length ?? 0), 0) });
    return this.inner.publish(records);
  }
  subscribe(options: Parameters<Transport['subscribe']>[0]): ReturnType<Transport['subscribe']> {
    return this.inner.subscribe(options);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

describe('outbox relays sharing shards (real Postgres, real log)', () => {
  let testDb: TestDatabase;
  let db: Database;
  let dir: string;
  let transport: EmbeddedTransport;
  const relays: OutboxRelay[] = [];
  const extraDatabases: Database[] = [];
  let topicNo = 0;

  beforeAll(async () => {
    testDb = await createTestDatabase('relay_shards');
    db = await openDatabase({ url: testDb.url, poolSize: 8 });
    dir = await mkdtemp(join(tmpdir(), 'concordat-relay-shards-'));
    transport = new EmbeddedTransport({ dataDir: dir });
  });
  afterEach(async () => {
    for (const relay of relays.splice(0)) await relay.stop();
    for (const database of extraDatabases.splice(0)) await database.close();
    await db.dataSource.query(`TRUNCATE concordat.outbox, concordat.outbox_relay, concordat.outbox_failed`);
    await db.dataSource.query(`UPDATE concordat.outbox_shard SET owner = NULL, expires_at = '-infinity'`);
  });
  afterAll(async () => {
    await transport.close();
    await db.close();
    await testDb.drop();
    await rm(dir, { recursive: true, force: true });
  });

  function relay(
    options: ConstructorParameters<typeof OutboxRelay>[2] = {},
    on: Transport = transport,
    database: Database = db,
    registry?: Registry,
  ): OutboxRelay {
    const created = new OutboxRelay(database, on, { pollIntervalMs: 100, ...options }, registry === undefined ? {} : { metricsRegistry: registry });
    relays.push(created);
    return created;
  }

  async function newTopic(partitions = 4): Promise<{ topic: string; received: Delivery[] }> {
    const topic = `shards-${topicNo++}`;
    const received: Delivery[] = [];
    await transport.ensureTopics([{ name: topic, partitions }]);
    await transport.subscribe({ groupId: `reader-${topic}`, topics: [topic], handler: async (delivery) => void received.push(delivery) });
    return { topic, received };
  }

  const owners = async (): Promise<Record<string, number>> => {
    const rows: Array<{ owner: string | null; n: number }> = await db.dataSource.query(
      `SELECT owner, count(*)::int AS n FROM concordat.outbox_shard WHERE owner IS NOT NULL AND expires_at > clock_timestamp() GROUP BY owner`,
    );
    return Object.fromEntries(rows.map((row) => [row.owner!, row.n]));
  };

  it('three relays split the 256 shards fairly; the per-key order holds while all three publish', async () => {
    const { topic, received } = await newTopic(6);
    const [a, b, c] = [
      relay({ relayId: 'relay-a', leaseRenewIntervalMs: 100, leaseMs: 3000 }),
      relay({ relayId: 'relay-b', leaseRenewIntervalMs: 100, leaseMs: 3000 }),
      relay({ relayId: 'relay-c', leaseRenewIntervalMs: 100, leaseMs: 3000 }),
    ];
    await Promise.all([a!.start(), b!.start(), c!.start()]);
    await until(
      async () =>
        Object.values(await owners())
          .sort()
          .join() === '85,85,86',
      { message: 'a fair split' },
    );
    expect(await owners()).toEqual({ 'relay-a': 86, 'relay-b': 85, 'relay-c': 85 });
    expect(new Set([...a!.ownedShards, ...b!.ownedShards, ...c!.ownedShards]).size).toBe(256);

    const keys = 40;
    const perKey = 15;
    for (let n = 1; n <= perKey; n++) {
      await runTransaction(db.dataSource, 'test', async (context) => {
        for (let k = 0; k < keys; k++) context.publish(topic, { n }, { key: `key-${k}` });
      });
    }
    await until(() => received.length >= keys * perKey, { message: 'every message delivered' });
    const byKey = new Map<string, number[]>();
    for (const delivery of received) {
      const key = delivery.key!.toString();
      byKey.set(key, [...(byKey.get(key) ?? []), JSON.parse(delivery.value!.toString()).n]);
    }
    for (let k = 0; k < keys; k++) expect(byKey.get(`key-${k}`)).toEqual(Array.from({ length: perKey }, (_, i) => i + 1));
    // `published` counts rows once the log acknowledged them.
    await until(() => a!.published + b!.published + c!.published === keys * perKey, { message: 'every row published' });
    expect([a!.published, b!.published, c!.published].every((count) => count > 0)).toBe(true);
  });

  it('a relay that stops releases its shards at once; a relay that goes silent loses them within leaseMs + one renewal', async () => {
    const options = { leaseMs: 1500, leaseRenewIntervalMs: 200 };
    const a = relay({ ...options, relayId: 'relay-a' });
    const silentDb = await openDatabase({ url: testDb.url, poolSize: 2 });
    const b = relay({ ...options, relayId: 'relay-b' }, transport, silentDb);
    await a.start();
    expect(a.ownedShards).toHaveLength(256);
    await b.start();
    await until(async () => (await owners())['relay-b'] === 128, { message: 'relay-b takes half' });
    await until(() => a.ownedShards.length === 128, { message: 'relay-a gives up half' });

    // relay-b's database connections die: it can renew nothing. Its shards must reach relay-a within the bound.
    const silencedAt = Date.now();
    await silentDb.dataSource.destroy();
    await until(() => a.ownedShards.length === 256, { timeoutMs: 5000, intervalMs: 20, message: 'relay-a owns every shard' });
    const takeoverMs = Date.now() - silencedAt;
    expect(takeoverMs).toBeLessThanOrEqual(1500 + 200 + 300); // leaseMs + one renewal + scheduling slack
    expect(b.ownedShards).toEqual([]); // its own clock told it its leases lapsed
    relays.splice(relays.indexOf(b), 1);
    await b.stop();

    const c = relay({ ...options, relayId: 'relay-c' });
    await c.start();
    await until(() => c.ownedShards.length === 128, { message: 'relay-c takes half' });
    const stoppedAt = Date.now();
    await c.stop();
    relays.splice(relays.indexOf(c), 1);
    expect(await owners()).toEqual({ 'relay-a': 128 }); // released in the database at stop
    await until(() => a.ownedShards.length === 256, { message: 'relay-a takes them back' });
    expect(Date.now() - stoppedAt).toBeLessThanOrEqual(200 + 300); // one renewal
  });

  it('bounds each batch by rows and by bytes; a row larger than the byte bound goes alone', async () => {
    const { topic, received } = await newTopic(2);
    const recording = new RecordingTransport(transport);
    const records: OutboxRecord[] = Array.from({ length: 20 }, (_, i) => ({
      messageId: `bounds-${i}`,
      topic,
      key: `k${i % 3}`,
      headers: { ce_id: `bounds-${i}` },
      payload: Buffer.alloc(i === 10 ? 20_000 : 3000, 97),
    }));
    await db.transaction((manager) => writeOutboxRecords(manager, records));
    const r = relay({ batchRowsMax: 7, batchBytesMax: 8192, lanes: 1 }, recording);
    await r.start();
    await until(() => received.length === 20, { message: 'all 20 delivered' });
    expect(recording.batches.reduce((sum, batch) => sum + batch.rows, 0)).toBe(20);
    for (const batch of recording.batches) {
      expect(batch.rows).toBeLessThanOrEqual(7);
      if (batch.rows > 1) expect(batch.bytes).toBeLessThanOrEqual(8192);
    }
    expect(recording.batches).toContainEqual({ rows: 1, bytes: 20_000 });
    expect(Math.max(...recording.batches.map((batch) => batch.rows))).toBe(2); // two 3000-byte rows fit, three do not
  });

  it('reports the backlog and the age of the oldest row, as an API and as Prometheus metrics', async () => {
    const { topic, received } = await newTopic(2);
    const registry = new Registry();
    const r = relay({ relayId: 'relay-metrics' }, transport, db, registry);
    await runTransaction(db.dataSource, 'test', async (context) => {
      for (let i = 0; i < 5; i++) context.publish(topic, { i }, { key: 'lag' });
    });
    // No relay runs yet: the five rows wait, and the age of the oldest grows with the database clock.
    const lag = await until(
      async () => {
        const current = await r.lag();
        return current.oldestAgeMs >= 250 ? current : undefined;
      },
      { timeoutMs: 10_000, message: 'the oldest row 250 ms old' },
    );
    expect(lag.backlogRows).toBe(5);
    expect(lag.oldestAgeMs).toBeLessThan(10_000);

    await r.start();
    await until(() => received.length === 5, { message: 'the backlog is published' });
    await until(async () => (await r.lag()).backlogRows === 0, { message: 'rows deleted' });
    expect(await r.lag()).toEqual({ backlogRows: 0, oldestAgeMs: 0 });
    // The lag gauges cache their query for 1 s: they read 0 once the cache has expired.
    const text = await until(
      async () => {
        const current = await registry.metrics();
        return current.includes('concordat_outbox_backlog_rows 0') ? current : undefined;
      },
      { timeoutMs: 10_000, intervalMs: 100, message: 'the backlog gauge at 0' },
    );
    expect(text).toContain('concordat_outbox_published_total{relay="relay-metrics"} 5');
    expect(text).toContain('concordat_outbox_shards_owned{relay="relay-metrics"} 256');
    expect(text).toContain('concordat_outbox_backlog_rows 0');
    expect(text).toContain('concordat_outbox_oldest_age_seconds 0');
    expect(text).toMatch(/concordat_outbox_batch_duration_seconds_count\{relay="relay-metrics"\} [1-5]\n/);
  });

  it('a log that does not acknowledge within publishTimeoutMs fails the batch; its rows are published again', async () => {
    const { topic, received } = await newTopic(2);
    const recording = new RecordingTransport(transport);
    recording.hang = 1;
    const registry = new Registry();
    const r = relay({ relayId: 'relay-timeout', publishTimeoutMs: 200, retryBackoffMs: 10, lanes: 1 }, recording, db, registry);
    await r.start();
    const startedAt = Date.now();
    await runTransaction(db.dataSource, 'test', async (context) => {
      context.publish(topic, { n: 1 }, { key: 'slow' });
      context.publish(topic, { n: 2 }, { key: 'slow' });
    });
    await until(() => received.length === 2, { message: 'published after the timeout' });
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(200);
    expect(received.map((d) => JSON.parse(d.value!.toString()).n)).toEqual([1, 2]);
    expect(await registry.metrics()).toContain('concordat_outbox_batch_failures_total{relay="relay-timeout"} 1');
  });

  it('a writer in another process (another pool) wakes the relay by NOTIFY after its commit, long before the poll', async () => {
    const { topic, received } = await newTopic(2);
    const r = relay({ pollIntervalMs: 60_000 });
    await r.start();
    const writer = await openDatabase({ url: testDb.url, poolSize: 2 });
    extraDatabases.push(writer);
    const startedAt = Date.now();
    await runTransaction(writer.dataSource, 'remote-writer', async (context) => void context.publish(topic, { n: 1 }, { key: 'far' }));
    await until(() => received.length === 1, { timeoutMs: 5000, message: 'woken by NOTIFY' });
    expect(Date.now() - startedAt).toBeLessThan(2000);
  });

  it('moves rows the log refuses for good to concordat.outbox_failed, and publishes the rows around them in order', async () => {
    const { topic, received } = await newTopic(1);
    const registry = new Registry();
    const r = relay({ relayId: 'relay-poison', lanes: 1 }, transport, db, registry);
    const row = (id: string, key: string, bytes: number, to = topic): OutboxRecord => ({
      messageId: id,
      topic: to,
      key,
      headers: { ce_id: id },
      payload: Buffer.alloc(bytes, 120),
    });
    await db.transaction((manager) =>
      writeOutboxRecords(manager, [
        row('a1', 'a', 10),
        row('a2-too-big', 'a', 2 * 1024 * 1024),
        row('a3', 'a', 10),
        row('b1-bad-topic', 'b', 10, 'bad topic!'),
        row('b2', 'b', 10),
      ]),
    );
    await r.start();
    await until(() => received.length === 3, { message: 'the three good rows published' });
    expect(received.map((d) => d.headers.ce_id!.toString())).toEqual(['a1', 'a3', 'b2']);
    await until(async () => (await r.lag()).backlogRows === 0, { message: 'the outbox is empty' });
    const failed = await db.dataSource.query(
      `SELECT message_id, topic, partition_key, octet_length(payload) AS bytes, error FROM concordat.outbox_failed ORDER BY seq`,
    );
    expect(failed).toEqual([
      {
        message_id: 'a2-too-big',
        topic,
        partition_key: 'a',
        bytes: 2 * 1024 * 1024,
        error: expect.stringContaining("exceeds the topic's maxMessageBytes (1048588)"),
      },
      {
        message_id: 'b1-bad-topic',
        topic: 'bad topic!',
        partition_key: 'b',
        bytes: 10,
        error: `ConcordatError: Topic name "bad topic!" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'`,
      },
    ]);
    expect(await registry.metrics()).toContain('concordat_outbox_failed_total{relay="relay-poison"} 2');
  });
});
