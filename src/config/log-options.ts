/**
 * Options of the log engine (`src/log/`), in STYLE.md's four steps:
 * public options with TSDoc ({@link LogManagerOptions}, {@link TopicConfig},
 * {@link GroupCoordinatorOptions}) → defaults ({@link TOPIC_CONFIG_DEFAULTS}
 * and the schema's `.default()`s) → validation naming the option
 * ({@link compileLogManagerOptions}, {@link compileTopicConfig}) → compiled
 * options with every field present ({@link CompiledLogManagerOptions}).
 * Every duration is in ms, every size in bytes.
 *
 * @module
 */

import { z } from 'zod';
import { compileOptions } from './compile.js';

/**
 * When an append is acknowledged. What each loses on power failure:
 * - `sync`: nothing acknowledged; the ack follows `fdatasync`, and concurrent
 *   appends share one sync per file (group commit).
 * - `interval`: up to `flushIntervalMs` of acknowledged appends; the ack
 *   follows the write into the page cache, a timer syncs.
 * - `os`: whatever the kernel had not written back (typically up to 30 s);
 *   the ack follows the write into the page cache, segments are synced only
 *   when rolled and on close.
 * A process crash (kill -9) loses nothing in any mode: the page cache
 * survives the process.
 */
export const FlushMode = { SYNC: 'sync', INTERVAL: 'interval', OS: 'os' } as const;
/** One of the {@link FlushMode} values. */
export type FlushMode = (typeof FlushMode)[keyof typeof FlushMode];

/** Per-topic storage settings (Kafka's topic-level configs, renamed with units last). */
export interface TopicConfig {
  /**
   * Largest segment file, in bytes (Kafka's `segment.bytes`): an append that
   * would grow the active segment past it starts a new one.
   * Range 1024..2^31-1. @default 1073741824 (1 GiB)
   */
  segmentBytes: number;
  /**
   * Age at which the active segment is rolled, in ms (`segment.ms`): an
   * append whose largest timestamp is this much later than the segment's
   * first batch starts a new segment, so that time retention can delete the
   * old one. Checked on append, as Kafka does: an idle segment is not rolled.
   * Range 1..2^53-1. @default 604800000 (7 days)
   */
  segmentMs: number;
  /**
   * Largest offset index and time index of one segment, in bytes
   * (`segment.index.bytes`); a full index starts a new segment. Offset-index
   * entries are 8 bytes, time-index entries 12.
   * Range 64..2^31-1. @default 10485760 (10 MiB)
   */
  segmentIndexBytes: number;
  /**
   * Bytes of log between two index entries (`index.interval.bytes`):
   * smaller means faster seeks and a bigger index. Range 0..2^31-1. @default 4096
   */
  indexIntervalBytes: number;
  /**
   * Largest record batch accepted, in bytes, with its 12-byte log overhead
   * (`max.message.bytes`); it also bounds one record, which travels in a
   * batch. Range 64..2^31-1. @default 1048588
   */
  maxMessageBytes: number;
  /** When an append is acknowledged; see {@link FlushMode}. @default 'sync' */
  flushMode: FlushMode;
  /** With flushMode `interval`, time between syncs, in ms (`flush.ms`). Range 1..86400000. @default 1000 */
  flushIntervalMs: number;
  /**
   * How long records are kept, in ms (`retention.ms`): a segment other than
   * the active one whose largest record timestamp is older than this is
   * deleted, whole. -1 keeps records forever. Range -1..2^53-1. @default 604800000 (7 days)
   */
  retentionMs: number;
  /**
   * Most bytes a partition keeps (`retention.bytes`): the oldest segments
   * (never the active one) are deleted, whole, while the partition stays
   * above it without them. -1 for no limit. Range -1..2^53-1. @default -1
   */
  retentionBytes: number;
  /**
   * Message-ID dedup window, in ms (like NATS JetStream's `duplicate_window`):
   * a record whose `ce_id` header was appended to this topic within the
   * window is acknowledged with the original's partition and offset and not
   * written again. 0 turns it off. Range 0..604800000. @default 0
   */
  dedupWindowMs: number;
  /** Most message IDs the dedup window remembers per topic; the oldest go first. Range 1..10000000. @default 100000 */
  dedupWindowIdsMax: number;
  /**
   * Codec batches are stored in (Kafka's `compression.type`): `producer`
   * keeps each batch as the producer compressed it; `none`, `gzip`,
   * `snappy`, `lz4` or `zstd` recompresses every batch in another codec on
   * append (CPU on the append path, as in Kafka). @default 'producer'
   */
  compression: TopicCompression;
  /**
   * What happens to old records (Kafka's `cleanup.policy`): `delete` removes
   * whole segments by age and size (retentionMs, retentionBytes); `compact`
   * keeps, in the segments behind the active one, only the latest record of
   * each key, and never deletes by age or size; `compact,delete` does both
   * (src/log/cleaner/). @default 'delete'
   */
  cleanupPolicy: CleanupPolicy;
  /**
   * How long a tombstone (a record with a null value) of a compacted topic is
   * kept after the cleaner first reached the segment holding it, in ms
   * (`delete.retention.ms`): consumers that read the topic from the start
   * within this time see the delete. Range 0..2^53-1. @default 86400000 (1 day)
   */
  deleteRetentionMs: number;
  /**
   * Share of a compacted partition's cleanable bytes that must be dirty (not
   * yet cleaned) before the cleaner takes it (`min.cleanable.dirty.ratio`).
   * Range 0..1. @default 0.5
   */
  minCleanableDirtyRatio: number;
  /**
   * Youngest a record may be (by its segment's largest timestamp) to be
   * compacted away, in ms (`min.compaction.lag.ms`): segments with newer
   * records are left dirty. Range 0..2^53-1. @default 0
   */
  minCompactionLagMs: number;
}

