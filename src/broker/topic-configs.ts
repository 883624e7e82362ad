/**
 * Kafka's topic configs ↔ the log's {@link TopicConfig} and the configs the
 * broker stores with a topic (the table and what each config is:
 * ./topic-config-table.ts), so that what CreateTopics and AlterConfigs
 * accept and what DescribeConfigs reports are the same names with the same
 * meaning.
 *
 * Flushing in Kafka's terms: `flush.messages=1` is "sync after every
 * append" (flushMode `sync`, the log's default); `flush.ms=N` with
 * `flush.messages` at Long.MAX_VALUE is flushMode `interval` every N ms;
 * both at Long.MAX_VALUE (Kafka's own default: leave it to the OS, sync on
 * roll and checkpoint) is flushMode `os`. Those three pairs are what
 * DescribeConfigs reports, and what CreateTopics accepts.
 *
 * The log stores a topic's complete config, not which fields its creator
 * set, so DescribeConfigs calls a value that equals the log's current
 * default a default (source DEFAULT_CONFIG when that default is Kafka's /
 * the log's built-in one, STATIC_BROKER_CONFIG when the log was opened with
 * another `topicDefaults`), and any other value a topic override
 * (TOPIC_CONFIG). A stored config is kept only when it differs from its
 * default, by the same rule.
 *
 * @module
 */

import { compileTopicConfig, FlushMode, TOPIC_CONFIG_DEFAULTS, type TopicConfig } from '../config/index.js';
import { ConcordatError } from '../errors.js';
import { cleanupPolicyFromKafka, COMPRESSION_VALUES, LONG_MAX, SETTINGS, TOPIC_CONFIG_NAMES, type IntegerKey, type Setting } from './topic-config-table.js';

export { LIST_CONFIGS, LONG_MAX, TOPIC_CONFIG_NAMES } from './topic-config-table.js';

/** Kafka's config sources (DescribeConfigs v1+ `config_source`). */
export const ConfigSource = {
  UNKNOWN: 0,
  TOPIC_CONFIG: 1,
  DYNAMIC_BROKER_CONFIG: 2,
  DYNAMIC_DEFAULT_BROKER_CONFIG: 3,
  STATIC_BROKER_CONFIG: 4,
  DEFAULT_CONFIG: 5,
} as const;
/** One of the {@link ConfigSource} values. */
export type ConfigSource = (typeof ConfigSource)[keyof typeof ConfigSource];

/** One config as DescribeConfigs reports it. */
export interface DescribedConfig {
  name: string;
  value: string;
  source: ConfigSource;
  /** True when it cannot be changed (a config with one possible value here, a broker option). */
  readOnly: boolean;
  /** Kafka's synonyms, most specific first: this entry's own level, then the broker default it falls back to. */
  synonyms: { name: string; value: string; source: ConfigSource }[];
}

/** A topic config given to CreateTopics or AlterConfigs. */
export interface KafkaConfigEntry {
  name: string;
  value: string | null;
}

/** A topic's configs as the log takes them: its {@link TopicConfig} fields and the configs stored beside them. */
export interface TopicConfigs {
  config: Partial<TopicConfig>;
  extraConfigs: Record<string, string>;
}

/**
 * The log's topic config for a complete set of Kafka topic configs (those
 * of a CreateTopics request, or the new set of AlterConfigs), validated
 * against the log's ranges (with `defaults`, the log's topic defaults), or
 * the reason to refuse it with INVALID_CONFIG. Every reason names the
 * config. A config given twice is refused, unless `lastWins` (AlterConfigs
 * as Kafka before 3.2 took it: librdkafka's own test helper sends every
 * config read back plus the one it changes).
 */
