/**
 * DescribeAcls (key 29), v0-v3 (v2+ flexible, KIP-482): lists the ACLs a
 * filter matches. kafkajs 2.2.4 (`admin.describeAcls`), librdkafka 2.x and
 * kafka-python 2.0.2 send v0-v1.
 *
 *   DescribeAcls Request (Version: 0-1) => filter (./acl-codec.ts; v0 has no pattern_type_filter: LITERAL)
 *   DescribeAcls Request (Version: 2-3) => the same, compact, then TAG_BUFFER
 *
 *   DescribeAcls Response (Version: 0) => throttle_time_ms error_code error_message [resources]
 *     throttle_time_ms => INT32
 *     error_code => INT16
 *     error_message => NULLABLE_STRING
 *     resources => resource_type resource_name [acls]
 *       resource_type => INT8
 *       resource_name => STRING
 *       acls => principal host operation permission_type
 *         principal => STRING
 *         host => STRING
 *         operation => INT8
 *         permission_type => INT8
 *   DescribeAcls Response (Version: 1) => v0 with pattern_type => INT8 after resource_name
 *   DescribeAcls Response (Version: 2-3) => v1, compact, with TAG_BUFFERs
 *
 * The matching ACLs grouped by resource (type, name, pattern type).
 * Errors: SECURITY_DISABLED without an authorizer;
 * CLUSTER_AUTHORIZATION_FAILED unless the principal may Describe the
 * cluster; INVALID_REQUEST with the reason for a filter with an unknown code.
 *
 * @module
 */

import { AclOperation, clusterAuthorized, filterMatches, filterProblem, type AclBinding, type AclBindingFilter } from '../acl/index.js';
import { KafkaError } from '../codec/error-codes.js';
import type { Writer } from '../codec/writer.js';
import { NO_AUTHORIZER_MESSAGE, readAclFilter, writeAclNullableString, writeAclString } from './acl-codec.js';
import { defineApi } from './api.js';

/** A DescribeAcls request body, decoded (grammar in the file header). */
export interface DescribeAclsRequest {
  filter: AclBindingFilter;
}

/** One resource and its ACLs in a DescribeAcls response. */
export interface DescribedAclResource {
  resourceType: number;
  resourceName: string;
  patternType: number;
  acls: Pick<AclBinding, 'principal' | 'host' | 'operation' | 'permission'>[];
}

/** A DescribeAcls response body, to encode (grammar in the file header). */
export interface DescribeAclsResponse {
  errorCode: number;
  errorMessage: string | null;
  resources: DescribedAclResource[];
}

/** The DescribeAcls API (key 29): its versions, request decoder, handler and response encoder; the grammar is in the file header. */
export const describeAcls = defineApi<DescribeAclsRequest, DescribeAclsResponse>({
  key: 29,
  name: 'DescribeAcls',
  minVersion: 0,
  maxVersion: 3,
  flexibleVersion: 2,

  decode(reader, version) {
    const filter = readAclFilter(reader, version);
    if (version >= 2) reader.taggedFields();
    return { filter };
  },

  handle(request, context) {
    const authorizer = context.broker.authorizer;
    if (authorizer === null) return { errorCode: KafkaError.SECURITY_DISABLED, errorMessage: NO_AUTHORIZER_MESSAGE, resources: [] };
    if (!clusterAuthorized(context, AclOperation.DESCRIBE)) return { errorCode: KafkaError.CLUSTER_AUTHORIZATION_FAILED, errorMessage: null, resources: [] };
    const problem = filterProblem(request.filter);
    if (problem !== null) return { errorCode: KafkaError.INVALID_REQUEST, errorMessage: problem, resources: [] };
    return {
      errorCode: KafkaError.NONE,
      errorMessage: null,
      resources: groupByResource(authorizer.store.list().filter((acl) => filterMatches(request.filter, acl))),
    };
  },

  encode(writer, version, response) {
    writer.int32(0).int16(response.errorCode);
    writeAclNullableString(writer, version, response.errorMessage);
    const acl = (w: Writer, a: DescribedAclResource['acls'][number]) => {
      writeAclString(w, version, a.principal);
      writeAclString(w, version, a.host);
      w.int8(a.operation).int8(a.permission);
      if (version >= 2) w.emptyTaggedFields();
    };
    const resource = (w: Writer, r: DescribedAclResource) => {
      w.int8(r.resourceType);
      writeAclString(w, version, r.resourceName);
      if (version >= 1) w.int8(r.patternType);
      if (version >= 2) w.compactArray(r.acls, acl).emptyTaggedFields();
      else w.array(r.acls, acl);
    };
    if (version >= 2) writer.compactArray(response.resources, resource).emptyTaggedFields();
    else writer.array(response.resources, resource);
  },

  errorResponse(_request, errorCode) {
    return { errorCode, errorMessage: null, resources: [] };
  },
});

/** ACLs grouped by resource, in the order the resources first appear. */
function groupByResource(acls: readonly AclBinding[]): DescribedAclResource[] {
  const byResource = new Map<string, DescribedAclResource>();
  for (const acl of acls) {
    const key = JSON.stringify([acl.resourceType, acl.patternType, acl.resourceName]);
    let resource = byResource.get(key);
    if (resource === undefined) {
      resource = { resourceType: acl.resourceType, resourceName: acl.resourceName, patternType: acl.patternType, acls: [] };
      byResource.set(key, resource);
    }
    resource.acls.push({ principal: acl.principal, host: acl.host, operation: acl.operation, permission: acl.permission });
  }
  return [...byResource.values()];
}
