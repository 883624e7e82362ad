import { Kafka, logLevel, type Admin } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KafkaTransport, type TopicSpec } from '../../../src/transport/index.js';
import { transportContract, unique } from './contract.js';
import { startMockCluster, type MockCluster } from './helpers/mock-cluster.js';
import { fileNeedsTools } from '../../support/tools.js';

/**
 * The kafkajs transport against a cluster of three brokers we did not write:
 * librdkafka's mock cluster, hosted in this process by node-rdkafka. What it
 * cannot do for kafkajs (see helpers/mock-cluster.ts) shapes the run: the
 * producer is not idempotent (no InitProducerId), and topics are
 * auto-created with 4 partitions by a Metadata request instead of
 * CreateTopics, so the contract runs with `fixedPartitions: 4` and skips the
 * one test about requested counts.
 */

const MOCK_PARTITIONS = 4;

let cluster: MockCluster;
let admin: Admin;
// The mock cluster is hosted by node-rdkafka.
const toolsPresent = fileNeedsTools('node-rdkafka');

beforeAll(async () => {
  if (!toolsPresent) return;
  cluster = await startMockCluster(3);
  admin = new Kafka({ brokers: cluster.brokers, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
});

afterAll(async () => {
  await admin?.disconnect();
  await cluster?.stop();
});

/** ensureTopics by auto-creation: a Metadata request for each topic (the mock then creates it with 4 partitions). */
class MockClusterTransport extends KafkaTransport {
  override async ensureTopics(topics: TopicSpec[]): Promise<void> {
    await this.connect();
    await cluster.createTopics(topics.map((t) => t.name));
  }
}

const testConsumer = { sessionTimeoutMs: 6000, heartbeatIntervalMs: 500, maxWaitMs: 100, retryBackoffMs: 20, retryBackoffMaxMs: 100 };

transportContract(
  'kafka (kafkajs → librdkafka mock cluster, 3 brokers)',
  async () => new MockClusterTransport({ brokers: cluster.brokers, producer: { idempotent: false }, consumer: testConsumer }),
  // The mock takes about 3 s per group join; a loaded machine needs more than the default 20 s for two members.
  { fixedPartitions: MOCK_PARTITIONS, waitMs: 45_000 },
);

describe('the mock cluster really has several brokers', () => {
  it('lists three brokers, and the transport publishes to partition leaders among them', async () => {
    const described = await admin.describeCluster();
    expect(described.brokers.map((b) => b.nodeId).sort()).toEqual([1, 2, 3]);
    const transport = new MockClusterTransport({ brokers: cluster.brokers, producer: { idempotent: false } });
    try {
      const topics = Array.from({ length: 6 }, () => unique('leaders'));
      await transport.ensureTopics(topics.map((name) => ({ name, partitions: MOCK_PARTITIONS })));
      const metadata = await admin.fetchTopicMetadata({ topics });
      const leaders = new Set(metadata.topics.flatMap((t) => t.partitions.map((p) => p.leader)));
      expect(leaders.size).toBeGreaterThan(1);
      for (const t of metadata.topics) expect(t.partitions).toHaveLength(MOCK_PARTITIONS);
      const acks = await transport.publish(
        topics.flatMap((topic) => ['a', 'b', 'c', 'd'].map((key) => ({ topic, key, value: Buffer.from(key), headers: {} }))),
      );
      expect(acks).toHaveLength(24);
    } finally {
      await transport.close();
    }
  });

  it('refuses what the mock cannot do for kafkajs: CreateTopics, the idempotent producer, DescribeConfigs (retentionMs)', async () => {
    const transport = new KafkaTransport({ brokers: cluster.brokers, retries: 0, producer: { retries: 0 } });
    try {
      await expect(transport.ensureTopics([{ name: unique('create'), partitions: 2 }])).rejects.toThrow('Broker 0 not found in the cached metadata');
      const topic = unique('idempotent');
      await cluster.createTopics([topic]);
      await expect(transport.publish([{ topic, key: 'k', value: null, headers: {} }])).rejects.toMatchObject({ code: 'PUBLISH_FAILED' });
      // kafkajs sends a topic's DescribeConfigs to the controller too.
      await expect(transport.retentionMs(topic)).rejects.toThrow(
        `cannot read retention.ms of topic '${topic}': KafkaJSBrokerNotFound: Broker 0 not found in the cached metadata`,
      );
    } finally {
      await transport.close();
    }
  });
});
