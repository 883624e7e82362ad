import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, consumeCount, disconnect, loadRdKafka, messageLine, produceAll, type RdConfig, type RdKafkaError } from '../../support/rdkafka.js';
import { pino } from 'pino';
import { until } from '../../../src/testing/index.js';
import { fileNeedsTools, startTestBroker, uniqueName, type TestBroker } from './helpers/broker.js';
import { runOk } from './helpers/process.js';

/**
 * librdkafka (node-rdkafka) against `concordat broker` with SASL and TLS:
 * security.test.ts's kcat cases without Debian's kcat. SCRAM-SHA-256,
 * SCRAM-SHA-512 and PLAIN with a credentials file, a wrong password refused with the broker's
 * reason, and SASL_SSL with the broker's certificate.
 */
let dir: string;
let sasl: TestBroker;
let tls: TestBroker;
const toolsPresent = fileNeedsTools('node-rdkafka');

beforeAll(async () => {
  if (!toolsPresent) return;
  dir = await mkdtemp(join(tmpdir(), 'concordat-rdkafka-security-'));
  await runOk('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '1',
    '-subj',
    '/CN=localhost',
    '-addext',
    'subjectAltName=IP:127.0.0.1,DNS:localhost',
    '-keyout',
    join(dir, 'key.pem'),
    '-out',
    join(dir, 'cert.pem'),
  ]);
  await writeFile(
    join(dir, 'users.json'),
    JSON.stringify({
      users: [
        { username: 'alice', password: 'alice-secret' },
        { username: 'bob', password: 'bob-secret' },
      ],
    }),
  );
  sasl = await startTestBroker({ sasl: { credentialsFile: join(dir, 'users.json') } });
  tls = await startTestBroker({ tls: { certFile: join(dir, 'cert.pem'), keyFile: join(dir, 'key.pem') }, sasl: { credentialsFile: join(dir, 'users.json') } });
});

