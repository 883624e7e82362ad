export { AppState, ConcordatApp, Tokens, type AppOptions } from './app.js';
export { MessageContext, runTransaction, TransactionContext, type DeliveryInfo, type PublishOptions, type TopicContext } from './context.js';
export { compileFilter, describeFilter, filterMatches, filtersDisjoint, type AttributeFilter, type CompiledFilter, type MessageFilter } from './filter.js';
export {
  assertStandardSchema,
  defineTopic,
  isTopic,
  validateLater,
  validateNow,
  type Topic,
  type TopicData,
  type TopicInput,
  type TopicOptions,
  type TopicReply,
  type TopicReplyInput,
} from './topic.js';
export { PendingRequest, Requester } from './request-reply.js';
export { REQUEST_TIMEOUT_MS_MAX, type RequestOptions, type RequestReplyOptions, type RequestStats, type UnmatchedReply } from './request-options.js';
export { ReplyAttribute, ReplyType, RequestFailedError, failedReplyRecords, sendReply, type FailedReplyData } from './reply.js';
export {
  CRON_TOPIC_PREFIX,
  cronTickId,
  MissedTick,
  OnMessage,
  Scheduled,
  Service,
  hasStartHook,
  hasStopHook,
  legacyClassDecorator,
  legacyMethodDecorator,
  type OnApplicationStart,
  type OnApplicationStop,
  type CronTick,
  type OnMessageOptions,
  type ScheduledContext,
  type ScheduledOptions,
  type ServiceOptions,
  type TypedHandlerDecorator,
} from './decorators/index.js';
export { CronSchedule } from './cron.js';
export { DISPATCH_BATCH_RECORDS_DEFAULT, Dispatcher, type DispatchStats, type DispatcherDeps, type DispatcherOptions } from './dispatcher/index.js';
export { HandlerGroupCommit } from './group-commit.js';
export { CommitStages, type CommitStage, type Deferred, type StageResult } from './commit-stages.js';
export { exploreHandlers, type ConsumerDescriptor, type HandlerDescriptor, type HandlerTable } from './explorer.js';
export {
  defineDecoratorCheck,
  defineMessageHandler,
  defineStartHook,
  getHandlers,
  getServiceMetadata,
  getStartHooks,
  ownMetadata,
  type DecoratorCheck,
  type StartHook,
  type HandlerMetadata,
  type HandlerOptions,
  type ServiceMetadata,
} from './metadata.js';
export { isDatabaseUnavailable, retryDelayMs, isLockTimeout, isTransactionConflict, isTransientConflict } from './retry.js';
export { RetryStrategy, compileRetryPolicy, type CompiledRetryPolicy, type RetryPolicyOptions } from '../config/index.js';
