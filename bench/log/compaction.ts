import { mkdir, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { encodeRecordBatch } from '../../src/log/index.js';
import { freeBytes, GiB, mib, MiB, openBenchLog, sampleRss, table, type Row } from './support.js';

/**
 * `npm run bench:compaction [-- --quick] [-- --map-bytes N]`: the log cleaner
 * (src/log/cleaner/) on 1 GiB of a compacted topic in which 10% of the
 * records are live: 100-record batches of ~1 KiB records whose keys cycle
 * through N/10 keys, so each key is written 10 times and only its last
 * record survives. The data go in 64 MiB segments (the active one, which
 * the cleaner never takes, is left out of the figures). Reports the bytes
 * the clean read per second and the process's peak RSS while it ran
 * (issue 13's target: ≤ 300 MB), and checks the result: one record per key
 * below the cleaner point. --quick: 128 MiB in 16 MiB segments. Data in
 * BENCH_DIR (default .tmp/bench-compaction), removed after.
 */
process.env.CONCORDAT_LOG_LEVEL ??= 'warn';
const quick = process.argv.includes('--quick');
const mapArg = process.argv.indexOf('--map-bytes');
const offsetMapBytes = mapArg > 0 ? Number(process.argv[mapArg + 1]) : 32 * MiB;
const totalBytes = quick ? 128 * MiB : GiB;
const segmentBytes = quick ? 16 * MiB : 64 * MiB;
const RECORD_VALUE_BYTES = 1000;
const RECORDS_PER_BATCH = 100;
const LIVE_SHARE = 0.1;
const RSS_MAX = 300 * 1000 * 1000;

const dir = resolve(process.env.BENCH_DIR ?? join(process.cwd(), '.tmp', 'bench-compaction'));
await mkdir(dir, { recursive: true });
if (freeBytes(dir) < 3 * totalBytes) {
  console.error(`bench:compaction needs ${mib(3 * totalBytes)} free in ${dir} (set BENCH_DIR elsewhere)`);
  process.exit(1);
}
console.log(`log cleaner benchmark${quick ? ' (quick)' : ''}: ${new Date().toISOString()}, node ${process.version}, data in ${dir}`);

const logManager = await openBenchLog(join(dir, 'log'), { cleanerOffsetMapBytes: offsetMapBytes, cleanerBackoffMs: 86_400_000 });
let row: Row;
try {
  await logManager.createTopic('compacted', {
    partitions: 1,
    config: { cleanupPolicy: 'compact', segmentBytes, flushMode: 'os', minCleanableDirtyRatio: 0.01 },
  });
  const recordBytes = RECORD_VALUE_BYTES + 20;
  const records = Math.ceil(totalBytes / recordBytes);
  const keys = Math.ceil(records * LIVE_SHARE);
  const value = Buffer.alloc(RECORD_VALUE_BYTES, 7);
  let appendMs = performance.now();
  for (let first = 0; first < records; first += RECORDS_PER_BATCH) {
    const batch = Array.from({ length: Math.min(RECORDS_PER_BATCH, records - first) }, (_, i) => ({
      key: Buffer.from(`key-${(first + i) % keys}`),
      value,
    }));
    await logManager.append('compacted', 0, encodeRecordBatch(batch));
  }
  appendMs = performance.now() - appendMs;
  const before = logManager.describePartition('compacted', 0);
  console.log(
    `  wrote ${mib(before.sizeBytes)} (${records.toLocaleString('en-US')} records, ${keys.toLocaleString('en-US')} keys) in ${before.segmentCount} segments at ${(before.sizeBytes / MiB / (appendMs / 1000)).toFixed(0)} MiB/s`,
  );

  const rssBefore = process.memoryUsage.rss();
  const rss = sampleRss(20);
  const started = performance.now();
  const results = await logManager.cleanLogs({ force: true });
  const seconds = (performance.now() - started) / 1000;
  const peak = rss.stop();
  const result = results[0]!;
  const after = logManager.describePartition('compacted', 0);
  const live = Math.min(keys, result.cleanedThrough);
  if (result.recordsRead - result.recordsRemoved < live)
    throw new Error(`the clean kept ${result.recordsRead - result.recordsRemoved} records, fewer than the ${live} keys`);
  console.log(
    `  cleaned ${mib(result.bytesRead)} → ${mib(result.bytesWritten)} in ${seconds.toFixed(1)} s, ${result.passes} pass(es), ` +
      `${result.recordsRemoved.toLocaleString('en-US')} of ${result.recordsRead.toLocaleString('en-US')} records removed; partition ${mib(before.sizeBytes)} → ${mib(after.sizeBytes)}`,
  );
  row = {
    name: `clean ${mib(result.bytesRead)} with ${LIVE_SHARE * 100}% live keys (offset map ${mib(offsetMapBytes)})`,
    baseline: `RSS before the clean: ${mib(rssBefore)}`,
    measured: `${(result.bytesRead / MiB / seconds).toFixed(0)} MiB/s read, ${(result.bytesRead / 1e6 / seconds).toFixed(0)} MB/s; peak RSS ${(peak / 1e6).toFixed(0)} MB`,
    ratio: null,
    target: 'peak RSS ≤ 300 MB',
    pass: peak <= RSS_MAX,
  };
} finally {
  await logManager.close();
  await rm(dir, { recursive: true, force: true });
}
console.log(table([row]));
