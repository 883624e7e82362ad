import { createHash } from 'node:crypto';
import { appendFile, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodeSubscription, LogManager } from '../../../src/log/index.js';
import { openLog, tempDir } from './helpers.js';

function commit(logManager: LogManager, groupId: string, partition: number, offset: number, topic = 't') {
  return logManager.groups.commitOffsets({ groupId, generationId: -1, memberId: '', topics: [{ topic, partitions: [{ partition, offset }] }] });
}

async function offsetsOf(logManager: LogManager, groupId: string): Promise<number[]> {
  const fetched = await logManager.groups.fetchOffsets({ groupId, topics: [{ topic: 't', partitions: [0, 1, 2, 3] }] });
  return fetched.topics[0]!.partitions.map((p) => p.offset);
}

describe('committed offsets log', () => {
  it('shares one write and one fdatasync among concurrent commits of many groups', async () => {
    const logManager = await openLog(await tempDir());
    await logManager.createTopic('t', { partitions: 4 });
    await commit(logManager, 'warm', 0, 1);
    const before = logManager.groups.offsetStoreStats();
    await Promise.all(Array.from({ length: 64 }, (_, i) => commit(logManager, `g${i % 16}`, i % 4, i)));
    const after = logManager.groups.offsetStoreStats();
    expect(after.records - before.records).toBe(64);
    expect(after.writes - before.writes).toBeLessThanOrEqual(2);
    expect(await offsetsOf(logManager, 'g3')).toEqual([-1, -1, -1, 51]);
  });

  it('replays the log after a crash and cuts a torn record', async () => {
    const dir = await tempDir();
    const first = await LogManager.open({ dataDir: dir });
    await first.createTopic('t', { partitions: 4 });
    for (let i = 0; i < 10; i++) await commit(first, 'g', i % 4, 100 + i);
    await first.close();
    const logFile = join(dir, '.groups', '00000000000000000000'.replace(/^/, 'offsets-') + '.log');
    const size = (await stat(logFile)).size;
    await appendFile(logFile, Buffer.from([0, 0, 0, 40, 1, 2, 3, 4, 0x7b]));
    const logManager = await openLog(dir);
    expect(await offsetsOf(logManager, 'g')).toEqual([108, 109, 106, 107]);
    expect((await stat(logFile)).size).toBe(size);
    await commit(logManager, 'g', 0, 200);
    await logManager.close();
    const again = await openLog(dir);
    expect(await offsetsOf(again, 'g')).toEqual([200, 109, 106, 107]);
  });

  it('compacts into a snapshot past offsetsLogBytesMax, and reopens from snapshot plus log', async () => {
    const dir = await tempDir();
    const first = await LogManager.open({ dataDir: dir, groups: { offsetsLogBytesMax: 64 * 1024 } });
    await first.createTopic('t', { partitions: 4 });
    for (let i = 0; i < 1500; i++) await commit(first, `g${i % 3}`, i % 4, i);
    expect(first.groups.offsetStoreStats().compactions).toBeGreaterThan(0);
    const files = (await readdir(join(dir, '.groups'))).sort();
    expect(files).toHaveLength(2);
    expect(files[0]).toMatch(/^offsets-\d{20}\.log$/);
    expect(files[1]).toBe(files[0]!.replace('.log', '.snapshot'));
    expect((await stat(join(dir, '.groups', files[0]!))).size).toBeLessThan(64 * 1024);
    await first.close();
    const logManager = await openLog(dir);
    expect(await offsetsOf(logManager, 'g0')).toEqual([1488, 1497, 1494, 1491]);
    expect(await offsetsOf(logManager, 'g2')).toEqual([1496, 1493, 1490, 1499]);
  });

  it('folds a compaction cut short by a crash (snapshot and two logs) into one generation', async () => {
    const dir = await tempDir();
    const first = await LogManager.open({ dataDir: dir });
    await first.createTopic('t', { partitions: 4 });
    await commit(first, 'g', 0, 1);
    await first.close();
    const groups = join(dir, '.groups');
    const gen0 = await readFile(join(groups, 'offsets-00000000000000000000.log'));
    // A second generation's log holding a later commit, as if the crash came before its snapshot was written.
    const second = await LogManager.open({ dataDir: dir });
    await commit(second, 'g', 1, 2);
    await second.close();
    const combined = await readFile(join(groups, 'offsets-00000000000000000000.log'));
    await writeFile(join(groups, 'offsets-00000000000000000000.log'), gen0);
    await writeFile(join(groups, 'offsets-00000000000000000001.log'), combined.subarray(gen0.length));
    const logManager = await openLog(dir);
    expect(await offsetsOf(logManager, 'g')).toEqual([1, 2, -1, -1]);
    expect((await readdir(groups)).sort()).toEqual(['offsets-00000000000000000002.log', 'offsets-00000000000000000002.snapshot']);
  });
});

