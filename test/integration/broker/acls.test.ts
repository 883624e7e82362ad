import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AclOperationTypes, AclPermissionTypes, AclResourceTypes, Kafka, logLevel, ResourcePatternTypes, type AclEntry, type Consumer } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Reader } from '../../../src/broker/codec/reader.js';
import { Writer } from '../../../src/broker/codec/writer.js';
import { startBroker, type Broker } from '../../../src/broker/index.js';
import { until } from '../../../src/testing/index.js';
import { DEBIAN_PYTHON, startTestBroker, testNeedsTools, uniqueName, type TestBroker } from './helpers/broker.js';
import { makeCertificates } from './helpers/certificates.js';
import { run, runOk } from './helpers/process.js';
import { RawClient } from './helpers/raw-client.js';

/**
 * ACLs with kafkajs: CreateAcls, DescribeAcls and DeleteAcls from its
 * admin client; a principal denied Produce, Fetch and consumer-group
 * membership until an ACL allows them; deny winning over allow; Metadata
 * hiding topics; ACLs surviving a restart; SECURITY_DISABLED without an
 * authorizer.
 */
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';

const USERS = [
  { username: 'admin', password: 'admin-secret' },
  { username: 'alice', password: 'alice-secret' },
  // Has no ACL but those one test gives it (alice collects Write ACLs on topics as the tests run).
  { username: 'carol', password: 'carol-secret' },
];

let dataDir: string;
let broker: Broker;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'concordat-acls-'));
  broker = await startAclBroker();
});

afterAll(async () => {
  await broker?.close();
  await rm(dataDir, { recursive: true, force: true });
});

function startAclBroker(): Promise<Broker> {
  return startBroker({ dataDir, host: '127.0.0.1', port: 0, sasl: { users: USERS, mechanisms: ['PLAIN'] }, authorizer: { superUsers: ['User:admin'] } });
}

function kafkaAs(username: string, bootstrap = broker.bootstrap): Kafka {
  const password = USERS.find((u) => u.username === username)!.password;
  return new Kafka({
    brokers: [bootstrap],
    clientId: `acl-test-${username}`,
    logLevel: logLevel.NOTHING,
    retry: { retries: 0 },
    sasl: { mechanism: 'plain', username, password },
  });
}

async function asAdmin<T>(work: (admin: ReturnType<Kafka['admin']>) => Promise<T>, bootstrap = broker.bootstrap): Promise<T> {
  const admin = kafkaAs('admin', bootstrap).admin();
  await admin.connect();
  try {
    return await work(admin);
  } finally {
    await admin.disconnect();
  }
}

const acl = (resourceType: AclResourceTypes, resourceName: string, operation: AclOperationTypes, extra: Partial<AclEntry> = {}): AclEntry => ({
  resourceType,
  resourceName,
  resourcePatternType: ResourcePatternTypes.LITERAL,
  principal: 'User:alice',
  host: '*',
  operation,
  permissionType: AclPermissionTypes.ALLOW,
  ...extra,
});

async function createTopic(topic: string): Promise<void> {
  await asAdmin((admin) => admin.createTopics({ topics: [{ topic, numPartitions: 1 }] }));
}

