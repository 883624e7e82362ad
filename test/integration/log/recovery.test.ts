import { appendFile, mkdir, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConcordatError } from '../../../src/errors.js';
import { decodeRecordBatches, encodeRecordBatch, LogManager } from '../../../src/log/index.js';
import { openLog, readAll, tempDir } from './helpers.js';

const SEGMENT = '00000000000000000000';
const RECOVERY_POINTS = 'recovery-point-offset-checkpoint';

interface Crashed {
  dir: string;
  partitionDir: string;
  segments: string[];
  active: string;
  activeBytes: number;
}

/**
 * A log with `count` single-record batches (`v0`, `v1`, ...) in partition 0
 * of topic `t`, closed, then put back as a crash would leave it: the
 * recovery points are those of a checkpoint taken after `checkpointAfter`
 * records (none at all when undefined).
 */
async function crashedLog(count: number, config: Record<string, number> = {}, checkpointAfter?: number): Promise<Crashed> {
  const dir = await tempDir();
  const logManager = await LogManager.open({ dataDir: dir });
  await logManager.createTopic('t', { partitions: 1, config });
  let saved: Buffer | null = null;
  for (let i = 0; i < count; i++) {
    if (i === checkpointAfter) {
      await logManager.checkpointRecoveryPoints();
      saved = await readFile(join(dir, RECOVERY_POINTS));
    }
    await logManager.appendRecords('t', 0, [{ key: null, value: Buffer.from(`v${i}`), timestampMs: 1_000_000 + i }]);
  }
  if (checkpointAfter === count) {
    await logManager.checkpointRecoveryPoints();
    saved = await readFile(join(dir, RECOVERY_POINTS));
  }
  await logManager.close();
  if (saved === null) await rm(join(dir, RECOVERY_POINTS));
  else await writeFile(join(dir, RECOVERY_POINTS), saved);
  const partitionDir = join(dir, 't-0');
  const segments = (await readdir(partitionDir)).filter((f) => f.endsWith('.log')).sort();
  const active = join(partitionDir, segments[segments.length - 1]!);
  return { dir, partitionDir, segments, active, activeBytes: (await stat(active)).size };
}

async function caught(promise: Promise<unknown>): Promise<ConcordatError> {
  try {
    await promise;
  } catch (error) {
    return error as ConcordatError;
  }
  throw new Error('expected a rejection');
}

/** Byte position of the batch holding `offset` in a segment file. */
async function batchPosition(file: string, offset: number): Promise<number> {
  const bytes = await readFile(file);
  let pos = 0;
  while (pos < bytes.length) {
    const last = Number(bytes.readBigInt64BE(pos)) + bytes.readInt32BE(pos + 23);
    if (last >= offset) return pos;
    pos += 12 + bytes.readInt32BE(pos + 8);
  }
  throw new Error(`offset ${offset} not in ${file}`);
}

async function flipByte(file: string, position: number): Promise<void> {
  const bytes = await readFile(file);
  bytes[position] = bytes[position]! ^ 0x5a;
  await writeFile(file, bytes);
}

const values = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `v${from + i}`);

