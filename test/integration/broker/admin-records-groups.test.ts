import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Kafka, logLevel, type Admin } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Reader } from '../../../src/broker/codec/reader.js';
import { Writer } from '../../../src/broker/codec/writer.js';
import { until } from '../../../src/testing/index.js';
import { consumeCount, connect, disconnect, loadRdKafka, type RdConsumer } from '../../support/rdkafka.js';
import { DEBIAN_PYTHON, startTestBroker, testNeedsTools, uniqueName, type TestBroker } from './helpers/broker.js';
import { RawClient } from './helpers/raw-client.js';

/**
 * DeleteRecords (kafkajs `deleteTopicRecords`, raw frames), DeleteGroups
 * (kafkajs `deleteGroups`, kafka-python `delete_consumer_groups`),
 * OffsetDelete, DescribeCluster and DescribeLogDirs (raw frames: kafkajs
 * and node-rdkafka do not expose them).
 */
const run = promisify(execFile);

let t: TestBroker;
let kafka: Kafka;
let admin: Admin;

beforeAll(async () => {
  t = await startTestBroker();
  kafka = new Kafka({ brokers: [t.bootstrap], clientId: 'records-groups-test', logLevel: logLevel.NOTHING });
  admin = kafka.admin();
  await admin.connect();
});

afterAll(async () => {
  await admin?.disconnect();
  await t?.stop();
});

async function produceValues(topic: string, values: string[], partition = 0): Promise<void> {
  const producer = kafka.producer();
  await producer.connect();
  try {
    for (const value of values) await producer.send({ topic, messages: [{ value, partition }] });
  } finally {
    await producer.disconnect();
  }
}

