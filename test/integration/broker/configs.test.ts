import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { promisify } from 'node:util';
import { Kafka, logLevel, type Admin, type ConfigResourceTypes } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Reader } from '../../../src/broker/codec/reader.js';
import { Writer } from '../../../src/broker/codec/writer.js';
import { LONG_MAX } from '../../../src/broker/topic-configs.js';
import { DEBIAN_PYTHON, startTestBroker, testNeedsTools, uniqueName, type TestBroker } from './helpers/broker.js';
import { RawClient } from './helpers/raw-client.js';

/**
 * Topic configs over the wire: CreateTopics with Kafka's config names
 * (kafkajs, librdkafka through confluent-kafka, raw frames for the exact
 * refusals) and DescribeConfigs of topics and of the broker (kafkajs v2,
 * librdkafka v1 with synonyms, v0 on the raw wire).
 */
const run = promisify(execFile);
const require = createRequire(import.meta.url);
const TOPIC = 2 as ConfigResourceTypes;
const BROKER = 4 as ConfigResourceTypes;

let t: TestBroker;
let admin: Admin;

beforeAll(async () => {
  t = await startTestBroker();
  admin = new Kafka({ brokers: [t.bootstrap], clientId: 'configs-test', logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
});

afterAll(async () => {
  await admin?.disconnect();
  await t?.stop();
});

async function describeTopic(topic: string, configNames?: string[]) {
  const { resources } = await admin.describeConfigs({
    resources: [{ type: TOPIC, name: topic, ...(configNames ? { configNames } : {}) }],
    includeSynonyms: true,
  });
  expect(resources).toHaveLength(1);
  return resources[0]!;
}

describe('CreateTopics with configs', () => {
  it('kafkajs creates a topic with retention, segment and flush configs, and the log has exactly them', async () => {
    const topic = uniqueName('configured');
    const configEntries = [
      { name: 'retention.ms', value: '60000' },
      { name: 'retention.bytes', value: '1048576' },
      { name: 'segment.ms', value: '3600000' },
      { name: 'segment.bytes', value: '2097152' },
      { name: 'cleanup.policy', value: 'delete' },
      { name: 'flush.ms', value: '500' },
    ];
    expect(await admin.createTopics({ topics: [{ topic, numPartitions: 2, configEntries }] })).toBe(true);
    expect(t.broker.logManager.describeTopic(topic).config).toEqual({
      ...t.broker.logManager.options.topicDefaults,
      retentionMs: 60_000,
      retentionBytes: 1_048_576,
      segmentMs: 3_600_000,
      segmentBytes: 2_097_152,
      flushMode: 'interval',
      flushIntervalMs: 500,
    });
    const described = await describeTopic(topic);
    expect(described).toMatchObject({ errorCode: 0, resourceType: TOPIC, resourceName: topic });
    expect(described.configEntries.map((e) => [e.configName, e.configValue, e.configSource, e.isDefault, e.readOnly])).toEqual([
      ['cleanup.policy', 'delete', 5, true, false],
      ['compression.type', 'producer', 5, true, false],
      ['concordat.dedup.window.ids.max', '100000', 5, true, false],
      ['concordat.dedup.window.ms', '0', 5, true, false],
      ['delete.retention.ms', '86400000', 5, true, false],
      ['file.delete.delay.ms', '60000', 5, true, false],
      ['flush.messages', LONG_MAX, 1, false, false],
      ['flush.ms', '500', 1, false, false],
      ['follower.replication.throttled.replicas', '', 5, true, false],
      ['index.interval.bytes', '4096', 5, true, false],
      ['leader.replication.throttled.replicas', '', 5, true, false],
      ['max.compaction.lag.ms', LONG_MAX, 5, true, false],
      ['max.message.bytes', '1048588', 5, true, false],
      ['message.downconversion.enable', 'true', 5, true, false],
      ['message.format.version', '3.0-IV1', 5, true, false],
      ['message.timestamp.difference.max.ms', LONG_MAX, 5, true, true],
      ['message.timestamp.type', 'CreateTime', 5, true, true],
      ['min.cleanable.dirty.ratio', '0.5', 5, true, false],
      ['min.compaction.lag.ms', '0', 5, true, false],
      ['min.insync.replicas', '1', 5, true, true],
      ['preallocate', 'false', 5, true, false],
      ['retention.bytes', '1048576', 1, false, false],
      ['retention.ms', '60000', 1, false, false],
      ['segment.bytes', '2097152', 1, false, false],
      ['segment.index.bytes', '10485760', 5, true, false],
      ['segment.jitter.ms', '0', 5, true, true],
      ['segment.ms', '3600000', 1, false, false],
      ['unclean.leader.election.enable', 'false', 5, true, false],
    ]);
    expect(described.configEntries.find((e) => e.configName === 'retention.ms')!.configSynonyms).toEqual([
      { configName: 'retention.ms', configValue: '60000', configSource: 1 },
      { configName: 'log.retention.ms', configValue: '604800000', configSource: 5 },
    ]);
  });

  it('kafkajs gets INVALID_CONFIG for an unknown config, an unsupported value and one out of range, and nothing is created', async () => {
    const names = [uniqueName('unknown-config'), uniqueName('compact'), uniqueName('negative')];
    const configs = [[{ name: 'retention.hours', value: '1' }], [{ name: 'cleanup.policy', value: 'shred' }], [{ name: 'retention.ms', value: '-5' }]];
    for (const [i, topic] of names.entries()) {
      await expect(admin.createTopics({ topics: [{ topic, configEntries: configs[i]! }] })).rejects.toMatchObject({
        errors: [{ type: 'INVALID_CONFIG', topic }],
      });
      expect(t.broker.logManager.hasTopic(topic)).toBe(false);
    }
  });

  it('the raw wire carries the reason, naming the config; validate_only checks configs too', async () => {
    const client = await RawClient.connect(t.port);
    try {
      const topics = [
        { name: uniqueName('bad-ms'), configs: [['retention.ms', '1h']] },
        { name: uniqueName('bad-bytes'), configs: [['segment.bytes', '100']] },
        { name: uniqueName('bad-policy'), configs: [['cleanup.policy', 'shred']] },
        { name: uniqueName('bad-name'), configs: [['retention.hours', '1']] },
        { name: uniqueName('bad-null'), configs: [['segment.ms', null]] },
        { name: uniqueName('good'), configs: [['segment.ms', '60000']] },
      ];
      const body = (validateOnly: boolean) =>
        new Writer()
          .array(topics, (w, topic) => {
            w.string(topic.name)
              .int32(1)
              .int16(-1)
              .array([], () => {});
            w.array(topic.configs, (cw, [name, value]) => cw.string(name!).nullableString(value ?? null));
          })
          .int32(5000)
          .boolean(validateOnly)
          .toBuffer();
      const answer = async (validateOnly: boolean) => {
        const r = new Reader(await client.request(19, 3, body(validateOnly)));
        expect(r.int32()).toBe(0);
        return r.array((x) => [x.string(), x.int16(), x.nullableString()]);
      };
      const refusals = [
        [topics[0]!.name, 40, 'invalid value "1h" for config retention.ms: not an integer'],
        [topics[1]!.name, 40, 'invalid value "100" for config segment.bytes: Too small: expected number to be >=1024'],
        [topics[2]!.name, 40, 'invalid value "shred" for config cleanup.policy: not a list of "delete" and "compact"'],
        [topics[3]!.name, 40, expect.stringMatching(/^config retention\.hours is not supported by concordat broker \(it knows cleanup\.policy, /)],
        [topics[4]!.name, 40, 'config segment.ms has a null value'],
      ];
      expect(await answer(true)).toEqual([...refusals, [topics[5]!.name, 0, null]]);
      expect(t.broker.logManager.hasTopic(topics[5]!.name)).toBe(false);
      expect(await answer(false)).toEqual([...refusals, [topics[5]!.name, 0, null]]);
      expect(topics.map((topic) => t.broker.logManager.hasTopic(topic.name))).toEqual([false, false, false, false, false, true]);
      expect(t.broker.logManager.describeTopic(topics[5]!.name).config.segmentMs).toBe(60_000);
    } finally {
      client.close();
    }
  });
});

describe('DescribeConfigs', () => {
  it('a topic created without configs reports the log defaults; configNames picks, unknown names are left out', async () => {
    const topic = uniqueName('defaults');
    await admin.createTopics({ topics: [{ topic }] });
    const described = await describeTopic(topic, ['retention.ms', 'cleanup.policy', 'no.such.config']);
    expect(described.configEntries).toEqual([
      {
        configName: 'cleanup.policy',
        configValue: 'delete',
        readOnly: false,
        isDefault: true,
        configSource: 5,
        isSensitive: false,
        configSynonyms: [{ configName: 'log.cleanup.policy', configValue: 'delete', configSource: 5 }],
      },
      {
        configName: 'retention.ms',
        configValue: '604800000',
        readOnly: false,
        isDefault: true,
        configSource: 5,
        isSensitive: false,
        configSynonyms: [{ configName: 'log.retention.ms', configValue: '604800000', configSource: 5 }],
      },
    ]);
  });

  it('an unknown topic is UNKNOWN_TOPIC_OR_PARTITION, a bad name INVALID_TOPIC_EXCEPTION', async () => {
    await expect(describeTopic(uniqueName('never'))).rejects.toMatchObject({ type: 'UNKNOWN_TOPIC_OR_PARTITION' });
    await expect(describeTopic('not valid!')).rejects.toMatchObject({ type: 'INVALID_TOPIC_EXCEPTION' });
  });

  it("the broker resource lists the log's topic defaults under Kafka's broker names and the broker options Kafka names", async () => {
    const { resources } = await admin.describeConfigs({ resources: [{ type: BROKER, name: '1' }], includeSynonyms: false });
    expect(resources[0]!.configEntries.map((e) => [e.configName, e.configValue, e.configSource])).toEqual([
      ['auto.create.topics.enable', 'false', 5],
      ['broker.id', '1', 5],
      ['compression.type', 'producer', 5],
      ['concordat.dedup.window.ids.max', '100000', 5],
      ['concordat.dedup.window.ms', '0', 5],
      ['connections.max.idle.ms', '600000', 5],
      ['connections.max.reauth.ms', '0', 5],
      ['default.replication.factor', '1', 5],
      // startTestBroker sets 0 where concordat broker defaults to Kafka's 3000: a static broker config (4).
      ['group.initial.rebalance.delay.ms', '0', 4],
      ['log.cleaner.delete.retention.ms', '86400000', 5],
      ['log.cleaner.max.compaction.lag.ms', LONG_MAX, 5],
      ['log.cleaner.min.cleanable.ratio', '0.5', 5],
      ['log.cleaner.min.compaction.lag.ms', '0', 5],
      ['log.cleanup.policy', 'delete', 5],
      ['log.flush.interval.messages', '1', 5],
      ['log.flush.interval.ms', LONG_MAX, 5],
      ['log.index.interval.bytes', '4096', 5],
      ['log.index.size.max.bytes', '10485760', 5],
      ['log.message.downconversion.enable', 'true', 5],
      ['log.message.format.version', '3.0-IV1', 5],
      ['log.message.timestamp.difference.max.ms', LONG_MAX, 5],
      ['log.message.timestamp.type', 'CreateTime', 5],
      ['log.preallocate', 'false', 5],
      ['log.retention.bytes', '-1', 5],
      ['log.retention.ms', '604800000', 5],
      ['log.roll.jitter.ms', '0', 5],
      ['log.roll.ms', '604800000', 5],
      ['log.segment.bytes', '1073741824', 5],
      ['log.segment.delete.delay.ms', '60000', 5],
      ['max.connections', '1024', 5],
      ['message.max.bytes', '1048588', 5],
      ['min.insync.replicas', '1', 5],
      ['num.partitions', '1', 5],
      ['queued.max.request.bytes', '536870912', 5],
      ['socket.request.max.bytes', '104857600', 5],
      ['unclean.leader.election.enable', 'false', 5],
    ]);
    expect(resources[0]!.configEntries.every((e) => e.readOnly && !e.isSensitive && e.configSynonyms.length === 0)).toBe(true);
  });

  it('v0 on the raw wire: is_default per config; other brokers, broker loggers and unknown types are refused with a reason', async () => {
    const topic = uniqueName('v0');
    await admin.createTopics({ topics: [{ topic, configEntries: [{ name: 'retention.ms', value: '60000' }] }] });
    const client = await RawClient.connect(t.port);
    try {
      const resources: [number, string, string[] | null][] = [
        [2, topic, ['retention.ms', 'segment.ms']],
        [4, '7', null],
        [4, '', null],
        [8, '1', null],
        [3, 'x', null],
      ];
      const body = new Writer()
        .array(resources, (w, [type, name, keys]) =>
          w
            .int8(type)
            .string(name)
            .nullableArray(keys, (kw, key) => kw.string(key)),
        )
        .toBuffer();
      const raw = await client.request(32, 0, body);
      // kafkajs's own v0 decoder reads it.
      const decoded = await require('kafkajs/src/protocol/requests/describeConfigs/v0/response.js').decode(raw);
      expect(
        decoded.resources.map((r: { errorCode: number; errorMessage: string | null; resourceType: number; resourceName: string }) => [
          r.errorCode,
          r.errorMessage,
          r.resourceType,
          r.resourceName,
        ]),
      ).toEqual([
        [0, null, 2, topic],
        [42, "this is broker 1; describe broker '1' or '' (cluster defaults), not '7'", 4, '7'],
        [0, null, 4, ''],
        [42, 'broker loggers are not described: concordat broker sets its log level with CONCORDAT_LOG_LEVEL', 8, '1'],
        [42, 'unsupported resource type 3 (2 topic, 4 broker)', 3, 'x'],
      ]);
      expect(decoded.resources[0].configEntries).toEqual([
        { configName: 'retention.ms', configValue: '60000', readOnly: false, isDefault: false, configSource: 1, isSensitive: false },
        { configName: 'segment.ms', configValue: '604800000', readOnly: false, isDefault: true, configSource: 5, isSensitive: false },
      ]);
      expect(decoded.resources[2].configEntries).toEqual([]);
    } finally {
      client.close();
    }
  });

  it('librdkafka (confluent-kafka) creates with configs, reads them back with synonyms, and shows the reason of a refusal', async (context) => {
    testNeedsTools(context, 'confluent-kafka');
    const topic = uniqueName('rdkafka');
    const script = `
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic
a = AdminClient({'bootstrap.servers': '${t.bootstrap}'})
for f in a.create_topics([NewTopic('${topic}', 1, 1, config={'retention.ms': '60000', 'segment.ms': '3600000'})]).values():
    f.result()
for f in a.describe_configs([ConfigResource('topic', '${topic}')]).values():
    for name, entry in sorted(f.result().items()):
        if name in ('retention.ms', 'segment.ms', 'retention.bytes'):
            print(name, entry.value, entry.source, entry.is_default, entry.is_read_only, [(s.name, s.value, s.source) for s in entry.synonyms.values()])
for f in a.create_topics([NewTopic('${topic}-bad', 1, 1, config={'segment.ms': 'abc'})]).values():
    try:
        f.result()
    except Exception as e:
        print(e.args[0].name(), e.args[0].str())
`;
    const { stdout } = await run(DEBIAN_PYTHON, ['-c', script], { timeout: 60_000 });
    expect(stdout.trim().split('\n')).toEqual([
      "retention.bytes -1 5 True False [('log.retention.bytes', '-1', 5)]",
      "retention.ms 60000 1 False False [('retention.ms', '60000', 1), ('log.retention.ms', '604800000', 5)]",
      "segment.ms 3600000 1 False False [('segment.ms', '3600000', 1), ('log.roll.ms', '604800000', 5)]",
      'INVALID_CONFIG invalid value "abc" for config segment.ms: not an integer',
    ]);
    expect(t.broker.logManager.describeTopic(topic).config).toMatchObject({ retentionMs: 60_000, segmentMs: 3_600_000 });
    expect(t.broker.logManager.hasTopic(`${topic}-bad`)).toBe(false);
  });
});
