import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { until } from '../../../src/testing/index.js';
import { connect, consumeCount, disconnect, loadRdKafka, produceAll, type RdConsumer, type RdProducer } from '../../support/rdkafka.js';
import { startTestBroker, testNeedsTools, uniqueName, type TestBroker } from './helpers/broker.js';
import { run } from './helpers/process.js';

/**
 * The flexible versions (KIP-482) end to end: real librdkafka clients
 * negotiate them with the broker (ApiVersions), and a produce / group
 * consume / commit round trip works in them. Which version each request
 * went out in is read from librdkafka's own protocol debug log ("Sent
 * FetchRequest (v12, ..."), so a range the broker stopped advertising, or a
 * client that fell back to an older version, fails the test.
 *
 * - librdkafka 2.12 (node-rdkafka): Produce v10, Fetch v12 (zero topic IDs
 *   keep it off v13+), Metadata v12, ListOffsets v6, OffsetCommit v9,
 *   OffsetFetch v9, InitProducerId v4, JoinGroup v5 (its maximum).
 * - librdkafka 2.0.2 (Debian's kcat): InitProducerId v4 and OffsetFetch v7
 *   (require_stable) are flexible there; the rest are classic.
 */
let t: TestBroker;

beforeAll(async () => {
  t = await startTestBroker({ autoCreateTopics: true, defaultPartitions: 2 });
});

afterAll(async () => {
  await t?.stop();
});

/** The highest version of each request librdkafka logged as sent ("Sent <Name>Request (v<N>, ..."). */
function sentVersions(log: string): Record<string, number> {
  const versions: Record<string, number> = {};
  for (const match of log.matchAll(/Sent (\w+)Request \(v(\d+),/g)) {
    versions[match[1]!] = Math.max(versions[match[1]!] ?? -1, Number(match[2]));
  }
  return versions;
}

describe('flexible versions with real librdkafka clients', () => {
  it('librdkafka 2.12 (node-rdkafka): idempotent produce, group consume and commit in the flexible versions', async (context) => {
    testNeedsTools(context, 'node-rdkafka');
    const { Producer, KafkaConsumer } = loadRdKafka();
    const topic = uniqueName('flex-rdkafka');
    const groupId = uniqueName('flex-rdkafka-group');
    const log: string[] = [];
    const producer: RdProducer = new Producer({ 'bootstrap.servers': t.bootstrap, dr_cb: true, 'enable.idempotence': true, debug: 'protocol' });
    producer.on('event.log', ((entry: { message: string }) => log.push(entry.message)) as never);
    await connect(producer);
    const records = Array.from({ length: 20 }, (_, i) => ({ topic, partition: i % 2, key: `k${i}`, value: `v${i}` }));
    try {
      const reports = await produceAll(producer, records);
      expect(reports).toHaveLength(20);
    } finally {
      await disconnect(producer);
    }

    const consumer: RdConsumer = new KafkaConsumer(
      {
        'bootstrap.servers': t.bootstrap,
        'group.id': groupId,
        'enable.auto.commit': true,
        'auto.commit.interval.ms': 100,
        'isolation.level': 'read_committed',
        debug: 'protocol',
      },
      { 'auto.offset.reset': 'earliest' },
    );
    consumer.on('event.log', ((entry: { message: string }) => log.push(entry.message)) as never);
    await connect(consumer);
    try {
      consumer.subscribe([topic]);
      consumer.setDefaultConsumeTimeout(200);
      const messages = await consumeCount(consumer, 20);
      expect(messages.map((m) => m.value?.toString()).sort()).toEqual(records.map((r) => r.value).sort());
      // The auto-commit (OffsetCommit) lands, and committed() reads it back (OffsetFetch).
      const committed = (): Promise<number[]> =>
        new Promise((resolve, reject) =>
          consumer.committed(
            [
              { topic, partition: 0 },
              { topic, partition: 1 },
            ],
            5_000,
            (err, offsets) => (err ? reject(err) : resolve(offsets.map((o) => o.offset ?? -1))),
          ),
        );
      await until(async () => (await committed()).join() === '10,10', { timeoutMs: 20_000, message: 'both partitions committed at 10' });
    } finally {
      await disconnect(consumer);
    }

    const versions = sentVersions(log.join('\n'));
    expect(versions).toMatchObject({
      ApiVersion: 3,
      Produce: 10,
      Fetch: 12,
      Metadata: 12,
      InitProducerId: 4,
      OffsetCommit: 9,
      OffsetFetch: 9,
      JoinGroup: 5,
      SyncGroup: 3,
    });
  });

  it('librdkafka 2.0.2 (kcat): idempotent produce and a read_committed group consume, with InitProducerId v4 and OffsetFetch v7', async (context) => {
    testNeedsTools(context, 'kcat');
    const topic = uniqueName('flex-kcat');
    const groupId = uniqueName('flex-kcat-group');
    const produced = await run('kcat', ['-b', t.bootstrap, '-P', '-t', topic, '-p', '0', '-d', 'protocol', '-X', 'enable.idempotence=true'], {
      input: 'a\nb\nc\n',
    });
    expect(produced.code).toBe(0);
    const consumed = await run(
      'kcat',
      [
        '-b',
        t.bootstrap,
        '-G',
        groupId,
        topic,
        '-e',
        '-f',
        '%p|%o|%s\\n',
        '-d',
        'protocol',
        '-X',
        'isolation.level=read_committed',
        '-X',
        'auto.offset.reset=earliest',
      ],
      { timeoutMs: 60_000 },
    );
    expect(consumed.code).toBe(0);
    expect(consumed.stdout.trim().split('\n')).toEqual(['0|0|a', '0|1|b', '0|2|c']);
    expect(sentVersions(produced.stderr)).toMatchObject({ ApiVersion: 3, InitProducerId: 4, Produce: 7 });
    expect(sentVersions(consumed.stderr)).toMatchObject({ ApiVersion: 3, OffsetFetch: 7, Fetch: 11, JoinGroup: 5 });
  });
});
