/**
 * Every Kafka topic config the broker knows, and what it is here: a field
 * of the log's {@link TopicConfig} (`integer`, `flush`), a config with one
 * possible value (`fixed`: the log has no other behaviour), or a config
 * the broker stores with the topic and the log does not act on (`stored`),
 * because with one replica Kafka itself does not act on it either, or
 * because the log does not implement it (said in the table). Read with ./topic-configs.ts, which converts.
 *
 * | Kafka topic config | here | broker-level synonym (Kafka's) |
 * |---|---|---|
 * | retention.ms (-1: forever) | retentionMs | log.retention.ms |
 * | retention.bytes (-1: no bound) | retentionBytes | log.retention.bytes |
 * | segment.ms | segmentMs | log.roll.ms |
 * | segment.bytes | segmentBytes | log.segment.bytes |
 * | segment.index.bytes | segmentIndexBytes | log.index.size.max.bytes |
 * | index.interval.bytes | indexIntervalBytes | log.index.interval.bytes |
 * | max.message.bytes | maxMessageBytes | message.max.bytes |
 * | flush.messages, flush.ms | flushMode, flushIntervalMs | log.flush.interval.messages, log.flush.interval.ms |
 * | concordat.dedup.window.ms, .ids.max | dedupWindowMs, dedupWindowIdsMax | (same names) |
 * | cleanup.policy (delete, compact, or both) | cleanupPolicy | log.cleanup.policy |
 * | delete.retention.ms | deleteRetentionMs | log.cleaner.delete.retention.ms |
 * | min.cleanable.dirty.ratio | minCleanableDirtyRatio | log.cleaner.min.cleanable.ratio |
 * | min.compaction.lag.ms | minCompactionLagMs | log.cleaner.min.compaction.lag.ms |
 * | compression.type | compression (`uncompressed` is the log's `none`) | compression.type |
 * | message.timestamp.type = CreateTime | fixed: producer timestamps | log.message.timestamp.type |
 * | message.timestamp.difference.max.ms = Long.MAX | fixed: timestamps are not checked | log.message.timestamp.difference.max.ms |
 * | min.insync.replicas = 1 | fixed: one replica | min.insync.replicas |
 * | segment.jitter.ms = 0 | fixed: rolls are not jittered | log.roll.jitter.ms |
 * | max.compaction.lag.ms | stored: the cleaner takes a partition by its dirty ratio only | log.cleaner.max.compaction.lag.ms |
 * | message.format.version | stored: ignored, as Kafka ≥ 3.0 ignores it (batches are v2) | log.message.format.version |
 * | message.downconversion.enable | stored: Fetch v4+ only, nothing to down-convert | log.message.downconversion.enable |
 * | unclean.leader.election.enable, leader/follower.replication.throttled.replicas | stored: one replica | unclean.leader.election.enable |
 * | preallocate, file.delete.delay.ms | stored: how files are laid out and removed, not what clients see | log.preallocate, log.segment.delete.delay.ms |
 *
 * The `concordat.*` names are Concordat's own (Kafka has no message-ID dedup
 * window): Apache Kafka refuses them as unknown, as it should.
 *
 * @module
 */

import { FlushMode, type CleanupPolicy, type TopicCompression, type TopicConfig } from '../config/index.js';

/** Java's Long.MAX_VALUE: Kafka's "never" for its flush settings. */
export const LONG_MAX = '9223372036854775807';

/** The integer fields of {@link TopicConfig} a Kafka config maps to one to one. */
export type IntegerKey =
  | 'retentionMs'
  | 'retentionBytes'
  | 'segmentMs'
  | 'segmentBytes'
  | 'segmentIndexBytes'
  | 'indexIntervalBytes'
  | 'maxMessageBytes'
  | 'dedupWindowMs'
  | 'dedupWindowIdsMax'
  | 'deleteRetentionMs'
  | 'minCompactionLagMs';

/** What one Kafka topic config is here (see the file header for each kind). */
export type Setting =
  | { kind: 'integer'; key: IntegerKey; brokerName: string }
  | { kind: 'flush'; brokerName: string; describe: (config: TopicConfig) => string }
  | { kind: 'compression'; brokerName: string }
  | { kind: 'policy'; brokerName: string }
  | { kind: 'ratio'; key: 'minCleanableDirtyRatio'; brokerName: string }
  | { kind: 'fixed'; value: string; brokerName: string; refusal: string }
  | {
      kind: 'stored';
      defaultValue: string;
      /** Kafka's broker-level default, or null when Kafka has none. */
      brokerName: string | null;
      /** Why a value is invalid (Kafka's validator), or null. */
      check: (value: string) => string | null;
    };

const long =
  (min: number) =>
  (value: string): string | null => {
    if (!/^-?\d+$/.test(value)) return 'not an integer';
    if (BigInt(value) > BigInt(LONG_MAX)) return `above ${LONG_MAX}`;
    return BigInt(value) < BigInt(min) ? `below ${min}` : null;
  };
const boolean = (value: string): string | null => (value === 'true' || value === 'false' ? null : 'not true or false');
const version = (value: string): string | null => (/^\d+\.\d+(\.\d+){0,2}(-IV\d+)?$/.test(value) ? null : 'not a Kafka version such as 2.8 or 3.0-IV1');
const replicas = (value: string): string | null =>
  value === '' || value === '*' || /^\d+:\d+(\s*,\s*\d+:\d+)*$/.test(value) ? null : 'not "", "*" or a list of partition:broker pairs';

