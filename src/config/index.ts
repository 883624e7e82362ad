export { compileOptions } from './compile.js';
export {
  compileDatabaseOptions,
  DatabaseUrlOrigin,
  redactUrl,
  type CompiledDatabaseOptions,
  type DatabaseConnectRetryOptions,
  type DatabaseOptions,
} from './database-options.js';
export {
  BROKER_INITIAL_REBALANCE_DELAY_MS,
  compileBrokerOptions,
  isLoopbackHost,
  SaslMechanism,
  TlsClientAuth,
  type BrokerAuthorizerOptions,
  type BrokerOptions,
  type BrokerSaslOptions,
  type BrokerTlsOptions,
  type CompiledBrokerOptions,
  type SaslUserOptions,
} from './broker-options.js';
export { compileRelayOptions, type CompiledRelayOptions, type RelayOptions } from './relay-options.js';
export { compileInboxOptions, DEDUP_WINDOW_MS_FALLBACK, type CompiledInboxOptions, type InboxOptions } from './inbox-options.js';
export {
  compileLogManagerOptions,
  compileTopicConfig,
  FlushMode,
  TOPIC_CONFIG_DEFAULTS,
  type CompiledGroupCoordinatorOptions,
  type CompiledLogManagerOptions,
  type CompiledTransactionCoordinatorOptions,
  type GroupCoordinatorOptions,
  type LogManagerOptions,
  type TopicCompression,
  type CleanupPolicy,
  type TopicConfig,
  type TransactionCoordinatorOptions,
} from './log-options.js';
export {
  compileKafkaTransportOptions,
  kafkaTransportOptionsFromEnv,
  KafkaSaslMechanism,
  type CompiledKafkaTransportOptions,
  type KafkaConsumerOptions,
  type KafkaProducerOptions,
  type KafkaSaslOptions,
  type KafkaTlsOptions,
  type KafkaTransportOptions,
} from './kafka-transport-options.js';
export { compileMetricsOptions, type CompiledMetricsOptions, type MetricsOptions } from './metrics-options.js';
export {
  compileEmbeddedTransportLogOptions,
  compileEmbeddedTransportOptions,
  type CompiledEmbeddedConsumerOptions,
  type CompiledEmbeddedTransportLogOptions,
  type CompiledEmbeddedTransportOptions,
  type EmbeddedConsumerOptions,
  type EmbeddedProducerOptions,
  type EmbeddedTransportLogOptions,
  type EmbeddedTransportOverLogOptions,
  type OffsetResetEvent,
} from './embedded-transport-options.js';
export { compileConsoleOptions, type CompiledConsoleOptions, type ConsoleOptions } from './console-options.js';
export { compileCoordinatorOptions, type CompiledCoordinatorOptions, type CoordinatorOptions } from './coordinator-options.js';
export { compileRetryPolicy, RetryStrategy, type CompiledRetryPolicy, type RetryPolicyOptions } from './retry-options.js';
export {
  compileDispatcherOptions,
  DISPATCH_BATCH_RECORDS_DEFAULT,
  DISPATCH_CONCURRENT_TRANSACTIONS_DEFAULT,
  type CompiledDispatcherOptions,
  type DispatcherOptions,
} from './dispatcher-options.js';
export {
  BATCH_RECORDS,
  compileSubscribeHandlerOptions,
  PER_PARTITION_CONCURRENCY,
  type CompiledSubscribeHandlerOptions,
  type SubscribeHandlerOptions,
} from './subscribe-options.js';
export { compileAppCoreOptions, type AppCoreOptions, type CompiledAppCoreOptions } from './app-options.js';
export { compileXaParticipantOptions, type CompiledXaParticipantOptions, type XaParticipantOptions } from './xa-participant-options.js';
export { compileEmbeddedPostgresOptions, type CompiledEmbeddedPostgresOptions, type EmbeddedPostgresOptions } from './embedded-postgres-options.js';