describe('recovery after an unclean shutdown', () => {
  it('truncates a torn batch at the tail, keeps every whole one, and reports the cut', async () => {
    const { dir, active, activeBytes } = await crashedLog(10);
    const torn = encodeRecordBatch([{ key: null, value: Buffer.from('torn') }], { baseOffset: 10 });
    await appendFile(active, torn.subarray(0, torn.length - 7));
    const logManager = await openLog(dir);
    expect(logManager.describePartition('t', 0)).toMatchObject({ highWatermark: 10, logEndOffset: 10, sizeBytes: activeBytes });
    expect((await stat(active)).size).toBe(activeBytes);
    expect((await readAll(logManager, 't', 0)).map(([, v]) => v)).toEqual(values(10));
    expect(logManager.recoveryReport()).toEqual([
      {
        topic: 't',
        partition: 0,
        file: active,
        action: 'truncated',
        detail: `batch at byte ${activeBytes} claims ${torn.length} bytes, ${torn.length - 7} remain; cut ${torn.length - 7} bytes at byte ${activeBytes} (offset 10)`,
      },
    ]);
    expect((await logManager.appendRecords('t', 0, [{ key: null, value: Buffer.from('next') }])).baseOffset).toBe(10);
  });

  it('truncates a tail of zeros (the size reached disk, the data did not)', async () => {
    const { dir, active, activeBytes } = await crashedLog(5);
    await appendFile(active, Buffer.alloc(4096));
    const logManager = await openLog(dir);
    expect(logManager.describePartition('t', 0)).toMatchObject({ highWatermark: 5, sizeBytes: activeBytes });
    expect(logManager.recoveryReport()[0]!.detail).toBe(
      `batch at byte ${activeBytes} claims 12 bytes, 4096 remain; cut 4096 bytes at byte ${activeBytes} (offset 5)`,
    );
  });

  it('truncates at a whole batch whose CRC fails, and everything after it', async () => {
    const { dir, active, activeBytes } = await crashedLog(3);
    const bad = encodeRecordBatch([{ key: null, value: Buffer.from('bad') }], { baseOffset: 3 });
    bad[bad.length - 1] = bad[bad.length - 1]! ^ 0xff;
    const good = encodeRecordBatch([{ key: null, value: Buffer.from('after') }], { baseOffset: 4 });
    await appendFile(active, Buffer.concat([bad, good]));
    const logManager = await openLog(dir);
    expect(logManager.describePartition('t', 0)).toMatchObject({ highWatermark: 3, sizeBytes: activeBytes });
    expect(logManager.recoveryReport()[0]!.detail).toMatch(/^batch at byte \d+: CRC-32C mismatch; cut \d+ bytes at byte \d+ \(offset 3\)$/);
  });

  it('truncates a whole batch whose offset does not follow (stale bytes)', async () => {
    const { dir, active, activeBytes } = await crashedLog(3);
    await appendFile(active, encodeRecordBatch([{ key: null, value: Buffer.from('stale') }], { baseOffset: 1 }));
    const logManager = await openLog(dir);
    expect(logManager.describePartition('t', 0)).toMatchObject({ highWatermark: 3, sizeBytes: activeBytes });
    expect(logManager.recoveryReport()[0]!.detail).toMatch(/^batch at byte \d+: baseOffset 1, expected 3; cut/);
  });

  it('validates only past the recovery point: a flipped byte before it is trusted, one after it cuts the log there', async () => {
    const { dir, active } = await crashedLog(20, {}, 10);
    const before = await batchPosition(active, 4);
    const after = await batchPosition(active, 15);
    // Byte 64 of a batch is in its record (the header has 61).
    await flipByte(active, before + 64);
    await flipByte(active, after + 64);
    const size = (await stat(active)).size;
    const logManager = await openLog(dir);
    expect(logManager.describePartition('t', 0)).toMatchObject({ highWatermark: 15, sizeBytes: after });
    expect(logManager.recoveryReport().map((e) => e.detail)).toEqual([
      `batch at byte ${after}: CRC-32C mismatch; cut ${size - after} bytes at byte ${after} (offset 15)`,
    ]);
    // The flipped byte before the recovery point was not looked at: the batch is served as it is, and a consumer's CRC check reports it.
    const { records } = await logManager.read('t', 0, 4, { maxBytes: 1 });
    expect(() => decodeRecordBatches(records)).toThrow(/^batch at byte 0 fails its CRC-32C check \(stored 0x[0-9a-f]{8}, computed 0x[0-9a-f]{8}\)$/);
  });

  it('reports a damaged batch header before the recovery point when a lookup walks over it', async () => {
    const { dir, active } = await crashedLog(20, {}, 20);
    const position = await batchPosition(active, 5);
    await flipByte(active, position + 16);
    const error = await caught(
      LogManager.open({ dataDir: dir }).then(async (logManager) => {
        try {
          await logManager.read('t', 0, 10, { maxBytes: 100 });
        } finally {
          await logManager.close();
        }
      }),
    );
    expect([error.code, error.message]).toEqual([
      'STORAGE_CORRUPT',
      `${active}: the batch header at byte ${position} is damaged; restore the partition from a backup`,
    ]);
  });

  it('reports, and does not truncate, a bad batch inside a rolled segment past the recovery point', async () => {
    const { dir, partitionDir, segments } = await crashedLog(40, { segmentBytes: 1024 });
    expect(segments.length).toBeGreaterThan(2);
    const older = join(partitionDir, segments[0]!);
    const bytes = await readFile(older);
    await flipByte(older, 100);
    const error = await caught(LogManager.open({ dataDir: dir }));
    expect(error.code).toBe('STORAGE_CORRUPT');
    expect(error.message).toMatch(
      new RegExp(
        `^${escape(older)}: batch at byte \\d+: CRC-32C mismatch; this segment was synced whole when it was rolled, so this is damage, not a torn write\\. ` +
          `Restore the partition from a backup, or move this segment and the ones after it out of ${escape(partitionDir)} to cut the partition at offset \\d+ \\(what follows is lost\\)$`,
      ),
    );
    expect((await readFile(older)).length).toBe(bytes.length);
  });

  it('reports a rolled segment whose end was cut when it is first read', async () => {
    const { dir, partitionDir, segments } = await crashedLog(40, { segmentBytes: 1024 }, 40);
    const older = join(partitionDir, segments[0]!);
    const last = await batchPosition(older, Number(segments[1]!.slice(0, 20)) - 1);
    await truncate(older, last);
    const logManager = await openLog(dir);
    const error = await caught(logManager.read('t', 0, 0, { maxBytes: 100 }));
    expect([error.code, error.message]).toEqual([
      'STORAGE_CORRUPT',
      `${older} ends at offset ${Number(segments[1]!.slice(0, 20)) - 1} but the next segment starts at ${Number(segments[1]!.slice(0, 20))}: ` +
        `offsets ${Number(segments[1]!.slice(0, 20)) - 1}..${Number(segments[1]!.slice(0, 20)) - 1} are missing; restore the partition from a backup`,
    ]);
  });

  it('fails to open when the active segment is shorter than its recovery point', async () => {
    const { dir, active, activeBytes } = await crashedLog(10, {}, 10);
    const cut = await batchPosition(active, 5);
    await truncate(active, cut);
    const error = await caught(LogManager.open({ dataDir: dir }));
    expect([error.code, error.message]).toEqual([
      'STORAGE_CORRUPT',
      `${active} has ${cut} bytes but its recovery point is at byte ${activeBytes} (offset 10): acknowledged records are missing; restore the partition from a backup`,
    ]);
  });

  it('validates every partition in full when the recovery-point file is damaged, and says so', async () => {
    const { dir, active, activeBytes } = await crashedLog(8, {}, 8);
    const torn = encodeRecordBatch([{ key: null, value: Buffer.from('torn') }], { baseOffset: 8 });
    await appendFile(active, torn.subarray(0, 20));
    const pointsFile = join(dir, RECOVERY_POINTS);
    const bytes = await readFile(pointsFile);
    bytes[bytes.length - 2] = bytes[bytes.length - 2]! ^ 1;
    await writeFile(pointsFile, bytes);
    const logManager = await openLog(dir);
    expect(logManager.recoveryReport().map((e) => [e.file, e.detail])).toEqual([
      [pointsFile, `checkpoint ${pointsFile} is corrupt: the body fails its CRC-32C check; validating every partition in full`],
      [active, `batch at byte ${activeBytes} claims ${torn.length} bytes, 20 remain; cut 20 bytes at byte ${activeBytes} (offset 8)`],
    ]);
    expect(logManager.describePartition('t', 0).highWatermark).toBe(8);
  });

  it('after a clean close reopens without validating: even a damaged active segment is trusted', async () => {
    const dir = await tempDir();
    const logManager = await LogManager.open({ dataDir: dir });
    await logManager.createTopic('t', { partitions: 1 });
    for (let i = 0; i < 5; i++) await logManager.appendRecords('t', 0, [{ key: null, value: Buffer.from(`v${i}`) }]);
    await logManager.close();
    const active = join(dir, 't-0', `${SEGMENT}.log`);
    const size = (await stat(active)).size;
    await flipByte(active, size - 3);
    const reopened = await openLog(dir);
    expect(reopened.recoveryReport()).toEqual([]);
    expect(reopened.describePartition('t', 0)).toMatchObject({ highWatermark: 5, sizeBytes: size });
  });

  it('opens after a crash that follows deleting a topic and creating one of the same name', async () => {
    const dir = await tempDir();
    const logManager = await LogManager.open({ dataDir: dir });
    await logManager.createTopic('again', { partitions: 1, config: { segmentBytes: 1024 } });
    for (let i = 0; i < 40; i++) await logManager.appendRecords('again', 0, [{ key: null, value: Buffer.alloc(100) }]);
    await logManager.checkpointRecoveryPoints();
    await logManager.deleteTopic('again');
    await logManager.createTopic('again', { partitions: 1 });
    await logManager.appendRecords('again', 0, [{ key: null, value: Buffer.from('new') }]);
    const points = await readFile(join(dir, RECOVERY_POINTS));
    await logManager.close();
    await writeFile(join(dir, RECOVERY_POINTS), points);
    const reopened = await openLog(dir);
    expect((await readAll(reopened, 'again', 0)).map(([, v]) => v)).toEqual(['new']);
  });

  it('removes partition directories of a topic deleted by a crashed deleteTopic, and recreates missing ones', async () => {
    const dir = await tempDir();
    const logManager = await LogManager.open({ dataDir: dir });
    await logManager.createTopic('kept', { partitions: 2 });
    await logManager.close();
    await rm(join(dir, 'kept-1'), { recursive: true });
    await writeFile(join(dir, 'stray.txt'), 'not ours');
    await mkdir(join(dir, 'gone-0'));
    await writeFile(join(dir, 'gone-0', `${SEGMENT}.log`), '');
    const reopened = await openLog(dir);
    const entries = await readdir(dir);
    expect(entries.includes('gone-0')).toBe(false);
    expect(entries.includes('stray.txt')).toBe(true);
    expect(entries.includes('kept-1')).toBe(true);
    expect(reopened.describePartition('kept', 1).highWatermark).toBe(0);
  });
});