/** The table, by Kafka name, sorted by name (DescribeConfigs answers in this order). */
export const SETTINGS: Readonly<Record<string, Setting>> = {
  'cleanup.policy': { kind: 'policy', brokerName: 'log.cleanup.policy' },
  'compression.type': { kind: 'compression', brokerName: 'compression.type' },
  'concordat.dedup.window.ids.max': { kind: 'integer', key: 'dedupWindowIdsMax', brokerName: 'concordat.dedup.window.ids.max' },
  'concordat.dedup.window.ms': { kind: 'integer', key: 'dedupWindowMs', brokerName: 'concordat.dedup.window.ms' },
  'delete.retention.ms': { kind: 'integer', key: 'deleteRetentionMs', brokerName: 'log.cleaner.delete.retention.ms' },
  'file.delete.delay.ms': { kind: 'stored', defaultValue: '60000', brokerName: 'log.segment.delete.delay.ms', check: long(0) },
  'flush.messages': {
    kind: 'flush',
    brokerName: 'log.flush.interval.messages',
    describe: (config) => (config.flushMode === FlushMode.SYNC ? '1' : LONG_MAX),
  },
  'flush.ms': {
    kind: 'flush',
    brokerName: 'log.flush.interval.ms',
    describe: (config) => (config.flushMode === FlushMode.INTERVAL ? String(config.flushIntervalMs) : LONG_MAX),
  },
  'follower.replication.throttled.replicas': { kind: 'stored', defaultValue: '', brokerName: null, check: replicas },
  'index.interval.bytes': { kind: 'integer', key: 'indexIntervalBytes', brokerName: 'log.index.interval.bytes' },
  'leader.replication.throttled.replicas': { kind: 'stored', defaultValue: '', brokerName: null, check: replicas },
  'max.compaction.lag.ms': { kind: 'stored', defaultValue: LONG_MAX, brokerName: 'log.cleaner.max.compaction.lag.ms', check: long(1) },
  'max.message.bytes': { kind: 'integer', key: 'maxMessageBytes', brokerName: 'message.max.bytes' },
  'message.downconversion.enable': { kind: 'stored', defaultValue: 'true', brokerName: 'log.message.downconversion.enable', check: boolean },
  'message.format.version': { kind: 'stored', defaultValue: '3.0-IV1', brokerName: 'log.message.format.version', check: version },
  'message.timestamp.difference.max.ms': {
    kind: 'fixed',
    value: LONG_MAX,
    brokerName: 'log.message.timestamp.difference.max.ms',
    refusal: `the broker does not check record timestamps against its clock; use "${LONG_MAX}"`,
  },
  'message.timestamp.type': {
    kind: 'fixed',
    value: 'CreateTime',
    brokerName: 'log.message.timestamp.type',
    refusal: 'records keep their producer\'s timestamps; use "CreateTime"',
  },
  'min.cleanable.dirty.ratio': { kind: 'ratio', key: 'minCleanableDirtyRatio', brokerName: 'log.cleaner.min.cleanable.ratio' },
  'min.compaction.lag.ms': { kind: 'integer', key: 'minCompactionLagMs', brokerName: 'log.cleaner.min.compaction.lag.ms' },
  'min.insync.replicas': {
    kind: 'fixed',
    value: '1',
    brokerName: 'min.insync.replicas',
    refusal: 'concordat broker is the one replica of every partition; use "1"',
  },
  preallocate: { kind: 'stored', defaultValue: 'false', brokerName: 'log.preallocate', check: boolean },
  'retention.bytes': { kind: 'integer', key: 'retentionBytes', brokerName: 'log.retention.bytes' },
  'retention.ms': { kind: 'integer', key: 'retentionMs', brokerName: 'log.retention.ms' },
  'segment.bytes': { kind: 'integer', key: 'segmentBytes', brokerName: 'log.segment.bytes' },
  'segment.index.bytes': { kind: 'integer', key: 'segmentIndexBytes', brokerName: 'log.index.size.max.bytes' },
  'segment.jitter.ms': { kind: 'fixed', value: '0', brokerName: 'log.roll.jitter.ms', refusal: 'segments roll at segment.ms exactly; use "0"' },
  'segment.ms': { kind: 'integer', key: 'segmentMs', brokerName: 'log.roll.ms' },
  'unclean.leader.election.enable': { kind: 'stored', defaultValue: 'false', brokerName: 'unclean.leader.election.enable', check: boolean },
};

/** The Kafka topic config names the broker knows, sorted. */
export const TOPIC_CONFIG_NAMES: readonly string[] = Object.keys(SETTINGS).sort();

/** Kafka's values of `compression.type`, and the log's {@link TopicCompression} for each. */
export const COMPRESSION_VALUES: Readonly<Record<string, TopicCompression>> = {
  uncompressed: 'none',
  zstd: 'zstd',
  lz4: 'lz4',
  snappy: 'snappy',
  gzip: 'gzip',
  producer: 'producer',
};

/**
 * The log's {@link CleanupPolicy} for a value of Kafka's `cleanup.policy` (a
 * list of `delete` and `compact` in any order, as Kafka takes it), or the
 * reason it is not one.
 */
export function cleanupPolicyFromKafka(value: string): CleanupPolicy | { problem: string } {
  const items = new Set(value.split(',').map((item) => item.trim()));
  const unknown = [...items].filter((item) => item !== 'delete' && item !== 'compact');
  if (unknown.length > 0 || items.size === 0) return { problem: 'not a list of "delete" and "compact"' };
  if (items.has('compact')) return items.has('delete') ? 'compact,delete' : 'compact';
  return 'delete';
}

/** Kafka's LIST-typed topic configs (IncrementalAlterConfigs may APPEND to and SUBTRACT from them). */
export const LIST_CONFIGS: ReadonlySet<string> = new Set([
  'cleanup.policy',
  'follower.replication.throttled.replicas',
  'leader.replication.throttled.replicas',
]);
