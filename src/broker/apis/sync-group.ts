/**
 * SyncGroup (key 14), v0-v3: the leader sends every member's assignment;
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
  assignments: { memberId: string; assignment: Buffer }[];
}

/** A SyncGroup response body, to encode (grammar in the file header). */
export interface SyncGroupResponse {
  errorCode: number;
  assignment: Buffer;
}

/** The SyncGroup API (key 14): its versions, request decoder, handler and response encoder; the grammar is in the file header. */
export const syncGroup = defineApi<SyncGroupRequest, SyncGroupResponse>({
  key: 14,
  name: 'SyncGroup',
  minVersion: 0,
  maxVersion: 3,
  flexibleVersion: null,

  decode(reader, version) {
    const groupId = reader.string();
    const generationId = reader.int32();
    const memberId = reader.string();
    const groupInstanceId = version >= 3 ? reader.nullableString() : null;
    const assignments = reader.array((a) => ({ memberId: a.string(), assignment: a.bytes() }));
    return { groupId, generationId, memberId, groupInstanceId, assignments };
  },

  async handle(request, context) {
    if (!groupAuthorized(context, AclOperation.READ, request.groupId)) return this.errorResponse(request, KafkaError.GROUP_AUTHORIZATION_FAILED, context);
    try {
      const { assignment } = await context.broker.log.groups.syncGroup({
        groupId: request.groupId,
        generationId: request.generationId,
        memberId: request.memberId,
        groupInstanceId: request.groupInstanceId,
        assignments: request.assignments.map((a) => ({ memberId: a.memberId, assignment: Buffer.from(a.assignment) })),
      });
      return { errorCode: KafkaError.NONE, assignment };
    } catch (error) {
      if (!(error instanceof ConcordatError)) throw error;
      return this.errorResponse(request, kafkaErrorCodeOf(error), context);
    }
  },

  encode(writer, version, response) {
    if (version >= 1) writer.int32(0);
    writer.int16(response.errorCode).bytes(response.assignment);
  },

  errorResponse(_request, errorCode) {
    return { errorCode, assignment: Buffer.alloc(0) };
  },
});
