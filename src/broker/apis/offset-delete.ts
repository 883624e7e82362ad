/**
 * OffsetDelete (key 47), v0: removes a consumer group's committed offsets of
 * some partitions (KIP-496). librdkafka 1.6+ (`rd_kafka_DeleteConsumerGroupOffsets`)
 * sends v0; kafkajs 2.2.4 and kafka-python 2.0.2 do not have it.
 *
 *   OffsetDelete Request (Version: 0) => group_id [topics]
 *     group_id => STRING
 *     topics => name [partitions]
 *       name => STRING
 *       partitions => partition_index
 *         partition_index => INT32
 *
 *   OffsetDelete Response (Version: 0) => error_code throttle_time_ms [topics]
 *     error_code => INT16
 *     throttle_time_ms => INT32
 *     topics => name [partitions]
 *       name => STRING
 *       partitions => partition_index error_code
 *         partition_index => INT32
 *         error_code => INT16
 *
 * Kafka's rules (GroupCoordinator.deleteOffsets): an Empty group loses the
 * offsets named; a consumer group with members keeps those of the topics
 * its members subscribe to (GROUP_SUBSCRIBED_TO_TOPIC per partition);
 * another group with members is refused whole (NON_EMPTY_GROUP); an unknown
 * group is GROUP_ID_NOT_FOUND. A partition of a topic that does not exist
 * is UNKNOWN_TOPIC_OR_PARTITION.
 *
 * @module
 */

import { AclOperation, groupAuthorized, topicAuthorized } from '../acl/index.js';
import { ConcordatError } from '../../errors.js';
import { KafkaError, kafkaErrorCodeOf, kafkaErrorCodeOfName } from '../codec/error-codes.js';
import { defineApi } from './api.js';

/** A OffsetDelete request body, decoded (grammar in the file header). */
export interface OffsetDeleteRequest {
  groupId: string;
  topics: { name: string; partitions: number[] }[];
}

/** A OffsetDelete response body, to encode (grammar in the file header). */
export interface OffsetDeleteResponse {
  errorCode: number;
  topics: { name: string; partitions: { partitionIndex: number; errorCode: number }[] }[];
}

/** The OffsetDelete API (key 47): its versions, request decoder, handler and response encoder; the grammar is in the file header. */
export const offsetDelete = defineApi<OffsetDeleteRequest, OffsetDeleteResponse>({
  key: 47,
  name: 'OffsetDelete',
  minVersion: 0,
  maxVersion: 0,
  flexibleVersion: null,

  decode(reader) {
    const groupId = reader.string();
    const topics = reader.array((t) => ({ name: t.string(), partitions: t.array((p) => p.int32()) }));
    return { groupId, topics };
  },

  async handle(request, context) {
    const logManager = context.broker.logManager;
    // ACLs: Delete on the group (else GROUP_AUTHORIZATION_FAILED), Read on each topic (else TOPIC_AUTHORIZATION_FAILED, kept).
    if (!groupAuthorized(context, AclOperation.DELETE, request.groupId)) return { errorCode: KafkaError.GROUP_AUTHORIZATION_FAILED, topics: [] };
    const readable = new Set(request.topics.filter((t) => topicAuthorized(context, AclOperation.READ, t.name)).map((t) => t.name));
    const exists = (topic: string, partition: number): boolean => partition >= 0 && partition < (logManager.partitionCount(topic) ?? 0);
    const known = request.topics
      .filter((t) => readable.has(t.name))
      .flatMap((t) => t.partitions.filter((p) => exists(t.name, p)).map((partition) => ({ topic: t.name, partition })));
    let deleted: Awaited<ReturnType<typeof logManager.groups.deleteOffsets>>;
    try {
      deleted = await logManager.groups.deleteOffsets(request.groupId, known);
    } catch (error) {
      if (!(error instanceof ConcordatError)) throw error;
      return { errorCode: kafkaErrorCodeOf(error), topics: [] };
    }
    const errorOf = (topic: string, partition: number): number => {
      if (!readable.has(topic)) return KafkaError.TOPIC_AUTHORIZATION_FAILED;
      if (!exists(topic, partition)) return KafkaError.UNKNOWN_TOPIC_OR_PARTITION;
      return kafkaErrorCodeOfName(deleted.find((d) => d.topic === topic && d.partition === partition)?.errorCode ?? null);
    };
    return {
      errorCode: KafkaError.NONE,
      topics: request.topics.map((t) => ({ name: t.name, partitions: t.partitions.map((p) => ({ partitionIndex: p, errorCode: errorOf(t.name, p) })) })),
    };
  },

  encode(writer, _version, response) {
    writer.int16(response.errorCode).int32(0);
    writer.array(response.topics, (w, t) => w.string(t.name).array(t.partitions, (pw, p) => pw.int32(p.partitionIndex).int16(p.errorCode)));
  },

  errorResponse(_request, errorCode) {
    return { errorCode, topics: [] };
  },
});
