import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished, vi } from 'vitest';
import { ConcordatError } from '../../../src/errors.js';
import { decodeRecordBatches, encodeRecordBatch, LogManager } from '../../../src/log/index.js';
import { openLog, readAll, tempDir } from './helpers.js';

function withIds(ids: (string | null)[], tag = 'v', timestampMs?: number) {
  return ids.map((id, i) => ({
    key: null,
    value: Buffer.from(`${tag}${i}`),
    headers: id === null ? [] : [{ key: 'ce_id', value: Buffer.from(id) }],
    ...(timestampMs === undefined ? {} : { timestampMs }),
  }));
}

async function dedupLog(config: { dedupWindowMs?: number; dedupWindowIdsMax?: number } = {}, partitions = 2) {
  const dir = await tempDir();
  const logManager = await openLog(dir);
  await logManager.createTopic('dd', { partitions, config: { dedupWindowMs: 120_000, ...config } });
  return { dir, logManager };
}

describe('message-ID dedup window', () => {
  it('acknowledges a record whose ce_id was appended within the window with the original’s location, writing nothing', async () => {
    const { logManager } = await dedupLog();
    const first = await logManager.appendRecords('dd', 0, withIds(['a', 'b', 'c']));
    expect(first).toEqual({
      baseOffset: 0,
      lastOffset: 2,
      logAppendTimeMs: -1,
      logStartOffset: 0,
      recordLocations: [0, 1, 2].map((offset) => ({ partition: 0, offset })),
    });
    const again = await logManager.appendRecords('dd', 0, withIds(['a', 'b', 'c'], 'retry'));
    expect(again).toEqual({ ...first, duplicate: true });
    // A retry that landed on another partition (a null key goes round-robin) is found there too.
    const elsewhere = await logManager.appendRecords('dd', 1, withIds(['b'], 'moved'));
    expect(elsewhere).toMatchObject({ duplicate: true, recordLocations: [{ partition: 0, offset: 1 }] });
    expect(logManager.describeTopic('dd').partitions.map((p) => p.highWatermark)).toEqual([3, 0]);
  });

  it('rebuilds a batch that repeats only some IDs, keeping its codec and timestamps; records without ce_id always go', async () => {
    const { logManager } = await dedupLog();
    await logManager.appendRecords('dd', 0, withIds(['a', 'b']));
    const mixed = await logManager.appendRecords('dd', 0, withIds(['a', 'x', null, 'b', 'y', 'x'], 'm', 1_700_000_000_123), { compression: 'snappy' });
    expect(mixed).toEqual({
      baseOffset: 2,
      lastOffset: 4,
      logAppendTimeMs: -1,
      logStartOffset: 0,
      recordLocations: [
        { partition: 0, offset: 0 },
        { partition: 0, offset: 2 },
        { partition: 0, offset: 3 },
        { partition: 0, offset: 1 },
        { partition: 0, offset: 4 },
        { partition: 0, offset: 2 },
      ],
    });
    const { records } = await logManager.read('dd', 0, 2, { maxBytes: 10_000 });
    const [stored] = decodeRecordBatches(records);
    expect(stored!.compression).toBe('snappy');
    expect(stored!.records.map((r) => [r.offset, r.value!.toString(), r.timestampMs])).toEqual([
      [2, 'm1', 1_700_000_000_123],
      [3, 'm2', 1_700_000_000_123],
      [4, 'm4', 1_700_000_000_123],
    ]);
  });

  it('forgets IDs older than dedupWindowMs and beyond dedupWindowIdsMax', async () => {
    const { logManager } = await dedupLog({ dedupWindowMs: 300, dedupWindowIdsMax: 3 });
    // The window ages by Date.now(): a fake clock (Date only; file I/O and timers stay real) moves it to the edge exactly.
    vi.useFakeTimers({ toFake: ['Date'] });
    onTestFinished(() => void vi.useRealTimers());
    const appendedAt = Date.now();
    await logManager.appendRecords('dd', 0, withIds(['a', 'b', 'c', 'd']));
    // 'a' was pushed out by the bound of three IDs.
    expect(await logManager.appendRecords('dd', 0, withIds(['a']))).toMatchObject({ baseOffset: 4, recordLocations: [{ partition: 0, offset: 4 }] });
    expect(await logManager.appendRecords('dd', 0, withIds(['d']))).toMatchObject({ duplicate: true, recordLocations: [{ partition: 0, offset: 3 }] });
    vi.setSystemTime(appendedAt + 300);
    expect(await logManager.appendRecords('dd', 0, withIds(['d']))).toMatchObject({ duplicate: true, recordLocations: [{ partition: 0, offset: 3 }] });
    vi.setSystemTime(appendedAt + 301);
    expect(await logManager.appendRecords('dd', 0, withIds(['d']))).toMatchObject({ baseOffset: 5 });
  });

  it('waits for an original still being synced, and forgets the IDs of a failed append so that its retry is written', async () => {
    const { dir, logManager } = await dedupLog();
    const [first, second] = await Promise.all([logManager.appendRecords('dd', 0, withIds(['p'])), logManager.appendRecords('dd', 1, withIds(['p']))]);
    expect(first).toMatchObject({ baseOffset: 0 });
    expect(second).toMatchObject({ duplicate: true, recordLocations: [{ partition: 0, offset: 0 }] });

    const probe = await open(join(dir, 'probe'), 'w');
    const prototype = Object.getPrototypeOf(probe) as { datasync: () => Promise<void> };
    await probe.close();
    const original = prototype.datasync;
    prototype.datasync = function failOnce(this: unknown) {
      prototype.datasync = original;
      return Promise.reject(Object.assign(new Error('ENOSPC: no space left on device, fdatasync'), { code: 'ENOSPC' }));
    };
    onTestFinished(() => {
      prototype.datasync = original;
    });
    const failed = await logManager.appendRecords('dd', 0, withIds(['q'])).catch((e: ConcordatError) => e);
    expect((failed as ConcordatError).code).toBe('KAFKA_STORAGE_ERROR');
    expect(await logManager.appendRecords('dd', 0, withIds(['q']))).toMatchObject({ baseOffset: 1, recordLocations: [{ partition: 0, offset: 1 }] });
  });

  it('does not drop records of idempotent batches (their sequences would break) but registers their IDs', async () => {
    const { logManager } = await dedupLog();
    const batch = encodeRecordBatch(withIds(['i1', 'i2']), { producerId: 5, producerEpoch: 0, baseSequence: 0 });
    await logManager.append('dd', 0, batch);
    const next = encodeRecordBatch(withIds(['i1', 'i3']), { producerId: 5, producerEpoch: 0, baseSequence: 2 });
    expect(await logManager.append('dd', 0, next)).toMatchObject({ baseOffset: 2, lastOffset: 3 });
    expect(await logManager.appendRecords('dd', 1, withIds(['i3']))).toMatchObject({ duplicate: true, recordLocations: [{ partition: 0, offset: 3 }] });
  });

  it('rebuilds the window from the log after a restart', async () => {
    const dir = await tempDir();
    const first = await LogManager.open({ dataDir: dir });
    await first.createTopic('dd', { partitions: 2, config: { dedupWindowMs: 60_000, dedupWindowIdsMax: 1000 } });
    await first.appendRecords('dd', 0, withIds(['old'], 'o', Date.now() - 120_000));
    await first.appendRecords('dd', 0, withIds(['r0', 'r1']));
    await first.appendRecords('dd', 1, withIds(['r2']));
    await first.close();
    const logManager = await openLog(dir);
    expect(await logManager.appendRecords('dd', 1, withIds(['r1', 'r2']))).toMatchObject({
      duplicate: true,
      recordLocations: [
        { partition: 0, offset: 2 },
        { partition: 1, offset: 0 },
      ],
    });
    // Its record is older than the window: not in the rebuilt window.
    expect(await logManager.appendRecords('dd', 0, withIds(['old']))).toMatchObject({ baseOffset: 3 });
    expect((await readAll(logManager, 'dd', 0)).map(([, v]) => v)).toEqual(['o0', 'v0', 'v1', 'v0']);
  });

  it('leaves a topic without a window alone', async () => {
    const logManager = await openLog(await tempDir());
    await logManager.createTopic('plain', { partitions: 1 });
    await logManager.appendRecords('plain', 0, withIds(['a']));
    const second = await logManager.appendRecords('plain', 0, withIds(['a']));
    expect(second).toEqual({ baseOffset: 1, lastOffset: 1, logAppendTimeMs: -1, logStartOffset: 0 });
  });
});
