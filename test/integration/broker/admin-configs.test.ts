import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Kafka, logLevel, type Admin, type ConfigResourceTypes } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Reader } from '../../../src/broker/codec/reader.js';
import { Writer } from '../../../src/broker/codec/writer.js';
import { readBatchHeader } from '../../../src/log/index.js';
import { until } from '../../../src/testing/index.js';
import { loadRdKafka, type RdKafkaError } from '../../support/rdkafka.js';
import { DEBIAN_PYTHON, startTestBroker, testNeedsTools, uniqueName, type TestBroker } from './helpers/broker.js';
import { RawClient } from './helpers/raw-client.js';

/**
 * Topic configs that change after creation: AlterConfigs (kafkajs,
 * kafka-python, raw v0/v1 frames) and IncrementalAlterConfigs (raw v0 and
 * flexible v1 frames: no client here sends it), durable across a restart,
 * seen by DescribeConfigs and applied by the log (retention, the largest
 * batch). Also the Kafka configs CreateTopics now accepts (kafkajs,
 * librdkafka) and CreateTopics v5's answer.
 */
const run = promisify(execFile);
const TOPIC = 2 as ConfigResourceTypes;

let t: TestBroker;
let kafka: Kafka;
let admin: Admin;

beforeAll(async () => {
  t = await startTestBroker();
  kafka = new Kafka({ brokers: [t.bootstrap], clientId: 'alter-configs-test', logLevel: logLevel.NOTHING });
  admin = kafka.admin();
  await admin.connect();
});

afterAll(async () => {
  await admin?.disconnect();
  await t?.stop();
});

async function described(topic: string, names: string[]): Promise<[string, string, number, boolean][]> {
  const { resources } = await admin.describeConfigs({ resources: [{ type: TOPIC, name: topic, configNames: names }], includeSynonyms: false });
  return resources[0]!.configEntries.map((e) => [e.configName, e.configValue, e.configSource, e.readOnly]);
}

