import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, statfs, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { ConcordatError, isRetriable } from '../../../src/errors.js';
import { readCheckpoint, writeCheckpoint } from '../../../src/log/checkpoint-file.js';
import { LogManager } from '../../../src/log/index.js';
import { RECOVERY_POINT_FILE } from '../../../src/log/recovery-point.js';
import { EmbeddedTransport } from '../../../src/transport/index.js';
import { readAll } from './helpers.js';

/**
 * A full disk, for real: the log lives on a 2 MiB tmpfs this file mounts
 * (tests run as root; without the right to mount, the tests are skipped and
 * say why) and a filler file takes the space. Appends fail with a typed,
 * retriable error that says the disk is full and what to do; nothing
 * acknowledged is lost; checkpoints and committed offsets keep their
 * previous content and leave no temp file behind; once the filler is
 * deleted, appends succeed again and everything acknowledged reads back.
 */
const RECORD_BYTES = 16 * 1024;
/** Space left free before the appends start: room for a few dozen records, then ENOSPC. */
const HEADROOM_BYTES = 320 * 1024;

let mountPoint = '';
let mountRefused: string | null = null;

beforeAll(async () => {
  mountPoint = await mkdtemp(join(tmpdir(), 'concordat-disk-full-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mountPoint], { stdio: 'pipe' });
  } catch (error) {
    mountRefused = `mount -t tmpfs was refused (${(error as Error).message.split('\n')[0]}): these tests need root with CAP_SYS_ADMIN`;
  }
});

afterAll(async () => {
  if (mountRefused === null) execFileSync('umount', [mountPoint]);
  await rm(mountPoint, { recursive: true, force: true });
});

/** A fresh directory on the small file system, removed (with any filler) when the test ends. */
async function scratch(name: string): Promise<string> {
  const dir = join(mountPoint, name);
  await mkdir(dir);
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Writes a filler file that leaves `headroomBytes` free on the mount. */
async function fill(path: string, headroomBytes: number): Promise<void> {
  const fs = await statfs(mountPoint);
  await writeFile(path, Buffer.alloc(Math.max(0, fs.bavail * fs.bsize - headroomBytes)));
}

/** Takes every block still free: even a small write fails after this. */
async function fillTheRest(dir: string): Promise<void> {
  for (let k = 0; k < 512; k++) {
    try {
      await writeFile(join(dir, `crumb-${k}`), Buffer.alloc(4096));
    } catch {
      return;
    }
  }
}

async function filesUnder(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true })).map(String);
}

async function caught(promise: Promise<unknown>): Promise<ConcordatError> {
  try {
    await promise;
  } catch (error) {
    return error as ConcordatError;
  }
  throw new Error('expected a rejection');
}

function skipReason(): string | null {
  return mountRefused;
}

const ADVICE = "delete other files there, lower the topics' retentionMs or retentionBytes, or grow the volume";

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

