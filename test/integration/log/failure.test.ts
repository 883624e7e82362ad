import { execFileSync } from 'node:child_process';
import { mkdir, open, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { ConcordatError } from '../../../src/errors.js';
import { LogManager } from '../../../src/log/index.js';
import { openLog, readAll, tempDir } from './helpers.js';

async function caught(promise: Promise<unknown>): Promise<ConcordatError> {
  try {
    await promise;
  } catch (error) {
    return error as ConcordatError;
  }
  throw new Error('expected a rejection');
}

/** Whether this machine lets the test mount a small tmpfs (root, CAP_SYS_ADMIN). */
function canMountTmpfs(): boolean {
  if (process.getuid?.() !== 0) return false;
  const probe = `/tmp/concordat-mount-probe-${process.pid}`;
  try {
    execFileSync('mkdir', ['-p', probe]);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', probe], { stdio: 'ignore' });
    execFileSync('umount', [probe]);
    return true;
  } catch {
    return false;
  } finally {
    execFileSync('rm', ['-rf', probe]);
  }
}

describe('append failures', () => {
  it.skipIf(!canMountTmpfs())('disk full: the append fails, nothing acknowledged is lost, appends work again once space returns', async () => {
    const mountPoint = await tempDir('concordat-full-');
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mountPoint]);
    onTestFinished(() => {
      execFileSync('umount', ['-l', mountPoint]);
    });
    const filler = join(mountPoint, 'filler');
    await writeFile(filler, Buffer.alloc(512 * 1024));
    const dataDir = join(mountPoint, 'log');
    await mkdir(dataDir);
    const logManager = await LogManager.open({ dataDir });
    onTestFinished(() => logManager.close().catch(() => {}));
    await logManager.createTopic('full', { partitions: 1 });
    const record = (i: number) => [{ key: null, value: Buffer.alloc(100 * 1024, i % 256) }];
    let acknowledged = 0;
    let failure: ConcordatError | null = null;
    for (let i = 0; i < 100 && failure === null; i++) {
      try {
        const ack = await logManager.appendRecords('full', 0, record(i));
        expect(ack.baseOffset).toBe(acknowledged);
        acknowledged += 1;
      } catch (error) {
        failure = error as ConcordatError;
      }
    }
    expect(failure?.code).toBe('KAFKA_STORAGE_ERROR');
    expect(failure?.retriable).toBe(true);
    expect(failure?.message).toMatch(
      /^append to topic 'full' partition 0 failed: the disk is full \(ENOSPC: .*\); nothing unacknowledged was kept\. Free space on the file system holding .*, then retry$/,
    );
    expect(acknowledged).toBeGreaterThan(5);
    expect(logManager.describePartition('full', 0)).toMatchObject({ highWatermark: acknowledged, logEndOffset: acknowledged });

    await rm(filler);
    const next = await logManager.appendRecords('full', 0, [{ key: null, value: Buffer.from('after') }]);
    expect(next.baseOffset).toBe(acknowledged);
    await logManager.close();
    const reopened = await openLog(dataDir);
    const stored = await readAll(reopened, 'full', 0);
    expect(stored.map(([offset]) => offset)).toEqual(Array.from({ length: acknowledged + 1 }, (_, i) => i));
    expect(stored[acknowledged]![1]).toBe('after');
  });

  it.skipIf(!canMountTmpfs())(
    'disk full across segment rolls, checkpoints and offset commits: what failed is refused, what was acknowledged stays',
    async () => {
      const mountPoint = await tempDir('concordat-full-');
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', mountPoint]);
      onTestFinished(() => {
        execFileSync('umount', ['-l', mountPoint]);
      });
      const filler = join(mountPoint, 'filler');
      const dataDir = join(mountPoint, 'log');
      await mkdir(dataDir);
      const logManager = await LogManager.open({ dataDir, topicDefaults: { segmentBytes: 64 * 1024 } });
      onTestFinished(() => logManager.close().catch(() => {}));
      await logManager.createTopic('rolls', { partitions: 1 });
      await writeFile(filler, Buffer.alloc(1024 * 1024));
      let acknowledged = 0;
      let failure: ConcordatError | null = null;
      for (let i = 0; i < 200 && failure === null; i++) {
        try {
          await logManager.appendRecords('rolls', 0, [{ key: null, value: Buffer.alloc(20 * 1024, i % 256) }]);
          acknowledged += 1;
        } catch (error) {
          failure = error as ConcordatError;
        }
      }
      expect([failure?.code, failure?.retriable]).toEqual(['KAFKA_STORAGE_ERROR', true]);
      expect(logManager.describePartition('rolls', 0).segmentCount).toBeGreaterThan(2);
      const commit = () =>
        logManager.groups.commitOffsets({
          groupId: 'g',
          generationId: -1,
          memberId: '',
          topics: [{ topic: 'rolls', partitions: [{ partition: 0, offset: 1 }] }],
        });
      // Fill what is left, so that even a small commit finds no room.
      await writeFile(join(mountPoint, 'rest'), Buffer.alloc(4096)).catch(() => {});
      for (let k = 0; k < 64; k++) await writeFile(join(mountPoint, `crumb-${k}`), Buffer.alloc(4096)).catch(() => {});
      const refused = await caught(commit());
      expect([refused.code, refused.retriable]).toEqual(['KAFKA_STORAGE_ERROR', true]);
      await expect(logManager.checkpointRecoveryPoints()).rejects.toThrow(/ENOSPC/);

      await rm(filler);
      await commit();
      await logManager.checkpointRecoveryPoints();
      const next = await logManager.appendRecords('rolls', 0, [{ key: null, value: Buffer.from('after') }]);
      expect(next.baseOffset).toBe(acknowledged);
      await logManager.close();
      const reopened = await openLog(dataDir);
      expect(reopened.recoveryReport()).toEqual([]);
      const stored = await readAll(reopened, 'rolls', 0);
      expect(stored.map(([offset]) => offset)).toEqual(Array.from({ length: acknowledged + 1 }, (_, i) => i));
      expect((await reopened.groups.fetchOffsets({ groupId: 'g', topics: null })).topics[0]!.partitions[0]!.offset).toBe(1);
    },
  );

  it('a failed fdatasync rejects the unacknowledged appends, truncates them, and the partition goes on', async () => {
    const dir = await tempDir();
    const logManager = await openLog(dir);
    await logManager.createTopic('sync', { partitions: 1 });
    await logManager.appendRecords('sync', 0, [{ key: null, value: Buffer.from('kept') }]);
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
    const failed = await caught(logManager.appendRecords('sync', 0, [{ key: null, value: Buffer.from('lost') }]));
    expect([failed.code, failed.retriable]).toEqual(['KAFKA_STORAGE_ERROR', true]);
    expect(failed.message).toBe("append to topic 'sync' partition 0 failed: EIO: i/o error, fdatasync; nothing unacknowledged was kept, retry");
    const after = await logManager.appendRecords('sync', 0, [{ key: null, value: Buffer.from('after') }]);
    expect(after.baseOffset).toBe(1);
    expect(await readAll(logManager, 'sync', 0)).toEqual([
      [0, 'kept'],
      [1, 'after'],
    ]);
  });

  it('bounds the append queue of a partition', async () => {
    const logManager = await openLog(await tempDir(), { appendQueueBytesMax: 1024 * 1024 });
    await logManager.createTopic('q', { partitions: 1, config: { maxMessageBytes: 2 * 1024 * 1024 } });
    const big = () => [{ key: null, value: Buffer.alloc(400 * 1024) }];
    const first = logManager.appendRecords('q', 0, big());
    const second = logManager.appendRecords('q', 0, big());
    const third = caught(logManager.appendRecords('q', 0, big()));
    const error = await third;
    expect(error.code).toBe('LIMIT_EXCEEDED');
    expect(error.retriable).toBe(true);
    expect(error.message).toMatch(
      /^topic 'q' partition 0 has \d+ bytes of appends queued; one more of \d+ bytes would pass appendQueueBytesMax \(1048576\); retry later or raise the log option appendQueueBytesMax$/,
    );
    await Promise.all([first, second]);
  });
});
