import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Reader } from '../../../src/broker/codec/reader.js';
import { Writer } from '../../../src/broker/codec/writer.js';
import { encodeSubscription } from '../../../src/log/index.js';
import { until } from '../../../src/testing/index.js';
import { connect, disconnect, loadRdKafka, produceAll, type RdConsumer, type RdKafkaError } from '../../support/rdkafka.js';
import { startTestBroker, testNeedsTools, uniqueName, type TestBroker } from './helpers/broker.js';
import { RawClient } from './helpers/raw-client.js';

/**
 * Static group membership (KIP-345, `group.instance.id`) over the wire:
 * librdkafka (node-rdkafka) consumers whose restart within the session
 * timeout gets their partitions back without a rebalance, a duplicate
 * instance fenced, and the exact v3/v5/v7 frames (JoinGroup, SyncGroup,
 * Heartbeat, OffsetCommit, LeaveGroup by instance ID) on a raw connection.
 * kafkajs 2.2.4 has no group.instance.id option (its JoinGroup v5 always
 * sends null), so it has no case here.
 */
let t: TestBroker;

beforeAll(async () => {
  t = await startTestBroker({ autoCreateTopics: false });
});

afterAll(async () => {
  await t?.stop();
});

/** librdkafka's RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS: the error code of a rebalance that assigns. */
const ASSIGN_PARTITIONS = -175;

interface Member {
  consumer: RdConsumer;
  /** Rebalance events, `assign:0,1` / `revoke:0,1`, in order. */
  events: string[];
  errors: RdKafkaError[];
  stop(): Promise<void>;
}

/** A subscribed librdkafka consumer with `group.instance.id`, polled in the background (rebalances are served by polling). */
async function staticMember(group: string, topic: string, instance: string): Promise<Member> {
  const { KafkaConsumer } = loadRdKafka();
  const consumer = new KafkaConsumer(
    {
      'bootstrap.servers': t.bootstrap,
      'group.id': group,
      'group.instance.id': instance,
      'session.timeout.ms': 15_000,
      'heartbeat.interval.ms': 300,
      'enable.auto.commit': false,
      rebalance_cb: true,
    },
    { 'auto.offset.reset': 'earliest' },
  );
  const member: Member = { consumer, events: [], errors: [], stop: async () => {} };
  consumer.on('rebalance', ((err: RdKafkaError, partitions: Array<{ partition: number }>) => {
    member.events.push(
      `${err.code === ASSIGN_PARTITIONS ? 'assign' : 'revoke'}:${partitions
        .map((p) => p.partition)
        .sort()
        .join(',')}`,
    );
  }) as (...args: never[]) => void);
  consumer.on('event.error', ((err: RdKafkaError) => member.errors.push(err)) as (...args: never[]) => void);
  await connect(consumer);
  consumer.subscribe([topic]);
  consumer.setDefaultConsumeTimeout(100);
  let running = true;
  const polling = (async () => {
    while (running) {
      await new Promise<void>((resolve) =>
        consumer.consume(10, (err) => {
          // A fatal error (FENCED_INSTANCE_ID) comes back from consume, as from librdkafka's consumer poll.
          if (err && !member.errors.includes(err)) member.errors.push(err);
          resolve();
        }),
      );
    }
  })();
  member.stop = async () => {
    running = false;
    await polling;
    await disconnect(consumer);
  };
  return member;
}

const assigned = (m: Member): string | undefined => m.events.filter((e) => e.startsWith('assign:')).at(-1);
/** The partitions of the member's last assignment. */
const partitionsOf = (m: Member): string[] => (assigned(m)?.slice('assign:'.length).split(',') ?? []).filter((p) => p !== '');

