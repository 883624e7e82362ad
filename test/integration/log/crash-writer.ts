/**
 * Child process of crash.test.ts: appends to topic `crash` (3 partitions,
 * small segments, recovery points checkpointed every 100 ms) without
 * pause, 24 appends in flight, and prints one line per acknowledged
 * append: `ACK <partition> <baseOffset> <lastOffset> <tag>`, where the
 * records' values are `<tag>/<i>` padded with dots. Partition 2 takes
 * batches of an idempotent producer, announced first as `PRODUCER <id>`.
 * The test kills it with SIGKILL.
 * Usage: node --import tsx crash-writer.ts <dataDir> <cycle>
 */
import { encodeRecordBatch, LogManager } from '../../../src/log/index.js';

const [dataDir, cycle] = process.argv.slice(2);
const logManager = await LogManager.open({
  dataDir: dataDir!,
  recoveryCheckpointIntervalMs: 100,
  topicDefaults: { segmentBytes: 256 * 1024 },
});
await logManager.ensureTopic('crash', { partitions: 3 });
const { producerId, producerEpoch } = await logManager.initProducerId();
process.stdout.write(`PRODUCER ${producerId}\nREADY\n`);

let sequence = 0;
let producerSequence = 0;
async function appendOne(): Promise<void> {
  const n = sequence++;
  const partition = n % 3;
  const tag = `${cycle}-${n}`;
  // Every 10th append is big (4 × 32 KiB, many pages), so that a kill can land inside its write.
  const big = n % 10 === 9;
  const count = big ? 4 : 1 + (n % 5);
  const size = big ? 32 * 1024 : 200;
  const records = Array.from({ length: count }, (_, i) => ({ key: null, value: Buffer.from(`${tag}/${i}`.padEnd(size, '.')) }));
  const compression = n % 7 === 0 ? 'lz4' : 'none';
  let ack;
  if (partition === 2) {
    // Sequences are taken in call order, which is the order the log accepts appends in.
    const baseSequence = producerSequence;
    producerSequence += count;
    ack = await logManager.append('crash', 2, encodeRecordBatch(records, { compression, producerId, producerEpoch, baseSequence }));
  } else {
    ack = await logManager.appendRecords('crash', partition, records, { compression });
  }
  process.stdout.write(`ACK ${partition} ${ack.baseOffset} ${ack.lastOffset} ${tag}\n`);
}

async function lane(): Promise<void> {
  for (;;) await appendOne();
}

await Promise.all(Array.from({ length: 24 }, lane));
