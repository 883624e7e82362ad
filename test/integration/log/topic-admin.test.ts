import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConcordatError } from '../../../src/errors.js';
import { decodeRecordBatches, encodeRecordBatch, readBatchHeader } from '../../../src/log/index.js';
import { LOG_START_OFFSET_FILE, writeLogStartOffset } from '../../../src/log/log-start-offset.js';
import { openLog, readAll, tempDir } from './helpers.js';

/**
 * What Kafka's admin APIs need from the log (LogManager.createPartitions,
 * alterTopicConfig, deleteRecords): each applied at once, durable across a
 * reopen, safe after a crash between its durable step and the rest, and
 * refused with Kafka's codes.
 */
function values(prefix: string, n: number) {
  return Array.from({ length: n }, (_, i) => ({ key: null, value: Buffer.from(`${prefix}${i}`) }));
}

async function caught(promise: Promise<unknown>): Promise<ConcordatError> {
  try {
    await promise;
  } catch (error) {
    return error as ConcordatError;
  }
  throw new Error('expected a rejection');
}

describe('createPartitions', () => {
  it('adds empty partitions, keeps the old ones as they were, and the count survives a reopen', async () => {
    const dir = await tempDir();
    const logManager = await openLog(dir);
    await logManager.createTopic('grow', { partitions: 2 });
    await logManager.appendRecords('grow', 1, values('old', 3));
    await logManager.createPartitions('grow', 4);
    expect(logManager.describeTopic('grow').partitions.map((p) => [p.partition, p.highWatermark])).toEqual([
      [0, 0],
      [1, 3],
      [2, 0],
      [3, 0],
    ]);
    await logManager.appendRecords('grow', 3, values('new', 1));
    await logManager.close();
    const again = await openLog(dir);
    expect(again.partitionCount('grow')).toBe(4);
    expect(await readAll(again, 'grow', 1)).toEqual([
      [0, 'old0'],
      [1, 'old1'],
      [2, 'old2'],
    ]);
    expect(await readAll(again, 'grow', 3)).toEqual([[0, 'new0']]);
  });

  it('after a crash between the registry write and the new directories, open creates them', async () => {
    const dir = await tempDir();
    const logManager = await openLog(dir);
    await logManager.createTopic('half', { partitions: 1 });
    await logManager.createPartitions('half', 3);
    await logManager.close();
    await rm(join(dir, 'half-2'), { recursive: true });
    const again = await openLog(dir);
    expect(again.describeTopic('half').partitions.map((p) => p.logEndOffset)).toEqual([0, 0, 0]);
    expect((await readdir(dir)).filter((name) => name.startsWith('half-')).sort()).toEqual(['half-0', 'half-1', 'half-2']);
  });

  it('refuses what Kafka refuses: no more than today, above partitionsPerTopicMax, an unknown topic', async () => {
    const logManager = await openLog(await tempDir(), { partitionsPerTopicMax: 8 });
    await logManager.createTopic('t', { partitions: 3 });
    const same = await caught(logManager.createPartitions('t', 3));
    expect([same.code, same.message]).toEqual(['INVALID_PARTITIONS', "Topic 't' already has 3 partitions"]);
    const fewer = await caught(logManager.createPartitions('t', 2));
    expect([fewer.code, fewer.message]).toEqual(['INVALID_PARTITIONS', "Topic 't' has 3 partitions, more than the 2 asked for: partitions can only be added"]);
    const many = await caught(logManager.createPartitions('t', 9));
    expect([many.code, many.message]).toEqual([
      'INVALID_PARTITIONS',
      "Topic 't' cannot have 9 partitions: the number must be 1..8 (log option partitionsPerTopicMax)",
    ]);
    expect((await caught(logManager.createPartitions('absent', 2))).code).toBe('UNKNOWN_TOPIC_OR_PARTITION');
    expect(logManager.partitionCount('t')).toBe(3);
  });
});

