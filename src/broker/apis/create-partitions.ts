/**
 * CreatePartitions (key 37), v0-v3 (v2+ flexible, KIP-482): grows topics to a new partition count.
 * kafkajs 2.2.4 (`admin.createPartitions`) sends v0-v1, librdkafka
 * (`rd_kafka_CreatePartitions`, node-rdkafka's `createPartitions`) v0.
 *
 *   CreatePartitions Request (Version: 0-1) => [topics] timeout_ms validate_only
 *     topics => name count [assignments]
 *       name => STRING
 *       count => INT32                      the new total
 *       assignments => [broker_ids]         nullable: null lets the broker choose
 *         broker_ids => INT32
 *     timeout_ms => INT32
 *     validate_only => BOOLEAN
 *
 *   CreatePartitions Response (Version: 0-1) => throttle_time_ms [results]
 *     throttle_time_ms => INT32
 *     results => name error_code error_message
 *       name => STRING
 *       error_code => INT16
 *       error_message => NULLABLE_STRING
 *
 * The new partitions start empty; the existing ones are untouched; the log
 * records the count durably (LogManager.createPartitions). Consumer groups
 * take the new partitions when their leader sees the new count in Metadata
 * and rejoins (the client's job, as with Kafka). Errors, as Kafka's:
 * INVALID_PARTITIONS (not more than today, or beyond partitionsPerTopicMax),
 * UNKNOWN_TOPIC_OR_PARTITION, INVALID_REPLICA_ASSIGNMENT (an assignment per
 * new partition, each naming this broker alone), INVALID_REQUEST (a topic
 * named twice).
 *
 * v2 is v1, flexible (compact strings and arrays, a TAG_BUFFER after each
 * struct, also after each assignment); v3 is v2 (KIP-599: it allows
 * THROTTLING_QUOTA_EXCEEDED, never sent).
 * Source: clients/src/main/resources/common/message/CreatePartitions{Request,Response}.json.
 *
 * @module
 */

import { AclOperation, topicAuthorized } from '../acl/index.js';
import { ConcordatError } from '../../errors.js';
import { KafkaError, kafkaErrorCodeOf } from '../codec/error-codes.js';
import type { RequestContext } from '../context.js';
import { defineApi } from './api.js';

/** One topic of a CreatePartitions request. */
export interface CreatePartitionsTopic {
  name: string;
  count: number;
  assignments: number[][] | null;
}

/** A CreatePartitions request body, decoded (grammar in the file header). */
export interface CreatePartitionsRequest {
  topics: CreatePartitionsTopic[];
  timeoutMs: number;
  validateOnly: boolean;
}

/** One resource's or topic's result in a CreatePartitions response. */
export interface CreatePartitionsResult {
  name: string;
  errorCode: number;
  errorMessage: string | null;
}

/** A CreatePartitions response body, to encode (grammar in the file header). */
export interface CreatePartitionsResponse {
  results: CreatePartitionsResult[];
}

/** The CreatePartitions API (key 37): its versions, request decoder, handler and response encoder; the grammar is in the file header. */
export const createPartitions = defineApi<CreatePartitionsRequest, CreatePartitionsResponse>({
  key: 37,
  name: 'CreatePartitions',
  minVersion: 0,
  maxVersion: 3,
  flexibleVersion: 2,

  decode(reader) {
    const topics = reader.flexArray((t) => {
      const name = t.flexString();
      const count = t.int32();
      const assignments = t.flexNullableArray((a) => {
        const brokerIds = a.flexArray((b) => b.int32());
        a.flexTags();
        return brokerIds;
      });
      t.flexTags();
      return { name, count, assignments };
    });
    const request = { topics, timeoutMs: reader.int32(), validateOnly: reader.boolean() };
    reader.flexTags();
    return request;
  },

  async handle(request, context) {
    const counts = new Map<string, number>();
    for (const topic of request.topics) counts.set(topic.name, (counts.get(topic.name) ?? 0) + 1);
    const results: CreatePartitionsResult[] = [];
    for (const topic of request.topics) {
      if (counts.get(topic.name)! > 1) {
        results.push({ name: topic.name, errorCode: KafkaError.INVALID_REQUEST, errorMessage: `topic '${topic.name}' is named more than once` });
        continue;
      }
      results.push(await growOne(topic, request.validateOnly, context));
    }
    return { results };
  },

  encode(writer, _version, response) {
    writer.int32(0);
    writer.flexArray(response.results, (w, r) => w.flexString(r.name).int16(r.errorCode).flexNullableString(r.errorMessage).flexTags());
    writer.flexTags();
  },

  errorResponse(request, errorCode) {
    return { results: request.topics.map((t) => ({ name: t.name, errorCode, errorMessage: null })) };
  },
});

/** Why the request for `topic` is refused before the log is asked, or null. */
function refusal(topic: CreatePartitionsTopic, current: number, context: RequestContext): CreatePartitionsResult | null {
  const refuse = (errorCode: number, errorMessage: string): CreatePartitionsResult => ({ name: topic.name, errorCode, errorMessage });
  if (topic.count <= current) {
    return refuse(
      KafkaError.INVALID_PARTITIONS,
      topic.count === current
        ? `topic '${topic.name}' already has ${current} partitions`
        : `topic '${topic.name}' has ${current} partitions, more than the ${topic.count} asked for: partitions can only be added`,
    );
  }
  if (topic.assignments === null) return null;
  const nodeId = context.broker.options.nodeId;
  if (topic.assignments.length !== topic.count - current) {
    return refuse(KafkaError.INVALID_REPLICA_ASSIGNMENT, `${topic.assignments.length} assignments given for ${topic.count - current} new partitions`);
  }
  if (!topic.assignments.every((brokers) => brokers.length === 1 && brokers[0] === nodeId)) {
    return refuse(KafkaError.INVALID_REPLICA_ASSIGNMENT, `every new partition must be assigned to broker ${nodeId} alone (the one broker)`);
  }
  return null;
}

async function growOne(topic: CreatePartitionsTopic, validateOnly: boolean, context: RequestContext): Promise<CreatePartitionsResult> {
  const logManager = context.broker.logManager;
  if (!topicAuthorized(context, AclOperation.ALTER, topic.name))
    return { name: topic.name, errorCode: KafkaError.TOPIC_AUTHORIZATION_FAILED, errorMessage: null };
  const current = logManager.partitionCount(topic.name);
  if (current === undefined) {
    return { name: topic.name, errorCode: KafkaError.UNKNOWN_TOPIC_OR_PARTITION, errorMessage: `topic '${topic.name}' does not exist` };
  }
  const refused = refusal(topic, current, context);
  if (refused !== null) return refused;
  const max = logManager.options.partitionsPerTopicMax;
  if (topic.count > max) {
    return {
      name: topic.name,
      errorCode: KafkaError.INVALID_PARTITIONS,
      errorMessage: `topic '${topic.name}' cannot have ${topic.count} partitions: at most ${max} (log option partitionsPerTopicMax)`,
    };
  }
  if (validateOnly) return { name: topic.name, errorCode: KafkaError.NONE, errorMessage: null };
  try {
    await logManager.createPartitions(topic.name, topic.count);
    return { name: topic.name, errorCode: KafkaError.NONE, errorMessage: null };
  } catch (error) {
    if (!(error instanceof ConcordatError)) throw error;
    return { name: topic.name, errorCode: kafkaErrorCodeOf(error), errorMessage: error.message };
  }
}
