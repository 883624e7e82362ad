/**
 * CreateTopics (key 19), v0-v6 (v5+ flexible, KIP-482). kafkajs sends up to
 * v3, librdkafka 2.x v4.
 *
 *   CreateTopics Request (Version: 0) => [topics] timeout_ms
 *     topics => name num_partitions replication_factor [assignments] [configs]
 *       name => STRING
 *       num_partitions => INT32
 *       replication_factor => INT16
 *       assignments => partition_index [broker_ids]
 *         partition_index => INT32
 *         broker_ids => INT32
 *       configs => name value
 *         name => STRING
 *         value => NULLABLE_STRING
 *     timeout_ms => INT32
 *   CreateTopics Request (Version: 1-4) => [topics] timeout_ms validate_only
 *     validate_only => BOOLEAN
 *   CreateTopics Request (Version: 5) => the same in compact strings and arrays, with a TAG_BUFFER after each struct
 *
 *   CreateTopics Response (Version: 0) => [topics]
 *     topics => name error_code
 *       name => STRING
 *       error_code => INT16
 *   CreateTopics Response (Version: 1) => [topics]
 *     topics => name error_code error_message
 *       error_message => NULLABLE_STRING
 *   CreateTopics Response (Version: 2-4) => throttle_time_ms [topics]
 *     throttle_time_ms => INT32
 *   CreateTopics Response (Version: 5) => throttle_time_ms [topics] TAG_BUFFER
 *     topics => name error_code error_message num_partitions replication_factor [configs] TAG_BUFFER
 *       num_partitions => INT32            -1 on error
 *       replication_factor => INT16        -1 on error
 *       configs => name value read_only config_source is_sensitive TAG_BUFFER   null on error
 *
 * v6 is v5 (KIP-599: it lets the broker answer THROTTLING_QUOTA_EXCEEDED,
 * which this one never does).
 * v4 is v3 with KIP-464's meaning, which every version here has:
 * num_partitions and replication_factor -1 mean the broker's defaults
 * (`defaultPartitions`, and 1).
 *
 * One broker: replication_factor must be 1 or -1 (the default), and a manual
 * assignment may only name this broker. Topic configs use Kafka's names,
 * mapped to the log's {@link TopicConfig} by ../topic-configs.ts; an unknown
 * name, a value the log does not support or a value out of the log's range
 * is refused with INVALID_CONFIG and a message naming the config (v1+
 * carry it), and nothing is created. validate_only checks all of that too.
 *
 * @module
 */

import { topicCreateAuthorized } from '../acl/index.js';
import { compileTopicConfig } from '../../config/index.js';
import type { TopicConfig } from '../../log/index.js';
import type { Reader } from '../codec/reader.js';
import type { Writer } from '../codec/writer.js';
import { ConcordatError } from '../../errors.js';
import { KafkaError, kafkaErrorCodeOf } from '../codec/error-codes.js';
import type { RequestContext } from '../context.js';
import { describeTopicConfig, topicConfigFromKafka, type DescribedConfig } from '../topic-configs.js';
import { defineApi } from './api.js';

/** One topic of a CreateTopics request (numPartitions -1: the broker's default; a manual assignment may name only this broker). */
export interface CreatableTopic {
  name: string;
  numPartitions: number;
  replicationFactor: number;
  assignments: { partitionIndex: number; brokerIds: number[] }[];
  configs: { name: string; value: string | null }[];
}

/** A CreateTopics request body, decoded (grammar in the file header). */
export interface CreateTopicsRequest {
  topics: CreatableTopic[];
  timeoutMs: number;
  validateOnly: boolean;
}

/** One topic's outcome in the response: error code 0 and null message when created. */
export interface CreateTopicsResult {
  name: string;
  errorCode: number;
  errorMessage: string | null;
  /** v5: what the topic has (or would have, with validate_only); absent on error. */
  created?: { numPartitions: number; configs: DescribedConfig[] };
}

/** A CreateTopics response body, to encode (grammar in the file header). */
export interface CreateTopicsResponse {
  topics: CreateTopicsResult[];
}

/** The CreateTopics API (key 19): its versions, request decoder, handler and response encoder; the grammar is in the file header. */
export const createTopics = defineApi<CreateTopicsRequest, CreateTopicsResponse>({
  key: 19,
  name: 'CreateTopics',
  minVersion: 0,
  maxVersion: 6,
  flexibleVersion: 5,

  decode(reader, version) {
    if (version >= 5) return decodeFlexible(reader);
    const topics = reader.array((t) => ({
      name: t.string(),
      numPartitions: t.int32(),
      replicationFactor: t.int16(),
      assignments: t.array((a) => ({ partitionIndex: a.int32(), brokerIds: a.array((b) => b.int32()) })),
      configs: t.array((c) => ({ name: c.string(), value: c.nullableString() })),
    }));
    const timeoutMs = reader.int32();
    return { topics, timeoutMs, validateOnly: version >= 1 ? reader.boolean() : false };
  },

  async handle(request, context) {
    const counts = new Map<string, number>();
    for (const topic of request.topics) counts.set(topic.name, (counts.get(topic.name) ?? 0) + 1);
    const results: CreateTopicsResult[] = [];
    // One at a time: creations touch the topic table, and a request rarely names many.
    for (const topic of request.topics) {
      if (counts.get(topic.name)! > 1) {
        results.push({ name: topic.name, errorCode: KafkaError.INVALID_REQUEST, errorMessage: 'topic named more than once' });
        continue;
      }
      results.push(await createOne(topic, request.validateOnly, context));
    }
    return { topics: results };
  },

  encode(writer, version, response) {
    if (version >= 5) {
      encodeFlexible(writer, response);
      return;
    }
    if (version >= 2) writer.int32(0);
    writer.array(response.topics, (w, topic) => {
      w.string(topic.name).int16(topic.errorCode);
      if (version >= 1) w.nullableString(topic.errorMessage);
    });
  },

  errorResponse(request, errorCode) {
    return { topics: request.topics.map((t) => ({ name: t.name, errorCode, errorMessage: null })) };
  },
});

