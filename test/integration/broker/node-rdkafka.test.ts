import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeRecordBatches, type CompressionType } from '../../../src/log/index.js';
import {
  connect,
  consumeCount,
  disconnect,
  loadRdKafka,
  messageLine,
  metadata,
  produceAll,
  type RdConfig,
  type RdConsumer,
  type RdKafkaError,
  type RdProducer,
  type RdRecord,
} from '../../support/rdkafka.js';
import { fileNeedsTools, startTestBroker, testNeedsTools, uniqueName, type TestBroker } from './helpers/broker.js';

/**
 * librdkafka through node-rdkafka (librdkafka 2.12, built by `npm ci` from
 * the source node-rdkafka bundles) against `concordat broker`: the scenarios
 * of kcat.test.ts (Debian's kcat links librdkafka 2.0.2) without a Debian
 * package. Keyed records with headers at exact offsets, every codec, the
 * idempotent producer, a balanced group of two consumers, metadata.
 */
let t: TestBroker;
/** librdkafka's RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS: the error code of a rebalance that assigns. */
const ASSIGN_PARTITIONS = -175;
const toolsPresent = fileNeedsTools('node-rdkafka');

beforeAll(async () => {
  if (!toolsPresent) return;
  t = await startTestBroker({ autoCreateTopics: true, defaultPartitions: 3 });
});

afterAll(async () => {
  await t?.stop();
});

/** Runs `body` with a connected producer, disconnected afterwards. */
async function withProducer<T>(config: RdConfig, body: (producer: RdProducer) => Promise<T>): Promise<T> {
  const { Producer } = loadRdKafka();
  const producer = new Producer({ 'bootstrap.servers': t.bootstrap, dr_cb: true, 'socket.timeout.ms': 10_000, ...config });
  await connect(producer);
  try {
    return await body(producer);
  } finally {
    await disconnect(producer);
  }
}

/** Runs `body` with a connected consumer that commits only when told to, disconnected afterwards. */
async function withConsumer<T>(config: RdConfig, body: (consumer: RdConsumer) => Promise<T>): Promise<T> {
  const { KafkaConsumer } = loadRdKafka();
  const consumer = new KafkaConsumer(
    { 'bootstrap.servers': t.bootstrap, 'group.id': uniqueName('rdkafka-reader'), 'enable.auto.commit': false, ...config },
    { 'auto.offset.reset': 'earliest' },
  );
  await connect(consumer);
  try {
    return await body(consumer);
  } finally {
    await disconnect(consumer);
  }
}

/** Reads partition `partition` of `topic` from offset 0 until `count` messages arrived, as {@link messageLine}s. */
function readPartition(topic: string, partition: number, count: number): Promise<string[]> {
  return withConsumer({}, async (consumer) => {
    consumer.assign([{ topic, partition, offset: 0 }]);
    return (await consumeCount(consumer, count)).map(messageLine);
  });
}

async function storedBatches(topic: string, partition: number) {
  const { records } = await t.broker.logManager.read(topic, partition, 0, { maxBytes: 10 * 1024 * 1024 });
  return decodeRecordBatches(records);
}