/** A topic's {@link TopicConfig.cleanupPolicy}, Kafka's `cleanup.policy` with its two values in a fixed order. */
export type CleanupPolicy = 'delete' | 'compact' | 'compact,delete';

/** A topic's {@link TopicConfig.compression}: `producer`, or the codec every batch is stored in. */
export type TopicCompression = 'producer' | 'none' | 'gzip' | 'snappy' | 'lz4' | 'zstd';

/** Consumer-group coordinator settings (Kafka's `group.*` and `offsets.*` broker configs). */
export interface GroupCoordinatorOptions {
  /** Smallest session timeout a member may ask for, in ms (`group.min.session.timeout.ms`). Range 1..86400000. @default 6000 */
  minSessionTimeoutMs?: number;
  /** Largest session timeout a member may ask for, in ms (`group.max.session.timeout.ms`). Range 1..86400000. @default 1800000 */
  maxSessionTimeoutMs?: number;
  /**
   * How long the first rebalance of an empty group waits for more members,
   * in ms (`group.initial.rebalance.delay.ms`): the wait starts again, by
   * this much, whenever another member joins meanwhile, up to the members'
   * longest rebalance timeout. Kafka's broker default is 3000, and
   * `concordat broker` (a log served to Kafka clients) defaults to 3000 too;
   * 0 here suits a log used in process, whose consumers start together
   * anyway. Range 0..600000. @default 0
   */
  initialRebalanceDelayMs?: number;
  /** Most members in one group (`group.max.size`). Range 1..100000. @default 1000 */
  groupMaxSize?: number;
  /** Most groups the coordinator keeps. Range 1..1000000. @default 10000 */
  groupsMax?: number;
  /** Longest metadata string of a committed offset, in bytes (`offset.metadata.max.bytes`). Range 0..1048576. @default 4096 */
  offsetMetadataMaxBytes?: number;
  /**
   * How long the committed offsets of a group without members are kept after
   * its last commit, in ms (`offsets.retention.minutes`, KIP-211).
   * Range 60000..2^53-1. @default 604800000 (7 days)
   */
  offsetsRetentionMs?: number;
  /**
   * Size at which the committed-offsets log is compacted, in bytes: a
   * snapshot of the live offsets is written and a new, empty log started.
   * Range 64 KiB..2^31-1. @default 16777216 (16 MiB)
   */
  offsetsLogBytesMax?: number;
}

