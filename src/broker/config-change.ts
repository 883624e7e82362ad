/**
 * What AlterConfigs and IncrementalAlterConfigs share: the walk over the
 * resources, which resources can change, and the change of one topic's
 * configs.
 *
 * Topic configs change durably and apply at once (LogManager.alterTopicConfig);
 * the configs AlterConfigs does not name, or IncrementalAlterConfigs
 * DELETEs, go back to the log's defaults, as in Kafka. Broker configs are
 * the broker's start-up options here: none is dynamic, so a change is
 * refused with INVALID_REQUEST (Kafka's answer to a config that cannot be
 * updated dynamically).
 *
 * @module
 */

import { AclOperation, clusterAuthorized, topicAuthorized } from './acl/index.js';
import { ConcordatError } from '../errors.js';
import { isValidTopicName } from '../log/index.js';
import { KafkaError, kafkaErrorCodeOf } from './codec/error-codes.js';
import type { RequestContext } from './context.js';
import { describeTopicConfig, LIST_CONFIGS, topicConfigFromKafka, topicOverrides, type KafkaConfigEntry } from './topic-configs.js';

/** Kafka's ConfigResource.Type codes. */
export const ConfigResourceType = { TOPIC: 2, BROKER: 4, BROKER_LOGGER: 8 } as const;

/** Kafka's AlterConfigOp.OpType (IncrementalAlterConfigs' config_operation). */
export const ConfigOperation = { SET: 0, DELETE: 1, APPEND: 2, SUBTRACT: 3 } as const;

/** The outcome of changing one resource's configs: Kafka's error code and message. */
export interface ConfigChangeResult {
  errorCode: number;
  errorMessage: string | null;
}

/** One config of an IncrementalAlterConfigs resource: its name, operation ({@link ConfigOperation}) and value. */
export interface IncrementalConfig {
  name: string;
  operation: number;
  value: string | null;
}

const OK: ConfigChangeResult = { errorCode: KafkaError.NONE, errorMessage: null };

const refuse = (errorCode: number, errorMessage: string): ConfigChangeResult => ({ errorCode, errorMessage });

/**
 * AlterConfigs' and IncrementalAlterConfigs' results, one per resource in
 * request order, each served after the one before: the ACL refusal
 * ({@link configAuthorizationRefusal}), else the answer for a resource that
 * is not a topic ({@link nonTopicResource}), else `changeTopic` of the
 * topic and its configs (in the API's own shape).
 */
export async function changeEachResource<C>(
  resources: readonly { resourceType: number; resourceName: string; configs: readonly C[] }[],
  context: RequestContext,
  changeTopic: (topic: string, configs: readonly C[]) => Promise<ConfigChangeResult>,
): Promise<(ConfigChangeResult & { resourceType: number; resourceName: string })[]> {
  const responses: (ConfigChangeResult & { resourceType: number; resourceName: string })[] = [];
  for (const { resourceType, resourceName, configs } of resources) {
    const result =
      configAuthorizationRefusal(resourceType, resourceName, AclOperation.ALTER_CONFIGS, context) ??
      nonTopicResource(resourceType, resourceName, configs.length, context) ??
      (await changeTopic(resourceName, configs));
    responses.push({ ...result, resourceType, resourceName });
  }
  return responses;
}

/**
 * The ACL refusal of a config resource, or null when the principal may
 * perform `operation` (AlterConfigs or DescribeConfigs) on it: a topic is
 * checked on the topic (TOPIC_AUTHORIZATION_FAILED), a broker or broker
 * logger on the cluster (CLUSTER_AUTHORIZATION_FAILED), as Kafka does.
 * Other resource types are left to the handler's own refusal.
 */
export function configAuthorizationRefusal(
  resourceType: number,
  resourceName: string,
  operation: typeof AclOperation.ALTER_CONFIGS | typeof AclOperation.DESCRIBE_CONFIGS,
  context: RequestContext,
): ConfigChangeResult | null {
  if (resourceType === ConfigResourceType.TOPIC) {
    return topicAuthorized(context, operation, resourceName) ? null : { errorCode: KafkaError.TOPIC_AUTHORIZATION_FAILED, errorMessage: null };
  }
  if (resourceType === ConfigResourceType.BROKER || resourceType === ConfigResourceType.BROKER_LOGGER) {
    return clusterAuthorized(context, operation) ? null : { errorCode: KafkaError.CLUSTER_AUTHORIZATION_FAILED, errorMessage: null };
  }
  return null;
}

/**
 * The refusal for a resource that is not a topic, or null for a topic.
 * A broker resource (this broker's ID, or "" for the cluster defaults) with
 * no configs to change succeeds: there is nothing dynamic to reset.
 */
