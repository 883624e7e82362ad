/**
 * Metadata (key 3), v0-v6: brokers, controller and topics. One broker, the
 * leader and only replica of every partition and its own controller (kafkajs
 * sends CreateTopics and InitProducerId to the controller, so the ID must be
 * one listed here).
 *
 *   Metadata Request (Version: 0) => [topics]          empty array: all topics
 *     topics => name
 *       name => STRING
 *   Metadata Request (Version: 1-3) => [topics]        null array: all topics
 *   Metadata Request (Version: 4-6) => [topics] allow_auto_topic_creation
 *     allow_auto_topic_creation => BOOLEAN
 *
 *   Metadata Response (Version: 0) => [brokers] [topics]
 *     brokers => node_id host port
 *       node_id => INT32
 *       host => STRING
 *       port => INT32
 *     topics => error_code name [partitions]
 *       error_code => INT16
 *       name => STRING
 *       partitions => error_code partition_index leader_id [replica_nodes] [isr_nodes]
 *         error_code => INT16
 *         partition_index => INT32
 *         leader_id => INT32
 *         replica_nodes => INT32
 *         isr_nodes => INT32
 *   Metadata Response (Version: 1) => [brokers] controller_id [topics]
 *     brokers => node_id host port rack
 *       rack => NULLABLE_STRING
 *     controller_id => INT32
 *     topics => error_code name is_internal [partitions]
 *       is_internal => BOOLEAN
 *   Metadata Response (Version: 2) => [brokers] cluster_id controller_id [topics]
 *     cluster_id => NULLABLE_STRING
 *   Metadata Response (Version: 3-4) => throttle_time_ms [brokers] cluster_id controller_id [topics]
 *     throttle_time_ms => INT32
 *   Metadata Response (Version: 5-6) => throttle_time_ms [brokers] cluster_id controller_id [topics]
 *       partitions => error_code partition_index leader_id [replica_nodes] [isr_nodes] [offline_replicas]
 *         offline_replicas => INT32
 *
 * @module
 */

import { AclOperation, topicAuthorized, topicCreateAuthorized } from '../acl/index.js';
import { KafkaError } from '../codec/error-codes.js';
import type { RequestContext } from '../context.js';
import { defineApi } from './api.js';

/** A Metadata request body, decoded (grammar in the file header). */
export interface MetadataRequest {
  /** null: every topic. */
  topics: string[] | null;
  allowAutoTopicCreation: boolean;
}

/** One topic in the response: its error and partition count (every partition led by this broker). */
export interface MetadataTopic {
  errorCode: number;
  name: string;
  partitions: number;
}

/** A Metadata response body, to encode (grammar in the file header). */
export interface MetadataResponse {
  nodeId: number;
  host: string;
  port: number;
  clusterId: string;
  topics: MetadataTopic[];
}

/** The Metadata API (key 3): its versions, request decoder, handler and response encoder; the grammar is in the file header. */
export const metadata = defineApi<MetadataRequest, MetadataResponse>({
  key: 3,
  name: 'Metadata',
  minVersion: 0,
  maxVersion: 6,
  flexibleVersion: null,

  decode(reader, version) {
    const topics = version === 0 ? reader.array((r) => r.string()) : reader.nullableArray((r) => r.string());
    const allowAutoTopicCreation = version >= 4 ? reader.boolean() : true;
    return { topics: version === 0 && topics!.length === 0 ? null : topics, allowAutoTopicCreation };
  },

  async handle(request, context) {
    // Every topic: only those the principal may Describe (Kafka leaves the others out silently).
    const names = request.topics ?? context.broker.log.listTopics().filter((name) => topicAuthorized(context, AclOperation.DESCRIBE, name));
    const unique = [...new Set(names)];
    // eslint-disable-next-line @typescript-eslint/await-thenable -- values and Promises mixed on purpose: a known topic resolves without waiting
    const resolved = await Promise.all(unique.map((name) => resolveAuthorized(context, name, request.allowAutoTopicCreation)));
    return shell(
      context,
      unique.map((name, i) => topicEntry(context, name, resolved[i]!)),
    );
  },

  encode(writer, version, response) {
    if (version >= 3) writer.int32(0);
    writer.array([response], (w, broker) => {
      w.int32(broker.nodeId).string(broker.host).int32(broker.port);
      if (version >= 1) w.nullableString(null);
    });
    if (version >= 2) writer.nullableString(response.clusterId);
    if (version >= 1) writer.int32(response.nodeId);
    writer.array(response.topics, (w, topic) => {
      w.int16(topic.errorCode).string(topic.name);
      if (version >= 1) w.boolean(false);
      w.int32(topic.partitions);
      for (let partition = 0; partition < topic.partitions; partition += 1) {
        w.int16(KafkaError.NONE).int32(partition).int32(response.nodeId);
        w.int32(1).int32(response.nodeId); // replica_nodes
        w.int32(1).int32(response.nodeId); // isr_nodes
        if (version >= 5) w.int32(0); // offline_replicas
      }
    });
  },

  errorResponse(request, errorCode, context) {
    return shell(
      context,
      (request.topics ?? []).map((name) => ({ errorCode, name, partitions: 0 })),
    );
  },
});

function shell(context: RequestContext, topics: MetadataTopic[]): MetadataResponse {
  const broker = context.broker;
  return { nodeId: broker.options.nodeId, host: broker.advertisedHost, port: broker.advertisedPort, clusterId: broker.options.clusterId, topics };
}

/**
 * A named topic's error, as Kafka's authorizer decides it: a topic the
 * principal may not Describe is TOPIC_AUTHORIZATION_FAILED (whether it
 * exists or not); an unknown one it may not create (Create on the cluster
 * or the topic) is TOPIC_AUTHORIZATION_FAILED where auto-creation would
 * have created it, else not created.
 */
function resolveAuthorized(context: RequestContext, name: string, allowAutoCreate: boolean): number | Promise<number> {
  const topics = context.broker.topics;
  if (!topicAuthorized(context, AclOperation.DESCRIBE, name)) return KafkaError.TOPIC_AUTHORIZATION_FAILED;
  if (!allowAutoCreate || topicCreateAuthorized(context, name)) return topics.resolve(name, allowAutoCreate);
  const code = topics.resolve(name, false) as number;
  return code === KafkaError.UNKNOWN_TOPIC_OR_PARTITION && context.broker.options.autoCreateTopics ? KafkaError.TOPIC_AUTHORIZATION_FAILED : code;
}

function topicEntry(context: RequestContext, name: string, errorCode: number): MetadataTopic {
  if (errorCode !== KafkaError.NONE) return { errorCode, name, partitions: 0 };
  const partitions = context.broker.topics.partitions(name);
  // Deleted between the lookup and now.
  if (partitions === null) return { errorCode: KafkaError.UNKNOWN_TOPIC_OR_PARTITION, name, partitions: 0 };
  return { errorCode, name, partitions };
}
