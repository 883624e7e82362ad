import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GroupInfo, GroupSummary, OffsetResetPlan, TopicInfo, TopicSummary } from '../../../src/admin/index.js';
import { cli, cliJson, startBrokerProcess, type RunningBroker } from './helpers.js';

/**
 * `concordat topics` and `concordat groups` as processes against a
 * `concordat broker` process (--bootstrap, kafkajs's admin client): what
 * they print with --json (the src/admin shapes), the refusal of the broker's
 * log directory while it runs, and of a reset while the group has a member.
 * Each command is a process of its own (about 2 s of CPU to start), so the
 * steps share one broker and run in order.
 */
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
const T0 = Date.UTC(2026, 0, 1);

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'concordat-cli-admin-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

// Generous bounds: each step starts several CLI processes, slow on a loaded machine.
describe('against a concordat broker process (--bootstrap)', { timeout: 180_000 }, () => {
  let brokerDir: string;
  let broker: RunningBroker;
  let kafka: Kafka;

  beforeAll(async () => {
    brokerDir = join(dir, 'broker');
    broker = await startBrokerProcess(brokerDir);
    kafka = new Kafka({ brokers: [broker.bootstrap], clientId: 'cli-admin-test', logLevel: logLevel.NOTHING });
  });
  afterAll(async () => {
    await broker?.stop();
  });

  it("topics create, list, describe and delete; the broker's log directory is refused with the advice to use --bootstrap", async () => {
    const on = ['--bootstrap', broker.bootstrap];
    expect(await cliJson(['topics', 'create', 'payments', '--partitions', '2', ...on])).toEqual({ topic: 'payments', partitions: 2, created: true });
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({
      topic: 'payments',
      acks: -1,
      messages: [0, 1, 2, 3].map((i) => ({ partition: 0, value: `p${i}`, timestamp: String(T0 + i * 1000) })),
    });
    await producer.send({ topic: 'payments', acks: -1, messages: [{ partition: 1, value: 'q', timestamp: String(T0) }] });
    await producer.disconnect();

    expect(await cliJson<TopicSummary[]>(['topics', 'list', ...on])).toEqual([{ name: 'payments', partitions: 2 }]);
    const info = await cliJson<TopicInfo>(['topics', 'describe', 'payments', ...on]);
    expect(info.partitions).toEqual([
      { partition: 0, logStartOffset: 0, highWatermark: 4, sizeBytes: null, segments: null },
      { partition: 1, logStartOffset: 0, highWatermark: 1, sizeBytes: null, segments: null },
    ]);
    expect(info.sizeBytes).toBeNull();
    expect(info.configs).toContainEqual({ name: 'retention.ms', value: '604800000', isDefault: true });

    const locked = await cli(['topics', 'list', '--log-dir', brokerDir]);
    expect(locked.code).toBe(1);
    expect(locked.stderr).toContain(
      `concordat: log directory ${brokerDir} is locked: process ${broker.child.pid} has it open (a running concordat broker or app).`,
    );
    expect(locked.stderr).toContain('run the same command with --bootstrap <its host:port>');
  });

  it('groups describe shows a member and its assignment; reset-offsets is refused while it is in the group, then resets once it left', async () => {
    const on = ['--bootstrap', broker.bootstrap];
    const consumer = kafka.consumer({ groupId: 'payment-readers', heartbeatInterval: 500 });
    const joined = new Promise<void>((resolve) => consumer.on(consumer.events.GROUP_JOIN, () => resolve()));
    await consumer.connect();
    try {
      await consumer.subscribe({ topic: 'payments', fromBeginning: true });
      await consumer.run({ autoCommit: false, eachMessage: async () => {} });
      await joined;
      const group = await cliJson<GroupInfo>(['groups', 'describe', 'payment-readers', ...on]);
      expect(group).toMatchObject({
        groupId: 'payment-readers',
        state: 'Stable',
        protocolType: 'consumer',
        protocol: 'RoundRobinAssigner',
        generationId: null,
      });
      expect(group.members).toEqual([
        {
          memberId: expect.any(String),
          groupInstanceId: null,
          clientId: 'cli-admin-test',
          clientHost: expect.any(String),
          assignment: [{ topic: 'payments', partitions: [0, 1] }],
        },
      ]);
      const memberId = group.members[0]!.memberId;
      expect(group.offsets).toEqual([
        { topic: 'payments', partition: 0, committedOffset: -1, logStartOffset: 0, highWatermark: 4, lag: 4, memberId },
        { topic: 'payments', partition: 1, committedOffset: -1, logStartOffset: 0, highWatermark: 1, lag: 1, memberId },
      ]);
      expect(await cliJson<GroupSummary[]>(['groups', 'list', ...on])).toEqual([{ groupId: 'payment-readers', state: 'Stable', protocolType: 'consumer' }]);

      const refusal =
        "concordat: consumer group 'payment-readers' has 1 member(s) (state Stable): offsets can be reset only while the group has no members, " +
        'since a running member\'s next commit would overwrite the reset. Stop the group\'s consumers (see "concordat groups describe payment-readers"), then run the reset again\n';
      for (const extra of [[], ['--dry-run']]) {
        expect(await cli(['groups', 'reset-offsets', 'payment-readers', '--topic', 'payments', '--to-earliest', ...extra, ...on])).toEqual({
          code: 1,
          stdout: '',
          stderr: refusal,
        });
      }
    } finally {
      await consumer.disconnect();
    }

    const dry = await cliJson<OffsetResetPlan>([
      'groups',
      'reset-offsets',
      'payment-readers',
      '--topic',
      'payments',
      '--to-datetime',
      new Date(T0 + 2500).toISOString(),
      '--dry-run',
      ...on,
    ]);
    expect(dry.partitions).toEqual([
      { partition: 0, currentOffset: -1, newOffset: 3, logStartOffset: 0, highWatermark: 4 },
      { partition: 1, currentOffset: -1, newOffset: 1, logStartOffset: 0, highWatermark: 1 },
    ]);
    expect(dry.applied).toBe(false);
    const applied = await cliJson<OffsetResetPlan>([
      'groups',
      'reset-offsets',
      'payment-readers',
      '--topic',
      'payments',
      '--partitions',
      '0',
      '--to-offset',
      '2',
      ...on,
    ]);
    expect(applied).toEqual({
      groupId: 'payment-readers',
      topic: 'payments',
      dryRun: false,
      applied: true,
      partitions: [{ partition: 0, currentOffset: -1, newOffset: 2, logStartOffset: 0, highWatermark: 4 }],
    });
    const after = await cliJson<GroupInfo>(['groups', 'describe', 'payment-readers', ...on]);
    expect(after.state).toBe('Empty');
    expect(after.members).toEqual([]);
    expect(after.offsets).toEqual([{ topic: 'payments', partition: 0, committedOffset: 2, logStartOffset: 0, highWatermark: 4, lag: 2, memberId: null }]);
  });

  it('topics delete, then the topic is unknown', async () => {
    const on = ['--bootstrap', broker.bootstrap];
    expect(await cliJson(['topics', 'delete', 'payments', ...on])).toEqual({ topic: 'payments', deleted: true });
    const unknown = await cli(['topics', 'describe', 'payments', ...on]);
    expect(unknown).toEqual({
      code: 1,
      stdout: '',
      stderr: `concordat: topic 'payments' does not exist in broker ${broker.bootstrap} (see "concordat topics list")\n`,
    });
  });
});
