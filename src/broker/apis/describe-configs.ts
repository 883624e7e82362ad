/**
 * DescribeConfigs (key 32), v0-v2: the configs of topics and of this broker.
 * kafkajs 2.2.4 (`admin.describeConfigs`) sends v2, librdkafka 2.0.2
 * (`rd_kafka_DescribeConfigs`, confluent-kafka's `describe_configs`) v1 with
 * include_synonyms; v3 (documentation) and v4 (flexible) are not served.
 *
 *   DescribeConfigs Request (Version: 0) => [resources]
 *     resources => resource_type resource_name [configuration_keys]
 *       resource_type => INT8           2 topic, 4 broker, 8 broker logger
 *       resource_name => STRING
 *       configuration_keys => STRING    nullable array: null asks for every config
 *   DescribeConfigs Request (Version: 1-2) => [resources] include_synonyms
 *     include_synonyms => BOOLEAN
 *
 *   DescribeConfigs Response (Version: 0) => throttle_time_ms [results]
 *     throttle_time_ms => INT32
 *     results => error_code error_message resource_type resource_name [configs]
 *       error_code => INT16
 *       error_message => NULLABLE_STRING
 *       resource_type => INT8
 *       resource_name => STRING
 *       configs => name value read_only is_default is_sensitive
 *         name => STRING
 *         value => NULLABLE_STRING
 *         read_only => BOOLEAN
 *         is_default => BOOLEAN
 *         is_sensitive => BOOLEAN
 *   DescribeConfigs Response (Version: 1-2) => throttle_time_ms [results]
 *       configs => name value read_only config_source is_sensitive [synonyms]
 *         config_source => INT8         1 topic, 4 static broker, 5 default (ConfigSource)
 *         synonyms => name value source
 *           name => STRING
 *           value => NULLABLE_STRING
 *           source => INT8
 *
 * Topics: every config of ../topic-configs.ts, with its source (a value set
 * on the topic, or the log's default) and, when asked, its synonyms (the
 * broker-level name it falls back to). Broker `nodeId`: the log's topic
 * defaults under Kafka's broker names plus the few broker options Kafka
 * has names for — nothing is invented. Broker `""` (the cluster-wide
 * dynamic defaults): none, since nothing here is dynamic. Topic configs
 * can be changed (AlterConfigs, IncrementalAlterConfigs) except those with
 * one possible value here, which are read-only, as are all broker configs;
 * none is sensitive. Unknown
 * names in configuration_keys are left out, as Kafka does. v0's is_default
 * means "not set on this resource": for a topic, any value that is not a
 * topic override.
 *
 * @module
 */

import { AclOperation } from '../acl/index.js';
import { BROKER_INITIAL_REBALANCE_DELAY_MS, compileBrokerOptions, type CompiledBrokerOptions } from '../../config/index.js';
import { isValidTopicName } from '../../log/index.js';
import { KafkaError } from '../codec/error-codes.js';
import { configAuthorizationRefusal, ConfigResourceType } from '../config-change.js';
import type { RequestContext } from '../context.js';
import { ConfigSource, describeTopicConfig, describeTopicDefaults, type DescribedConfig } from '../topic-configs.js';
import { defineApi } from './api.js';

/** One resource asked about: its type ({@link ConfigResourceType}: 2 topic, 4 broker, 8 broker logger), name, and the config keys wanted (null: all). */
export interface DescribeConfigsResource {
  resourceType: number;
  resourceName: string;
  configurationKeys: string[] | null;
}

/** A DescribeConfigs request body, decoded (grammar in the file header). */
export interface DescribeConfigsRequest {
  resources: DescribeConfigsResource[];
  includeSynonyms: boolean;
}

/** One config in the answer, with its flags (v0's read_only and is_default; is_sensitive). */
export interface DescribeConfigsEntry extends DescribedConfig {
  readOnly: boolean;
  isDefault: boolean;
  isSensitive: boolean;
}

/** One resource's answer: its error and its configs. */
export interface DescribeConfigsResult {
  errorCode: number;
  errorMessage: string | null;
  resourceType: number;
  resourceName: string;
  configs: DescribeConfigsEntry[];
}

/** A DescribeConfigs response body, to encode (grammar in the file header). */
export interface DescribeConfigsResponse {
  results: DescribeConfigsResult[];
}

/** The DescribeConfigs API (key 32): its versions, request decoder, handler and response encoder; the grammar is in the file header. */
export const describeConfigs = defineApi<DescribeConfigsRequest, DescribeConfigsResponse>({
  key: 32,
  name: 'DescribeConfigs',
  minVersion: 0,
  maxVersion: 2,
  flexibleVersion: null,

  decode(reader, version) {
    const resources = reader.array((r) => ({
      resourceType: r.int8(),
      resourceName: r.string(),
      configurationKeys: r.nullableArray((k) => k.string()),
    }));
    return { resources, includeSynonyms: version >= 1 ? reader.boolean() : false };
  },

  handle(request, context) {
    return { results: request.resources.map((resource) => describeResource(resource, request.includeSynonyms, context)) };
  },

  encode(writer, version, response) {
    writer.int32(0);
    writer.array(response.results, (w, result) => {
      w.int16(result.errorCode).nullableString(result.errorMessage).int8(result.resourceType).string(result.resourceName);
      w.array(result.configs, (cw, config) => {
        cw.string(config.name).nullableString(config.value).boolean(config.readOnly);
        if (version === 0) cw.boolean(config.isDefault);
        else cw.int8(config.source);
        cw.boolean(config.isSensitive);
        if (version >= 1) cw.array(config.synonyms, (sw, s) => sw.string(s.name).nullableString(s.value).int8(s.source));
      });
    });
  },

  errorResponse(request, errorCode) {
    return {
      results: request.resources.map((r) => ({ errorCode, errorMessage: null, resourceType: r.resourceType, resourceName: r.resourceName, configs: [] })),
    };
  },
});

