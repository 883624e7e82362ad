/**
 * JoinGroup (key 11), v0-v5: a member joins (or rejoins) a consumer group;
 * the call returns when the rebalance completes. The leader alone gets the
 * members and their metadata, to compute the assignment it sends in
 * SyncGroup. Semantics live in the log's group coordinator.
 *
 *   JoinGroup Request (Version: 0) => group_id session_timeout_ms member_id protocol_type [protocols]
 *     group_id => STRING
 *     session_timeout_ms => INT32
 *     member_id => STRING
 *     protocol_type => STRING
 *     protocols => name metadata
 *       name => STRING
 *       metadata => BYTES
 *   JoinGroup Request (Version: 1-4) => group_id session_timeout_ms rebalance_timeout_ms member_id protocol_type [protocols]
 *     rebalance_timeout_ms => INT32
 *   JoinGroup Request (Version: 5) => group_id session_timeout_ms rebalance_timeout_ms member_id group_instance_id
 *                                     protocol_type [protocols]
 *     group_instance_id => NULLABLE_STRING
 *
 *   JoinGroup Response (Version: 0-1) => error_code generation_id protocol_name leader member_id [members]
 *     error_code => INT16
 *     generation_id => INT32
 *     protocol_name => STRING
 *     leader => STRING
 *     member_id => STRING
 *     members => member_id metadata
 *       member_id => STRING
 *       metadata => BYTES
 *   JoinGroup Response (Version: 2-4) => throttle_time_ms error_code generation_id protocol_name leader member_id [members]
 *     throttle_time_ms => INT32
 *   JoinGroup Response (Version: 5) => (as 2)
 *     members => member_id group_instance_id metadata
 *       group_instance_id => NULLABLE_STRING
 *   JoinGroup (Version: 6) => as v5, flexible (compact strings, arrays and bytes, a TAG_BUFFER after each struct)
 *   JoinGroup Response (Version: 7-8) => throttle_time_ms error_code generation_id protocol_type protocol_name leader member_id [members] TAG_BUFFER
 *     protocol_type, protocol_name => COMPACT_NULLABLE_STRING   the group's
 *   JoinGroup Request (Version: 8-9) => ... [protocols] reason TAG_BUFFER
 *     reason => COMPACT_NULLABLE_STRING      why the member joins (KIP-800), ignored
 *   JoinGroup Response (Version: 9) => ... protocol_name leader skip_assignment member_id [members] TAG_BUFFER
 *     skip_assignment => BOOLEAN             always false (KIP-814): a static leader that rejoins
 *                                            without a rebalance gets no members, as before v9
 *
 * From v4 a first join with an empty member_id is answered MEMBER_ID_REQUIRED
 * with the member ID to rejoin with (KIP-394); before v4 the member ID is
 * given at once, as the protocol expects.
 * Source: clients/src/main/resources/common/message/JoinGroup{Request,Response}.json.
 *
 * @module
 */

import { AclOperation, groupAuthorized } from '../acl/index.js';
import { ConcordatError } from '../../errors.js';
import { KafkaError, kafkaErrorCodeOf } from '../codec/error-codes.js';
import { defineApi } from './api.js';

/** A JoinGroup request body, decoded (grammar in the file header). */
export interface JoinGroupRequest {
  groupId: string;
  sessionTimeoutMs: number;
  rebalanceTimeoutMs: number;
  memberId: string;
  groupInstanceId: string | null;
  protocolType: string;
  protocols: { name: string; metadata: Buffer }[];
}

/** A JoinGroup response body, to encode (grammar in the file header). */
export interface JoinGroupResponse {
  errorCode: number;
  generationId: number;
  /** v7+: the group's protocol type (null on error). */
  protocolType?: string | null;
  protocolName: string;
  leader: string;
  memberId: string;
  members: { memberId: string; groupInstanceId: string | null; metadata: Buffer }[];
}

/** The JoinGroup API (key 11): its versions, request decoder, handler and response encoder; the grammar is in the file header. */
export const joinGroup = defineApi<JoinGroupRequest, JoinGroupResponse>({
  key: 11,
  name: 'JoinGroup',
  minVersion: 0,
  maxVersion: 9,
  flexibleVersion: 6,

  decode(reader, version) {
    const groupId = reader.flexString();
    const sessionTimeoutMs = reader.int32();
    const rebalanceTimeoutMs = version >= 1 ? reader.int32() : sessionTimeoutMs;
    const memberId = reader.flexString();
    const groupInstanceId = version >= 5 ? reader.flexNullableString() : null;
    const protocolType = reader.flexString();
    const protocols = reader.flexArray((p) => {
      const protocol = { name: p.flexString(), metadata: p.flexBytes() };
      p.flexTags();
      return protocol;
    });
    if (version >= 8) reader.flexNullableString(); // reason
    reader.flexTags();
    return { groupId, sessionTimeoutMs, rebalanceTimeoutMs, memberId, groupInstanceId, protocolType, protocols };
  },

  async handle(request, context) {
    // The coordinator asserts what a well-behaved client always sends; a frame that breaks it is refused here.
    if (request.rebalanceTimeoutMs < 0) return this.errorResponse(request, KafkaError.INVALID_REQUEST, context);
    if (!groupAuthorized(context, AclOperation.READ, request.groupId)) return this.errorResponse(request, KafkaError.GROUP_AUTHORIZATION_FAILED, context);
    try {
      const joined = await context.broker.logManager.groups.joinGroup({
        groupId: request.groupId,
        memberId: request.memberId,
        groupInstanceId: request.groupInstanceId,
        clientId: context.header.clientId ?? '',
        clientHost: context.connection.remote,
        sessionTimeoutMs: request.sessionTimeoutMs,
        rebalanceTimeoutMs: request.rebalanceTimeoutMs,
        protocolType: request.protocolType,
        protocols: request.protocols.map((p) => ({ name: p.name, metadata: Buffer.from(p.metadata) })),
        requireKnownMemberId: context.header.apiVersion >= 4,
      });
      return {
        errorCode: KafkaError.NONE,
        generationId: joined.generationId,
        protocolType: joined.protocolType,
        protocolName: joined.protocolName ?? '',
        leader: joined.leader,
        memberId: joined.memberId,
        members: joined.members.map((m) => ({ memberId: m.memberId, groupInstanceId: m.groupInstanceId, metadata: m.metadata })),
      };
    } catch (error) {
      if (!(error instanceof ConcordatError)) throw error;
      const memberId = typeof error.context.memberId === 'string' ? error.context.memberId : request.memberId;
      return { ...this.errorResponse(request, kafkaErrorCodeOf(error), context), memberId };
    }
  },

  encode(writer, version, response) {
    if (version >= 2) writer.int32(0);
    writer.int16(response.errorCode).int32(response.generationId);
    if (version >= 7) writer.flexNullableString(response.protocolType ?? null).flexNullableString(response.protocolName === '' ? null : response.protocolName);
    else writer.flexString(response.protocolName);
    writer.flexString(response.leader);
    if (version >= 9) writer.boolean(false); // skip_assignment
    writer.flexString(response.memberId);
    writer.flexArray(response.members, (w, m) => {
      w.flexString(m.memberId);
      if (version >= 5) w.flexNullableString(m.groupInstanceId);
      w.flexBytes(m.metadata).flexTags();
    });
    writer.flexTags();
  },

  errorResponse(request, errorCode) {
    return { errorCode, generationId: -1, protocolName: '', leader: '', memberId: request.memberId, members: [] };
  },
});