describe('consumer lag and offset retention', () => {
  it('reports lag per partition: high watermark minus the committed offset, from the log start when none', async () => {
    const logManager = await openLog(await tempDir());
    await logManager.createTopic('t', { partitions: 3 });
    for (let p = 0; p < 3; p++) for (let i = 0; i < 5 * (p + 1); i++) await logManager.appendRecords('t', p, [{ key: null, value: Buffer.from('x') }]);
    await commit(logManager, 'lagging', 0, 5);
    await commit(logManager, 'lagging', 1, 4);
    expect(logManager.groups.lag('lagging')).toEqual([
      { topic: 't', partition: 0, committedOffset: 5, logStartOffset: 0, highWatermark: 5, lag: 0 },
      { topic: 't', partition: 1, committedOffset: 4, logStartOffset: 0, highWatermark: 10, lag: 6 },
    ]);
    expect(logManager.groups.lag('lagging', ['t']).map((p) => p.lag)).toEqual([0, 6, 15]);
    expect(() => logManager.groups.lag('lagging', ['missing'])).toThrow("This server does not host this topic-partition: topic 'missing' does not exist");
  });

  it('expires the offsets of an empty group past offsetsRetentionMs, never those of a group with members', async () => {
    const logManager = await openLog(await tempDir(), { groups: { offsetsRetentionMs: 60_000 } });
    await logManager.createTopic('t', { partitions: 1 });
    await commit(logManager, 'idle', 0, 3);
    const member = await logManager.groups.joinGroup({
      groupId: 'busy',
      memberId: '',
      protocolType: 'consumer',
      protocols: [{ name: 'range', metadata: encodeSubscription({ topics: ['t'] }) }],
      sessionTimeoutMs: 600_000,
      rebalanceTimeoutMs: 10_000,
    });
    await logManager.groups.syncGroup({ groupId: 'busy', generationId: member.generationId, memberId: member.memberId, assignments: [] });
    await logManager.groups.commitOffsets({
      groupId: 'busy',
      generationId: member.generationId,
      memberId: member.memberId,
      topics: [{ topic: 't', partitions: [{ partition: 0, offset: 1 }] }],
    });
    expect((await logManager.enforceRetention(Date.now() + 30_000)).expiredGroups).toEqual([]);
    expect((await logManager.enforceRetention(Date.now() + 61_000)).expiredGroups).toEqual(['idle']);
    expect(await logManager.groups.fetchOffsets({ groupId: 'idle', topics: null })).toEqual({ topics: [] });
    expect(logManager.groups.describeGroup('idle').state).toBe('Dead');
    expect((await logManager.groups.fetchOffsets({ groupId: 'busy', topics: null })).topics[0]!.partitions[0]!.offset).toBe(1);
  });
});

describe('phase A offsets', () => {
  it('imports the per-group checkpoint files of phase A into the first snapshot, then removes them', async () => {
    const dir = await tempDir();
    const first = await LogManager.open({ dataDir: dir });
    await first.createTopic('t', { partitions: 4 });
    await first.close();
    const groups = join(dir, '.groups');
    for (const name of await readdir(groups)) await rm(join(groups, name));
    const { writeCheckpoint } = await import('../../../src/log/checkpoint-file.js');
    const legacy = join(groups, `${createHash('sha256').update('old-group').digest('hex')}.offsets`);
    await writeCheckpoint(legacy, 'group-offsets', { groupId: 'old-group', offsets: [['t', 2, 77, -1, 'meta', 1_700_000_000_000]] });
    const logManager = await openLog(dir);
    expect(await logManager.groups.fetchOffsets({ groupId: 'old-group', topics: null })).toEqual({
      topics: [{ topic: 't', partitions: [{ partition: 2, offset: 77, leaderEpoch: -1, metadata: 'meta', errorCode: null }] }],
    });
    expect((await readdir(groups)).sort()).toEqual(['offsets-00000000000000000001.log', 'offsets-00000000000000000001.snapshot']);
  });
});