function describeResource(resource: DescribeConfigsResource, includeSynonyms: boolean, context: RequestContext): DescribeConfigsResult {
  const refused = configAuthorizationRefusal(resource.resourceType, resource.resourceName, AclOperation.DESCRIBE_CONFIGS, context);
  if (refused !== null) return { ...refused, resourceType: resource.resourceType, resourceName: resource.resourceName, configs: [] };
  const answer = (configs: DescribedConfig[], isDefault: (config: DescribedConfig) => boolean): DescribeConfigsResult => {
    const wanted = resource.configurationKeys === null ? null : new Set(resource.configurationKeys);
    return {
      errorCode: KafkaError.NONE,
      errorMessage: null,
      resourceType: resource.resourceType,
      resourceName: resource.resourceName,
      configs: configs
        .filter((config) => wanted === null || wanted.has(config.name))
        .map((config) => ({
          ...config,
          synonyms: includeSynonyms ? config.synonyms : [],
          isDefault: isDefault(config),
          isSensitive: false,
        })),
    };
  };
  const refuse = (errorCode: number, errorMessage: string): DescribeConfigsResult => ({
    errorCode,
    errorMessage,
    resourceType: resource.resourceType,
    resourceName: resource.resourceName,
    configs: [],
  });
  const logManager = context.broker.logManager;
  const name = resource.resourceName;
  switch (resource.resourceType) {
    case ConfigResourceType.TOPIC: {
      if (!isValidTopicName(name)) return refuse(KafkaError.INVALID_TOPIC_EXCEPTION, `'${name}' is not a valid topic name`);
      if (!logManager.hasTopic(name)) return refuse(KafkaError.UNKNOWN_TOPIC_OR_PARTITION, `topic '${name}' does not exist`);
      const topic = logManager.describeTopic(name);
      const configs = describeTopicConfig(topic.config, logManager.options.topicDefaults, topic.extraConfigs);
      return answer(configs, (config) => config.source !== ConfigSource.TOPIC_CONFIG);
    }
    case ConfigResourceType.BROKER: {
      const nodeId = context.broker.options.nodeId;
      if (name === '') return answer([], () => true);
      if (name !== String(nodeId))
        return refuse(KafkaError.INVALID_REQUEST, `this is broker ${nodeId}; describe broker '${nodeId}' or '' (cluster defaults), not '${name}'`);
      return answer(
        describeBroker(context.broker.options, logManager.options.topicDefaults, logManager.options.groups.initialRebalanceDelayMs),
        (config) => config.source === ConfigSource.DEFAULT_CONFIG,
      );
    }
    case ConfigResourceType.BROKER_LOGGER:
      return refuse(KafkaError.INVALID_REQUEST, 'broker loggers are not described: concordat broker sets its log level with CONCORDAT_LOG_LEVEL');
    default:
      return refuse(KafkaError.INVALID_REQUEST, `unsupported resource type ${resource.resourceType} (2 topic, 4 broker)`);
  }
}

/** The broker options compiled from nothing: what "default" means for a broker config. */
const BROKER_DEFAULTS: CompiledBrokerOptions = compileBrokerOptions({});

/** Broker options Kafka has a name for, with their values here. */
const BROKER_CONFIGS: readonly { name: string; value: (options: CompiledBrokerOptions) => string }[] = [
  { name: 'auto.create.topics.enable', value: (o) => String(o.autoCreateTopics) },
  { name: 'broker.id', value: (o) => String(o.nodeId) },
  { name: 'connections.max.idle.ms', value: (o) => String(o.connectionIdleMs) },
  { name: 'connections.max.reauth.ms', value: (o) => String(o.connectionsMaxReauthMs) },
  { name: 'default.replication.factor', value: () => '1' },
  { name: 'max.connections', value: (o) => String(o.connectionsMax) },
  { name: 'num.partitions', value: (o) => String(o.defaultPartitions) },
  { name: 'queued.max.request.bytes', value: (o) => String(o.requestBytesInFlightMax) },
  { name: 'socket.request.max.bytes', value: (o) => String(o.requestBytesMax) },
];

/**
 * @param initialRebalanceDelayMs the served log's `groups.initialRebalanceDelayMs`
 *   (`group.initial.rebalance.delay.ms`; the broker's default is {@link BROKER_INITIAL_REBALANCE_DELAY_MS})
 */
function describeBroker(
  options: CompiledBrokerOptions,
  topicDefaults: Parameters<typeof describeTopicDefaults>[0],
  initialRebalanceDelayMs: number,
): DescribedConfig[] {
  const own = BROKER_CONFIGS.map(({ name, value }) => {
    const entry = {
      name,
      value: value(options),
      source: value(options) === value(BROKER_DEFAULTS) ? ConfigSource.DEFAULT_CONFIG : ConfigSource.STATIC_BROKER_CONFIG,
    };
    return { ...entry, readOnly: true, synonyms: [entry] };
  });
  const delay = {
    name: 'group.initial.rebalance.delay.ms',
    value: String(initialRebalanceDelayMs),
    source: initialRebalanceDelayMs === BROKER_INITIAL_REBALANCE_DELAY_MS ? ConfigSource.DEFAULT_CONFIG : ConfigSource.STATIC_BROKER_CONFIG,
  };
  own.push({ ...delay, readOnly: true, synonyms: [delay] });
  return [...own, ...describeTopicDefaults(topicDefaults)].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
