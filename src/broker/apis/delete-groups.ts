/**
 * DeleteGroups (key 42), v0-v2 (v2 flexible, KIP-482): removes consumer groups and their committed
 * offsets. kafkajs 2.2.4 (`admin.deleteGroups`) sends v0-v1, librdkafka
 * (`rd_kafka_DeleteGroups`) v0-v1, kafka-python 2.0.2
 * (`delete_consumer_groups`) v0-v1.
 *
 *   DeleteGroups Request (Version: 0-1) => [groups_names]
 *     groups_names => STRING
 *
 *   DeleteGroups Response (Version: 0-1) => throttle_time_ms [results]
 *     throttle_time_ms => INT32
 *     results => group_id error_code
 *       group_id => STRING
 *       error_code => INT16
 *
 * Only a group without members (Empty) is deleted, with its offsets,
 * durably; a group with members gets NON_EMPTY_GROUP, an unknown one
 * GROUP_ID_NOT_FOUND (GroupCoordinator.deleteGroups, Kafka's rules).
 *
 * v2 is v1, flexible (compact strings and arrays, a TAG_BUFFER after each struct).
 * Source: clients/src/main/resources/common/message/DeleteGroups{Request,Response}.json.
 *
 * @module
 */

import { AclOperation, groupAuthorized } from '../acl/index.js';
import { ConcordatError } from '../../errors.js';
import { KafkaError, kafkaErrorCodeOf, kafkaErrorCodeOfName } from '../codec/error-codes.js';
import { defineApi } from './api.js';

/** A DeleteGroups request body, decoded (grammar in the file header). */
export interface DeleteGroupsRequest {
  groupsNames: string[];
}

/** A DeleteGroups response body, to encode (grammar in the file header). */
export interface DeleteGroupsResponse {
  results: { groupId: string; errorCode: number }[];
}

/** The DeleteGroups API (key 42): its versions, request decoder, handler and response encoder; the grammar is in the file header. */
export const deleteGroups = defineApi<DeleteGroupsRequest, DeleteGroupsResponse>({
  key: 42,
  name: 'DeleteGroups',
  minVersion: 0,
  maxVersion: 2,
  flexibleVersion: 2,

  decode(reader) {
    const request = { groupsNames: reader.flexArray((r) => r.flexString()) };
    reader.flexTags();
    return request;
  },

  async handle(request, context) {
    // ACLs: Delete on each group, else GROUP_AUTHORIZATION_FAILED for it (not deleted).
    const names = [...new Set(request.groupsNames)];
    const allowed = names.filter((group) => groupAuthorized(context, AclOperation.DELETE, group));
    const refused = names.filter((group) => !allowed.includes(group)).map((groupId) => ({ groupId, errorCode: KafkaError.GROUP_AUTHORIZATION_FAILED }));
    try {
      const results = await context.broker.logManager.groups.deleteGroups(allowed);
      return { results: [...results.map((r) => ({ groupId: r.groupId, errorCode: kafkaErrorCodeOfName(r.errorCode) })), ...refused] };
    } catch (error) {
      if (!(error instanceof ConcordatError)) throw error;
      return this.errorResponse(request, kafkaErrorCodeOf(error), context);
    }
  },

  encode(writer, _version, response) {
    writer.int32(0);
    writer.flexArray(response.results, (w, r) => w.flexString(r.groupId).int16(r.errorCode).flexTags());
    writer.flexTags();
  },

  errorResponse(request, errorCode) {
    return { results: request.groupsNames.map((groupId) => ({ groupId, errorCode })) };
  },
});