describe('CreateAcls, DescribeAcls and DeleteAcls with kafkajs', () => {
  it('creates, describes with literal, prefixed, match and any filters, and deletes', async () => {
    const name = uniqueName('acl-crud');
    const literal = acl(AclResourceTypes.TOPIC, name, AclOperationTypes.READ);
    const prefixed = acl(AclResourceTypes.TOPIC, name.slice(0, -3), AclOperationTypes.WRITE, { resourcePatternType: ResourcePatternTypes.PREFIXED });
    const denyGroup = acl(AclResourceTypes.GROUP, name, AclOperationTypes.ALL, { permissionType: AclPermissionTypes.DENY, host: '10.0.0.1' });
    await asAdmin(async (admin) => {
      expect(await admin.createAcls({ acl: [literal, prefixed, denyGroup] })).toBe(true);
      const all = (resourcePatternType: ResourcePatternTypes, resourceType = AclResourceTypes.TOPIC) =>
        admin.describeAcls({ resourceType, resourceName: name, resourcePatternType, operation: AclOperationTypes.ANY, permissionType: AclPermissionTypes.ANY });
      // MATCH: what applies to a resource of this name (the literal ACL and the prefix).
      const matched = await all(ResourcePatternTypes.MATCH);
      expect(matched.resources.map((r) => [r.resourceName, r.resourcePatternType, r.acls]).sort()).toEqual(
        [
          [
            name,
            ResourcePatternTypes.LITERAL,
            [{ principal: 'User:alice', host: '*', operation: AclOperationTypes.READ, permissionType: AclPermissionTypes.ALLOW }],
          ],
          [
            prefixed.resourceName,
            ResourcePatternTypes.PREFIXED,
            [{ principal: 'User:alice', host: '*', operation: AclOperationTypes.WRITE, permissionType: AclPermissionTypes.ALLOW }],
          ],
        ].sort(),
      );
      // LITERAL and ANY name the pattern exactly: the prefix is not this name.
      expect((await all(ResourcePatternTypes.LITERAL)).resources.map((r) => r.resourceName)).toEqual([name]);
      expect((await all(ResourcePatternTypes.ANY, AclResourceTypes.ANY)).resources.map((r) => [r.resourceType, r.resourceName]).sort()).toEqual(
        [
          [AclResourceTypes.GROUP, name],
          [AclResourceTypes.TOPIC, name],
        ].sort(),
      );
      const deleted = await admin.deleteAcls({
        filters: [
          {
            resourceType: AclResourceTypes.ANY,
            resourceName: name,
            resourcePatternType: ResourcePatternTypes.MATCH,
            operation: AclOperationTypes.ANY,
            permissionType: AclPermissionTypes.ANY,
          },
          {
            resourceType: AclResourceTypes.GROUP,
            resourcePatternType: ResourcePatternTypes.ANY,
            host: '10.0.0.1',
            operation: AclOperationTypes.ALL,
            permissionType: AclPermissionTypes.DENY,
          },
        ],
      });
      expect(deleted.filterResponses.map((r) => [r.errorCode, r.matchingAcls.length])).toEqual([
        [0, 3],
        [0, 1],
      ]);
      expect((await all(ResourcePatternTypes.MATCH, AclResourceTypes.ANY)).resources).toEqual([]);
    });
  });

  it('refuses an ACL that cannot be stored with INVALID_REQUEST and the reason', async () => {
    await asAdmin(async (admin) => {
      // kafkajs reports the code, not the broker's message (the unit tests check the reasons).
      await expect(admin.createAcls({ acl: [acl(AclResourceTypes.CLUSTER, 'other-cluster', AclOperationTypes.ALTER)] })).rejects.toMatchObject({
        type: 'INVALID_REQUEST',
      });
      await expect(admin.createAcls({ acl: [acl(AclResourceTypes.TOPIC, 't', AclOperationTypes.READ, { principal: 'alice' })] })).rejects.toMatchObject({
        type: 'INVALID_REQUEST',
      });
    });
  });

  it('refuses ACL changes to a principal without Alter on the cluster, then allows them once granted', async () => {
    const admin = kafkaAs('alice').admin();
    await admin.connect();
    try {
      const entry = acl(AclResourceTypes.TOPIC, uniqueName('acl-alter'), AclOperationTypes.READ);
      await expect(admin.createAcls({ acl: [entry] })).rejects.toMatchObject({ type: 'CLUSTER_AUTHORIZATION_FAILED' });
      await asAdmin((a) => a.createAcls({ acl: [acl(AclResourceTypes.CLUSTER, 'kafka-cluster', AclOperationTypes.ALTER)] }));
      expect(await admin.createAcls({ acl: [entry] })).toBe(true);
      // Alter implies Describe, so alice may now list ACLs too.
      const described = await admin.describeAcls({
        resourceType: AclResourceTypes.TOPIC,
        resourceName: entry.resourceName,
        resourcePatternType: ResourcePatternTypes.LITERAL,
        operation: AclOperationTypes.ANY,
        permissionType: AclPermissionTypes.ANY,
      });
      expect(described.resources).toHaveLength(1);
    } finally {
      await asAdmin((a) =>
        a.deleteAcls({
          filters: [
            {
              resourceType: AclResourceTypes.CLUSTER,
              resourcePatternType: ResourcePatternTypes.ANY,
              principal: 'User:alice',
              operation: AclOperationTypes.ANY,
              permissionType: AclPermissionTypes.ANY,
            },
          ],
        }),
      );
      await admin.disconnect();
    }
  });
});

