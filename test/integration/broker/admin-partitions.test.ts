import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Kafka, logLevel, type Admin, type Consumer, type Producer } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Reader } from '../../../src/broker/codec/reader.js';
import { Writer } from '../../../src/broker/codec/writer.js';
import { until } from '../../../src/testing/index.js';
import { connect, consumeCount, disconnect, loadRdKafka, type RdAdminClient, type RdConsumer, type RdKafkaError } from '../../support/rdkafka.js';
import { DEBIAN_PYTHON, startTestBroker, testNeedsTools, uniqueName, type TestBroker } from './helpers/broker.js';
import { RawClient } from './helpers/raw-client.js';

/**
 * CreatePartitions (key 37) with real clients: kafkajs's `createPartitions`,
 * librdkafka's (node-rdkafka's AdminClient), kafka-python's
 * `create_partitions`. The new partitions take records, the old ones keep
 * theirs at the same offsets, Metadata shows the new count, the count
 * survives a restart, and consumer groups (kafkajs, librdkafka) rebalance
 * onto the new partitions.
 */
const run = promisify(execFile);

let t: TestBroker;
let kafka: Kafka;
let admin: Admin;

beforeAll(async () => {
  t = await startTestBroker();
  kafka = new Kafka({ brokers: [t.bootstrap], clientId: 'partitions-test', logLevel: logLevel.NOTHING });
  admin = kafka.admin();
  await admin.connect();
});

afterAll(async () => {
  await admin?.disconnect();
  await t?.stop();
});

/**
 * Sends with a fresh kafkajs producer: a producer's cached metadata does not
 * know partitions added after it loaded it, and kafkajs drops (without an
 * error) messages for a partition its metadata does not list.
 */
async function send(topic: string, messages: { value: string; partition: number }[]): Promise<{ partition: number; baseOffset?: string }[]> {
  const producer: Producer = kafka.producer();
  await producer.connect();
  try {
    return await producer.send({ topic, messages });
  } finally {
    await producer.disconnect();
  }
}

async function partitionCount(topic: string): Promise<number> {
  const { topics } = await admin.fetchTopicMetadata({ topics: [topic] });
  return topics[0]!.partitions.length;
}

