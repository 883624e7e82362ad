import { execFileSync } from 'node:child_process';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ConcordatError } from '../../../src/errors.js';
import { decodeRecordBatches, LogManager } from '../../../src/log/index.js';
import { until } from '../../../src/testing/index.js';
import { openLog, readAll, tempDir } from './helpers.js';

const DAY = 86_400_000;

async function caught(promise: Promise<unknown>): Promise<ConcordatError> {
  try {
    await promise;
  } catch (error) {
    return error as ConcordatError;
  }
  throw new Error('expected a rejection');
}

function record(value: string, timestampMs: number) {
  return { key: null, value: Buffer.from(value), timestampMs };
}

async function segmentFiles(dir: string, topic: string, partition = 0): Promise<string[]> {
  return (await readdir(join(dir, `${topic}-${partition}`))).filter((f) => f.endsWith('.log')).sort();
}

describe('time index and offset for timestamp', () => {
  it('finds the first record at or after a timestamp across segments, codecs and out-of-order timestamps', async () => {
    const logManager = await openLog(await tempDir(), { topicDefaults: { segmentBytes: 2048, indexIntervalBytes: 200 } });
    await logManager.createTopic('ts', { partitions: 1 });
    const base = 1_700_000_000_000;
    // 100 batches of 3 records; batch b has timestamps base + 10b + {0, 5, 2} (not monotonic inside a batch).
    for (let b = 0; b < 100; b++) {
      const batch = [record(`a${b}`, base + 10 * b), record(`b${b}`, base + 10 * b + 5), record(`c${b}`, base + 10 * b + 2)];
      await logManager.appendRecords('ts', 0, batch, b % 4 === 1 ? { compression: 'zstd' } : b % 4 === 2 ? { compression: 'gzip' } : {});
    }
    expect(logManager.describePartition('ts', 0).segmentCount).toBeGreaterThan(3);
    expect(await logManager.offsetForTimestamp('ts', 0, 0)).toEqual({ offset: 0, timestampMs: base });
    expect(await logManager.offsetForTimestamp('ts', 0, base)).toEqual({ offset: 0, timestampMs: base });
    expect(await logManager.offsetForTimestamp('ts', 0, base + 1)).toEqual({ offset: 1, timestampMs: base + 5 });
    expect(await logManager.offsetForTimestamp('ts', 0, base + 3)).toEqual({ offset: 1, timestampMs: base + 5 });
    expect(await logManager.offsetForTimestamp('ts', 0, base + 6)).toEqual({ offset: 3, timestampMs: base + 10 });
    for (const b of [17, 33, 50, 51, 52, 98]) {
      expect(await logManager.offsetForTimestamp('ts', 0, base + 10 * b + 1)).toEqual({ offset: 3 * b + 1, timestampMs: base + 10 * b + 5 });
      expect(await logManager.offsetForTimestamp('ts', 0, base + 10 * b)).toEqual({ offset: 3 * b, timestampMs: base + 10 * b });
    }
    expect(await logManager.offsetForTimestamp('ts', 0, base + 10 * 99 + 6)).toBeNull();
    // The same answers after a reopen, from the time indexes on disk.
    await logManager.close();
  });

  it('answers from the time indexes written to disk after a reopen', async () => {
    const dir = await tempDir();
    const first = await LogManager.open({ dataDir: dir, topicDefaults: { segmentBytes: 1024, indexIntervalBytes: 100 } });
    await first.createTopic('ts', { partitions: 1 });
    for (let i = 0; i < 80; i++) await first.appendRecords('ts', 0, [record(`v${i}`, 5000 + 100 * i)]);
    await first.close();
    const logManager = await openLog(dir);
    for (const i of [0, 13, 40, 79]) {
      expect(await logManager.offsetForTimestamp('ts', 0, 5000 + 100 * i - 50)).toEqual({ offset: i, timestampMs: 5000 + 100 * i });
    }
    expect(await logManager.offsetForTimestamp('ts', 0, 5000 + 100 * 79 + 1)).toBeNull();
    const files = await readdir(join(dir, 'ts-0'));
    expect(files.filter((f) => f.endsWith('.timeindex')).length).toBe(logManager.describePartition('ts', 0).segmentCount);
  });
});