describe('a full disk under the log', () => {
  it('fails appends with a typed retriable error, keeps checkpoints and offsets whole, and takes appends again once space returns', async (ctx) => {
    if (skipReason() !== null) return ctx.skip(skipReason()!);
    const root = await scratch('log');
    const dataDir = join(root, 'data');
    const logManager = await LogManager.open({ dataDir });
    onTestFinished(() => logManager.close().catch(() => {}));
    await logManager.createTopic('full', { partitions: 1 });
    // 4 KiB of metadata: a commit record never fits in what is left of the offsets log's last page.
    const commit = (offset: number) =>
      logManager.groups.commitOffsets({
        groupId: 'g',
        generationId: -1,
        memberId: '',
        topics: [{ topic: 'full', partitions: [{ partition: 0, offset, metadata: 'm'.repeat(4096) }] }],
      });
    await commit(1);
    await logManager.checkpointRecoveryPoints();
    await fill(join(root, 'filler'), HEADROOM_BYTES);

    const values: string[] = [];
    let failure: ConcordatError | null = null;
    for (let i = 0; i < 200 && failure === null; i++) {
      const value = `r${i}`.padEnd(RECORD_BYTES, '.');
      try {
        const ack = await logManager.appendRecords('full', 0, [{ key: null, value: Buffer.from(value) }]);
        expect(ack.baseOffset).toBe(values.length);
        values.push(value);
      } catch (error) {
        failure = error as ConcordatError;
      }
    }
    expect(failure).toBeInstanceOf(ConcordatError);
    expect([failure!.code, failure!.retriable, failure!.context.diskFull]).toEqual(['KAFKA_STORAGE_ERROR', true, true]);
    expect(failure!.message).toMatch(
      new RegExp(
        `^append to topic 'full' partition 0 failed: the disk is full \\(ENOSPC: no space left on device, \\w+\\); nothing unacknowledged was kept\\. ` +
          `Free space on the file system holding ${escape(join(dataDir, 'full-0'))} \\(${escape(ADVICE)}\\), then retry$`,
      ),
    );
    expect(values.length).toBeGreaterThan(3);
    expect(logManager.describePartition('full', 0)).toMatchObject({ highWatermark: values.length, logEndOffset: values.length });

    // Nothing small fits either: the recovery-point checkpoint and an offset commit fail, typed, and change nothing.
    await fillTheRest(root);
    const pointsBefore = await readFile(join(dataDir, RECOVERY_POINT_FILE));
    const checkpointFailure = await caught(logManager.checkpointRecoveryPoints());
    expect([checkpointFailure.code, checkpointFailure.retriable]).toEqual(['KAFKA_STORAGE_ERROR', true]);
    // Where the space ran out decides the first words: flushing a partition's indexes, or writing the file.
    expect(checkpointFailure.message).toMatch(
      new RegExp(
        `^(checkpointing recovery points failed: the disk is full \\(ENOSPC: no space left on device, \\w+\\); the previous recovery points are kept|` +
          `writing recovery-points checkpoint ${escape(join(dataDir, RECOVERY_POINT_FILE))} failed: the disk is full \\(ENOSPC: no space left on device, \\w+\\); its previous content is kept)` +
          `\\. Free space on the file system holding ${escape(dataDir)} \\(${escape(ADVICE)}\\), then retry$`,
      ),
    );
    expect((await readFile(join(dataDir, RECOVERY_POINT_FILE))).equals(pointsBefore)).toBe(true);
    const commitFailure = await caught(commit(2));
    expect([commitFailure.code, commitFailure.retriable]).toEqual(['KAFKA_STORAGE_ERROR', true]);
    expect(commitFailure.message).toMatch(
      /^committing offsets failed: the disk is full \(ENOSPC: no space left on device, \w+\); nothing was committed\. Free space on the file system holding /,
    );
    expect((await logManager.groups.fetchOffsets({ groupId: 'g', topics: null })).topics[0]!.partitions[0]!.offset).toBe(1);
    expect((await filesUnder(dataDir)).filter((name) => name.endsWith('.tmp'))).toEqual([]);

    // Space returns: everything works again, and everything acknowledged is there after a reopen.
    for (const name of await readdir(root)) if (name !== 'data') await rm(join(root, name));
    const next = await logManager.appendRecords('full', 0, [{ key: null, value: Buffer.from('after') }]);
    expect(next.baseOffset).toBe(values.length);
    await commit(2);
    await logManager.checkpointRecoveryPoints();
    await logManager.close();
    const reopened = await LogManager.open({ dataDir });
    onTestFinished(() => reopened.close());
    expect(reopened.recoveryReport()).toEqual([]);
    expect(await readAll(reopened, 'full', 0)).toEqual([...values, 'after'].map((value, offset) => [offset, value]));
    expect((await reopened.groups.fetchOffsets({ groupId: 'g', topics: null })).topics[0]!.partitions[0]!.offset).toBe(2);
  });

  it('never leaves a checkpoint half-written: the old content stays readable and the temp file is removed', async (ctx) => {
    if (skipReason() !== null) return ctx.skip(skipReason()!);
    const root = await scratch('checkpoint');
    const path = join(root, 'state');
    await writeCheckpoint(path, 'test-state', { version: 1 });
    await fill(join(root, 'filler'), 0);
    await fillTheRest(root);
    const failure = await caught(writeCheckpoint(path, 'test-state', { version: 2, padding: 'p'.repeat(256 * 1024) }));
    expect([failure.code, failure.retriable, failure.context.diskFull]).toEqual(['KAFKA_STORAGE_ERROR', true, true]);
    expect(failure.message).toMatch(
      new RegExp(
        `^writing test-state checkpoint ${escape(path)} failed: the disk is full \\(ENOSPC: no space left on device, \\w+\\); its previous content is kept\\. ` +
          `Free space on the file system holding ${escape(root)} \\(${escape(ADVICE)}\\), then retry$`,
      ),
    );
    expect(await readCheckpoint(path, 'test-state')).toEqual({ version: 1 });
    expect((await readdir(root)).filter((name) => name.endsWith('.tmp'))).toEqual([]);

    for (const name of await readdir(root)) if (name !== 'state') await rm(join(root, name));
    await writeCheckpoint(path, 'test-state', { version: 3 });
    expect(await readCheckpoint(path, 'test-state')).toEqual({ version: 3 });
  });

  it('gives producers of the embedded transport a retriable error, and publishes again once space returns', async (ctx) => {
    if (skipReason() !== null) return ctx.skip(skipReason()!);
    const root = await scratch('transport');
    const dataDir = join(root, 'data');
    const transport = new EmbeddedTransport({ dataDir });
    onTestFinished(() => transport.close());
    await transport.ensureTopics([{ name: 'orders', partitions: 1 }]);
    await fill(join(root, 'filler'), HEADROOM_BYTES);

    const published: string[] = [];
    let failure: ConcordatError | null = null;
    for (let i = 0; i < 200 && failure === null; i++) {
      const value = `o${i}`.padEnd(RECORD_BYTES, '.');
      try {
        const [ack] = await transport.publish([{ topic: 'orders', key: null, value: Buffer.from(value), headers: {} }]);
        expect(ack!.offset).toBe(published.length);
        published.push(value);
      } catch (error) {
        failure = error as ConcordatError;
      }
    }
    expect(failure).toBeInstanceOf(ConcordatError);
    expect([failure!.code, failure!.retriable, isRetriable(failure)]).toEqual(['PUBLISH_FAILED', true, true]);
    const cause = failure!.cause as ConcordatError;
    expect([cause.code, cause.retriable, cause.context.diskFull]).toEqual(['KAFKA_STORAGE_ERROR', true, true]);
    expect(failure!.message).toContain(`the disk is full`);
    expect(published.length).toBeGreaterThan(3);

    await rm(join(root, 'filler'));
    const [ack] = await transport.publish([{ topic: 'orders', key: null, value: Buffer.from('after'), headers: {} }]);
    expect(ack!.offset).toBe(published.length);
    await transport.close();
    const logManager = await LogManager.open({ dataDir });
    onTestFinished(() => logManager.close());
    expect(await readAll(logManager, 'orders', 0)).toEqual([...published, 'after'].map((value, offset) => [offset, value]));
  });
});