export function nonTopicResource(resourceType: number, resourceName: string, configCount: number, context: RequestContext): ConfigChangeResult | null {
  const nodeId = context.broker.options.nodeId;
  switch (resourceType) {
    case ConfigResourceType.TOPIC:
      return null;
    case ConfigResourceType.BROKER:
      if (resourceName !== '' && resourceName !== String(nodeId))
        return refuse(KafkaError.INVALID_REQUEST, `this is broker ${nodeId}; alter broker '${nodeId}' or '', not '${resourceName}'`);
      if (configCount === 0) return OK;
      return refuse(
        KafkaError.INVALID_REQUEST,
        'broker configs of concordat broker are not dynamic: set them as its start-up options (see docs/broker.md) and restart it',
      );
    case ConfigResourceType.BROKER_LOGGER:
      return refuse(KafkaError.INVALID_REQUEST, 'broker loggers cannot be altered: concordat broker sets its log level with CONCORDAT_LOG_LEVEL');
    default:
      return refuse(KafkaError.INVALID_REQUEST, `unsupported resource type ${resourceType} (2 topic, 4 broker)`);
  }
}

/** AlterConfigs of one topic: `entries` become its whole set of configs. */
export function replaceTopicConfigs(
  topic: string,
  entries: readonly KafkaConfigEntry[],
  validateOnly: boolean,
  context: RequestContext,
): Promise<ConfigChangeResult> {
  const missing = topicRefusal(topic, context);
  if (missing !== null) return Promise.resolve(missing);
  return apply(topic, entries, validateOnly, context);
}

/** IncrementalAlterConfigs of one topic: SET, DELETE, APPEND or SUBTRACT each named config, keep the others. */
export function changeTopicConfigs(
  topic: string,
  changes: readonly IncrementalConfig[],
  validateOnly: boolean,
  context: RequestContext,
): Promise<ConfigChangeResult> {
  const missing = topicRefusal(topic, context);
  if (missing !== null) return Promise.resolve(missing);
  const logManager = context.broker.logManager;
  const described = logManager.describeTopic(topic);
  const current = topicOverrides(described.config, logManager.options.topicDefaults, described.extraConfigs);
  const seen = new Set<string>();
  for (const change of changes) {
    if (seen.has(change.name)) return Promise.resolve(refuse(KafkaError.INVALID_REQUEST, `config ${change.name} is named more than once`));
    seen.add(change.name);
    const problem = applyOperation(current, change, () => currentValue(topic, change.name, context));
    if (problem !== null) return Promise.resolve(problem);
  }
  return apply(
    topic,
    [...current].map(([name, value]) => ({ name, value })),
    validateOnly,
    context,
  );
}

function applyOperation(current: Map<string, string>, change: IncrementalConfig, valueNow: () => string | null): ConfigChangeResult | null {
  const { name, operation, value } = change;
  if (operation === ConfigOperation.DELETE) {
    current.delete(name);
    return null;
  }
  if (operation !== ConfigOperation.SET && operation !== ConfigOperation.APPEND && operation !== ConfigOperation.SUBTRACT) {
    return refuse(KafkaError.INVALID_REQUEST, `config ${name}: unknown operation ${operation} (0 SET, 1 DELETE, 2 APPEND, 3 SUBTRACT)`);
  }
  if (value === null) return refuse(KafkaError.INVALID_CONFIG, `config ${name} has a null value`);
  if (operation === ConfigOperation.SET) {
    current.set(name, value);
    return null;
  }
  if (!LIST_CONFIGS.has(name)) {
    return refuse(
      KafkaError.INVALID_CONFIG,
      `config ${name} is not a list: ${operation === ConfigOperation.APPEND ? 'APPEND' : 'SUBTRACT'} works on ${[...LIST_CONFIGS].join(', ')}; use SET`,
    );
  }
  const items = listItems(current.get(name) ?? valueNow() ?? '');
  const given = listItems(value);
  const next =
    operation === ConfigOperation.APPEND ? [...items, ...given.filter((item) => !items.includes(item))] : items.filter((item) => !given.includes(item));
  current.set(name, next.join(','));
  return null;
}

function listItems(value: string): string[] {
  return value
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

/** The value DescribeConfigs would report for a topic config now (its default when not set on the topic). */
function currentValue(topic: string, name: string, context: RequestContext): string | null {
  const logManager = context.broker.logManager;
  const described = logManager.describeTopic(topic);
  return describeTopicConfig(described.config, logManager.options.topicDefaults, described.extraConfigs).find((c) => c.name === name)?.value ?? null;
}

function topicRefusal(topic: string, context: RequestContext): ConfigChangeResult | null {
  if (!isValidTopicName(topic)) return refuse(KafkaError.INVALID_TOPIC_EXCEPTION, `'${topic}' is not a valid topic name`);
  if (!context.broker.logManager.hasTopic(topic)) return refuse(KafkaError.UNKNOWN_TOPIC_OR_PARTITION, `topic '${topic}' does not exist`);
  return null;
}

async function apply(topic: string, entries: readonly KafkaConfigEntry[], validateOnly: boolean, context: RequestContext): Promise<ConfigChangeResult> {
  const logManager = context.broker.logManager;
  // AlterConfigs may name a config twice, the last value winning (Kafka before 3.2); IncrementalAlterConfigs never gets here with one.
  const configs = topicConfigFromKafka(entries, logManager.options.topicDefaults, true);
  if ('refusal' in configs) return refuse(KafkaError.INVALID_CONFIG, configs.refusal);
  try {
    await logManager.alterTopicConfig(topic, configs.config, configs.extraConfigs, { validateOnly });
    return OK;
  } catch (error) {
    if (!(error instanceof ConcordatError)) throw error;
    return refuse(kafkaErrorCodeOf(error), error.message);
  }
}