afterAll(async () => {
  await sasl?.stop();
  await tls?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const credentials = (mechanism: string, username: string, password: string, protocol = 'SASL_PLAINTEXT'): RdConfig => ({
  'security.protocol': protocol,
  'sasl.mechanisms': mechanism,
  'sasl.username': username,
  'sasl.password': password,
});

/** Produces two records with `auth` and reads them back with a consumer using the same `auth`. */
async function roundTrip(broker: TestBroker, auth: RdConfig): Promise<string[]> {
  const topic = uniqueName('rdkafka-secure');
  await broker.broker.logManager.createTopic(topic, { partitions: 1 });
  const { Producer, KafkaConsumer } = loadRdKafka();
  const producer = new Producer({ 'bootstrap.servers': broker.bootstrap, dr_cb: true, acks: 'all', ...auth });
  try {
    await connect(producer);
    await produceAll(producer, [
      { topic, partition: 0, key: 'k', value: 'one' },
      { topic, partition: 0, value: 'two', headers: { h: 'x' } },
    ]);
  } finally {
    await disconnect(producer);
  }
  const consumer = new KafkaConsumer({ 'bootstrap.servers': broker.bootstrap, 'group.id': uniqueName('rdkafka-secure'), 'enable.auto.commit': false, ...auth });
  try {
    await connect(consumer);
    consumer.assign([{ topic, partition: 0, offset: 0 }]);
    return (await consumeCount(consumer, 2)).map(messageLine);
  } finally {
    await disconnect(consumer);
  }
}

describe('SASL with librdkafka (node-rdkafka)', () => {
  for (const [mechanism, user] of [
    ['SCRAM-SHA-256', 'alice'],
    ['SCRAM-SHA-512', 'alice'],
    ['PLAIN', 'bob'],
  ] as const) {
    it(`${mechanism} with the right password produces and consumes`, async () => {
      expect(await roundTrip(sasl, credentials(mechanism, user, `${user}-secret`))).toEqual(['0|0|k|one|', '0|1|∅|two|h=x']);
    });
  }

  for (const [mechanism, user, password] of [
    ['SCRAM-SHA-256', 'alice', 'nope'],
    ['SCRAM-SHA-512', 'alice', 'nope'],
    ['PLAIN', 'alice', 'nope'],
    ['SCRAM-SHA-256', 'mallory', 'alice-secret'],
    ['SCRAM-SHA-512', 'mallory', 'alice-secret'],
  ] as const) {
    it(`${mechanism} as ${user} with a wrong password is refused, with the broker's reason`, async () => {
      const { Producer } = loadRdKafka();
      const producer = new Producer({ 'bootstrap.servers': sasl.bootstrap, ...credentials(mechanism, user, password) });
      // librdkafka reports the failed authentication as an error event and logs the broker's reason;
      // both are served by polling (which a producer allows once its handle exists, while its first
      // Metadata waits). The Metadata never gets an answer.
      const logs: string[] = [];
      producer.on('event.log', ((log: { message: string }) => logs.push(log.message)) as (...args: never[]) => void);
      const refused = new Promise<RdKafkaError>((resolve) => producer.on('event.error', ((err: RdKafkaError) => resolve(err)) as (...args: never[]) => void));
      const poller = setInterval(() => {
        try {
          producer.poll();
        } catch {
          // Not connected yet (no handle) or no longer.
        }
      }, 20);
      const connected = connect(producer, 3000).then(
        () => 'connected',
        (err: RdKafkaError) => `not connected: ${err.message}`,
      );
      try {
        const error = await refused;
        // node-rdkafka keeps librdkafka's error (RD_KAFKA_RESP_ERR__AUTHENTICATION), not its text; the log has the reason.
        expect(error.message).toBe('authentication failure');
        expect(logs.some((line) => line.includes(`SASL authentication error: authentication failed for user "${user}"`))).toBe(true);
        expect(await connected).toMatch(/^not connected: /);
      } finally {
        clearInterval(poller);
        await connected;
        await disconnect(producer);
      }
    });
  }
});

describe('re-authentication with librdkafka (node-rdkafka, KIP-368)', () => {
  it('re-authenticates within connectionsMaxReauthMs and keeps producing on the same connection', async () => {
    const lines: { msg: string; reason?: string }[] = [];
    const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    const broker = await startTestBroker({ sasl: { credentialsFile: join(dir, 'users.json') }, connectionsMaxReauthMs: 2000 }, { logger });
    const topic = uniqueName('rdkafka-reauth');
    await broker.broker.logManager.createTopic(topic, { partitions: 1 });
    const { Producer } = loadRdKafka();
    const producer = new Producer({
      'bootstrap.servers': broker.bootstrap,
      dr_cb: true,
      acks: 'all',
      ...credentials('SCRAM-SHA-512', 'alice', 'alice-secret'),
    });
    try {
      await connect(producer);
      await produceAll(producer, [{ topic, partition: 0, value: 'before' }]);
      // librdkafka re-authenticates ahead of the session's end (2 s) on each of its connections.
      await until(() => lines.some((l) => l.msg === 'SASL re-authenticated'), { timeoutMs: 10_000, message: 'librdkafka re-authenticates' });
      await new Promise((resolve) => setTimeout(resolve, 2500));
      await produceAll(producer, [{ topic, partition: 0, value: 'after' }]);
      expect(broker.broker.logManager.describePartition(topic, 0).highWatermark).toBe(2);
      expect(lines.filter((l) => l.reason?.startsWith('SASL session expired'))).toEqual([]);
    } finally {
      await disconnect(producer);
      await broker.stop();
    }
  }, 30_000);
});

describe('TLS with librdkafka (node-rdkafka)', () => {
  it('SASL_SSL with the broker certificate as CA produces and consumes', async () => {
    const auth = { ...credentials('SCRAM-SHA-256', 'bob', 'bob-secret', 'SASL_SSL'), 'ssl.ca.location': join(dir, 'cert.pem') };
    expect(await roundTrip(tls, auth)).toEqual(['0|0|k|one|', '0|1|∅|two|h=x']);
  });
});