describe('static membership with librdkafka (node-rdkafka)', () => {
  it('a static member restarted within its session gets its partitions back; the other member sees no rebalance', async (context) => {
    testNeedsTools(context, 'node-rdkafka');
    const topic = uniqueName('static');
    const group = uniqueName('static');
    await t.broker.logManager.createTopic(topic, { partitions: 4 });
    const { Producer } = loadRdKafka();
    const producer = new Producer({ 'bootstrap.servers': t.bootstrap, dr_cb: true });
    await connect(producer);
    await produceAll(
      producer,
      [0, 1, 2, 3].map((partition) => ({ topic, partition, value: `p${partition}` })),
    );
    await disconnect(producer);

    const a = await staticMember(group, topic, 'pod-a');
    let b = await staticMember(group, topic, 'pod-b');
    try {
      // Both hold partitions of one Stable generation.
      // (The first may hold all four in a generation of its own before the second joins: wait for the split.)
      await until(
        () => {
          const g = t.broker.logManager.groups.describeGroup(group);
          const [pa, pb] = [partitionsOf(a), partitionsOf(b)];
          return g.state === 'Stable' && g.members.length === 2 && pa.length > 0 && pb.length > 0 && pa.length + pb.length === 4;
        },
        { timeoutMs: 30_000, message: 'two static members share the four partitions' },
      );
      const before = t.broker.logManager.groups.describeGroup(group);
      const aMemberId = before.members.find((m) => m.groupInstanceId === 'pod-a')!.memberId;
      const bMemberId = before.members.find((m) => m.groupInstanceId === 'pod-b')!.memberId;
      const aEvents = [...a.events];
      const bPartitions = assigned(b);

      // b's process stops: a static member sends no LeaveGroup, so the group keeps it (its session runs).
      await b.stop();
      expect(t.broker.logManager.groups.describeGroup(group)).toMatchObject({ state: 'Stable', generationId: before.generationId });
      expect(
        t.broker.logManager.groups
          .describeGroup(group)
          .members.map((m) => m.memberId)
          .sort(),
      ).toEqual([aMemberId, bMemberId].sort());

      // It comes back with the same group.instance.id: a new member ID, the same partitions, the same generation.
      b = await staticMember(group, topic, 'pod-b');
      await until(() => assigned(b) !== undefined, { timeoutMs: 30_000, message: 'the restarted member is assigned' });
      expect(assigned(b)).toBe(bPartitions);
      const after = t.broker.logManager.groups.describeGroup(group);
      expect(after).toMatchObject({ state: 'Stable', generationId: before.generationId });
      const bAgain = after.members.find((m) => m.groupInstanceId === 'pod-b')!.memberId;
      expect(bAgain).not.toBe(bMemberId);
      expect(after.members.map((m) => m.memberId).sort()).toEqual([aMemberId, bAgain].sort());
      // a went on undisturbed: no revoke, no new assignment, a few heartbeats later.
      await new Promise((resolve) => setTimeout(resolve, 1000));
      expect(a.events).toEqual(aEvents);
      expect(t.broker.logManager.groups.describeGroup(group).generationId).toBe(before.generationId);
    } finally {
      await a.stop();
      await b.stop();
    }
  }, 90_000);

  it('a second live consumer with the same group.instance.id fences the first (FENCED_INSTANCE_ID, fatal)', async (context) => {
    testNeedsTools(context, 'node-rdkafka');
    const topic = uniqueName('fenced');
    const group = uniqueName('fenced');
    await t.broker.logManager.createTopic(topic, { partitions: 2 });
    const first = await staticMember(group, topic, 'pod-x');
    let second: Member | undefined;
    try {
      await until(() => assigned(first) === 'assign:0,1', { timeoutMs: 30_000, message: 'the first member is assigned' });
      second = await staticMember(group, topic, 'pod-x');
      await until(() => first.errors.length > 0, { timeoutMs: 20_000, message: 'the first member learns it is fenced' });
      // librdkafka raises FENCED_INSTANCE_ID as a fatal error (RD_KAFKA_RESP_ERR__FATAL, -150).
      expect([-150, 82], `error ${first.errors[0]!.code}: ${first.errors[0]!.message}`).toContain(first.errors[0]!.code);
      await until(() => assigned(second!) === 'assign:0,1', { timeoutMs: 30_000, message: 'the second member takes the partitions' });
    } finally {
      await first.stop();
      await second?.stop();
    }
  }, 90_000);
});

// ------------------------------------------------------------------ raw frames

function joinV5(groupId: string, memberId: string, instanceId: string | null): Buffer {
  return new Writer()
    .string(groupId)
    .int32(10_000)
    .int32(10_000)
    .string(memberId)
    .nullableString(instanceId)
    .string('consumer')
    .array([{ name: 'range', metadata: encodeSubscription({ topics: ['t'] }) }], (w, p) => w.string(p.name).bytes(p.metadata))
    .toBuffer();
}

function readJoin(body: Buffer) {
  const r = new Reader(body);
  r.int32(); // throttle
  return { errorCode: r.int16(), generationId: r.int32(), protocolName: r.string(), leader: r.string(), memberId: r.string() };
}

