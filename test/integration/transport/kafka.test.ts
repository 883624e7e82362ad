import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startBroker, type Broker } from '../../../src/broker/index.js';
import { kafkaTransportOptionsFromEnv, type KafkaTransportOptions } from '../../../src/config/index.js';
import { CONSUMER_STALLED_FAILURES, defaultTransport, EmbeddedTransport, KafkaTransport, type Transport } from '../../../src/transport/index.js';
import { startTestBroker, type TestBroker } from '../broker/helpers/broker.js';
import { transportContract, unique, waitFor } from './contract.js';
import { startFaultProxy, type FaultProxy } from './helpers/fault-proxy.js';

/**
 * The transport contract over kafkajs against `concordat broker` in this
 * process (real TCP on a free port), then what is particular to the kafkajs
 * transport: a failed publish and a broker restart, concurrent topic
 * creation, heartbeats during a long handler, commit on revoke, SASL, and
 * selection by KAFKA_BROKERS.
 */

let broker: TestBroker;

beforeAll(async () => {
  broker = await startTestBroker();
});

afterAll(async () => {
  await broker?.stop();
});

/** As startTestBroker: no 3 s wait for more members before a group's first rebalance. */
const NO_INITIAL_DELAY = { groups: { initialRebalanceDelayMs: 0 } };
const testConsumer = { sessionTimeoutMs: 6000, heartbeatIntervalMs: 500, maxWaitMs: 100, retryBackoffMs: 20, retryBackoffMaxMs: 100 };

transportContract('kafka (kafkajs → concordat broker)', async () => new KafkaTransport({ brokers: [broker.bootstrap], consumer: testConsumer }));

