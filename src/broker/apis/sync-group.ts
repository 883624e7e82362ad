/**
 * SyncGroup (key 14), v0-v5 (v4+ flexible, KIP-482): the leader sends every member's assignment;
 * followers wait for it. Each gets its own assignment back.
 *
 *   SyncGroup Request (Version: 0-2) => group_id generation_id member_id [assignments]
 *     group_id => STRING
 *     generation_id => INT32
 *     member_id => STRING
 *     assignments => member_id assignment
 *       member_id => STRING
 *       assignment => BYTES
 *   SyncGroup Request (Version: 3) => group_id generation_id member_id group_instance_id [assignments]
 *     group_instance_id => NULLABLE_STRING
 *
 *   SyncGroup Response (Version: 0) => error_code assignment
 *     error_code => INT16
 *     assignment => BYTES
 *   SyncGroup Response (Version: 1-3) => throttle_time_ms error_code assignment
 *     throttle_time_ms => INT32
 *   SyncGroup (Version: 4) => as v3, flexible (compact strings, arrays and bytes, a TAG_BUFFER after each struct)
 *   SyncGroup Request (Version: 5) => group_id generation_id member_id group_instance_id protocol_type protocol_name [assignments] TAG_BUFFER
 *     protocol_type, protocol_name => COMPACT_NULLABLE_STRING
 *   SyncGroup Response (Version: 5) => throttle_time_ms error_code protocol_type protocol_name assignment TAG_BUFFER
 *
 * v5 (KIP-559): a protocol type or name other than the group's is
 * INCONSISTENT_GROUP_PROTOCOL; the answer names the group's.
 * Source: clients/src/main/resources/common/message/SyncGroup{Request,Response}.json.
 *
 * @module
 */

import { AclOperation, groupAuthorized } from '../acl/index.js';
import { ConcordatError } from '../../errors.js';
import { KafkaError, kafkaErrorCodeOf } from '../codec/error-codes.js';
import { defineApi } from './api.js';

/** A SyncGroup request body, decoded (grammar in the file header). */
export interface SyncGroupRequest {
  groupId: string;
  generationId: number;
  memberId: string;
  groupInstanceId: string | null;
  /** v5+: what the member takes the group's protocol to be; null when not given. */
  protocolType: string | null;
  protocolName: string | null;
  assignments: { memberId: string; assignment: Buffer }[];
}

/** A SyncGroup response body, to encode (grammar in the file header). */
export interface SyncGroupResponse {
  errorCode: number;
  /** v5+: the group's protocol type and name (null on error). */
  protocolType?: string | null;
  protocolName?: string | null;
  assignment: Buffer;
}

/** The SyncGroup API (key 14): its versions, request decoder, handler and response encoder; the grammar is in the file header. */
export const syncGroup = defineApi<SyncGroupRequest, SyncGroupResponse>({
  key: 14,
  name: 'SyncGroup',
  minVersion: 0,
  maxVersion: 5,
  flexibleVersion: 4,

  decode(reader, version) {
    const groupId = reader.flexString();
    const generationId = reader.int32();
    const memberId = reader.flexString();
    const groupInstanceId = version >= 3 ? reader.flexNullableString() : null;
    const protocolType = version >= 5 ? reader.flexNullableString() : null;
    const protocolName = version >= 5 ? reader.flexNullableString() : null;
    const assignments = reader.flexArray((a) => {
      const assignment = { memberId: a.flexString(), assignment: a.flexBytes() };
      a.flexTags();
      return assignment;
    });
    reader.flexTags();
    return { groupId, generationId, memberId, groupInstanceId, protocolType, protocolName, assignments };
  },

  async handle(request, context) {
    if (!groupAuthorized(context, AclOperation.READ, request.groupId)) return this.errorResponse(request, KafkaError.GROUP_AUTHORIZATION_FAILED, context);
    const group = context.broker.logManager.groups.describeGroup(request.groupId);
    const differs = (asked: string | null, has: string): boolean => asked !== null && has !== '' && asked !== has;
    if (differs(request.protocolType, group.protocolType) || differs(request.protocolName, group.protocolName)) {
      return this.errorResponse(request, KafkaError.INCONSISTENT_GROUP_PROTOCOL, context);
    }
    try {
      const { assignment } = await context.broker.logManager.groups.syncGroup({
        groupId: request.groupId,
        generationId: request.generationId,
        memberId: request.memberId,
        groupInstanceId: request.groupInstanceId,
        assignments: request.assignments.map((a) => ({ memberId: a.memberId, assignment: Buffer.from(a.assignment) })),
      });
      const synced = context.broker.logManager.groups.describeGroup(request.groupId);
      return { errorCode: KafkaError.NONE, protocolType: synced.protocolType, protocolName: synced.protocolName, assignment };
    } catch (error) {
      if (!(error instanceof ConcordatError)) throw error;
      return this.errorResponse(request, kafkaErrorCodeOf(error), context);
    }
  },

  encode(writer, version, response) {
    if (version >= 1) writer.int32(0);
    writer.int16(response.errorCode);
    if (version >= 5) writer.flexNullableString(response.protocolType ?? null).flexNullableString(response.protocolName ?? null);
    writer.flexBytes(response.assignment).flexTags();
  },

  errorResponse(_request, errorCode) {
    return { errorCode, assignment: Buffer.alloc(0) };
  },
});
