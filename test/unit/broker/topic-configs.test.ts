import { describe, expect, it } from 'vitest';
import { ConfigSource, describeTopicConfig, describeTopicDefaults, LONG_MAX, topicConfigFromKafka, TOPIC_CONFIG_NAMES } from '../../../src/broker/topic-configs.js';
import { compileTopicConfig, FlushMode, TOPIC_CONFIG_DEFAULTS, type TopicConfig } from '../../../src/config/index.js';

/**
 * Kafka topic config names ↔ the log's TopicConfig (src/broker/topic-configs.ts):
 * what CreateTopics accepts, with the exact refusals, and what DescribeConfigs
 * reports, with its sources.
 */
const DEFAULTS = TOPIC_CONFIG_DEFAULTS;
const read = (entries: Record<string, string | null>, defaults: Readonly<TopicConfig> = DEFAULTS) =>
  topicConfigFromKafka(Object.entries(entries).map(([name, value]) => ({ name, value })), defaults);

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
    });
    expect(read({ 'retention.ms': '-1', 'retention.bytes': '-1' })).toEqual({ config: { retentionMs: -1, retentionBytes: -1 } });
  });

  it('accepts the fixed configs only with the value the log has', () => {
    expect(read({ 'cleanup.policy': 'delete', 'compression.type': 'producer', 'message.timestamp.type': 'CreateTime', 'min.insync.replicas': '1' })).toEqual({ config: {} });
    expect(read({ 'cleanup.policy': 'compact' })).toEqual({
      refusal:
        'config cleanup.policy="compact" is not supported: the log deletes whole segments by age and size (retention.ms, retention.bytes) and does not compact; use "delete"',
    });
    expect(read({ 'cleanup.policy': 'compact,delete' })).toMatchObject({ refusal: expect.stringMatching(/^config cleanup.policy="compact,delete" is not supported: /) });
    expect(read({ 'min.insync.replicas': '2' })).toEqual({
      refusal: 'config min.insync.replicas="2" is not supported: concordat broker is the one replica of every partition; use "1"',
    });
    expect(read({ 'compression.type': 'zstd' })).toEqual({
      refusal: 'config compression.type="zstd" is not supported: the log stores batches as the producer compressed them; use "producer"',
    });
  });

  it('refuses what it does not know, null values and a config given twice, naming the config', () => {
    expect(read({ 'unclean.leader.election.enable': 'false' })).toEqual({
      refusal: `config unclean.leader.election.enable is not supported by concordat broker (it knows ${TOPIC_CONFIG_NAMES.join(', ')})`,
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
    expect(read({ 'flush.messages': '1' })).toEqual({ config: { flushMode: FlushMode.SYNC } });
    expect(read({ 'flush.messages': '1', 'flush.ms': LONG_MAX })).toEqual({ config: { flushMode: FlushMode.SYNC } });
    expect(read({ 'flush.ms': '250' })).toEqual({ config: { flushMode: FlushMode.INTERVAL, flushIntervalMs: 250 } });
    expect(read({ 'flush.messages': LONG_MAX, 'flush.ms': '250' })).toEqual({ config: { flushMode: FlushMode.INTERVAL, flushIntervalMs: 250 } });
    expect(read({ 'flush.messages': LONG_MAX, 'flush.ms': LONG_MAX })).toEqual({ config: { flushMode: FlushMode.OS } });
    expect(read({ 'flush.messages': LONG_MAX })).toEqual({ config: { flushMode: FlushMode.OS } });
    expect(read({ 'flush.ms': LONG_MAX })).toEqual({ config: {} });
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
      ['flush.messages', '1', ConfigSource.DEFAULT_CONFIG],
      ['flush.ms', LONG_MAX, ConfigSource.DEFAULT_CONFIG],
      ['index.interval.bytes', '4096', ConfigSource.DEFAULT_CONFIG],
      ['max.message.bytes', '1048588', ConfigSource.DEFAULT_CONFIG],
      ['message.timestamp.type', 'CreateTime', ConfigSource.DEFAULT_CONFIG],
      ['min.insync.replicas', '1', ConfigSource.DEFAULT_CONFIG],
      ['retention.bytes', '-1', ConfigSource.DEFAULT_CONFIG],
      ['retention.ms', '604800000', ConfigSource.DEFAULT_CONFIG],
      ['segment.bytes', '1073741824', ConfigSource.DEFAULT_CONFIG],
      ['segment.index.bytes', '10485760', ConfigSource.DEFAULT_CONFIG],
      ['segment.ms', '604800000', ConfigSource.DEFAULT_CONFIG],
    ]);
  });

  it('a value set on the topic is TOPIC_CONFIG, with the broker-level default as its synonym', () => {
    const config = compileTopicConfig({ retentionMs: 60_000, flushMode: FlushMode.INTERVAL, flushIntervalMs: 200 }, DEFAULTS);
    const described = describeTopicConfig(config, DEFAULTS);
    expect(described.find((c) => c.name === 'retention.ms')).toEqual({
      name: 'retention.ms',
      value: '60000',
      source: ConfigSource.TOPIC_CONFIG,
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
      synonyms: [{ name: 'log.roll.ms', value: '604800000', source: ConfigSource.DEFAULT_CONFIG }],
    });
  });

  it("defaults the log was opened with (topicDefaults) are STATIC_BROKER_CONFIG, Kafka's source for a broker's own setting", () => {
    const defaults = compileTopicConfig({ retentionMs: 3_600_000 }, TOPIC_CONFIG_DEFAULTS);
    const retention = describeTopicConfig(defaults, defaults).find((c) => c.name === 'retention.ms');
    expect(retention).toEqual({
      name: 'retention.ms',
      value: '3600000',
      source: ConfigSource.STATIC_BROKER_CONFIG,
      synonyms: [{ name: 'log.retention.ms', value: '3600000', source: ConfigSource.STATIC_BROKER_CONFIG }],
    });
    expect(describeTopicDefaults(defaults).map((c) => [c.name, c.value, c.source])).toEqual([
      ['log.cleanup.policy', 'delete', ConfigSource.DEFAULT_CONFIG],
      ['compression.type', 'producer', ConfigSource.DEFAULT_CONFIG],
      ['concordat.dedup.window.ids.max', '100000', ConfigSource.DEFAULT_CONFIG],
      ['concordat.dedup.window.ms', '0', ConfigSource.DEFAULT_CONFIG],
      ['log.flush.interval.messages', '1', ConfigSource.DEFAULT_CONFIG],
      ['log.flush.interval.ms', LONG_MAX, ConfigSource.DEFAULT_CONFIG],
      ['log.index.interval.bytes', '4096', ConfigSource.DEFAULT_CONFIG],
      ['message.max.bytes', '1048588', ConfigSource.DEFAULT_CONFIG],
      ['log.message.timestamp.type', 'CreateTime', ConfigSource.DEFAULT_CONFIG],
      ['min.insync.replicas', '1', ConfigSource.DEFAULT_CONFIG],
      ['log.retention.bytes', '-1', ConfigSource.DEFAULT_CONFIG],
      ['log.retention.ms', '3600000', ConfigSource.STATIC_BROKER_CONFIG],
      ['log.segment.bytes', '1073741824', ConfigSource.DEFAULT_CONFIG],
      ['log.index.size.max.bytes', '10485760', ConfigSource.DEFAULT_CONFIG],
      ['log.roll.ms', '604800000', ConfigSource.DEFAULT_CONFIG],
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
      const entries = describeTopicConfig(config, DEFAULTS).map((c) => ({ name: c.name, value: c.value }));
      const readBack = topicConfigFromKafka(entries, DEFAULTS);
      if (!('config' in readBack)) throw new Error(readBack.refusal);
      expect(compileTopicConfig(readBack.config, DEFAULTS)).toEqual(config);
    }
  });
});
