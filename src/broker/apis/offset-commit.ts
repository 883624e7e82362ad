/**
 * OffsetCommit (key 8), v2-v9 (v8+ flexible, KIP-482): stores a group's consumed positions durably.
 * A member of an active generation commits with its generation and member
 * ID; a client that manages partitions itself (no group membership)
 * commits with generation -1 and an empty member ID, allowed while the group
 * has no members.
 *
 *   OffsetCommit Request (Version: 2-4) => group_id generation_id member_id retention_time_ms [topics]
 *     group_id => STRING
 *     generation_id => INT32
 *     member_id => STRING
 *     retention_time_ms => INT64
 *     topics => name [partitions]
 *       name => STRING
 *       partitions => partition_index committed_offset committed_metadata
 *         partition_index => INT32
 *         committed_offset => INT64
 *         committed_metadata => NULLABLE_STRING
 *   OffsetCommit Request (Version: 5) => group_id generation_id member_id [topics]
 *   OffsetCommit Request (Version: 6) => group_id generation_id member_id [topics]
 *     topics => name [partitions]
 *       partitions => partition_index committed_offset committed_leader_epoch committed_metadata
 *         committed_leader_epoch => INT32
 *   OffsetCommit Request (Version: 7) => group_id generation_id member_id group_instance_id [topics]
 *     group_instance_id => NULLABLE_STRING
 *
 *   OffsetCommit Response (Version: 2) => [topics]
 *     topics => name [partitions]
 *       name => STRING
 *       partitions => partition_index error_code
 *         partition_index => INT32
 *         error_code => INT16
 *   OffsetCommit Response (Version: 3-7) => throttle_time_ms [topics]
 *     throttle_time_ms => INT32
 *
 * retention_time_ms is ignored: committed offsets are kept until the group
 * is deleted. v7's group_instance_id is checked against the group's static
 * members: a member ID that a restarted instance replaced gets
 * FENCED_INSTANCE_ID (KIP-345). v6's leader epoch is stored and returned by
 * OffsetFetch. v8 is v7, flexible (compact strings and arrays, a TAG_BUFFER
 * after each struct); v9 is v8 for KIP-848's consumer groups too, which are
 * not served, so for classic groups it means v8.
 * Source: clients/src/main/resources/common/message/OffsetCommit{Request,Response}.json.
 *
 * @module
 */

import { AclOperation, groupAuthorized } from '../acl/index.js';
import { ConcordatError } from '../../errors.js';
import { KafkaError, kafkaErrorCodeOf, kafkaErrorCodeOfName } from '../codec/error-codes.js';
import { answerEachPartition, splitByTopicAuthorization } from './answers.js';
import { defineApi } from './api.js';

/** An OffsetCommit request body, decoded (grammar in the file header). */
export interface OffsetCommitRequest {
  groupId: string;
  generationId: number;
  memberId: string;
  groupInstanceId: string | null;
  topics: {
    name: string;
    partitions: { partitionIndex: number; committedOffset: number; committedLeaderEpoch: number; committedMetadata: string | null }[];
  }[];
}

/** An OffsetCommit response body, to encode (grammar in the file header). */
export interface OffsetCommitResponse {
  topics: { name: string; partitions: { partitionIndex: number; errorCode: number }[] }[];
}

/** The OffsetCommit API (key 8): its versions, request decoder, handler and response encoder; the grammar is in the file header. */
export const offsetCommit = defineApi<OffsetCommitRequest, OffsetCommitResponse>({
  key: 8,
  name: 'OffsetCommit',
  minVersion: 2,
  maxVersion: 9,
  flexibleVersion: 8,

  decode(reader, version) {
    const groupId = reader.flexString();
    const generationId = reader.int32();
    const memberId = reader.flexString();
    const groupInstanceId = version >= 7 ? reader.flexNullableString() : null;
    if (version <= 4) reader.int64(); // retention_time_ms
    const topics = reader.flexArray((t) => {
      const name = t.flexString();
      const partitions = t.flexArray((p) => {
        const partition = {
          partitionIndex: p.int32(),
          committedOffset: p.int64(),
          committedLeaderEpoch: version >= 6 ? p.int32() : -1,
          committedMetadata: p.flexNullableString(),
        };
        p.flexTags();
        return partition;
      });
      t.flexTags();
      return { name, partitions };
    });
    reader.flexTags();
    return { groupId, generationId, memberId, groupInstanceId, topics };
  },

  async handle(request, context) {
    // ACLs: Read on the group (else GROUP_AUTHORIZATION_FAILED everywhere), Read on each topic (else TOPIC_AUTHORIZATION_FAILED, not committed).
    if (!groupAuthorized(context, AclOperation.READ, request.groupId)) return this.errorResponse(request, KafkaError.GROUP_AUTHORIZATION_FAILED, context);
    const { allowed, refused } = splitByTopicAuthorization(context, AclOperation.READ, request.topics);
    try {
      // Errors of the whole request (member, generation) are thrown; per-partition ones come back.
      const result = await context.broker.logManager.groups.commitOffsets({
        groupId: request.groupId,
        generationId: request.generationId,
        memberId: request.memberId,
        groupInstanceId: request.groupInstanceId,
        topics: allowed.map((t) => ({
          topic: t.name,
          partitions: t.partitions.map((p) => ({
            partition: p.partitionIndex,
            offset: p.committedOffset,
            leaderEpoch: p.committedLeaderEpoch,
            metadata: p.committedMetadata,
          })),
        })),
      });
      return {
        topics: [
          ...result.topics.map((t) => ({
            name: t.topic,
            partitions: t.partitions.map((p) => ({ partitionIndex: p.partition, errorCode: kafkaErrorCodeOfName(p.errorCode) })),
          })),
          ...refused,
        ],
      };
    } catch (error) {
      if (!(error instanceof ConcordatError)) throw error;
      return this.errorResponse(request, kafkaErrorCodeOf(error), context);
    }
  },

  encode(writer, version, response) {
    if (version >= 3) writer.int32(0);
    writer.flexArray(response.topics, (w, t) => {
      w.flexString(t.name).flexArray(t.partitions, (pw, p) => pw.int32(p.partitionIndex).int16(p.errorCode).flexTags());
      w.flexTags();
    });
    writer.flexTags();
  },

  errorResponse(request, errorCode) {
    return { topics: answerEachPartition(request.topics, (p) => ({ partitionIndex: p.partitionIndex, errorCode })) };
  },
});
