import { Kafka, logLevel } from 'kafkajs';
import { startBroker } from '../../src/broker/index.js';
import { LogManager } from '../../src/log/index.js';
import { EmbeddedTransport } from '../../src/transport/index.js';
import { RECORD_BYTES } from './kcat-produce.js';
import { describeRounds, median, ratioLine, timed, type Measured } from './support.js';

/**
 * A consumer catching up on N records already in the log: kafkajs over
 * `concordat broker` (TCP, in this process) against the embedded transport
 * reading the same LogManager in process. Both start a new consumer group
 * at the earliest offset and call a handler per record. Reported: the ratio,
 * no target.
 */
function untilCount(target: number, count: () => number): Promise<void> {
  return new Promise((resolve) => {
    const check = setInterval(() => {
      if (count() >= target) {
        clearInterval(check);
        resolve();
      }
    }, 5);
  });
}

async function kafkajsCatchUp(bootstrap: string, topic: string, records: number): Promise<Measured> {
  const kafka = new Kafka({ brokers: [bootstrap], clientId: 'bench-consumer', logLevel: logLevel.NOTHING });
  const consumer = kafka.consumer({ groupId: `bench-kafkajs-${Date.now()}`, maxBytesPerPartition: 10 * 1024 * 1024, maxBytes: 50 * 1024 * 1024 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  let seen = 0;
  const { ms } = await timed(async () => {
    await consumer.run({ eachMessage: async () => void (seen += 1) });
    await untilCount(records, () => seen);
  });
  await consumer.disconnect();
  return { records: seen, bytes: seen * RECORD_BYTES, ms };
}

async function embeddedCatchUp(logManager: LogManager, topic: string, records: number): Promise<Measured> {
  const transport = new EmbeddedTransport(logManager, { consumer: { maxBytesPerPartition: 10 * 1024 * 1024 } });
  await transport.connect();
  let seen = 0;
  const { ms } = await timed(async () => {
    const subscription = await transport.subscribe({
      groupId: `bench-embedded-${Date.now()}`,
      topics: [topic],
      offsetReset: 'earliest',
      handler: async () => void (seen += 1),
    });
    await untilCount(records, () => seen);
    await subscription.close();
  });
  await transport.close();
  return { records: seen, bytes: seen * RECORD_BYTES, ms };
}

export async function benchCatchUp(options: { dataDir: string; topic: string; records: number; rounds: number }): Promise<{ lines: string[] }> {
  const logManager = await LogManager.open({ dataDir: options.dataDir });
  try {
    const stored = logManager.describePartition(options.topic, 0).highWatermark;
    if (stored !== options.records) throw new Error(`expected ${options.records} records in ${options.topic}, found ${stored}`);
    const viaKafkajs: Measured[] = [];
    const embedded: Measured[] = [];
    for (let round = 0; round < options.rounds; round += 1) {
      const broker = await startBroker({ port: 0 }, { logManager });
      try {
        viaKafkajs.push(await kafkajsCatchUp(broker.bootstrap, options.topic, options.records));
      } finally {
        await broker.close();
      }
      embedded.push(await embeddedCatchUp(logManager, options.topic, options.records));
    }
    return {
      lines: [
        describeRounds('kafkajs via concordat broker', viaKafkajs),
        describeRounds('embedded transport (in process)', embedded),
        ratioLine('kafkajs / embedded (medians)', median(viaKafkajs), median(embedded), null),
      ],
    };
  } finally {
    await logManager.close();
  }
}
