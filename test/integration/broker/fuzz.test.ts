import { rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Kafka, logLevel } from 'kafkajs';
import { pino } from 'pino';
import { expect, it } from 'vitest';
import { Reader } from '../../../src/broker/codec/reader.js';
import { decodeRecordBatches, LogManager } from '../../../src/log/index.js';
import { until } from '../../../src/testing/index.js';
import { startTestBroker, uniqueName } from './helpers/broker.js';
import { fuzz, loadCorpus } from './helpers/fuzzer.js';
import { RawClient } from './helpers/raw-client.js';

/**
 * Fuzz: mutated and random frames on one connection while a kafkajs
 * producer and consumer work on others. The broker must stay up, the
 * producer and consumer must see no error and every record exactly once,
 * and the log must verify clean afterwards (every batch's CRC, contiguous
 * offsets). FUZZ_SECONDS sets the duration: 10 in the normal run, 60 in
 * `npm run fuzz:broker`. FUZZ_SEED replays a run.
 */
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
const SECONDS = Number(process.env.FUZZ_SECONDS ?? 10);
const SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31);
const fixtures = join(dirname(fileURLToPath(import.meta.url)), '../../unit/broker/fixtures');

it(
  `survives ${SECONDS} s of fuzzed frames while a producer and a consumer work (seed ${SEED})`,
  async () => {
    // The broker's own log lines: a refused frame is a warning; an error would be a bug (a decoder
    // that threw something other than FRAME_INVALID, an encoder failure, an unexpected handler error).
    const lines: { level: number; msg: string; reason?: string }[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    const t = await startTestBroker(
      // The fuzzer may turn a CreateTopics into any topic: keep what it can create small.
      { log: { topicsMax: 200, partitionsPerTopicMax: 16 } },
      { logger },
    );
    let stopped = false;
    try {
      // The topics the captured frames name, so mutated Produce and Fetch frames reach the log.
      await t.broker.logManager.createTopic('fixture-topic', { partitions: 2 });
      const work = uniqueName('work-topic-for-the-fuzz-test');
      await t.broker.logManager.createTopic(work, { partitions: 2 });
      const kafka = new Kafka({ brokers: [t.bootstrap], clientId: 'fuzz-bystander', logLevel: logLevel.NOTHING });
      const errors: unknown[] = [];

      const consumer = kafka.consumer({ groupId: uniqueName('bystander-consumer-group'), maxWaitTimeInMs: 200, heartbeatInterval: 500 });
      consumer.on(consumer.events.CRASH, (event) => errors.push(event.payload.error));
      consumer.on(consumer.events.REQUEST_TIMEOUT, (event) => errors.push(new Error(`consumer request timeout ${JSON.stringify(event.payload)}`)));
      const received: string[][] = [[], []];
      await consumer.connect();
      await consumer.subscribe({ topic: work, fromBeginning: true });
      await consumer.run({ eachMessage: async ({ partition, message }) => void received[partition]!.push(message.value!.toString()) });

      const producer = kafka.producer();
      producer.on(producer.events.REQUEST_TIMEOUT, (event) => errors.push(new Error(`producer request timeout ${JSON.stringify(event.payload)}`)));
      await producer.connect();
      const sent: string[][] = [[], []];
      const producing = (async () => {
        for (let i = 0; !stopped; i += 1) {
          const partition = i % 2;
          const values = Array.from({ length: 10 }, (_, j) => `${i}.${j}`);
          try {
            await producer.send({ topic: work, acks: -1, messages: values.map((value) => ({ partition, value })) });
            sent[partition]!.push(...values);
          } catch (error) {
            errors.push(error);
          }
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
      })();

      const done = new AbortController();
      const timer = setTimeout(() => done.abort(), SECONDS * 1000);
      const stats = await fuzz(t.port, loadCorpus(fixtures), SEED, done.signal);
      clearTimeout(timer);
      stopped = true;
      await producing;
      await producer.disconnect();

      // The consumer catches up with everything the producer was told was written.
      await until(() => received.every((r, p) => r.length >= sent[p]!.length), {
        timeoutMs: 20_000,
        intervalMs: 50,
        message: () => `received ${received.map((r) => r.length).join('+')} of ${sent.map((s) => s.length).join('+')}`,
      });
      await consumer.disconnect();
      expect(errors).toEqual([]);
      expect(received).toEqual(sent);
      expect(sent[0]!.length + sent[1]!.length).toBeGreaterThan(100);
      // The fuzzer really did exercise the broker: frames, answers and refusals.
      expect(stats.frames).toBeGreaterThan(SECONDS * 100);
      expect(stats.responses).toBeGreaterThan(0);
      expect(stats.closedByBroker).toBeGreaterThan(0);
      expect(lines.filter((line) => line.level >= 50)).toEqual([]);
      const refusals = lines.filter((line) => line.msg === 'closing connection' && line.level === 40);
      expect(refusals.length).toBeGreaterThan(0);
      console.log(`fuzz seed ${SEED}: ${JSON.stringify(stats)}, ${refusals.length} refusals logged`);

      // Still serving.
      const client = await RawClient.connect(t.port);
      expect(new Reader(await client.request(18, 2, Buffer.alloc(0))).int16()).toBe(0);
      client.close();

      await t.broker.close();
      await verifyLog(t.dataDir, work, sent);
    } finally {
      stopped = true;
      await t.broker.close();
      await rm(t.dataDir, { recursive: true, force: true });
    }
  },
  (SECONDS + 90) * 1000,
);

/** Reopens the log and reads every batch of every partition back, checking CRCs and offsets. */
async function verifyLog(dataDir: string, work: string, sent: string[][]): Promise<void> {
  const logManager = await LogManager.open({ dataDir });
  try {
    for (const topic of logManager.listTopics()) {
      for (const partition of logManager.describeTopic(topic).partitions) {
        let offset = partition.logStartOffset;
        const values: string[] = [];
        while (offset < partition.highWatermark) {
          const { records } = await logManager.read(topic, partition.partition, offset, { maxBytes: 4 * 1024 * 1024 });
          const batches = decodeRecordBatches(records, { verifyCrc: true });
          expect(batches.length, `${topic}-${partition.partition} at ${offset}`).toBeGreaterThan(0);
          for (const batch of batches) {
            expect(batch.baseOffset, `${topic}-${partition.partition}: batches are contiguous`).toBe(offset);
            expect(batch.records.map((r) => r.offset)).toEqual(Array.from({ length: batch.records.length }, (_, i) => offset + i));
            values.push(...batch.records.map((r) => r.value?.toString() ?? ''));
            offset = batch.lastOffset + 1;
          }
        }
        expect(offset).toBe(partition.highWatermark);
        if (topic === work) expect(values).toEqual(sent[partition.partition]);
      }
    }
  } finally {
    await logManager.close();
  }
}
