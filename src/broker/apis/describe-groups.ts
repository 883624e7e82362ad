/**
 * DescribeGroups (key 15), v0-v2: state, protocol and members of groups.
 *
 *   DescribeGroups Request (Version: 0-2) => [groups]
 *     groups => STRING
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
 *
 * An unknown group is described as Dead with no members and no error, as
 * Kafka does.
 *
 * @module
 */

import { AclOperation, groupAuthorized } from '../acl/index.js';
import { KafkaError } from '../codec/error-codes.js';
import { defineApi } from './api.js';

/** One group in the response (GroupCoordinator.describeGroup's answer on the wire; an unknown group is Dead with no members). */
export interface DescribedGroup {
  errorCode: number;
  groupId: string;
  groupState: string;
  protocolType: string;
  protocolData: string;
  members: { memberId: string; clientId: string; clientHost: string; memberMetadata: Buffer; memberAssignment: Buffer }[];
}

/** A DescribeGroups request body, decoded (grammar in the file header). */
export interface DescribeGroupsRequest {
  groups: string[];
}

/** A DescribeGroups response body, to encode (grammar in the file header). */
export interface DescribeGroupsResponse {
  groups: DescribedGroup[];
}

/** The DescribeGroups API (key 15): its versions, request decoder, handler and response encoder; the grammar is in the file header. */
export const describeGroups = defineApi<DescribeGroupsRequest, DescribeGroupsResponse>({
  key: 15,
  name: 'DescribeGroups',
  minVersion: 0,
  maxVersion: 2,
  flexibleVersion: null,

  decode(reader) {
    return { groups: reader.array((r) => r.string()) };
  },

  handle(request, context) {
    const groups = request.groups.map((groupId): DescribedGroup => {
      if (!groupAuthorized(context, AclOperation.DESCRIBE, groupId)) {
        return { errorCode: KafkaError.GROUP_AUTHORIZATION_FAILED, groupId, groupState: '', protocolType: '', protocolData: '', members: [] };
      }
      const described = context.broker.log.groups.describeGroup(groupId);
      return {
        errorCode: KafkaError.NONE,
        groupId,
        groupState: described.state,
        protocolType: described.protocolType,
        protocolData: described.protocolName,
        members: described.members.map((m) => ({
          memberId: m.memberId,
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
    writer.array(response.groups, (w, g) => {
      w.int16(g.errorCode).string(g.groupId).string(g.groupState).string(g.protocolType).string(g.protocolData);
      w.array(g.members, (mw, m) => {
        mw.string(m.memberId).string(m.clientId).string(m.clientHost).bytes(m.memberMetadata).bytes(m.memberAssignment);
      });
    });
  },

  errorResponse(request, errorCode) {
    return {
      groups: request.groups.map((groupId) => ({ errorCode, groupId, groupState: 'Dead', protocolType: '', protocolData: '', members: [] })),
    };
  },
});
