import { describe, expect, it, onTestFinished } from 'vitest';
import type { ConcordatError } from '../../../src/errors.js';
import { decodeRecordBatches, encodeSubscription, LogManager } from '../../../src/log/index.js';
import { EmbeddedTransport } from '../../../src/transport/index.js';
import type { OffsetResetEvent } from '../../../src/transport/index.js';
import type { Delivery } from '../../../src/transport/index.js';
import { openLog, tempDir } from '../log/helpers.js';
import { unique, waitFor } from './contract.js';

const FAST = { heartbeatIntervalMs: 100, maxWaitMs: 200, retryBackoffMs: 20, retryBackoffMaxMs: 100, sessionTimeoutMs: 6000 };

function transportOver(logManager: LogManager, consumer: object = {}, producer: object = {}): EmbeddedTransport {
  const transport = new EmbeddedTransport(logManager, { consumer: { ...FAST, ...consumer }, producer });
  onTestFinished(() => transport.close());
  return transport;
}

/** A log whose topic `name` has 40 records, the first 30 of them two days old, in 1 KiB segments with a one-day retention. */
async function retainedLog(name: string): Promise<LogManager> {
  const logManager = await openLog(await tempDir(), { topicDefaults: { segmentBytes: 1024, retentionMs: 86_400_000 } });
  await logManager.createTopic(name, { partitions: 1 });
  for (let i = 0; i < 40; i++) {
    const timestampMs = i < 30 ? Date.now() - 2 * 86_400_000 : Date.now();
    await logManager.appendRecords(name, 0, [{ key: null, value: Buffer.from(`r${i}`.padEnd(150, '.')), timestampMs }]);
  }
  return logManager;
}