/** Kafka transaction coordinator settings (Kafka's `transaction.*` and `transactional.id.*` broker configs). */
export interface TransactionCoordinatorOptions {
  /**
   * Longest `transaction.timeout.ms` a transactional producer may ask for, in
   * ms (`transaction.max.timeout.ms`); a longer one gets INVALID_TRANSACTION_TIMEOUT.
   * Range 1000..2^31-1. @default 900000 (15 min)
   */
  transactionMaxTimeoutMs?: number;
  /**
   * How often ongoing transactions past their timeout are looked for and
   * aborted, in ms (`transaction.abort.timed.out.transaction.cleanup.interval.ms`).
   * Range 10..3600000. @default 10000
   */
  abortTimedOutTransactionsIntervalMs?: number;
  /**
   * How long the state of a transactional ID with no transaction in progress
   * is kept after its last use, in ms (`transactional.id.expiration.ms`).
   * Range 1000..2^53-1. @default 604800000 (7 days)
   */
  transactionalIdExpirationMs?: number;
  /** Most transactional IDs the coordinator keeps; InitProducerId for one more is refused. Range 1..1000000. @default 10000 */
  transactionalIdsMax?: number;
}

/** Options of `LogManager.open`. */
export interface LogManagerOptions {
  /** Directory holding the topics' partition directories, `topics.json` and `.groups/`. Required. */
  dataDir: string;
  /** Config of a topic whose creator gives none (each field overridable per topic). */
  topicDefaults?: Partial<TopicConfig>;
  /** Most partitions one topic may have. Range 1..100000. @default 1000 */
  partitionsPerTopicMax?: number;
  /** Most topics. Range 1..1000000. @default 10000 */
  topicsMax?: number;
  /**
   * Bytes of appends queued on one partition behind the one being written; an
   * append beyond it fails with LIMIT_EXCEEDED (retriable).
   * Range 1 MiB..2^31-1. @default 67108864 (64 MiB)
   */
  appendQueueBytesMax?: number;
  /** Upper bound of one read's `maxBytes`; a larger request is lowered to it (Kafka's `fetch.max.bytes`). Range 1 KiB..2^31-1. @default 52428800 */
  readBytesMax?: number;
  /** Upper bound of one read's `maxWaitMs`, in ms; more fails with LIMIT_EXCEEDED. Range 0..3600000. @default 600000 */
  readWaitMsMax?: number;
  /** Reads waiting (long poll) on one partition at once; one more fails with LIMIT_EXCEEDED (retriable). Range 1..1000000. @default 10000 */
  readWaitersMax?: number;
  /** Largest decompressed size of one record batch when the log decodes it, in bytes. Range 1 KiB..2^31-1. @default 268435456 */
  decompressedBatchBytesMax?: number;
  /**
   * Segment files the log keeps open at once. Files are opened on use and
   * the least recently used idle one is closed to make room; when every open
   * file is in use, the next use waits. Index files are never held open.
   * Range 8..1000000. @default 4096
   */
  openFilesMax?: number;
  /**
   * Memory for the offset and time indexes of rolled segments, in bytes:
   * they are loaded on first use and the least recently used are dropped
   * beyond this (the active segments' indexes always stay). Range 1 MiB..2^31-1. @default 67108864 (64 MiB)
   */
  indexCacheBytesMax?: number;
  /**
   * How often each partition's recovery point is checkpointed, in ms (Kafka's
   * `log.flush.offset.checkpoint.interval.ms`): after a crash only the bytes
   * past it are validated. Range 100..86400000. @default 60000
   */
  recoveryCheckpointIntervalMs?: number;
  /** How often retention is enforced, in ms (`log.retention.check.interval.ms`). Range 100..86400000. @default 300000 */
  retentionCheckIntervalMs?: number;
  /**
   * How long the state of an idempotent producer that no longer appends is
   * kept, in ms (`producer.id.expiration.ms`); after it, the producer's next
   * batch is accepted with any sequence number. Range 1000..2^53-1. @default 86400000 (1 day)
   */
  producerIdExpirationMs?: number;
  /**
   * Idempotent producers remembered per partition; beyond it the least
   * recently appending one is forgotten (as if expired). Range 1..1000000. @default 10000
   */
  producersPerPartitionMax?: number;
  /**
   * Memory of the log cleaner's offset map, in bytes (Kafka's
   * `log.cleaner.dedupe.buffer.size`): 24 bytes per distinct key, filled to
   * 90%; a dirty section with more keys is cleaned in several passes.
   * Range 1 KiB..2^31-1. @default 33554432 (32 MiB, about 1.4 million keys)
   */
  cleanerOffsetMapBytes?: number;
  /**
   * How often the log cleaner looks for compacted partitions to clean, in ms
   * (`log.cleaner.backoff.ms`). Range 100..86400000. @default 15000
   */
  cleanerBackoffMs?: number;
  groups?: GroupCoordinatorOptions;
  transactions?: TransactionCoordinatorOptions;
}

