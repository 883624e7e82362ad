/**
 * Heartbeat (key 12), v0-v4 (v4 flexible, KIP-482): keeps a member's session alive; during a
 * rebalance the answer is REBALANCE_IN_PROGRESS, telling it to rejoin.
 *
 *   Heartbeat Request (Version: 0-2) => group_id generation_id member_id
 *     group_id => STRING
 *     generation_id => INT32
 *     member_id => STRING
 *   Heartbeat Request (Version: 3) => group_id generation_id member_id group_instance_id
 *     group_instance_id => NULLABLE_STRING
 *
 *   Heartbeat Response (Version: 0) => error_code
 *     error_code => INT16
 *   Heartbeat Response (Version: 1-3) => throttle_time_ms error_code
 *     throttle_time_ms => INT32
 *   Heartbeat (Version: 4) => as v3, flexible (compact strings, a TAG_BUFFER ends each struct)
 * Source: clients/src/main/resources/common/message/Heartbeat{Request,Response}.json.
 *
 * @module
 */

import { AclOperation, groupAuthorized } from '../acl/index.js';
import { ConcordatError } from '../../errors.js';
import { KafkaError, kafkaErrorCodeOf } from '../codec/error-codes.js';
import { defineApi } from './api.js';

/** A Heartbeat request body, decoded (grammar in the file header). */
export interface HeartbeatRequest {
  groupId: string;
  generationId: number;
  memberId: string;
  groupInstanceId: string | null;
}

/** A Heartbeat response body, to encode (grammar in the file header). */
export interface HeartbeatResponse {
  errorCode: number;
}

/** The Heartbeat API (key 12): its versions, request decoder, handler and response encoder; the grammar is in the file header. */
export const heartbeat = defineApi<HeartbeatRequest, HeartbeatResponse>({
  key: 12,
  name: 'Heartbeat',
  minVersion: 0,
  maxVersion: 4,
  flexibleVersion: 4,

  decode(reader, version) {
    const groupId = reader.flexString();
    const generationId = reader.int32();
    const memberId = reader.flexString();
    const groupInstanceId = version >= 3 ? reader.flexNullableString() : null;
    reader.flexTags();
    return { groupId, generationId, memberId, groupInstanceId };
  },

  async handle(request, context) {
    if (!groupAuthorized(context, AclOperation.READ, request.groupId)) return { errorCode: KafkaError.GROUP_AUTHORIZATION_FAILED };
    try {
      await context.broker.logManager.groups.heartbeat(request);
      return { errorCode: KafkaError.NONE };
    } catch (error) {
      if (!(error instanceof ConcordatError)) throw error;
      return { errorCode: kafkaErrorCodeOf(error) };
    }
  },

  encode(writer, version, response) {
    if (version >= 1) writer.int32(0);
    writer.int16(response.errorCode).flexTags();
  },

  errorResponse(_request, errorCode) {
    return { errorCode };
  },
});