describe('AlterConfigs with kafkajs', () => {
  it('replaces the set: the configs given are set, the others go back to their defaults; DescribeConfigs shows it', async () => {
    const topic = uniqueName('alter');
    await admin.createTopics({ topics: [{ topic, configEntries: [{ name: 'retention.ms', value: '60000' }] }] });
    await admin.alterConfigs({
      validateOnly: false,
      resources: [
        {
          type: TOPIC,
          name: topic,
          configEntries: [
            { name: 'segment.ms', value: '120000' },
            { name: 'delete.retention.ms', value: '900' },
          ],
        },
      ],
    });
    expect(await described(topic, ['delete.retention.ms', 'retention.ms', 'segment.ms', 'cleanup.policy'])).toEqual([
      ['cleanup.policy', 'delete', 5, false],
      ['delete.retention.ms', '900', 1, false],
      ['retention.ms', '604800000', 5, false],
      ['segment.ms', '120000', 1, false],
    ]);
    expect(t.broker.logManager.describeTopic(topic)).toMatchObject({
      config: { retentionMs: 604_800_000, segmentMs: 120_000, deleteRetentionMs: 900 },
      extraConfigs: {},
    });
  });

  it('retention.ms changed after creation deletes old segments at the next retention run; ListOffsets earliest follows', async () => {
    const topic = uniqueName('retention');
    await admin.createTopics({ topics: [{ topic, configEntries: [{ name: 'segment.bytes', value: '1024' }] }] });
    const producer = kafka.producer();
    await producer.connect();
    try {
      const hourAgo = String(Date.now() - 3_600_000);
      for (let i = 0; i < 20; i++) await producer.send({ topic, messages: [{ value: 'x'.repeat(300), timestamp: hourAgo }] });
    } finally {
      await producer.disconnect();
    }
    const segments = t.broker.logManager.describePartition(topic, 0).segmentCount;
    expect(segments).toBeGreaterThan(3);
    // With the default retention (7 days) nothing is old enough.
    await t.broker.logManager.enforceRetention();
    expect(t.broker.logManager.describePartition(topic, 0).segmentCount).toBe(segments);
    await admin.alterConfigs({
      validateOnly: false,
      resources: [
        {
          type: TOPIC,
          name: topic,
          configEntries: [
            { name: 'segment.bytes', value: '1024' },
            { name: 'retention.ms', value: '60000' },
          ],
        },
      ],
    });
    await t.broker.logManager.enforceRetention();
    const after = t.broker.logManager.describePartition(topic, 0);
    expect(after.segmentCount).toBe(1);
    const [offsets] = await admin.fetchTopicOffsets(topic);
    expect(offsets).toMatchObject({ partition: 0, low: String(after.logStartOffset), high: '20' });
    expect(after.logStartOffset).toBeGreaterThan(0);
  });

  it('max.message.bytes lowered after creation refuses a larger batch (MESSAGE_TOO_LARGE)', async () => {
    const topic = uniqueName('max-message');
    await admin.createTopics({ topics: [{ topic }] });
    const producer = kafka.producer({ retry: { retries: 0 } });
    await producer.connect();
    try {
      await producer.send({ topic, messages: [{ value: 'y'.repeat(2000) }] });
      await admin.alterConfigs({
        validateOnly: false,
        resources: [{ type: TOPIC, name: topic, configEntries: [{ name: 'max.message.bytes', value: '1000' }] }],
      });
      await expect(producer.send({ topic, messages: [{ value: 'y'.repeat(2000) }] })).rejects.toMatchObject({ type: 'MESSAGE_TOO_LARGE' });
      await producer.send({ topic, messages: [{ value: 'small' }] });
    } finally {
      await producer.disconnect();
    }
  });

  it('refuses with Kafka error codes: INVALID_CONFIG, UNKNOWN_TOPIC_OR_PARTITION; validate_only changes nothing', async () => {
    const topic = uniqueName('refuse');
    await admin.createTopics({ topics: [{ topic }] });
    const alter = (name: string, configEntries: { name: string; value: string }[], validateOnly = false) =>
      admin.alterConfigs({ validateOnly, resources: [{ type: TOPIC, name, configEntries }] });
    await expect(alter(topic, [{ name: 'retention.hours', value: '1' }])).rejects.toMatchObject({ type: 'INVALID_CONFIG' });
    await expect(alter(topic, [{ name: 'retention.ms', value: 'soon' }])).rejects.toMatchObject({ type: 'INVALID_CONFIG' });
    await expect(alter(topic, [{ name: 'cleanup.policy', value: 'shred' }])).rejects.toMatchObject({ type: 'INVALID_CONFIG' });
    await expect(alter(uniqueName('absent'), [{ name: 'retention.ms', value: '1000' }])).rejects.toMatchObject({ type: 'UNKNOWN_TOPIC_OR_PARTITION' });
    await alter(topic, [{ name: 'retention.ms', value: '1000' }], true);
    expect(t.broker.logManager.describeTopic(topic).config.retentionMs).toBe(604_800_000);
  });

  it('a change is durable: the restarted broker describes and applies it', async () => {
    const restarting = await startTestBroker();
    const topic = uniqueName('durable-config');
    const client = new Kafka({ brokers: [restarting.bootstrap], logLevel: logLevel.NOTHING }).admin();
    try {
      await client.connect();
      await client.createTopics({ topics: [{ topic }] });
      await client.alterConfigs({
        validateOnly: false,
        resources: [
          {
            type: TOPIC,
            name: topic,
            configEntries: [
              { name: 'retention.bytes', value: '4096' },
              { name: 'min.cleanable.dirty.ratio', value: '0.2' },
            ],
          },
        ],
      });
      await client.disconnect();
      await restarting.broker.close();
      const again = await startTestBroker({ dataDir: restarting.dataDir });
      try {
        expect(again.broker.logManager.describeTopic(topic)).toMatchObject({ config: { retentionBytes: 4096, minCleanableDirtyRatio: 0.2 } });
      } finally {
        await again.stop();
      }
    } finally {
      await client.disconnect();
      await restarting.broker.close();
    }
  });
});

