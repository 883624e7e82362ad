/**
 * LeaveGroup (key 13), v0-v5 (v4+ flexible, KIP-482): members leave at once instead of timing out,
 * so the group rebalances without waiting for their sessions to expire.
 *
 *   LeaveGroup Request (Version: 0-2) => group_id member_id
 *     group_id => STRING
 *     member_id => STRING
 *   LeaveGroup Request (Version: 3) => group_id [members]
 *     members => member_id group_instance_id
 *       member_id => STRING
 *       group_instance_id => NULLABLE_STRING
 *
 *   LeaveGroup Response (Version: 0) => error_code
 *     error_code => INT16
 *   LeaveGroup Response (Version: 1-2) => throttle_time_ms error_code
 *     throttle_time_ms => INT32
 *   LeaveGroup Response (Version: 3) => throttle_time_ms error_code [members]
 *     members => member_id group_instance_id error_code
 *       member_id => STRING
 *       group_instance_id => NULLABLE_STRING
 *       error_code => INT16
 *   LeaveGroup (Version: 4) => as v3, flexible (compact strings and arrays, a TAG_BUFFER after each struct)
 *   LeaveGroup Request (Version: 5) => group_id [members] TAG_BUFFER
 *     members => member_id group_instance_id reason TAG_BUFFER
 *       reason => COMPACT_NULLABLE_STRING     why the member leaves (KIP-800), ignored
 * Source: clients/src/main/resources/common/message/LeaveGroup{Request,Response}.json.
 *
 * @module
 */

import { AclOperation, groupAuthorized } from '../acl/index.js';
import { KafkaError, kafkaErrorCodeOfName } from '../codec/error-codes.js';
import { defineApi } from './api.js';

/** A LeaveGroup request body, decoded (grammar in the file header). */
export interface LeaveGroupRequest {
  groupId: string;
  members: { memberId: string; groupInstanceId: string | null }[];
}

/** A LeaveGroup response body, to encode (grammar in the file header). */
export interface LeaveGroupResponse {
  errorCode: number;
  members: { memberId: string; groupInstanceId: string | null; errorCode: number }[];
}

/** The LeaveGroup API (key 13): its versions, request decoder, handler and response encoder; the grammar is in the file header. */
export const leaveGroup = defineApi<LeaveGroupRequest, LeaveGroupResponse>({
  key: 13,
  name: 'LeaveGroup',
  minVersion: 0,
  maxVersion: 5,
  flexibleVersion: 4,

  decode(reader, version) {
    const groupId = reader.flexString();
    if (version < 3) return { groupId, members: [{ memberId: reader.string(), groupInstanceId: null }] };
    const members = reader.flexArray((m) => {
      const member = { memberId: m.flexString(), groupInstanceId: m.flexNullableString() };
      if (version >= 5) m.flexNullableString(); // reason (KIP-800): for the broker's log only
      m.flexTags();
      return member;
    });
    reader.flexTags();
    return { groupId, members };
  },

  async handle(request, context) {
    if (!groupAuthorized(context, AclOperation.READ, request.groupId)) return this.errorResponse(request, KafkaError.GROUP_AUTHORIZATION_FAILED, context);
    const result = await context.broker.logManager.groups.leaveGroup(request);
    const members = result.members.map((m) => ({ ...m, errorCode: kafkaErrorCodeOfName(m.errorCode) }));
    // v0-v2 carry one member: its error is the response's. v3 reports per member.
    const errorCode = context.header.apiVersion < 3 ? (members[0]?.errorCode ?? KafkaError.NONE) : KafkaError.NONE;
    return { errorCode, members };
  },

  encode(writer, version, response) {
    if (version >= 1) writer.int32(0);
    writer.int16(response.errorCode);
    if (version >= 3) {
      writer.flexArray(response.members, (w, m) => w.flexString(m.memberId).flexNullableString(m.groupInstanceId).int16(m.errorCode).flexTags());
    }
    writer.flexTags();
  },

  errorResponse(request, errorCode) {
    return { errorCode, members: request.members.map((m) => ({ ...m, errorCode })) };
  },
});
