import { Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeRecordBatches } from '../../../src/log/index.js';
import { until } from '../../../src/testing/index.js';
import { startTestBroker, uniqueName, type TestBroker } from './helpers/broker.js';

/**
 * A compacted topic through the broker with kafkajs: created with
 * cleanup.policy=compact, written with the same keys over and over, cleaned
 * (LogManager.cleanLogs, what the cleaner's timer runs), and consumed from
 * the start by a consumer group, which sees only the latest record of each
 * key in the cleaned part, across the offset gaps, in offset order.
 */
let t: TestBroker;
let kafka: Kafka;

beforeAll(async () => {
  t = await startTestBroker();
  kafka = new Kafka({ brokers: [t.bootstrap], clientId: 'compaction-test', logLevel: logLevel.NOTHING });
});

afterAll(async () => {
  await t?.stop();
});

describe('a compacted topic with kafkajs', () => {
  it('consumed from the start after a clean: the latest value of each key, offsets with gaps, nothing else below the cleaner point', async () => {
    const topic = uniqueName('compacted');
    const admin = kafka.admin();
    await admin.connect();
    try {
      await admin.createTopics({
        topics: [
          {
            topic,
            configEntries: [
              { name: 'cleanup.policy', value: 'compact' },
              { name: 'segment.bytes', value: '4096' },
              { name: 'min.cleanable.dirty.ratio', value: '0.01' },
            ],
          },
        ],
      });
    } finally {
      await admin.disconnect();
    }
    // Rounds 0-9 from an idempotent producer, 10-19 from a plain one: the idempotent producer's last batch, all of
    // whose records are superseded, stays in the log as an empty batch (for its sequence), which the consumer skips.
    const produced: { key: string; value: string; offset: number }[] = [];
    for (const [idempotent, rounds] of [
      [true, [0, 10]],
      [false, [10, 20]],
    ] as const) {
      const producer = kafka.producer(idempotent ? { idempotent: true, maxInFlightRequests: 1 } : {});
      await producer.connect();
      try {
        for (let round = rounds[0]; round < rounds[1]; round++) {
          const messages = Array.from({ length: 10 }, (_, k) => ({ key: `user-${k}`, value: `user-${k} v${round}` }));
          const [meta] = await producer.send({ topic, messages });
          messages.forEach((m, i) => produced.push({ ...m, offset: Number(meta!.baseOffset) + i }));
        }
      } finally {
        await producer.disconnect();
      }
    }

    const [result] = await t.broker.logManager.cleanLogs({ topic });
    expect(result).toMatchObject({ topic, partition: 0, interrupted: false });
    const cleanedThrough = result!.cleanedThrough;
    expect(cleanedThrough).toBeGreaterThan(100);
    const stored = decodeRecordBatches((await t.broker.logManager.read(topic, 0, 0, { maxBytes: 1 << 20 })).records);
    expect(stored.filter((b) => b.producerId >= 0).map((b) => [b.baseOffset, b.records.length])).toEqual([[90, 0]]);

    const seen: { key: string; value: string; offset: number }[] = [];
    const consumer = kafka.consumer({ groupId: uniqueName('compacted-reader') });
    await consumer.connect();
    try {
      await consumer.subscribe({ topic, fromBeginning: true });
      await consumer.run({
        eachMessage: async ({ message }) => {
          seen.push({ key: message.key!.toString(), value: message.value!.toString(), offset: Number(message.offset) });
        },
      });
      await until(() => seen.length > 0 && seen[seen.length - 1]!.offset === produced[produced.length - 1]!.offset, { timeoutMs: 30_000 });
    } finally {
      await consumer.disconnect();
    }

    const lastBelow = new Map<string, number>();
    for (const p of produced) if (p.offset < cleanedThrough) lastBelow.set(p.key, p.offset);
    const expected = produced.filter((p) => p.offset >= cleanedThrough || lastBelow.get(p.key) === p.offset);
    expect(seen).toEqual(expected);
    expect(seen.length).toBeLessThan(produced.length / 2);
    const latest = new Map(seen.map((s) => [s.key, s.value]));
    expect([...latest.entries()].sort()).toEqual(Array.from({ length: 10 }, (_, k) => [`user-${k}`, `user-${k} v19`]).sort());
  });
});
