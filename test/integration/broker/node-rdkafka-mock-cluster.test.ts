import { Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, consumeCount, disconnect, loadRdKafka, messageLine, produceAll, type RdConfig } from '../../support/rdkafka.js';
import { startMockCluster, type MockCluster } from '../transport/helpers/mock-cluster.js';
import { fileNeedsTools, startTestBroker, uniqueName, type TestBroker } from './helpers/broker.js';

/**
 * Differential runs with librdkafka 2.12 (node-rdkafka) as the client: the
 * same scenarios against `concordat broker` and against librdkafka's mock
 * cluster (3 brokers, hosted by node-rdkafka), comparing what the client
 * observes. mock-cluster.test.ts does the same with kcat (librdkafka 2.0.2)
 * and kafkajs. Both create topics on first use with 4 partitions.
 */
const PARTITIONS = 4;

interface Target {
  name: string;
  bootstrap: string;
}

let concordat: TestBroker;
let mock: MockCluster;
let targets: Target[];
const toolsPresent = fileNeedsTools('node-rdkafka');

beforeAll(async () => {
  if (!toolsPresent) return;
  concordat = await startTestBroker({ autoCreateTopics: true, defaultPartitions: PARTITIONS });
  mock = await startMockCluster(3);
  targets = [
    { name: 'concordat', bootstrap: concordat.bootstrap },
    { name: 'mock', bootstrap: mock.brokers.join(',') },
  ];
});

afterAll(async () => {
  await mock?.stop();
  await concordat?.stop();
});

/** Runs `scenario` against each target in turn and returns both observations. */
async function onBoth<T>(scenario: (target: Target, topic: string) => Promise<T>): Promise<{ concordat: T; mock: T }> {
  const topic = uniqueName('rdkafka-diff');
  const a = await scenario(targets[0]!, topic);
  const b = await scenario(targets[1]!, topic);
  return { concordat: a, mock: b };
}

async function produce(target: Target, config: RdConfig, records: Parameters<typeof produceAll>[1]): Promise<string[]> {
  const { Producer } = loadRdKafka();
  const producer = new Producer({ 'bootstrap.servers': target.bootstrap, dr_cb: true, ...config });
  try {
    await connect(producer);
    return (await produceAll(producer, records)).map((r) => `${r.partition}:${r.offset}`);
  } finally {
    await disconnect(producer);
  }
}

describe('node-rdkafka against concordat broker and librdkafka mock cluster', () => {
  it('produce with keys and headers (acks all), then read a partition: the same offsets and records', async () => {
    const seen = await onBoth(async (target, topic) => {
      const records = Array.from({ length: 25 }, (_, i) => ({ topic, partition: 2, key: `k${i}`, value: `value-${i}`, headers: { ce_id: `id-${i}` } }));
      const acks = await produce(target, { acks: 'all' }, records);
      const { KafkaConsumer } = loadRdKafka();
      const consumer = new KafkaConsumer({ 'bootstrap.servers': target.bootstrap, 'group.id': uniqueName('diff-reader'), 'enable.auto.commit': false });
      try {
        await connect(consumer);
        consumer.assign([{ topic, partition: 2, offset: 0 }]);
        return { acks, records: (await consumeCount(consumer, 25)).map(messageLine) };
      } finally {
        await disconnect(consumer);
      }
    });
    expect(seen.concordat).toEqual(seen.mock);
    expect(seen.concordat.records[24]).toBe('2|24|k24|value-24|ce_id=id-24');
  });

  it('the idempotent producer: every record acknowledged once, at the same offsets', async () => {
    const seen = await onBoth((target, topic) =>
      produce(
        target,
        { 'enable.idempotence': true, acks: 'all', 'batch.num.messages': 10 },
        Array.from({ length: 80 }, (_, i) => ({ topic, partition: i % PARTITIONS, value: `v${i}` })),
      ),
    );
    expect(seen.concordat).toEqual(seen.mock);
    expect(seen.concordat.slice(0, 5)).toEqual(['0:0', '1:0', '2:0', '3:0', '0:1']);
  });

  it('a group consumer: the same records and the same committed offsets', async () => {
    const seen = await onBoth(async (target, topic) => {
      await produce(
        target,
        {},
        Array.from({ length: 12 }, (_, i) => ({ topic, partition: i % PARTITIONS, value: `p${i % PARTITIONS}-${i}` })),
      );
      const group = uniqueName('diff-group');
      const { KafkaConsumer } = loadRdKafka();
      // Auto commit: librdkafka commits what was read when the consumer closes.
      const consumer = new KafkaConsumer(
        { 'bootstrap.servers': target.bootstrap, 'group.id': group, 'session.timeout.ms': 6000 },
        { 'auto.offset.reset': 'earliest' },
      );
      let records: string[];
      try {
        await connect(consumer);
        consumer.subscribe([topic]);
        records = (await consumeCount(consumer, 12, 45_000)).map(messageLine).sort();
      } finally {
        await disconnect(consumer);
      }
      const admin = new Kafka({ brokers: target.bootstrap.split(','), clientId: 'diff', logLevel: logLevel.NOTHING }).admin();
      await admin.connect();
      const [offsets] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
      await admin.disconnect();
      return { records, committed: offsets!.partitions.map((p) => `${p.partition}:${p.offset}`).sort() };
    });
    expect(seen.concordat).toEqual(seen.mock);
    expect(seen.concordat.records).toHaveLength(12);
    expect(seen.concordat.committed).toEqual(['0:3', '1:3', '2:3', '3:3']);
  });
});
