import { ConcordatError, ErrorCode } from '../errors.js';
import { topicNameProblem } from '../log/index.js';
import { PER_PARTITION_CONCURRENCY } from '../transport/index.js';
import { compileRetryPolicy, type CompiledRetryPolicy } from '../config/index.js';
import { compileFilter, describeFilter, filtersDisjoint, type CompiledFilter } from './filter.js';
import { getDecoratorChecks, getHandlers, getServiceMetadata, type HandlerMetadata } from './metadata.js';

/** One handler, resolved and validated. */
export interface HandlerDescriptor {
  serviceClass: Function;
  serviceName: string;
  topic: string;
  group: string;
  methodName: string;
  /** `Service.method`, for messages and dead-letter headers. */
  label: string;
  transactional: boolean;
  retry: CompiledRetryPolicy;
  /** Transactions of one partition in flight at once, for different keys (see `HandlerOptions.concurrency`); absent: 1. */
  perPartition?: number;
  /** Which messages of the topic it takes (see `HandlerOptions.filter`); undefined: all. */
  filter?: CompiledFilter;
  /** The payload's schema, for a typed topic (see {@link HandlerMetadata.schema}). */
  schema?: HandlerMetadata['schema'];
  invoke: HandlerMetadata['invoke'];
  invokeBatch?: HandlerMetadata['invokeBatch'];
}

/** All handlers of one consumer group: one subscription, routed by topic. */
export interface ConsumerDescriptor {
  group: string;
  /** Service name used as CloudEvents `source` when a handler of this group publishes. */
  serviceName: string;
  /** The first handler of each topic (the one that dead-letters a record no handler can decode). */
  handlers: Map<string, HandlerDescriptor>;
  /** Every handler of each topic, in declaration order; several only when their filters are disjoint. */
  routes: Map<string, HandlerDescriptor[]>;
}

/** What the explorer builds at start-up: the services, and one consumer per consumer group with its handlers by topic. */
export interface HandlerTable {
  services: Array<{ serviceClass: Function; serviceName: string }>;
  consumers: ConsumerDescriptor[];
}

/**
 * Reads the decorators of `serviceClasses` and builds the handler table.
 * Runs before any I/O at start-up, so misuse fails fast.
 *
 * @throws ConcordatError HANDLER_DEFINITION_INVALID listing every problem
 *   found: a class without `@Service`, a topic name Kafka would refuse, two
 *   handlers for one topic in one group whose filters can both match a
 *   message, a bad filter, a decorator check that failed (such
 *   as `@Try` without `@Confirm`), an invalid retry policy, the same class
 *   listed twice.
 */
export function exploreHandlers(serviceClasses: readonly Function[]): HandlerTable {
  const problems: string[] = [];
  const services: HandlerTable['services'] = [];
  const consumers = new Map<string, ConsumerDescriptor>();
  const seen = new Set<Function>();

  for (const serviceClass of serviceClasses) {
    const className = serviceClass.name || '<anonymous class>';
    if (typeof serviceClass !== 'function') {
      problems.push(`services must contain classes, got ${typeof serviceClass}`);
      continue;
    }
    if (seen.has(serviceClass)) {
      problems.push(`${className} is listed twice in services`);
      continue;
    }
    seen.add(serviceClass);
    const service = getServiceMetadata(serviceClass);
    if (service === undefined) {
      problems.push(`${className} is not a Concordat service: decorate it with @Service('<name>')`);
      continue;
    }
    services.push({ serviceClass, serviceName: service.name });
    for (const check of getDecoratorChecks(serviceClass)) {
      const problem = check(serviceClass);
      if (problem !== undefined) problems.push(`${className}: ${problem}`);
    }
    for (const handler of getHandlers(serviceClass)) {
      const label = `${className}.${handler.methodName}`;
      const descriptor = describe(serviceClass, service.name, service.group, handler, label, problems);
      if (descriptor === undefined) continue;
      let consumer = consumers.get(descriptor.group);
      if (consumer === undefined) {
        consumer = { group: descriptor.group, serviceName: service.name, handlers: new Map(), routes: new Map() };
        consumers.set(descriptor.group, consumer);
      }
      const routes = consumer.routes.get(descriptor.topic) ?? [];
      const clash = routes.find((other) => !filtersDisjoint(other.filter, descriptor.filter));
      if (clash !== undefined) {
        problems.push(clashProblem(clash, descriptor));
        continue;
      }
      const disagrees = routes.find((other) => (other.perPartition ?? 1) !== (descriptor.perPartition ?? 1));
      if (disagrees !== undefined) {
        problems.push(
          `${disagrees.label} and ${descriptor.label} both handle topic '${descriptor.topic}' in consumer group '${descriptor.group}' with different concurrency.perPartition (${disagrees.perPartition ?? 1} and ${descriptor.perPartition ?? 1}): a partition is consumed one way, give both the same value`,
        );
        continue;
      }
      consumer.routes.set(descriptor.topic, [...routes, descriptor]);
      if (!consumer.handlers.has(descriptor.topic)) consumer.handlers.set(descriptor.topic, descriptor);
    }
  }

  if (problems.length > 0) {
    throw new ConcordatError(`invalid handler definitions:\n- ${problems.join('\n- ')}`, {
      code: ErrorCode.HANDLER_DEFINITION_INVALID,
      context: { problems },
    });
  }
  return { services, consumers: [...consumers.values()] };
}