export function topicConfigFromKafka(
  entries: readonly KafkaConfigEntry[],
  defaults: Readonly<TopicConfig>,
  lastWins = false,
): TopicConfigs | { refusal: string } {
  const given = new Map<string, string>();
  for (const entry of entries) {
    if (given.has(entry.name) && !lastWins) return { refusal: `config ${entry.name} is given more than once` };
    // As Kafka: a null value is not "the default", it is refused.
    if (entry.value === null) return { refusal: `config ${entry.name} has a null value` };
    given.set(entry.name, entry.value.trim());
  }
  const config: Partial<Record<IntegerKey, number>> & Partial<Pick<TopicConfig, 'compression' | 'cleanupPolicy' | 'minCleanableDirtyRatio'>> = {};
  const extraConfigs: Record<string, string> = {};
  for (const [name, value] of given) {
    const setting = SETTINGS[name];
    if (setting === undefined) return { refusal: `config ${name} is not supported by concordat broker (it knows ${TOPIC_CONFIG_NAMES.join(', ')})` };
    if (setting.kind === 'fixed' && value !== setting.value) return { refusal: `config ${name}="${value}" is not supported: ${setting.refusal}` };
    if (setting.kind === 'compression') {
      const compression = COMPRESSION_VALUES[value];
      if (compression === undefined) return { refusal: invalid(name, value, `not one of ${Object.keys(COMPRESSION_VALUES).join(', ')}`) };
      config.compression = compression;
    }
    if (setting.kind === 'policy') {
      const policy = cleanupPolicyFromKafka(value);
      if (typeof policy !== 'string') return { refusal: invalid(name, value, policy.problem) };
      config.cleanupPolicy = policy;
    }
    if (setting.kind === 'ratio') {
      const ratio = value === '' ? NaN : Number(value);
      if (!Number.isFinite(ratio) || ratio < 0 || ratio > 1) return { refusal: invalid(name, value, 'not a number from 0 to 1') };
      config[setting.key] = ratio;
    }
    if (setting.kind === 'stored') {
      const problem = setting.check(value);
      if (problem !== null) return { refusal: invalid(name, value, problem) };
      if (value !== setting.defaultValue) extraConfigs[name] = value;
    }
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
  return { config: result, extraConfigs };
}

/**
 * The configs set on a topic (source TOPIC_CONFIG in DescribeConfigs), by
 * Kafka name: what IncrementalAlterConfigs starts from and AlterConfigs
 * replaces.
 */
export function topicOverrides(
  config: Readonly<TopicConfig>,
  defaults: Readonly<TopicConfig>,
  extraConfigs: Readonly<Record<string, string>>,
): Map<string, string> {
  const described = describeTopicConfig(config, defaults, extraConfigs);
  return new Map(described.filter((c) => c.source === ConfigSource.TOPIC_CONFIG).map((c) => [c.name, c.value]));
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
    if (intervalMs !== null)
      return { refusal: `configs flush.messages=1 and flush.ms=${ms} contradict: give flush.messages=1 (sync every append) or flush.ms (sync on a timer)` };
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
  if (key === 'compression') return 'compression.type';
  if (key === 'cleanupPolicy') return 'cleanup.policy';
  const found = Object.entries(SETTINGS).find(([, setting]) => (setting.kind === 'integer' || setting.kind === 'ratio') && setting.key === key);
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
  if (setting.kind === 'integer' || setting.kind === 'ratio') return String(config[setting.key]);
  if (setting.kind === 'policy') return config.cleanupPolicy;
  if (setting.kind === 'flush') return setting.describe(config);
  if (setting.kind === 'stored') return setting.defaultValue;
  if (setting.kind === 'compression') return config.compression === 'none' ? 'uncompressed' : config.compression;
  return setting.value;
}

/** Where the log's default for a setting comes from: the built-in value, or the log's own `topicDefaults`. */
function defaultSource(setting: Setting, defaults: Readonly<TopicConfig>): ConfigSource {
  return describe(setting, defaults) === describe(setting, TOPIC_CONFIG_DEFAULTS) ? ConfigSource.DEFAULT_CONFIG : ConfigSource.STATIC_BROKER_CONFIG;
}

/**
 * A topic's configs as DescribeConfigs reports them, sorted by name; `defaults`
 * is the log's topic defaults, `extraConfigs` the stored configs the topic
 * has (see the file comment for the sources).
 */
export function describeTopicConfig(
  config: Readonly<TopicConfig>,
  defaults: Readonly<TopicConfig>,
  extraConfigs: Readonly<Record<string, string>> = {},
): DescribedConfig[] {
  return TOPIC_CONFIG_NAMES.map((name) => {
    const setting = SETTINGS[name]!;
    const value = setting.kind === 'stored' ? (extraConfigs[name] ?? setting.defaultValue) : describe(setting, config);
    const fallback = describe(setting, defaults);
    const fallbackSource = defaultSource(setting, defaults);
    const readOnly = setting.kind === 'fixed';
    const brokerLevel = setting.brokerName === null ? [] : [{ name: setting.brokerName, value: fallback, source: fallbackSource }];
    if (value === fallback) return { name, value, source: fallbackSource, readOnly, synonyms: brokerLevel };
    return { name, value, source: ConfigSource.TOPIC_CONFIG, readOnly, synonyms: [{ name, value, source: ConfigSource.TOPIC_CONFIG }, ...brokerLevel] };
  });
}

/** The log's topic defaults under Kafka's broker-level names (`log.retention.ms`, ...), for a broker resource. */
export function describeTopicDefaults(defaults: Readonly<TopicConfig>): DescribedConfig[] {
  return TOPIC_CONFIG_NAMES.flatMap((name) => {
    const setting = SETTINGS[name]!;
    if (setting.brokerName === null) return [];
    const entry = { name: setting.brokerName, value: describe(setting, defaults), source: defaultSource(setting, defaults) };
    return [{ ...entry, readOnly: true, synonyms: [entry] }];
  });
}
