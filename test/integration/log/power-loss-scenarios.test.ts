import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { replaceLogFileSystem } from '../../../src/log/file-system.js';
import { encodeRecordBatch, LogManager, readCheckpoint, writeCheckpoint, type LogManagerOptions } from '../../../src/log/index.js';
import { readAll, tempDir } from './helpers.js';
import { JournalingFileSystem, powerLossCopy, type PowerLossReport } from './power-loss.js';

/**
 * Power losses at chosen moments, in this process: the log runs on a
 * journaling file system (power-loss.ts); once it has answered, a copy of
 * its directory is taken as the power loss would leave it (unsynced writes
 * and directory entries not fsynced dropped) and reopened. The random
 * crashes of power-loss.test.ts cover the moments in between.
 */

/** No timer fires during a test: the log is idle whenever the test is not waiting for it. */
const QUIET: Omit<LogManagerOptions, 'dataDir'> = { recoveryCheckpointIntervalMs: 3_600_000, retentionCheckIntervalMs: 3_600_000 };

interface Machine {
  dataDir: string;
  /** Opens the log on the journaling file system (closed when the test ends). */
  open(options?: Omit<LogManagerOptions, 'dataDir'>): Promise<LogManager>;
  /** Cuts the power now; returns the log reopened from what the disk kept. */
  powerLoss(options?: Omit<LogManagerOptions, 'dataDir'>): Promise<{ logManager: LogManager; lost: PowerLossReport }>;
}

async function machine(): Promise<Machine> {
  const root = await tempDir('concordat-power-');
  const journalDir = join(root, 'journal');
  const dataDir = join(root, 'data');
  const fs = new JournalingFileSystem(journalDir);
  const restore = replaceLogFileSystem(fs);
  onTestFinished(() => {
    restore();
    fs.close();
  });
  const logManagers: LogManager[] = [];
  onTestFinished(async () => {
    await Promise.allSettled(logManagers.map((logManager) => logManager.close()));
  });
  return {
    dataDir,
    async open(options = QUIET) {
      const logManager = await LogManager.open({ ...options, dataDir });
      logManagers.push(logManager);
      return logManager;
    },
    async powerLoss(options = QUIET) {
      const copy = await tempDir('concordat-power-after-');
      const lost = powerLossCopy(root, journalDir, copy);
      const logManager = await LogManager.open({ ...options, dataDir: join(copy, 'data') });
      logManagers.push(logManager);
      return { logManager, lost };
    },
  };
}

describe('the power-loss model', () => {
  it('drops a write not followed by a sync, and a new file whose directory was not fsynced', async () => {
    const m = await machine();
    const { logFs } = await import('../../../src/log/file-system.js');
    await logFs().mkdir(m.dataDir);
    const dirHandle = await logFs().open(join(m.dataDir, '..'), 'r');
    await dirHandle.sync();
    await dirHandle.close();
    const synced = await logFs().open(join(m.dataDir, 'synced'), 'w+');
    await synced.write(Buffer.from('kept'), 0, 4, 0);
    await synced.datasync();
    await synced.write(Buffer.from(' and lost'), 0, 9, 4);
    await synced.close();
    const dir = await logFs().open(m.dataDir, 'r');
    await dir.sync();
    await dir.close();
    const unlisted = await logFs().open(join(m.dataDir, 'unlisted'), 'w+');
    await unlisted.write(Buffer.from('synced, but its entry is not'), 0, 28, 0);
    await unlisted.datasync();
    await unlisted.close();
    const copy = await tempDir('concordat-power-after-');
    const lost = powerLossCopy(join(m.dataDir, '..'), join(m.dataDir, '..', 'journal'), copy);
    expect(lost).toMatchObject({ lostWrites: 1, lostEntries: 1 });
    expect(readdirSync(join(copy, 'data'))).toEqual(['synced']);
    expect(readFileSync(join(copy, 'data', 'synced'), 'utf8')).toBe('kept');
  });
});

const value = (text: string, bytes = 0) => ({ key: null, value: Buffer.from(text.padEnd(bytes, '.')) });

