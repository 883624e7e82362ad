/**
 * ListGroups (key 16), v0-v5 (v3+ flexible, KIP-482): every group the
 * coordinator knows, optionally filtered by state (v4, KIP-518) and type
 * (v5, KIP-848).
 *
 *   ListGroups Request (Version: 0-2) =>
 *   ListGroups Request (Version: 3) => TAG_BUFFER
 *   ListGroups Request (Version: 4) => [states_filter] TAG_BUFFER
 *     states_filter => COMPACT_STRING      empty: every state
 *   ListGroups Request (Version: 5) => [states_filter] [types_filter] TAG_BUFFER
 *     types_filter => COMPACT_STRING       empty: every type
 *
 *   ListGroups Response (Version: 0) => error_code [groups]
 *     error_code => INT16
 *     groups => group_id protocol_type
 *       group_id => STRING
 *       protocol_type => STRING
 *   ListGroups Response (Version: 1-2) => throttle_time_ms error_code [groups]
 *     throttle_time_ms => INT32
 *   ListGroups Response (Version: 3) => as v2, flexible (compact strings and arrays, a TAG_BUFFER after each struct)
 *   ListGroups Response (Version: 4) => throttle_time_ms error_code [groups] TAG_BUFFER
 *     groups => group_id protocol_type group_state TAG_BUFFER
 *       group_state => COMPACT_STRING      Empty, PreparingRebalance, CompletingRebalance, Stable, Dead
 *   ListGroups Response (Version: 5) => ... groups => group_id protocol_type group_state group_type TAG_BUFFER
 *       group_type => COMPACT_STRING       always "classic": KIP-848 consumer groups are not served
 *
 * Filters match case-insensitively, as Kafka's do.
 * Source: clients/src/main/resources/common/message/ListGroups{Request,Response}.json.
 *
 * @module
 */

import { AclOperation, clusterAuthorized, groupAuthorized } from '../acl/index.js';
import { KafkaError } from '../codec/error-codes.js';
import { defineApi } from './api.js';

/** A ListGroups request body, decoded (grammar in the file header); empty filters match every group. */
export interface ListGroupsRequest {
  statesFilter: string[];
  typesFilter: string[];
}

/** A ListGroups response body, to encode (grammar in the file header). */
export interface ListGroupsResponse {
  errorCode: number;
  groups: { groupId: string; protocolType: string; groupState: string; groupType: string }[];
}

/** KIP-848's name for the groups JoinGroup/SyncGroup manage: every group here. */
const CLASSIC = 'classic';

/** The ListGroups API (key 16): its versions, request decoder, handler and response encoder; the grammar is in the file header. */
export const listGroups = defineApi<ListGroupsRequest, ListGroupsResponse>({
  key: 16,
  name: 'ListGroups',
  minVersion: 0,
  maxVersion: 5,
  flexibleVersion: 3,

  decode(reader, version) {
    const statesFilter = version >= 4 ? reader.flexArray((r) => r.flexString()) : [];
    const typesFilter = version >= 5 ? reader.flexArray((r) => r.flexString()) : [];
    reader.flexTags();
    return { statesFilter, typesFilter };
  },

  handle(request, context) {
    const states = new Set(request.statesFilter.map((s) => s.toLowerCase()));
    const types = new Set(request.typesFilter.map((t) => t.toLowerCase()));
    if (types.size > 0 && !types.has(CLASSIC)) return { errorCode: KafkaError.NONE, groups: [] };
    // ACLs: Describe on the cluster lists every group, else only the groups the principal may Describe.
    const everyGroup = clusterAuthorized(context, AclOperation.DESCRIBE);
    const groups = context.broker.logManager.groups
      .listGroups()
      .filter((g) => everyGroup || groupAuthorized(context, AclOperation.DESCRIBE, g.groupId))
      .filter((g) => states.size === 0 || states.has(g.state.toLowerCase()))
      .map((g) => ({ groupId: g.groupId, protocolType: g.protocolType, groupState: g.state, groupType: CLASSIC }));
    return { errorCode: KafkaError.NONE, groups };
  },

  encode(writer, version, response) {
    if (version >= 1) writer.int32(0);
    writer.int16(response.errorCode).flexArray(response.groups, (w, g) => {
      w.flexString(g.groupId).flexString(g.protocolType);
      if (version >= 4) w.flexString(g.groupState);
      if (version >= 5) w.flexString(g.groupType);
      w.flexTags();
    });
    writer.flexTags();
  },

  errorResponse(_request, errorCode) {
    return { errorCode, groups: [] };
  },
});