describe('KafkaTransport against concordat broker', () => {
  const opened: Transport[] = [];
  const open = async (options: Partial<KafkaTransportOptions> = {}): Promise<KafkaTransport> => {
    const transport = new KafkaTransport({ brokers: [broker.bootstrap], consumer: testConsumer, ...options });
    opened.push(transport);
    await transport.connect();
    return transport;
  };
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((t) => t.close()));
  });

  it('fails a publish to a missing topic with UNKNOWN_TOPIC_OR_PARTITION, and the next publish goes through', async () => {
    const t = await open({ producer: { retries: 1 } });
    const missing = unique('missing');
    await expect(t.publish([{ topic: missing, key: 'k', value: Buffer.from('x'), headers: {} }])).rejects.toMatchObject({
      code: 'UNKNOWN_TOPIC_OR_PARTITION',
    });
    const topic = unique('after-failure');
    await t.ensureTopics([{ name: topic, partitions: 1 }]);
    const acks = await t.publish([0, 1, 2].map((i) => ({ topic, key: 'k', value: Buffer.from(`v${i}`), headers: {} })));
    expect(acks).toEqual([0, 1, 2].map((offset) => ({ topic, partition: 0, offset })));
  });

  /** Every record of `topic` by `partition:offset`, read through a fresh group. */
  async function readBack(t: KafkaTransport, topic: string, count: number): Promise<Map<string, string>> {
    const got = new Map<string, string>();
    const subscription = await t.subscribe({
      groupId: unique('read-back'),
      topics: [topic],
      handler: async (d) => void got.set(`${d.partition}:${d.offset}`, d.value!.toString()),
    });
    await waitFor(
      () => got.size >= count,
      20_000,
      () => `${got.size} of ${count}`,
    );
    await subscription.close();
    return got;
  }

  it('gives concurrent callers the offsets of their own records (their publishes are sent together)', async () => {
    const t = await open();
    const topic = unique('concurrent');
    await t.ensureTopics([{ name: topic, partitions: 3 }]);
    const calls = Array.from({ length: 6 }, (_, c) =>
      Array.from({ length: 7 }, (_, i) => ({ topic, key: `k${(c + i) % 5}`, value: Buffer.from(`c${c}-r${i}`), headers: {} })),
    );
    const acks = await Promise.all(calls.map((records) => t.publish(records)));
    const stored = await readBack(t, topic, 42);
    expect(stored.size).toBe(42);
    calls.forEach((records, c) => {
      expect(acks[c]).toHaveLength(records.length);
      records.forEach((record, i) => expect(stored.get(`${acks[c]![i]!.partition}:${acks[c]![i]!.offset}`)).toBe(record.value.toString()));
    });
  });

  it('sends a publish larger than producer.batchBytesMax as consecutive produces, in order, with exact offsets', async () => {
    // A broker that refuses any request above 4 KiB: the 6.5 KB publish passes only in chunks.
    const small = await startTestBroker({ requestBytesMax: 4096 });
    const t = new KafkaTransport({ brokers: [small.bootstrap], consumer: testConsumer, producer: { batchBytesMax: 1024 } });
    const whole = new KafkaTransport({ brokers: [small.bootstrap], retries: 0, producer: { retries: 0 } });
    try {
      const topic = unique('chunked');
      await t.ensureTopics([{ name: topic, partitions: 1 }]);
      const values = Array.from({ length: 50 }, (_, i) => `${String(i).padStart(3, '0')}-${'x'.repeat(96)}`);
      const records = values.map((value) => ({ topic, key: 'one-key', value: Buffer.from(value), headers: {} }));
      await expect(whole.publish(records)).rejects.toMatchObject({ code: 'PUBLISH_FAILED' });
      const acks = await t.publish(records);
      const first = acks[0]!.offset;
      expect(acks).toEqual(values.map((_, i) => ({ topic, partition: 0, offset: first + i })));
      const stored = await readBack(t, topic, first + 50);
      expect(values.map((_, i) => stored.get(`0:${first + i}`))).toEqual(values);
    } finally {
      await Promise.all([t.close(), whole.close()]);
      await small.stop();
    }
  });

  it('creates a topic once when two transports ensure it at the same time', async () => {
    const [a, b] = await Promise.all([open(), open()]);
    const topic = unique('race');
    await Promise.all([a.ensureTopics([{ name: topic, partitions: 3 }]), b.ensureTopics([{ name: topic, partitions: 3 }])]);
    const acks = await a.publish(Array.from({ length: 30 }, (_, i) => ({ topic, key: `k${i}`, value: null, headers: {} })));
    expect(new Set(acks.map((ack) => ack.partition))).toEqual(new Set([0, 1, 2]));
  });

  it('keeps heartbeating while a handler runs longer than the session timeout: the record is handled once', async () => {
    const t = await open();
    const topic = unique('slow');
    await t.ensureTopics([{ name: topic, partitions: 1 }]);
    await t.publish(['slow', 'next'].map((v) => ({ topic, key: 'k', value: Buffer.from(v), headers: {} })));
    const handled: string[] = [];
    await t.subscribe({
      groupId: unique('slow-group'),
      topics: [topic],
      handler: async (delivery) => {
        const value = delivery.value!.toString();
        // The handler must outlast the session timeout: this wait is the point of the test.
        if (value === 'slow') await new Promise((resolve) => setTimeout(resolve, testConsumer.sessionTimeoutMs + 1500));
        handled.push(value);
      },
    });
    await waitFor(
      () => handled.includes('next'),
      20_000,
      () => `handled ${handled.join(',')}`,
    );
    // Had the session expired, the rebalance would deliver 'slow' again from the last commit, before anything
    // published after it in this one partition: once a sentinel published now is handled, nothing else came.
    await t.publish([{ topic, key: 'k', value: Buffer.from('sentinel'), headers: {} }]);
    await waitFor(
      () => handled.includes('sentinel'),
      20_000,
      () => `handled ${handled.join(',')}`,
    );
    expect(handled).toEqual(['slow', 'next', 'sentinel']);
  }, 30_000);

  it('commits on revoke: a member joining while another is busy sees no record handled twice, and none lost', async () => {
    const a = await open();
    const b = await open();
    const topic = unique('revoke');
    const groupId = unique('revoke-group');
    await a.ensureTopics([{ name: topic, partitions: 2 }]);
    const values = Array.from({ length: 120 }, (_, i) => `m${i}`);
    await a.publish(values.map((value, i) => ({ topic, key: `k${i % 6}`, value: Buffer.from(value), headers: {} })));
    const handled: string[] = [];
    const handler = async (delivery: { value: Buffer | null }): Promise<void> => {
      await new Promise((resolve) => setTimeout(resolve, 15));
      handled.push(delivery.value!.toString());
    };
    await a.subscribe({ groupId, topics: [topic], handler });
    await waitFor(
      () => handled.length >= 20,
      20_000,
      () => `handled ${handled.length}`,
    );
    await b.subscribe({ groupId, topics: [topic], handler });
    await waitFor(
      () => new Set(handled).size === values.length,
      30_000,
      () => `${new Set(handled).size} of ${values.length}`,
    );
    expect(handled.length).toBe(values.length);
    expect([...handled].sort()).toEqual([...values].sort());
  }, 45_000);

  it('authenticates with SASL (SCRAM-SHA-256 and PLAIN) and refuses a wrong password', async () => {
    const secured = await startTestBroker({ sasl: { users: [{ username: 'svc', password: 'right-password' }] } });
    const transports: KafkaTransport[] = [];
    try {
      for (const mechanism of ['scram-sha-256', 'plain'] as const) {
        const t = new KafkaTransport({ brokers: [secured.bootstrap], sasl: { mechanism, username: 'svc', password: 'right-password' } });
        transports.push(t);
        const topic = unique(`sasl-${mechanism}`);
        await t.ensureTopics([{ name: topic, partitions: 1 }]);
        expect(await t.publish([{ topic, key: 'k', value: Buffer.from('v'), headers: {} }])).toEqual([{ topic, partition: 0, offset: 0 }]);
      }
      const wrong = new KafkaTransport({ brokers: [secured.bootstrap], sasl: { mechanism: 'plain', username: 'svc', password: 'wrong' } });
      transports.push(wrong);
      await expect(wrong.connect()).rejects.toThrow(/SASL PLAIN authentication failed/);
    } finally {
      await Promise.all(transports.map((t) => t.close()));
      await secured.stop();
    }
  });
});

