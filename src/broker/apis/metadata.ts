/**
 * Metadata (key 3), v0-v12 (v9+ flexible, KIP-482): brokers, controller and topics. One broker, the
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
 *   Metadata Response (Version: 7) => as v6, with partitions => ... leader_id leader_epoch [replica_nodes] ...
 *         leader_epoch => INT32             -1 (unknown): clients then skip KIP-320 validation, which needs OffsetForLeaderEpoch
 *   Metadata Response (Version: 8) => as v7, with topics => ... [partitions] topic_authorized_operations,
 *                                     then cluster_authorized_operations after [topics]
 *     topic_authorized_operations, cluster_authorized_operations => INT32   a bit per AclOperation; INT32 min when not asked for
 *   Metadata Response (Version: 9) => as v8, flexible: compact strings and arrays, a TAG_BUFFER after every struct
 *   Metadata Response (Version: 10) => as v9, with topics => error_code name topic_id is_internal ...
 *     topic_id => UUID                      all zeros: topics have no IDs here (KIP-516 is not served)
 *   Metadata Response (Version: 11-12) => as v10 without cluster_authorized_operations (v12: name nullable)
 *
 *   Metadata Request (Version: 8) => [topics] allow_auto_topic_creation include_cluster_authorized_operations include_topic_authorized_operations
 *     include_..._authorized_operations => BOOLEAN
 *   Metadata Request (Version: 9) => as v8, flexible
 *   Metadata Request (Version: 10) => [topics] ... with topics => topic_id name
 *     topic_id => UUID
 *     name => COMPACT_NULLABLE_STRING       null: by topic ID, answered UNKNOWN_TOPIC_ID (no topic has an ID)
 *   Metadata Request (Version: 11-12) => [topics] allow_auto_topic_creation include_topic_authorized_operations TAG_BUFFER
 *
 * Source: clients/src/main/resources/common/message/Metadata{Request,Response}.json.
 * Topic IDs (v10+) are all zeros, which librdkafka and the Java client take
 * as "no topic IDs" and so keep to Fetch v12 (by topic name). Authorized
 * operations, when asked for, are the principal's on each topic and on the
 * cluster (../acl/; every operation of the resource without ACLs).
 *
 * @module
 */

import { AclOperation, authorizedOperations, CLUSTER_RESOURCE_NAME, ResourceType, topicAuthorized, topicCreateAuthorized } from '../acl/index.js';
import { KafkaError } from '../codec/error-codes.js';
import type { RequestContext } from '../context.js';
import { defineApi } from './api.js';

/** A Metadata request body, decoded (grammar in the file header). */
export interface MetadataRequest {
  /** null: every topic. A topic named by ID only (v10+) has name null. */
  topics: (string | null)[] | null;
  allowAutoTopicCreation: boolean;
  /** v8-v10. */
  includeClusterAuthorizedOperations: boolean;
  /** v8+. */
  includeTopicAuthorizedOperations: boolean;
}

/** One topic in the response: its error and partition count (every partition led by this broker); name null for a topic asked for by ID. */
export interface MetadataTopic {
  errorCode: number;
  name: string | null;
  partitions: number;
  /** v8+: a bit per AclOperation the principal may do on the topic; absent when not asked for. */
  authorizedOperations?: number;
}

/** A Metadata response body, to encode (grammar in the file header). */
export interface MetadataResponse {
  nodeId: number;
  host: string;
  port: number;
  clusterId: string;
  topics: MetadataTopic[];
  /** v8-v10: a bit per AclOperation, or {@link OPERATIONS_OMITTED}. */
  clusterAuthorizedOperations: number;
}

/** Kafka's "not asked for" value of an authorized-operations field. */
const OPERATIONS_OMITTED = -2147483648;

/** A topic ID of all zeros: "none" (KIP-516). */
const ZERO_UUID = Buffer.alloc(16);

