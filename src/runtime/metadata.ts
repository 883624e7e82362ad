/**
 * Metadata the decorators record on classes. Decorators only record; the
 * explorer (`explorer.ts`) reads it at start-up, validates it and builds the
 * handler table.
 *
 * @module
 */

import type { StandardSchemaV1 } from '@standard-schema/spec';
import type { RetryPolicyOptions } from '../config/index.js';
import type { MessageFilter } from './filter.js';
import type { MessageContext } from './context.js';
import type { ConcordatApp } from './app.js';

/** Metadata key of a class's {@link ServiceMetadata} (`@Service`). */
export const SERVICE_METADATA = Symbol.for('concordat.service');
/** Metadata key of a class's message handlers ({@link HandlerMetadata}[]). */
export const HANDLERS_METADATA = Symbol.for('concordat.handlers');
/** Metadata key of a class's {@link DecoratorCheck}s. */
export const CHECKS_METADATA = Symbol.for('concordat.checks');
/** Metadata key of a class's {@link StartHook}s. */
export const START_HOOKS_METADATA = Symbol.for('concordat.startHooks');

/** What `@Service` records on a class. */
export interface ServiceMetadata {
  /** Service name: CloudEvents `source` of what it publishes, default consumer group. */
  name: string;
  /** Consumer group of its handlers unless a handler names its own. */
  group: string;
}

/** Options of one message handler. */
export interface HandlerOptions {
  /** Consumer group; the service's group when absent. */
  group?: string;
  /** Retry policy for a failing handler before the message is dead-lettered. */
  retry?: RetryPolicyOptions;
  /**
   * `true` (default): the handler runs in a database transaction together
   * with its inbox row and its outgoing messages: exactly-once effect.
   * `false`: no transaction and no inbox; the handler must be read-only or
   * idempotent by nature, as it may run more than once for one message
   * (at-least-once). Messages it publishes are still written to the outbox,
   * each in its own transaction.
   */
  transactional?: boolean;
  /**
   * Only messages that pass this filter reach the handler: CloudEvents
   * attributes (`{ type: 'order.placed' }`) or a predicate on the message
   * (see {@link MessageFilter}). The others are acknowledged without a
   * handler transaction or an inbox row, and counted as `filtered`.
   * Several handlers of one topic in one consumer group are allowed when no
   * message can pass two of their filters (attribute filters with different
   * values of one attribute); a predicate's handler must be alone.
   * @default every message of the topic
   */
  filter?: MessageFilter;
  /**
   * Records of one partition this handler may handle at once, for
   * different keys (Confluent parallel consumer's key ordering): a
   * service with few partitions and slow handlers (a call to another
   * system, a few ms of I/O) scales without repartitioning.
   *
   * `perPartition` N > 1: up to N handler transactions of one partition run
   * at once, each on its own connection, each holding records of keys no
   * other one holds; the records of one key still run one after another,
   * in offset order, with exactly-once effect. Records without a key are
   * each a key of their own (no order among them). The offset committed
   * is the lowest one not handled yet; after a restart or a rebalance the
   * records handled above it are delivered again and the inbox skips them.
   * Handlers of different keys must not depend on each other's order: what
   * they write for one key must not be what they write for another (else
   * they wait on each other's row locks). Each transaction in flight holds
   * a connection of `database.poolSize`: N per partition this process
   * consumes. See docs/outbox.md, "Parallel keys within a partition".
   *
   * Handlers of one topic in one consumer group (several, with filters)
   * must declare the same value. Range 1..256. @default { perPartition: 1 }
   */
  concurrency?: { perPartition?: number };
}

