import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { replaceLogFileSystem, type LogFileSystem } from '../../../src/log/file-system.js';
import { CLEANER_CHECKPOINT_FILE, decodeRecordBatches, LogManager, type LogManagerOptions } from '../../../src/log/index.js';
import { readRecoveryPoints, recoveryPointKey, RECOVERY_POINT_FILE } from '../../../src/log/recovery-point.js';
import { openLog, tempDir } from './helpers.js';
import { JournalingFileSystem, powerLossCopy } from './power-loss.js';

/**
 * Log compaction (src/log/cleaner/), with the checks of Kafka's
 * LogCleanerTest: the latest value of each key is kept, offsets and order
 * are kept, tombstones go after deleteRetentionMs, a small offset map
 * cleans in several passes, and a crash at any step of a clean leaves the
 * log as it was before or as it is after.
 */

const QUIET: Omit<LogManagerOptions, 'dataDir'> = { recoveryCheckpointIntervalMs: 3_600_000, retentionCheckIntervalMs: 3_600_000, cleanerBackoffMs: 3_600_000 };
const COMPACT = { cleanupPolicy: 'compact' as const, segmentBytes: 1024, minCleanableDirtyRatio: 0.01 };
const T0 = 1_700_000_000_000;

interface Written {
  offset: number;
  key: string;
  value: string | null;
}

/** Appends `rounds` rounds of `keys` keys, one record per batch, value `<key>@<round>`; timestamps T0 + i. */
async function fill(logManager: LogManager, topic: string, keys: number, rounds: number): Promise<Written[]> {
  const written: Written[] = [];
  for (let round = 0; round < rounds; round++) {
    for (let k = 0; k < keys; k++) {
      const key = `key-${k}`;
      const value = `${key}@${round}`;
      const result = await logManager.appendRecords(topic, 0, [{ key: Buffer.from(key), value: Buffer.from(value), timestampMs: T0 + written.length }]);
      written.push({ offset: result.baseOffset, key, value });
    }
  }
  return written;
}

/** Every record from offset 0 with its key: [offset, key, value]. */
async function readKeyed(logManager: LogManager, topic: string): Promise<[number, string, string | null][]> {
  const out: [number, string, string | null][] = [];
  let offset = 0;
  const end = logManager.describePartition(topic, 0).highWatermark;
  while (offset < end) {
    const result = await logManager.read(topic, 0, offset, { maxBytes: 64 * 1024 });
    for (const batch of decodeRecordBatches(result.records)) {
      for (const record of batch.records) if (record.offset >= offset) out.push([record.offset, record.key!.toString(), record.value?.toString() ?? null]);
      offset = batch.lastOffset + 1;
    }
  }
  return out;
}

/** What a clean through `cleanedThrough` must leave: below it the last record of each key (among those below it), everything from it on. */
function expectedAfterClean(written: readonly Written[], cleanedThrough: number): [number, string, string | null][] {
  const lastBelow = new Map<string, number>();
  for (const w of written) if (w.offset < cleanedThrough) lastBelow.set(w.key, w.offset);
  return written.filter((w) => w.offset >= cleanedThrough || lastBelow.get(w.key) === w.offset).map((w) => [w.offset, w.key, w.value]);
}

