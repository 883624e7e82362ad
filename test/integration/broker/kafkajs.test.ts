import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Kafka, logLevel, type Admin, type Consumer } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeRecordBatches } from '../../../src/log/index.js';
import { until } from '../../../src/testing/index.js';
import { startTestBroker, uniqueName, type TestBroker } from './helpers/broker.js';
import { startMember, type MemberEvent } from './helpers/group-member.js';

/**
 * kafkajs 2.2.4 against `concordat broker`: producing with every acks
 * setting and idempotence, the admin client, consumer groups with a member
 * leaving and one killed, offsets and seek.
 */
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';

let t: TestBroker;
let kafka: Kafka;
let admin: Admin;

beforeAll(async () => {
  t = await startTestBroker();
  kafka = new Kafka({ brokers: [t.bootstrap], clientId: 'kafkajs-test', logLevel: logLevel.NOTHING });
  admin = kafka.admin();
  await admin.connect();
});

afterAll(async () => {
  await admin?.disconnect();
  await t?.stop();
});

interface Received {
  partition: number;
  offset: number;
  key: string | null;
  value: string | null;
}

/** Reads `count` records of `topic` from the beginning with a fresh group; sorted by partition and offset. */
async function consume(topic: string, count: number, timeoutMs = 20_000): Promise<Received[]> {
  const consumer = kafka.consumer({ groupId: uniqueName('reader'), maxWaitTimeInMs: 100 });
  const received: Received[] = [];
  try {
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`only ${received.length} of ${count} records within ${timeoutMs} ms`)), timeoutMs);
      void consumer.run({
        eachMessage: async ({ partition, message }) => {
          received.push({
            partition,
            offset: Number(message.offset),
            key: message.key?.toString() ?? null,
            value: message.value?.toString() ?? null,
          });
          if (received.length === count) {
            clearTimeout(timer);
            resolve();
          }
        },
      });
    });
  } finally {
    await consumer.disconnect();
  }
  return received.sort((a, b) => a.partition - b.partition || a.offset - b.offset);
}

describe('producing', () => {
  it('acks 1 and all answer with the offsets assigned, and the records read back exactly', async () => {
    const topic = uniqueName('acks');
    await admin.createTopics({ topics: [{ topic, numPartitions: 2 }] });
    const producer = kafka.producer();
    await producer.connect();
    const one = await producer.send({
      topic,
      acks: 1,
      messages: [
        { partition: 0, key: 'a', value: '1' },
        { partition: 0, key: 'b', value: '2' },
        { partition: 1, key: 'c', value: '3' },
      ],
    });
    const all = await producer.send({
      topic,
      acks: -1,
      messages: [
        { partition: 0, key: null, value: '4' },
        { partition: 1, key: 'd', value: null },
      ],
    });
    await producer.disconnect();
    const byPartition = (r: typeof one) => r.map((p) => [p.partition, p.errorCode, p.baseOffset]).sort();
    expect(byPartition(one)).toEqual([
      [0, 0, '0'],
      [1, 0, '0'],
    ]);
    expect(byPartition(all)).toEqual([
      [0, 0, '2'],
      [1, 0, '1'],
    ]);
    expect(await consume(topic, 5)).toEqual([
      { partition: 0, offset: 0, key: 'a', value: '1' },
      { partition: 0, offset: 1, key: 'b', value: '2' },
      { partition: 0, offset: 2, key: null, value: '4' },
      { partition: 1, offset: 0, key: 'c', value: '3' },
      { partition: 1, offset: 1, key: 'd', value: null },
    ]);
  });

  it('acks 0 gets no answer, and the records arrive', async () => {
    const topic = uniqueName('acks0');
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] });
    const producer = kafka.producer();
    await producer.connect();
    for (let i = 0; i < 5; i += 1) {
      expect(await producer.send({ topic, acks: 0, messages: [{ key: `k${i}`, value: `v${i}` }] })).toEqual([]);
    }
    await until(() => t.broker.logManager.describePartition(topic, 0).highWatermark === 5, { timeoutMs: 20_000, message: 'five acks-0 records' });
    await producer.disconnect();
    expect((await consume(topic, 5)).map((r) => [r.offset, r.key, r.value])).toEqual([0, 1, 2, 3, 4].map((i) => [i, `k${i}`, `v${i}`]));
  });

  it('an idempotent producer gets an ID and its batches carry it with consecutive sequences', async () => {
    const topic = uniqueName('idempotent');
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] });
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    for (let i = 0; i < 3; i += 1) {
      const [result] = await producer.send({ topic, acks: -1, messages: [{ value: `${i}a` }, { value: `${i}b` }] });
      expect([result?.errorCode, result?.baseOffset]).toEqual([0, String(i * 2)]);
    }
    await producer.disconnect();
    const { records } = await t.broker.logManager.read(topic, 0, 0, { maxBytes: 1024 * 1024 });
    const batches = decodeRecordBatches(records);
    expect(batches.map((b) => [b.baseOffset, b.producerEpoch, b.baseSequence, b.records.map((r) => r.value?.toString())])).toEqual([
      [0, 0, 0, ['0a', '0b']],
      [2, 0, 2, ['1a', '1b']],
      [4, 0, 4, ['2a', '2b']],
    ]);
    expect(new Set(batches.map((b) => b.producerId)).size).toBe(1);
    expect(batches[0]!.producerId).toBeGreaterThanOrEqual(0);
    // A second producer gets another ID.
    const other = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await other.connect();
    await other.send({ topic, acks: -1, messages: [{ value: 'other' }] });
    await other.disconnect();
    const { records: all } = await t.broker.logManager.read(topic, 0, 6, { maxBytes: 1024 * 1024 });
    expect(decodeRecordBatches(all)[0]!.producerId).not.toBe(batches[0]!.producerId);
  });
});

