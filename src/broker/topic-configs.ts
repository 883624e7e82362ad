import { compileTopicConfig, FlushMode, TOPIC_CONFIG_DEFAULTS, type TopicConfig } from '../config/index.js';
import { ConcordatError } from '../errors.js';

/**
 * Kafka's topic config names and the log's {@link TopicConfig}, in one
 * table, so that what CreateTopics accepts and what DescribeConfigs reports
 * are the same names with the same meaning.
 *
 * | Kafka topic config | log's TopicConfig | broker-level synonym (Kafka's) |
 * |---|---|---|
 * | retention.ms (-1: forever) | retentionMs | log.retention.ms |
 * | retention.bytes (-1: no bound) | retentionBytes | log.retention.bytes |
 * | segment.ms | segmentMs | log.roll.ms |
 * | segment.bytes | segmentBytes | log.segment.bytes |
 * | segment.index.bytes | segmentIndexBytes | log.index.size.max.bytes |
 * | index.interval.bytes | indexIntervalBytes | log.index.interval.bytes |
 * | max.message.bytes | maxMessageBytes | message.max.bytes |
 * | flush.messages, flush.ms | flushMode, flushIntervalMs (below) | log.flush.interval.messages, log.flush.interval.ms |
 * | concordat.dedup.window.ms | dedupWindowMs | (same name) |
 * | concordat.dedup.window.ids.max | dedupWindowIdsMax | (same name) |
 * | cleanup.policy = delete | (the log only deletes) | log.cleanup.policy |
 * | compression.type = producer | (batches stored as sent) | compression.type |
 * | message.timestamp.type = CreateTime | (producer timestamps) | log.message.timestamp.type |
 * | min.insync.replicas = 1 | (one replica) | min.insync.replicas |
 *
 * Flushing in Kafka's terms: `flush.messages=1` is "sync after every
 * append" (flushMode `sync`, the log's default); `flush.ms=N` with
 * `flush.messages` at Long.MAX_VALUE is flushMode `interval` every N ms;
 * both at Long.MAX_VALUE (Kafka's own default: leave it to the OS, sync on
 * roll and checkpoint) is flushMode `os`. Those three pairs are what
 * DescribeConfigs reports, and what CreateTopics accepts.
 *
 * The `concordat.*` names are Concordat's own (Kafka has no message-ID dedup
 * window): Apache Kafka refuses them as unknown, as it should.
 *
 * The log stores a topic's complete config, not which fields its creator
 * set, so DescribeConfigs calls a value that equals the log's current
 * default a default (source DEFAULT_CONFIG when that default is Kafka's /
 * the log's built-in one, STATIC_BROKER_CONFIG when the log was opened with
 * another `topicDefaults`), and any other value a topic override
 * (TOPIC_CONFIG).
 */

/** Kafka's config sources (DescribeConfigs v1+ `config_source`). */
export const ConfigSource = {
  UNKNOWN: 0,
  TOPIC_CONFIG: 1,
  DYNAMIC_BROKER_CONFIG: 2,
  DYNAMIC_DEFAULT_BROKER_CONFIG: 3,
  STATIC_BROKER_CONFIG: 4,
  DEFAULT_CONFIG: 5,
} as const;
export type ConfigSource = (typeof ConfigSource)[keyof typeof ConfigSource];

/** Java's Long.MAX_VALUE: Kafka's "never" for its flush settings. */
export const LONG_MAX = '9223372036854775807';

/** One config as DescribeConfigs reports it. */
export interface DescribedConfig {
  name: string;
  value: string;
  source: ConfigSource;
  /** Kafka's synonyms, most specific first: this entry's own level, then the broker default it falls back to. */
  synonyms: { name: string; value: string; source: ConfigSource }[];
}

type IntegerKey = 'retentionMs' | 'retentionBytes' | 'segmentMs' | 'segmentBytes' | 'segmentIndexBytes' | 'indexIntervalBytes' | 'maxMessageBytes' | 'dedupWindowMs' | 'dedupWindowIdsMax';

type Setting =
  | { kind: 'integer'; key: IntegerKey; brokerName: string }
  | { kind: 'flush'; brokerName: string; describe: (config: TopicConfig) => string }
  | { kind: 'fixed'; value: string; brokerName: string; refusal: string };