describe('enforcement with kafkajs', () => {
  it('denies Produce without Write (TOPIC_AUTHORIZATION_FAILED per partition), then produces once an ACL allows it', async () => {
    const topic = uniqueName('acl-produce');
    await createTopic(topic);
    // Describe only: Metadata answers, Produce is refused per partition.
    await asAdmin((admin) => admin.createAcls({ acl: [acl(AclResourceTypes.TOPIC, topic, AclOperationTypes.DESCRIBE)] }));
    const producer = kafkaAs('alice').producer({ allowAutoTopicCreation: false });
    await producer.connect();
    try {
      await expect(producer.send({ topic, acks: -1, messages: [{ value: 'denied' }] })).rejects.toMatchObject({ type: 'TOPIC_AUTHORIZATION_FAILED' });
      expect(broker.logManager.describePartition(topic, 0).highWatermark).toBe(0);
      await asAdmin((admin) => admin.createAcls({ acl: [acl(AclResourceTypes.TOPIC, topic, AclOperationTypes.WRITE)] }));
      const [sent] = await producer.send({ topic, acks: -1, messages: [{ value: 'allowed' }] });
      expect(sent).toMatchObject({ topicName: topic, errorCode: 0, baseOffset: '0' });
      expect(broker.logManager.describePartition(topic, 0).highWatermark).toBe(1);
    } finally {
      await producer.disconnect();
    }
  });

  it('deny wins: a DENY Write on one topic refuses what a prefixed ALLOW ALL grants', async () => {
    const prefix = uniqueName('acl-deny');
    const open = `${prefix}-open`;
    const closed = `${prefix}-closed`;
    await createTopic(open);
    await createTopic(closed);
    await asAdmin((admin) =>
      admin.createAcls({
        acl: [
          acl(AclResourceTypes.TOPIC, prefix, AclOperationTypes.ALL, { resourcePatternType: ResourcePatternTypes.PREFIXED }),
          acl(AclResourceTypes.TOPIC, closed, AclOperationTypes.WRITE, { permissionType: AclPermissionTypes.DENY }),
        ],
      }),
    );
    const producer = kafkaAs('alice').producer({ allowAutoTopicCreation: false });
    await producer.connect();
    try {
      await producer.send({ topic: open, acks: -1, messages: [{ value: 'in' }] });
      await expect(producer.send({ topic: closed, acks: -1, messages: [{ value: 'out' }] })).rejects.toMatchObject({ type: 'TOPIC_AUTHORIZATION_FAILED' });
      expect([broker.logManager.describePartition(open, 0).highWatermark, broker.logManager.describePartition(closed, 0).highWatermark]).toEqual([1, 0]);
    } finally {
      await producer.disconnect();
    }
  });

  it('Metadata lists only the topics the principal may Describe, and refuses a named one it may not', async () => {
    const visible = uniqueName('acl-visible');
    const hidden = uniqueName('acl-hidden');
    await createTopic(visible);
    await createTopic(hidden);
    await asAdmin((admin) => admin.createAcls({ acl: [acl(AclResourceTypes.TOPIC, visible, AclOperationTypes.READ)] }));
    const admin = kafkaAs('alice').admin();
    await admin.connect();
    try {
      const topics = await admin.listTopics();
      expect(topics).toContain(visible);
      expect(topics).not.toContain(hidden);
      await expect(admin.fetchTopicMetadata({ topics: [hidden] })).rejects.toMatchObject({ type: 'TOPIC_AUTHORIZATION_FAILED' });
    } finally {
      await admin.disconnect();
    }
  });

  it('denies a consumer group until the group and the topic allow Read, then consumes', async () => {
    const topic = uniqueName('acl-consume');
    const groupId = uniqueName('acl-group');
    await createTopic(topic);
    const producer = kafkaAs('admin').producer();
    await producer.connect();
    await producer.send({ topic, acks: -1, messages: [{ value: 'for-alice' }] });
    await producer.disconnect();
    // Describe on the topic and the group: FindCoordinator and Metadata answer, JoinGroup is refused.
    await asAdmin((admin) =>
      admin.createAcls({
        acl: [acl(AclResourceTypes.TOPIC, topic, AclOperationTypes.DESCRIBE), acl(AclResourceTypes.GROUP, groupId, AclOperationTypes.DESCRIBE)],
      }),
    );
    expect(errorType(await consumeOnce(topic, groupId))).toBe('GROUP_AUTHORIZATION_FAILED');

    await asAdmin((admin) =>
      admin.createAcls({ acl: [acl(AclResourceTypes.GROUP, groupId, AclOperationTypes.READ), acl(AclResourceTypes.TOPIC, topic, AclOperationTypes.READ)] }),
    );
    expect(await consumeOnce(topic, groupId)).toEqual('for-alice');
  });

  it('refuses a Fetch of a topic without Read with TOPIC_AUTHORIZATION_FAILED', async () => {
    const topic = uniqueName('acl-fetch');
    const groupId = uniqueName('acl-fetch-group');
    await createTopic(topic);
    await asAdmin((admin) =>
      admin.createAcls({ acl: [acl(AclResourceTypes.TOPIC, topic, AclOperationTypes.DESCRIBE), acl(AclResourceTypes.GROUP, groupId, AclOperationTypes.READ)] }),
    );
    // The group lets alice join; the topic does not let her read (the offset lookup and the fetch are refused).
    expect(errorType(await consumeOnce(topic, groupId))).toBe('TOPIC_AUTHORIZATION_FAILED');
  });
});

