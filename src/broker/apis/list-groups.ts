/**
 * ListGroups (key 16), v0-v2: every group the coordinator knows.
 *
 *   ListGroups Request (Version: 0-2) =>
 *
 *   ListGroups Response (Version: 0) => error_code [groups]
 *     error_code => INT16
 *     groups => group_id protocol_type
 *       group_id => STRING
 *       protocol_type => STRING
 *   ListGroups Response (Version: 1-2) => throttle_time_ms error_code [groups]
 *     throttle_time_ms => INT32
 *
 * @module
 */

import { AclOperation, clusterAuthorized, groupAuthorized } from '../acl/index.js';
import { KafkaError } from '../codec/error-codes.js';
import { defineApi } from './api.js';

/** A ListGroups response body, to encode (grammar in the file header). */
export interface ListGroupsResponse {
  errorCode: number;
  groups: { groupId: string; protocolType: string }[];
}

/** The ListGroups API (key 16): its versions, request decoder, handler and response encoder; the grammar is in the file header. */
export const listGroups = defineApi<null, ListGroupsResponse>({
  key: 16,
  name: 'ListGroups',
  minVersion: 0,
  maxVersion: 2,
  flexibleVersion: null,

  decode() {
    return null;
  },

  handle(_request, context) {
    // ACLs: Describe on the cluster lists every group, else only the groups the principal may Describe.
    const everyGroup = clusterAuthorized(context, AclOperation.DESCRIBE);
    const groups = context.broker.log.groups
      .listGroups()
      .filter((g) => everyGroup || groupAuthorized(context, AclOperation.DESCRIBE, g.groupId))
      .map((g) => ({ groupId: g.groupId, protocolType: g.protocolType }));
    return { errorCode: KafkaError.NONE, groups };
  },

  encode(writer, version, response) {
    if (version >= 1) writer.int32(0);
    writer.int16(response.errorCode).array(response.groups, (w, g) => w.string(g.groupId).string(g.protocolType));
  },

  errorResponse(_request, errorCode) {
    return { errorCode, groups: [] };
  },
});
