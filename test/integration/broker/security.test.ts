import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kafka, logLevel, type SASLOptions } from 'kafkajs';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Reader } from '../../../src/broker/codec/reader.js';
import { Writer } from '../../../src/broker/codec/writer.js';
import { startBroker } from '../../../src/broker/index.js';
import { ConcordatError } from '../../../src/errors.js';
import { DEBIAN_PYTHON, startTestBroker, testNeedsTools, uniqueName, type TestBroker } from './helpers/broker.js';
import { run, runOk } from './helpers/process.js';
import { RawClient } from './helpers/raw-client.js';

/**
 * SASL/PLAIN, SASL/SCRAM-SHA-256 and SCRAM-SHA-512 with a credentials file, TLS with a
 * certificate and key, and the rule that a non-loopback listener needs SASL
 * or --insecure; with kafkajs, kcat and kafka-python.
 */
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';

let dir: string;
let sasl: TestBroker;
let tls: TestBroker;
let cert: string;

// The kafkajs and raw-wire tests need no tool: only the kcat and kafka-python cases skip without theirs.
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'concordat-security-'));
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
  cert = await readFile(join(dir, 'cert.pem'), 'utf8');
  await writeFile(
    join(dir, 'users.json'),
    JSON.stringify({
      users: [
        { username: 'alice', password: 'alice-secret' },
        { username: 'bob', password: 'bob-secret' },
      ],
    }),
  );
  sasl = await startTestBroker({ sasl: { credentialsFile: join(dir, 'users.json') }, authenticationTimeoutMs: 1000 });
  tls = await startTestBroker({
    tls: { certFile: join(dir, 'cert.pem'), keyFile: join(dir, 'key.pem') },
    sasl: { credentialsFile: join(dir, 'users.json') },
  });
});

afterAll(async () => {
  await sasl?.stop();
  await tls?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function roundTrip(kafka: Kafka, broker: TestBroker): Promise<string[]> {
  const topic = uniqueName('secure');
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] });
  await admin.disconnect();
  const producer = kafka.producer();
  await producer.connect();
  await producer.send({ topic, acks: -1, messages: [{ value: 'one' }, { value: 'two' }] });
  await producer.disconnect();
  const { records } = await broker.broker.logManager.read(topic, 0, 0, { maxBytes: 1 << 20 });
  return ['one', 'two'].filter((v) => records.includes(Buffer.from(v)));
}

const kafkaWith = (broker: TestBroker, options: { sasl?: SASLOptions; ssl?: boolean }) =>
  new Kafka({
    brokers: [broker.bootstrap],
    clientId: 'security-test',
    logLevel: logLevel.NOTHING,
    retry: { retries: 0 },
    ...(options.sasl ? { sasl: options.sasl } : {}),
    ...(options.ssl ? { ssl: { ca: [cert] } } : {}),
  });

describe('SASL with kafkajs', () => {
  it('PLAIN with the right password produces', async () => {
    const kafka = kafkaWith(sasl, { sasl: { mechanism: 'plain', username: 'alice', password: 'alice-secret' } });
    expect(await roundTrip(kafka, sasl)).toEqual(['one', 'two']);
  });

  it('SCRAM-SHA-256 with the right password produces', async () => {
    const kafka = kafkaWith(sasl, { sasl: { mechanism: 'scram-sha-256', username: 'bob', password: 'bob-secret' } });
    expect(await roundTrip(kafka, sasl)).toEqual(['one', 'two']);
  });

  it('SCRAM-SHA-512 with the right password produces', async () => {
    const kafka = kafkaWith(sasl, { sasl: { mechanism: 'scram-sha-512', username: 'alice', password: 'alice-secret' } });
    expect(await roundTrip(kafka, sasl)).toEqual(['one', 'two']);
  });

  it('a wrong password or an unknown user is refused with SASL_AUTHENTICATION_FAILED', async () => {
    for (const options of [
      { mechanism: 'plain', username: 'alice', password: 'wrong' },
      { mechanism: 'scram-sha-256', username: 'bob', password: 'wrong' },
      { mechanism: 'scram-sha-256', username: 'mallory', password: 'bob-secret' },
      { mechanism: 'scram-sha-512', username: 'bob', password: 'wrong' },
      { mechanism: 'scram-sha-512', username: 'mallory', password: 'bob-secret' },
    ] as SASLOptions[]) {
      const admin = kafkaWith(sasl, { sasl: options }).admin();
      await expect(admin.connect()).rejects.toMatchObject({ name: 'KafkaJSSASLAuthenticationError' });
    }
  });

  it('a mechanism not offered is refused, and without SASL the client gets nowhere', async () => {
    const only256 = await startTestBroker({ sasl: { users: [{ username: 'bob', password: 'bob-secret' }], mechanisms: ['SCRAM-SHA-256', 'PLAIN'] } });
    try {
      const wrongMechanism = kafkaWith(only256, { sasl: { mechanism: 'scram-sha-512', username: 'bob', password: 'bob-secret' } }).admin();
      await expect(wrongMechanism.connect()).rejects.toThrow('The broker does not support the requested SASL mechanism');
    } finally {
      await only256.stop();
    }
    const anonymous = kafkaWith(sasl, {}).admin();
    // kafkajs connects with ApiVersions only (allowed); its first Metadata closes the connection.
    await anonymous.connect();
    await expect(anonymous.listTopics()).rejects.toThrow();
    await anonymous.disconnect();
  });
});

