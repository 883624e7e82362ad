import { join } from 'node:path';
import { encodeRecordBatch, LOG_OVERHEAD } from '../../src/log/index.js';
import { mib, MiB, openBenchLog, sampleRss, type Row } from './support.js';

export interface MemoryOptions {
  dir: string;
  bytes: number;
}

const PARTITIONS = 4;
const IN_FLIGHT_PER_PARTITION = 4;
const RSS_MAX = 300 * MiB;

/**
 * 4. RSS while `bytes` are appended durably (4 partitions, 4 appends of
 * 100 × 1 KiB in flight on each, flushMode sync) and read back from the
 * start with 1 MiB reads into one buffer; sampled every 50 ms.
 */
export async function benchMemory(options: MemoryOptions): Promise<Row> {
  const logManager = await openBenchLog(join(options.dir, 'memory-log'));
  const rss = sampleRss();
  const before = process.memoryUsage.rss();
  let appendSeconds = 0;
  let readSeconds = 0;
  try {
    await logManager.createTopic('memory', { partitions: PARTITIONS });
    const records = Array.from({ length: 100 }, (_, i) => ({ key: null, value: Buffer.alloc(1024, i) }));
    const batch = encodeRecordBatch(records);
    const perPartition = Math.ceil(options.bytes / PARTITIONS / batch.length);
    let start = performance.now();
    await Promise.all(
      Array.from({ length: PARTITIONS * IN_FLIGHT_PER_PARTITION }, async (_, lane) => {
        const partition = lane % PARTITIONS;
        for (let i = 0; i < perPartition / IN_FLIGHT_PER_PARTITION; i++) await logManager.append('memory', partition, Buffer.from(batch));
      }),
    );
    appendSeconds = (performance.now() - start) / 1000;
    start = performance.now();
    const buffer = Buffer.allocUnsafe(MiB);
    for (let partition = 0; partition < PARTITIONS; partition++) {
      const end = logManager.describePartition('memory', partition).highWatermark;
      let offset = 0;
      while (offset < end) {
        const { records: bytes } = await logManager.read('memory', partition, offset, { maxBytes: MiB, buffer });
        let pos = 0;
        while (pos < bytes.length) {
          offset = Number(bytes.readBigInt64BE(pos)) + bytes.readInt32BE(pos + 23) + 1;
          pos += LOG_OVERHEAD + bytes.readInt32BE(pos + 8);
        }
      }
    }
    readSeconds = (performance.now() - start) / 1000;
  } finally {
    await logManager.close();
  }
  const peak = rss.stop();
  return {
    name: `RSS while ${mib(options.bytes)} are appended durably and read back`,
    baseline: `RSS before: ${mib(before)}`,
    measured: `peak RSS ${mib(peak)} (append ${(options.bytes / MiB / appendSeconds).toFixed(0)} MiB/s, read ${(options.bytes / MiB / readSeconds).toFixed(0)} MiB/s)`,
    ratio: null,
    target: '< 300 MiB',
    pass: peak < RSS_MAX,
  };
}