describe('DeleteRecords', () => {
  it('kafkajs deleteTopicRecords moves the log start: ListOffsets earliest follows, a consumer from the beginning starts there', async () => {
    const topic = uniqueName('delete-records');
    await admin.createTopics({ topics: [{ topic }] });
    await produceValues(topic, ['r0', 'r1', 'r2', 'r3', 'r4']);
    // kafkajs finds the partition's leader in the metadata it has cached: load it first.
    await admin.fetchTopicMetadata({ topics: [topic] });
    await admin.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: '3' }] });
    expect(await admin.fetchTopicOffsets(topic)).toMatchObject([{ partition: 0, low: '3', high: '5' }]);
    const consumer = kafka.consumer({ groupId: uniqueName('after-delete') });
    const seen: string[] = [];
    await consumer.connect();
    try {
      await consumer.subscribe({ topic, fromBeginning: true });
      await consumer.run({ eachMessage: async ({ message }) => void seen.push(`${message.offset}:${message.value?.toString()}`) });
      await until(() => seen.length >= 2, { timeoutMs: 20_000, message: 'two records consumed' });
    } finally {
      await consumer.disconnect();
    }
    expect(seen).toEqual(['3:r3', '4:r4']);
  });

  it('raw v1: -1 is the high watermark, a lower offset changes nothing, above the high watermark is OFFSET_OUT_OF_RANGE; durable across a restart', async () => {
    const broker = await startTestBroker();
    const topic = uniqueName('raw-delete');
    const client = await RawClient.connect(broker.port);
    try {
      await broker.broker.logManager.createTopic(topic, { partitions: 3 });
      for (const value of ['a', 'b', 'c', 'd']) await broker.broker.logManager.appendRecords(topic, 0, [{ key: null, value: Buffer.from(value) }]);
      await broker.broker.logManager.appendRecords(topic, 1, [{ key: null, value: Buffer.from('e') }]);
      const body = (partitions: [number, number][]) =>
        new Writer()
          .array([topic], (w, name) => w.string(name).array(partitions, (pw, [p, offset]) => pw.int32(p).int64(offset)))
          .int32(5000)
          .toBuffer();
      const answer = async (partitions: [number, number][]) => {
        const r = new Reader(await client.request(21, 1, body(partitions)));
        expect(r.int32()).toBe(0);
        return r.array((x) => [x.string(), x.array((p) => [p.int32(), p.int64(), p.int16()])]);
      };
      expect(
        await answer([
          [0, 2],
          [1, -1],
          [2, 1],
          [7, 0],
        ]),
      ).toEqual([
        [
          topic,
          [
            [0, 2, 0],
            [1, 1, 0],
            [2, -1, 1],
            [7, -1, 3],
          ],
        ],
      ]);
      expect(await answer([[0, 1]])).toEqual([[topic, [[0, 2, 0]]]]);
      // A Fetch below the new start gets OFFSET_OUT_OF_RANGE.
      await expect(broker.broker.logManager.read(topic, 0, 1, { maxBytes: 1024 })).rejects.toMatchObject({ code: 'OFFSET_OUT_OF_RANGE' });
      client.close();
      await broker.broker.close();
      const again = await startTestBroker({ dataDir: broker.dataDir });
      try {
        expect(again.broker.logManager.describePartition(topic, 0)).toMatchObject({ logStartOffset: 2, highWatermark: 4 });
        expect(again.broker.logManager.describePartition(topic, 1)).toMatchObject({ logStartOffset: 1, highWatermark: 1 });
        const offsets = await new Kafka({ brokers: [again.bootstrap], logLevel: logLevel.NOTHING }).admin();
        await offsets.connect();
        try {
          expect((await offsets.fetchTopicOffsets(topic)).map((o) => [o.partition, o.low, o.high])).toEqual([
            [0, '2', '4'],
            [1, '1', '1'],
            [2, '0', '0'],
          ]);
        } finally {
          await offsets.disconnect();
        }
      } finally {
        await again.stop();
      }
    } finally {
      client.close();
      await broker.broker.close();
    }
  });

  it('a librdkafka consumer at an offset below the new start gets OFFSET_OUT_OF_RANGE and resets to the start', async (context) => {
    testNeedsTools(context, 'node-rdkafka');
    const topic = uniqueName('rd-below-start');
    await admin.createTopics({ topics: [{ topic }] });
    await produceValues(topic, ['s0', 's1', 's2', 's3']);
    await admin.fetchTopicMetadata({ topics: [topic] });
    await admin.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: '2' }] });
    const { KafkaConsumer } = loadRdKafka();
    const consumer: RdConsumer = new KafkaConsumer(
      { 'bootstrap.servers': t.bootstrap, 'group.id': uniqueName('rd-below'), 'enable.auto.commit': false },
      { 'auto.offset.reset': 'earliest' },
    );
    await connect(consumer);
    try {
      consumer.assign([{ topic, partition: 0, offset: 0 }]);
      const got = await consumeCount(consumer, 2);
      expect(got.map((m) => [m.offset, m.value?.toString()])).toEqual([
        [2, 's2'],
        [3, 's3'],
      ]);
    } finally {
      await disconnect(consumer);
    }
  });
});

describe('DeleteRecords with kcat (librdkafka 2.0.2)', () => {
  it('a consumer at an offset below the new start gets OFFSET_OUT_OF_RANGE, resets to the start and reads from there', async (context) => {
    testNeedsTools(context, 'kcat');
    const topic = uniqueName('kcat-below-start');
    await admin.createTopics({ topics: [{ topic }] });
    await produceValues(topic, ['k0', 'k1', 'k2', 'k3']);
    await admin.fetchTopicMetadata({ topics: [topic] });
    await admin.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: '2' }] });
    const { stdout, stderr } = await run(
      'kcat',
      ['-b', t.bootstrap, '-C', '-t', topic, '-p', '0', '-o', '0', '-e', '-d', 'fetch', '-f', '%o %s\\n', '-X', 'auto.offset.reset=earliest'],
      {
        timeout: 30_000,
      },
    );
    expect(stderr).toContain('offset reset (at offset 0, broker 1) to BEGINNING');
    expect(stdout).toBe('2 k2\n3 k3\n');
  });
});

