export { hasStartHook, hasStopHook, type OnApplicationStart, type OnApplicationStop } from './lifecycle.js';
export { legacyClassDecorator, legacyMethodDecorator } from './legacy.js';
export { OnMessage, type OnMessageOptions, type TypedHandlerDecorator } from './on-message.js';
export { Service, type ServiceOptions } from './service.js';
export { CRON_TOPIC_PREFIX, cronTickId, MissedTick, Scheduled, type CronTick, type ScheduledContext, type ScheduledOptions } from './scheduled.js';