describe('AlterConfigs and IncrementalAlterConfigs on the raw wire', () => {
  let client: RawClient;
  beforeAll(async () => {
    client = await RawClient.connect(t.port);
  });
  afterAll(() => client?.close());

  /** Sends a flexible request (header v2) and returns the body after the response header v1. */
  async function flexibleRequest(apiKey: number, version: number, body: Buffer): Promise<Reader> {
    client.send(apiKey, version, 7, body, true);
    const reader = new Reader(await client.readFrame());
    expect(reader.int32()).toBe(7);
    reader.taggedFields();
    return reader;
  }

  type Resource = [type: number, name: string, configs: [string, string | null][]];
  const alterBody = (resources: Resource[], validateOnly = false) =>
    new Writer()
      .array(resources, (w, [type, name, configs]) =>
        w
          .int8(type)
          .string(name)
          .array(configs, (cw, [n, v]) => cw.string(n).nullableString(v)),
      )
      .boolean(validateOnly)
      .toBuffer();
  const readResults = (r: Reader) => {
    expect(r.int32()).toBe(0);
    return r.array((x) => [x.int16(), x.nullableString(), x.int8(), x.string()]);
  };

  it('AlterConfigs v1: each resource succeeds or fails alone, with a message naming the config', async () => {
    const topic = uniqueName('raw-alter');
    await admin.createTopics({ topics: [{ topic }] });
    const absent = uniqueName('absent');
    const body = alterBody([
      [
        2,
        topic,
        [
          ['retention.ms', '5000'],
          ['retention.ms', '6000'],
        ],
      ],
      [2, absent, [['retention.ms', '5000']]],
      [2, 'not valid!', []],
      [4, '1', [['log.retention.ms', '1']]],
      [4, '1', []],
      [4, '9', []],
    ]);
    expect(readResults(new Reader(await client.request(33, 1, body)))).toEqual([
      [0, null, 2, topic],
      [3, `topic '${absent}' does not exist`, 2, absent],
      [17, "'not valid!' is not a valid topic name", 2, 'not valid!'],
      [42, 'broker configs of concordat broker are not dynamic: set them as its start-up options (see docs/broker.md) and restart it', 4, '1'],
      [0, null, 4, '1'],
      [42, "this is broker 1; alter broker '1' or '', not '9'", 4, '9'],
    ]);
    // A config named twice: the last value wins (Kafka before 3.2; librdkafka's test helper relies on it).
    expect(t.broker.logManager.describeTopic(topic).config.retentionMs).toBe(6000);
    const refusals = alterBody([
      [2, topic, [['segment.bytes', '10']]],
      [2, topic, [['no.such.config', '1']]],
      [2, topic, [['unclean.leader.election.enable', 'maybe']]],
      [2, topic, [['retention.ms', null]]],
    ]);
    expect(readResults(new Reader(await client.request(33, 0, refusals)))).toEqual([
      [40, 'invalid value "10" for config segment.bytes: Too small: expected number to be >=1024', 2, topic],
      [40, expect.stringMatching(/^config no\.such\.config is not supported by concordat broker \(it knows cleanup\.policy, /), 2, topic],
      [40, 'invalid value "maybe" for config unclean.leader.election.enable: not true or false', 2, topic],
      [40, 'config retention.ms has a null value', 2, topic],
    ]);
    expect(t.broker.logManager.describeTopic(topic).config.retentionMs).toBe(6000);
  });

  it('the dedup window can be resized but not switched on after creation; validate_only says so too', async () => {
    const topic = uniqueName('dedup-switch');
    await admin.createTopics({ topics: [{ topic }] });
    expect(readResults(new Reader(await client.request(33, 1, alterBody([[2, topic, [['concordat.dedup.window.ms', '60000']]]], true))))).toEqual([
      [40, `Topic '${topic}': the dedup window is off and cannot be switched on after creation; create a new topic with the window you want`, 2, topic],
    ]);
    expect(readResults(new Reader(await client.request(33, 1, alterBody([[2, topic, [['concordat.dedup.window.ms', '60000']]]]))))).toEqual([
      [40, `Topic '${topic}': the dedup window is off and cannot be switched on after creation; create a new topic with the window you want`, 2, topic],
    ]);
  });

  const incrementalV0 = (topic: string, configs: [string, number, string | null][], validateOnly = false) =>
    new Writer()
      .array([topic], (w, name) =>
        w
          .int8(2)
          .string(name)
          .array(configs, (cw, [n, op, v]) => cw.string(n).int8(op).nullableString(v)),
      )
      .boolean(validateOnly)
      .toBuffer();

  it('IncrementalAlterConfigs v0: SET and DELETE change only the configs named; APPEND/SUBTRACT only on lists', async () => {
    const topic = uniqueName('incremental');
    await admin.createTopics({
      topics: [
        {
          topic,
          configEntries: [
            { name: 'retention.ms', value: '60000' },
            { name: 'segment.ms', value: '90000' },
          ],
        },
      ],
    });
    const answer = async (configs: [string, number, string | null][], validateOnly = false) =>
      readResults(new Reader(await client.request(44, 0, incrementalV0(topic, configs, validateOnly))))[0];
    expect(
      await answer([
        ['retention.bytes', 0, '1048576'],
        ['segment.ms', 1, null],
        ['preallocate', 0, 'true'],
      ]),
    ).toEqual([0, null, 2, topic]);
    expect(t.broker.logManager.describeTopic(topic)).toMatchObject({
      config: { retentionMs: 60_000, retentionBytes: 1_048_576, segmentMs: 604_800_000 },
      extraConfigs: { preallocate: 'true' },
    });
    expect(
      await answer([
        ['leader.replication.throttled.replicas', 2, '0:1'],
        ['follower.replication.throttled.replicas', 2, '*'],
      ]),
    ).toEqual([0, null, 2, topic]);
    expect(await answer([['leader.replication.throttled.replicas', 2, '1:1']])).toEqual([0, null, 2, topic]);
    expect(await answer([['leader.replication.throttled.replicas', 3, '0:1']])).toEqual([0, null, 2, topic]);
    expect(t.broker.logManager.describeTopic(topic).extraConfigs).toEqual({
      preallocate: 'true',
      'leader.replication.throttled.replicas': '1:1',
      'follower.replication.throttled.replicas': '*',
    });
    expect(await answer([['cleanup.policy', 2, 'compact']])).toEqual([0, null, 2, topic]);
    expect(t.broker.logManager.describeTopic(topic).config.cleanupPolicy).toBe('compact,delete');
    expect(await answer([['retention.ms', 2, '5']])).toEqual([
      40,
      'config retention.ms is not a list: APPEND works on cleanup.policy, follower.replication.throttled.replicas, leader.replication.throttled.replicas; use SET',
      2,
      topic,
    ]);
    expect(
      await answer([
        ['retention.ms', 0, '1'],
        ['retention.ms', 1, null],
      ]),
    ).toEqual([42, 'config retention.ms is named more than once', 2, topic]);
    expect(await answer([['retention.ms', 9, '1']])).toEqual([
      42,
      'config retention.ms: unknown operation 9 (0 SET, 1 DELETE, 2 APPEND, 3 SUBTRACT)',
      2,
      topic,
    ]);
    expect(await answer([['retention.ms', 1, null]], true)).toEqual([0, null, 2, topic]);
    expect(t.broker.logManager.describeTopic(topic).config.retentionMs).toBe(60_000);
  });

  it('IncrementalAlterConfigs v1 (flexible) and CreateTopics v5 (flexible) answer in compact form', async () => {
    const topic = uniqueName('flexible');
    const create = new Writer()
      .compactArray([topic], (w, name) => {
        w.compactString(name)
          .int32(-1)
          .int16(-1)
          .compactArray([], () => {});
        w.compactArray(
          [
            ['delete.retention.ms', '900'],
            ['flush.ms', '500'],
          ] as const,
          (cw, [n, v]) => cw.compactString(n).compactNullableString(v).emptyTaggedFields(),
        );
        w.emptyTaggedFields();
      })
      .int32(5000)
      .boolean(false)
      .emptyTaggedFields()
      .toBuffer();
    const created = await flexibleRequest(19, 5, create);
    expect(created.int32()).toBe(0);
    const [result] = created.compactArray((r) => {
      const row = {
        name: r.compactString(),
        errorCode: r.int16(),
        errorMessage: r.compactNullableString(),
        numPartitions: r.int32(),
        replicationFactor: r.int16(),
        configs: r.compactNullableArray((c) => {
          const config = [c.compactString(), c.compactNullableString(), c.boolean(), c.int8(), c.boolean()] as const;
          c.taggedFields();
          return config;
        }),
      };
      r.taggedFields();
      return row;
    });
    expect(result).toMatchObject({ name: topic, errorCode: 0, errorMessage: null, numPartitions: 1, replicationFactor: 1 });
    expect(result!.configs!.filter(([name]) => ['delete.retention.ms', 'flush.ms', 'retention.ms', 'cleanup.policy'].includes(name))).toEqual([
      ['cleanup.policy', 'delete', false, 5, false],
      ['delete.retention.ms', '900', false, 1, false],
      ['flush.ms', '500', false, 1, false],
      ['retention.ms', '604800000', false, 5, false],
    ]);
    const change = new Writer()
      .compactArray([topic], (w, name) => {
        w.int8(2).compactString(name);
        w.compactArray([['retention.ms', 0, '120000']] as const, (cw, [n, op, v]) => cw.compactString(n).int8(op).compactNullableString(v).emptyTaggedFields());
        w.emptyTaggedFields();
      })
      .boolean(false)
      .emptyTaggedFields()
      .toBuffer();
    const changed = await flexibleRequest(44, 1, change);
    expect(changed.int32()).toBe(0);
    expect(
      changed.compactArray((r) => {
        const row = [r.int16(), r.compactNullableString(), r.int8(), r.compactString()];
        r.taggedFields();
        return row;
      }),
    ).toEqual([[0, null, 2, topic]]);
    expect(t.broker.logManager.describeTopic(topic)).toMatchObject({
      config: { retentionMs: 120_000, flushMode: 'interval', flushIntervalMs: 500, deleteRetentionMs: 900 },
    });
  });
});

describe('CreateTopics with the configs Kafka accepts', () => {
  it("kafkajs: compaction configs are the log's, replication and format configs are stored, all described", async () => {
    const topic = uniqueName('kafka-configs');
    const configEntries = [
      { name: 'delete.retention.ms', value: '900' },
      { name: 'min.compaction.lag.ms', value: '1000' },
      { name: 'message.format.version', value: '0.10.0.0' },
      { name: 'unclean.leader.election.enable', value: 'false' },
    ];
    expect(await admin.createTopics({ topics: [{ topic, configEntries }] })).toBe(true);
    // unclean.leader.election.enable=false is the default: not kept as an override.
    expect(t.broker.logManager.describeTopic(topic)).toMatchObject({
      config: { deleteRetentionMs: 900, minCompactionLagMs: 1000 },
      extraConfigs: { 'message.format.version': '0.10.0.0' },
    });
    expect(await described(topic, ['delete.retention.ms', 'message.format.version', 'unclean.leader.election.enable'])).toEqual([
      ['delete.retention.ms', '900', 1, false],
      ['message.format.version', '0.10.0.0', 1, false],
      ['unclean.leader.election.enable', 'false', 5, false],
    ]);
  });

  it('librdkafka (node-rdkafka) creates a topic with delete.retention.ms, and sees the reason of a refusal', async (context) => {
    testNeedsTools(context, 'node-rdkafka');
    const create = (topic: string, config: Record<string, string>) =>
      new Promise<void>((resolve, reject) => {
        const client = loadRdKafka().AdminClient.create({ 'bootstrap.servers': t.bootstrap });
        client.createTopic({ topic, num_partitions: 1, replication_factor: 1, config }, 10_000, (err?: RdKafkaError) => {
          client.disconnect();
          if (err) reject(err);
          else resolve();
        });
      });
    const topic = uniqueName('rd-configs');
    // The configs librdkafka's test 0081 creates topics with.
    await create(topic, { 'compression.type': 'lz4', 'delete.retention.ms': '900' });
    expect(t.broker.logManager.describeTopic(topic)).toMatchObject({ config: { compression: 'lz4', deleteRetentionMs: 900 } });
    await expect(create(uniqueName('rd-bad'), { 'min.cleanable.dirty.ratio': '2' })).rejects.toMatchObject({
      code: 40,
      message: 'invalid value "2" for config min.cleanable.dirty.ratio: not a number from 0 to 1',
    });
  });

  it('compression.type=gzip: kafkajs produces uncompressed, the log stores gzip batches, kafkajs reads the records back', async () => {
    const topic = uniqueName('gzip-topic');
    await admin.createTopics({ topics: [{ topic, configEntries: [{ name: 'compression.type', value: 'gzip' }] }] });
    const producer = kafka.producer();
    await producer.connect();
    try {
      await producer.send({
        topic,
        messages: [
          { key: 'a', value: 'first' },
          { key: 'b', value: 'second', headers: { h: 'x' } },
        ],
      });
    } finally {
      await producer.disconnect();
    }
    const stored = await t.broker.logManager.read(topic, 0, 0, { maxBytes: 4096 });
    expect(readBatchHeader(stored.records).compression).toBe('gzip');
    const consumer = kafka.consumer({ groupId: uniqueName('gzip-reader') });
    const seen: string[] = [];
    await consumer.connect();
    try {
      await consumer.subscribe({ topic, fromBeginning: true });
      await consumer.run({
        eachMessage: async ({ message }) =>
          void seen.push(`${message.offset}:${message.key?.toString()}:${message.value?.toString()}:${message.headers?.h?.toString() ?? ''}`),
      });
      await until(() => seen.length >= 2, { timeoutMs: 20_000, message: 'both records consumed' });
    } finally {
      await consumer.disconnect();
    }
    expect(seen).toEqual(['0:a:first:', '1:b:second:x']);
  });

  it("librdkafka 2.0.2 (confluent-kafka): test 0081's topic configs, test 0092's AlterConfigs of every config read back plus message.format.version, then create_partitions", async (context) => {
    testNeedsTools(context, 'confluent-kafka');
    const topic = uniqueName('ck-admin');
    const script = `
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, NewPartitions
a = AdminClient({'bootstrap.servers': '${t.bootstrap}'})
for f in a.create_topics([NewTopic('${topic}', 2, 1, config={'compression.type': 'lz4', 'delete.retention.ms': '900'})]).values():
    f.result()
res = ConfigResource('topic', '${topic}')
entries = a.describe_configs([res])[res].result()
alter = ConfigResource('topic', '${topic}', set_config={name: e.value for name, e in entries.items()})
alter.set_config('message.format.version', '0.10.0.0')
alter.set_config('retention.ms', '90000')
a.alter_configs([alter])[alter].result()
for f in a.create_partitions([NewPartitions('${topic}', 4)]).values():
    f.result()
res = ConfigResource('topic', '${topic}')
after = a.describe_configs([res])[res].result()
for name in ('compression.type', 'delete.retention.ms', 'message.format.version', 'retention.ms'):
    print(name, after[name].value, after[name].source)
try:
    a.alter_configs([ConfigResource('topic', '${topic}', set_config={'cleanup.policy': 'shred'})])[ConfigResource('topic', '${topic}')].result()
except Exception as e:
    print(e.args[0].name())
`;
    const { stdout } = await run(DEBIAN_PYTHON, ['-c', script], { timeout: 60_000 });
    expect(stdout.trim().split('\n')).toEqual([
      'compression.type lz4 1',
      'delete.retention.ms 900 1',
      'message.format.version 0.10.0.0 1',
      'retention.ms 90000 1',
      'INVALID_CONFIG',
    ]);
    expect(t.broker.logManager.partitionCount(topic)).toBe(4);
    expect(t.broker.logManager.describeTopic(topic)).toMatchObject({ config: { compression: 'lz4', retentionMs: 90_000 } });
  });

  it('kafka-python: alter_configs then describe_configs', async (context) => {
    testNeedsTools(context, 'kafka-python');
    const topic = uniqueName('py-alter');
    await admin.createTopics({ topics: [{ topic }] });
    const script = `
from kafka.admin import KafkaAdminClient, ConfigResource, ConfigResourceType
a = KafkaAdminClient(bootstrap_servers='${t.bootstrap}')
r = a.alter_configs([ConfigResource(ConfigResourceType.TOPIC, '${topic}', configs={'retention.ms': '90000'})])
print([(code, name) for code, message, rtype, name in r.resources])
d = a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, '${topic}', configs={'retention.ms': None})])
print([e[:2] for e in d[0].resources[0][4]])
`;
    const { stdout } = await run(DEBIAN_PYTHON, ['-c', script], { timeout: 60_000 });
    expect(stdout.trim().split('\n')).toEqual([`[(0, '${topic}')]`, "[('retention.ms', '90000')]"]);
    expect(t.broker.logManager.describeTopic(topic).config.retentionMs).toBe(90_000);
  });
});