describe('log compaction', () => {
  it('keeps the latest value of each key, in offset order, with offsets unchanged; the active segment is not cleaned', async () => {
    const logManager = await openLog(await tempDir(), QUIET);
    await logManager.createTopic('compacted', { partitions: 1, config: COMPACT });
    const written = await fill(logManager, 'compacted', 10, 30);
    const before = logManager.describePartition('compacted', 0);
    expect(before.segmentCount).toBeGreaterThan(5);

    const [result] = await logManager.cleanLogs({ nowMs: T0 + 10_000 });
    expect(result).toMatchObject({ topic: 'compacted', partition: 0, passes: 1, interrupted: false });
    const records = await readKeyed(logManager, 'compacted');
    expect(records).toEqual(expectedAfterClean(written, result!.cleanedThrough));
    // Cleaned through the last rolled segment: everything below the active segment.
    const activeBase = written.find((w) => w.offset >= result!.cleanedThrough)!.offset;
    expect(result!.cleanedThrough).toBe(activeBase);
    expect(records.filter(([offset]) => offset < activeBase)).toHaveLength(10);
    // The latest value of every key is what a consumer ends with.
    const latest = new Map(records.map(([, key, value]) => [key, value]));
    expect([...latest.values()].sort()).toEqual(Array.from({ length: 10 }, (_, k) => `key-${k}@29`).sort());
    const after = logManager.describePartition('compacted', 0);
    expect(after).toMatchObject({ logStartOffset: 0, highWatermark: before.highWatermark });
    expect(after.sizeBytes).toBeLessThan(before.sizeBytes / 2);
    expect(result!.recordsRemoved).toBe(written.filter((w) => w.offset < activeBase).length - 10);

    // A second clean with nothing dirty does nothing; a read from a removed offset gets the next batch kept.
    expect(await logManager.cleanLogs({ nowMs: T0 + 10_000, force: true })).toEqual([]);
    const removed = written.find((w) => !records.some(([offset]) => offset === w.offset))!.offset;
    const read = await logManager.read('compacted', 0, removed, { maxBytes: 1 });
    const [first] = decodeRecordBatches(read.records);
    expect(first!.records[0]!.offset).toBe(records.find(([offset]) => offset > removed)![0]);
  });

  it('survives a reopen: the compacted segments have gaps and open without complaint', async () => {
    const dir = await tempDir();
    const logManager = await LogManager.open({ ...QUIET, dataDir: dir });
    await logManager.createTopic('reopened', { partitions: 1, config: COMPACT });
    const written = await fill(logManager, 'reopened', 5, 40);
    const [result] = await logManager.cleanLogs({ nowMs: T0 + 10_000 });
    const records = await readKeyed(logManager, 'reopened');
    await logManager.close();
    // Without the recovery points every segment is validated from its first byte.
    const again = await openLog(dir, QUIET);
    expect(again.recoveryReport()).toEqual([]);
    expect(await readKeyed(again, 'reopened')).toEqual(records);
    expect(records).toEqual(expectedAfterClean(written, result!.cleanedThrough));
  });

  it('removes a tombstone only once its segment is older than deleteRetentionMs, and the values it deleted at once', async () => {
    const logManager = await openLog(await tempDir(), QUIET);
    await logManager.createTopic('tombstones', { partitions: 1, config: { ...COMPACT, deleteRetentionMs: 60_000 } });
    await logManager.appendRecords('tombstones', 0, [{ key: Buffer.from('gone'), value: Buffer.from('v1'), timestampMs: T0 }]);
    await logManager.appendRecords('tombstones', 0, [{ key: Buffer.from('kept'), value: Buffer.from('v1'), timestampMs: T0 }]);
    const tombstone = await logManager.appendRecords('tombstones', 0, [{ key: Buffer.from('gone'), value: null, timestampMs: T0 + 1 }]);
    // Fill past two rolls so the tombstone's segment is a rolled one.
    for (let i = 0; i < 40; i++)
      await logManager.appendRecords('tombstones', 0, [{ key: Buffer.from(`other-${i}`), value: Buffer.alloc(100), timestampMs: T0 + 2 }]);

    await logManager.cleanLogs({ nowMs: T0 + 1000, force: true });
    const early = await readKeyed(logManager, 'tombstones');
    expect(early.filter(([, key]) => key === 'gone')).toEqual([[tombstone.baseOffset, 'gone', null]]);
    expect(early.filter(([, key]) => key === 'kept')).toEqual([[1, 'kept', 'v1']]);

    // Past deleteRetentionMs (by the segment's largest timestamp) the next clean drops it.
    for (let i = 0; i < 3; i++)
      await logManager.appendRecords('tombstones', 0, [{ key: Buffer.from('other-0'), value: Buffer.alloc(500), timestampMs: T0 + 3 }]);
    await logManager.cleanLogs({ nowMs: T0 + 120_000, force: true });
    const late = await readKeyed(logManager, 'tombstones');
    expect(late.filter(([, key]) => key === 'gone')).toEqual([]);
    expect(late.filter(([, key]) => key === 'kept')).toEqual([[1, 'kept', 'v1']]);
  });

  it('with an offset map smaller than the dirty keys, cleans in several passes to the same result', async () => {
    // 1 KiB: 42 slots, 37 keys per pass.
    const logManager = await openLog(await tempDir(), { ...QUIET, cleanerOffsetMapBytes: 1024 });
    await logManager.createTopic('passes', { partitions: 1, config: { ...COMPACT, segmentBytes: 4096 } });
    const written = await fill(logManager, 'passes', 120, 3);
    const [result] = await logManager.cleanLogs({ nowMs: T0 + 10_000 });
    expect(result!.passes).toBeGreaterThanOrEqual(3);
    expect(await readKeyed(logManager, 'passes')).toEqual(expectedAfterClean(written, result!.cleanedThrough));
  });

  it('keeps the latest batch of an idempotent producer, emptied, so that its sequence survives a reopen', async () => {
    const dir = await tempDir();
    const logManager = await LogManager.open({ ...QUIET, dataDir: dir });
    await logManager.createTopic('idempotent', { partitions: 1, config: COMPACT });
    const { encodeRecordBatch } = await import('../../../src/log/index.js');
    const { producerId, producerEpoch } = await logManager.initProducerId();
    for (let seq = 0; seq < 3; seq++) {
      await logManager.append(
        'idempotent',
        0,
        encodeRecordBatch([{ key: Buffer.from('p'), value: Buffer.from(`p${seq}`) }], { producerId, producerEpoch, baseSequence: seq }),
      );
    }
    for (let i = 0; i < 30; i++) await logManager.appendRecords('idempotent', 0, [{ key: Buffer.from('p'), value: Buffer.alloc(100) }]);
    await logManager.cleanLogs({ force: true });
    const batches = decodeRecordBatches((await logManager.read('idempotent', 0, 0, { maxBytes: 1 << 20 })).records);
    const producerBatches = batches.filter((b) => b.producerId === producerId);
    expect(producerBatches.map((b) => [b.baseOffset, b.baseSequence, b.records.length])).toEqual([[2, 2, 0]]);
    await logManager.close();
    const again = await openLog(dir, QUIET);
    // The next sequence is accepted and a repeat of sequence 2 is a duplicate, as before the clean.
    const next = encodeRecordBatch([{ key: Buffer.from('p'), value: Buffer.from('p3') }], { producerId, producerEpoch, baseSequence: 3 });
    await expect(again.append('idempotent', 0, next)).resolves.toMatchObject({ baseOffset: 33 });
    const repeat = encodeRecordBatch([{ key: Buffer.from('p'), value: Buffer.from('p2') }], { producerId, producerEpoch, baseSequence: 2 });
    await expect(again.append('idempotent', 0, repeat)).resolves.toMatchObject({ baseOffset: 2, duplicate: true });
  });

  it('leaves a topic with cleanupPolicy delete alone, and retention does not delete segments of a compact-only topic', async () => {
    const logManager = await openLog(await tempDir(), QUIET);
    await logManager.createTopic('deleting', { partitions: 1, config: { segmentBytes: 1024 } });
    await logManager.createTopic('compacting', { partitions: 1, config: { ...COMPACT, retentionMs: 1 } });
    await fill(logManager, 'deleting', 3, 20);
    await fill(logManager, 'compacting', 3, 20);
    expect(await logManager.cleanLogs({ force: true })).toMatchObject([{ topic: 'compacting' }]);
    const segments = logManager.describePartition('compacting', 0).segmentCount;
    await logManager.enforceRetention(T0 + 86_400_000);
    expect(logManager.describePartition('compacting', 0).segmentCount).toBe(segments);
  });
});