const INT32_MAX = 2 ** 31 - 1;
const SAFE_MAX = Number.MAX_SAFE_INTEGER;
const DAY_MS = 24 * 60 * 60 * 1000;

/** Kafka's defaults, with flushMode 'sync' (Kafka leaves flushing to the OS and relies on replication; a single node cannot). */
export const TOPIC_CONFIG_DEFAULTS: Readonly<TopicConfig> = Object.freeze({
  segmentBytes: 1024 * 1024 * 1024,
  segmentMs: 7 * DAY_MS,
  segmentIndexBytes: 10 * 1024 * 1024,
  indexIntervalBytes: 4096,
  maxMessageBytes: 1_048_588,
  flushMode: FlushMode.SYNC,
  flushIntervalMs: 1000,
  retentionMs: 7 * DAY_MS,
  retentionBytes: -1,
  dedupWindowMs: 0,
  dedupWindowIdsMax: 100_000,
  compression: 'producer',
  cleanupPolicy: 'delete',
  deleteRetentionMs: DAY_MS,
  minCleanableDirtyRatio: 0.5,
  minCompactionLagMs: 0,
});

const topicConfigShape = {
  segmentBytes: z.number().int().min(1024).max(INT32_MAX),
  segmentMs: z.number().int().min(1).max(SAFE_MAX),
  segmentIndexBytes: z.number().int().min(64).max(INT32_MAX),
  indexIntervalBytes: z.number().int().min(0).max(INT32_MAX),
  maxMessageBytes: z.number().int().min(64).max(INT32_MAX),
  flushMode: z.enum([FlushMode.SYNC, FlushMode.INTERVAL, FlushMode.OS]),
  flushIntervalMs: z.number().int().min(1).max(86_400_000),
  retentionMs: z.number().int().min(-1).max(SAFE_MAX),
  retentionBytes: z.number().int().min(-1).max(SAFE_MAX),
  dedupWindowMs: z
    .number()
    .int()
    .min(0)
    .max(7 * DAY_MS),
  dedupWindowIdsMax: z.number().int().min(1).max(10_000_000),
  compression: z.enum(['producer', 'none', 'gzip', 'snappy', 'lz4', 'zstd']),
  cleanupPolicy: z.enum(['delete', 'compact', 'compact,delete']),
  deleteRetentionMs: z.number().int().min(0).max(SAFE_MAX),
  minCleanableDirtyRatio: z.number().min(0).max(1),
  minCompactionLagMs: z.number().int().min(0).max(SAFE_MAX),
};