describe('transactions and idempotence with kafkajs', () => {
  const producerAs = (options: { transactionalId?: string } = {}, user = 'alice') =>
    kafkaAs(user).producer({ ...options, idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false, retry: { retries: 1 } });

  it('refuses an idempotent producer an ID (CLUSTER_AUTHORIZATION_FAILED) until it may Write some topic', async () => {
    const topic = uniqueName('acl-idempotent');
    await createTopic(topic);
    // kafkajs asks for the producer ID on connect.
    await expect(producerAs({}, 'carol').connect()).rejects.toSatisfy((error: unknown) => errorType(error) === 'CLUSTER_AUTHORIZATION_FAILED');
    await asAdmin((admin) => admin.createAcls({ acl: [acl(AclResourceTypes.TOPIC, topic, AclOperationTypes.WRITE, { principal: 'User:carol' })] }));
    const producer = producerAs({}, 'carol');
    await producer.connect();
    try {
      const [sent] = await producer.send({ topic, acks: -1, messages: [{ value: 'once' }] });
      expect(sent?.errorCode).toBe(0);
    } finally {
      await producer.disconnect();
    }
  });

  it('refuses a transaction without Write on its transactional ID (TRANSACTIONAL_ID_AUTHORIZATION_FAILED), then commits once an ACL allows it', async () => {
    const topic = uniqueName('acl-txn');
    const transactionalId = uniqueName('acl-txn-id');
    await createTopic(topic);
    await asAdmin((admin) => admin.createAcls({ acl: [acl(AclResourceTypes.TOPIC, topic, AclOperationTypes.WRITE)] }));
    const producer = producerAs({ transactionalId });
    await producer.connect();
    try {
      // FindCoordinator answers TRANSACTIONAL_ID_AUTHORIZATION_FAILED; kafkajs reports any refusal there as this.
      await expect(producer.transaction()).rejects.toMatchObject({ name: 'KafkaJSGroupCoordinatorNotFound' });
      await asAdmin((admin) => admin.createAcls({ acl: [acl(AclResourceTypes.TRANSACTIONAL_ID, transactionalId, AclOperationTypes.WRITE)] }));
      const transaction = await producer.transaction();
      await transaction.send({ topic, messages: [{ value: 'committed' }] });
      await transaction.commit();
      // The record and the COMMIT marker.
      expect(broker.logManager.describePartition(topic, 0).highWatermark).toBe(2);
    } finally {
      await producer.disconnect();
    }
  });
});