/** The log as before a clean or as a clean (maybe partial) left it, with nothing of the clean left over. */
async function expectBeforeOrAfter(logManager: LogManager, partitionDir: string, before: readonly [number, string, string | null][]): Promise<void> {
  expect(readdirSync(partitionDir).filter((f) => f.endsWith('.cleaned') || f.startsWith('cleaner-swap'))).toEqual([]);
  const after = await readKeyed(logManager, 'crash');
  // Every record kept is one of before's, in offset order; every one gone has a later record of its key.
  const beforeByOffset = new Map(before.map((r) => [r[0], r]));
  expect(after.every((r) => JSON.stringify(beforeByOffset.get(r[0])) === JSON.stringify(r))).toBe(true);
  expect(after.map(([o]) => o)).toEqual(after.map(([o]) => o).sort((a, b) => a - b));
  const kept = new Set(after.map(([o]) => o));
  expect(before.filter(([o]) => !kept.has(o)).every(([o, k]) => after.some(([o2, k2]) => k2 === k && o2 > o))).toBe(true);
  expect(new Map(after.map(([, k, v]) => [k, v]))).toEqual(new Map(before.map(([, k, v]) => [k, v])));
}

/**
 * Crashes mid-clean, with the power-loss model of power-loss.ts: at the
 * chosen file-system call the data directory is copied as a power loss at
 * that instant would leave it, the clean is made to fail, and the copy is
 * reopened; so is the directory the process left (a restart without a
 * power loss). Whatever the step, the reopened log holds either the records
 * before the clean or the records after it, no `.cleaned` file and no swap
 * record, and cleans again to the same result.
 */