describe('admin', () => {
  it('creates, describes and deletes topics, with Kafka errors for the wrong calls', async () => {
    const topic = uniqueName('admin');
    expect(await admin.createTopics({ topics: [{ topic, numPartitions: 3, configEntries: [{ name: 'segment.bytes', value: '1048576' }] }] })).toBe(true);
    expect(await admin.createTopics({ topics: [{ topic, numPartitions: 3 }] })).toBe(false);
    expect(t.broker.logManager.describeTopic(topic).config.segmentBytes).toBe(1_048_576);
    const metadata = await admin.fetchTopicMetadata({ topics: [topic] });
    expect(metadata.topics[0]!.partitions.map((p) => [p.partitionId, p.leader, p.replicas, p.isr]).sort()).toEqual([
      [0, 1, [1], [1]],
      [1, 1, [1], [1]],
      [2, 1, [1], [1]],
    ]);
    expect(await admin.listTopics()).toContain(topic);
    const compacted = uniqueName('compacted');
    await expect(admin.createTopics({ topics: [{ topic: compacted, configEntries: [{ name: 'cleanup.policy', value: 'shred' }] }] })).rejects.toMatchObject({
      errors: [{ type: 'INVALID_CONFIG', topic: compacted }],
    });
    expect(t.broker.logManager.hasTopic(compacted)).toBe(false);
    await expect(admin.createTopics({ topics: [{ topic: 'not valid!' }] })).rejects.toMatchObject({
      errors: [{ type: 'INVALID_TOPIC_EXCEPTION' }],
    });
    await expect(admin.createTopics({ topics: [{ topic: uniqueName('replicated'), replicationFactor: 3 }] })).rejects.toMatchObject({
      errors: [{ type: 'INVALID_REPLICATION_FACTOR' }],
    });
    await admin.deleteTopics({ topics: [topic] });
    expect(await admin.listTopics()).not.toContain(topic);
    expect(t.broker.logManager.hasTopic(topic)).toBe(false);
  });

  it('describes and lists groups, and fetches their offsets', async () => {
    const topic = uniqueName('described');
    const groupId = uniqueName('described-group');
    await admin.createTopics({ topics: [{ topic, numPartitions: 2 }] });
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({
      topic,
      messages: [
        { partition: 0, value: 'a' },
        { partition: 0, value: 'b' },
        { partition: 1, value: 'c' },
      ],
    });
    await producer.disconnect();
    const consumer = kafka.consumer({ groupId, heartbeatInterval: 300, maxWaitTimeInMs: 100 });
    // Commits after every record (kafkajs's default waits 5 s).
    const autoCommit = { autoCommitThreshold: 1 };
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    let seen = 0;
    await consumer.run({ ...autoCommit, eachMessage: async () => void (seen += 1) });
    await until(() => seen === 3, { timeoutMs: 20_000, message: 'three records' });
    await until(
      async () => {
        const offsets = await admin.fetchOffsets({ groupId, topics: [topic] });
        return JSON.stringify(offsets[0]!.partitions.map((p) => p.offset).sort()) === JSON.stringify(['1', '2']);
      },
      { timeoutMs: 20_000, message: 'committed offsets 2 and 1' },
    );
    const { groups } = await admin.describeGroups([groupId]);
    expect(groups[0]).toMatchObject({ groupId, state: 'Stable', protocolType: 'consumer', protocol: 'RoundRobinAssigner' });
    expect(groups[0]!.members.map((m) => m.clientId)).toEqual(['kafkajs-test']);
    expect((await admin.listGroups()).groups).toContainEqual({ groupId, protocolType: 'consumer' });
    await consumer.disconnect();
    const after = await admin.describeGroups([groupId]);
    expect(after.groups[0]).toMatchObject({ state: 'Empty', members: [] });
    expect((await admin.describeGroups([uniqueName('never')])).groups[0]).toMatchObject({ state: 'Dead', members: [] });
    const offsets = await admin.fetchOffsets({ groupId, topics: [topic] });
    expect(offsets[0]!.partitions.sort((a, b) => a.partition - b.partition)).toEqual([
      { partition: 0, offset: '2', metadata: null },
      { partition: 1, offset: '1', metadata: null },
    ]);
    await admin.setOffsets({ groupId, topic, partitions: [{ partition: 0, offset: '1' }] });
    expect((await admin.fetchOffsets({ groupId, topics: [topic] }))[0]!.partitions.find((p) => p.partition === 0)?.offset).toBe('1');
  });

  it('finds offsets by timestamp, earliest and latest', async () => {
    const topic = uniqueName('timestamps');
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] });
    const base = 1_700_000_000_000;
    const producer = kafka.producer();
    await producer.connect();
    for (let i = 0; i < 4; i += 1) {
      await producer.send({
        topic,
        messages: [
          { value: `${i}`, timestamp: String(base + i * 1000) },
          { value: `${i}'`, timestamp: String(base + i * 1000 + 500) },
        ],
      });
    }
    await producer.disconnect();
    const at = async (ts: number) => (await admin.fetchTopicOffsetsByTimestamp(topic, ts))[0]!.offset;
    expect(await at(base - 1)).toBe('0');
    expect(await at(base + 500)).toBe('1');
    expect(await at(base + 1200)).toBe('3');
    expect(await at(base + 3500)).toBe('7');
    // No record that late: kafkajs turns -1 into the latest offset.
    expect(await at(base + 10_000)).toBe('8');
    expect(await admin.fetchTopicOffsets(topic)).toEqual([{ partition: 0, offset: '8', high: '8', low: '0' }]);
  });
});

