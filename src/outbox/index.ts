export { cancelScheduledMessage } from './cancel.js';
export { outboxMetrics, registeredMetric, type OutboxMetrics } from './metrics.js';
export { isScheduledNotification, OUTBOX_CHANNEL, OutboxNotifier, outboxNotifierFor, type LocalRelay } from './notifier.js';
export { preparedQuery } from './prepared.js';
export { ScheduledDelivery } from './scheduled.js';
export { OutboxRelay, SCHEDULED_COUNT_EXACT_MAX, type OutboxLag, type RelayDatabase, type RelayExtras, type ScheduledLag } from './relay.js';
export { OUTBOX_SHARDS, shardFor } from './shard.js';
export { fairShare } from './shard-leases.js';
export { runOutboxTransaction, type OutboxTransactionEnd, type OutboxTransactionOptions, type OutboxTransactionScope } from './transaction.js';
export {
  notifyCommitted,
  OUTBOX_INLINE_BYTES_MAX,
  outboxInsertSql,
  quoteLiteral,
  toOutboxRecords,
  writeOutbox,
  writeOutboxRecords,
  type OutboxMessage,
  type OutboxRecord,
  type Schedule,
} from './writer.js';
