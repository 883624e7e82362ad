import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { AclOperationTypes, AclPermissionTypes, AclResourceTypes, Kafka, logLevel, ResourcePatternTypes } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Writer } from '../../../src/broker/codec/writer.js';
import { LogManager } from '../../../src/log/index.js';
import { until } from '../../../src/testing/index.js';
import { makeCertificates } from './helpers/certificates.js';
import { RawClient } from './helpers/raw-client.js';
import { run, runOk } from './helpers/process.js';

/**
 * `concordat broker` as a process: it prints where it listens, logs why it
 * closed a connection, shuts down gracefully on SIGTERM (answering what is
 * in flight, then closing the log cleanly), and refuses an open listener.
 */
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
const MAIN = fileURLToPath(new URL('../../../src/cli/main.ts', import.meta.url));

interface Running {
  child: ChildProcess;
  port: number;
  /** `http://<host>:<port>/metrics` when started with `--metrics-port`. */
  metricsUrl: string | undefined;
  stderr: string[];
  exited: Promise<number | null>;
}

function startCli(args: string[]): Promise<Running> {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, 'broker', ...args], {
    env: { ...process.env, CONCORDAT_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stderr: string[] = [];
  createInterface({ input: child.stderr! }).on('line', (line) => stderr.push(line));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  let metricsUrl: string | undefined;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`broker did not start: ${stderr.join('\n')}`)), 20_000);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      // Printed before the listening line.
      const metrics = /^concordat broker metrics on (http:\/\/\S+\/metrics) /.exec(line);
      if (metrics !== null) metricsUrl = metrics[1];
      const match = /^concordat broker listening on 127\.0\.0\.1:(\d+) \(advertised 127\.0\.0\.1:(\d+)\)$/.exec(line);
      if (match === null) return;
      clearTimeout(timer);
      expect(match[2]).toBe(match[1]);
      resolve({ child, port: Number(match[1]), metricsUrl, stderr, exited });
    });
    void exited.then((code) => reject(new Error(`broker exited ${code}: ${stderr.join('\n')}`)));
  });
}

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'concordat-cli-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('concordat broker', () => {
  it('serves, logs why it closed a bad connection, and on SIGTERM answers in-flight requests, then closes the log cleanly', async () => {
    const dataDir = join(dir, 'serve');
    const broker = await startCli(['--data', dataDir, '--port', '0', '--auto-create-topics', '--default-partitions', '2', '--metrics-port', '0']);
    try {
      await serveThenStop(broker, dataDir);
    } finally {
      broker.child.kill('SIGKILL');
    }
  });

  async function serveThenStop(broker: Running, dataDir: string): Promise<void> {
    const kafka = new Kafka({ brokers: [`127.0.0.1:${broker.port}`], clientId: 'cli-test', logLevel: logLevel.NOTHING });
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({ topic: 'cli-topic', acks: -1, messages: [{ partition: 1, value: 'kept' }] });
    await producer.disconnect();

    const bad = await RawClient.connect(broker.port);
    bad.send(0x7fff, 0, 1, Buffer.alloc(0));
    await bad.waitClosed();

    // A long poll in flight when SIGTERM arrives still gets its answer: Fetch v11 for offset 1 of
    // partition 1 (the end of the log), waiting up to 10 s.
    const polling = await RawClient.connect(broker.port);
    const fetchRequest = new Writer()
      .int32(-1)
      .int32(10_000)
      .int32(1)
      .int32(1 << 20)
      .int8(0)
      .int32(0)
      .int32(-1);
    fetchRequest.array(['cli-topic'], (w, topic) =>
      w.string(topic).array([1], (pw, p) =>
        pw
          .int32(p)
          .int32(-1)
          .int64(1)
          .int64(-1)
          .int32(1 << 20),
      ),
    );
    fetchRequest.array([], () => {}).string('');
    polling.send(1, 11, 7, fetchRequest.toBuffer());
    // SIGTERM once the fetch waits in the broker's log (its metrics say so), not after a guessed delay.
    await until(async () => (await (await fetch(broker.metricsUrl!)).text()).includes('concordat_log_reads_waiting{topic="cli-topic"} 1'), {
      timeoutMs: 10_000,
      message: 'the fetch waiting in the broker',
    });
    const started = Date.now();
    broker.child.kill('SIGTERM');
    const answer = await polling.readFrame();
    expect(answer.readInt32BE(0)).toBe(7);
    expect(await broker.exited).toBe(0);
    expect(Date.now() - started).toBeLessThan(5000);

    const lines = broker.stderr.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toContainEqual(expect.objectContaining({ component: 'broker', msg: 'closing connection', reason: 'API key 32767 is not served' }));
    expect(lines.map((l) => l.msg)).toEqual(expect.arrayContaining(['broker shutting down', 'log closed', 'broker stopped']));
    const logManager = await LogManager.open({ dataDir });
    try {
      // Closed cleanly: reopening repairs nothing, and the acknowledged record is there.
      expect(logManager.recoveryReport()).toEqual([]);
      expect(logManager.describePartition('cli-topic', 1).highWatermark).toBe(1);
    } finally {
      await logManager.close();
    }
  }

  it('takes its credentials file and TLS certificate from the command line', async () => {
    const tlsDir = join(dir, 'tls');
    await mkdir(tlsDir, { recursive: true });
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
      'subjectAltName=IP:127.0.0.1',
      '-keyout',
      join(tlsDir, 'key.pem'),
      '-out',
      join(tlsDir, 'cert.pem'),
    ]);
    await writeFile(join(tlsDir, 'users.json'), JSON.stringify({ users: [{ username: 'ops', password: 'ops-secret' }] }));
    const broker = await startCli([
      '--data',
      join(dir, 'secure'),
      '--port',
      '0',
      '--auto-create-topics',
      '--sasl-credentials',
      join(tlsDir, 'users.json'),
      '--tls-cert',
      join(tlsDir, 'cert.pem'),
      '--tls-key',
      join(tlsDir, 'key.pem'),
    ]);
    try {
      const kafka = new Kafka({
        brokers: [`127.0.0.1:${broker.port}`],
        clientId: 'cli-test',
        logLevel: logLevel.NOTHING,
        ssl: { ca: [await readFile(join(tlsDir, 'cert.pem'), 'utf8')] },
        sasl: { mechanism: 'scram-sha-256', username: 'ops', password: 'ops-secret' },
      });
      const producer = kafka.producer();
      await producer.connect();
      const [ack] = await producer.send({ topic: 'secure-topic', acks: -1, messages: [{ value: 'over TLS' }] });
      await producer.disconnect();
      expect([ack?.errorCode, ack?.baseOffset]).toEqual([0, '0']);
    } finally {
      broker.child.kill('SIGTERM');
      expect(await broker.exited).toBe(0);
    }
  });

  it('with --authorizer and mutual TLS: a super user creates ACLs with kafkajs, and the principal of a client certificate is refused until one allows it', async () => {
    const certs = await makeCertificates(await mkdtemp(join(dir, 'mtls-')), { admin: '/CN=admin', alice: '/O=acme/CN=alice' });
    const broker = await startCli([
      '--data',
      join(dir, 'mtls'),
      '--port',
      '0',
      '--tls-cert',
      certs.certFile,
      '--tls-key',
      certs.keyFile,
      '--tls-ca',
      certs.caFile,
      '--tls-client-auth',
      'required',
      '--authorizer',
      '--super-users',
      'User:CN=admin; User:nobody',
    ]);
    const kafkaAs = (client: { cert: string; key: string } | null) =>
      new Kafka({
        brokers: [`127.0.0.1:${broker.port}`],
        clientId: 'cli-mtls-test',
        logLevel: logLevel.NOTHING,
        retry: { retries: 0 },
        ssl: { ca: [certs.ca], ...(client ?? {}) },
      });
    try {
      const admin = kafkaAs(certs.clients.admin!).admin();
      await admin.connect();
      await admin.createTopics({ topics: [{ topic: 'mtls-topic' }] });
      const producer = kafkaAs(certs.clients.alice!).producer({ allowAutoTopicCreation: false });
      await producer.connect();
      await expect(producer.send({ topic: 'mtls-topic', acks: -1, messages: [{ value: 'denied' }] })).rejects.toMatchObject({
        // No Describe either: Metadata refuses the topic, and kafkajs wraps that error.
        cause: { type: 'TOPIC_AUTHORIZATION_FAILED' },
      });
      // Kafka's default principal of the subject /O=acme/CN=alice: RFC 2253 order.
      await admin.createAcls({
        acl: [
          {
            resourceType: AclResourceTypes.TOPIC,
            resourceName: 'mtls-topic',
            resourcePatternType: ResourcePatternTypes.LITERAL,
            principal: 'User:CN=alice,O=acme',
            host: '*',
            operation: AclOperationTypes.WRITE,
            permissionType: AclPermissionTypes.ALLOW,
          },
        ],
      });
      const [ack] = await producer.send({ topic: 'mtls-topic', acks: -1, messages: [{ value: 'allowed' }] });
      expect([ack?.errorCode, ack?.baseOffset]).toEqual([0, '0']);
      await producer.disconnect();
      await admin.disconnect();
      // Without a client certificate the TLS handshake is refused.
      const anonymous = kafkaAs(null).admin();
      await expect(anonymous.connect()).rejects.toThrow();
    } finally {
      broker.child.kill('SIGTERM');
      expect(await broker.exited).toBe(0);
    }
  });

  it('names a wrong --tls-client-auth and refuses mutual TLS without TLS', async () => {
    const wrong = await run(process.execPath, ['--import', 'tsx', MAIN, 'broker', '--data', join(dir, 'flags'), '--tls-client-auth', 'always']);
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toContain("option '--tls-client-auth <mode>' argument 'always' is invalid. expected one of none, requested, required");
    const noTls = await run(process.execPath, ['--import', 'tsx', MAIN, 'broker', '--data', join(dir, 'flags'), '--tls-client-auth', 'required']);
    expect(noTls.code).not.toBe(0);
    expect(noTls.stderr).toContain('--tls-ca and --tls-client-auth need TLS: give --tls-cert and --tls-key');
  });

  it('refuses to listen beyond loopback without SASL, and says how to', async () => {
    const result = await run(process.execPath, ['--import', 'tsx', MAIN, 'broker', '--data', join(dir, 'open'), '--host', '0.0.0.0', '--port', '0']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(
      'concordat: refusing to listen on 0.0.0.0 without SASL: give SASL credentials, require TLS client certificates, listen on 127.0.0.1, or pass --insecure',
    );
  });

  it("waits Kafka's group.initial.rebalance.delay.ms (3000 ms) before an empty group's first rebalance, unless the flag says 0", async () => {
    /** How long a lone member's first JoinGroup (v0) takes to be answered by a broker started with `flags`. */
    const firstJoinMs = async (name: string, flags: string[]): Promise<number> => {
      const broker = await startCli(['--data', join(dir, name), '--port', '0', ...flags]);
      try {
        const client = await RawClient.connect(broker.port);
        const join = new Writer()
          .string('delay-group')
          .int32(10_000)
          .string('')
          .string('consumer')
          .array(['range'], (w, name) => w.string(name).bytes(Buffer.alloc(0)))
          .toBuffer();
        const started = performance.now();
        const answer = await client.request(11, 0, join);
        const took = performance.now() - started;
        expect(answer.readInt16BE(0)).toBe(0);
        client.close();
        return took;
      } finally {
        broker.child.kill('SIGTERM');
        await broker.exited;
      }
    };
    expect(await firstJoinMs('delay-default', [])).toBeGreaterThanOrEqual(2900);
    expect(await firstJoinMs('delay-zero', ['--group-initial-rebalance-delay-ms', '0'])).toBeLessThan(2000);
  }, 60_000);

  it('names a bad flag', async () => {
    const result = await run(process.execPath, ['--import', 'tsx', MAIN, 'broker', '--data', join(dir, 'flags'), '--port', 'x']);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain("option '--port <port>' argument 'x' is invalid. not an integer: x");
  });
});
