import { Kafka, logLevel, type Admin } from 'kafkajs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { compileInboxOptions } from '../../../src/config/index.js';
import { resolveDedupWindow } from '../../../src/inbox/index.js';
import { KafkaTransport } from '../../../src/transport/index.js';
import { startTestBroker, type TestBroker } from '../broker/helpers/broker.js';
import { unique } from './contract.js';

/**
 * KafkaTransport.retentionMs against `concordat broker` (DescribeConfigs
 * over TCP): the topic's own retention.ms, the log's default, forever, a
 * missing topic; the inbox's dedup window checked against it; and publish
 * acks on a topic with the log's message-ID dedup window.
 */
let broker: TestBroker;
let admin: Admin;
const opened: KafkaTransport[] = [];

beforeAll(async () => {
  broker = await startTestBroker();
  admin = new Kafka({ brokers: [broker.bootstrap], logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
});

afterEach(async () => {
  await Promise.all(opened.splice(0).map((t) => t.close()));
});

afterAll(async () => {
  await admin?.disconnect();
  await broker?.stop();
});

async function open(bootstrap = broker.bootstrap, options: Partial<ConstructorParameters<typeof KafkaTransport>[0]> = {}): Promise<KafkaTransport> {
  const transport = new KafkaTransport({ brokers: [bootstrap], retries: 1, ...options });
  opened.push(transport);
  await transport.connect();
  return transport;
}

async function createTopic(topic: string, configs: Record<string, string>, partitions = 1): Promise<void> {
  await admin.createTopics({
    topics: [{ topic, numPartitions: partitions, configEntries: Object.entries(configs).map(([name, value]) => ({ name, value })) }],
  });
}

describe('KafkaTransport.retentionMs', () => {
  it("reports a topic's retention.ms, the log's default for a topic without one, and Infinity for -1", async () => {
    const t = await open();
    const short = unique('retention-60s');
    const forever = unique('retention-forever');
    const plain = unique('retention-default');
    await createTopic(short, { 'retention.ms': '60000' });
    await createTopic(forever, { 'retention.ms': '-1' });
    await t.ensureTopics([{ name: plain, partitions: 1 }]);
    expect(await t.retentionMs(short)).toBe(60_000);
    expect(await t.retentionMs(forever)).toBe(Infinity);
    expect(await t.retentionMs(plain)).toBe(7 * 24 * 3600 * 1000);
  });

  it("follows the broker's log default when the log was opened with another one", async () => {
    const hourly = await startTestBroker({ log: { topicDefaults: { retentionMs: 3_600_000 } } });
    try {
      const t = await open(hourly.bootstrap);
      const topic = unique('retention-hourly');
      await t.ensureTopics([{ name: topic, partitions: 1 }]);
      expect(await t.retentionMs(topic)).toBe(3_600_000);
      await t.close();
    } finally {
      await hourly.stop();
    }
  });

  it('a missing topic is UNKNOWN_TOPIC_OR_PARTITION, naming it', async () => {
    const t = await open();
    const missing = unique('retention-missing');
    await expect(t.retentionMs(missing)).rejects.toMatchObject({
      code: 'UNKNOWN_TOPIC_OR_PARTITION',
      // The code's default (docs/errors.md): the topic may be created, as Kafka's flag for it says.
      retriable: true,
      context: { topic: missing },
    });
    await expect(t.retentionMs(missing)).rejects.toThrow(`cannot read retention.ms of topic '${missing}': it does not exist`);
  });

  it("lets the app refuse an inbox dedup window shorter than the log's retention, and derive one from it", async () => {
    const t = await open();
    const topic = unique('retention-window');
    await createTopic(topic, { 'retention.ms': '120000' });
    await expect(resolveDedupWindow(t, [topic], compileInboxOptions({ dedupWindowMs: 60_000 }))).rejects.toMatchObject({
      code: 'DEDUP_WINDOW_TOO_SHORT',
      context: { option: 'inbox.dedupWindowMs', windowMs: 60_000, topic, retentionMs: 120_000 },
    });
    expect(await resolveDedupWindow(t, [topic], compileInboxOptions({}))).toEqual({
      windowMs: 120_000,
      retentionMs: { [topic]: 120_000 },
      derived: true,
      warnings: [],
    });
  });
});

describe('publishing to a topic with a message-ID dedup window (non-idempotent producer)', () => {
  it("a repeat on the original's partition is acked at the original; one whose original is elsewhere gets offset -1", async () => {
    const t = await open(broker.bootstrap, { producer: { idempotent: false } });
    const keyedTopic = unique('dedup-keyed');
    const looseTopic = unique('dedup-loose');
    await createTopic(keyedTopic, { 'concordat.dedup.window.ms': '60000' }, 2);
    await createTopic(looseTopic, { 'concordat.dedup.window.ms': '60000' }, 2);
    const keyed = { topic: keyedTopic, key: 'order-1', value: Buffer.from('keyed'), headers: { ce_id: 'id-keyed' } };
    const [first] = await t.publish([keyed]);
    expect(first).toEqual({ topic: keyedTopic, partition: first!.partition, offset: 0 });
    expect(await t.publish([keyed])).toEqual([first]);
    // Null keys go round-robin per topic: the first to partition 0, its repeat to partition 1.
    const loose = { topic: looseTopic, key: null, value: Buffer.from('loose'), headers: { ce_id: 'id-loose' } };
    expect(await t.publish([loose])).toEqual([{ topic: looseTopic, partition: 0, offset: 0 }]);
    expect(await t.publish([loose])).toEqual([{ topic: looseTopic, partition: 1, offset: -1 }]);
    const logManager = broker.broker.logManager;
    expect([0, 1].map((p) => logManager.describePartition(keyedTopic, p).highWatermark).sort()).toEqual([0, 1]);
    expect([0, 1].map((p) => logManager.describePartition(looseTopic, p).highWatermark)).toEqual([1, 0]);
  });
});