describe('segment roll by age', () => {
  it('rolls when an append is segmentMs later than the segment’s first batch', async () => {
    const dir = await tempDir();
    const logManager = await openLog(dir, { topicDefaults: { segmentMs: 60_000 } });
    await logManager.createTopic('age', { partitions: 1 });
    const t0 = 1_700_000_000_000;
    await logManager.appendRecords('age', 0, [record('a', t0)]);
    await logManager.appendRecords('age', 0, [record('b', t0 + 60_000)]);
    expect(await segmentFiles(dir, 'age')).toEqual(['00000000000000000000.log']);
    await logManager.appendRecords('age', 0, [record('c', t0 + 60_001)]);
    expect(await segmentFiles(dir, 'age')).toEqual(['00000000000000000000.log', '00000000000000000002.log']);
    await logManager.appendRecords('age', 0, [record('d', t0 + 100_000)]);
    expect(await segmentFiles(dir, 'age')).toHaveLength(2);
    expect((await readAll(logManager, 'age', 0)).map(([, v]) => v)).toEqual(['a', 'b', 'c', 'd']);
  });
});

describe('retention', () => {
  it('deletes whole rolled segments older than retentionMs, never the active one, and moves the log start', async () => {
    const dir = await tempDir();
    const logManager = await openLog(dir, { topicDefaults: { segmentBytes: 1024, retentionMs: DAY } });
    await logManager.createTopic('old', { partitions: 1 });
    const now = Date.now();
    // 30 records two days old, then 30 fresh ones.
    for (let i = 0; i < 30; i++) await logManager.appendRecords('old', 0, [{ key: null, value: Buffer.alloc(100, 1), timestampMs: now - 2 * DAY }]);
    for (let i = 0; i < 30; i++) await logManager.appendRecords('old', 0, [{ key: null, value: Buffer.alloc(100, 2), timestampMs: now }]);
    const before = logManager.describePartition('old', 0);
    const files = await segmentFiles(dir, 'old');
    // Segments holding only old records: those whose successor starts at or before offset 30.
    const firstFresh = files.filter((_, i) => i < files.length - 1 && Number(files[i + 1]!.slice(0, 20)) <= 30).length;
    expect(firstFresh).toBeGreaterThan(1);
    const summary = await logManager.enforceRetention(now);
    const after = logManager.describePartition('old', 0);
    expect(summary.deletedSegments).toBe(firstFresh);
    expect(after.segmentCount).toBe(before.segmentCount - firstFresh);
    expect(after.logStartOffset).toBe(Number(files[firstFresh]!.slice(0, 20)));
    expect(after.logStartOffset).toBeLessThanOrEqual(30);
    expect(after.highWatermark).toBe(60);
    expect(await segmentFiles(dir, 'old')).toEqual(files.slice(firstFresh));
    expect((await readdir(join(dir, 'old-0'))).filter((f) => f.startsWith(files[0]!.slice(0, 20)))).toEqual([]);
    const below = await caught(logManager.read('old', 0, 0, { maxBytes: 100 }));
    expect([below.code, below.message]).toEqual([
      'OFFSET_OUT_OF_RANGE',
      `offset 0 is out of range for topic 'old' partition 0 (log start ${after.logStartOffset}, log end 60)`,
    ]);
    // Everything old: all rolled segments go, the active one stays even though it is old too.
    const all = await logManager.enforceRetention(now + 3 * DAY);
    expect(logManager.describePartition('old', 0).segmentCount).toBe(1);
    expect(all.deletedSegments).toBe(after.segmentCount - 1);
    expect(logManager.describePartition('old', 0).highWatermark).toBe(60);
  });

  it('deletes the oldest segments while the partition stays above retentionBytes without them', async () => {
    const dir = await tempDir();
    const logManager = await openLog(dir, { topicDefaults: { segmentBytes: 1024, retentionBytes: 2500, retentionMs: -1 } });
    await logManager.createTopic('big', { partitions: 2 });
    for (let i = 0; i < 40; i++) await logManager.appendRecords('big', 0, [{ key: null, value: Buffer.alloc(150, i) }]);
    const sizes = await Promise.all((await segmentFiles(dir, 'big')).map(async (f) => (await stat(join(dir, 'big-0', f))).size));
    const total = sizes.reduce((a, b) => a + b, 0);
    let expectedDeleted = 0;
    let excess = total - 2500;
    while (expectedDeleted < sizes.length - 1 && excess - sizes[expectedDeleted]! >= 0) excess -= sizes[expectedDeleted++]!;
    const summary = await logManager.enforceRetention(Date.now() + 365 * DAY);
    expect(summary.deletedSegments).toBe(expectedDeleted);
    expect(summary.deletedBytes).toBe(sizes.slice(0, expectedDeleted).reduce((a, b) => a + b, 0));
    const kept = logManager.describePartition('big', 0).sizeBytes;
    expect(kept).toBeGreaterThanOrEqual(2500);
    expect(kept - sizes[expectedDeleted]!).toBeLessThan(2500);
    expect(logManager.describePartition('big', 1)).toMatchObject({ segmentCount: 1, sizeBytes: 0 });
  });

  it('runs on its timer and survives a reopen with the new log start', async () => {
    const dir = await tempDir();
    const first = await LogManager.open({ dataDir: dir, retentionCheckIntervalMs: 100, topicDefaults: { segmentBytes: 1024, retentionMs: 1000 } });
    await first.createTopic('tick', { partitions: 1 });
    for (let i = 0; i < 20; i++) await first.appendRecords('tick', 0, [{ key: null, value: Buffer.alloc(200), timestampMs: Date.now() - 5000 }]);
    await first.appendRecords('tick', 0, [{ key: null, value: Buffer.alloc(200) }]);
    await until(() => first.describePartition('tick', 0).segmentCount === 1, { timeoutMs: 5000, intervalMs: 50, message: 'retention on its timer' });
    const start = first.describePartition('tick', 0).logStartOffset;
    expect(start).toBeGreaterThan(0);
    await first.close();
    const logManager = await openLog(dir);
    expect(logManager.describePartition('tick', 0)).toMatchObject({ logStartOffset: start, highWatermark: 21, segmentCount: 1 });
  });
});

