import { execFileSync } from 'node:child_process';
import { copyFile, mkdir, open, readdir, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { encodeRecordBatch, LOG_OVERHEAD, LogManager } from '../../src/log/index.js';
import { EmbeddedTransport } from '../../src/transport/index.js';
import { mib, MiB, openBenchLog, type Row } from './support.js';

export interface CatchUpOptions {
  dir: string;
  /** Bytes of log to catch up on. */
  bytes: number;
  rounds: number;
}

const READ_BYTES = MiB;
/** RecordBatch v2 header: batchLength at byte 8, lastOffsetDelta at byte 23 (src/log/record-batch.ts). */
const BATCH_LENGTH_AT = 8;
const LAST_OFFSET_DELTA_AT = 23;
const TOPIC = 'catchup';

/** Fills one partition with `bytes` of 100 × 1 KiB batches (flushMode os: the fill is not what is measured). */
async function fill(dataDir: string, bytes: number): Promise<void> {
  const logManager = await openBenchLog(dataDir);
  await logManager.createTopic(TOPIC, { partitions: 1, config: { flushMode: 'os' } });
  const records = Array.from({ length: 100 }, (_, i) => ({ key: null, value: Buffer.alloc(1024, i) }));
  const batch = encodeRecordBatch(records);
  const pending: Promise<unknown>[] = [];
  for (let written = 0; written < bytes; written += batch.length) {
    pending.push(logManager.append(TOPIC, 0, Buffer.from(batch)));
    if (pending.length >= 64) await Promise.all(pending.splice(0));
  }
  await Promise.all(pending);
  await logManager.close();
}

/** Reads the segment files of a partition in order, one chunk per call (the raw baseline). */
class RawReader {
  private file: FileHandle | null = null;
  private next = 0;

  private constructor(private readonly paths: string[]) {}

  static async open(partitionDir: string): Promise<RawReader> {
    const names = (await readdir(partitionDir)).filter((f) => f.endsWith('.log')).sort();
    return new RawReader(names.map((name) => join(partitionDir, name)));
  }

  /** Bytes read into `buffer`; 0 at the end of the last file. */
  async read(buffer: Buffer): Promise<number> {
    for (;;) {
      if (this.file === null) {
        if (this.next >= this.paths.length) return 0;
        this.file = await open(this.paths[this.next++]!, 'r');
      }
      const { bytesRead } = await this.file.read(buffer, 0, buffer.length, null);
      if (bytesRead > 0) return bytesRead;
      await this.file.close();
      this.file = null;
    }
  }
}

/** Catches up from offset 0 with 1 MiB reads into one buffer, walking batch headers, one read per call (what a consumer does). */
class LogReader {
  private offset = 0;

  constructor(private readonly logManager: LogManager) {}

  async read(buffer: Buffer): Promise<number> {
    if (this.offset >= this.logManager.describePartition(TOPIC, 0).highWatermark) return 0;
    const { records } = await this.logManager.read(TOPIC, 0, this.offset, { maxBytes: READ_BYTES, buffer });
    let pos = 0;
    while (pos < records.length) {
      this.offset = Number(records.readBigInt64BE(pos)) + records.readInt32BE(pos + LAST_OFFSET_DELTA_AT) + 1;
      pos += LOG_OVERHEAD + records.readInt32BE(pos + BATCH_LENGTH_AT);
    }
    return records.length;
  }
}

/**
 * 3. A consumer catching up on `bytes` of log against a raw sequential read
 * of the same segment files, both from the page cache (warmed first), both
 * with 1 MiB reads into one buffer of their own. The two alternate read by
 * read, so that both meet the same CPU and memory bandwidth (the machine is
 * shared); each round reads everything once on each side.
 */
export async function benchCatchUp(options: CatchUpOptions): Promise<Row[]> {
  const dataDir = join(options.dir, 'catchup-log');
  await fill(dataDir, options.bytes);
  const partitionDir = join(dataDir, `${TOPIC}-0`);
  const rawBuffer = Buffer.allocUnsafe(READ_BYTES);
  const logBuffer = Buffer.allocUnsafe(READ_BYTES);
  const warm = await RawReader.open(partitionDir);
  while ((await warm.read(rawBuffer)) > 0);
  const logManager = await LogManager.open({ dataDir });
  let rawMs = 0;
  let logMs = 0;
  let bytes = 0;
  const ratios: number[] = [];
  try {
    for (let round = 0; round < options.rounds; round++) {
      const raw = await RawReader.open(partitionDir);
      const reader = new LogReader(logManager);
      let roundRaw = 0;
      let roundLog = 0;
      let rawBytes = 0;
      let logBytes = 0;
      for (;;) {
        let start = performance.now();
        const r = await raw.read(rawBuffer);
        roundRaw += performance.now() - start;
        start = performance.now();
        const l = await reader.read(logBuffer);
        roundLog += performance.now() - start;
        rawBytes += r;
        logBytes += l;
        if (r === 0 && l === 0) break;
      }
      if (rawBytes !== logBytes) throw new Error(`the log read ${logBytes} bytes, the files hold ${rawBytes}`);
      bytes = rawBytes;
      rawMs += roundRaw;
      logMs += roundLog;
      ratios.push(roundRaw / roundLog);
    }
    const cold = await coldRounds(logManager, partitionDir, join(options.dir, 'catchup-copy'), options.rounds, rawBuffer, logBuffer);
    const delivered = await embeddedConsumer(logManager);
    const rawRate = (bytes * options.rounds) / (rawMs / 1000);
    const ratio = rawMs / logMs;
    return [
      {
        name: `consumer catching up on ${mib(bytes)} (log reads of 1 MiB, page cache)`,
        baseline: `raw sequential read: ${mib(rawRate)}/s`,
        measured: `${mib((bytes * options.rounds) / (logMs / 1000))}/s (rounds: ${ratios.map((r) => r.toFixed(2)).join(', ')})`,
        ratio,
        target: '≥ 0.7×',
        pass: ratio >= 0.7,
      },
      {
        name: `consumer catching up on ${mib(bytes)} from disk (page cache dropped)`,
        baseline: `raw sequential read of a copy: ${mib((bytes * options.rounds) / (cold.rawMs / 1000))}/s`,
        measured: `${mib((bytes * options.rounds) / (cold.logMs / 1000))}/s (rounds: ${cold.ratios.map((r) => r.toFixed(2)).join(', ')})`,
        ratio: cold.rawMs / cold.logMs,
        target: '≥ 0.7×',
        pass: cold.rawMs / cold.logMs >= 0.7,
      },
      {
        name: `embedded transport delivering the same ${(delivered.records / 1e6).toFixed(2)} M records to a handler`,
        baseline: `raw sequential read: ${mib(rawRate)}/s`,
        measured: `${mib(bytes / delivered.seconds)}/s, ${Math.round(delivered.records / delivered.seconds).toLocaleString('en-US')} records/s`,
        ratio: bytes / delivered.seconds / rawRate,
        target: '(no target)',
        pass: null,
      },
    ];
  } finally {
    await logManager.close();
  }
}

/**
 * The same comparison from disk: the raw side reads a copy of the segment
 * files (else whichever side read a chunk first would warm it for the
 * other), and before each round both sets of files are dropped from the
 * page cache (`dd iflag=nocache count=0`, which drops one file's pages and
 * nobody else's).
 */
async function coldRounds(logManager: LogManager, partitionDir: string, copyDir: string, rounds: number, rawBuffer: Buffer, logBuffer: Buffer) {
  await mkdir(copyDir, { recursive: true });
  const names = (await readdir(partitionDir)).filter((f) => f.endsWith('.log'));
  for (const name of names) await copyFile(join(partitionDir, name), join(copyDir, name));
  const files = names.flatMap((name) => [join(partitionDir, name), join(copyDir, name)]);
  let rawMs = 0;
  let logMs = 0;
  const ratios: number[] = [];
  try {
    for (let round = 0; round < rounds; round++) {
      execFileSync('sync');
      for (const file of files) execFileSync('dd', [`if=${file}`, 'iflag=nocache', 'count=0', 'status=none']);
      const raw = await RawReader.open(copyDir);
      const reader = new LogReader(logManager);
      let roundRaw = 0;
      let roundLog = 0;
      for (;;) {
        let start = performance.now();
        const r = await raw.read(rawBuffer);
        roundRaw += performance.now() - start;
        start = performance.now();
        const l = await reader.read(logBuffer);
        roundLog += performance.now() - start;
        if (r === 0 && l === 0) break;
      }
      rawMs += roundRaw;
      logMs += roundLog;
      ratios.push(roundRaw / roundLog);
    }
  } finally {
    await rm(copyDir, { recursive: true, force: true });
  }
  return { rawMs, logMs, ratios };
}

/** A group member of the embedded transport handed every record (decoded, copied out) by a handler that counts. */
async function embeddedConsumer(logManager: LogManager): Promise<{ records: number; seconds: number }> {
  const total = logManager.describePartition(TOPIC, 0).highWatermark;
  const transport = new EmbeddedTransport(logManager, { consumer: { maxBytesPerPartition: READ_BYTES, maxWaitMs: 100 } });
  let count = 0;
  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = resolve));
  const start = performance.now();
  await transport.subscribe({
    groupId: `bench-${Date.now()}`,
    topics: [TOPIC],
    handler: async () => {
      count += 1;
      if (count === total) finish();
    },
  });
  await done;
  const seconds = (performance.now() - start) / 1000;
  await transport.close();
  return { records: count, seconds };
}