describe('DeleteGroups and OffsetDelete', () => {
  async function commitAsGroup(groupId: string, topic: string, partitions: number[]): Promise<void> {
    await admin.setOffsets({ groupId, topic, partitions: partitions.map((partition) => ({ partition, offset: '1' })) });
  }

  it('kafkajs deleteGroups deletes an empty group with its offsets and refuses one with members (NON_EMPTY_GROUP)', async () => {
    const topic = uniqueName('groups-topic');
    await admin.createTopics({ topics: [{ topic }] });
    await produceValues(topic, ['g0', 'g1']);
    const empty = uniqueName('empty-group');
    await commitAsGroup(empty, topic, [0]);
    const active = uniqueName('active-group');
    const consumer = kafka.consumer({ groupId: active });
    let joined = false;
    consumer.on(consumer.events.GROUP_JOIN, () => {
      joined = true;
    });
    let consumed = 0;
    await consumer.connect();
    try {
      await consumer.subscribe({ topic, fromBeginning: true });
      await consumer.run({ eachMessage: async () => void (consumed += 1) });
      await until(() => joined && consumed === 2, { timeoutMs: 20_000, message: 'the consumer joined its group and read both records' });
      await expect(admin.deleteGroups([empty, active])).rejects.toMatchObject({
        name: 'KafkaJSDeleteGroupsError',
        groups: [{ groupId: active, errorCode: 68 }],
      });
      expect(t.broker.logManager.groups.describeGroup(empty).state).toBe('Dead');
      expect(await admin.fetchOffsets({ groupId: empty, topics: [topic] })).toEqual([{ topic, partitions: [{ partition: 0, offset: '-1', metadata: null }] }]);
      await expect(admin.deleteGroups([uniqueName('never')])).rejects.toMatchObject({ groups: [{ errorCode: 69 }] });
    } finally {
      await consumer.disconnect();
    }
    // Its last member left; it committed offsets, so it stays, Empty (a group without offsets would be gone, Dead).
    expect(t.broker.logManager.groups.describeGroup(active).state).toBe('Empty');
    expect(await admin.deleteGroups([active])).toEqual([{ groupId: active, errorCode: 0 }]);
    expect(t.broker.logManager.groups.describeGroup(active).state).toBe('Dead');
  });

  it('kafka-python delete_consumer_groups', async (context) => {
    testNeedsTools(context, 'kafka-python');
    const topic = uniqueName('py-groups');
    await admin.createTopics({ topics: [{ topic }] });
    const group = uniqueName('py-group');
    await commitAsGroup(group, topic, [0]);
    const script = `
from kafka.admin import KafkaAdminClient
a = KafkaAdminClient(bootstrap_servers='${t.bootstrap}')
print(sorted((g, e.__name__) for g, e in a.delete_consumer_groups(['${group}'])))
`;
    const { stdout } = await run(DEBIAN_PYTHON, ['-c', script], { timeout: 60_000 });
    expect(stdout.trim()).toBe(`[('${group}', 'NoError')]`);
    expect(t.broker.logManager.groups.describeGroup(group).state).toBe('Dead');
  });

  it('OffsetDelete v0: removes an empty group offsets durably per partition; unknown group and topic are refused', async () => {
    const topic = uniqueName('offset-delete');
    await admin.createTopics({ topics: [{ topic, numPartitions: 2 }] });
    const group = uniqueName('od-group');
    await commitAsGroup(group, topic, [0, 1]);
    const client = await RawClient.connect(t.port);
    try {
      const body = (groupId: string, topics: [string, number[]][]) =>
        new Writer()
          .string(groupId)
          .array(topics, (w, [name, partitions]) => w.string(name).array(partitions, (pw, p) => pw.int32(p)))
          .toBuffer();
      const answer = async (groupId: string, topics: [string, number[]][]) => {
        const r = new Reader(await client.request(47, 0, body(groupId, topics)));
        const errorCode = r.int16();
        expect(r.int32()).toBe(0);
        return [errorCode, r.array((x) => [x.string(), x.array((p) => [p.int32(), p.int16()])])];
      };
      const missing = uniqueName('no-topic');
      expect(
        await answer(group, [
          [topic, [0, 5]],
          [missing, [0]],
        ]),
      ).toEqual([
        0,
        [
          [
            topic,
            [
              [0, 0],
              [5, 3],
            ],
          ],
          [missing, [[0, 3]]],
        ],
      ]);
      expect(await admin.fetchOffsets({ groupId: group, topics: [topic] })).toEqual([
        {
          topic,
          partitions: [
            { partition: 0, offset: '-1', metadata: null },
            { partition: 1, offset: '1', metadata: null },
          ],
        },
      ]);
      expect(await answer(uniqueName('no-group'), [[topic, [0]]])).toEqual([69, []]);
    } finally {
      client.close();
    }
  });

  it('OffsetDelete on a consumer group with members keeps the offsets of topics it subscribes to (GROUP_SUBSCRIBED_TO_TOPIC)', async () => {
    const subscribed = uniqueName('subscribed');
    const other = uniqueName('other');
    await admin.createTopics({ topics: [{ topic: subscribed }, { topic: other }] });
    const group = uniqueName('od-active');
    await commitAsGroup(group, other, [0]);
    const consumer = kafka.consumer({ groupId: group });
    let joined = false;
    consumer.on(consumer.events.GROUP_JOIN, () => {
      joined = true;
    });
    const client = await RawClient.connect(t.port);
    await consumer.connect();
    try {
      await consumer.subscribe({ topic: subscribed });
      await consumer.run({ eachMessage: async () => {} });
      await until(() => joined, { timeoutMs: 20_000, message: 'the consumer joined its group' });
      const body = new Writer()
        .string(group)
        .array([subscribed, other], (w, name) => w.string(name).array([0], (pw, p) => pw.int32(p)))
        .toBuffer();
      const r = new Reader(await client.request(47, 0, body));
      expect([r.int16(), r.int32()]).toEqual([0, 0]);
      expect(r.array((x) => [x.string(), x.array((p) => [p.int32(), p.int16()])])).toEqual([
        [subscribed, [[0, 86]]],
        [other, [[0, 0]]],
      ]);
    } finally {
      client.close();
      await consumer.disconnect();
    }
  });
});

