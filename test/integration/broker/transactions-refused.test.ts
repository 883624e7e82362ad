import { Kafka, logLevel, type LogEntry } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEBIAN_PYTHON, startTestBroker, testNeedsTools, uniqueName, type TestBroker } from './helpers/broker.js';
import { run } from './helpers/process.js';

/**
 * Kafka transactions are not served yet: a transactional producer must fail
 * at once, with the reason, instead of retrying until its timeout (which is
 * what INVALID_REQUEST or COORDINATOR_NOT_AVAILABLE on FindCoordinator
 * key_type 1 did). find-coordinator.ts says why the code is
 * TRANSACTIONAL_ID_AUTHORIZATION_FAILED.
 */
let t: TestBroker;

beforeAll(async () => {
  t = await startTestBroker();
});

afterAll(async () => {
  await t?.stop();
});

process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';

const REASON =
  'concordat broker does not serve Kafka transactions (FindCoordinator key_type 1): ' +
  'produce without a transactional ID (an idempotent producer keeps retries exactly once per partition)';

describe('a transactional producer fails fast, saying why', () => {
  it('librdkafka (confluent-kafka): init_transactions raises a fatal TRANSACTIONAL_ID_AUTHORIZATION_FAILED carrying the reason, long before its timeout', async (context) => {
    testNeedsTools(context, 'confluent-kafka');
    const script = `
import json, time
from confluent_kafka import Producer, KafkaException
p = Producer({'bootstrap.servers': '${t.bootstrap}', 'transactional.id': '${uniqueName('tx')}'})
started = time.monotonic()
try:
    p.init_transactions(30)
    print(json.dumps({'ok': True}))
except KafkaException as e:
    err = e.args[0]
    print(json.dumps({'name': err.name(), 'fatal': err.fatal(), 'retriable': err.retriable(), 'str': err.str(), 'seconds': time.monotonic() - started}))
`;
    const result = await run(DEBIAN_PYTHON, ['-c', script], { timeoutMs: 60_000 });
    expect(result.code, result.stderr).toBe(0);
    const outcome = JSON.parse(result.stdout) as { name: string; fatal: boolean; retriable: boolean; str: string; seconds: number };
    expect(outcome).toMatchObject({ name: 'TRANSACTIONAL_ID_AUTHORIZATION_FAILED', fatal: true, retriable: false });
    expect(outcome.str).toMatch(/^Failed to find transaction coordinator: .+: Broker: Transactional Id authorization failed: /);
    expect(outcome.str.endsWith(REASON)).toBe(true);
    // The timeout is 30 s; with a retriable answer librdkafka used all of it.
    expect(outcome.seconds).toBeLessThan(10);
  });

  it('kafkajs: producer.transaction() rejects at once; its log names the broker\'s code', async () => {
    const entries: LogEntry[] = [];
    const kafka = new Kafka({
      brokers: [t.bootstrap],
      clientId: 'tx-refused',
      logLevel: logLevel.DEBUG,
      logCreator: () => (entry) => entries.push(entry),
    });
    const producer = kafka.producer({ transactionalId: uniqueName('tx'), idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    try {
      const started = Date.now();
      await expect(producer.transaction()).rejects.toMatchObject({ name: 'KafkaJSGroupCoordinatorNotFound', message: 'Failed to find group coordinator', retriable: false });
      // kafkajs's default retry budget is about 30 s; it retried nothing.
      expect(Date.now() - started).toBeLessThan(5000);
      const tried = entries.filter((e) => e.log.message === 'Tried to find group coordinator');
      expect(tried.length).toBeGreaterThan(0);
      expect(tried.map((e) => (e.log.error as { type?: string }).type)).toEqual(tried.map(() => 'TRANSACTIONAL_ID_AUTHORIZATION_FAILED'));
    } finally {
      await producer.disconnect();
    }
  });
});
