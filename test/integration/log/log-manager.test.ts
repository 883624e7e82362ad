import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished, vi } from 'vitest';
import { ConcordatError } from '../../../src/errors.js';
import { decodeRecordBatches, encodeRecordBatch, LogManager } from '../../../src/log/index.js';
import { until } from '../../../src/testing/index.js';
import { openLog, readAll, tempDir } from './helpers.js';

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

describe('LogManager topics', () => {
  it('creates, describes, lists and deletes topics, with partition directories on disk', async () => {
    const dir = await tempDir();
    const logManager = await openLog(dir);
    await logManager.createTopic('orders', { partitions: 3, config: { segmentBytes: 4096 } });
    await logManager.ensureTopic('orders', { partitions: 9 });
    await logManager.ensureTopic('payments', { partitions: 1 });
    expect(logManager.listTopics()).toEqual(['orders', 'payments']);
    expect(logManager.hasTopic('orders')).toBe(true);
    const description = logManager.describeTopic('orders');
    expect(description.config.segmentBytes).toBe(4096);
    expect(description.config.flushMode).toBe('sync');
    expect(description.partitions).toEqual(
      [0, 1, 2].map((partition) => ({
        partition,
        logStartOffset: 0,
        highWatermark: 0,
        lastStableOffset: 0,
        logEndOffset: 0,
        sizeBytes: 0,
        segmentCount: 1,
        readsWaiting: 0,
      })),
    );
    expect((await readdir(join(dir, 'orders-2'))).sort()).toEqual(['00000000000000000000.index', '00000000000000000000.log', '00000000000000000000.timeindex']);
    await logManager.deleteTopic('orders');
    expect(logManager.hasTopic('orders')).toBe(false);
    expect((await readdir(dir)).filter((name) => name.startsWith('orders'))).toEqual([]);
  });

  it('refuses duplicates, bad names, bad partition counts and bad configs with Kafka’s codes', async () => {
    const logManager = await openLog(await tempDir(), { partitionsPerTopicMax: 8 });
    await logManager.createTopic('t', { partitions: 1 });
    const duplicate = await caught(logManager.createTopic('t', { partitions: 1 }));
    expect([duplicate.code, duplicate.message]).toEqual(['TOPIC_ALREADY_EXISTS', "Topic 't' already exists."]);
    const badName = await caught(logManager.createTopic('a b', { partitions: 1 }));
    expect(badName.code).toBe('INVALID_TOPIC_EXCEPTION');
    const collision = await caught(logManager.createTopic('x.y', { partitions: 1 }).then(() => logManager.createTopic('x_y', { partitions: 1 })));
    expect([collision.code, collision.message]).toEqual(['INVALID_TOPIC_EXCEPTION', "Topic 'x_y' collides with existing topics: x.y"]);
    const tooMany = await caught(logManager.createTopic('big', { partitions: 9 }));
    expect([tooMany.code, tooMany.message]).toEqual([
      'INVALID_PARTITIONS',
      "Topic 'big' cannot have 9 partitions: the number must be 1..8 (log option partitionsPerTopicMax)",
    ]);
    const zero = await caught(logManager.createTopic('zero', { partitions: 0 }));
    expect(zero.code).toBe('INVALID_PARTITIONS');
    const config = await caught(logManager.createTopic('cfg', { partitions: 1, config: { segmentBytes: 1 } }));
    expect([config.code, config.message]).toEqual([
      'INVALID_CONFIG',
      "Topic 'cfg': invalid options: topic.segmentBytes: Too small: expected number to be >=1024 (got 1)",
    ]);
    const unknown = await caught(logManager.append('nope', 0, encodeRecordBatch(values('v', 1))));
    expect([unknown.code, unknown.message]).toEqual([
      'UNKNOWN_TOPIC_OR_PARTITION',
      "This server does not host this topic-partition: topic 'nope' does not exist",
    ]);
    const noPartition = await caught(logManager.read('t', 3, 0, { maxBytes: 100 }));
    expect(noPartition.message).toBe("This server does not host this topic-partition: topic 't' has no partition 3");
  });

  it('keeps topics, configs and data across a clean reopen', async () => {
    const dir = await tempDir();
    const logManager = await LogManager.open({ dataDir: dir });
    await logManager.createTopic('keep', { partitions: 2, config: { indexIntervalBytes: 128 } });
    await logManager.appendRecords('keep', 1, values('a', 10));
    await logManager.close();
    const reopened = await openLog(dir);
    expect(reopened.describeTopic('keep').config.indexIntervalBytes).toBe(128);
    expect(reopened.describePartition('keep', 1)).toMatchObject({ highWatermark: 10, logEndOffset: 10 });
    expect((await readAll(reopened, 'keep', 1)).map(([, v]) => v)).toEqual(values('a', 10).map((r) => r.value.toString()));
    const next = await reopened.appendRecords('keep', 1, values('b', 1));
    expect(next.baseOffset).toBe(10);
  });

  it('refuses a second open of the same directory', async () => {
    const dir = await tempDir();
    await openLog(dir);
    const error = await caught(LogManager.open({ dataDir: dir }));
    expect(error.code).toBe('LOG_DIR_LOCKED');
    expect(error.message).toMatch(
      /^log directory .* is locked: this process \(\d+\) already has it open: one log directory serves one log at a time\. For several apps in one process, create one EmbeddedTransport and pass it to each app as `transport`, or give each app its own dataDir$/,
    );
  });
});

