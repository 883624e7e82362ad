/**
 * CreateAcls (key 30), v0-v3 (v2+ flexible, KIP-482): adds ACLs. kafkajs
 * 2.2.4 (`admin.createAcls`), librdkafka 2.x (`rd_kafka_CreateAcls`) and
 * kafka-python 2.0.2 (`create_acls`) send v0-v1; Kafka 4.0 clients v2-v3.
 *
 *   CreateAcls Request (Version: 0) => [creations]
 *     creations => resource_type resource_name principal host operation permission_type
 *       resource_type => INT8               2 topic, 3 group, 4 cluster, 5 transactional id
 *       resource_name => STRING
 *       principal => STRING                 Type:name, e.g. User:alice, User:*
 *       host => STRING                      an IP address or *
 *       operation => INT8                   2 ALL .. 12 IDEMPOTENT_WRITE (acl/acl.ts)
 *       permission_type => INT8             2 DENY, 3 ALLOW
 *   CreateAcls Request (Version: 1) => the same with resource_pattern_type => INT8 (3 literal, 4 prefixed) after resource_name
 *   CreateAcls Request (Version: 2-3) => v1, compact, with a TAG_BUFFER after each struct
 *
 *   CreateAcls Response (Version: 0-1) => throttle_time_ms [results]
 *     throttle_time_ms => INT32
 *     results => error_code error_message
 *       error_code => INT16
 *       error_message => NULLABLE_STRING
 *   CreateAcls Response (Version: 2-3) => the same, compact, with TAG_BUFFERs
 *
 * A result per creation, in order. Errors: SECURITY_DISABLED without an
 * authorizer; CLUSTER_AUTHORIZATION_FAILED unless the principal may Alter
 * the cluster; INVALID_REQUEST with the reason for a binding that cannot
 * be stored (acl.ts `bindingProblem`) or past {@link ACLS_MAX}. The valid
 * creations are written in one durable write before the answer; an ACL
 * that exists already succeeds without a second copy.
 *
 * @module
 */

import { AclOperation, bindingProblem, clusterAuthorized, PatternType, type AclBinding } from '../acl/index.js';
import { KafkaError, kafkaErrorCodeOf } from '../codec/error-codes.js';
import type { Reader } from '../codec/reader.js';
import { NO_AUTHORIZER_MESSAGE, writeAclNullableString } from './acl-codec.js';
import { defineApi } from './api.js';

/** Most ACLs the broker keeps (each check reads them all). */
export const ACLS_MAX = 100_000;

/** One creation of a CreateAcls request, as decoded (codes not yet checked). */
export type AclCreation = AclBinding;

/** A CreateAcls request body, decoded (grammar in the file header). */
export interface CreateAclsRequest {
  creations: AclCreation[];
}

/** One creation's result. */
export interface CreateAclsResult {
  errorCode: number;
  errorMessage: string | null;
}

/** A CreateAcls response body, to encode (grammar in the file header). */
export interface CreateAclsResponse {
  results: CreateAclsResult[];
}

/** The CreateAcls API (key 30): its versions, request decoder, handler and response encoder; the grammar is in the file header. */
export const createAcls = defineApi<CreateAclsRequest, CreateAclsResponse>({
  key: 30,
  name: 'CreateAcls',
  minVersion: 0,
  maxVersion: 3,
  flexibleVersion: 2,

  decode(reader, version) {
    const read = version >= 2 ? (r: Reader) => r.compactString() : (r: Reader) => r.string();
    const creation = (r: Reader): AclCreation => {
      const resourceType = r.int8();
      const resourceName = read(r);
      const patternType = version >= 1 ? r.int8() : PatternType.LITERAL;
      const binding = { resourceType, resourceName, patternType, principal: read(r), host: read(r), operation: r.int8(), permission: r.int8() } as AclBinding;
      if (version >= 2) r.taggedFields();
      return binding;
    };
    const creations = version >= 2 ? reader.compactArray(creation) : reader.array(creation);
    if (version >= 2) reader.taggedFields();
    return { creations };
  },

  async handle(request, context) {
    const authorizer = context.broker.authorizer;
    const all = (errorCode: number, errorMessage: string | null) => ({ results: request.creations.map(() => ({ errorCode, errorMessage })) });
    if (authorizer === null) return all(KafkaError.SECURITY_DISABLED, NO_AUTHORIZER_MESSAGE);
    if (!clusterAuthorized(context, AclOperation.ALTER)) return all(KafkaError.CLUSTER_AUTHORIZATION_FAILED, null);
    const results: CreateAclsResult[] = request.creations.map((binding) => {
      const problem = bindingProblem(binding);
      return { errorCode: problem === null ? KafkaError.NONE : KafkaError.INVALID_REQUEST, errorMessage: problem };
    });
    const valid = request.creations.filter((_binding, index) => results[index]!.errorCode === KafkaError.NONE);
    if (authorizer.store.list().length + valid.length > ACLS_MAX) {
      const message = `the broker keeps at most ${ACLS_MAX} ACLs and has ${authorizer.store.list().length}: delete some first`;
      return all(KafkaError.INVALID_REQUEST, message);
    }
    try {
      await authorizer.store.add(valid);
    } catch (error) {
      const failed = { errorCode: kafkaErrorCodeOf(error), errorMessage: (error as Error).message };
      return { results: results.map((result) => (result.errorCode === KafkaError.NONE ? failed : result)) };
    }
    if (valid.length > 0) context.broker.logger.info({ principal: context.connection.principal, acls: valid.length }, 'ACLs created');
    return { results };
  },

  encode(writer, version, response) {
    writer.int32(0);
    const result = (w: typeof writer, r: CreateAclsResult) => {
      w.int16(r.errorCode);
      writeAclNullableString(w, version, r.errorMessage);
      if (version >= 2) w.emptyTaggedFields();
    };
    if (version >= 2) {
      writer.compactArray(response.results, result).emptyTaggedFields();
    } else {
      writer.array(response.results, result);
    }
  },

  errorResponse(request, errorCode) {
    return { results: request.creations.map(() => ({ errorCode, errorMessage: null })) };
  },
});