describe('alterTopicConfig', () => {
  it('applies at once (the next roll uses the new segment size), is durable with its stored configs, and resets what is not given', async () => {
    const dir = await tempDir();
    const logManager = await openLog(dir);
    await logManager.createTopic('cfg', { partitions: 1, config: { retentionMs: 60_000 } });
    await logManager.appendRecords('cfg', 0, values('x'.repeat(400), 8));
    expect(logManager.describePartition('cfg', 0).segmentCount).toBe(1);
    await logManager.alterTopicConfig('cfg', { segmentBytes: 1024 }, { 'delete.retention.ms': '900' });
    for (let i = 0; i < 6; i++) await logManager.appendRecords('cfg', 0, values('y'.repeat(400), 1));
    expect(logManager.describePartition('cfg', 0).segmentCount).toBeGreaterThan(2);
    expect(logManager.describeTopic('cfg')).toMatchObject({
      config: { segmentBytes: 1024, retentionMs: 604_800_000 },
      extraConfigs: { 'delete.retention.ms': '900' },
    });
    await logManager.close();
    const again = await openLog(dir);
    expect(again.describeTopic('cfg')).toMatchObject({
      config: { segmentBytes: 1024, retentionMs: 604_800_000 },
      extraConfigs: { 'delete.retention.ms': '900' },
    });
    await again.alterTopicConfig('cfg', { segmentBytes: 1024 });
    expect(again.describeTopic('cfg').extraConfigs).toEqual({});
  });

  it('refuses a value out of range (INVALID_CONFIG) and switching the dedup window on or off; resizing it is allowed', async () => {
    const logManager = await openLog(await tempDir());
    await logManager.createTopic('plain', { partitions: 1 });
    await logManager.createTopic('dedup', { partitions: 1, config: { dedupWindowMs: 60_000 } });
    const range = await caught(logManager.alterTopicConfig('plain', { segmentBytes: 10 }));
    expect(range.code).toBe('INVALID_CONFIG');
    const on = await caught(logManager.alterTopicConfig('plain', { dedupWindowMs: 1000 }));
    expect([on.code, on.message]).toEqual([
      'INVALID_CONFIG',
      "Topic 'plain': the dedup window is off and cannot be switched on after creation; create a new topic with the window you want",
    ]);
    const off = await caught(logManager.alterTopicConfig('dedup', {}));
    expect(off.message).toBe("Topic 'dedup': the dedup window is on and cannot be switched off after creation; create a new topic with the window you want");
    await logManager.alterTopicConfig('dedup', { dedupWindowMs: 120_000, dedupWindowIdsMax: 10 });
    expect(logManager.describeTopic('dedup').config).toMatchObject({ dedupWindowMs: 120_000, dedupWindowIdsMax: 10 });
    expect((await caught(logManager.alterTopicConfig('absent', {}))).code).toBe('UNKNOWN_TOPIC_OR_PARTITION');
  });
});

describe('deleteRecords', () => {
  it('moves the log start inside a segment and deletes the segments wholly below it; reads below get OFFSET_OUT_OF_RANGE; durable', async () => {
    const dir = await tempDir();
    const logManager = await openLog(dir);
    await logManager.createTopic('dr', { partitions: 1, config: { segmentBytes: 1024 } });
    for (let i = 0; i < 10; i++) await logManager.appendRecords('dr', 0, [{ key: null, value: Buffer.from(`v${i}-${'z'.repeat(300)}`) }]);
    const before = logManager.describePartition('dr', 0);
    expect(before.segmentCount).toBeGreaterThan(3);
    const start = 7;
    expect(await logManager.deleteRecords('dr', 0, start)).toBe(start);
    const after = logManager.describePartition('dr', 0);
    expect(after.logStartOffset).toBe(start);
    expect(after.segmentCount).toBeLessThan(before.segmentCount);
    const below = await caught(logManager.read('dr', 0, start - 1, { maxBytes: 1024 }));
    expect([below.code, below.message]).toEqual([
      'OFFSET_OUT_OF_RANGE',
      `offset ${start - 1} is out of range for topic 'dr' partition 0 (log start ${start}, log end 10)`,
    ]);
    expect((await readAll(logManager, 'dr', 0, start)).map(([offset]) => offset)).toEqual([7, 8, 9]);
    // Lower than the start: nothing changes.
    expect(await logManager.deleteRecords('dr', 0, 2)).toBe(start);
    await logManager.close();
    const again = await openLog(dir);
    expect(again.describePartition('dr', 0)).toMatchObject({ logStartOffset: start, highWatermark: 10 });
    expect((await caught(again.read('dr', 0, start - 1, { maxBytes: 1024 }))).code).toBe('OFFSET_OUT_OF_RANGE');
    // The first record at or after a timestamp is never below the start.
    expect(await again.offsetForTimestamp('dr', 0, 0)).toMatchObject({ offset: start });
  });

  it('-1 is the high watermark; above it is OFFSET_OUT_OF_RANGE; an unknown partition UNKNOWN_TOPIC_OR_PARTITION', async () => {
    const logManager = await openLog(await tempDir());
    await logManager.createTopic('edge', { partitions: 1 });
    await logManager.appendRecords('edge', 0, values('e', 4));
    const above = await caught(logManager.deleteRecords('edge', 0, 5));
    expect([above.code, above.message]).toEqual([
      'OFFSET_OUT_OF_RANGE',
      "cannot delete records of topic 'edge' partition 0 before offset 5: it must be -1 (the high watermark) or 0..4 (the high watermark)",
    ]);
    expect(await logManager.deleteRecords('edge', 0, -1)).toBe(4);
    expect(logManager.describePartition('edge', 0)).toMatchObject({ logStartOffset: 4, highWatermark: 4 });
    await logManager.appendRecords('edge', 0, values('f', 1));
    expect(await readAll(logManager, 'edge', 0, 4)).toEqual([[4, 'f0']]);
    expect((await caught(logManager.deleteRecords('edge', 3, 0))).code).toBe('UNKNOWN_TOPIC_OR_PARTITION');
  });

  it('after a crash between recording the start and deleting segments, open honours the recorded start; one past the end is lowered and reported', async () => {
    const dir = await tempDir();
    const logManager = await openLog(dir);
    await logManager.createTopic('crash', { partitions: 2 });
    await logManager.appendRecords('crash', 0, values('c', 5));
    await logManager.appendRecords('crash', 1, values('d', 2));
    await logManager.close();
    await writeLogStartOffset(join(dir, 'crash-0'), 3);
    await writeLogStartOffset(join(dir, 'crash-1'), 9);
    expect(await readdir(join(dir, 'crash-0'))).toContain(LOG_START_OFFSET_FILE);
    const again = await openLog(dir);
    expect(again.describePartition('crash', 0)).toMatchObject({ logStartOffset: 3, highWatermark: 5 });
    expect(await readAll(again, 'crash', 0, 3)).toEqual([
      [3, 'c3'],
      [4, 'c4'],
    ]);
    expect(again.describePartition('crash', 1)).toMatchObject({ logStartOffset: 2, highWatermark: 2 });
    expect(again.recoveryReport().map((e) => e.detail)).toContain(
      'the recorded log start offset 9 is past the log end offset 2 (an unsynced tail was lost); the log starts at 2',
    );
  });
});