describe('CreatePartitions with kafkajs', () => {
  it('grows a topic: old partitions keep their records and offsets, new ones take records, Metadata shows the count', async () => {
    const topic = uniqueName('grow');
    await admin.createTopics({ topics: [{ topic, numPartitions: 2 }] });
    await send(topic, [
      { value: 'a', partition: 0 },
      { value: 'b', partition: 1 },
      { value: 'c', partition: 1 },
    ]);
    await admin.createPartitions({ topicPartitions: [{ topic, count: 5 }] });
    expect(await partitionCount(topic)).toBe(5);
    expect(t.broker.logManager.partitionCount(topic)).toBe(5);
    expect(await send(topic, [{ value: 'd', partition: 4 }])).toMatchObject([{ partition: 4, baseOffset: '0' }]);
    const offsets = await admin.fetchTopicOffsets(topic);
    expect(offsets.map((o) => [o.partition, o.low, o.high])).toEqual([
      [0, '0', '1'],
      [1, '0', '2'],
      [2, '0', '0'],
      [3, '0', '0'],
      [4, '0', '1'],
    ]);
  });

  it('refuses a count that is not larger (INVALID_PARTITIONS) and an unknown topic, with reasons on the raw wire', async () => {
    const topic = uniqueName('fixed');
    await admin.createTopics({ topics: [{ topic, numPartitions: 3 }] });
    await expect(admin.createPartitions({ topicPartitions: [{ topic, count: 3 }] })).rejects.toMatchObject({ type: 'INVALID_PARTITIONS' });
    await expect(admin.createPartitions({ topicPartitions: [{ topic, count: 2 }] })).rejects.toMatchObject({ type: 'INVALID_PARTITIONS' });
    const client = await RawClient.connect(t.port);
    try {
      const missing = uniqueName('missing');
      const body = new Writer()
        .array(
          [
            [topic, 2, null],
            [missing, 4, null],
            [topic, 5, [[1]]],
            [topic, 4, [[7]]],
          ] as [string, number, number[][] | null][],
          (w, [name, count, assignments]) =>
            w
              .string(name)
              .int32(count)
              .nullableArray(assignments, (aw, brokers) => aw.array(brokers, (bw, b) => bw.int32(b))),
        )
        .int32(5000)
        .boolean(true)
        .toBuffer();
      const r = new Reader(await client.request(37, 1, body));
      expect(r.int32()).toBe(0);
      // A topic named twice in one request: both refused (INVALID_REQUEST), as Kafka.
      expect(r.array((x) => [x.string(), x.int16(), x.nullableString()])).toEqual([
        [topic, 42, `topic '${topic}' is named more than once`],
        [missing, 3, `topic '${missing}' does not exist`],
        [topic, 42, `topic '${topic}' is named more than once`],
        [topic, 42, `topic '${topic}' is named more than once`],
      ]);
      const single = (name: string, count: number, assignments: number[][] | null) =>
        new Writer()
          .array([0], (w) =>
            w
              .string(name)
              .int32(count)
              .nullableArray(assignments, (aw, brokers) => aw.array(brokers, (bw, b) => bw.int32(b))),
          )
          .int32(5000)
          .boolean(true)
          .toBuffer();
      const answer = async (body: Buffer) => {
        const reader = new Reader(await client.request(37, 0, body));
        reader.int32();
        return reader.array((x) => [x.string(), x.int16(), x.nullableString()].slice(1))[0];
      };
      expect(await answer(single(topic, 2, null))).toEqual([37, `topic '${topic}' has 3 partitions, more than the 2 asked for: partitions can only be added`]);
      expect(await answer(single(topic, 5, [[1]]))).toEqual([39, '1 assignments given for 2 new partitions']);
      expect(await answer(single(topic, 4, [[7]]))).toEqual([39, 'every new partition must be assigned to broker 1 alone (the one broker)']);
      expect(await answer(single(topic, 100_000, null))).toEqual([
        37,
        `topic '${topic}' cannot have 100000 partitions: at most 1000 (log option partitionsPerTopicMax)`,
      ]);
      // validate_only changes nothing.
      expect(await answer(single(topic, 4, [[1]]))).toEqual([0, null]);
      expect(t.broker.logManager.partitionCount(topic)).toBe(3);
    } finally {
      client.close();
    }
  });

  it('a kafkajs consumer group rebalances onto the new partitions and reads what lands there', async () => {
    const topic = uniqueName('group-grow');
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] });
    const consumerKafka = new Kafka({ brokers: [t.bootstrap], clientId: 'grow-consumer', logLevel: logLevel.NOTHING });
    const consumer: Consumer = consumerKafka.consumer({
      groupId: uniqueName('grow-group'),
      metadataMaxAge: 300,
      rebalanceTimeout: 10_000,
      sessionTimeout: 10_000,
    });
    const seen: string[] = [];
    await consumer.connect();
    try {
      await consumer.subscribe({ topic, fromBeginning: true });
      await consumer.run({ eachMessage: async ({ partition, message }) => void seen.push(`${partition}:${message.value?.toString()}`) });
      await send(topic, [{ value: 'before', partition: 0 }]);
      await until(() => seen.includes('0:before'), { timeoutMs: 20_000, message: 'the record on partition 0' });
      await admin.createPartitions({ topicPartitions: [{ topic, count: 3 }] });
      expect(
        await send(topic, [
          { value: 'new-1', partition: 1 },
          { value: 'new-2', partition: 2 },
        ]),
      ).toHaveLength(2);
      await until(() => seen.includes('1:new-1') && seen.includes('2:new-2'), { timeoutMs: 30_000, message: 'the records on the new partitions' });
    } finally {
      await consumer.disconnect();
    }
  });

  it('the partition count is durable: a restarted broker serves the grown topic', async () => {
    const restarting = await startTestBroker();
    const topic = uniqueName('durable-grow');
    const client = new Kafka({ brokers: [restarting.bootstrap], logLevel: logLevel.NOTHING }).admin();
    try {
      await client.connect();
      await client.createTopics({ topics: [{ topic, numPartitions: 1 }] });
      await client.createPartitions({ topicPartitions: [{ topic, count: 4 }] });
      await client.disconnect();
      await restarting.broker.close();
      const again = await startTestBroker({ dataDir: restarting.dataDir });
      try {
        expect(again.broker.logManager.partitionCount(topic)).toBe(4);
        expect(again.broker.logManager.describeTopic(topic).partitions.map((p) => p.logEndOffset)).toEqual([0, 0, 0, 0]);
      } finally {
        await again.stop();
      }
    } finally {
      await client.disconnect();
      await restarting.broker.close();
    }
  });
});

