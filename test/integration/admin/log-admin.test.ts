import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kafka, logLevel, type Consumer } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EmbeddedLogAdmin, KafkaLogAdmin, type LogAdmin } from '../../../src/admin/index.js';
import { ConcordatError, ErrorCode } from '../../../src/errors.js';
import { LogManager } from '../../../src/log/index.js';
import { startTestBroker, uniqueName, type TestBroker } from '../broker/helpers/broker.js';

/**
 * The two LogAdmin implementations answer one scenario alike: the embedded
 * one over a log this process has open, the kafkajs one over a
 * `concordat broker` in this process. Records are appended with each side's
 * own client (the log's API, a kafkajs producer), with timestamps the test
 * chooses so that a reset by time lands on a known offset.
 */
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';

interface Side {
  admin: LogAdmin;
  /** Appends records with these timestamps to one partition. */
  append(topic: string, partition: number, timestamps: number[]): Promise<void>;
  sizesKnown: boolean;
}

const T0 = Date.UTC(2026, 0, 1);

function scenario(name: string, side: () => Side): void {
  describe(name, () => {
    it('creates, lists, describes and deletes a topic, with Kafka config names', async () => {
      const { admin, append, sizesKnown } = side();
      const topic = uniqueName('admin-topic');
      await admin.createTopic({ name: topic, partitions: 2, configs: { 'retention.ms': '3600000' } });
      await append(topic, 0, [T0, T0 + 1000, T0 + 2000]);
      expect(await admin.listTopics()).toContainEqual({ name: topic, partitions: 2 });
      const described = await admin.describeTopic(topic);
      expect(described.partitions.map((p) => [p.partition, p.logStartOffset, p.highWatermark])).toEqual([
        [0, 0, 3],
        [1, 0, 0],
      ]);
      expect(described.configs).toContainEqual({ name: 'retention.ms', value: '3600000', isDefault: false });
      if (sizesKnown) {
        expect(described.partitions[0]!.sizeBytes).toBeGreaterThan(0);
        expect(described.sizeBytes).toBe(described.partitions[0]!.sizeBytes! + described.partitions[1]!.sizeBytes!);
      } else {
        expect(described.sizeBytes).toBeNull();
      }
      await expect(admin.createTopic({ name: topic, partitions: 1 })).rejects.toMatchObject({ code: ErrorCode.TOPIC_ALREADY_EXISTS });
      await admin.deleteTopic(topic);
      expect((await admin.listTopics()).map((t) => t.name)).not.toContain(topic);
      await expect(admin.describeTopic(topic)).rejects.toThrow(`topic '${topic}' does not exist in ${admin.target}`);
    });

    it('resets an empty group to an offset, by time, to earliest (dry run) and latest; describes committed offsets and lag', async () => {
      const { admin, append } = side();
      const topic = uniqueName('admin-reset');
      const groupId = uniqueName('admin-group');
      await admin.createTopic({ name: topic, partitions: 2 });
      await append(topic, 0, [T0, T0 + 1000, T0 + 2000, T0 + 3000]);
      await append(topic, 1, [T0]);

      const toOffset = await admin.resetOffsets({ groupId, topic, partitions: [0], to: { kind: 'offset', offset: 1 } });
      expect(toOffset).toEqual({
        groupId,
        topic,
        dryRun: false,
        applied: true,
        partitions: [{ partition: 0, currentOffset: -1, newOffset: 1, logStartOffset: 0, highWatermark: 4 }],
      });
      let group = await admin.describeGroup(groupId);
      expect(group.members).toEqual([]);
      expect(group.offsets).toEqual([{ topic, partition: 0, committedOffset: 1, logStartOffset: 0, highWatermark: 4, lag: 3, memberId: null }]);

      const byTime = await admin.resetOffsets({ groupId, topic, to: { kind: 'datetime', timestampMs: T0 + 1500 } });
      // Partition 0: the first record at or after T0+1.5s is offset 2; partition 1 has none that late: its high watermark.
      expect(byTime.partitions.map((p) => [p.partition, p.currentOffset, p.newOffset])).toEqual([
        [0, 1, 2],
        [1, -1, 1],
      ]);

      const dry = await admin.resetOffsets({ groupId, topic, to: { kind: 'earliest' }, dryRun: true });
      expect(dry.applied).toBe(false);
      expect(dry.partitions.map((p) => p.newOffset)).toEqual([0, 0]);
      group = await admin.describeGroup(groupId);
      expect(group.offsets.map((o) => o.committedOffset)).toEqual([2, 1]);

      const clamped = await admin.resetOffsets({ groupId, topic, to: { kind: 'offset', offset: 99 } });
      expect(clamped.partitions.map((p) => p.newOffset)).toEqual([4, 1]);
      await admin.resetOffsets({ groupId, topic, to: { kind: 'latest' } });
      group = await admin.describeGroup(groupId);
      expect(group.offsets.map((o) => [o.partition, o.committedOffset, o.lag])).toEqual([
        [0, 4, 0],
        [1, 1, 0],
      ]);
      expect((await admin.listGroups()).map((g) => g.groupId)).toContain(groupId);
      await expect(admin.resetOffsets({ groupId, topic, partitions: [5], to: { kind: 'earliest' } })).rejects.toThrow(
        `topic '${topic}' has no partition 5: its partitions are 0..1`,
      );
    });
  });
}