describe('a crash in the middle of a clean', () => {
  const steps: [string, (call: string, path: string) => boolean][] = [
    ['while the cleaned .log is written', (call, path) => call === 'open' && path.endsWith('.index.cleaned')],
    ['before the swap record is renamed into place', (call, path) => call === 'rename' && path.endsWith('cleaner-swap.checkpoint.tmp')],
    ['after the first replaced segment is removed', (call, path) => call === 'unlink' && path.endsWith('.index') && !path.includes('.cleaned')],
    ['after the cleaned .index is renamed', (call, path) => call === 'rename' && path.endsWith('.timeindex.cleaned')],
    ['after the cleaned .log is renamed', (call, path) => call === 'rm' && path.endsWith('cleaner-swap.checkpoint')],
  ];

  for (const [name, at] of steps) {
    it(`${name}: the log reopens as before or as after the clean`, async () => {
      const root = await tempDir('concordat-clean-crash-');
      const journalDir = join(root, 'journal');
      const dataDir = join(root, 'data');
      const journaling = new JournalingFileSystem(journalDir);
      let copy: string | null = null;
      const crashing: LogFileSystem = {
        open: (path, flags) => crashAt('open', path, () => journaling.open(path, flags)),
        readFile: (path) => journaling.readFile(path),
        rename: (from, to) => crashAt('rename', from, () => journaling.rename(from, to)),
        unlink: (path) => crashAt('unlink', path, () => journaling.unlink(path)),
        rm: (path, options) => crashAt('rm', path, () => journaling.rm(path, options)),
        mkdir: (path, options) => journaling.mkdir(path, options),
      };
      let armed = false;
      async function crashAt<T>(call: string, path: string, run: () => Promise<T>): Promise<T> {
        if (armed && copy === null && at(call, path)) {
          copy = await tempDir('concordat-clean-after-');
          powerLossCopy(root, journalDir, copy);
          throw new Error(`power cut at ${call} ${path}`);
        }
        return run();
      }
      const restore = replaceLogFileSystem(crashing);
      onTestFinished(() => {
        restore();
        journaling.close();
      });
      const logManager = await LogManager.open({ ...QUIET, dataDir });
      onTestFinished(() => logManager.close().catch(() => {}));
      await logManager.createTopic('crash', { partitions: 1, config: COMPACT });
      // A first clean leaves small segments, which the second (crashing) clean merges: its swaps replace several segments.
      // A key written once, in the second segment: the first group of the second clean holds its only record, in a
      // segment that group replaces (not the one whose base offset the group keeps).
      const written: Written[] = await fill(logManager, 'crash', 6, 3);
      const once = await logManager.appendRecords('crash', 0, [{ key: Buffer.from('once'), value: Buffer.from('only'), timestampMs: T0 }]);
      written.push({ offset: once.baseOffset, key: 'once', value: 'only' }, ...(await fill(logManager, 'crash', 6, 22)));
      await logManager.cleanLogs({ nowMs: T0 + 10_000 });
      for (const w of await fill(logManager, 'crash', 6, 10)) written.push(w);
      const before = await readKeyed(logManager, 'crash');
      armed = true;
      await expect(logManager.cleanLogs({ nowMs: T0 + 10_000 })).rejects.toThrow(/power cut/);
      expect(copy).not.toBeNull();
      restore();

      // The process going on after the failed swap (its partition offline), then restarting on the same files.
      await logManager.close().catch(() => {});
      const restarted = await openLog(dataDir, QUIET);
      await expectBeforeOrAfter(restarted, join(dataDir, 'crash-0'), before);
      await restarted.close();

      // The machine losing power at that instant instead.
      const reopened = await openLog(join(copy!, 'data'), QUIET);
      await expectBeforeOrAfter(reopened, join(copy!, 'data', 'crash-0'), before);

      // Cleaning again reaches the state of a clean that never crashed.
      await reopened.cleanLogs({ nowMs: T0 + 10_000, force: true });
      const point = Number(/"offset":(\d+)/.exec(readFileSync(join(copy!, 'data', 'crash-0', 'cleaner-offset.checkpoint'), 'utf8'))![1]);
      expect(point).toBeGreaterThan(written[6 * 25 + 1]!.offset);
      expect(await readKeyed(reopened, 'crash')).toEqual(expectedAfterClean(written, point));
      expect(existsSync(join(copy!, 'data', 'crash-0', 'cleaner-swap.checkpoint'))).toBe(false);
    });
  }
});

/**
 * The recovery-point file may lag the partitions' in-memory recovery points
 * while a checkpoint is being written (checkpointNow moves the points, then
 * writes the file). A clean must stop below the point in the file, not the
 * one in memory: otherwise a crash right after the clean finds the file
 * naming a segment the clean removed or rewrote (STORAGE_CORRUPT). cleanLogs
 * records the points in the maintenance queue, where every checkpoint
 * write runs, and cleans below what it recorded; this drives the window:
 * a periodic checkpoint, moved ahead in memory but held before its rename,
 * while the clean takes its view and swaps.
 */
