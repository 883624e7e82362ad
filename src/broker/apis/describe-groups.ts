/**
 * DescribeGroups (key 15), v0-v5 (v5 flexible, KIP-482): state, protocol
 * and members of groups.
 *
 *   DescribeGroups Request (Version: 0-2) => [groups]
 *     groups => STRING
 *   DescribeGroups Request (Version: 3-4) => [groups] include_authorized_operations
 *     include_authorized_operations => BOOLEAN
 *   DescribeGroups Request (Version: 5) => as v4, flexible
 *
 *   DescribeGroups Response (Version: 0) => [groups]
 *     groups => error_code group_id group_state protocol_type protocol_data [members]
 *       error_code => INT16
 *       group_id => STRING
 *       group_state => STRING        Empty, PreparingRebalance, CompletingRebalance, Stable, Dead
 *       protocol_type => STRING
 *       protocol_data => STRING      the chosen protocol's name (the assignor)
 *       members => member_id client_id client_host member_metadata member_assignment
 *         member_id => STRING
 *         client_id => STRING
 *         client_host => STRING
 *         member_metadata => BYTES
 *         member_assignment => BYTES
 *   DescribeGroups Response (Version: 1-2) => throttle_time_ms [groups]
 *     throttle_time_ms => INT32
 *   DescribeGroups Response (Version: 3) => throttle_time_ms [groups]
 *     groups => error_code group_id group_state protocol_type protocol_data [members] authorized_operations
 *       authorized_operations => INT32   a bit per AclOperation; INT32 min when not asked for
 *   DescribeGroups Response (Version: 4) => as v3, with members => member_id group_instance_id client_id ...
 *         group_instance_id => NULLABLE_STRING   the static member's ID (KIP-345), null for a dynamic member
 *   DescribeGroups Response (Version: 5) => as v4, flexible (compact strings, arrays and bytes, a TAG_BUFFER after each struct)
 *
 * An unknown group is described as Dead with no members and no error, as
 * Kafka does. Authorized operations, when asked for, are the principal's
 * on the group (../acl/; every operation on a group without ACLs).
 * Source: clients/src/main/resources/common/message/DescribeGroups{Request,Response}.json.
 *
 * @module
 */

import { AclOperation, authorizedOperations, groupAuthorized, ResourceType } from '../acl/index.js';
import { KafkaError } from '../codec/error-codes.js';
import { defineApi } from './api.js';

/** One group in the response (GroupCoordinator.describeGroup's answer on the wire; an unknown group is Dead with no members). */
export interface DescribedGroup {
  errorCode: number;
  groupId: string;
  groupState: string;
  protocolType: string;
  protocolData: string;
  members: { memberId: string; groupInstanceId: string | null; clientId: string; clientHost: string; memberMetadata: Buffer; memberAssignment: Buffer }[];
  /** v3+: a bit per AclOperation, or {@link OPERATIONS_OMITTED}. */
  authorizedOperations: number;
}

/** A DescribeGroups request body, decoded (grammar in the file header). */
export interface DescribeGroupsRequest {
  groups: string[];
  includeAuthorizedOperations: boolean;
}

/** Kafka's "not asked for" value of an authorized-operations field. */
const OPERATIONS_OMITTED = -2147483648;

/** A DescribeGroups response body, to encode (grammar in the file header). */
export interface DescribeGroupsResponse {
  groups: DescribedGroup[];
}

/** The DescribeGroups API (key 15): its versions, request decoder, handler and response encoder; the grammar is in the file header. */
export const describeGroups = defineApi<DescribeGroupsRequest, DescribeGroupsResponse>({
  key: 15,
  name: 'DescribeGroups',
  minVersion: 0,
  maxVersion: 5,
  flexibleVersion: 5,

  decode(reader, version) {
    const groups = reader.flexArray((r) => r.flexString());
    const includeAuthorizedOperations = version >= 3 ? reader.boolean() : false;
    reader.flexTags();
    return { groups, includeAuthorizedOperations };
  },

  handle(request, context) {
    const groups = request.groups.map((groupId): DescribedGroup => {
      if (!groupAuthorized(context, AclOperation.DESCRIBE, groupId)) {
        return {
          errorCode: KafkaError.GROUP_AUTHORIZATION_FAILED,
          groupId,
          groupState: '',
          protocolType: '',
          protocolData: '',
          members: [],
          authorizedOperations: OPERATIONS_OMITTED,
        };
      }
      const described = context.broker.logManager.groups.describeGroup(groupId);
      return {
        errorCode: KafkaError.NONE,
        groupId,
        groupState: described.state,
        protocolType: described.protocolType,
        protocolData: described.protocolName,
        authorizedOperations: request.includeAuthorizedOperations ? authorizedOperations(context, ResourceType.GROUP, groupId) : OPERATIONS_OMITTED,
        members: described.members.map((m) => ({
          memberId: m.memberId,
          groupInstanceId: m.groupInstanceId,
          clientId: m.clientId,
          clientHost: m.clientHost,
          memberMetadata: m.metadata,
          memberAssignment: m.assignment,
        })),
      };
    });
    return { groups };
  },

  encode(writer, version, response) {
    if (version >= 1) writer.int32(0);
    writer.flexArray(response.groups, (w, g) => {
      w.int16(g.errorCode).flexString(g.groupId).flexString(g.groupState).flexString(g.protocolType).flexString(g.protocolData);
      w.flexArray(g.members, (mw, m) => {
        mw.flexString(m.memberId);
        if (version >= 4) mw.flexNullableString(m.groupInstanceId);
        mw.flexString(m.clientId).flexString(m.clientHost).flexBytes(m.memberMetadata).flexBytes(m.memberAssignment).flexTags();
      });
      if (version >= 3) w.int32(g.authorizedOperations);
      w.flexTags();
    });
    writer.flexTags();
  },

  errorResponse(request, errorCode) {
    return {
      groups: request.groups.map((groupId) => ({
        errorCode,
        groupId,
        groupState: 'Dead',
        protocolType: '',
        protocolData: '',
        members: [],
        authorizedOperations: OPERATIONS_OMITTED,
      })),
    };
  },
});