describe("compression (Kafka's compression.type)", () => {
  it('stores every batch in the topic codec, keeping records, timestamps and the producer fields; producer keeps them as sent', async () => {
    const logManager = await openLog(await tempDir());
    await logManager.createTopic('lz4', { partitions: 1, config: { compression: 'lz4' } });
    await logManager.createTopic('as-sent', { partitions: 1 });
    const batch = () =>
      encodeRecordBatch(
        [
          { key: Buffer.from('k'), value: Buffer.from('v0'), headers: [{ key: 'h', value: Buffer.from('x') }], timestampMs: 1000 },
          { key: null, value: Buffer.from('v1'), timestampMs: 2000 },
        ],
        { compression: 'gzip', producerId: 7, producerEpoch: 0, baseSequence: 0 },
      );
    await logManager.append('lz4', 0, batch());
    await logManager.append('as-sent', 0, batch());
    const stored = async (topic: string) => (await logManager.read(topic, 0, 0, { maxBytes: 4096 })).records;
    const [lz4] = decodeRecordBatches(await stored('lz4'));
    expect(readBatchHeader(await stored('lz4'))).toMatchObject({
      compression: 'lz4',
      producerId: 7,
      producerEpoch: 0,
      baseSequence: 0,
      baseTimestamp: 1000,
      maxTimestamp: 2000,
    });
    expect(
      lz4!.records.map((r) => [r.offset, r.key?.toString() ?? null, r.value?.toString(), r.timestampMs, r.headers.map((h) => `${h.key}=${h.value}`)]),
    ).toEqual([
      [0, 'k', 'v0', 1000, ['h=x']],
      [1, null, 'v1', 2000, []],
    ]);
    expect(readBatchHeader(await stored('as-sent')).compression).toBe('gzip');
    // The idempotent producer's retry of the same batch is still recognised as one.
    expect(await logManager.append('lz4', 0, batch())).toMatchObject({ baseOffset: 0, duplicate: true });
    // A change of the config applies to the next append.
    await logManager.alterTopicConfig('lz4', { compression: 'none' });
    await logManager.appendRecords('lz4', 0, [{ key: null, value: Buffer.from('plain') }], { compression: 'snappy' });
    expect(readBatchHeader((await logManager.read('lz4', 0, 2, { maxBytes: 4096 })).records).compression).toBe('none');
  });
});