describe('a clean and a checkpoint being written', () => {
  it('the clean stops at the recovery point in the file, so a power loss right after it reopens the log', async () => {
    const root = await tempDir('concordat-clean-rp-');
    const journalDir = join(root, 'journal');
    const dataDir = join(root, 'data');
    const journaling = new JournalingFileSystem(journalDir);
    const POINTS_TMP = `${RECOVERY_POINT_FILE}.tmp`;
    let stage: 'idle' | 'recording' | 'recorded' | 'late' = 'idle';
    let logManager!: LogManager;
    const written: Written[] = [];
    let late: Promise<void> | null = null;
    let lateAtRename!: () => void;
    const lateReachedRename = new Promise<void>((resolve) => (lateAtRename = resolve));
    let releaseLate!: () => void;
    const lateReleased = new Promise<void>((resolve) => (releaseLate = resolve));
    const seam: LogFileSystem = {
      open: (path, flags) => journaling.open(path, flags),
      unlink: (path) => journaling.unlink(path),
      rm: (path, options) => journaling.rm(path, options),
      mkdir: (path, options) => journaling.mkdir(path, options),
      async rename(from, to) {
        if (from.endsWith(POINTS_TMP) && stage === 'recording') {
          await journaling.rename(from, to);
          stage = 'recorded';
          return;
        }
        if (from.endsWith(POINTS_TMP) && stage === 'late') {
          lateAtRename();
          await lateReleased;
        }
        return journaling.rename(from, to);
      },
      async readFile(path) {
        // The clean reads its cleaner point right before it takes the view of its first pass: the log grows meanwhile,
        // and a periodic checkpoint moves the in-memory recovery point past the recorded one (its file write held).
        if (stage === 'recorded' && path.endsWith(CLEANER_CHECKPOINT_FILE)) {
          stage = 'late';
          written.push(...(await fill(logManager, 'rp', 6, 12)));
          // Larger groups: a swap then removes every segment of its group but the first.
          await logManager.alterTopicConfig('rp', { segmentBytes: 16 * 1024 });
          late = logManager.checkpointRecoveryPoints();
          await lateReachedRename;
        }
        return journaling.readFile(path);
      },
    };
    const restore = replaceLogFileSystem(seam);
    onTestFinished(() => {
      releaseLate();
      restore();
      journaling.close();
    });
    logManager = await LogManager.open({ ...QUIET, dataDir });
    onTestFinished(() => logManager.close().catch(() => {}));
    await logManager.createTopic('rp', { partitions: 1, config: COMPACT });
    // A first clean, then more records: the clean under test has cleaned and dirty segments.
    written.push(...(await fill(logManager, 'rp', 6, 25)));
    await logManager.cleanLogs({ nowMs: T0 + 10_000 });
    written.push(...(await fill(logManager, 'rp', 6, 10)));

    stage = 'recording';
    const [result] = await logManager.cleanLogs({ nowMs: T0 + 10_000 });
    expect(stage).toBe('late');
    // Power lost right after the clean, the checkpoint still being written: the file holds the recorded points.
    const copy = await tempDir('concordat-clean-rp-after-');
    powerLossCopy(root, journalDir, copy);
    releaseLate();
    await late;
    restore();
    const recorded = (await readRecoveryPoints(join(copy, 'data'))).get(recoveryPointKey('rp', 0))!;
    const latest = (await readRecoveryPoints(dataDir)).get(recoveryPointKey('rp', 0))!;
    // The clean stopped at the recorded point: the window was open (the in-memory point, now in the file, was segments
    // ahead of it during the clean), and cleaning up to the in-memory point would have removed the recorded point's segment.
    expect(latest.segmentBase).toBeGreaterThan(recorded.segmentBase);
    expect(result!.cleanedThrough).toBe(recorded.segmentBase);
    expect(existsSync(join(copy, 'data', 'rp-0', `${String(recorded.segmentBase).padStart(20, '0')}.log`))).toBe(true);
    // It reopens with the records the clean left (a clean up to the in-memory point made this open fail with STORAGE_CORRUPT).
    const records = await readKeyed(logManager, 'rp');
    expect(records).toEqual(expectedAfterClean(written, result!.cleanedThrough));
    const reopened = await openLog(join(copy, 'data'), QUIET);
    expect(await readKeyed(reopened, 'rp')).toEqual(records);
  });
});
