import { describe, expect, it, onTestFinished } from 'vitest';
import { logFs, replaceLogFileSystem, type LogFileSystem } from '../../../src/log/file-system.js';
import { encodeRecordBatch } from '../../../src/log/index.js';
import { readRecoveryPoints, recoveryPointKey } from '../../../src/log/recovery-point.js';
import { openLog, tempDir } from './helpers.js';

/**
 * The log's file system with the rename that publishes a producer snapshot
 * held until `release()`: a fault-injection seam, so that the test can roll
 * a segment exactly while a recovery checkpoint writes its snapshot.
 */
function holdSnapshotRename(): { fs: LogFileSystem; reached: Promise<void>; release: () => void } {
  const real = logFs();
  let reached!: () => void;
  let release!: () => void;
  const reachedPromise = new Promise<void>((resolve) => (reached = resolve));
  const released = new Promise<void>((resolve) => (release = resolve));
  const fs: LogFileSystem = {
    ...real,
    async rename(from, to) {
      if (to.endsWith('.snapshot')) {
        reached();
        await released;
      }
      return real.rename(from, to);
    },
  };
  return { fs, reached: reachedPromise, release };
}

describe('recovery point of an idempotent partition', () => {
  it('moves on when the segment rolls while the checkpoint writes the producer snapshot', async () => {
    const dataDir = await tempDir();
    const logManager = await openLog(dataDir, { recoveryCheckpointIntervalMs: 3_600_000, topicDefaults: { segmentBytes: 4096 } });
    await logManager.ensureTopic('t', { partitions: 1 });
    const { producerId, producerEpoch } = await logManager.initProducerId();
    const batch = (baseSequence: number, size: number) =>
      encodeRecordBatch([{ key: null, value: Buffer.alloc(size, 'x') }], { producerId, producerEpoch, baseSequence });
    const first = await logManager.append('t', 0, batch(0, 3000));

    const held = holdSnapshotRename();
    onTestFinished(replaceLogFileSystem(held.fs));
    const checkpoint = logManager.checkpointRecoveryPoints();
    await held.reached;
    // 3000 + 3000 bytes pass segmentBytes: this append goes to a new segment, rolled while the snapshot waits.
    const second = await logManager.append('t', 0, batch(1, 3000));
    expect(second.baseOffset).toBe(first.lastOffset + 1);
    expect(logManager.describePartition('t', 0).segmentCount).toBe(2);
    held.release();
    await checkpoint;

    const point = (await readRecoveryPoints(dataDir)).get(recoveryPointKey('t', 0))!;
    // Everything before the new segment was synced when the old one was sealed: the point is at least there.
    expect(point).toMatchObject({ segmentBase: second.baseOffset, position: 0, nextOffset: second.baseOffset, producerSnapshot: true });
    expect(point.producerStateOffset).toBe(first.lastOffset + 1);
  });
});