function decodeFlexible(reader: Reader): CreateTopicsRequest {
  const topics = reader.compactArray((t) => {
    const topic = {
      name: t.compactString(),
      numPartitions: t.int32(),
      replicationFactor: t.int16(),
      assignments: t.compactArray((a) => {
        const assignment = { partitionIndex: a.int32(), brokerIds: a.compactArray((b) => b.int32()) };
        a.taggedFields();
        return assignment;
      }),
      configs: t.compactArray((c) => {
        const config = { name: c.compactString(), value: c.compactNullableString() };
        c.taggedFields();
        return config;
      }),
    };
    t.taggedFields();
    return topic;
  });
  const request = { topics, timeoutMs: reader.int32(), validateOnly: reader.boolean() };
  reader.taggedFields();
  return request;
}

function encodeFlexible(writer: Writer, response: CreateTopicsResponse): void {
  writer.int32(0);
  writer.compactArray(response.topics, (w, topic) => {
    w.compactString(topic.name).int16(topic.errorCode).compactNullableString(topic.errorMessage);
    w.int32(topic.created?.numPartitions ?? -1).int16(topic.created === undefined ? -1 : 1);
    w.compactNullableArray(topic.created?.configs ?? null, (cw, config) => {
      cw.compactString(config.name).compactNullableString(config.value).boolean(config.readOnly).int8(config.source).boolean(false).emptyTaggedFields();
    });
    w.emptyTaggedFields();
  });
  writer.emptyTaggedFields();
}

type Plan = { partitions: number; config: Partial<TopicConfig>; extraConfigs: Record<string, string> } | CreateTopicsResult;

function plan(topic: CreatableTopic, context: RequestContext): Plan {
  const nodeId = context.broker.options.nodeId;
  const refuse = (errorCode: number, errorMessage: string): CreateTopicsResult => ({ name: topic.name, errorCode, errorMessage });
  if (topic.replicationFactor !== -1 && topic.replicationFactor !== 1 && topic.assignments.length === 0) {
    return refuse(KafkaError.INVALID_REPLICATION_FACTOR, `replication factor ${topic.replicationFactor} is larger than the 1 broker`);
  }
  let partitions = topic.numPartitions === -1 ? context.broker.options.defaultPartitions : topic.numPartitions;
  if (topic.assignments.length > 0) {
    if (topic.numPartitions !== -1 || topic.replicationFactor !== -1) {
      return refuse(KafkaError.INVALID_REQUEST, 'give either an assignment or partitions and replication factor');
    }
    const indexes = topic.assignments.map((a) => a.partitionIndex).sort((a, b) => a - b);
    const valid = indexes.every((index, i) => index === i) && topic.assignments.every((a) => a.brokerIds.length === 1 && a.brokerIds[0] === nodeId);
    if (!valid) return refuse(KafkaError.INVALID_REPLICA_ASSIGNMENT, `assignments must be partitions 0..n-1 on broker ${nodeId}`);
    partitions = topic.assignments.length;
  }
  const configs = topicConfigFromKafka(topic.configs, context.broker.logManager.options.topicDefaults);
  if ('refusal' in configs) return refuse(KafkaError.INVALID_CONFIG, configs.refusal);
  return { partitions, config: configs.config, extraConfigs: configs.extraConfigs };
}

async function createOne(topic: CreatableTopic, validateOnly: boolean, context: RequestContext): Promise<CreateTopicsResult> {
  // ACLs: Create on the cluster or on the topic.
  if (!topicCreateAuthorized(context, topic.name)) return { name: topic.name, errorCode: KafkaError.TOPIC_AUTHORIZATION_FAILED, errorMessage: null };
  const planned = plan(topic, context);
  if ('errorCode' in planned) return planned;
  const logManager = context.broker.logManager;
  const defaults = logManager.options.topicDefaults;
  const created = (): CreateTopicsResult => ({
    name: topic.name,
    errorCode: KafkaError.NONE,
    errorMessage: null,
    created: { numPartitions: planned.partitions, configs: describeTopicConfig(compileTopicConfig(planned.config, defaults), defaults, planned.extraConfigs) },
  });
  try {
    if (validateOnly) {
      if (logManager.hasTopic(topic.name)) {
        return { name: topic.name, errorCode: KafkaError.TOPIC_ALREADY_EXISTS, errorMessage: `topic '${topic.name}' already exists` };
      }
      return created();
    }
    await logManager.createTopic(topic.name, planned);
    return created();
  } catch (error) {
    if (!(error instanceof ConcordatError)) throw error;
    return { name: topic.name, errorCode: kafkaErrorCodeOf(error), errorMessage: error.message };
  }
}