describe('EmbeddedLogAdmin', () => {
  let dir: string;
  let logManager: LogManager;
  let admin: EmbeddedLogAdmin;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'concordat-admin-'));
    logManager = await LogManager.open({ dataDir: dir });
    admin = EmbeddedLogAdmin.over(logManager);
  });
  afterAll(async () => {
    await admin?.close();
    await logManager?.close();
    await rm(dir, { recursive: true, force: true });
  });

  scenario('over an open log', () => ({
    admin,
    sizesKnown: true,
    append: async (topic, partition, timestamps) => {
      await logManager.appendRecords(
        topic,
        partition,
        timestamps.map((timestampMs) => ({ key: null, value: Buffer.from('v'), timestampMs })),
      );
    },
  }));

  it('refuses a log directory another owner holds, saying to use --bootstrap or stop the app', async () => {
    const error = await EmbeddedLogAdmin.open({ logDir: dir }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ConcordatError);
    expect((error as ConcordatError).code).toBe(ErrorCode.LOG_DIR_LOCKED);
    expect((error as Error).message).toContain('run the same command with --bootstrap <its host:port>; for an app using the embedded log, stop the app first');
  });

  it('refuses a directory that does not exist and creates none', async () => {
    await expect(EmbeddedLogAdmin.open({ logDir: join(dir, 'missing') })).rejects.toThrow(`no log directory ${join(dir, 'missing')}`);
  });
});

describe('KafkaLogAdmin', () => {
  let broker: TestBroker;
  let admin: KafkaLogAdmin;
  let kafka: Kafka;

  beforeAll(async () => {
    broker = await startTestBroker();
    admin = await KafkaLogAdmin.connect({ brokers: [broker.bootstrap] });
    kafka = new Kafka({ brokers: [broker.bootstrap], clientId: 'admin-test', logLevel: logLevel.NOTHING });
  });
  afterAll(async () => {
    await admin?.close();
    await broker?.stop();
  });

  scenario('over concordat broker', () => ({
    admin,
    sizesKnown: false,
    append: async (topic, partition, timestamps) => {
      const producer = kafka.producer();
      await producer.connect();
      try {
        await producer.send({ topic, acks: -1, messages: timestamps.map((t) => ({ partition, value: 'v', timestamp: String(t) })) });
      } finally {
        await producer.disconnect();
      }
    },
  }));

  it('describes a member with its assignment, and refuses a reset (dry run too) while it is in the group', async () => {
    const topic = uniqueName('admin-members');
    const groupId = uniqueName('admin-members');
    await admin.createTopic({ name: topic, partitions: 2 });
    const consumer: Consumer = kafka.consumer({ groupId, sessionTimeout: 10_000, heartbeatInterval: 500 });
    try {
      const joined = new Promise<void>((resolve) => consumer.on(consumer.events.GROUP_JOIN, () => resolve()));
      await consumer.connect();
      await consumer.subscribe({ topic, fromBeginning: true });
      await consumer.run({ eachMessage: async () => {} });
      await joined;
      const group = await admin.describeGroup(groupId);
      expect(group.state).toBe('Stable');
      expect(group.members).toHaveLength(1);
      expect(group.members[0]!.assignment).toEqual([{ topic, partitions: [0, 1] }]);
      expect(group.offsets.map((o) => [o.partition, o.committedOffset, o.memberId])).toEqual([
        [0, -1, group.members[0]!.memberId],
        [1, -1, group.members[0]!.memberId],
      ]);
      for (const dryRun of [false, true]) {
        await expect(admin.resetOffsets({ groupId, topic, to: { kind: 'earliest' }, dryRun })).rejects.toMatchObject({
          code: ErrorCode.NON_EMPTY_GROUP,
          message: expect.stringContaining(
            `consumer group '${groupId}' has 1 member(s) (state Stable): offsets can be reset only while the group has no members`,
          ),
        });
      }
    } finally {
      await consumer.disconnect();
    }
  });

  it('says which broker it cannot reach', async () => {
    await expect(KafkaLogAdmin.connect({ brokers: ['127.0.0.1:1'], kafka: { retry: { retries: 0 } } })).rejects.toThrow(
      /^cannot reach broker 127\.0\.0\.1:1: /,
    );
  });
});
