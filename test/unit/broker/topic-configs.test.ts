import { describe, expect, it } from 'vitest';
import {
  ConfigSource,
  describeTopicConfig,
  describeTopicDefaults,
  LONG_MAX,
  topicConfigFromKafka,
  topicOverrides,
  TOPIC_CONFIG_NAMES,
} from '../../../src/broker/topic-configs.js';
import { compileTopicConfig, FlushMode, TOPIC_CONFIG_DEFAULTS, type TopicConfig } from '../../../src/config/index.js';

/**
 * Kafka topic config names ↔ the log's TopicConfig (src/broker/topic-configs.ts):
 * what CreateTopics accepts, with the exact refusals, and what DescribeConfigs
 * reports, with its sources.
 */
const DEFAULTS = TOPIC_CONFIG_DEFAULTS;
const read = (entries: Record<string, string | null>, defaults: Readonly<TopicConfig> = DEFAULTS) =>
  topicConfigFromKafka(
    Object.entries(entries).map(([name, value]) => ({ name, value })),
    defaults,
  );

describe('CreateTopics configs → the log', () => {
  it('maps every integer config to its TopicConfig field, trimming spaces as Kafka does', () => {
    expect(
      read({
        'retention.ms': '60000',
        'retention.bytes': ' 1048576 ',
        'segment.ms': '3600000',
        'segment.bytes': '2097152',
        'segment.index.bytes': '4096',
        'index.interval.bytes': '0',
        'max.message.bytes': '2000',
        'concordat.dedup.window.ms': '120000',
        'concordat.dedup.window.ids.max': '10',
      }),
    ).toEqual({
      config: {
        retentionMs: 60_000,
        retentionBytes: 1_048_576,
        segmentMs: 3_600_000,
        segmentBytes: 2_097_152,
        segmentIndexBytes: 4096,
        indexIntervalBytes: 0,
        maxMessageBytes: 2000,
        dedupWindowMs: 120_000,
        dedupWindowIdsMax: 10,
      },
      extraConfigs: {},
    });
    expect(read({ 'retention.ms': '-1', 'retention.bytes': '-1' })).toEqual({ config: { retentionMs: -1, retentionBytes: -1 }, extraConfigs: {} });
  });

  it('accepts the fixed configs only with the value the log has', () => {
    expect(read({ 'cleanup.policy': 'delete', 'compression.type': 'producer', 'message.timestamp.type': 'CreateTime', 'min.insync.replicas': '1' })).toEqual({
      config: { cleanupPolicy: 'delete', compression: 'producer' },
      extraConfigs: {},
    });
    expect(read({ 'cleanup.policy': 'compact' })).toEqual({ config: { cleanupPolicy: 'compact' }, extraConfigs: {} });
    expect(read({ 'cleanup.policy': 'delete, compact' })).toEqual({ config: { cleanupPolicy: 'compact,delete' }, extraConfigs: {} });
    expect(read({ 'cleanup.policy': 'compact,delete' })).toEqual({ config: { cleanupPolicy: 'compact,delete' }, extraConfigs: {} });
    expect(read({ 'cleanup.policy': 'shred' })).toEqual({ refusal: 'invalid value "shred" for config cleanup.policy: not a list of "delete" and "compact"' });
    expect(read({ 'min.insync.replicas': '2' })).toEqual({
      refusal: 'config min.insync.replicas="2" is not supported: concordat broker is the one replica of every partition; use "1"',
    });
    expect(read({ 'segment.jitter.ms': '10' })).toEqual({
      refusal: 'config segment.jitter.ms="10" is not supported: segments roll at segment.ms exactly; use "0"',
    });
  });

  it("maps compression.type to the log's compression, uncompressed to none, and refuses other values", () => {
    expect(read({ 'compression.type': 'zstd' })).toEqual({ config: { compression: 'zstd' }, extraConfigs: {} });
    expect(read({ 'compression.type': 'uncompressed' })).toEqual({ config: { compression: 'none' }, extraConfigs: {} });
    expect(read({ 'compression.type': 'lz5' })).toEqual({
      refusal: 'invalid value "lz5" for config compression.type: not one of uncompressed, zstd, lz4, snappy, gzip, producer',
    });
    const described = describeTopicConfig(compileTopicConfig({ compression: 'none' }, DEFAULTS), DEFAULTS).find((c) => c.name === 'compression.type');
    expect(described).toMatchObject({ value: 'uncompressed', source: ConfigSource.TOPIC_CONFIG, readOnly: false });
  });

  it("stores the configs Kafka accepts that the log does not act on, checked with Kafka's validators, keeping only non-defaults", () => {
    expect(
      read({
        'delete.retention.ms': '900',
        'min.cleanable.dirty.ratio': '0.1',
        'message.format.version': '0.10.0.0',
        'unclean.leader.election.enable': 'false',
        'leader.replication.throttled.replicas': '0:1, 1:1',
        preallocate: 'true',
      }),
    ).toEqual({
      config: { deleteRetentionMs: 900, minCleanableDirtyRatio: 0.1 },
      extraConfigs: {
        'message.format.version': '0.10.0.0',
        'leader.replication.throttled.replicas': '0:1, 1:1',
        preallocate: 'true',
      },
    });
    expect(read({ 'delete.retention.ms': '-1' })).toEqual({
      refusal: 'invalid value "-1" for config delete.retention.ms: Too small: expected number to be >=0',
    });
    expect(read({ 'max.compaction.lag.ms': '0' })).toEqual({ refusal: 'invalid value "0" for config max.compaction.lag.ms: below 1' });
    expect(read({ 'min.compaction.lag.ms': '9223372036854775808' })).toMatchObject({
      refusal: expect.stringMatching(/^invalid value "9223372036854775808" for config min.compaction.lag.ms: /),
    });
    expect(read({ 'min.cleanable.dirty.ratio': '1.5' })).toEqual({
      refusal: 'invalid value "1.5" for config min.cleanable.dirty.ratio: not a number from 0 to 1',
    });
    expect(read({ preallocate: 'yes' })).toEqual({ refusal: 'invalid value "yes" for config preallocate: not true or false' });
    expect(read({ 'message.format.version': 'latest' })).toEqual({
      refusal: 'invalid value "latest" for config message.format.version: not a Kafka version such as 2.8 or 3.0-IV1',
    });
    expect(read({ 'follower.replication.throttled.replicas': 'all' })).toEqual({
      refusal: 'invalid value "all" for config follower.replication.throttled.replicas: not "", "*" or a list of partition:broker pairs',
    });
  });

  it('refuses what it does not know, null values and a config given twice, naming the config', () => {
    expect(read({ 'retention.hours': '1' })).toEqual({
      refusal: `config retention.hours is not supported by concordat broker (it knows ${TOPIC_CONFIG_NAMES.join(', ')})`,
    });
    expect(read({ 'retention.ms': null })).toEqual({ refusal: 'config retention.ms has a null value' });
    expect(
      topicConfigFromKafka(
        [
          { name: 'retention.ms', value: '1000' },
          { name: 'retention.ms', value: '2000' },
        ],
        DEFAULTS,
      ),
    ).toEqual({ refusal: 'config retention.ms is given more than once' });
    // AlterConfigs: the last value wins (Kafka before 3.2).
    expect(
      topicConfigFromKafka(
        [
          { name: 'retention.ms', value: '1000' },
          { name: 'retention.ms', value: '2000' },
        ],
        DEFAULTS,
        true,
      ),
    ).toEqual({ config: { retentionMs: 2000 }, extraConfigs: {} });
  });

  it("refuses values that are not integers or outside the log's range, with the range", () => {
    expect(read({ 'retention.ms': '1h' })).toEqual({ refusal: 'invalid value "1h" for config retention.ms: not an integer' });
    expect(read({ 'retention.ms': '6e4' })).toEqual({ refusal: 'invalid value "6e4" for config retention.ms: not an integer' });
    expect(read({ 'retention.ms': '-2' })).toEqual({ refusal: 'invalid value "-2" for config retention.ms: Too small: expected number to be >=-1' });
    expect(read({ 'retention.bytes': '-5' })).toEqual({ refusal: 'invalid value "-5" for config retention.bytes: Too small: expected number to be >=-1' });
    expect(read({ 'retention.ms': LONG_MAX })).toEqual({
      refusal: `invalid value "${LONG_MAX}" for config retention.ms: Too big: expected int to be <=9007199254740991`,
    });
    expect(read({ 'segment.bytes': '100' })).toEqual({ refusal: 'invalid value "100" for config segment.bytes: Too small: expected number to be >=1024' });
    expect(read({ 'segment.ms': '0' })).toEqual({ refusal: 'invalid value "0" for config segment.ms: Too small: expected number to be >=1' });
    expect(read({ 'concordat.dedup.window.ms': '604800001' })).toEqual({
      refusal: 'invalid value "604800001" for config concordat.dedup.window.ms: Too big: expected number to be <=604800000',
    });
  });

  it("reads Kafka's flush.messages / flush.ms pairs as the log's flush modes", () => {
    expect(read({ 'flush.messages': '1' })).toEqual({ config: { flushMode: FlushMode.SYNC }, extraConfigs: {} });
    expect(read({ 'flush.messages': '1', 'flush.ms': LONG_MAX })).toEqual({ config: { flushMode: FlushMode.SYNC }, extraConfigs: {} });
    expect(read({ 'flush.ms': '250' })).toEqual({ config: { flushMode: FlushMode.INTERVAL, flushIntervalMs: 250 }, extraConfigs: {} });
    expect(read({ 'flush.messages': LONG_MAX, 'flush.ms': '250' })).toEqual({
      config: { flushMode: FlushMode.INTERVAL, flushIntervalMs: 250 },
      extraConfigs: {},
    });
    expect(read({ 'flush.messages': LONG_MAX, 'flush.ms': LONG_MAX })).toEqual({ config: { flushMode: FlushMode.OS }, extraConfigs: {} });
    expect(read({ 'flush.messages': LONG_MAX })).toEqual({ config: { flushMode: FlushMode.OS }, extraConfigs: {} });
    expect(read({ 'flush.ms': LONG_MAX })).toEqual({ config: {}, extraConfigs: {} });
    expect(read({ 'flush.messages': '1', 'flush.ms': '250' })).toEqual({
      refusal: 'configs flush.messages=1 and flush.ms=250 contradict: give flush.messages=1 (sync every append) or flush.ms (sync on a timer)',
    });
    expect(read({ 'flush.messages': '100' })).toEqual({
      refusal: `invalid value "100" for config flush.messages: concordat broker syncs after every append (1) or leaves syncing to flush.ms or the OS (${LONG_MAX})`,
    });
    expect(read({ 'flush.ms': 'soon' })).toEqual({ refusal: 'invalid value "soon" for config flush.ms: not an integer' });
    expect(read({ 'flush.ms': '0' })).toEqual({ refusal: 'invalid value "0" for config flush.ms: Too small: expected number to be >=1' });
    expect(read({ 'flush.ms': '86400001' })).toEqual({ refusal: 'invalid value "86400001" for config flush.ms: Too big: expected number to be <=86400000' });
  });
});

