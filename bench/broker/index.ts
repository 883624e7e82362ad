import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchCatchUp } from './catch-up.js';
import { benchKcatProduce, writeRecordsFile } from './kcat-produce.js';
import { benchNodeProduce } from './node-produce.js';

/**
 * `npm run bench:broker [-- --quick]`: the broker's throughput against
 * baselines measured in the same run (docs/benchmarks.md, "Broker").
 *   1. kcat → concordat broker vs kcat → librdkafka's mock broker (target ≥ 0.5×)
 *   2. kafkajs acks=all → concordat broker vs nats.js → JetStream (target ≥ 1.5×)
 *   3. catching up: kafkajs via the broker vs the embedded transport (ratio)
 * Each comparison runs 3 rounds, alternating the sides, and compares medians
 * (this machine is shared; load comes and goes). --quick runs one round with
 * fewer records (for CI, well under a minute).
 */
// The log and broker in this process log at warn unless asked otherwise (read when the first logger is made).
process.env.CONCORDAT_LOG_LEVEL ??= 'warn';
const quick = process.argv.includes('--quick');
const KCAT_RECORDS = quick ? 100_000 : 1_000_000;
const NODE_RECORDS = quick ? 20_000 : 200_000;
const TOPIC = 'bench-kcat';
/** Rounds of each comparison, alternating the two sides; the medians are compared. */
const ROUNDS = quick ? 1 : 3;

const dir = await mkdtemp(join(tmpdir(), 'concordat-bench-broker-'));
const print = (title: string, lines: string[]) => console.log(`\n## ${title}\n${lines.map((l) => `  ${l}`).join('\n')}`);
try {
  console.log(`concordat broker benchmarks${quick ? ' (quick)' : ''}: ${new Date().toISOString()}, node ${process.version}`);
  const file = join(dir, 'records.txt');
  await writeRecordsFile(file, KCAT_RECORDS);
  const logDir = join(dir, 'kcat-log');
  print(
    `1. kcat producing ${KCAT_RECORDS.toLocaleString('en-US')} records of 100 B`,
    (await benchKcatProduce({ dataDir: logDir, file, records: KCAT_RECORDS, topic: TOPIC, rounds: ROUNDS })).lines,
  );
  print(
    `2. Node producer, ${NODE_RECORDS.toLocaleString('en-US')} records of 100 B`,
    (await benchNodeProduce({ dataDir: join(dir, 'node-log'), records: NODE_RECORDS, rounds: ROUNDS })).lines,
  );
  print(
    `3. Consumer catching up on ${KCAT_RECORDS.toLocaleString('en-US')} records`,
    (await benchCatchUp({ dataDir: logDir, topic: TOPIC, records: KCAT_RECORDS, rounds: ROUNDS })).lines,
  );
} finally {
  await rm(dir, { recursive: true, force: true });
}