/** The Metadata API (key 3): its versions, request decoder, handler and response encoder; the grammar is in the file header. */
export const metadata = defineApi<MetadataRequest, MetadataResponse>({
  key: 3,
  name: 'Metadata',
  minVersion: 0,
  maxVersion: 12,
  flexibleVersion: 9,

  decode(reader, version) {
    const topic = (r: typeof reader): string | null => {
      if (version >= 10) r.uuid();
      const name = version >= 10 ? r.flexNullableString() : r.flexString();
      r.flexTags();
      return name;
    };
    const topics = version === 0 ? reader.array(topic) : reader.flexNullableArray(topic);
    const allowAutoTopicCreation = version >= 4 ? reader.boolean() : true;
    const includeClusterAuthorizedOperations = version >= 8 && version <= 10 ? reader.boolean() : false;
    const includeTopicAuthorizedOperations = version >= 8 ? reader.boolean() : false;
    reader.flexTags();
    return {
      topics: version === 0 && topics!.length === 0 ? null : topics,
      allowAutoTopicCreation,
      includeClusterAuthorizedOperations,
      includeTopicAuthorizedOperations,
    };
  },

  async handle(request, context) {
    // Every topic: only those the principal may Describe (Kafka leaves the others out silently).
    const named = request.topics ?? context.broker.logManager.listTopics().filter((name) => topicAuthorized(context, AclOperation.DESCRIBE, name));
    const unique = [...new Set(named.filter((name): name is string => name !== null))];
    // eslint-disable-next-line @typescript-eslint/await-thenable -- values and Promises mixed on purpose: a known topic resolves without waiting
    const resolved = await Promise.all(unique.map((name) => resolveAuthorized(context, name, request.allowAutoTopicCreation)));
    // A topic asked for by ID alone: no topic has an ID here.
    const byId = named.filter((name) => name === null).map(() => ({ errorCode: KafkaError.UNKNOWN_TOPIC_ID, name: null, partitions: 0 }));
    const topics = unique.map((name, i) => topicEntry(context, name, resolved[i]!)).concat(byId);
    if (request.includeTopicAuthorizedOperations) {
      for (const topic of topics)
        if (topic.name !== null && topic.errorCode === KafkaError.NONE)
          topic.authorizedOperations = authorizedOperations(context, ResourceType.TOPIC, topic.name);
    }
    return shell(context, request, topics);
  },

  encode(writer, version, response) {
    if (version >= 3) writer.int32(0);
    writer.flexArray([response], (w, broker) => {
      w.int32(broker.nodeId).flexString(broker.host).int32(broker.port);
      if (version >= 1) w.flexNullableString(null);
      w.flexTags();
    });
    if (version >= 2) writer.flexNullableString(response.clusterId);
    if (version >= 1) writer.int32(response.nodeId);
    writer.flexArray(response.topics, (w, topic) => {
      w.int16(topic.errorCode);
      if (version >= 12) w.flexNullableString(topic.name);
      else w.flexString(topic.name ?? '');
      if (version >= 10) w.uuid(ZERO_UUID);
      if (version >= 1) w.boolean(false);
      const partitions = Array.from({ length: topic.partitions }, (_, index) => index);
      w.flexArray(partitions, (pw, partition) => {
        pw.int16(KafkaError.NONE).int32(partition).int32(response.nodeId);
        if (version >= 7) pw.int32(-1); // leader_epoch: unknown, so clients skip KIP-320 epoch checks (no OffsetForLeaderEpoch here)
        pw.flexArray([response.nodeId], (nw, node) => nw.int32(node)); // replica_nodes
        pw.flexArray([response.nodeId], (nw, node) => nw.int32(node)); // isr_nodes
        if (version >= 5) pw.flexArray([], () => undefined); // offline_replicas
        pw.flexTags();
      });
      if (version >= 8) w.int32(topic.authorizedOperations ?? OPERATIONS_OMITTED);
      w.flexTags();
    });
    if (version >= 8 && version <= 10) writer.int32(response.clusterAuthorizedOperations);
    writer.flexTags();
  },

  errorResponse(request, errorCode, context) {
    return shell(
      context,
      request,
      (request.topics ?? []).map((name) => ({ errorCode, name, partitions: 0 })),
    );
  },
});

function shell(context: RequestContext, request: MetadataRequest, topics: MetadataTopic[]): MetadataResponse {
  const broker = context.broker;
  return {
    nodeId: broker.options.nodeId,
    host: broker.advertisedHost,
    port: broker.advertisedPort,
    clusterId: broker.options.clusterId,
    topics,
    clusterAuthorizedOperations: request.includeClusterAuthorizedOperations
      ? authorizedOperations(context, ResourceType.CLUSTER, CLUSTER_RESOURCE_NAME)
      : OPERATIONS_OMITTED,
  };
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
