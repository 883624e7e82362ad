/**
 * DeleteAcls (key 31), v0-v3 (v2+ flexible, KIP-482): removes the ACLs that
 * filters match. kafkajs 2.2.4 (`admin.deleteAcls`), librdkafka 2.x and
 * kafka-python 2.0.2 send v0-v1.
 *
 *   DeleteAcls Request (Version: 0-1) => [filters]
 *     filters => filter (./acl-codec.ts; v0 has no pattern_type_filter: LITERAL)
 *   DeleteAcls Request (Version: 2-3) => the same, compact, with a TAG_BUFFER after each struct
 *
 *   DeleteAcls Response (Version: 0) => throttle_time_ms [filter_results]
 *     throttle_time_ms => INT32
 *     filter_results => error_code error_message [matching_acls]
 *       error_code => INT16
 *       error_message => NULLABLE_STRING
 *       matching_acls => error_code error_message resource_type resource_name principal host operation permission_type
 *         error_code => INT16
 *         error_message => NULLABLE_STRING
 *         resource_type => INT8
 *         resource_name => STRING
 *         principal => STRING
 *         host => STRING
 *         operation => INT8
 *         permission_type => INT8
 *   DeleteAcls Response (Version: 1) => v0 with pattern_type => INT8 after resource_name
 *   DeleteAcls Response (Version: 2-3) => v1, compact, with TAG_BUFFERs
 *
 * A result per filter, in order, listing the ACLs it removed (an ACL two
 * filters match is listed under both). The removals are one durable write
 * before the answer. Errors: SECURITY_DISABLED without an authorizer;
 * CLUSTER_AUTHORIZATION_FAILED unless the principal may Alter the cluster;
 * INVALID_REQUEST with the reason for a filter with an unknown code (the
 * other filters still apply).
 *
 * @module
 */

import { AclOperation, clusterAuthorized, filterProblem, type AclBinding, type AclBindingFilter } from '../acl/index.js';
import { KafkaError, kafkaErrorCodeOf } from '../codec/error-codes.js';
import type { Reader } from '../codec/reader.js';
import type { Writer } from '../codec/writer.js';
import { NO_AUTHORIZER_MESSAGE, readAclFilter, writeAclNullableString, writeAclString } from './acl-codec.js';
import { defineApi } from './api.js';

/** A DeleteAcls request body, decoded (grammar in the file header). */
export interface DeleteAclsRequest {
  filters: AclBindingFilter[];
}

/** One filter's result: its error and the ACLs it removed. */
export interface DeleteAclsFilterResult {
  errorCode: number;
  errorMessage: string | null;
  matchingAcls: AclBinding[];
}

/** A DeleteAcls response body, to encode (grammar in the file header). */
export interface DeleteAclsResponse {
  filterResults: DeleteAclsFilterResult[];
}

/** The DeleteAcls API (key 31): its versions, request decoder, handler and response encoder; the grammar is in the file header. */
export const deleteAcls = defineApi<DeleteAclsRequest, DeleteAclsResponse>({
  key: 31,
  name: 'DeleteAcls',
  minVersion: 0,
  maxVersion: 3,
  flexibleVersion: 2,

  decode(reader, version) {
    const filter = (r: Reader) => {
      const value = readAclFilter(r, version);
      if (version >= 2) r.taggedFields();
      return value;
    };
    const filters = version >= 2 ? reader.compactArray(filter) : reader.array(filter);
    if (version >= 2) reader.taggedFields();
    return { filters };
  },

  async handle(request, context) {
    const authorizer = context.broker.authorizer;
    const all = (errorCode: number, errorMessage: string | null) => ({
      filterResults: request.filters.map(() => ({ errorCode, errorMessage, matchingAcls: [] })),
    });
    if (authorizer === null) return all(KafkaError.SECURITY_DISABLED, NO_AUTHORIZER_MESSAGE);
    if (!clusterAuthorized(context, AclOperation.ALTER)) return all(KafkaError.CLUSTER_AUTHORIZATION_FAILED, null);
    const problems = request.filters.map(filterProblem);
    const valid = request.filters.filter((_filter, index) => problems[index] === null);
    let removed: AclBinding[][];
    try {
      removed = await authorizer.store.remove(valid);
    } catch (error) {
      return all(kafkaErrorCodeOf(error), (error as Error).message);
    }
    const count = removed.reduce((sum, acls) => sum + acls.length, 0);
    if (count > 0) context.broker.logger.info({ principal: context.connection.principal, acls: count }, 'ACLs deleted');
    let next = 0;
    return {
      filterResults: problems.map((problem) =>
        problem === null
          ? { errorCode: KafkaError.NONE, errorMessage: null, matchingAcls: removed[next++]! }
          : { errorCode: KafkaError.INVALID_REQUEST, errorMessage: problem, matchingAcls: [] },
      ),
    };
  },

  encode(writer, version, response) {
    writer.int32(0);
    const acl = (w: Writer, a: AclBinding) => {
      w.int16(KafkaError.NONE);
      writeAclNullableString(w, version, null);
      w.int8(a.resourceType);
      writeAclString(w, version, a.resourceName);
      if (version >= 1) w.int8(a.patternType);
      writeAclString(w, version, a.principal);
      writeAclString(w, version, a.host);
      w.int8(a.operation).int8(a.permission);
      if (version >= 2) w.emptyTaggedFields();
    };
    const result = (w: Writer, r: DeleteAclsFilterResult) => {
      w.int16(r.errorCode);
      writeAclNullableString(w, version, r.errorMessage);
      if (version >= 2) w.compactArray(r.matchingAcls, acl).emptyTaggedFields();
      else w.array(r.matchingAcls, acl);
    };
    if (version >= 2) writer.compactArray(response.filterResults, result).emptyTaggedFields();
    else writer.array(response.filterResults, result);
  },

  errorResponse(request, errorCode) {
    return { filterResults: request.filters.map(() => ({ errorCode, errorMessage: null, matchingAcls: [] })) };
  },
});
