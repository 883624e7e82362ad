import { open, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { ConcordatError } from '../../../src/errors.js';
import { encodeRecordBatch, LogManager } from '../../../src/log/index.js';
import { openLog, readAll, tempDir } from './helpers.js';

async function caught(promise: Promise<unknown>): Promise<ConcordatError> {
  try {
    await promise;
  } catch (error) {
    return error as ConcordatError;
  }
  throw new Error('expected a rejection');
}

/** An idempotent producer's batch of `count` records `<tag>-<i>`. */
function batch(producerId: number, epoch: number, sequence: number, count = 1, tag = `s${sequence}`): Buffer {
  const records = Array.from({ length: count }, (_, i) => ({ key: null, value: Buffer.from(`${tag}-${i}`) }));
  return encodeRecordBatch(records, { producerId, producerEpoch: epoch, baseSequence: sequence });
}

async function logWithTopic(options: Parameters<typeof openLog>[1] = {}) {
  const dir = await tempDir();
  const logManager = await openLog(dir, options);
  await logManager.createTopic('idem', { partitions: 2 });
  return { dir, logManager };
}

describe('InitProducerId', () => {
  it('hands out IDs never handed out before, across restarts (blocks reserved durably)', async () => {
    const dir = await tempDir();
    const first = await LogManager.open({ dataDir: dir });
    const ids = [await first.initProducerId(), await first.initProducerId(), await first.initProducerId()];
    expect(ids).toEqual([0, 1, 2].map((producerId) => ({ producerId, producerEpoch: 0 })));
    await first.close();
    const second = await openLog(dir);
    expect(await second.initProducerId()).toEqual({ producerId: 1000, producerEpoch: 0 });
    const many = await Promise.all(Array.from({ length: 1500 }, () => second.initProducerId()));
    expect(new Set(many.map((p) => p.producerId)).size).toBe(1500);
    expect(Math.min(...many.map((p) => p.producerId))).toBe(1001);
  });
});

describe('idempotent producers', () => {
  it('acknowledges a retry with the original offsets and does not write it again', async () => {
    const { logManager } = await logWithTopic();
    const { producerId } = await logManager.initProducerId();
    expect(await logManager.append('idem', 0, batch(producerId, 0, 0, 3))).toEqual({ baseOffset: 0, lastOffset: 2, logAppendTimeMs: -1, logStartOffset: 0 });
    expect(await logManager.append('idem', 0, batch(producerId, 0, 3, 2))).toMatchObject({ baseOffset: 3, lastOffset: 4 });
    expect(await logManager.append('idem', 0, batch(producerId, 0, 3, 2))).toEqual({
      baseOffset: 3,
      lastOffset: 4,
      logAppendTimeMs: -1,
      logStartOffset: 0,
      duplicate: true,
    });
    expect(logManager.describePartition('idem', 0).highWatermark).toBe(5);
    expect((await readAll(logManager, 'idem', 0)).map(([, v]) => v)).toEqual(['s0-0', 's0-1', 's0-2', 's3-0', 's3-1']);
  });

  it('answers a retry made while the original waits for its sync once the original is durable', async () => {
    const { logManager } = await logWithTopic();
    const [first, retry] = await Promise.all([logManager.append('idem', 1, batch(7, 0, 0, 2)), logManager.append('idem', 1, batch(7, 0, 0, 2))]);
    expect(first).toMatchObject({ baseOffset: 0, lastOffset: 1 });
    expect(retry).toMatchObject({ baseOffset: 0, lastOffset: 1, duplicate: true });
    expect(logManager.describePartition('idem', 1).highWatermark).toBe(2);
  });

  it('refuses a gap or a replay older than the last five batches with OUT_OF_ORDER_SEQUENCE_NUMBER', async () => {
    const { logManager } = await logWithTopic();
    for (let seq = 0; seq < 7; seq++) await logManager.append('idem', 0, batch(5, 0, seq));
    const gap = await caught(logManager.append('idem', 0, batch(5, 0, 9)));
    expect([gap.code, gap.message]).toEqual([
      'OUT_OF_ORDER_SEQUENCE_NUMBER',
      "topic 'idem' partition 0: producer 5 epoch 0 sent sequence 9, expected 7 (the last appended was 6)",
    ]);
    const tooOld = await caught(logManager.append('idem', 0, batch(5, 0, 1)));
    expect([tooOld.code, tooOld.message]).toEqual([
      'OUT_OF_ORDER_SEQUENCE_NUMBER',
      "topic 'idem' partition 0: producer 5 epoch 0 sent sequence 1, expected 7 (the last appended was 6)",
    ]);
    for (let seq = 2; seq < 7; seq++) expect(await logManager.append('idem', 0, batch(5, 0, seq))).toMatchObject({ baseOffset: seq, duplicate: true });
    expect(logManager.describePartition('idem', 0).highWatermark).toBe(7);
  });

  it('fences an older epoch and makes a new epoch start at sequence 0', async () => {
    const { logManager } = await logWithTopic();
    await logManager.append('idem', 0, batch(9, 0, 0));
    await logManager.append('idem', 0, batch(9, 1, 0));
    const fenced = await caught(logManager.append('idem', 0, batch(9, 0, 1)));
    expect([fenced.code, fenced.message]).toEqual([
      'INVALID_PRODUCER_EPOCH',
      "topic 'idem' partition 0: producer 9 sent epoch 0, older than its current epoch 1; a newer instance of this producer fenced it",
    ]);
    const badStart = await caught(logManager.append('idem', 0, batch(9, 2, 5)));
    expect([badStart.code, badStart.message]).toEqual([
      'OUT_OF_ORDER_SEQUENCE_NUMBER',
      "topic 'idem' partition 0: producer 9 started epoch 2 at sequence 5; a new epoch must start at 0",
    ]);
    expect(await logManager.append('idem', 0, batch(9, 1, 1))).toMatchObject({ baseOffset: 2 });
  });

  it('accepts any sequence from a producer it does not know, wraps sequences at 2^31-1, and keeps partitions apart', async () => {
    const { logManager } = await logWithTopic();
    expect(await logManager.append('idem', 0, batch(42, 0, 2_147_483_646, 2))).toMatchObject({ baseOffset: 0 });
    expect(await logManager.append('idem', 0, batch(42, 0, 0))).toMatchObject({ baseOffset: 2 });
    expect(await logManager.append('idem', 1, batch(42, 0, 500))).toMatchObject({ baseOffset: 0 });
  });

  it('refuses a repeated batch among others in one append with DUPLICATE_SEQUENCE_NUMBER', async () => {
    const { logManager } = await logWithTopic();
    await logManager.append('idem', 0, batch(3, 0, 0));
    const mixed = await caught(logManager.append('idem', 0, Buffer.concat([batch(3, 0, 0), batch(3, 0, 1)])));
    expect([mixed.code, mixed.message]).toEqual([
      'DUPLICATE_SEQUENCE_NUMBER',
      "topic 'idem' partition 0: batch 0 repeats sequences 0..0 of producer 3, already appended at offset 0, among other batches of the same append; send an idempotent batch alone",
    ]);
  });

  it('drops the sequences of a failed append, so its retry is written', async () => {
    const { dir, logManager } = await logWithTopic();
    await logManager.append('idem', 0, batch(11, 0, 0));
    const probe = await open(join(dir, 'probe'), 'w');
    const prototype = Object.getPrototypeOf(probe) as { datasync: () => Promise<void> };
    await probe.close();
    const original = prototype.datasync;
    prototype.datasync = function failOnce(this: unknown) {
      prototype.datasync = original;
      return Promise.reject(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }));
    };
    onTestFinished(() => {
      prototype.datasync = original;
    });
    const failed = await caught(logManager.append('idem', 0, batch(11, 0, 1)));
    expect(failed.code).toBe('KAFKA_STORAGE_ERROR');
    expect(await logManager.append('idem', 0, batch(11, 0, 1))).toEqual({ baseOffset: 1, lastOffset: 1, logAppendTimeMs: -1, logStartOffset: 0 });
    expect((await readAll(logManager, 'idem', 0)).map(([o, v]) => `${o}:${v}`)).toEqual(['0:s0-0', '1:s1-0']);
  });

  it('remembers producers across a clean restart (snapshot) and a crash (snapshot + replay)', async () => {
    const dir = await tempDir();
    const first = await LogManager.open({ dataDir: dir });
    await first.createTopic('idem', { partitions: 1 });
    for (let seq = 0; seq < 4; seq++) await first.append('idem', 0, batch(21, 0, seq));
    await first.close();
    const snapshots = (await readdir(join(dir, 'idem-0'))).filter((f) => f.endsWith('.snapshot'));
    expect(snapshots).toEqual(['00000000000000000004.snapshot']);

    const second = await LogManager.open({ dataDir: dir });
    expect(await second.append('idem', 0, batch(21, 0, 3))).toMatchObject({ baseOffset: 3, duplicate: true });
    for (let seq = 4; seq < 6; seq++) await second.append('idem', 0, batch(21, 0, seq));
    await second.checkpointRecoveryPoints();
    const points = await readFile(join(dir, 'recovery-point-offset-checkpoint'));
    for (let seq = 6; seq < 9; seq++) await second.append('idem', 0, batch(21, 0, seq));
    await second.close();
    // As a crash after the checkpoint would leave it: the recovery point (and snapshot) at offset 6, batches 6..8 after it.
    await writeFile(join(dir, 'recovery-point-offset-checkpoint'), points);

    const third = await openLog(dir);
    expect(await third.append('idem', 0, batch(21, 0, 8))).toMatchObject({ baseOffset: 8, duplicate: true });
    expect(await third.append('idem', 0, batch(21, 0, 5))).toMatchObject({ baseOffset: 5, duplicate: true });
    const gap = await caught(third.append('idem', 0, batch(21, 0, 10)));
    expect(gap.message).toBe("topic 'idem' partition 0: producer 21 epoch 0 sent sequence 10, expected 9 (the last appended was 8)");
    expect(await third.append('idem', 0, batch(21, 0, 9))).toMatchObject({ baseOffset: 9 });
    expect((await readdir(join(dir, 'idem-0'))).filter((f) => f.endsWith('.snapshot')).length).toBeLessThanOrEqual(2);
  });

  it('forgets producers whose batches retention deleted, and producers idle past producerIdExpirationMs', async () => {
    const { logManager } = await logWithTopic({ topicDefaults: { segmentBytes: 1024, retentionMs: 1000 }, producerIdExpirationMs: 60_000 });
    const old = Date.now() - 10_000;
    for (let seq = 0; seq < 10; seq++) {
      const records = [{ key: null, value: Buffer.alloc(150), timestampMs: old }];
      await logManager.append('idem', 0, encodeRecordBatch(records, { producerId: 31, producerEpoch: 0, baseSequence: seq }));
    }
    // Too big to share a segment with the old batches: they all end up in rolled segments.
    await logManager.append('idem', 0, encodeRecordBatch([{ key: null, value: Buffer.alloc(900) }], { producerId: 32, producerEpoch: 0, baseSequence: 0 }));
    expect((await logManager.enforceRetention(Date.now())).deletedSegments).toBeGreaterThan(0);
    expect(logManager.describePartition('idem', 0).logStartOffset).toBe(10);
    // Producer 31's batches are gone: any sequence is taken. Producer 32 is still known.
    expect(await logManager.append('idem', 0, batch(31, 0, 77))).toMatchObject({ baseOffset: 11 });
    expect((await caught(logManager.append('idem', 0, batch(32, 0, 5)))).code).toBe('OUT_OF_ORDER_SEQUENCE_NUMBER');
    await logManager.enforceRetention(Date.now() + 120_000);
    expect(await logManager.append('idem', 0, batch(32, 0, 5))).toMatchObject({ baseOffset: 12 });
  });
});
