/**
 * Operations on a running Concordat: topics, consumer groups and the outbox,
 * as the `concordat topics|groups|outbox` commands and the console use them.
 * The CLI and the console only format what these return.
 *
 * - {@link LogAdmin}: topics and consumer groups, one interface with two
 *   implementations: {@link EmbeddedLogAdmin} over a log directory (or a log
 *   this process has open) and {@link KafkaLogAdmin} over `concordat broker`
 *   or Apache Kafka through kafkajs's admin client; {@link openLogAdmin}
 *   picks one.
 * - {@link outboxStatus}: backlog and oldest age per outbox shard, the
 *   shards' leases and the relays, from the database.
 *
 * See docs/cli.md for the commands and their JSON shapes (which are these
 * types, dates as ISO strings).
 *
 * @module
 */

export type {
  CreateTopicRequest,
  GroupInfo,
  GroupMemberInfo,
  GroupPartitionOffset,
  GroupSummary,
  LogAdmin,
  OffsetResetPartition,
  OffsetResetPlan,
  OffsetResetRequest,
  OffsetResetTarget,
  TopicConfigEntry,
  TopicInfo,
  TopicPartitionInfo,
  TopicPartitions,
  TopicSummary,
} from './log-admin.js';
export { EmbeddedLogAdmin, type EmbeddedLogAdminOptions } from './embedded.js';
export { KafkaLogAdmin, type KafkaLogAdminOptions } from './kafka.js';
export { openLogAdmin, type LogAdminTarget } from './open.js';
export { outboxStatus, type OutboxRelayStatus, type OutboxShardStatus, type OutboxStatus, type OutboxStatusOptions } from './outbox.js';