const partialTopicConfigSchema = z.strictObject(topicConfigShape).partial();
const topicConfigSchema = z.strictObject(topicConfigShape);

const GROUPS_DEFAULTS = {
  minSessionTimeoutMs: 6000,
  maxSessionTimeoutMs: 1_800_000,
  initialRebalanceDelayMs: 0,
  groupMaxSize: 1000,
  groupsMax: 10_000,
  offsetMetadataMaxBytes: 4096,
  offsetsRetentionMs: 7 * DAY_MS,
  offsetsLogBytesMax: 16 * 1024 * 1024,
} as const;

const groupsSchema = z
  .strictObject({
    minSessionTimeoutMs: z.number().int().min(1).max(86_400_000).default(GROUPS_DEFAULTS.minSessionTimeoutMs),
    maxSessionTimeoutMs: z.number().int().min(1).max(86_400_000).default(GROUPS_DEFAULTS.maxSessionTimeoutMs),
    initialRebalanceDelayMs: z.number().int().min(0).max(600_000).default(GROUPS_DEFAULTS.initialRebalanceDelayMs),
    groupMaxSize: z.number().int().min(1).max(100_000).default(GROUPS_DEFAULTS.groupMaxSize),
    groupsMax: z.number().int().min(1).max(1_000_000).default(GROUPS_DEFAULTS.groupsMax),
    offsetMetadataMaxBytes: z.number().int().min(0).max(1_048_576).default(GROUPS_DEFAULTS.offsetMetadataMaxBytes),
    offsetsRetentionMs: z.number().int().min(60_000).max(SAFE_MAX).default(GROUPS_DEFAULTS.offsetsRetentionMs),
    offsetsLogBytesMax: z
      .number()
      .int()
      .min(64 * 1024)
      .max(INT32_MAX)
      .default(GROUPS_DEFAULTS.offsetsLogBytesMax),
  })
  .refine((groups) => groups.minSessionTimeoutMs <= groups.maxSessionTimeoutMs, {
    message: 'minSessionTimeoutMs must not exceed maxSessionTimeoutMs',
  });

const TRANSACTIONS_DEFAULTS = {
  transactionMaxTimeoutMs: 900_000,
  abortTimedOutTransactionsIntervalMs: 10_000,
  transactionalIdExpirationMs: 7 * DAY_MS,
  transactionalIdsMax: 10_000,
} as const;

const transactionsSchema = z.strictObject({
  transactionMaxTimeoutMs: z.number().int().min(1000).max(INT32_MAX).default(TRANSACTIONS_DEFAULTS.transactionMaxTimeoutMs),
  abortTimedOutTransactionsIntervalMs: z.number().int().min(10).max(3_600_000).default(TRANSACTIONS_DEFAULTS.abortTimedOutTransactionsIntervalMs),
  transactionalIdExpirationMs: z.number().int().min(1000).max(SAFE_MAX).default(TRANSACTIONS_DEFAULTS.transactionalIdExpirationMs),
  transactionalIdsMax: z.number().int().min(1).max(1_000_000).default(TRANSACTIONS_DEFAULTS.transactionalIdsMax),
});