describe('a power loss right after an acknowledgement', () => {
  it('keeps a data directory created by the log, its topic and an acknowledged append', async () => {
    const m = await machine();
    const logManager = await m.open();
    await logManager.createTopic('t', { partitions: 2 });
    await logManager.appendRecords('t', 1, [value('a')]);
    const { logManager: after } = await m.powerLoss();
    expect(await readAll(after, 't', 1)).toEqual([[0, 'a']]);
    expect(after.describeTopic('t').partitions).toHaveLength(2);
  });

  it('keeps every record across segment rolls, with and without a recovery checkpoint after them', async () => {
    const m = await machine();
    const logManager = await m.open({ ...QUIET, topicDefaults: { segmentBytes: 4096 } });
    await logManager.createTopic('t', { partitions: 1 });
    for (let i = 0; i < 12; i++) await logManager.appendRecords('t', 0, [value(`r${i}`, 1000)]);
    await logManager.checkpointRecoveryPoints();
    for (let i = 12; i < 24; i++) await logManager.appendRecords('t', 0, [value(`r${i}`, 1000)]);
    expect(logManager.describePartition('t', 0).segmentCount).toBeGreaterThan(5);
    const { logManager: after } = await m.powerLoss();
    expect((await readAll(after, 't', 0)).map(([offset, v]) => [offset, v!.replace(/\.+$/, '')])).toEqual(Array.from({ length: 24 }, (_, i) => [i, `r${i}`]));
  });

  it("keeps an idempotent producer's state: its last batch is still recognised as a retry", async () => {
    const m = await machine();
    const logManager = await m.open({ ...QUIET, topicDefaults: { segmentBytes: 4096 } });
    await logManager.createTopic('t', { partitions: 1 });
    const { producerId, producerEpoch } = await logManager.initProducerId();
    const batch = (seq: number) => encodeRecordBatch([value(`p${seq}`, 1500)], { producerId, producerEpoch, baseSequence: seq });
    for (let seq = 0; seq < 4; seq++) await logManager.append('t', 0, batch(seq));
    await logManager.checkpointRecoveryPoints();
    for (let seq = 4; seq < 8; seq++) await logManager.append('t', 0, batch(seq));
    await logManager.checkpointRecoveryPoints();
    const last = await logManager.append('t', 0, batch(8));
    const { logManager: after } = await m.powerLoss();
    expect(await after.append('t', 0, batch(8))).toMatchObject({ baseOffset: last.baseOffset, duplicate: true });
    expect(await after.append('t', 0, batch(9))).toMatchObject({ baseOffset: last.baseOffset + 1 });
  });

  it('keeps every acknowledged offset commit, across compactions of the committed-offsets log', async () => {
    const m = await machine();
    const logManager = await m.open({ ...QUIET, groups: { offsetsLogBytesMax: 64 * 1024 } });
    await logManager.createTopic('t', { partitions: 4 });
    for (let round = 0; round < 40; round++) {
      await Promise.all(
        Array.from({ length: 40 }, (_, i) =>
          logManager.groups.commitOffsets({
            groupId: `g${i % 8}`,
            generationId: -1,
            memberId: '',
            topics: [{ topic: 't', partitions: [{ partition: i % 4, offset: round * 100 + i }] }],
          }),
        ),
      );
    }
    expect(logManager.groups.offsetStoreStats().compactions).toBeGreaterThan(0);
    const { logManager: after } = await m.powerLoss();
    const fetched = await after.groups.fetchOffsets({ groupId: 'g3', topics: [{ topic: 't', partitions: [0, 1, 2, 3] }] });
    // g3 commits i = 3, 11, 19, 27, 35: partitions 3, 3, 3, 3, 3 in the last round.
    expect(fetched.topics[0]!.partitions.map((p) => p.offset)).toEqual([-1, -1, -1, 39 * 100 + 35]);
  });

  it("keeps a checkpoint file replaced in place (topics.json, the transaction state, the transport's database pairing all are)", async () => {
    const m = await machine();
    const logManager = await m.open();
    const path = join(m.dataDir, 'database-pairing');
    await writeCheckpoint(path, 'database-pairing', { databaseId: 'first' });
    await writeCheckpoint(path, 'database-pairing', { databaseId: 'second' });
    const { logManager: after } = await m.powerLoss();
    expect(await readCheckpoint(join(after.options.dataDir, 'database-pairing'), 'database-pairing')).toEqual({ databaseId: 'second' });
    expect(logManager.options.dataDir).toBe(m.dataDir);
  });

  it('keeps a topic created again under the name of a deleted one', async () => {
    const m = await machine();
    const logManager = await m.open();
    await logManager.createTopic('t', { partitions: 1 });
    await logManager.appendRecords('t', 0, [value('old')]);
    await logManager.deleteTopic('t');
    await logManager.createTopic('t', { partitions: 1 });
    await logManager.appendRecords('t', 0, [value('new')]);
    const { logManager: after } = await m.powerLoss();
    expect(await readAll(after, 't', 0)).toEqual([[0, 'new']]);
  });
});