/** Two handlers of one topic in one group whose filters may both match. */
function clashProblem(first: HandlerDescriptor, second: HandlerDescriptor): string {
  const where = `both handle topic '${first.topic}' in consumer group '${first.group}'`;
  const merge = `merge them, or give one its own group with @OnMessage('${first.topic}', { group: '...' })`;
  if (first.filter === undefined && second.filter === undefined) return `${first.label} and ${second.label} ${where}: ${merge}`;
  const why =
    first.filter?.kind === 'predicate' || second.filter?.kind === 'predicate'
      ? 'a predicate filter cannot be proven disjoint from another handler, so its handler must be alone on its topic in its group'
      : `their filters (${describeFilter(first.filter)} and ${describeFilter(second.filter)}) can both match one message`;
  return `${first.label} and ${second.label} ${where}, and ${why}: give both attribute filters with different values of one attribute (such as type), ${merge}`;
}

function describe(
  serviceClass: Function,
  serviceName: string,
  serviceGroup: string,
  handler: HandlerMetadata,
  label: string,
  problems: string[],
): HandlerDescriptor | undefined {
  const topicProblem = topicNameProblem(handler.topic);
  if (topicProblem !== undefined) {
    problems.push(`${label}: ${topicProblem}`);
    return undefined;
  }
  let filter: CompiledFilter | undefined;
  if (handler.options.filter !== undefined) {
    const compiled = compileFilter(handler.options.filter);
    if (typeof compiled === 'string') {
      problems.push(`${label}: ${compiled}`);
      return undefined;
    }
    filter = compiled;
  }
  const perPartition = handler.options.concurrency?.perPartition ?? PER_PARTITION_CONCURRENCY.default;
  if (!Number.isInteger(perPartition) || perPartition < 1 || perPartition > PER_PARTITION_CONCURRENCY.max) {
    problems.push(`${label}.concurrency.perPartition: must be an integer in 1..${PER_PARTITION_CONCURRENCY.max}, got ${String(perPartition)}`);
    return undefined;
  }
  let retry: CompiledRetryPolicy;
  try {
    retry = compileRetryPolicy(handler.options.retry, `${label}.retry`);
  } catch (error) {
    problems.push((error as Error).message);
    return undefined;
  }
  return {
    serviceClass,
    serviceName,
    topic: handler.topic,
    group: (handler.options.group ?? serviceGroup) + (handler.groupSuffix ?? ''),
    methodName: handler.methodName,
    label,
    transactional: handler.options.transactional ?? true,
    retry,
    perPartition,
    ...(handler.schema !== undefined && { schema: handler.schema }),
    ...(filter !== undefined && { filter }),
    invoke: handler.invoke,
    ...(handler.invokeBatch !== undefined && { invokeBatch: handler.invokeBatch }),
  };
}