describe('SASL on the wire', () => {
  it('closes a connection that sends anything but ApiVersions or SASL before authenticating', async () => {
    const client = await RawClient.connect(sasl.port);
    expect(new Reader(await client.request(18, 2, Buffer.alloc(0))).int16()).toBe(0);
    client.send(3, 1, 2, new Writer().int32(-1).toBuffer());
    await client.waitClosed();
  });

  it('closes a connection that does not authenticate within authenticationTimeoutMs', async () => {
    const client = await RawClient.connect(sasl.port);
    const started = Date.now();
    await client.waitClosed(5000);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
  });

  it('answers SaslHandshake with the mechanisms offered', async () => {
    const client = await RawClient.connect(sasl.port);
    const r = new Reader(await client.request(17, 1, new Writer().string('GSSAPI').toBuffer()));
    expect(r.int16()).toBe(33);
    expect(r.array((x) => x.string())).toEqual(['SCRAM-SHA-256', 'SCRAM-SHA-512', 'PLAIN']);
    await client.waitClosed();
  });

  it('a broker without SASL answers SaslHandshake with ILLEGAL_SASL_STATE', async () => {
    const plain = await startTestBroker();
    try {
      const client = await RawClient.connect(plain.port);
      const r = new Reader(await client.request(17, 1, new Writer().string('PLAIN').toBuffer()));
      expect([r.int16(), r.array((x) => x.string())]).toEqual([34, []]);
      client.close();
    } finally {
      await plain.stop();
    }
  });
});

describe('SASL with other clients', () => {
  it('kcat authenticates with SCRAM-SHA-256, SCRAM-SHA-512 and PLAIN', async (context) => {
    testNeedsTools(context, 'kcat');
    for (const mechanism of ['SCRAM-SHA-256', 'SCRAM-SHA-512', 'PLAIN']) {
      const topic = uniqueName('kcat-sasl');
      await sasl.broker.logManager.createTopic(topic, { partitions: 1 });
      const auth = [
        '-X',
        'security.protocol=SASL_PLAINTEXT',
        '-X',
        `sasl.mechanisms=${mechanism}`,
        '-X',
        'sasl.username=alice',
        '-X',
        'sasl.password=alice-secret',
      ];
      await runOk('kcat', ['-b', sasl.bootstrap, ...auth, '-P', '-t', topic], { input: 'hello\n' });
      expect(await runOk('kcat', ['-b', sasl.bootstrap, ...auth, '-C', '-t', topic, '-e', '-q'])).toBe('hello\n');
    }
    const refused = await run(
      'kcat',
      [
        '-b',
        sasl.bootstrap,
        '-X',
        'security.protocol=SASL_PLAINTEXT',
        '-X',
        'sasl.mechanisms=SCRAM-SHA-256',
        '-X',
        'sasl.username=alice',
        '-X',
        'sasl.password=nope',
        '-L',
        '-m',
        '2',
      ],
      { timeoutMs: 20_000 },
    );
    expect(refused.code).not.toBe(0);
    // The reason the broker gave in SaslAuthenticate reaches the client.
    expect(refused.stderr).toContain('SASL authentication error: authentication failed for user "alice"');
  });

  it('kafka-python authenticates with PLAIN through SaslHandshake v0 and bare tokens', async (context) => {
    testNeedsTools(context, 'kafka-python');
    const topic = uniqueName('python-sasl');
    await sasl.broker.logManager.createTopic(topic, { partitions: 1 });
    const out = await runOk(
      DEBIAN_PYTHON,
      [
        '-c',
        `
from kafka import KafkaProducer
p = KafkaProducer(bootstrap_servers='${sasl.bootstrap}', security_protocol='SASL_PLAINTEXT', sasl_mechanism='PLAIN',
                  sasl_plain_username='bob', sasl_plain_password='bob-secret')
print(p.send('${topic}', value=b'from python').get(timeout=10).offset)
p.close()
`,
      ],
      { timeoutMs: 60_000 },
    );
    expect(out.trim()).toBe('0');
  });

  it('kafka-python authenticates with SCRAM-SHA-512', async (context) => {
    testNeedsTools(context, 'kafka-python');
    const topic = uniqueName('python-scram');
    await sasl.broker.logManager.createTopic(topic, { partitions: 1 });
    const out = await runOk(
      DEBIAN_PYTHON,
      [
        '-c',
        `
from kafka import KafkaProducer
p = KafkaProducer(bootstrap_servers='${sasl.bootstrap}', security_protocol='SASL_PLAINTEXT', sasl_mechanism='SCRAM-SHA-512',
                  sasl_plain_username='alice', sasl_plain_password='alice-secret')
print(p.send('${topic}', value=b'scram 512').get(timeout=10).offset)
p.close()
`,
      ],
      { timeoutMs: 60_000 },
    );
    expect(out.trim()).toBe('0');
  });
});

