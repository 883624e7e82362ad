import { Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEBIAN_PYTHON, fileNeedsTools, startTestBroker, testNeedsTools, uniqueName, type TestBroker } from './helpers/broker.js';
import { MOCK_TOPIC_PARTITIONS, startMockCluster, type MockCluster } from './helpers/mock-cluster.js';
import { runOk } from './helpers/process.js';

/**
 * Differential runs: the same client scenarios against `concordat broker`
 * and against librdkafka's mock cluster (3 brokers), comparing what the
 * clients observe. Both create topics on first use with 4 partitions;
 * kafkajs's producer is not idempotent and topics are not created with
 * CreateTopics, because the mock cannot do either for kafkajs.
 */
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';

interface Target {
  name: string;
  bootstrap: string;
}

let concordat: TestBroker;
let mock: MockCluster;
let targets: Target[];
// librdkafka's mock cluster is hosted by kcat; one case also needs kafka-python.
const toolsPresent = fileNeedsTools('kcat');

beforeAll(async () => {
  if (!toolsPresent) return;
  concordat = await startTestBroker({ autoCreateTopics: true, defaultPartitions: MOCK_TOPIC_PARTITIONS });
  mock = await startMockCluster(3);
  targets = [
    { name: 'concordat', bootstrap: concordat.bootstrap },
    { name: 'mock', bootstrap: mock.bootstrap },
  ];
});

afterAll(async () => {
  await mock?.stop();
  await concordat?.stop();
});

/** Runs `scenario` against each target in turn (two cores: no contention between them) and returns both observations. */
async function onBoth<T>(scenario: (target: Target, topic: string) => Promise<T>): Promise<{ concordat: T; mock: T }> {
  const topic = uniqueName('diff');
  const a = await scenario(targets[0]!, topic);
  const b = await scenario(targets[1]!, topic);
  return { concordat: a, mock: b };
}

