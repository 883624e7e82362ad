import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onTestFinished } from 'vitest';
import { LogManager, type LogManagerOptions } from '../../../src/log/index.js';
import { decodeRecordBatches } from '../../../src/log/index.js';

/** A fresh data directory removed when the test ends. */
export async function tempDir(prefix = 'concordat-log-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  onTestFinished(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  return dir;
}

/** Opens a log in `dataDir`, closed when the test ends (closing twice is harmless). */
export async function openLog(dataDir: string, options: Omit<LogManagerOptions, 'dataDir'> = {}): Promise<LogManager> {
  const logManager = await LogManager.open({ ...options, dataDir });
  onTestFinished(async () => {
    await logManager.close();
  });
  return logManager;
}

/** Every record of a partition from `from` to the high watermark: [offset, value as text]. */
export async function readAll(logManager: LogManager, topic: string, partition: number, from = 0): Promise<[number, string | null][]> {
  const out: [number, string | null][] = [];
  let offset = from;
  const end = logManager.describePartition(topic, partition).highWatermark;
  while (offset < end) {
    const result = await logManager.read(topic, partition, offset, { maxBytes: 64 * 1024 });
    for (const batch of decodeRecordBatches(result.records)) {
      for (const record of batch.records) {
        if (record.offset >= offset) out.push([record.offset, record.value?.toString() ?? null]);
      }
      offset = batch.lastOffset + 1;
    }
  }
  return out;
}
