/**
 * Concordat's public API. Re-exports only; each folder's index.ts is its door.
 */
export {
  ConcordatError,
  ErrorCode,
  RetriesExhaustedError,
  describeError,
  isRetriable,
  nonRetriable,
  type ConcordatErrorOptions,
} from './errors.js';
export type { DatabaseOptions, InboxOptions, RelayOptions } from './config/index.js';
export { createEnvelope, newMessageId, type Envelope, type EnvelopeInit } from './messaging/index.js';
export { openDatabase, assertPreparedTransactionsEnabled, startEmbeddedPostgres, type Database } from './persistence/index.js';
export { OutboxRelay, writeOutbox, type OutboxLag } from './outbox/index.js';
export { cleanupInbox, listDeadLetters, recordInInbox, type DeadLetter, type DeadLetterFilter } from './inbox/index.js';
export {
  AppState,
  ConcordatApp,
  DEAD_LETTER_SUFFIX,
  DeadLetterHeader,
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
  type DispatcherOptions,
  type OnApplicationStart,
  type OnApplicationStop,
  type OnMessageOptions,
  type PublishOptions,
  type RetryPolicyOptions,
} from './runtime/index.js';
export {
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
  cleanupFences,
  cleanupHistory,
  listGlobalTxs,
  retryGlobalTx,
  showGlobalTx,
  type BeginSagaOptions,
  type BeginTccOptions,
  type BeginTwoPhaseOptions,
  type CoordinatorOptions,
  type GlobalTxOutcome,
} from './transactions/index.js';
export { Broker, startBroker } from './broker/index.js';
export type { Delivery, DeliveryBatchHandler, OutgoingRecord, PublishAck, SubscribeOptions, Subscription, Transport } from './transport/index.js';