/** The Kafka error name of a kafkajs error (a crash wraps the protocol error in `cause`, createTopics in `errors`). */
function errorType(error: unknown): string | undefined {
  const e = error as { type?: string; cause?: { type?: string }; errors?: { type?: string }[] };
  return e.type ?? e.cause?.type ?? e.errors?.[0]?.type;
}

/** Runs a kafkajs consumer as alice until it gets one message (its value) or crashes (the error). */
async function consumeOnce(topic: string, groupId: string): Promise<unknown> {
  const consumer: Consumer = kafkaAs('alice').consumer({ groupId, retry: { retries: 0 }, sessionTimeout: 6000, rebalanceTimeout: 6000 });
  let outcome: unknown = null;
  consumer.on(consumer.events.CRASH, (event) => {
    outcome ??= event.payload.error;
  });
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ message }) => {
        outcome ??= message.value?.toString();
      },
    });
    return await until(() => outcome, { timeoutMs: 20_000, message: `consumer of ${topic} got a message or crashed` });
  } finally {
    await consumer.disconnect();
  }
}

describe('other clients', () => {
  it('kcat (librdkafka) is refused Produce and Fetch without ACLs, then produces and consumes once they allow it', async (context) => {
    testNeedsTools(context, 'kcat');
    const topic = uniqueName('acl-kcat');
    await createTopic(topic);
    const kcat = (args: string[], input?: string) =>
      run(
        'kcat',
        [
          '-b',
          broker.bootstrap,
          '-X',
          'security.protocol=SASL_PLAINTEXT',
          '-X',
          'sasl.mechanisms=PLAIN',
          '-X',
          'sasl.username=alice',
          '-X',
          'sasl.password=alice-secret',
          ...args,
        ],
        { input, timeoutMs: 30_000 },
      );
    const refused = await kcat(['-P', '-t', topic, '-p', '0'], 'denied\n');
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('Topic authorization failed');
    expect(broker.logManager.describePartition(topic, 0).highWatermark).toBe(0);
    await asAdmin((admin) => admin.createAcls({ acl: [acl(AclResourceTypes.TOPIC, topic, AclOperationTypes.WRITE)] }));
    expect((await kcat(['-P', '-t', topic, '-p', '0'], 'allowed\n')).code).toBe(0);
    // Write implies Describe, not Read: the fetch is refused.
    const noRead = await kcat(['-C', '-t', topic, '-p', '0', '-o', 'beginning', '-e']);
    expect(noRead.code).not.toBe(0);
    expect(noRead.stderr).toContain('Topic authorization failed');
    await asAdmin((admin) => admin.createAcls({ acl: [acl(AclResourceTypes.TOPIC, topic, AclOperationTypes.READ)] }));
    const read = await kcat(['-C', '-t', topic, '-p', '0', '-o', 'beginning', '-e', '-q']);
    expect([read.code, read.stdout]).toEqual([0, 'allowed\n']);
  });

  it('kafka-python creates, describes and deletes ACLs with its admin client', async (context) => {
    testNeedsTools(context, 'kafka-python');
    const topic = uniqueName('acl-py');
    const out = await runOk(
      DEBIAN_PYTHON,
      [
        '-c',
        `
from kafka.admin import KafkaAdminClient, ACL, ACLFilter, ResourcePattern, ResourcePatternFilter, ResourceType, ACLOperation, ACLPermissionType, ACLResourcePatternType
a = KafkaAdminClient(bootstrap_servers='${broker.bootstrap}', security_protocol='SASL_PLAINTEXT', sasl_mechanism='PLAIN',
                     sasl_plain_username='admin', sasl_plain_password='admin-secret')
acl = ACL('User:alice', '*', ACLOperation.READ, ACLPermissionType.ALLOW, ResourcePattern(ResourceType.TOPIC, '${topic}', ACLResourcePatternType.PREFIXED))
r = a.create_acls([acl])
print('created', len(r['succeeded']), len(r['failed']))
f = ACLFilter(None, None, ACLOperation.ANY, ACLPermissionType.ANY, ResourcePatternFilter(ResourceType.TOPIC, '${topic}', ACLResourcePatternType.ANY))
acls, error = a.describe_acls(f)
print('described', [(x.principal, x.host, x.operation.name, x.permission_type.name, x.resource_pattern.pattern_type.name) for x in acls])
d = a.delete_acls([f])
print('deleted', [len(m) for _, m, _ in d])
print('left', len(a.describe_acls(f)[0]))
a.close()
`,
      ],
      { timeoutMs: 60_000 },
    );
    expect(out.trim().split('\n')).toEqual(['created 1 0', "described [('User:alice', '*', 'READ', 'ALLOW', 'PREFIXED')]", 'deleted [1]', 'left 0']);
  });
});