describe('DescribeCluster and DescribeLogDirs', () => {
  it('DescribeCluster v0 (flexible): cluster ID, this broker as controller, its advertised address', async () => {
    const client = await RawClient.connect(t.port);
    try {
      for (const [include, operations] of [
        [false, -2147483648],
        [true, 8096],
      ] as const) {
        client.send(60, 0, 3, new Writer().boolean(include).emptyTaggedFields().toBuffer(), true);
        const r = new Reader(await client.readFrame());
        expect(r.int32()).toBe(3);
        r.taggedFields();
        expect([r.int32(), r.int16(), r.compactNullableString(), r.compactString(), r.int32()]).toEqual([0, 0, null, 'concordat', 1]);
        expect(
          r.compactArray((b) => {
            const broker = [b.int32(), b.compactString(), b.int32(), b.compactNullableString()];
            b.taggedFields();
            return broker;
          }),
        ).toEqual([[1, '127.0.0.1', t.port, null]]);
        expect(r.int32()).toBe(operations);
      }
    } finally {
      client.close();
    }
  });

  it('DescribeLogDirs v1: the data directory and the size of each partition asked for (all with null)', async () => {
    const topic = uniqueName('log-dirs');
    await admin.createTopics({ topics: [{ topic, numPartitions: 2 }] });
    await produceValues(topic, ['some bytes'], 1);
    const size = t.broker.logManager.describePartition(topic, 1).sizeBytes;
    expect(size).toBeGreaterThan(0);
    const client = await RawClient.connect(t.port);
    try {
      const ask = async (topics: [string, number[]][] | null) => {
        const body = new Writer().nullableArray(topics, (w, [name, partitions]) => w.string(name).array(partitions, (pw, p) => pw.int32(p))).toBuffer();
        const r = new Reader(await client.request(35, 1, body));
        expect(r.int32()).toBe(0);
        return r.array((x) => [x.int16(), x.string(), x.array((tr) => [tr.string(), tr.array((p) => [p.int32(), p.int64(), p.int64(), p.boolean()])])]);
      };
      expect(
        await ask([
          [topic, [1, 9]],
          [uniqueName('absent'), [0]],
        ]),
      ).toEqual([[0, t.dataDir, [[topic, [[1, size, 0, false]]]]]]);
      const all = (await ask(null))[0]![2] as [string, unknown[]][];
      expect(all.find(([name]) => name === topic)).toEqual([
        topic,
        [
          [0, 0, 0, false],
          [1, size, 0, false],
        ],
      ]);
    } finally {
      client.close();
    }
  });
});
