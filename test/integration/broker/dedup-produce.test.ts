import { Kafka, logLevel, type Admin, type Producer } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeRecordBatches } from '../../../src/log/index.js';
import { startTestBroker, uniqueName, type TestBroker } from './helpers/broker.js';

/**
 * Produce on a topic with the log's message-ID dedup window
 * (`concordat.dedup.window.ms`), with kafkajs 2.2.4: the base offset the
 * broker answers when the window drops records (src/broker/apis/produce.ts
 * says why): the real one when every record is at base + i in the
 * partition, -1 ("unknown") when not.
 */
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';

let t: TestBroker;
let kafka: Kafka;
let admin: Admin;
let producer: Producer;

beforeAll(async () => {
  t = await startTestBroker();
  kafka = new Kafka({ brokers: [t.bootstrap], clientId: 'dedup-test', logLevel: logLevel.NOTHING });
  admin = kafka.admin();
  await admin.connect();
  // Not idempotent: the window cuts only batches without a producer ID.
  producer = kafka.producer({ idempotent: false });
  await producer.connect();
});

afterAll(async () => {
  await producer?.disconnect();
  await admin?.disconnect();
  await t?.stop();
});

/** Sends `ids` (as ce_id headers; null for none) to one partition, values `v-<id>`; the base offset answered. */
async function send(topic: string, partition: number, ids: (string | null)[], p: Producer = producer): Promise<string> {
  const messages = ids.map((id) => ({ partition, value: `v-${id ?? 'none'}`, headers: id === null ? {} : { ce_id: id } }));
  const answer = await p.send({ topic, acks: -1, messages });
  expect(answer).toHaveLength(1);
  expect(answer[0]).toMatchObject({ topicName: topic, partition, errorCode: 0 });
  return answer[0]!.baseOffset!;
}

/** `offset:value` of every record stored in one partition. */
async function stored(topic: string, partition: number): Promise<string[]> {
  const { records } = await t.broker.logManager.read(topic, partition, 0, { maxBytes: 1024 * 1024 });
  return decodeRecordBatches(records).flatMap((batch) => batch.records.map((r) => `${r.offset}:${r.value!.toString()}`));
}

describe('Produce to a topic with a dedup window', () => {
  it('answers the real base offset when every record lies at base + i in the partition, -1 when not', async () => {
    const topic = uniqueName('dedup');
    await admin.createTopics({ topics: [{ topic, numPartitions: 2, configEntries: [{ name: 'concordat.dedup.window.ms', value: '60000' }] }] });
    expect(t.broker.logManager.describeTopic(topic).config.dedupWindowMs).toBe(60_000);

    expect(await send(topic, 0, ['a'])).toBe('0');
    // The same batch again (a retry): its original's offset, nothing written.
    expect(await send(topic, 0, ['a'])).toBe('0');
    // Its original is on partition 0: no offset of partition 1 says where it is.
    expect(await send(topic, 1, ['a'])).toBe('-1');
    expect(await send(topic, 0, ['b', 'c'])).toBe('1');
    expect(await send(topic, 0, ['b', 'c'])).toBe('1');
    // d is written at 3, b is the one at 1: no base offset fits both.
    expect(await send(topic, 0, ['d', 'b'])).toBe('-1');
    // Two repeats out of order: each is where it was, but not at base + i.
    expect(await send(topic, 0, ['c', 'b'])).toBe('-1');
    expect(await send(topic, 0, ['e', null, null])).toBe('4');

    expect(await stored(topic, 0)).toEqual(['0:v-a', '1:v-b', '2:v-c', '3:v-d', '4:v-e', '5:v-none', '6:v-none']);
    expect(await stored(topic, 1)).toEqual([]);
    expect(t.broker.logManager.describePartition(topic, 1).highWatermark).toBe(0);
  });

  it("an idempotent producer's batches are never cut, so they always get their real base offset", async () => {
    const topic = uniqueName('dedup-idempotent');
    await admin.createTopics({ topics: [{ topic, numPartitions: 2, configEntries: [{ name: 'concordat.dedup.window.ms', value: '60000' }] }] });
    expect(await send(topic, 0, ['a'])).toBe('0');
    const idempotent = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await idempotent.connect();
    try {
      expect(await send(topic, 1, ['a', 'b'], idempotent)).toBe('0');
      expect(await send(topic, 0, ['a'], idempotent)).toBe('1');
    } finally {
      await idempotent.disconnect();
    }
    expect(await stored(topic, 0)).toEqual(['0:v-a', '1:v-a']);
    expect(await stored(topic, 1)).toEqual(['0:v-a', '1:v-b']);
  });
});