/** One handler as recorded on a class. */
export interface HandlerMetadata {
  topic: string;
  /**
   * The payload's schema (a typed topic's, see `defineTopic`): the
   * dispatcher validates each incoming message's data with it before the
   * handler runs, hands the handler the schema's output, and dead-letters a
   * message that fails at once (not retriable, the issues in its headers).
   */
  schema?: StandardSchemaV1;
  /** Property name of the method, for messages and dead-letter headers. */
  methodName: string;
  options: HandlerOptions;
  /**
   * Calls the handler on the service instance. `@OnMessage` calls the method;
   * other decorators (TCC participants) supply their own protocol here.
   */
  invoke: (instance: object, context: MessageContext) => Promise<void>;
  /**
   * For a handler that is not `transactional` and knows how to handle
   * several messages at once (the coordinator's replies): called with the
   * messages of one delivered batch, in order, instead of `invoke` on each.
   * If it throws, the dispatcher handles the messages one at a time with
   * `invoke` (retries, dead letters). Transactional handlers need no such
   * hook: the dispatcher runs a batch of them in one transaction itself.
   */
  invokeBatch?: (instance: object, contexts: MessageContext[]) => Promise<void>;
  /**
   * Appended to the handler's consumer group (its own or the service's), so
   * that it is consumed by a subscription of its own. For a handler whose
   * messages must never wait behind another handler's slow ones: a Kafka
   * client fetches all of one consumer's partitions together and fetches
   * again only when the last batch was handled, so one handler blocked for
   * seconds holds back every topic of its group (the 2PC participant's
   * decisions use it: a prepare waiting for a row lock must not hold back
   * the commit that releases the row).
   */
  groupSuffix?: string;
}

/**
 * The class's own metadata under `key` (reflect-metadata's `getOwnMetadata`,
 * which types it `any`), as the type its writer stored. For decorator authors.
 */
export function ownMetadata<T>(key: symbol | string, target: Function): T | undefined {
  return Reflect.getOwnMetadata(key, target) as T | undefined;
}

/** Appends a handler to the class's handler list. For decorator authors. */
export function defineMessageHandler(target: Function, handler: HandlerMetadata): void {
  const existing = ownMetadata<HandlerMetadata[]>(HANDLERS_METADATA, target) ?? [];
  Reflect.defineMetadata(HANDLERS_METADATA, [...existing, handler], target);
}

/** The handlers recorded on `target` itself (not its base classes), in declaration order; [] when none. */
export function getHandlers(target: Function): HandlerMetadata[] {
  return ownMetadata<HandlerMetadata[]>(HANDLERS_METADATA, target) ?? [];
}

/** What `@Service` recorded on `target`, or undefined for a class that is not a service. */
export function getServiceMetadata(target: Function): ServiceMetadata | undefined {
  return ownMetadata<ServiceMetadata>(SERVICE_METADATA, target);
}

/**
 * A start-up check of a class's decorators. Returns a problem description,
 * or undefined when all is well. Decorators that only make sense together
 * (`@Try` needs `@Confirm` and `@Cancel`) register one; the explorer runs them.
 */
export type DecoratorCheck = (target: Function) => string | undefined;

/** Registers a check the explorer runs on the class at start-up. For decorator authors. */
export function defineDecoratorCheck(target: Function, check: DecoratorCheck): void {
  const existing = ownMetadata<DecoratorCheck[]>(CHECKS_METADATA, target) ?? [];
  Reflect.defineMetadata(CHECKS_METADATA, [...existing, check], target);
}

/** The checks registered on `target` itself, in registration order. */
export function getDecoratorChecks(target: Function): DecoratorCheck[] {
  return ownMetadata<DecoratorCheck[]>(CHECKS_METADATA, target) ?? [];
}

/**
 * Work a decorator needs done when the app starts, for the service instance:
 * after the database is open and the relay runs, before the app consumes
 * (2PC participants check `max_prepared_transactions` and recover their
 * prepared transactions here). A hook that throws fails `app.start()`.
 */
export type StartHook = (instance: object, app: ConcordatApp) => Promise<void>;

/** Registers a start hook on the class. For decorator authors. */
export function defineStartHook(target: Function, hook: StartHook): void {
  const existing = ownMetadata<StartHook[]>(START_HOOKS_METADATA, target) ?? [];
  Reflect.defineMetadata(START_HOOKS_METADATA, [...existing, hook], target);
}

/** The start hooks registered on `target` itself, in registration order. */
export function getStartHooks(target: Function): StartHook[] {
  return ownMetadata<StartHook[]>(START_HOOKS_METADATA, target) ?? [];
}