describe('static membership on the wire', () => {
  it('JoinGroup v5, SyncGroup v3, Heartbeat v3, OffsetCommit v7 and LeaveGroup v3 with group_instance_id', async () => {
    const groupId = uniqueName('wire-static');
    const topic = uniqueName('wire-static');
    await t.broker.logManager.createTopic(topic, { partitions: 1 });
    const client = await RawClient.connect(t.port);
    try {
      // ApiVersions: OffsetCommit up to v9 (v7 brought group_instance_id).
      const versions = new Reader(await client.request(18, 0, Buffer.alloc(0)));
      versions.int16();
      const offsetCommit = versions.array((r) => ({ key: r.int16(), min: r.int16(), max: r.int16() })).find((api) => api.key === 8);
      expect(offsetCommit).toEqual({ key: 8, min: 2, max: 9 });

      // A static member joins at once (no MEMBER_ID_REQUIRED) and syncs.
      const first = readJoin(await client.request(11, 5, joinV5(groupId, '', 'wire-a')));
      expect(first).toMatchObject({ errorCode: 0, generationId: 1, protocolName: 'range' });
      expect(first.memberId).toMatch(/^wire-a-/);
      const sync = new Writer()
        .string(groupId)
        .int32(1)
        .string(first.memberId)
        .nullableString('wire-a')
        .array([{ memberId: first.memberId, assignment: Buffer.from('A') }], (w, a) => w.string(a.memberId).bytes(a.assignment))
        .toBuffer();
      const synced = new Reader(await client.request(14, 3, sync));
      synced.int32();
      expect([synced.int16(), synced.bytes().toString()]).toEqual([0, 'A']);

      // Restarted: same instance ID, no member ID -> a new ID in generation 1, the assignment kept.
      const again = readJoin(await client.request(11, 5, joinV5(groupId, '', 'wire-a')));
      expect(again).toMatchObject({ errorCode: 0, generationId: 1, leader: first.memberId });
      expect(again.memberId).not.toBe(first.memberId);

      // The old member ID is fenced (82) on Heartbeat v3 and OffsetCommit v7; the new one commits (v6+ carries the leader epoch).
      const heartbeat = (memberId: string) => new Writer().string(groupId).int32(1).string(memberId).nullableString('wire-a').toBuffer();
      const beat = new Reader(await client.request(12, 3, heartbeat(first.memberId)));
      beat.int32();
      expect(beat.int16()).toBe(82);
      const commit = (memberId: string) =>
        new Writer()
          .string(groupId)
          .int32(1)
          .string(memberId)
          .nullableString('wire-a')
          .array([topic], (w, name) => w.string(name).array([0], (pw, partition) => pw.int32(partition).int64(7).int32(3).nullableString('m')))
          .toBuffer();
      const commitError = async (memberId: string) => {
        const r = new Reader(await client.request(8, 7, commit(memberId)));
        r.int32();
        return r.array((tr) => (tr.string(), tr.array((pr) => (pr.int32(), pr.int16()))))[0]![0];
      };
      expect(await commitError(first.memberId)).toBe(82);
      expect(await commitError(again.memberId)).toBe(0);
      const fetched = await t.broker.logManager.groups.fetchOffsets({ groupId, topics: [{ topic, partitions: [0] }] });
      expect(fetched.topics[0]!.partitions[0]).toMatchObject({ offset: 7, leaderEpoch: 3, metadata: 'm' });

      // LeaveGroup v3 by instance ID alone (member ID ''), and with the old member ID (fenced).
      const leave = new Writer()
        .string(groupId)
        .array(
          [
            { memberId: first.memberId, instance: 'wire-a' },
            { memberId: '', instance: 'wire-a' },
          ],
          (w, m) => w.string(m.memberId).nullableString(m.instance),
        )
        .toBuffer();
      const left = new Reader(await client.request(13, 3, leave));
      left.int32();
      expect(left.int16()).toBe(0);
      expect(left.array((r) => [r.string(), r.nullableString(), r.int16()])).toEqual([
        [first.memberId, 'wire-a', 82],
        ['', 'wire-a', 0],
      ]);
      expect(t.broker.logManager.groups.describeGroup(groupId).members).toEqual([]);
    } finally {
      client.close();
    }
  });
});