const schema = z.strictObject({
  dataDir: z.string().min(1),
  topicDefaults: partialTopicConfigSchema.default({}),
  partitionsPerTopicMax: z.number().int().min(1).max(100_000).default(1000),
  topicsMax: z.number().int().min(1).max(1_000_000).default(10_000),
  appendQueueBytesMax: z
    .number()
    .int()
    .min(1024 * 1024)
    .max(INT32_MAX)
    .default(64 * 1024 * 1024),
  readBytesMax: z
    .number()
    .int()
    .min(1024)
    .max(INT32_MAX)
    .default(50 * 1024 * 1024),
  readWaitMsMax: z.number().int().min(0).max(3_600_000).default(600_000),
  readWaitersMax: z.number().int().min(1).max(1_000_000).default(10_000),
  decompressedBatchBytesMax: z
    .number()
    .int()
    .min(1024)
    .max(INT32_MAX)
    .default(256 * 1024 * 1024),
  openFilesMax: z.number().int().min(8).max(1_000_000).default(4096),
  indexCacheBytesMax: z
    .number()
    .int()
    .min(1024 * 1024)
    .max(INT32_MAX)
    .default(64 * 1024 * 1024),
  recoveryCheckpointIntervalMs: z.number().int().min(100).max(86_400_000).default(60_000),
  retentionCheckIntervalMs: z.number().int().min(100).max(86_400_000).default(300_000),
  producerIdExpirationMs: z.number().int().min(1000).max(SAFE_MAX).default(DAY_MS),
  producersPerPartitionMax: z.number().int().min(1).max(1_000_000).default(10_000),
  cleanerOffsetMapBytes: z
    .number()
    .int()
    .min(1024)
    .max(INT32_MAX)
    .default(32 * 1024 * 1024),
  cleanerBackoffMs: z.number().int().min(100).max(86_400_000).default(15_000),
  groups: groupsSchema.default({ ...GROUPS_DEFAULTS }),
  transactions: transactionsSchema.default({ ...TRANSACTIONS_DEFAULTS }),
});

/** {@link GroupCoordinatorOptions} with every field present and checked. */
export type CompiledGroupCoordinatorOptions = Required<GroupCoordinatorOptions>;
/** {@link TransactionCoordinatorOptions} with every field present and checked. */
export type CompiledTransactionCoordinatorOptions = Required<TransactionCoordinatorOptions>;

/** {@link LogManagerOptions} with every default applied. */
export interface CompiledLogManagerOptions {
  dataDir: string;
  /** Complete topic config: the built-in defaults overridden by `topicDefaults`. */
  topicDefaults: Readonly<TopicConfig>;
  partitionsPerTopicMax: number;
  topicsMax: number;
  appendQueueBytesMax: number;
  readBytesMax: number;
  readWaitMsMax: number;
  readWaitersMax: number;
  decompressedBatchBytesMax: number;
  openFilesMax: number;
  indexCacheBytesMax: number;
  recoveryCheckpointIntervalMs: number;
  retentionCheckIntervalMs: number;
  producerIdExpirationMs: number;
  producersPerPartitionMax: number;
  cleanerOffsetMapBytes: number;
  cleanerBackoffMs: number;
  groups: Readonly<CompiledGroupCoordinatorOptions>;
  transactions: Readonly<CompiledTransactionCoordinatorOptions>;
}

/** Validates and fills in {@link LogManagerOptions}. @throws ConcordatError CONFIG_INVALID naming the option */
export function compileLogManagerOptions(options: LogManagerOptions): CompiledLogManagerOptions {
  const parsed = compileOptions(schema, options, 'log');
  const topicDefaults = Object.freeze({ ...TOPIC_CONFIG_DEFAULTS, ...stripUndefined(parsed.topicDefaults) });
  return { ...parsed, topicDefaults, groups: Object.freeze({ ...parsed.groups }), transactions: Object.freeze({ ...parsed.transactions }) };
}

/**
 * A topic's complete config: `defaults` overridden by `overrides`.
 * @throws ConcordatError CONFIG_INVALID naming the option (`topic.<name>`);
 *   the log manager re-throws it as INVALID_CONFIG, Kafka's name for it.
 */
export function compileTopicConfig(overrides: Partial<TopicConfig> | undefined, defaults: Readonly<TopicConfig>): TopicConfig {
  const partial = compileOptions(partialTopicConfigSchema, overrides ?? {}, 'topic');
  return compileOptions(topicConfigSchema, { ...defaults, ...stripUndefined(partial) }, 'topic');
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