describe('the log → DescribeConfigs', () => {
  const triples = (configs: ReturnType<typeof describeTopicConfig>) => configs.map((c) => [c.name, c.value, c.source]);

  it('a topic with every default: each config with its value and DEFAULT_CONFIG, in name order', () => {
    expect(triples(describeTopicConfig(DEFAULTS, DEFAULTS))).toEqual([
      ['cleanup.policy', 'delete', ConfigSource.DEFAULT_CONFIG],
      ['compression.type', 'producer', ConfigSource.DEFAULT_CONFIG],
      ['concordat.dedup.window.ids.max', '100000', ConfigSource.DEFAULT_CONFIG],
      ['concordat.dedup.window.ms', '0', ConfigSource.DEFAULT_CONFIG],
      ['delete.retention.ms', '86400000', ConfigSource.DEFAULT_CONFIG],
      ['file.delete.delay.ms', '60000', ConfigSource.DEFAULT_CONFIG],
      ['flush.messages', '1', ConfigSource.DEFAULT_CONFIG],
      ['flush.ms', LONG_MAX, ConfigSource.DEFAULT_CONFIG],
      ['follower.replication.throttled.replicas', '', ConfigSource.DEFAULT_CONFIG],
      ['index.interval.bytes', '4096', ConfigSource.DEFAULT_CONFIG],
      ['leader.replication.throttled.replicas', '', ConfigSource.DEFAULT_CONFIG],
      ['max.compaction.lag.ms', LONG_MAX, ConfigSource.DEFAULT_CONFIG],
      ['max.message.bytes', '1048588', ConfigSource.DEFAULT_CONFIG],
      ['message.downconversion.enable', 'true', ConfigSource.DEFAULT_CONFIG],
      ['message.format.version', '3.0-IV1', ConfigSource.DEFAULT_CONFIG],
      ['message.timestamp.difference.max.ms', LONG_MAX, ConfigSource.DEFAULT_CONFIG],
      ['message.timestamp.type', 'CreateTime', ConfigSource.DEFAULT_CONFIG],
      ['min.cleanable.dirty.ratio', '0.5', ConfigSource.DEFAULT_CONFIG],
      ['min.compaction.lag.ms', '0', ConfigSource.DEFAULT_CONFIG],
      ['min.insync.replicas', '1', ConfigSource.DEFAULT_CONFIG],
      ['preallocate', 'false', ConfigSource.DEFAULT_CONFIG],
      ['retention.bytes', '-1', ConfigSource.DEFAULT_CONFIG],
      ['retention.ms', '604800000', ConfigSource.DEFAULT_CONFIG],
      ['segment.bytes', '1073741824', ConfigSource.DEFAULT_CONFIG],
      ['segment.index.bytes', '10485760', ConfigSource.DEFAULT_CONFIG],
      ['segment.jitter.ms', '0', ConfigSource.DEFAULT_CONFIG],
      ['segment.ms', '604800000', ConfigSource.DEFAULT_CONFIG],
      ['unclean.leader.election.enable', 'false', ConfigSource.DEFAULT_CONFIG],
    ]);
  });

  it('a value set on the topic is TOPIC_CONFIG, with the broker-level default as its synonym', () => {
    const config = compileTopicConfig({ retentionMs: 60_000, flushMode: FlushMode.INTERVAL, flushIntervalMs: 200 }, DEFAULTS);
    const described = describeTopicConfig(config, DEFAULTS);
    expect(described.find((c) => c.name === 'retention.ms')).toEqual({
      name: 'retention.ms',
      value: '60000',
      source: ConfigSource.TOPIC_CONFIG,
      readOnly: false,
      synonyms: [
        { name: 'retention.ms', value: '60000', source: ConfigSource.TOPIC_CONFIG },
        { name: 'log.retention.ms', value: '604800000', source: ConfigSource.DEFAULT_CONFIG },
      ],
    });
    expect(described.filter((c) => c.name.startsWith('flush.')).map((c) => [c.name, c.value, c.source])).toEqual([
      ['flush.messages', LONG_MAX, ConfigSource.TOPIC_CONFIG],
      ['flush.ms', '200', ConfigSource.TOPIC_CONFIG],
    ]);
    expect(described.find((c) => c.name === 'segment.ms')).toEqual({
      name: 'segment.ms',
      value: '604800000',
      source: ConfigSource.DEFAULT_CONFIG,
      readOnly: false,
      synonyms: [{ name: 'log.roll.ms', value: '604800000', source: ConfigSource.DEFAULT_CONFIG }],
    });
  });

  it('a stored config set on the topic is TOPIC_CONFIG; one without a broker-level name has no synonym', () => {
    const described = describeTopicConfig(DEFAULTS, DEFAULTS, { 'max.compaction.lag.ms': '900', 'leader.replication.throttled.replicas': '*' });
    expect(described.find((c) => c.name === 'max.compaction.lag.ms')).toEqual({
      name: 'max.compaction.lag.ms',
      value: '900',
      source: ConfigSource.TOPIC_CONFIG,
      readOnly: false,
      synonyms: [
        { name: 'max.compaction.lag.ms', value: '900', source: ConfigSource.TOPIC_CONFIG },
        { name: 'log.cleaner.max.compaction.lag.ms', value: '9223372036854775807', source: ConfigSource.DEFAULT_CONFIG },
      ],
    });
    expect(described.find((c) => c.name === 'leader.replication.throttled.replicas')).toEqual({
      name: 'leader.replication.throttled.replicas',
      value: '*',
      source: ConfigSource.TOPIC_CONFIG,
      readOnly: false,
      synonyms: [{ name: 'leader.replication.throttled.replicas', value: '*', source: ConfigSource.TOPIC_CONFIG }],
    });
    expect(described.filter((c) => c.readOnly).map((c) => c.name)).toEqual([
      'message.timestamp.difference.max.ms',
      'message.timestamp.type',
      'min.insync.replicas',
      'segment.jitter.ms',
    ]);
    expect(topicOverrides(DEFAULTS, DEFAULTS, { 'max.compaction.lag.ms': '900' })).toEqual(new Map([['max.compaction.lag.ms', '900']]));
  });

  it("defaults the log was opened with (topicDefaults) are STATIC_BROKER_CONFIG, Kafka's source for a broker's own setting", () => {
    const defaults = compileTopicConfig({ retentionMs: 3_600_000 }, TOPIC_CONFIG_DEFAULTS);
    const retention = describeTopicConfig(defaults, defaults).find((c) => c.name === 'retention.ms');
    expect(retention).toEqual({
      name: 'retention.ms',
      value: '3600000',
      source: ConfigSource.STATIC_BROKER_CONFIG,
      readOnly: false,
      synonyms: [{ name: 'log.retention.ms', value: '3600000', source: ConfigSource.STATIC_BROKER_CONFIG }],
    });
    expect(describeTopicDefaults(defaults).map((c) => [c.name, c.value, c.source])).toEqual([
      ['log.cleanup.policy', 'delete', ConfigSource.DEFAULT_CONFIG],
      ['compression.type', 'producer', ConfigSource.DEFAULT_CONFIG],
      ['concordat.dedup.window.ids.max', '100000', ConfigSource.DEFAULT_CONFIG],
      ['concordat.dedup.window.ms', '0', ConfigSource.DEFAULT_CONFIG],
      ['log.cleaner.delete.retention.ms', '86400000', ConfigSource.DEFAULT_CONFIG],
      ['log.segment.delete.delay.ms', '60000', ConfigSource.DEFAULT_CONFIG],
      ['log.flush.interval.messages', '1', ConfigSource.DEFAULT_CONFIG],
      ['log.flush.interval.ms', LONG_MAX, ConfigSource.DEFAULT_CONFIG],
      ['log.index.interval.bytes', '4096', ConfigSource.DEFAULT_CONFIG],
      ['log.cleaner.max.compaction.lag.ms', LONG_MAX, ConfigSource.DEFAULT_CONFIG],
      ['message.max.bytes', '1048588', ConfigSource.DEFAULT_CONFIG],
      ['log.message.downconversion.enable', 'true', ConfigSource.DEFAULT_CONFIG],
      ['log.message.format.version', '3.0-IV1', ConfigSource.DEFAULT_CONFIG],
      ['log.message.timestamp.difference.max.ms', LONG_MAX, ConfigSource.DEFAULT_CONFIG],
      ['log.message.timestamp.type', 'CreateTime', ConfigSource.DEFAULT_CONFIG],
      ['log.cleaner.min.cleanable.ratio', '0.5', ConfigSource.DEFAULT_CONFIG],
      ['log.cleaner.min.compaction.lag.ms', '0', ConfigSource.DEFAULT_CONFIG],
      ['min.insync.replicas', '1', ConfigSource.DEFAULT_CONFIG],
      ['log.preallocate', 'false', ConfigSource.DEFAULT_CONFIG],
      ['log.retention.bytes', '-1', ConfigSource.DEFAULT_CONFIG],
      ['log.retention.ms', '3600000', ConfigSource.STATIC_BROKER_CONFIG],
      ['log.segment.bytes', '1073741824', ConfigSource.DEFAULT_CONFIG],
      ['log.index.size.max.bytes', '10485760', ConfigSource.DEFAULT_CONFIG],
      ['log.roll.jitter.ms', '0', ConfigSource.DEFAULT_CONFIG],
      ['log.roll.ms', '604800000', ConfigSource.DEFAULT_CONFIG],
      ['unclean.leader.election.enable', 'false', ConfigSource.DEFAULT_CONFIG],
    ]);
  });

  it('what DescribeConfigs reports, CreateTopics reads back to the same config (every flush mode)', () => {
    const topics: Partial<TopicConfig>[] = [
      { flushMode: FlushMode.SYNC, retentionMs: 60_000 },
      { flushMode: FlushMode.INTERVAL, flushIntervalMs: 250, segmentBytes: 4096, retentionBytes: 1 << 20 },
      { flushMode: FlushMode.OS, segmentMs: 1000, dedupWindowMs: 60_000, dedupWindowIdsMax: 7 },
    ];
    for (const overrides of topics) {
      const config = compileTopicConfig(overrides, DEFAULTS);
      const extras = { 'max.compaction.lag.ms': '900' };
      const entries = describeTopicConfig(config, DEFAULTS, extras).map((c) => ({ name: c.name, value: c.value }));
      const readBack = topicConfigFromKafka(entries, DEFAULTS);
      if (!('config' in readBack)) throw new Error(readBack.refusal);
      expect(compileTopicConfig(readBack.config, DEFAULTS)).toEqual(config);
      expect(readBack.extraConfigs).toEqual(extras);
    }
  });
});
