/**
 * Concordat's public API. Re-exports only; each folder's index.ts is its door.
 */
// The one side effect: the decorators (Concordat's, inversify's, TypeORM's) record their metadata
// through Reflect.defineMetadata, so whoever imports Concordat gets the polyfill without a line of their own.
import 'reflect-metadata';
export {
  ConcordatError,
  ErrorCode,
  RetriesExhaustedError,
  describeError,
  isRetriable,
  nonRetriable,
  type ConcordatErrorOptions,
} from './errors.js';
export { kafkaTransportOptionsFromEnv, type DatabaseOptions, type InboxOptions, type KafkaTransportOptions, type RelayOptions } from './config/index.js';
export type { MetricsOptions } from './config/index.js';
export type { MetricsAddress, ReadinessReport } from './observability/index.js';
export type { ConsumerLag } from './transport/index.js';
export {
  createEnvelope,
  newMessageId,
  type Envelope,
  type EnvelopeInit,
  type JsonPrimitive,
  type JsonSafe,
  type JsonValue,
} from './messaging/index.js';
export { openDatabase, assertPreparedTransactionsEnabled, startEmbeddedPostgres, type Database } from './persistence/index.js';
export { OutboxRelay, writeOutbox, type OutboxLag } from './outbox/index.js';
export { cleanupInbox, listDeadLetters, recordInInbox, type DeadLetter, type DeadLetterFilter, type DedupWindow } from './inbox/index.js';
export {
  AppState,
  ConcordatApp,
  DEAD_LETTER_SUFFIX,
  DeadLetterHeader,
  REPLAY_FOR_HEADER,
  REPLAY_OF_HEADER,
  replayDeadLetters,
  runTransaction,
  MessageContext,
  OnMessage,
  RetryStrategy,
  Service,
  Tokens,
  TransactionContext,
  type AppOptions,
  type DeliveryInfo,
  type DispatcherOptions,
  type DispatchStats,
  type OnApplicationStart,
  type OnApplicationStop,
  type OnMessageOptions,
  type PublishOptions,
  type RetryPolicyOptions,
  type ServiceOptions,
} from './runtime/index.js';
export {
  BranchContext,
  BranchState,
  COORDINATOR_OPTIONS,
  Cancel,
  Compensate,
  Confirm,
  GlobalTxState,
  Prepare,
  SagaContext,
  SagaParticipant,
  Step,
  TccContext,
  TccParticipant,
  TransactionCoordinator,
  Try,
  TxMode,
  XaContext,
  XaParticipant,
  abortGlobalTx,
  beginSaga,
  beginTcc,
  beginTwoPhase,
  TwoPhasePrepareOrder,
  cleanupFences,
  cleanupHistory,
  endGlobalTx,
  listGlobalTxs,
  retryGlobalTx,
  showGlobalTx,
  type BeginSagaOptions,
  type BeginTccOptions,
  type BeginTwoPhaseOptions,
  type CoordinatorOptions,
  type GlobalTxEndState,
  type GlobalTxOutcome,
  type SagaParticipantOptions,
  type SagaStep,
  type TccBranch,
  type TccParticipantOptions,
  type TwoPhaseBranch,
  type XaParticipantOptions,
} from './transactions/index.js';
export { Broker, startBroker } from './broker/index.js';
export {
  CONSUMER_STALLED_FAILURES,
  EmbeddedTransport,
  KafkaTransport,
  OffsetReset,
  defaultTransport,
  type ConsumerFailureEvent,
  type Delivery,
  type DeliveryBatchHandler,
  type EmbeddedTransportOptions,
  type OutgoingRecord,
  type PublishAck,
  type SubscribeOptions,
  type Subscription,
  type TopicSpec,
  type Transport,
} from './transport/index.js';