describe('node-rdkafka', () => {
  it('produces keyed records with headers and consumes them back with their partitions and offsets', async () => {
    const topic = uniqueName('rdkafka');
    const records = Array.from({ length: 30 }, (_, i): RdRecord => ({
      topic,
      partition: 1,
      key: i === 7 ? null : `key${i}`,
      value: i === 9 ? null : `value ${i}`,
      headers: i % 2 === 0 ? { ce_id: `id-${i}`, ce_type: 'test' } : {},
    }));
    const reports = await withProducer({ acks: 'all' }, (producer) => produceAll(producer, records));
    expect(reports.map((r) => `${r.partition}:${r.offset}`)).toEqual(records.map((_, i) => `1:${i}`));
    const lines = await readPartition(topic, 1, 30);
    expect(lines).toEqual(records.map((r, i) => `1|${i}|${r.key ?? '∅'}|${r.value ?? '∅'}|${i % 2 === 0 ? `ce_id=id-${i},ce_type=test` : ''}`));
    // Auto-created with the broker's default partition count; the other partitions stay empty.
    expect(t.broker.logManager.describeTopic(topic).partitions.map((p) => p.highWatermark)).toEqual([0, 30, 0]);
  });

  for (const codec of ['none', 'gzip', 'snappy', 'lz4', 'zstd'] as const satisfies readonly CompressionType[]) {
    it(`compression.codec=${codec}: the broker stores the batches as sent and serves them back`, async (context) => {
      // librdkafka has zstd only where libzstd's headers were there when npm built it.
      if (codec === 'zstd') testNeedsTools(context, 'node-rdkafka-zstd');
      const topic = uniqueName(`rdkafka-${codec}`);
      const records = Array.from({ length: 200 }, (_, i) => ({
        topic,
        partition: 0,
        key: `k${i % 7}`,
        value: `${codec} record ${i} ${'x'.repeat(100)}`,
        headers: { n: String(i) },
      }));
      const reports = await withProducer({ 'compression.codec': codec, 'linger.ms': 100 }, (producer) => produceAll(producer, records));
      expect(reports.map((r) => r.offset)).toEqual(records.map((_, i) => i));
      const batches = await storedBatches(topic, 0);
      expect(batches.length).toBeGreaterThan(0);
      expect(new Set(batches.map((b) => b.compression))).toEqual(new Set([codec]));
      expect(
        batches.flatMap((b) =>
          b.records.map((r) => `${r.offset}|${r.key?.toString()}|${r.value?.toString()}|${r.headers.map((h) => `${h.key}=${h.value?.toString()}`).join(',')}`),
        ),
      ).toEqual(records.map((r, i) => `${i}|${r.key}|${r.value}|n=${i}`));
      expect(await readPartition(topic, 0, 200)).toEqual(records.map((r, i) => `0|${i}|${r.key}|${r.value}|n=${i}`));
    });
  }

  it('the idempotent producer (acks=all): every record acknowledged once, at consecutive offsets, under one producer ID', async () => {
    const topic = uniqueName('rdkafka-idempotent');
    const records = Array.from({ length: 300 }, (_, i) => ({ topic, partition: i % 3, key: `k${i}`, value: `v${i}` }));
    const reports = await withProducer(
      { 'enable.idempotence': true, acks: 'all', 'linger.ms': 5, 'batch.num.messages': 25, 'max.in.flight.requests.per.connection': 5 },
      (producer) => produceAll(producer, records),
    );
    // produceAll rejects a record reported twice; here each partition's offsets are 0..99 in produce order.
    for (let p = 0; p < 3; p += 1) {
      expect(reports.filter((r) => r.partition === p).map((r) => r.offset)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    }
    const stored = (await Promise.all([0, 1, 2].map((p) => storedBatches(topic, p)))).flat();
    const producerIds = new Set(stored.map((b) => b.producerId));
    expect(producerIds.size).toBe(1);
    expect([...producerIds][0]).toBeGreaterThanOrEqual(0);
    // Sequences run on without a gap or a repeat in each partition.
    for (let p = 0; p < 3; p += 1) {
      const batches = await storedBatches(topic, p);
      let next = 0;
      for (const b of batches) {
        expect(b.baseSequence).toBe(next);
        next += b.recordsCount;
      }
      expect(next).toBe(100);
    }
  });

  it('a balanced group of two consumers reads every record once and commits where it stopped', async () => {
    const topic = uniqueName('rdkafka-group');
    const group = uniqueName('rdkafka-group');
    const values = Array.from({ length: 90 }, (_, i) => `v${i}`);
    await withProducer({}, (producer) =>
      produceAll(
        producer,
        values.map((value, i) => ({ topic, partition: i % 3, value })),
      ),
    );
    const assignments: string[][] = [[], []];
    const { KafkaConsumer } = loadRdKafka();
    const members = [0, 1].map(
      (m) =>
        new KafkaConsumer(
          {
            'bootstrap.servers': t.bootstrap,
            'group.id': group,
            // librdkafka commits what was read every 200 ms, before giving up partitions in a rebalance,
            // and when the consumer closes (node-rdkafka's commitSync would block this process's event
            // loop, which serves the broker).
            'enable.auto.commit': true,
            'auto.commit.interval.ms': 200,
            'session.timeout.ms': 6000,
            'heartbeat.interval.ms': 500,
            // node-rdkafka assigns and revokes itself, and emits 'rebalance' for each.
            rebalance_cb: true,
          },
          { 'auto.offset.reset': 'earliest' },
        ),
    );
    members.forEach((c, m) =>
      c.on('rebalance', ((err: RdKafkaError, partitions: Array<{ partition: number }>) => {
        assignments[m]!.push(`${err.code === ASSIGN_PARTITIONS ? 'assign' : 'revoke'}:${partitions.map((p) => p.partition).join(',')}`);
      }) as (...args: never[]) => void),
    );
    try {
      await Promise.all(members.map((c) => connect(c)));
      for (const c of members) c.subscribe([topic]);
      // Both members read until the group has all 90 and each member has been given partitions: whichever
      // holds a partition reads it. (The first to join may read everything before the second is in the group;
      // the rebalance that follows must then hand over committed positions, so nothing is read twice.)
      const seen: string[] = [];
      const deadline = Date.now() + 60_000;
      const balanced = (): boolean => assignments.every((events) => events.some((e) => e.startsWith('assign:') && e !== 'assign:'));
      const read = async (c: RdConsumer): Promise<void> => {
        c.setDefaultConsumeTimeout(100);
        while ((seen.length < 90 || !balanced()) && Date.now() < deadline) {
          const batch = await new Promise<string[]>((resolve, reject) =>
            c.consume(50, (err, messages) => (err ? reject(err) : resolve(messages.map(messageLine)))),
          );
          seen.push(...batch);
        }
      };
      await Promise.all(members.map(read));
      expect(seen.map((line) => line.split('|')[3]).sort()).toEqual([...values].sort());
      expect(new Set(seen).size).toBe(90);
      // Each member was given partitions: the group was balanced between them.
      expect(balanced()).toBe(true);
    } finally {
      await Promise.all(members.map((c) => disconnect(c)));
    }
    // The group committed its position at the end of each partition.
    const offsets = await t.broker.logManager.groups.fetchOffsets({ groupId: group, topics: [{ topic, partitions: [0, 1, 2] }] });
    expect(offsets.topics[0]!.partitions.map((p) => p.offset)).toEqual([30, 30, 30]);
    // A new member of the same group starts from the committed offsets: only the late record is left.
    await withProducer({}, (producer) => produceAll(producer, [{ topic, partition: 2, value: 'late' }]));
    const again = await withConsumer({ 'group.id': group }, async (consumer) => {
      consumer.subscribe([topic]);
      return (await consumeCount(consumer, 1, 45_000)).map(messageLine);
    });
    expect(again).toEqual(['2|30|∅|late|']);
  });

  it('metadata lists the broker and the topic with its partitions', async () => {
    const topic = uniqueName('rdkafka-meta');
    await t.broker.logManager.createTopic(topic, { partitions: 2 });
    const described = await withProducer({}, (producer) => metadata(producer, topic));
    expect(described.brokers).toEqual([{ id: 1, host: '127.0.0.1', port: t.port }]);
    expect(described.topics.find((x) => x.name === topic)?.partitions.map((p) => ({ id: p.id, leader: p.leader, replicas: p.replicas, isrs: p.isrs }))).toEqual(
      [
        { id: 0, leader: 1, replicas: [1], isrs: [1] },
        { id: 1, leader: 1, replicas: [1], isrs: [1] },
      ],
    );
  });
});