describe('CreatePartitions with librdkafka (node-rdkafka)', () => {
  const callAdmin = (body: (admin: RdAdminClient, cb: (err?: RdKafkaError) => void) => void) =>
    new Promise<void>((resolve, reject) => {
      const client = loadRdKafka().AdminClient.create({ 'bootstrap.servers': t.bootstrap });
      body(client, (err) => {
        client.disconnect();
        if (err) reject(err);
        else resolve();
      });
    });

  it('grows a topic, and refuses a count that is not larger with the broker message', async (context) => {
    testNeedsTools(context, 'node-rdkafka');
    const topic = uniqueName('rd-grow');
    await callAdmin((a, cb) => a.createTopic({ topic, num_partitions: 2, replication_factor: 1 }, 10_000, cb));
    await callAdmin((a, cb) => a.createPartitions(topic, 6, 10_000, cb));
    expect(t.broker.logManager.partitionCount(topic)).toBe(6);
    expect(await partitionCount(topic)).toBe(6);
    await expect(callAdmin((a, cb) => a.createPartitions(topic, 6, 10_000, cb))).rejects.toMatchObject({
      code: 37,
      message: `topic '${topic}' already has 6 partitions`,
    });
  });

  it('a librdkafka consumer group sees the new partitions and reads records produced there', async (context) => {
    testNeedsTools(context, 'node-rdkafka');
    const topic = uniqueName('rd-group-grow');
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] });
    const { KafkaConsumer } = loadRdKafka();
    const consumer: RdConsumer = new KafkaConsumer(
      { 'bootstrap.servers': t.bootstrap, 'group.id': uniqueName('rd-grow-group'), 'topic.metadata.refresh.interval.ms': 500, 'enable.auto.commit': false },
      { 'auto.offset.reset': 'earliest' },
    );
    await connect(consumer);
    try {
      consumer.subscribe([topic]);
      await send(topic, [{ value: 'p0', partition: 0 }]);
      expect((await consumeCount(consumer, 1)).map((m) => m.value?.toString())).toEqual(['p0']);
      await admin.createPartitions({ topicPartitions: [{ topic, count: 2 }] });
      await until(() => consumer.assignments().some((a) => a.partition === 1), { timeoutMs: 30_000, message: 'partition 1 assigned' });
      await send(topic, [{ value: 'p1', partition: 1 }]);
      // The rebalance hands partition 0 over again, and nothing was committed: its record may come again before p1.
      const got: string[] = [];
      await until(
        async () => {
          got.push(...(await consumeCount(consumer, 1)).map((m) => `${m.partition}:${m.offset}:${m.value?.toString()}`));
          return got.includes('1:0:p1');
        },
        { timeoutMs: 30_000, message: 'the record on partition 1' },
      );
      expect(got.filter((line) => !line.startsWith('0:'))).toEqual(['1:0:p1']);
    } finally {
      await disconnect(consumer);
    }
  });
});

describe('CreatePartitions seen by kcat (librdkafka 2.0.2)', () => {
  it('Metadata lists the new partitions, and kcat produces to one and reads it back', async (context) => {
    testNeedsTools(context, 'kcat');
    const topic = uniqueName('kcat-grow');
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] });
    await admin.createPartitions({ topicPartitions: [{ topic, count: 3 }] });
    const listed = await run('kcat', ['-b', t.bootstrap, '-L', '-t', topic, '-J'], { timeout: 30_000 });
    const parsed = JSON.parse(listed.stdout) as { topics: { topic: string; partitions: { partition: number }[] }[] };
    expect(parsed.topics.find((x) => x.topic === topic)!.partitions.map((p) => p.partition)).toEqual([0, 1, 2]);
    const produce = run('kcat', ['-b', t.bootstrap, '-P', '-t', topic, '-p', '2'], { timeout: 30_000 });
    produce.child.stdin!.end('on-two\n');
    await produce;
    const consumed = await run('kcat', ['-b', t.bootstrap, '-C', '-t', topic, '-p', '2', '-o', 'beginning', '-e', '-f', '%p %o %s\\n'], { timeout: 30_000 });
    expect(consumed.stdout).toBe('2 0 on-two\n');
  });
});

describe('CreatePartitions with kafka-python', () => {
  it('create_partitions grows a topic', async (context) => {
    testNeedsTools(context, 'kafka-python');
    const topic = uniqueName('py-grow');
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] });
    const script = `
from kafka.admin import KafkaAdminClient, NewPartitions
a = KafkaAdminClient(bootstrap_servers='${t.bootstrap}')
r = a.create_partitions({'${topic}': NewPartitions(3)})
print([(name, code) for name, code, message in r.topic_errors])
`;
    const { stdout } = await run(DEBIAN_PYTHON, ['-c', script], { timeout: 60_000 });
    expect(stdout.trim()).toBe(`[('${topic}', 0)]`);
    expect(t.broker.logManager.partitionCount(topic)).toBe(3);
  });
});
