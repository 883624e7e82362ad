import { Kafka, logLevel } from 'kafkajs';
import { connect, StorageType } from 'nats';
import { RECORD_BYTES } from './kcat-produce.js';
import { rm } from 'node:fs/promises';
import { describeRounds, median, ratioLine, startBrokerProcess, timed, type Measured } from './support.js';

/**
 * A Node producer with acks=all (kafkajs) into `concordat broker` against
 * nats.js publishing the same records to NATS JetStream with file storage
 * (the nats-server at 127.0.0.1:4222), each acknowledged by the server.
 * Both clients keep a bounded window of requests in flight: kafkajs sends
 * batches of BATCH records, up to WINDOW at once; nats.js keeps WINDOW ×
 * BATCH publishes awaiting their PubAck. Target: ≥ 1.5× JetStream's rate.
 *
 * Durability differs and is reported as it is: concordat acknowledges after
 * fdatasync; JetStream's file store, by default, acknowledges after writing
 * and syncs every 2 minutes (`sync_interval`).
 */
const BATCH = 1000;
const WINDOW = 4;
const NATS_URL = process.env.NATS_URL ?? '127.0.0.1:4222';

function value(i: number): Buffer {
  return Buffer.from(`${String(i).padStart(10, '0')}${'x'.repeat(RECORD_BYTES - 10)}`);
}

async function window(total: number, send: (from: number, to: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: WINDOW }, async () => {
    while (next < total) {
      const from = next;
      next = Math.min(total, next + BATCH);
      await send(from, next);
    }
  });
  await Promise.all(lanes);
}

async function kafkajsProduce(bootstrap: string, records: number): Promise<Measured> {
  const kafka = new Kafka({ brokers: [bootstrap], clientId: 'bench-producer', logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: 'bench-node', numPartitions: 1 }] });
  await admin.disconnect();
  const producer = kafka.producer({ allowAutoTopicCreation: false });
  await producer.connect();
  const values = Array.from({ length: records }, (_, i) => value(i));
  const { ms } = await timed(() =>
    window(records, (from, to) => producer.send({ topic: 'bench-node', acks: -1, messages: values.slice(from, to).map((v) => ({ partition: 0, value: v })) })),
  );
  await producer.disconnect();
  return { records, bytes: records * RECORD_BYTES, ms };
}

async function jetstreamPublish(records: number): Promise<Measured> {
  const nc = await connect({ servers: NATS_URL }).catch((error: unknown) => {
    throw new Error(
      `no NATS server at ${NATS_URL} (${error instanceof Error ? error.message : String(error)}): ` +
        'start one with JetStream, e.g. `nats-server -js -sd /tmp/nats -a 127.0.0.1 -p 4222`, or set NATS_URL',
    );
  });
  const stream = `concordat_bench_${process.pid}_${Date.now()}`;
  const subject = `${stream}.records`;
  try {
    const jsm = await nc.jetstreamManager();
    await jsm.streams.add({ name: stream, subjects: [subject], storage: StorageType.File });
    const js = nc.jetstream();
    const values = Array.from({ length: records }, (_, i) => value(i));
    const { ms } = await timed(() => window(records, (from, to) => Promise.all(values.slice(from, to).map((v) => js.publish(subject, v)))));
    const info = await jsm.streams.info(stream);
    if (info.state.messages !== records) throw new Error(`JetStream stored ${info.state.messages} of ${records} messages`);
    await jsm.streams.delete(stream);
    return { records, bytes: records * RECORD_BYTES, ms };
  } finally {
    await nc.close();
  }
}

export async function benchNodeProduce(options: { dataDir: string; records: number; rounds: number }): Promise<{ lines: string[] }> {
  const ours: Measured[] = [];
  const nats: Measured[] = [];
  for (let round = 0; round < options.rounds; round += 1) {
    const dir = `${options.dataDir}-round${round}`;
    const broker = await startBrokerProcess(dir);
    try {
      ours.push(await kafkajsProduce(broker.bootstrap, options.records));
    } finally {
      await broker.stop();
      await rm(dir, { recursive: true, force: true });
    }
    nats.push(await jetstreamPublish(options.records));
  }
  return {
    lines: [
      describeRounds('kafkajs acks=all → concordat broker (fdatasync acks)', ours),
      describeRounds('nats.js → JetStream file storage (acked, default sync)', nats),
      ratioLine('concordat / JetStream (medians)', median(ours), median(nats), 1.5),
    ],
  };
}
