/**
 * The log engine: Concordat's partitioned, durable log in Kafka's storage
 * format. Other folders (broker/, transport/) use it only through this file.
 */
export { LogCleaner, OffsetMap, CLEANER_CHECKPOINT_FILE, SWAP_RECORD_FILE, type CleanResult } from './cleaner/index.js';
export { LogManager } from './log-manager.js';
export type { AppendRecordsOptions, LogStats, RetentionSummary, TopicDescription, TopicSpec } from './log-manager-types.js';
export { IsolationLevel, type AppendResult, type PartitionDescription, type ReadOptions, type ReadResult, type RecoveryEvent } from './partition-log-types.js';
export { ControlRecordType, type AbortedTransaction, type TransactionMarker } from './transaction-index.js';
export {
  TransactionCoordinator,
  TransactionState,
  type PendingOffset,
  type TopicPartition,
  type TransactionCoordinatorFaults,
  type TransactionDescription,
} from './transactions/coordinator.js';
export { DEDUP_HEADER, type RecordLocation } from './dedup-window.js';
export { BATCHES_REMEMBERED } from './producer-state.js';
export type { FilePoolStats } from './file-pool.js';
export {
  assignOffsets,
  computeBatchCrc,
  decodeRecordBatches,
  encodeRecordBatch,
  readBatchHeader,
  validateBatchesForAppend,
  LOG_OVERHEAD,
  RECORD_BATCH_HEADER_BYTES,
  TimestampType,
  type BatchLimits,
  type DecodedBatch,
  type DecodedRecord,
  type DecodeOptions,
  type EncodeBatchOptions,
  type RecordBatchHeader,
  type RecordHeader,
  type RecordInput,
} from './record-batch.js';
export { CompressionType, compress, decompress, compressionCode, compressionFromCode } from './compression.js';
export { murmur2, partitionForKey, RoundRobinPartitioner, toPositive } from './partitioner.js';
export { validateTopicName, isValidTopicName, topicNameProblem, TOPIC_NAME_CHARACTERS, TOPIC_NAME_LENGTH_MAX } from './topic-name.js';
export type { FlushStats } from './flush.js';
export { GroupCoordinator } from './groups/coordinator.js';
export { NEW_MEMBER_JOIN_TIMEOUT_MS } from './groups/join-group.js';
export { consumerLag } from './groups/offsets.js';
export type {
  GroupDescription,
  GroupMemberDescription,
  GroupOverview,
  HeartbeatRequest,
  JoinGroupRequest,
  LeaveGroupRequest,
  LeaveGroupResult,
  OffsetCommitRequest,
  OffsetCommitResult,
  OffsetFetchRequest,
  OffsetFetchResult,
  PartitionLag,
  SyncGroupRequest,
} from './groups/requests.js';
export { GroupState, type GroupProtocol, type JoinGroupMember, type JoinGroupResult, type SyncGroupResult } from './groups/group.js';
export {
  CONSUMER_PROTOCOL_TYPE,
  decodeAssignment,
  decodeSubscription,
  encodeAssignment,
  encodeSubscription,
  type ConsumerAssignment,
  type ConsumerSubscription,
  type TopicPartitions,
} from './groups/consumer-protocol.js';
export { RangeAssignor, RoundRobinAssignor, type AssignorMember, type PartitionAssignor } from './groups/assignors/index.js';
export {
  FlushMode,
  TOPIC_CONFIG_DEFAULTS,
  type CompiledLogManagerOptions,
  type GroupCoordinatorOptions,
  type LogManagerOptions,
  type TopicConfig,
  type TransactionCoordinatorOptions,
} from '../config/index.js';
export { attachLogMetrics, FSYNC_BUCKETS_SECONDS } from './metrics.js';
export { readCheckpoint, writeCheckpoint } from './checkpoint-file.js';