describe('mutual TLS principals', () => {
  it('with clientAuth requested: a verified certificate is User:<subject>, no certificate or an unverified one User:ANONYMOUS', async () => {
    const certDir = await mkdtemp(join(tmpdir(), 'concordat-acls-mtls-'));
    const certs = await makeCertificates(certDir, { admin: '/CN=admin' });
    // The same subject, self-signed: not from the broker's CA.
    await runOk('openssl', [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=admin',
      '-keyout',
      join(certDir, 'fake.key'),
      '-out',
      join(certDir, 'fake.pem'),
    ]);
    const fake = { cert: await readFile(join(certDir, 'fake.pem'), 'utf8'), key: await readFile(join(certDir, 'fake.key'), 'utf8') };
    const tls: TestBroker = await startTestBroker({
      tls: { certFile: certs.certFile, keyFile: certs.keyFile, caFile: certs.caFile, clientAuth: 'requested' },
      authorizer: { superUsers: ['User:CN=admin'] },
    });
    const createAs = async (client: { cert: string; key: string } | null) => {
      const kafka = new Kafka({
        brokers: [tls.bootstrap],
        clientId: 'acl-mtls',
        logLevel: logLevel.NOTHING,
        retry: { retries: 0 },
        ssl: { ca: [certs.ca], ...(client ?? {}) },
      });
      const admin = kafka.admin();
      await admin.connect();
      try {
        const topic = uniqueName('acl-mtls');
        return await admin.createTopics({ topics: [{ topic }] }).then(
          () => 'created',
          (error: unknown) => errorType(error) ?? String(error),
        );
      } finally {
        await admin.disconnect();
      }
    };
    try {
      expect(await createAs(certs.clients.admin!)).toBe('created');
      expect(await createAs(null)).toBe('TOPIC_AUTHORIZATION_FAILED');
      expect(await createAs(fake)).toBe('TOPIC_AUTHORIZATION_FAILED');
    } finally {
      await tls.stop();
      await rm(certDir, { recursive: true, force: true });
    }
  });
});