/** Every topic config the broker knows, by Kafka name, sorted by name (DescribeConfigs answers in this order). */
const SETTINGS: Readonly<Record<string, Setting>> = {
  'cleanup.policy': {
    kind: 'fixed',
    value: 'delete',
    brokerName: 'log.cleanup.policy',
    refusal: 'the log deletes whole segments by age and size (retention.ms, retention.bytes) and does not compact; use "delete"',
  },
  'compression.type': {
    kind: 'fixed',
    value: 'producer',
    brokerName: 'compression.type',
    refusal: 'the log stores batches as the producer compressed them; use "producer"',
  },
  'concordat.dedup.window.ids.max': { kind: 'integer', key: 'dedupWindowIdsMax', brokerName: 'concordat.dedup.window.ids.max' },
  'concordat.dedup.window.ms': { kind: 'integer', key: 'dedupWindowMs', brokerName: 'concordat.dedup.window.ms' },
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
  'index.interval.bytes': { kind: 'integer', key: 'indexIntervalBytes', brokerName: 'log.index.interval.bytes' },
  'max.message.bytes': { kind: 'integer', key: 'maxMessageBytes', brokerName: 'message.max.bytes' },
  'message.timestamp.type': {
    kind: 'fixed',
    value: 'CreateTime',
    brokerName: 'log.message.timestamp.type',
    refusal: "records keep their producer's timestamps; use \"CreateTime\"",
  },
  'min.insync.replicas': {
    kind: 'fixed',
    value: '1',
    brokerName: 'min.insync.replicas',
    refusal: 'concordat broker is the one replica of every partition; use "1"',
  },
  'retention.bytes': { kind: 'integer', key: 'retentionBytes', brokerName: 'log.retention.bytes' },
  'retention.ms': { kind: 'integer', key: 'retentionMs', brokerName: 'log.retention.ms' },
  'segment.bytes': { kind: 'integer', key: 'segmentBytes', brokerName: 'log.segment.bytes' },
  'segment.index.bytes': { kind: 'integer', key: 'segmentIndexBytes', brokerName: 'log.index.size.max.bytes' },
  'segment.ms': { kind: 'integer', key: 'segmentMs', brokerName: 'log.roll.ms' },
};

/** The Kafka topic config names the broker knows, sorted. */
export const TOPIC_CONFIG_NAMES: readonly string[] = Object.keys(SETTINGS).sort();

/** A topic config given to CreateTopics. */
export interface KafkaConfigEntry {
  name: string;
  value: string | null;
}

/**
 * The log's topic config for the Kafka configs of a CreateTopics request,
 * validated against the log's ranges (with `defaults`, the log's topic
 * defaults), or the reason to refuse it with INVALID_CONFIG. Every reason
 * names the config.
 */
export function topicConfigFromKafka(entries: readonly KafkaConfigEntry[], defaults: Readonly<TopicConfig>): { config: Partial<TopicConfig> } | { refusal: string } {
  const given = new Map<string, string>();
  for (const entry of entries) {
    if (given.has(entry.name)) return { refusal: `config ${entry.name} is given more than once` };
    // As Kafka: a null value is not "the default", it is refused.
    if (entry.value === null) return { refusal: `config ${entry.name} has a null value` };
    given.set(entry.name, entry.value.trim());
  }
  const config: Partial<Record<IntegerKey, number>> = {};
  for (const [name, value] of given) {
    const setting = SETTINGS[name];
    if (setting === undefined) return { refusal: `config ${name} is not supported by concordat broker (it knows ${TOPIC_CONFIG_NAMES.join(', ')})` };
    if (setting.kind === 'fixed' && value !== setting.value) return { refusal: `config ${name}="${value}" is not supported: ${setting.refusal}` };
    if (setting.kind !== 'integer') continue;
    const parsed = integer(value);
    if (parsed === null) return { refusal: invalid(name, value, 'not an integer') };
    config[setting.key] = parsed;
  }
  const flush = flushFromKafka(given.get('flush.messages'), given.get('flush.ms'));
  if ('refusal' in flush) return flush;
  const result: Partial<TopicConfig> = { ...config, ...flush.config };
  for (const [key, value] of Object.entries(result) as [keyof TopicConfig, unknown][]) {
    const reason = rangeProblem(key, value, defaults);
    if (reason !== null) {
      const name = key === 'flushIntervalMs' ? 'flush.ms' : kafkaNameOf(key);
      return { refusal: invalid(name, given.get(name) ?? String(value), reason) };
    }
  }
  return { config: result };
}

