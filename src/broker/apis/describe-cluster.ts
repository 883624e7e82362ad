/**
 * DescribeCluster (key 60), v0 (flexible, KIP-700): the cluster ID, the
 * controller and the brokers, without Metadata's topics. librdkafka 2.2+
 * (`rd_kafka_DescribeCluster`) sends it; kafkajs's `describeCluster` uses
 * Metadata instead.
 *
 *   DescribeCluster Request (Version: 0) => include_cluster_authorized_operations TAG_BUFFER
 *     include_cluster_authorized_operations => BOOLEAN
 *
 *   DescribeCluster Response (Version: 0) => throttle_time_ms error_code error_message cluster_id controller_id [brokers] cluster_authorized_operations TAG_BUFFER
 *     throttle_time_ms => INT32
 *     error_code => INT16
 *     error_message => COMPACT_NULLABLE_STRING
 *     cluster_id => COMPACT_STRING
 *     controller_id => INT32
 *     brokers => broker_id host port rack TAG_BUFFER
 *       broker_id => INT32
 *       host => COMPACT_STRING
 *       port => INT32
 *       rack => COMPACT_NULLABLE_STRING
 *     cluster_authorized_operations => INT32   a bit per AclOperation; INT32 min when not asked for
 *
 * One broker, its own controller, with the host and port Metadata
 * advertises. The cluster's authorized operations, when asked for, are
 * those the principal's ACLs allow (acl/authorizer.ts), or every operation
 * Kafka defines on the cluster resource without an authorizer. Without
 * Describe on the cluster: CLUSTER_AUTHORIZATION_FAILED.
 *
 * @module
 */

import { AclOperation, authorizedOperations, CLUSTER_RESOURCE_NAME, clusterAuthorized, ResourceType } from '../acl/index.js';
import { KafkaError } from '../codec/error-codes.js';
import { defineApi } from './api.js';

/** A DescribeCluster request body, decoded (grammar in the file header). */
export interface DescribeClusterRequest {
  includeClusterAuthorizedOperations: boolean;
}

/** A DescribeCluster response body, to encode (grammar in the file header). */
export interface DescribeClusterResponse {
  errorCode: number;
  clusterId: string;
  controllerId: number;
  brokers: { brokerId: number; host: string; port: number }[];
  clusterAuthorizedOperations: number;
}

/** Kafka's "not asked for" value of an authorized-operations field. */
const OPERATIONS_OMITTED = -2147483648;

/** The DescribeCluster API (key 60): its versions, request decoder, handler and response encoder; the grammar is in the file header. */
export const describeCluster = defineApi<DescribeClusterRequest, DescribeClusterResponse>({
  key: 60,
  name: 'DescribeCluster',
  minVersion: 0,
  maxVersion: 0,
  flexibleVersion: 0,

  decode(reader) {
    const request = { includeClusterAuthorizedOperations: reader.boolean() };
    reader.taggedFields();
    return request;
  },

  handle(request, context) {
    const { options, advertisedHost, advertisedPort } = context.broker;
    if (!clusterAuthorized(context, AclOperation.DESCRIBE)) return this.errorResponse(request, KafkaError.CLUSTER_AUTHORIZATION_FAILED, context);
    return {
      errorCode: KafkaError.NONE,
      clusterId: options.clusterId,
      controllerId: options.nodeId,
      brokers: [{ brokerId: options.nodeId, host: advertisedHost, port: advertisedPort }],
      clusterAuthorizedOperations: request.includeClusterAuthorizedOperations
        ? authorizedOperations(context, ResourceType.CLUSTER, CLUSTER_RESOURCE_NAME)
        : OPERATIONS_OMITTED,
    };
  },

  encode(writer, _version, response) {
    writer.int32(0).int16(response.errorCode).compactNullableString(null).compactString(response.clusterId).int32(response.controllerId);
    writer.compactArray(response.brokers, (w, b) => w.int32(b.brokerId).compactString(b.host).int32(b.port).compactNullableString(null).emptyTaggedFields());
    writer.int32(response.clusterAuthorizedOperations).emptyTaggedFields();
  },

  errorResponse(_request, errorCode, context) {
    return { errorCode, clusterId: context.broker.options.clusterId, controllerId: -1, brokers: [], clusterAuthorizedOperations: OPERATIONS_OMITTED };
  },
});