async function kafkajsConsume(bootstrap: string, topic: string, count: number): Promise<string[]> {
  const kafka = new Kafka({ brokers: bootstrap.split(','), clientId: 'diff', logLevel: logLevel.NOTHING });
  const consumer = kafka.consumer({ groupId: uniqueName('diff-group'), maxWaitTimeInMs: 100 });
  const seen: string[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${bootstrap}: ${seen.length} of ${count} records`)), 30_000);
      void consumer.run({
        eachMessage: async ({ partition, message }) => {
          const headers = Object.entries(message.headers ?? {})
            .map(([k, v]) => `${k}=${v?.toString()}`)
            .join(',');
          seen.push(`${partition}|${message.offset}|${message.key?.toString() ?? '∅'}|${message.value?.toString() ?? '∅'}|${headers}`);
          if (seen.length === count) {
            clearTimeout(timer);
            resolve();
          }
        },
      });
    });
  } finally {
    await consumer.disconnect();
  }
  return seen.sort();
}

describe('the same scenarios against concordat broker and librdkafka mock cluster', () => {
  it('kcat produce, then kcat consume: the same partitions, offsets, keys and values', async () => {
    const input = `${Array.from({ length: 25 }, (_, i) => `k${i}:value-${i}`).join('\n')}\n`;
    const seen = await onBoth(async (target, topic) => {
      await runOk('kcat', ['-b', target.bootstrap, '-P', '-t', topic, '-K', ':', '-p', '2'], { input });
      return runOk('kcat', ['-b', target.bootstrap, '-C', '-t', topic, '-p', '2', '-o', 'beginning', '-e', '-q', '-f', '%p|%o|%k|%s|%h\\n']);
    });
    expect(seen.concordat).toBe(seen.mock);
    expect(seen.concordat.split('\n').filter(Boolean)).toHaveLength(25);
  });

  it('kafkajs produce (acks all, keys, headers, nulls), then a kafkajs group consumes: the same records', async () => {
    const seen = await onBoth(async (target, topic) => {
      const kafka = new Kafka({ brokers: target.bootstrap.split(','), clientId: 'diff', logLevel: logLevel.NOTHING });
      const producer = kafka.producer();
      await producer.connect();
      const acks = await producer.send({
        topic,
        acks: -1,
        messages: [
          { partition: 0, key: 'a', value: '1', headers: { ce_id: 'x' } },
          { partition: 3, key: null, value: '2' },
          { partition: 3, key: 'c', value: null },
          { key: 'order-42', value: 'by key' },
        ],
      });
      await producer.disconnect();
      const byPartition = acks.map((a) => `${a.partition}:${a.baseOffset}:${a.errorCode}`).sort();
      return { acks: byPartition, records: await kafkajsConsume(target.bootstrap, topic, 4) };
    });
    expect(seen.concordat).toEqual(seen.mock);
    expect(seen.concordat.records).toContain('0|0|a|1|ce_id=x');
  });

  it('kcat -G: the same records and the same committed offsets', async () => {
    // One member: the mock loses commits of members that leave in a rebalance (measured: the second
    // of two members' final commits stay at -1, so the group reads records again). kcat.test.ts runs
    // two members against concordat.
    const seen = await onBoth(async (target, topic) => {
      for (let p = 0; p < MOCK_TOPIC_PARTITIONS; p += 1) {
        await runOk('kcat', ['-b', target.bootstrap, '-P', '-t', topic, '-p', String(p)], { input: `${[1, 2, 3].map((i) => `p${p}-${i}`).join('\n')}\n` });
      }
      const group = uniqueName('diff-kcat');
      const out = await runOk('kcat', ['-b', target.bootstrap, '-G', group, '-X', 'auto.offset.reset=earliest', '-e', '-q', '-f', '%p|%o|%s\\n', topic], {
        timeoutMs: 60_000,
      });
      const kafka = new Kafka({ brokers: target.bootstrap.split(','), clientId: 'diff', logLevel: logLevel.NOTHING });
      const admin = kafka.admin();
      await admin.connect();
      const [offsets] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
      await admin.disconnect();
      return {
        records: out.split('\n').filter(Boolean).sort(),
        committed: offsets!.partitions.map((p) => `${p.partition}:${p.offset}`).sort(),
      };
    });
    expect(seen.concordat).toEqual(seen.mock);
    expect(seen.concordat.records).toHaveLength(12);
    expect(seen.concordat.committed).toEqual(['0:3', '1:3', '2:3', '3:3']);
  });

  it('kafka-python producer and group consumer: the same records and offsets', async (context) => {
    testNeedsTools(context, 'kafka-python');
    const seen = await onBoth(async (target, topic) => {
      const out = await runOk(
        DEBIAN_PYTHON,
        [
          '-c',
          `
from kafka import KafkaProducer, KafkaConsumer
p = KafkaProducer(bootstrap_servers='${target.bootstrap}', acks='all')
for i in range(8):
    p.send('${topic}', key=b'k%d' % i, value=b'v%d' % i, partition=i % 4)
p.flush()
p.close()
c = KafkaConsumer('${topic}', bootstrap_servers='${target.bootstrap}', group_id='g-${topic}', auto_offset_reset='earliest',
                  consumer_timeout_ms=2500)
rows = sorted('%d|%d|%s|%s' % (m.partition, m.offset, m.key.decode(), m.value.decode()) for m in c)
c.close()
print('\\n'.join(rows))
`,
        ],
        { timeoutMs: 60_000 },
      );
      return out.trim().split('\n');
    });
    expect(seen.concordat).toEqual(seen.mock);
    expect(seen.concordat).toHaveLength(8);
  });
});

describe('where the two differ', () => {
  it('earliest and latest agree; by timestamp concordat answers as Kafka does, the mock answers the log end', async () => {
    const seen = await onBoth(async (target, topic) => {
      const kafka = new Kafka({ brokers: target.bootstrap.split(','), clientId: 'diff', logLevel: logLevel.NOTHING });
      const producer = kafka.producer();
      await producer.connect();
      await producer.send({ topic, messages: [0, 1, 2].map((i) => ({ partition: 1, value: `${i}`, timestamp: String(1_700_000_000_000 + i * 1000) })) });
      await producer.disconnect();
      const admin = kafka.admin();
      await admin.connect();
      const latest = await admin.fetchTopicOffsets(topic);
      const byTime = await admin.fetchTopicOffsetsByTimestamp(topic, 1_700_000_000_500);
      await admin.disconnect();
      return {
        latest: latest.map((p) => `${p.partition}:${p.low}-${p.high}`).sort(),
        byTime: byTime.map((p) => `${p.partition}:${p.offset}`).sort(),
      };
    });
    expect(seen.concordat.latest).toEqual(seen.mock.latest);
    expect(seen.concordat.latest).toEqual(['0:0-0', '1:0-3', '2:0-0', '3:0-0']);
    // The first record at or after ...500 is offset 1 (stamped ...1000). librdkafka's mock ignores
    // the timestamp and answers the end of the log; kafkajs turns "none" (-1) into the end as well.
    expect(seen.concordat.byTime).toEqual(['0:0', '1:1', '2:0', '3:0']);
    expect(seen.mock.byTime).toEqual(['0:0', '1:3', '2:0', '3:0']);
  });
  it('kafkajs CreateTopics and idempotent producing work against concordat broker, not against the mock', async () => {
    const outcomes = await onBoth(async (target, topic) => {
      const kafka = new Kafka({ brokers: target.bootstrap.split(','), clientId: 'diff', logLevel: logLevel.NOTHING, retry: { retries: 1 } });
      const admin = kafka.admin();
      await admin.connect();
      const created = await admin.createTopics({ topics: [{ topic, numPartitions: 2 }] }).then(
        () => 'created',
        () => 'failed',
      );
      await admin.disconnect();
      const producer = kafka.producer({ idempotent: true });
      const produced = await producer.connect().then(
        () =>
          producer.send({ topic: `${topic}-idem`, acks: -1, messages: [{ value: 'x' }] }).then(
            () => 'produced',
            () => 'failed',
          ),
        () => 'failed',
      );
      await producer.disconnect().catch(() => {});
      return [created, produced];
    });
    expect(outcomes).toEqual({ concordat: ['created', 'produced'], mock: ['failed', 'failed'] });
  });
});
