/**
 * The shapes of the log manager's API (what it is given and what it
 * reports), and its internal record of an open topic.
 */
import type { TopicConfig } from '../config/index.js';
import type { Logger } from '../observability/index.js';
import type { CompressionType } from './compression.js';
import type { DedupWindow } from './dedup-window.js';
import type { FilePoolStats } from './file-pool.js';
import type { FlushStats } from './flush.js';
import type { PartitionLog } from './partition-log.js';
import type { PartitionDescription } from './partition-log-types.js';
import type { TopicRecord } from './topic-registry.js';
import type { TransactionCoordinatorFaults } from './transactions/coordinator.js';

/** What `LogManager.open` may be given besides its options. */
export interface LogManagerDependencies {
  /** Where the log's lines go (a child with `component: 'log'` is made of it). @default the Concordat logger (pino, stderr) */
  logger?: Logger;
  /** Faults injected into the transaction coordinator (crash tests only). */
  transactionFaults?: TransactionCoordinatorFaults;
}

/** What `LogManager.createTopic` and `LogManager.ensureTopic` create. */
export interface TopicSpec {
  /** Number of partitions, 1..`partitionsPerTopicMax`; fixed for the topic's life. */
  partitions: number;
  /** Overrides of the log's topic defaults (`topicDefaults`); validated as the log options are. */
  config?: Partial<TopicConfig>;
  /** Configs stored with the topic that the log does not act on (see {@link TopicRecord.extraConfigs}). @default {} */
  extraConfigs?: Readonly<Record<string, string>>;
}

/** A topic as `LogManager.describeTopic` reports it. */
export interface TopicDescription {
  name: string;
  /** The topic's config, defaults filled in (a copy). */
  config: TopicConfig;
  /** Configs stored with the topic that the log does not act on, by name. */
  extraConfigs: Record<string, string>;
  /** One entry per partition, in partition order. */
  partitions: PartitionDescription[];
}

/** Options of `LogManager.appendRecords`. */
export interface AppendRecordsOptions {
  /** Codec of the batch. @default 'none' */
  compression?: CompressionType;
}

/** What one run of retention did. */
export interface RetentionSummary {
  /** Segments deleted in every partition together. */
  deletedSegments: number;
  /** Bytes of their `.log` files. */
  deletedBytes: number;
  /** Groups whose committed offsets expired. */
  expiredGroups: string[];
}

/** Resource use, for tests, benchmarks and operators. */
export interface LogStats {
  flush: FlushStats;
  files: FilePoolStats;
  /** Bytes and segments of rolled segments' indexes held in memory. */
  indexCache: { bytes: number; segments: number };
}

/** An open topic: its registry record, its partitions and its dedup window (null when off). */
export interface Topic {
  record: TopicRecord;
  partitions: PartitionLog[];
  dedup: DedupWindow | null;
}