describe('LogManager append and read', () => {
  it('assigns contiguous offsets, rewrites baseOffset in place and returns Kafka’s produce answer', async () => {
    const logManager = await openLog(await tempDir());
    await logManager.createTopic('p', { partitions: 1 });
    const batch = encodeRecordBatch(values('x', 3), { baseOffset: 999 });
    expect(await logManager.append('p', 0, batch)).toEqual({ baseOffset: 0, lastOffset: 2, logAppendTimeMs: -1, logStartOffset: 0 });
    expect(batch.readInt32BE(4)).toBe(0);
    const two = Buffer.concat([encodeRecordBatch(values('y', 2)), encodeRecordBatch(values('z', 4))]);
    expect(await logManager.append('p', 0, two)).toEqual({ baseOffset: 3, lastOffset: 8, logAppendTimeMs: -1, logStartOffset: 0 });
    expect((await readAll(logManager, 'p', 0)).map(([o, v]) => `${o}:${v}`)).toEqual(['0:x0', '1:x1', '2:x2', '3:y0', '4:y1', '5:z0', '6:z1', '7:z2', '8:z3']);
  });

  it('stores the producer’s bytes unchanged apart from baseOffset and leader epoch', async () => {
    const dir = await tempDir();
    const logManager = await openLog(dir);
    await logManager.createTopic('raw', { partitions: 1 });
    const batch = encodeRecordBatch(values('r', 2), { compression: 'zstd', partitionLeaderEpoch: 7 });
    const original = Buffer.from(batch);
    await logManager.append('raw', 0, batch);
    const read = await logManager.read('raw', 0, 0, { maxBytes: 1 << 20 });
    expect(read.records.subarray(17).equals(original.subarray(17))).toBe(true);
    expect(read.records.subarray(8, 12).equals(original.subarray(8, 12))).toBe(true);
    expect(read.records.readInt32BE(12)).toBe(0);
  });

  it('reads from any offset: whole batches from the one holding it, at least one batch even over maxBytes', async () => {
    const logManager = await openLog(await tempDir(), { topicDefaults: { segmentBytes: 2048, indexIntervalBytes: 256 } });
    await logManager.createTopic('r', { partitions: 1 });
    for (let i = 0; i < 40; i++) await logManager.appendRecords('r', 0, values(`b${i}-`, 5));
    expect(logManager.describePartition('r', 0).segmentCount).toBeGreaterThan(2);
    for (const offset of [0, 1, 4, 5, 77, 123, 199]) {
      const result = await logManager.read('r', 0, offset, { maxBytes: 1 });
      const batches = decodeRecordBatches(result.records);
      expect(batches).toHaveLength(1);
      expect(batches[0]!.baseOffset).toBe(Math.floor(offset / 5) * 5);
      expect(result).toMatchObject({ highWatermark: 200, logStartOffset: 0, lastStableOffset: 200, logEndOffset: 200 });
    }
    const big = await logManager.read('r', 0, 50, { maxBytes: 1000 });
    const batches = decodeRecordBatches(big.records);
    expect(batches.length).toBeGreaterThan(1);
    expect(big.records.length).toBeLessThanOrEqual(1000);
    expect(batches.map((b) => b.baseOffset)).toEqual(batches.map((_, i) => 50 + 5 * i));
    expect((await readAll(logManager, 'r', 0)).map(([o]) => o)).toEqual(Array.from({ length: 200 }, (_, i) => i));
  });

  it('reads into a caller’s buffer when the result fits, and continues where the last read ended', async () => {
    const logManager = await openLog(await tempDir(), { topicDefaults: { indexIntervalBytes: 64 } });
    await logManager.createTopic('buf', { partitions: 1 });
    for (let i = 0; i < 30; i++) await logManager.appendRecords('buf', 0, values(`b${i}-`, 3));
    const buffer = Buffer.alloc(4096);
    const first = await logManager.read('buf', 0, 0, { maxBytes: 1000, buffer });
    expect(first.records.buffer).toBe(buffer.buffer);
    const firstBatches = decodeRecordBatches(first.records);
    const next = firstBatches[firstBatches.length - 1]!.lastOffset + 1;
    const second = await logManager.read('buf', 0, next, { maxBytes: 1000 });
    expect(decodeRecordBatches(second.records)[0]!.baseOffset).toBe(next);
    const tiny = Buffer.alloc(8);
    const fallback = await logManager.read('buf', 0, 3, { maxBytes: 1000, buffer: tiny });
    expect(fallback.records.buffer).not.toBe(tiny.buffer);
    expect(decodeRecordBatches(fallback.records)[0]!.baseOffset).toBe(3);
  });

  it('answers OFFSET_OUT_OF_RANGE past the log end and returns nothing at the end', async () => {
    const logManager = await openLog(await tempDir());
    await logManager.createTopic('o', { partitions: 1 });
    await logManager.appendRecords('o', 0, values('v', 2));
    expect((await logManager.read('o', 0, 2, { maxBytes: 100 })).records.length).toBe(0);
    const error = await caught(logManager.read('o', 0, 3, { maxBytes: 100 }));
    expect([error.code, error.message]).toEqual(['OFFSET_OUT_OF_RANGE', "offset 3 is out of range for topic 'o' partition 0 (log start 0, log end 2)"]);
  });

  it('long-polls: a read at the end waits for the next durable append, or for maxWaitMs, or until aborted', async () => {
    const logManager = await openLog(await tempDir());
    await logManager.createTopic('lp', { partitions: 1 });
    const started = Date.now();
    const waiting = logManager.read('lp', 0, 0, { maxBytes: 1000, maxWaitMs: 5000 });
    // Appended once the read waits (not after a fixed delay, which a loaded machine can outlast).
    await until(() => logManager.describePartition('lp', 0).readsWaiting === 1, { timeoutMs: 5000, message: 'the read waiting' });
    await logManager.appendRecords('lp', 0, values('late', 1));
    const result = await waiting;
    expect(decodeRecordBatches(result.records)[0]!.records[0]!.value!.toString()).toBe('late0');
    expect(Date.now() - started).toBeLessThan(4000);
    expect(logManager.describePartition('lp', 0).readsWaiting).toBe(0);

    // maxWaitMs must elapse: the one wait here that is about time.
    const timedStart = Date.now();
    const empty = await logManager.read('lp', 0, 1, { maxBytes: 1000, maxWaitMs: 150 });
    expect(empty.records.length).toBe(0);
    expect(Date.now() - timedStart).toBeGreaterThanOrEqual(140);

    const controller = new AbortController();
    const abortStart = Date.now();
    const aborted = logManager.read('lp', 0, 1, { maxBytes: 1000, maxWaitMs: 10_000, signal: controller.signal });
    await until(() => logManager.describePartition('lp', 0).readsWaiting === 1, { timeoutMs: 5000, message: 'the read waiting' });
    controller.abort();
    expect((await aborted).records.length).toBe(0);
    // Ended by the abort, long before its 10 s.
    expect(Date.now() - abortStart).toBeLessThan(5000);
    expect(logManager.describePartition('lp', 0).readsWaiting).toBe(0);

    const tooLong = await caught(logManager.read('lp', 0, 1, { maxBytes: 1000, maxWaitMs: 700_000 }));
    expect(tooLong.message).toBe('maxWaitMs 700000 exceeds readWaitMsMax (600000); raise the log option readWaitMsMax');
  });

  it('waits for minBytes', async () => {
    const logManager = await openLog(await tempDir());
    await logManager.createTopic('mb', { partitions: 1 });
    await logManager.appendRecords('mb', 0, values('a', 1));
    const waiting = logManager.read('mb', 0, 0, { maxBytes: 100_000, minBytes: 200, maxWaitMs: 5000 });
    await logManager.appendRecords('mb', 0, values('b', 1));
    await logManager.appendRecords('mb', 0, [{ key: null, value: Buffer.alloc(300) }]);
    const result = await waiting;
    expect(result.records.length).toBeGreaterThanOrEqual(200);
    expect(decodeRecordBatches(result.records).map((b) => b.baseOffset)).toEqual([0, 1, 2]);
  });

  it('shares fdatasyncs among concurrent appends (group commit)', async () => {
    const logManager = await openLog(await tempDir());
    await logManager.createTopic('gc', { partitions: 4 });
    const before = logManager.flushStats();
    const acks = await Promise.all(Array.from({ length: 256 }, (_, i) => logManager.appendRecords('gc', i % 4, values(`g${i}-`, 1))));
    const after = logManager.flushStats();
    expect(after.requests - before.requests).toBeLessThanOrEqual(256);
    // Made in one turn of the event loop, each partition's 64 appends share one write and one sync.
    expect(after.syncs - before.syncs).toBeLessThanOrEqual(8);
    for (let p = 0; p < 4; p++) {
      expect(acks.filter((_, i) => i % 4 === p).map((a) => a.baseOffset)).toEqual(Array.from({ length: 64 }, (_, i) => i));
    }
  });

  it('spreads null keys round-robin and hashes keys with murmur2', async () => {
    const logManager = await openLog(await tempDir());
    await logManager.createTopic('k', { partitions: 3 });
    expect([0, 1, 2, 3, 4, 5].map(() => logManager.partitionFor('k', null))).toEqual([0, 1, 2, 0, 1, 2]);
    expect(logManager.partitionFor('k', 'foobar')).toBe((-790332482 & 0x7fffffff) % 3);
    expect(logManager.partitionFor('k', Buffer.from('21'))).toBe((-973932308 & 0x7fffffff) % 3);
  });

  it('acknowledges after the page-cache write with flushMode os, and reads it back after reopen', async () => {
    const dir = await tempDir();
    const logManager = await LogManager.open({ dataDir: dir });
    await logManager.createTopic('fast', { partitions: 1, config: { flushMode: 'os' } });
    const before = logManager.flushStats().syncs;
    for (let i = 0; i < 20; i++) await logManager.appendRecords('fast', 0, values(`f${i}-`, 1));
    expect(logManager.flushStats().syncs).toBe(before);
    await logManager.close();
    const reopened = await openLog(dir);
    expect(reopened.describePartition('fast', 0).highWatermark).toBe(20);
  });

  it('with flushMode os syncs at each recovery checkpoint and records its end as the recovery point', async () => {
    const dir = await tempDir();
    const logManager = await LogManager.open({ dataDir: dir });
    await logManager.createTopic('osmode', { partitions: 1, config: { flushMode: 'os' } });
    for (let i = 0; i < 10; i++) await logManager.appendRecords('osmode', 0, values(`o${i}-`, 1));
    const before = logManager.flushStats().syncs;
    await logManager.checkpointRecoveryPoints();
    expect(logManager.flushStats().syncs).toBe(before + 1);
    await logManager.checkpointRecoveryPoints();
    expect(logManager.flushStats().syncs).toBe(before + 1);
    const { readFile } = await import('node:fs/promises');
    const body = (await readFile(join(dir, 'recovery-point-offset-checkpoint'), 'utf8')).split('\n')[1]!;
    // [topic, partition, segmentBase, position, nextOffset, indexEntries, timeIndexEntries, maxTimestamp, offsetOfMaxTimestamp, producerStateOffset, producerSnapshot]
    const size = logManager.describePartition('osmode', 0).sizeBytes;
    expect(JSON.parse(body)).toEqual({ partitions: [['osmode', 0, 0, size, 10, 0, 0, expect.any(Number), expect.any(Number), 10, 0]] });
  });

  it('with flushMode interval syncs on its timer and acknowledges before', async () => {
    const logManager = await openLog(await tempDir());
    // The partition's flush timer on a fake clock (setInterval only; file I/O stays real): it fires when
    // the test moves the clock, so the appends below are acknowledged unsynced however slow the machine.
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    onTestFinished(() => void vi.useRealTimers());
    await logManager.createTopic('timed', { partitions: 1, config: { flushMode: 'interval', flushIntervalMs: 1_000 } });
    const before = logManager.flushStats().syncs;
    for (let i = 0; i < 5; i++) await logManager.appendRecords('timed', 0, values(`t${i}-`, 1));
    vi.advanceTimersByTime(999);
    expect(logManager.flushStats().syncs).toBe(before);
    // Then the timer syncs them, once.
    vi.advanceTimersByTime(1);
    await until(() => logManager.flushStats().syncs > before, { timeoutMs: 10_000, message: 'the interval sync' });
    expect(logManager.flushStats().syncs).toBe(before + 1);
  });

  it('fails a closed log’s calls with LOG_CLOSED and fails waiting reads', async () => {
    const logManager = await LogManager.open({ dataDir: await tempDir() });
    await logManager.createTopic('c', { partitions: 1 });
    const waiting = caught(logManager.read('c', 0, 0, { maxBytes: 10, maxWaitMs: 10_000 }));
    await until(() => logManager.describePartition('c', 0).readsWaiting === 1, { timeoutMs: 5000, message: 'the read waiting' });
    await logManager.close();
    expect((await waiting).code).toBe('LOG_CLOSED');
    expect((await caught(logManager.appendRecords('c', 0, values('x', 1)))).message).toBe('the log is closed');
  });

  it('rolls segments at segmentBytes and names them by base offset', async () => {
    const dir = await tempDir();
    const logManager = await openLog(dir, { topicDefaults: { segmentBytes: 1024 } });
    await logManager.createTopic('roll', { partitions: 1 });
    for (let i = 0; i < 30; i++) await logManager.appendRecords('roll', 0, [{ key: null, value: Buffer.alloc(100, i) }]);
    const files = (await readdir(join(dir, 'roll-0'))).filter((f) => f.endsWith('.log')).sort();
    expect(files[0]).toBe('00000000000000000000.log');
    expect(files.length).toBe(logManager.describePartition('roll', 0).segmentCount);
    for (const file of files) expect((await stat(join(dir, 'roll-0', file))).size).toBeLessThanOrEqual(1024);
    const bases = files.map((f) => Number(f.slice(0, 20)));
    expect(bases).toEqual([...bases].sort((a, b) => a - b));
    expect((await readAll(logManager, 'roll', 0)).length).toBe(30);
  });
});