describe('topics and partitions', () => {
  it('describes every partition’s log start, high watermark, log end, size and segments', async () => {
    const logManager = await openLog(await tempDir(), { topicDefaults: { segmentBytes: 1024 } });
    await logManager.createTopic('d', { partitions: 3, config: { retentionMs: 3_600_000 } });
    for (let i = 0; i < 12; i++) await logManager.appendRecords('d', 1, [{ key: null, value: Buffer.alloc(200, i) }]);
    const described = logManager.describeTopic('d');
    expect(described.config.retentionMs).toBe(3_600_000);
    expect(described.partitions.map((p) => [p.partition, p.logStartOffset, p.highWatermark, p.logEndOffset])).toEqual([
      [0, 0, 0, 0],
      [1, 0, 12, 12],
      [2, 0, 0, 0],
    ]);
    expect(described.partitions[1]!.segmentCount).toBeGreaterThan(2);
    expect(described.partitions[1]!.sizeBytes).toBe(12 * (200 + 61 + 9));
  });
});

describe('limits', () => {
  it('keeps at most openFilesMax segment files open and serves every partition anyway', async () => {
    const dir = await tempDir();
    const logManager = await openLog(dir, { openFilesMax: 8 });
    await logManager.createTopic('many', { partitions: 20 });
    await Promise.all(Array.from({ length: 20 }, (_, p) => logManager.appendRecords('many', p, [{ key: null, value: Buffer.from(`p${p}`) }])));
    for (let round = 0; round < 3; round++) {
      const reads = await Promise.all(Array.from({ length: 20 }, (_, p) => logManager.read('many', p, 0, { maxBytes: 100 })));
      reads.forEach((r, p) => expect(decodeRecordBatches(r.records)[0]!.records[0]!.value!.toString()).toBe(`p${p}`));
    }
    const { files } = logManager.stats();
    expect(files.open).toBeLessThanOrEqual(8);
    expect(files.opened).toBeGreaterThan(20);
    expect(files.closed).toBe(files.opened - files.open);
  });

  it('turns running out of descriptors (EMFILE) into LIMIT_EXCEEDED naming openFilesMax and ulimit -n, and undoes the topic', async () => {
    const dir = await tempDir();
    const child = fileURLToPath(new URL('./emfile-child.ts', import.meta.url));
    // 128 descriptors: enough for node, its modules and the log's own files, not for 200 partitions' segments.
    const out = execFileSync('sh', ['-c', `ulimit -n 128 && exec "${process.execPath}" --import tsx "${child}" "${dir}"`], {
      encoding: 'utf8',
      env: { ...process.env, CONCORDAT_LOG_LEVEL: 'silent' },
    });
    const result = JSON.parse(out.trim()) as { reported: { code: string; message: string; limit: string }; wideExists: boolean; topics: string[] };
    expect(result.reported.code).toBe('LIMIT_EXCEEDED');
    expect(result.reported.limit).toBe('openFilesMax');
    expect(result.reported.message).toMatch(
      // Whichever file of a new segment met the limit first: the .log (through the file pool, which names its bound) or an index.
      new RegExp(
        `^opening ${dir}/wide-\\d+/00000000000000000000\\.(log|index|timeindex) failed: the process has no file descriptor left \\(EMFILE\\); ` +
          `lower the log option openFilesMax( \\(1000\\))? or raise the process's limit \\(ulimit -n\\)$`,
      ),
    );
    expect(result.wideExists).toBe(false);
    expect(result.topics).toEqual(['small']);
    const logManager = await openLog(dir);
    expect(logManager.listTopics()).toEqual(['small']);
    expect((await readdir(dir)).filter((name) => name.startsWith('wide-'))).toEqual([]);
  });

  it('bounds the memory of rolled segments’ indexes with indexCacheBytesMax', async () => {
    const dir = await tempDir();
    const first = await LogManager.open({ dataDir: dir, topicDefaults: { segmentBytes: 64 * 1024, indexIntervalBytes: 0 } });
    await first.createTopic('idx', { partitions: 1 });
    for (let i = 0; i < 400; i++)
      await first.appendRecords(
        'idx',
        0,
        Array.from({ length: 20 }, () => ({ key: null, value: Buffer.alloc(200) })),
      );
    await first.close();
    const logManager = await openLog(dir, { indexCacheBytesMax: 1024 * 1024 });
    expect(logManager.stats().indexCache).toEqual({ bytes: 0, segments: 0 });
    expect((await readAll(logManager, 'idx', 0)).length).toBe(8000);
    const { indexCache } = logManager.stats();
    expect(indexCache.segments).toBeGreaterThan(0);
    expect(indexCache.bytes).toBeLessThanOrEqual(1024 * 1024);
  });

  it('names the limit and how to change it: batch size, partitions, topic name', async () => {
    const logManager = await openLog(await tempDir(), { partitionsPerTopicMax: 4 });
    await logManager.createTopic('small', { partitions: 1, config: { maxMessageBytes: 1000 } });
    const big = await caught(logManager.appendRecords('small', 0, [{ key: null, value: Buffer.alloc(2000) }]));
    expect([big.code, big.context.limit]).toEqual(['MESSAGE_TOO_LARGE', 'maxMessageBytes']);
    expect(big.message).toBe(
      "topic 'small' partition 0: record batch of 2070 bytes exceeds the topic's maxMessageBytes (1000); raise the topic config maxMessageBytes or send smaller batches",
    );
    const partitions = await caught(logManager.createTopic('wide', { partitions: 5 }));
    expect(partitions.message).toBe("Topic 'wide' cannot have 5 partitions: the number must be 1..4 (log option partitionsPerTopicMax)");
    const name = await caught(logManager.createTopic('bad name', { partitions: 1 }));
    expect([name.code, name.message]).toEqual([
      'INVALID_TOPIC_EXCEPTION',
      `Topic name "bad name" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'`,
    ]);
  });
});