describe('re-authentication (KIP-368, connectionsMaxReauthMs)', () => {
  const REAUTH_MS = 1500;
  let reauth: TestBroker;
  const lines: { msg: string; reason?: string; authentications?: number }[] = [];

  beforeAll(async () => {
    const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    reauth = await startTestBroker({ sasl: { credentialsFile: join(dir, 'users.json') }, connectionsMaxReauthMs: REAUTH_MS }, { logger });
  });

  afterAll(async () => {
    await reauth?.stop();
  });

  /** SaslHandshake v1 + SaslAuthenticate v1 with PLAIN on `client`; returns session_lifetime_ms. */
  async function plainLogin(client: RawClient, user: string, password: string): Promise<number> {
    const handshake = new Reader(await client.request(17, 1, new Writer().string('PLAIN').toBuffer()));
    expect(handshake.int16()).toBe(0);
    const r = new Reader(await client.request(36, 1, new Writer().bytes(Buffer.from(`\0${user}\0${password}`)).toBuffer()));
    expect([r.int16(), r.nullableString(), r.bytes().length]).toEqual([0, null, 0]);
    return r.int64();
  }

  const metadataV1 = new Writer().int32(0).toBuffer();

  it('SaslAuthenticate v1 reports the session lifetime; a client that does not re-authenticate is closed on its next request', async () => {
    const client = await RawClient.connect(reauth.port);
    expect(await plainLogin(client, 'alice', 'alice-secret')).toBe(REAUTH_MS);
    await client.request(3, 1, metadataV1);
    await new Promise((resolve) => setTimeout(resolve, REAUTH_MS + 100));
    client.send(3, 1, 2, metadataV1);
    await client.waitClosed();
    expect(
      lines.some((l) => l.reason === `SASL session expired (connectionsMaxReauthMs ${REAUTH_MS} ms) and the client sent Metadata instead of re-authenticating`),
    ).toBe(true);
  });

  it('a client that re-authenticates in time keeps its connection past the first lifetime', async () => {
    const client = await RawClient.connect(reauth.port);
    try {
      await plainLogin(client, 'alice', 'alice-secret');
      await new Promise((resolve) => setTimeout(resolve, REAUTH_MS / 2));
      expect(await plainLogin(client, 'alice', 'alice-secret')).toBe(REAUTH_MS);
      await new Promise((resolve) => setTimeout(resolve, REAUTH_MS / 2 + 200));
      // Past the first session's end, inside the second's.
      await client.request(3, 1, metadataV1, 3);
      expect(client.isClosed).toBe(false);
    } finally {
      client.close();
    }
  });

  it('a re-authentication as another user is refused and closes the connection', async () => {
    const client = await RawClient.connect(reauth.port);
    await plainLogin(client, 'alice', 'alice-secret');
    expect(new Reader(await client.request(17, 1, new Writer().string('PLAIN').toBuffer())).int16()).toBe(0);
    const r = new Reader(await client.request(36, 1, new Writer().bytes(Buffer.from('\0bob\0bob-secret')).toBuffer()));
    expect([r.int16(), r.nullableString()]).toEqual([
      58,
      're-authentication as "bob" on a connection authenticated as "alice": a connection keeps its principal',
    ]);
    await client.waitClosed();
  });

  it('kafkajs re-authenticates on the same connection (SCRAM-SHA-512) and keeps producing', async () => {
    const kafka = new Kafka({
      brokers: [reauth.bootstrap],
      clientId: 'reauth-test',
      logLevel: logLevel.NOTHING,
      retry: { retries: 0 },
      // kafkajs re-authenticates before a request once the session has less than this left.
      reauthenticationThreshold: 1000,
      sasl: { mechanism: 'scram-sha-512', username: 'bob', password: 'bob-secret' },
    });
    const topic = uniqueName('reauth');
    await reauth.broker.logManager.createTopic(topic, { partitions: 1 });
    const producer = kafka.producer();
    await producer.connect();
    try {
      const count = (match: (l: (typeof lines)[number]) => boolean) => lines.filter(match).length;
      const reauthenticated = count((l) => l.msg === 'SASL re-authenticated');
      const expired = count((l) => l.reason?.startsWith('SASL session expired') === true);
      for (let i = 0; i < 4; i += 1) {
        await producer.send({ topic, acks: -1, messages: [{ value: `m${i}` }] });
        await new Promise((resolve) => setTimeout(resolve, 700));
      }
      expect(count((l) => l.msg === 'SASL re-authenticated')).toBeGreaterThan(reauthenticated);
      expect(count((l) => l.reason?.startsWith('SASL session expired') === true)).toBe(expired);
      expect(reauth.broker.logManager.describePartition(topic, 0).highWatermark).toBe(4);
    } finally {
      await producer.disconnect();
    }
  });
});