describe('consuming', () => {
  it('seeks back within a partition and gets the records again', async () => {
    const topic = uniqueName('seek');
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] });
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({ topic, messages: Array.from({ length: 10 }, (_, i) => ({ value: `r${i}` })) });
    await producer.disconnect();
    const consumer: Consumer = kafka.consumer({ groupId: uniqueName('seeker'), maxWaitTimeInMs: 100 });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    const offsets: number[] = [];
    let sought = false;
    await consumer.run({
      eachMessage: async ({ message }) => {
        offsets.push(Number(message.offset));
        if (message.offset === '9' && !sought) {
          sought = true;
          consumer.seek({ topic, partition: 0, offset: '5' });
        }
      },
    });
    await until(() => offsets.length === 15, { timeoutMs: 20_000, message: 'ten records and five again' });
    await consumer.disconnect();
    expect(offsets).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 5, 6, 7, 8, 9]);
  });

  it('a group of three where one member leaves and one is killed: every record is committed exactly once', async () => {
    const topic = uniqueName('group3');
    const groupId = uniqueName('group3');
    const partitions = 6;
    const perPartition = 40;
    await admin.createTopics({ topics: [{ topic, numPartitions: partitions }] });
    const producer = kafka.producer();
    await producer.connect();
    // Two rounds of records: the second after the rebalance that follows the kill, so that a and b both have work then
    // (under load c may have finished its partitions before it was killed, and b would have nothing left to commit).
    const produceRound = async (round: number): Promise<void> => {
      for (let p = 0; p < partitions; p += 1) {
        await producer.send({ topic, messages: Array.from({ length: perPartition }, (_, i) => ({ partition: p, value: `${p}:${round}:${i}` })) });
      }
    };
    await produceRound(0);

    const events: MemberEvent[] = [];
    const record = (event: MemberEvent) => events.push(event);
    const options = { bootstrap: t.bootstrap, topic, groupId, delayMs: 25 };
    const a = await startMember({ ...options, name: 'a' }, record);
    const b = await startMember({ ...options, name: 'b' }, record);
    const child = spawnMember({ ...options, name: 'c' }, record);
    const committed = (member: string) => events.filter((e) => e.member === member && e.event === 'committed').length;
    try {
      // All three own partitions and have made progress: kill c without a goodbye.
      await until(() => committed('c') >= 5 && committed('a') >= 3 && committed('b') >= 3, { timeoutMs: 40_000, message: 'three members committing' });
      child.kill('SIGKILL');
      const killedAt = events.length;
      // c's session expires (6 s), the group rebalances, a and b take its partitions over.
      await until(
        () =>
          events
            .slice(killedAt)
            .filter((e) => e.event === 'assigned')
            .reduce((n, e) => n + (e.partitions?.length ?? 0), 0) >= partitions,
        { timeoutMs: 40_000, message: 'a and b to share all partitions after c was killed' },
      );
      const rebalancedAt = events.length;
      await produceRound(1);
      await until(() => events.slice(rebalancedAt).filter((e) => e.member === 'b' && e.event === 'committed').length >= 3, {
        timeoutMs: 40_000,
        message: 'b committing again',
      });
      await b.stop(); // LeaveGroup: a gets everything at once
      await until(
        async () => {
          const [offsets] = await admin.fetchOffsets({ groupId, topics: [topic] });
          return offsets!.partitions.every((p) => p.offset === String(2 * perPartition));
        },
        { timeoutMs: 60_000, message: 'the group to commit every record' },
      );
    } finally {
      child.kill('SIGKILL');
      await a.stop();
      await producer.disconnect();
    }

    // The committed view: for each partition, every offset committed by exactly one member.
    const views = new Map<number, number[]>();
    for (const e of events.filter((e) => e.event === 'committed')) {
      views.set(e.partition!, [...(views.get(e.partition!) ?? []), e.offset!]);
    }
    // A record c processed but did not report committed: either c died before committing it (then
    // someone processed it again), or after (then nobody did, and it belongs to the committed view).
    for (const e of events.filter((e) => e.member === 'c' && e.event === 'processed')) {
      const reported = events.some((o) => o.member === 'c' && o.event === 'committed' && o.partition === e.partition && o.offset === e.offset);
      const redone = events.some((o) => o.member !== 'c' && o.event === 'processed' && o.partition === e.partition && o.offset === e.offset);
      if (!reported && !redone) views.set(e.partition!, [...(views.get(e.partition!) ?? []), e.offset!]);
    }
    for (let p = 0; p < partitions; p += 1) {
      expect(
        (views.get(p) ?? []).sort((x, y) => x - y),
        `partition ${p}`,
      ).toEqual(Array.from({ length: 2 * perPartition }, (_, i) => i));
    }
    // All three really took part, and the kill and the leave both caused reassignments.
    expect(['a', 'b', 'c'].map((m) => committed(m) > 0)).toEqual([true, true, true]);
    expect(events.filter((e) => e.member === 'a' && e.event === 'assigned').at(-1)?.partitions).toEqual([0, 1, 2, 3, 4, 5]);
  }, 150_000);
});

function spawnMember(
  options: { bootstrap: string; topic: string; groupId: string; delayMs: number; name: string },
  record: (event: MemberEvent) => void,
): ChildProcess {
  const script = fileURLToPath(new URL('./helpers/group-member-child.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', script, options.bootstrap, options.topic, options.groupId, options.name, String(options.delayMs)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  createInterface({ input: child.stdout! }).on('line', (line) => {
    if (line.startsWith('{')) record(JSON.parse(line) as MemberEvent);
  });
  return child;
}