describe('damaged index files', () => {
  it('rebuilds a missing offset index and a garbled time index of rolled segments, and reports both', async () => {
    const { dir, partitionDir, segments } = await crashedLog(60, { segmentBytes: 1024, indexIntervalBytes: 100 }, 60);
    expect(segments.length).toBeGreaterThan(2);
    const firstIndex = join(partitionDir, `${SEGMENT}.index`);
    const original = await readFile(firstIndex);
    expect(original.length).toBeGreaterThan(0);
    await rm(firstIndex);
    const secondTime = join(partitionDir, segments[1]!.replace('.log', '.timeindex'));
    await writeFile(secondTime, Buffer.from('garbage!!'));
    const logManager = await openLog(dir);
    // The time index is needed at open (the segment's largest timestamp); the offset index when first read.
    expect(logManager.recoveryReport()).toEqual([
      {
        topic: 't',
        partition: 0,
        file: secondTime.replace('.timeindex', '.index'),
        action: 'index-rebuilt',
        detail: 'the time index is missing or inconsistent; rebuilt both indexes from the log',
      },
    ]);
    expect((await readAll(logManager, 't', 0)).map(([, v]) => v)).toEqual(values(60));
    expect(logManager.recoveryReport().map((e) => [e.file, e.detail])).toContainEqual([
      firstIndex,
      'the offset index is missing or inconsistent; rebuilt both indexes from the log',
    ]);
    await logManager.close();
    expect((await readFile(firstIndex)).equals(original)).toBe(true);
  });

  it.each([
    ['truncated to an odd size', async (path: string) => truncate(path, (await stat(path)).size - 3)],
    ['zeroed', async (path: string) => writeFile(path, Buffer.alloc((await stat(path)).size))],
  ])('rebuilds the active segment’s offset index %s after a crash', async (_, damage) => {
    const { dir, partitionDir } = await crashedLog(50, { indexIntervalBytes: 100 }, 25);
    await damage(join(partitionDir, `${SEGMENT}.index`));
    const logManager = await openLog(dir);
    expect(logManager.recoveryReport().map((e) => e.detail)).toEqual(['the indexes did not match the recovery point; rebuilt from the log']);
    for (const offset of [0, 7, 24, 25, 49]) {
      const { records } = await logManager.read('t', 0, offset, { maxBytes: 1 });
      expect(decodeRecordBatches(records)[0]!.baseOffset).toBe(offset);
    }
  });

  it('catches an index entry that keeps its order but points at the wrong batch, and rebuilds the index', async () => {
    const { dir, partitionDir, segments } = await crashedLog(60, { segmentBytes: 1024, indexIntervalBytes: 100 }, 60);
    const index = join(partitionDir, `${SEGMENT}.index`);
    const bytes = await readFile(index);
    // Second entry: keep the relative offset, move the position one batch back (still increasing, still inside the log).
    const firstPosition = bytes.readUInt32BE(4);
    const secondPosition = bytes.readUInt32BE(12);
    bytes.writeUInt32BE(firstPosition + Math.floor((secondPosition - firstPosition) / 2), 12);
    await writeFile(index, bytes);
    const logManager = await openLog(dir);
    const target = bytes.readUInt32BE(8);
    const { records } = await logManager.read('t', 0, target, { maxBytes: 1 });
    expect(decodeRecordBatches(records)[0]!.baseOffset).toBe(target);
    expect(logManager.recoveryReport().map((e) => e.detail)).toEqual([
      `offset index entry (${target}, ${bytes.readUInt32BE(12)}) does not point at the batch ending at offset ${target}; rebuilt both indexes from the log`,
    ]);
    expect(segments.length).toBeGreaterThan(1);
  });

  it('catches a time index entry that does not match its batch, and still finds the right offset', async () => {
    const { dir, partitionDir, segments } = await crashedLog(60, { segmentBytes: 1024, indexIntervalBytes: 100 }, 60);
    const timeIndex = join(partitionDir, `${SEGMENT}.timeindex`);
    const bytes = await readFile(timeIndex);
    expect(bytes.length).toBeGreaterThanOrEqual(24);
    expect(segments.length).toBeGreaterThan(1);
    // First entry: a timestamp one less (still increasing) — its batch's maxTimestamp no longer matches.
    bytes.writeBigInt64BE(bytes.readBigInt64BE(0) - 1n, 0);
    await writeFile(timeIndex, bytes);
    const logManager = await openLog(dir);
    // A timestamp whose lookup lands on the first entry: the second entry's (record i has timestamp 1_000_000 + i).
    const target = Number(bytes.readBigInt64BE(12));
    expect(await logManager.offsetForTimestamp('t', 0, target)).toEqual({ offset: target - 1_000_000, timestampMs: target });
    expect(logManager.recoveryReport().map((e) => e.detail)[0]).toMatch(
      /^time index entry \(\d+, \d+\) does not match the batch holding offset \d+; rebuilt both indexes from the log$/,
    );
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