describe('KafkaTransport over TLS', () => {
  it('verifies the broker against caFile, authenticates with SCRAM inside TLS, and refuses an unknown certificate authority', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'concordat-kafka-tls-'));
    const certFile = join(dir, 'cert.pem');
    const keyFile = join(dir, 'key.pem');
    execFileSync(
      'openssl',
      [
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
        keyFile,
        '-out',
        certFile,
      ],
      { stdio: 'ignore' },
    );
    const secured = await startTestBroker({ tls: { certFile, keyFile }, sasl: { users: [{ username: 'svc', password: 'tls-password' }] } });
    const sasl = { mechanism: 'scram-sha-256', username: 'svc', password: 'tls-password' } as const;
    const trusted = new KafkaTransport({ brokers: [secured.bootstrap], tls: { caFile: certFile }, sasl, consumer: testConsumer });
    const untrusted = new KafkaTransport({ brokers: [secured.bootstrap], tls: true, sasl, retries: 0, connectionTimeoutMs: 1000 });
    try {
      const topic = unique('tls');
      await trusted.ensureTopics([{ name: topic, partitions: 1 }]);
      const seen: string[] = [];
      await trusted.subscribe({ groupId: unique('tls-group'), topics: [topic], handler: async (d) => void seen.push(d.value!.toString()) });
      expect(await trusted.publish([{ topic, key: 'k', value: Buffer.from('over tls'), headers: {} }])).toEqual([{ topic, partition: 0, offset: 0 }]);
      await waitFor(
        () => seen.length === 1,
        20_000,
        () => `seen ${seen.join(',')}`,
      );
      expect(seen).toEqual(['over tls']);
      await expect(untrusted.connect()).rejects.toThrow(/self[- ]signed certificate/);
    } finally {
      await Promise.all([trusted.close(), untrusted.close()]);
      await secured.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('KafkaTransport across a broker restart', () => {
  it('fails a publish while the broker is down, then publishes and keeps delivering once it is back on the same log', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'concordat-kafka-restart-'));
    let server: Broker = await startBroker({ host: '127.0.0.1', port: 0, dataDir, log: NO_INITIAL_DELAY });
    const port = server.port;
    const t = new KafkaTransport({
      brokers: [`127.0.0.1:${port}`],
      connectionTimeoutMs: 500,
      producer: { retries: 1 },
      consumer: testConsumer,
    });
    try {
      const topic = unique('restart');
      await t.ensureTopics([{ name: topic, partitions: 2 }]);
      const seen: string[] = [];
      await t.subscribe({
        groupId: unique('restart-group'),
        topics: [topic],
        handler: async (delivery) => {
          seen.push(delivery.value!.toString());
        },
      });
      await t.publish([{ topic, key: 'a', value: Buffer.from('before'), headers: {} }]);
      await waitFor(
        () => seen.includes('before'),
        20_000,
        () => `seen ${seen.join(',')}`,
      );

      await server.close();
      await expect(t.publish([{ topic, key: 'a', value: Buffer.from('while-down'), headers: {} }])).rejects.toMatchObject({
        code: 'PUBLISH_FAILED',
        retriable: true,
      });

      server = await startBroker({ host: '127.0.0.1', port, dataDir, log: NO_INITIAL_DELAY });
      let acked = false;
      await waitFor(
        async () => {
          acked ||= await t.publish([{ topic, key: 'b', value: Buffer.from('after'), headers: {} }]).then(
            () => true,
            () => false,
          );
          return acked && seen.includes('after');
        },
        30_000,
        () => `acked ${acked}, seen ${seen.join(',')}`,
      );
      expect(seen.filter((v) => v === 'before')).toEqual(['before']);
      expect(seen.filter((v) => v === 'after')).toEqual(['after']);
    } finally {
      await t.close();
      await server.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe('KafkaTransport when the group coordinator refuses a joining member', () => {
  // SyncGroup (API key 14): the error code follows throttle_time_ms from v1 on.
  const SYNC_GROUP = 14;
  const syncGroupErrorOffset = (version: number): number => (version === 0 ? 0 : 4);
  const INVALID_REQUEST = 42;

  async function behindProxy<T>(run: (t: KafkaTransport, proxy: FaultProxy) => Promise<T>): Promise<T> {
    const dataDir = await mkdtemp(join(tmpdir(), 'concordat-kafka-refused-'));
    const proxy = await startFaultProxy();
    const server = await startBroker({ host: '127.0.0.1', port: 0, dataDir, advertisedPort: proxy.port, log: NO_INITIAL_DELAY });
    proxy.target = server.port;
    const t = new KafkaTransport({ brokers: [`127.0.0.1:${proxy.port}`], consumer: testConsumer });
    try {
      return await run(t, proxy);
    } finally {
      await t.close();
      await proxy.close();
      await server.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  }

  it('starts a new consumer after a refused SyncGroup kafkajs does not retry, joins, and delivers', async () => {
    await behindProxy(async (t, proxy) => {
      const topic = unique('refused');
      await t.ensureTopics([{ name: topic, partitions: 2 }]);
      const seen: string[] = [];
      proxy.failNext(SYNC_GROUP, 2, INVALID_REQUEST, syncGroupErrorOffset);
      await t.subscribe({
        groupId: unique('refused-group'),
        topics: [topic],
        handler: async (delivery) => {
          seen.push(delivery.value!.toString());
        },
      });
      expect(proxy.rewritten).toBe(2);
      await t.publish([{ topic, key: 'k', value: Buffer.from('after-refusals'), headers: {} }]);
      await waitFor(
        () => seen.includes('after-refusals'),
        20_000,
        () => `seen ${seen.join(',')}`,
      );
    });
  }, 60_000);

  it('fails subscribe with the coordinator’s error once CONSUMER_STALLED_FAILURES consumers in a row were refused', async () => {
    await behindProxy(async (t, proxy) => {
      const topic = unique('refused-always');
      await t.ensureTopics([{ name: topic, partitions: 1 }]);
      proxy.failNext(SYNC_GROUP, 1_000, INVALID_REQUEST, syncGroupErrorOffset);
      await expect(t.subscribe({ groupId: unique('refused-group'), topics: [topic], handler: async () => undefined })).rejects.toMatchObject({
        type: 'INVALID_REQUEST',
      });
      expect(proxy.rewritten).toBe(CONSUMER_STALLED_FAILURES);
    });
  }, 60_000);
});

describe('KafkaTransport options and selection', () => {
  it('names the bad option', () => {
    expect(() => new KafkaTransport({ brokers: ['no-port'] })).toThrow('invalid options: kafkaTransport.brokers.0: must be host:port (got "no-port")');
    expect(() => new KafkaTransport({ brokers: ['h:1'], consumer: { sessionTimeoutMs: 6000, heartbeatIntervalMs: 6000 } })).toThrow(
      'invalid options: kafkaTransport.consumer: heartbeatIntervalMs must be less than sessionTimeoutMs',
    );
  });

  it('reads KAFKA_BROKERS, SASL, TLS and the replication factor from the environment', () => {
    expect(kafkaTransportOptionsFromEnv({})).toBeUndefined();
    expect(kafkaTransportOptionsFromEnv({ KAFKA_BROKERS: ' ' })).toBeUndefined();
    expect(
      kafkaTransportOptionsFromEnv({
        KAFKA_BROKERS: 'kafka-1:9092, kafka-2:9093',
        KAFKA_SASL_MECHANISM: 'SCRAM-SHA-512',
        KAFKA_SASL_USERNAME: 'u',
        KAFKA_SASL_PASSWORD: 'p',
        KAFKA_TLS: 'true',
        KAFKA_TLS_CA_FILE: '/etc/ca.pem',
        KAFKA_REPLICATION_FACTOR: '3',
      }),
    ).toEqual({
      brokers: ['kafka-1:9092', 'kafka-2:9093'],
      sasl: { mechanism: 'scram-sha-512', username: 'u', password: 'p' },
      tls: { caFile: '/etc/ca.pem' },
      replicationFactor: 3,
    });
    expect(kafkaTransportOptionsFromEnv({ KAFKA_BROKERS: 'k:9092', KAFKA_TLS: '1' })).toEqual({ brokers: ['k:9092'], tls: true });
    expect(() => kafkaTransportOptionsFromEnv({ KAFKA_BROKERS: 'k:9092', KAFKA_SASL_USERNAME: 'u' })).toThrow(
      'invalid environment: KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD go together',
    );
    expect(() => kafkaTransportOptionsFromEnv({ KAFKA_BROKERS: 'k:99999' })).toThrow('kafkaTransport.brokers.0: port must be 1..65535');
  });

  it('defaultTransport is the kafkajs transport when KAFKA_BROKERS is set, else the embedded log', async () => {
    const kafka = defaultTransport('/nonexistent', { KAFKA_BROKERS: broker.bootstrap });
    expect(kafka).toBeInstanceOf(KafkaTransport);
    expect((kafka as KafkaTransport).brokers).toEqual([broker.bootstrap]);
    expect(defaultTransport('/nonexistent', {})).toBeInstanceOf(EmbeddedTransport);
  });

  it('a record published by the transport reads back through plain kafkajs with its key, headers and timestamp', async () => {
    const t = new KafkaTransport({ brokers: [broker.bootstrap] });
    const client = new Kafka({ brokers: [broker.bootstrap], logLevel: logLevel.NOTHING });
    const consumer = client.consumer({ groupId: unique('plain'), maxWaitTimeInMs: 100 });
    try {
      const topic = unique('interop');
      await t.ensureTopics([{ name: topic, partitions: 1 }]);
      await t.publish([
        { topic, key: 'order-1', value: Buffer.from('{"a":1}'), headers: { ce_id: 'id-1', ce_type: Buffer.from('t') }, timestampMs: 1_700_000_000_123 },
      ]);
      await consumer.connect();
      await consumer.subscribe({ topic, fromBeginning: true });
      const got = await new Promise<{ key: string; value: string; headers: Record<string, string>; timestamp: string }>((resolve) => {
        void consumer.run({
          eachMessage: async ({ message }) =>
            resolve({
              key: message.key!.toString(),
              value: message.value!.toString(),
              headers: Object.fromEntries(Object.entries(message.headers ?? {}).map(([k, v]) => [k, String(v)])),
              timestamp: message.timestamp,
            }),
        });
      });
      expect(got).toEqual({ key: 'order-1', value: '{"a":1}', headers: { ce_id: 'id-1', ce_type: 't' }, timestamp: '1700000000123' });
    } finally {
      await consumer.disconnect();
      await t.close();
    }
  });
});
