import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { OutboxRelay } from '../../../src/outbox/index.js';
import { openDatabase, type Database } from '../../../src/persistence/index.js';
import { TransactionContext } from '../../../src/runtime/index.js';
import { until } from '../../../src/testing/index.js';
import { EmbeddedTransport, type Delivery, type OutgoingRecord, type PublishAck, type Transport } from '../../../src/transport/index.js';
import { createTestDatabase, type TestDatabase } from '../../support/database.js';

/** A seam for faults: delegates to the real transport, failing where told. */
class FaultyTransport implements Transport {
  readonly kind = 'embedded' as const;
  failBeforePublish = 0;
  failAfterPublish = 0;
  constructor(private readonly inner: Transport) {}
  connect(): Promise<void> {
    return this.inner.connect();
  }
  ensureTopics(topics: Parameters<Transport['ensureTopics']>[0]): Promise<void> {
    return this.inner.ensureTopics(topics);
  }
  async publish(records: OutgoingRecord[]): Promise<PublishAck[]> {
    if (this.failBeforePublish > 0) {
      this.failBeforePublish--;
      throw new Error('injected: log unreachable');
    }
    const acks = await this.inner.publish(records);
    if (this.failAfterPublish > 0) {
      this.failAfterPublish--;
      throw new Error('injected: acknowledgement lost');
    }
    return acks;
  }
  subscribe(options: Parameters<Transport['subscribe']>[0]): ReturnType<Transport['subscribe']> {
    return this.inner.subscribe(options);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

describe('outbox relay (real Postgres, real log)', () => {
  let testDb: TestDatabase;
  let db: Database;
  let dir: string;
  let transport: EmbeddedTransport;
  let faulty: FaultyTransport;
  let received: Delivery[];
  let relay: OutboxRelay | undefined;
  let topicNo = 0;
  let topic: string;

  beforeAll(async () => {
    testDb = await createTestDatabase('relay');
    db = await openDatabase({ url: testDb.url, poolSize: 4 });
    dir = await mkdtemp(join(tmpdir(), 'concordat-relay-'));
    transport = new EmbeddedTransport({ dataDir: dir });
    faulty = new FaultyTransport(transport);
  });
  afterAll(async () => {
    await relay?.stop();
    await transport.close();
    await db.close();
    await testDb.drop();
    await rm(dir, { recursive: true, force: true });
  });
  beforeEach(async () => {
    await relay?.stop();
    relay = undefined;
    topic = `relay-test-${topicNo++}`;
    received = [];
    await transport.ensureTopics([{ name: topic, partitions: 3 }]);
    await transport.subscribe({
      groupId: `reader-${topic}`,
      topics: [topic],
      handler: async (delivery) => {
        received.push(delivery);
      },
    });
  });

  async function publish(messages: Array<{ key: string; n: number }>): Promise<string[]> {
    return db.transaction(async (manager) => {
      const context = new TransactionContext(manager, 'relay-test');
      const ids = messages.map((m) => context.publish(topic, { n: m.n }, { key: m.key }));
      await context.flush();
      return ids;
    });
  }
  const outboxRows = async (): Promise<number> => Number((await db.dataSource.query(`SELECT count(*) AS n FROM concordat.outbox`))[0].n);
  const payloads = (key: string): number[] => received.filter((d) => d.key?.toString() === key).map((d) => JSON.parse(d.value!.toString()).n);

  it('is woken by NOTIFY at commit, publishes in key order, and deletes rows only after the durable ack', async () => {
    relay = new OutboxRelay(db, transport, { pollIntervalMs: 60_000, batchRowsMax: 7 });
    await relay.start();
    const started = Date.now();
    const ids = await publish(Array.from({ length: 30 }, (_, i) => ({ key: `k${i % 3}`, n: i })));
    await until(() => received.length === 30, { message: '30 delivered' });
    expect(Date.now() - started).toBeLessThan(5_000); // far below the 60 s poll: NOTIFY woke it
    expect(payloads('k0')).toEqual([0, 3, 6, 9, 12, 15, 18, 21, 24, 27]);
    expect(payloads('k1')).toEqual([1, 4, 7, 10, 13, 16, 19, 22, 25, 28]);
    expect(received.map((d) => d.headers.ce_id!.toString()).sort()).toEqual([...ids].sort());
    expect(received[0]!.headers.ce_source!.toString()).toBe('relay-test');
    await until(async () => (await outboxRows()) === 0, { message: 'the outbox emptied' });
  });

  it('keeps rows when the log is unreachable, and publishes them once it is back', async () => {
    faulty.failBeforePublish = 3;
    relay = new OutboxRelay(db, faulty, { pollIntervalMs: 50, retryBackoffMs: 10 });
    await publish([
      { key: 'a', n: 1 },
      { key: 'a', n: 2 },
    ]);
    await relay.start();
    await until(() => received.length === 2, { message: 'both delivered' });
    expect(faulty.failBeforePublish).toBe(0);
    expect(payloads('a')).toEqual([1, 2]);
    await until(async () => (await outboxRows()) === 0, { message: 'the outbox emptied' });
  });

  it('a lost acknowledgement yields a duplicate, never a loss', async () => {
    faulty.failAfterPublish = 1;
    relay = new OutboxRelay(db, faulty, { pollIntervalMs: 50, retryBackoffMs: 10 });
    const [id] = await publish([{ key: 'b', n: 7 }]);
    await relay.start();
    await until(() => received.length === 2, { message: 'both delivered' });
    expect(received.map((d) => d.headers.ce_id!.toString())).toEqual([id, id]);
    await until(async () => (await outboxRows()) === 0, { message: 'the outbox emptied' });
  });
});