describe('the flexible versions on the wire (no client at hand sends them)', () => {
  it('CreateAcls v3, DescribeAcls v2 and DeleteAcls v3 round-trip, and a bad binding gets INVALID_REQUEST with the reason', async () => {
    // No SASL: the connection is User:ANONYMOUS, made a super user here.
    const wire: TestBroker = await startTestBroker({ authorizer: { superUsers: ['User:ANONYMOUS'] } });
    const client = await RawClient.connect(wire.port);
    const exchange = async (apiKey: number, version: number, body: Writer): Promise<Reader> => {
      client.send(apiKey, version, 7, body.toBuffer(), true);
      const r = new Reader(await client.readFrame());
      expect(r.int32()).toBe(7);
      r.taggedFields(); // response header v1
      expect(r.int32()).toBe(0); // throttle_time_ms
      return r;
    };
    const filter = (w: Writer) => w.int8(2).compactNullableString('wire-topic').int8(1).compactNullableString(null).compactNullableString(null).int8(1).int8(1);
    try {
      const creations = new Writer().compactArray(
        [
          ['wire-topic', 'User:alice'],
          ['wire-topic', 'alice'],
        ],
        (w, [name, principal]) => w.int8(2).compactString(name!).int8(3).compactString(principal!).compactString('*').int8(3).int8(3).emptyTaggedFields(),
      );
      const created = await exchange(30, 3, creations.emptyTaggedFields());
      expect(
        created.compactArray((r) => {
          const result = [r.int16(), r.compactNullableString()];
          r.taggedFields();
          return result;
        }),
      ).toEqual([
        [0, null],
        [42, 'principal "alice" is not of the form Type:name (e.g. User:alice)'],
      ]);

      const described = await exchange(29, 2, filter(new Writer()).emptyTaggedFields());
      expect([described.int16(), described.compactNullableString()]).toEqual([0, null]);
      const resources = described.compactArray((r) => {
        const resource = [r.int8(), r.compactString(), r.int8()] as unknown[];
        resource.push(
          r.compactArray((a) => {
            const entry = [a.compactString(), a.compactString(), a.int8(), a.int8()];
            a.taggedFields();
            return entry;
          }),
        );
        r.taggedFields();
        return resource;
      });
      expect(resources).toEqual([[2, 'wire-topic', 3, [['User:alice', '*', 3, 3]]]]);

      const deleted = await exchange(31, 3, new Writer().compactArray([0], (w) => filter(w).emptyTaggedFields()).emptyTaggedFields());
      const results = deleted.compactArray((r) => {
        const result = [r.int16(), r.compactNullableString()] as unknown[];
        result.push(
          r.compactArray((m) => {
            const acl = [m.int16(), m.compactNullableString(), m.int8(), m.compactString(), m.int8(), m.compactString(), m.compactString(), m.int8(), m.int8()];
            m.taggedFields();
            return acl;
          }),
        );
        r.taggedFields();
        return result;
      });
      expect(results).toEqual([[0, null, [[0, null, 2, 'wire-topic', 3, 'User:alice', '*', 3, 3]]]]);
    } finally {
      client.close();
      await wire.stop();
    }
  });
});

describe('durability and the authorizer switch', () => {
  it('keeps ACLs across a broker restart', async () => {
    const name = uniqueName('acl-durable');
    await asAdmin((admin) => admin.createAcls({ acl: [acl(AclResourceTypes.TRANSACTIONAL_ID, name, AclOperationTypes.WRITE)] }));
    await broker.close();
    broker = await startAclBroker();
    const described = await asAdmin((admin) =>
      admin.describeAcls({
        resourceType: AclResourceTypes.TRANSACTIONAL_ID,
        resourceName: name,
        resourcePatternType: ResourcePatternTypes.ANY,
        operation: AclOperationTypes.ANY,
        permissionType: AclPermissionTypes.ANY,
      }),
    );
    expect(described.resources).toEqual([
      {
        resourceType: AclResourceTypes.TRANSACTIONAL_ID,
        resourceName: name,
        resourcePatternType: ResourcePatternTypes.LITERAL,
        acls: [{ principal: 'User:alice', host: '*', operation: AclOperationTypes.WRITE, permissionType: AclPermissionTypes.ALLOW }],
      },
    ]);
  });

  it('answers SECURITY_DISABLED without an authorizer, and allows everything as before', async () => {
    const open: TestBroker = await startTestBroker();
    try {
      const kafka = new Kafka({ brokers: [open.bootstrap], clientId: 'acl-test-open', logLevel: logLevel.NOTHING, retry: { retries: 0 } });
      const admin = kafka.admin();
      await admin.connect();
      try {
        await expect(admin.createAcls({ acl: [acl(AclResourceTypes.TOPIC, 't', AclOperationTypes.READ)] })).rejects.toMatchObject({
          type: 'SECURITY_DISABLED',
        });
        const topic = uniqueName('acl-open');
        await admin.createTopics({ topics: [{ topic }] });
        expect(await admin.listTopics()).toContain(topic);
      } finally {
        await admin.disconnect();
      }
    } finally {
      await open.stop();
    }
  });
});
