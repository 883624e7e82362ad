/**
 * Child process of power-loss.test.ts: crash-writer.ts's workload on a log
 * whose file system journals what a power loss would undo (power-loss.ts),
 * plus consumer-offset commits. Appends to topic `crash` (3 partitions,
 * 64 KiB segments so that it rolls often, recovery points every 100 ms, the
 * smallest committed-offsets log so that it compacts), 16 appends and 2
 * commits in flight, and prints one line per acknowledgement:
 * `ACK <partition> <baseOffset> <lastOffset> <tag>` (values `<tag>/<i>`
 * padded with dots) and `COMMIT <partition> <offset>` (group `g`, topic
 * `crash`, offsets rising per partition). Partition 2 takes batches of an
 * idempotent producer, announced first as `PRODUCER <id>`.
 * With `<killAfterAcks>` > 0 it SIGKILLs itself right after printing that
 * many acknowledgements (a crash just after an acknowledgement is where an
 * acknowledgement that came before its sync would show); with
 * `<killAfterWrites>` > 0, right after that many file writes (a crash with
 * written bytes not yet synced); otherwise the test kills it.
 * Usage: node --import tsx power-loss-writer.ts <dataDir> <journalDir> <cycle> <killAfterAcks> <killAfterWrites>
 */
import { replaceLogFileSystem } from '../../../src/log/file-system.js';
import { encodeRecordBatch, LogManager } from '../../../src/log/index.js';
import { JournalingFileSystem } from './power-loss.js';

const [dataDir, journalDir, cycle, killAfter, killAfterWrites] = process.argv.slice(2);
const killAfterAcks = Number(killAfter);
replaceLogFileSystem(new JournalingFileSystem(journalDir!, Number(killAfterWrites)));
const logManager = await LogManager.open({
  dataDir: dataDir!,
  recoveryCheckpointIntervalMs: 100,
  topicDefaults: { segmentBytes: 64 * 1024 },
  groups: { offsetsLogBytesMax: 64 * 1024 },
});
await logManager.ensureTopic('crash', { partitions: 3 });
const { producerId, producerEpoch } = await logManager.initProducerId();
process.stdout.write(`PRODUCER ${producerId}\nREADY\n`);

let acks = 0;
function acknowledged(line: string): void {
  process.stdout.write(`${line}\n`);
  acks += 1;
  if (acks === killAfterAcks) process.kill(process.pid, 'SIGKILL');
}

let sequence = 0;
let producerSequence = 0;
async function appendOne(): Promise<void> {
  const n = sequence++;
  const partition = n % 3;
  const tag = `${cycle}-${n}`;
  const big = n % 10 === 9;
  const count = big ? 4 : 1 + (n % 5);
  const size = big ? 8 * 1024 : 200;
  const records = Array.from({ length: count }, (_, i) => ({ key: null, value: Buffer.from(`${tag}/${i}`.padEnd(size, '.')) }));
  const compression = n % 7 === 0 ? 'lz4' : 'none';
  let ack;
  if (partition === 2) {
    const baseSequence = producerSequence;
    producerSequence += count;
    ack = await logManager.append('crash', 2, encodeRecordBatch(records, { compression, producerId, producerEpoch, baseSequence }));
  } else {
    ack = await logManager.appendRecords('crash', partition, records, { compression });
  }
  acknowledged(`ACK ${partition} ${ack.baseOffset} ${ack.lastOffset} ${tag}`);
}

let commitOffset = Number(cycle) * 1_000_000;
async function commitOne(): Promise<void> {
  const offset = commitOffset++;
  const partition = offset % 3;
  const result = await logManager.groups.commitOffsets({
    groupId: 'g',
    generationId: -1,
    memberId: '',
    topics: [{ topic: 'crash', partitions: [{ partition, offset }] }],
  });
  if (result.topics[0]!.partitions[0]!.errorCode !== null) throw new Error(`commit failed: ${result.topics[0]!.partitions[0]!.errorCode}`);
  acknowledged(`COMMIT ${partition} ${offset}`);
}

async function lane(task: () => Promise<void>): Promise<void> {
  for (;;) await task();
}

await Promise.all([...Array.from({ length: 16 }, () => lane(appendOne)), lane(commitOne), lane(commitOne)]);