describe('EmbeddedTransport over the log engine', () => {
  for (const offsetReset of ['earliest', 'latest'] as const) {
    it(`a group whose offset fell below the log start gets OFFSET_OUT_OF_RANGE and resets to the ${offsetReset}`, async () => {
      const topic = unique('retained');
      const groupId = unique('behind');
      const logManager = await retainedLog(topic);
      await logManager.groups.commitOffsets({ groupId, generationId: -1, memberId: '', topics: [{ topic, partitions: [{ partition: 0, offset: 3 }] }] });
      await logManager.enforceRetention();
      const { logStartOffset } = logManager.describePartition(topic, 0);
      expect(logStartOffset).toBeGreaterThan(3);
      const resets: OffsetResetEvent[] = [];
      const seen: string[] = [];
      const transport = transportOver(logManager, { onOffsetReset: (event: OffsetResetEvent) => resets.push(event) });
      await transport.subscribe({ groupId, topics: [topic], offsetReset, handler: async (d) => void seen.push(d.value!.toString().replace(/\.+$/, '')) });
      await waitFor(
        () => resets.length === 1,
        10_000,
        () => 'no reset',
      );
      const to = offsetReset === 'earliest' ? logStartOffset : 40;
      expect(resets[0]).toMatchObject({ groupId, topic, partition: 0, from: 3, to });
      expect([resets[0]!.error.code, resets[0]!.error.message]).toEqual([
        'OFFSET_OUT_OF_RANGE',
        `offset 3 is out of range for topic '${topic}' partition 0 (log start ${logStartOffset}, log end 40)`,
      ]);
      if (offsetReset === 'earliest') {
        await waitFor(
          () => seen.length === 40 - logStartOffset,
          10_000,
          () => `${seen.length} delivered`,
        );
        expect(seen).toEqual(Array.from({ length: 40 - logStartOffset }, (_, i) => `r${logStartOffset + i}`));
      } else {
        await transport.publish([{ topic, key: null, value: Buffer.from('fresh'), headers: {} }]);
        await waitFor(
          () => seen.length === 1,
          10_000,
          () => 'nothing delivered',
        );
        expect(seen).toEqual(['fresh']);
      }
      await waitFor(
        async () => (await logManager.groups.fetchOffsets({ groupId, topics: [{ topic, partitions: [0] }] })).topics[0]!.partitions[0]!.offset >= to,
        5000,
        () => 'not committed',
      );
    });
  }

  it('rebalances as members join, leave and time out, and every record is delivered', async () => {
    const logManager = await openLog(await tempDir(), { groups: { minSessionTimeoutMs: 300 } });
    const topic = unique('rebalance');
    const groupId = unique('members');
    await logManager.createTopic(topic, { partitions: 6 });
    const seen = new Map<string, number>();
    const owners = new Map<number, Set<string>>();
    const handler = (name: string) => async (d: Delivery) => {
      seen.set(d.value!.toString(), (seen.get(d.value!.toString()) ?? 0) + 1);
      if (!owners.has(d.partition)) owners.set(d.partition, new Set());
      owners.get(d.partition)!.add(name);
    };
    const publish = async (from: number, count: number) => {
      const producer = transportOver(logManager);
      await producer.publish(Array.from({ length: count }, (_, i) => ({ topic, key: `k${from + i}`, value: Buffer.from(`m${from + i}`), headers: {} })));
    };
    const a = transportOver(logManager, { sessionTimeoutMs: 2000 });
    const subA = await a.subscribe({ groupId, topics: [topic], handler: handler('a') });
    await publish(0, 30);
    await waitFor(
      () => seen.size === 30,
      10_000,
      () => `${seen.size} of 30`,
    );
    // B joins: a rebalance hands it some partitions.
    const b = transportOver(logManager, { sessionTimeoutMs: 2000 });
    await b.subscribe({ groupId, topics: [topic], handler: handler('b') });
    await waitFor(
      () => logManager.groups.describeGroup(groupId).members.length === 2 && logManager.groups.describeGroup(groupId).state === 'Stable',
      10_000,
      () => 'B did not join',
    );
    // A raw member that joins and then never heartbeats: the group rebalances when its session times out.
    const ghost = await joinWithoutHeartbeats(logManager, groupId, topic);
    await waitFor(
      () => logManager.groups.describeGroup(groupId).members.some((m) => m.memberId === ghost),
      10_000,
      () => 'ghost not in the group',
    );
    const generationWithGhost = logManager.groups.describeGroup(groupId).generationId;
    await waitFor(
      () => !logManager.groups.describeGroup(groupId).members.some((m) => m.memberId === ghost),
      10_000,
      () => 'ghost never timed out',
    );
    await waitFor(
      () => logManager.groups.describeGroup(groupId).state === 'Stable',
      10_000,
      () => 'not stable after the timeout',
    );
    expect(logManager.groups.describeGroup(groupId).generationId).toBeGreaterThan(generationWithGhost);
    await publish(30, 30);
    await waitFor(
      () => seen.size === 60,
      10_000,
      () => `${seen.size} of 60`,
    );
    expect(new Set([...owners.values()].flatMap((names) => [...names]))).toEqual(new Set(['a', 'b']));
    // A leaves: B takes every partition.
    await subA.close();
    await waitFor(
      () => logManager.groups.describeGroup(groupId).members.length === 1 && logManager.groups.describeGroup(groupId).state === 'Stable',
      10_000,
      () => 'A did not leave',
    );
    owners.clear();
    await publish(60, 30);
    await waitFor(
      () => seen.size === 90,
      10_000,
      () => `${seen.size} of 90`,
    );
    expect(new Set([...owners.values()].flatMap((names) => [...names]))).toEqual(new Set(['b']));
    expect([...seen.values()].every((count) => count === 1)).toBe(true);
    // Every partition's offset is committed up to its end: no lag.
    await waitFor(
      () => logManager.groups.lag(groupId, [topic]).every((p) => p.lag === 0),
      5000,
      () => JSON.stringify(logManager.groups.lag(groupId, [topic])),
    );
  });

  it('acknowledges a republished message ID where the first copy is, and delivers it once (dedup window)', async () => {
    const logManager = await openLog(await tempDir());
    const topic = unique('dedup');
    await logManager.createTopic(topic, { partitions: 3, config: { dedupWindowMs: 60_000 } });
    const transport = transportOver(logManager);
    const message = (id: string) => ({ topic, key: null, value: Buffer.from(id), headers: { ce_id: id } });
    const first = await transport.publish([message('m1'), message('m2')]);
    const retry = await transport.publish([message('m2'), message('m1'), message('m3')]);
    expect(retry.slice(0, 2)).toEqual([first[1], first[0]]);
    const seen: string[] = [];
    await transport.subscribe({ groupId: unique('g'), topics: [topic], handler: async (d) => void seen.push(d.value!.toString()) });
    // The log holds the three records only: no copy exists that could be delivered later.
    const ends = await Promise.all([0, 1, 2].map(async (partition) => (await logManager.read(topic, partition, 0, { maxBytes: 1 << 20 })).highWatermark));
    expect(ends.reduce((a, b) => a + b, 0)).toBe(3);
    await waitFor(
      () => seen.length === 3,
      10_000,
      () => `${seen.length} delivered`,
    );
    expect(seen.sort()).toEqual(['m1', 'm2', 'm3']);
  });

  it('compresses published batches when asked, and hands handlers copies they may keep', async () => {
    const logManager = await openLog(await tempDir());
    const topic = unique('zstd');
    await logManager.createTopic(topic, { partitions: 1 });
    const transport = transportOver(logManager, { maxBytesPerPartition: 4096 }, { compression: 'zstd' });
    const kept: Delivery[] = [];
    const raw = transportOver(logManager, { maxBytesPerPartition: 4096 });
    await raw.subscribe({ groupId: unique('keep'), topics: [topic], handler: async (d) => void kept.push(d) });
    await transport.publish(
      Array.from({ length: 50 }, (_, i) => ({ topic, key: `k${i}`, value: Buffer.from(`value-${i}`.repeat(20)), headers: { h: `h${i}` } })),
    );
    const { records } = await logManager.read(topic, 0, 0, { maxBytes: 1 });
    expect(decodeRecordBatches(records)[0]!.compression).toBe('zstd');
    await waitFor(
      () => kept.length === 50,
      10_000,
      () => `${kept.length} of 50`,
    );
    kept.forEach((d, i) => {
      expect(d.value!.toString()).toBe(`value-${i}`.repeat(20));
      expect(d.key!.toString()).toBe(`k${i}`);
      expect(d.headers.h!.toString()).toBe(`h${i}`);
    });
  });

  it('hands handlers copies of uncompressed records that survive the next reads into the reused buffer', async () => {
    const logManager = await openLog(await tempDir());
    const topic = unique('copies');
    await logManager.createTopic(topic, { partitions: 1 });
    const transport = transportOver(logManager, { maxBytesPerPartition: 2048 });
    const kept: Delivery[] = [];
    await transport.subscribe({ groupId: unique('keep'), topics: [topic], handler: async (d) => void kept.push(d) });
    for (let i = 0; i < 100; i++) await transport.publish([{ topic, key: null, value: Buffer.from(`v${i}`.padEnd(300, '#')), headers: {} }]);
    await waitFor(
      () => kept.length === 100,
      10_000,
      () => `${kept.length} of 100`,
    );
    kept.forEach((d, i) => expect(d.value!.toString()).toBe(`v${i}`.padEnd(300, '#')));
  });
});

/** Joins `groupId` as a member that syncs once and then sends nothing; returns its member ID. */
async function joinWithoutHeartbeats(logManager: LogManager, groupId: string, topic: string): Promise<string> {
  const joined = await logManager.groups.joinGroup({
    groupId,
    memberId: '',
    protocolType: 'consumer',
    protocols: [{ name: 'range', metadata: encodeSubscription({ topics: [topic] }) }],
    sessionTimeoutMs: 300,
    rebalanceTimeoutMs: 5000,
    clientId: 'ghost',
  });
  await logManager.groups
    .syncGroup({ groupId, generationId: joined.generationId, memberId: joined.memberId, assignments: [] })
    .catch((error: ConcordatError) => {
      if (error.code !== 'REBALANCE_IN_PROGRESS') throw error;
    });
  return joined.memberId;
}
