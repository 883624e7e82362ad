export { outboxMetrics, registeredMetric, type OutboxMetrics } from './metrics.js';
export { OUTBOX_CHANNEL, OutboxNotifier, outboxNotifierFor, type LocalRelay } from './notifier.js';
export { preparedQuery } from './prepared.js';
export { OutboxRelay, type OutboxLag, type RelayDatabase, type RelayExtras } from './relay.js';
export { OUTBOX_SHARDS, shardFor } from './shard.js';
export { fairShare } from './shard-leases.js';
export { runOutboxTransaction, type OutboxTransactionEnd, type OutboxTransactionOptions, type OutboxTransactionScope } from './transaction.js';
export {
  OUTBOX_INLINE_BYTES_MAX,
  outboxInsertSql,
  quoteLiteral,
  toOutboxRecords,
  writeOutbox,
  writeOutboxRecords,
  type OutboxMessage,
  type OutboxRecord,
} from './writer.js';