/** flushMode (and flushIntervalMs) from Kafka's pair; see the file comment. */
function flushFromKafka(messages: string | undefined, ms: string | undefined): { config: Partial<TopicConfig> } | { refusal: string } {
  if (messages !== undefined && messages !== '1' && messages !== LONG_MAX) {
    return {
      refusal: invalid('flush.messages', messages, `concordat broker syncs after every append (1) or leaves syncing to flush.ms or the OS (${LONG_MAX})`),
    };
  }
  let intervalMs: number | null = null;
  if (ms !== undefined && ms !== LONG_MAX) {
    intervalMs = integer(ms);
    if (intervalMs === null) return { refusal: invalid('flush.ms', ms, 'not an integer') };
  }
  if (messages === '1') {
    if (intervalMs !== null) return { refusal: `configs flush.messages=1 and flush.ms=${ms} contradict: give flush.messages=1 (sync every append) or flush.ms (sync on a timer)` };
    return { config: { flushMode: FlushMode.SYNC } };
  }
  if (intervalMs !== null) return { config: { flushMode: FlushMode.INTERVAL, flushIntervalMs: intervalMs } };
  // Both "never" means no forced flush (Kafka's own default): the OS writes back, the log syncs on roll and checkpoint.
  if (messages === LONG_MAX) return { config: { flushMode: FlushMode.OS } };
  return { config: {} };
}

/** The log's complaint about one field, without its option path, or null when the log accepts it. */
function rangeProblem(key: keyof TopicConfig, value: unknown, defaults: Readonly<TopicConfig>): string | null {
  try {
    compileTopicConfig({ [key]: value }, defaults);
    return null;
  } catch (error) {
    if (!(error instanceof ConcordatError)) throw error;
    const problems = error.context.problems;
    const first = Array.isArray(problems) && typeof problems[0] === 'string' ? problems[0] : error.message;
    // compileOptions writes `topic.<key>: <rule> (got <value>)`; the Kafka name and value are said by the caller.
    return first.replace(/^topic\.\w+: /, '').replace(/ \(got [^)]*\)$/, '');
  }
}

function kafkaNameOf(key: keyof TopicConfig): string {
  const found = Object.entries(SETTINGS).find(([, setting]) => setting.kind === 'integer' && setting.key === key);
  if (found === undefined) throw new Error(`no Kafka config name for topic config ${key}`);
  return found[0];
}

/** A decimal integer (Kafka's INT and LONG configs), or null. Beyond 2^53 it is inexact, but every range of the log ends below that, so the range check refuses it. */
function integer(value: string): number | null {
  return /^-?\d+$/.test(value) ? Number(value) : null;
}

function invalid(name: string, value: string, reason: string): string {
  return `invalid value "${value}" for config ${name}: ${reason}`;
}

function describe(setting: Setting, config: Readonly<TopicConfig>): string {
  if (setting.kind === 'integer') return String(config[setting.key]);
  if (setting.kind === 'flush') return setting.describe(config);
  return setting.value;
}

/** Where the log's default for a setting comes from: the built-in value, or the log's own `topicDefaults`. */
function defaultSource(setting: Setting, defaults: Readonly<TopicConfig>): ConfigSource {
  return describe(setting, defaults) === describe(setting, TOPIC_CONFIG_DEFAULTS) ? ConfigSource.DEFAULT_CONFIG : ConfigSource.STATIC_BROKER_CONFIG;
}

/**
 * A topic's configs as DescribeConfigs reports them, sorted by name; `defaults`
 * is the log's topic defaults (see the file comment for the sources).
 */
export function describeTopicConfig(config: Readonly<TopicConfig>, defaults: Readonly<TopicConfig>): DescribedConfig[] {
  return TOPIC_CONFIG_NAMES.map((name) => {
    const setting = SETTINGS[name]!;
    const value = describe(setting, config);
    const fallback = describe(setting, defaults);
    const fallbackSource = defaultSource(setting, defaults);
    const brokerLevel = { name: setting.brokerName, value: fallback, source: fallbackSource };
    if (value === fallback) return { name, value, source: fallbackSource, synonyms: [brokerLevel] };
    return { name, value, source: ConfigSource.TOPIC_CONFIG, synonyms: [{ name, value, source: ConfigSource.TOPIC_CONFIG }, brokerLevel] };
  });
}

/** The log's topic defaults under Kafka's broker-level names (`log.retention.ms`, ...), for a broker resource. */
export function describeTopicDefaults(defaults: Readonly<TopicConfig>): DescribedConfig[] {
  return TOPIC_CONFIG_NAMES.map((name) => {
    const setting = SETTINGS[name]!;
    const entry = { name: setting.brokerName, value: describe(setting, defaults), source: defaultSource(setting, defaults) };
    return { ...entry, synonyms: [entry] };
  });
}