describe('TLS', () => {
  it('kafkajs produces over TLS with SCRAM', async () => {
    const kafka = kafkaWith(tls, { ssl: true, sasl: { mechanism: 'scram-sha-256', username: 'alice', password: 'alice-secret' } });
    expect(await roundTrip(kafka, tls)).toEqual(['one', 'two']);
  });

  it('kcat produces and consumes over TLS', async (context) => {
    testNeedsTools(context, 'kcat');
    const topic = uniqueName('kcat-tls');
    await tls.broker.logManager.createTopic(topic, { partitions: 1 });
    const opts = [
      '-X',
      'security.protocol=SASL_SSL',
      '-X',
      `ssl.ca.location=${join(dir, 'cert.pem')}`,
      '-X',
      'sasl.mechanisms=PLAIN',
      '-X',
      'sasl.username=bob',
      '-X',
      'sasl.password=bob-secret',
    ];
    await runOk('kcat', ['-b', tls.bootstrap, ...opts, '-P', '-t', topic], { input: 'secret\n' });
    expect(await runOk('kcat', ['-b', tls.bootstrap, ...opts, '-C', '-t', topic, '-e', '-q'])).toBe('secret\n');
  });

  it('a plaintext client gets no answer from the TLS listener, and the listener keeps serving', async () => {
    const client = await RawClient.connect(tls.port);
    client.send(18, 0, 1, Buffer.alloc(0));
    await client.waitClosed();
    const kafka = kafkaWith(tls, { ssl: true, sasl: { mechanism: 'plain', username: 'bob', password: 'bob-secret' } });
    expect(await roundTrip(kafka, tls)).toEqual(['one', 'two']);
  });
});

describe('listening beyond loopback', () => {
  it('is refused without SASL unless insecure is set', async () => {
    const dataDir = join(dir, 'wide');
    const refused = startBroker({ dataDir, host: '0.0.0.0', port: 0 });
    await expect(refused).rejects.toThrow(
      'refusing to listen on 0.0.0.0 without SASL: give SASL credentials, require TLS client certificates, listen on 127.0.0.1, or pass --insecure',
    );
    await expect(refused).rejects.toMatchObject({ code: 'INSECURE_LISTENER' } satisfies Partial<ConcordatError>);
    const insecure = await startBroker({ dataDir, host: '0.0.0.0', port: 0, insecure: true, advertisedHost: '127.0.0.1' });
    await insecure.close();
    const withSasl = await startBroker({ dataDir, host: '0.0.0.0', port: 0, sasl: { users: [{ username: 'a', password: 'b' }] } });
    await withSasl.close();
  });
});
