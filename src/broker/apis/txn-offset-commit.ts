/**
 * TxnOffsetCommit (key 28), v0-v4 (v3+ flexible, KIP-482): consumer offsets committed inside a
 * transaction (after AddOffsetsToTxn for the group). They are held by the
 * transaction coordinator (durably, in its state file) and become the
 * group's committed offsets when the transaction commits; an abort drops
 * them. OffsetFetch sees them only after the commit.
 *
 *   TxnOffsetCommit Request (Version: 0-1) => transactional_id group_id producer_id producer_epoch [topics]
 *     transactional_id => STRING
 *     group_id => STRING
 *     producer_id => INT64
 *     producer_epoch => INT16
 *     topics => name [partitions]
 *       name => STRING
 *       partitions => partition_index committed_offset committed_metadata
 *         partition_index => INT32
 *         committed_offset => INT64
 *         committed_metadata => NULLABLE_STRING
 *   TxnOffsetCommit Request (Version: 2) => (as 1)
 *       partitions => partition_index committed_offset committed_leader_epoch committed_metadata
 *         committed_leader_epoch => INT32
 *
 *   TxnOffsetCommit Request (Version: 3-4) => transactional_id group_id producer_id producer_epoch
 *                                            generation_id member_id group_instance_id [topics] TAG_BUFFER
 *     generation_id => INT32                       -1: not checked
 *     member_id => COMPACT_STRING                  "": not checked
 *     group_instance_id => COMPACT_NULLABLE_STRING
 *     (compact strings and arrays, a TAG_BUFFER after each struct)
 *
 *   TxnOffsetCommit Response (Version: 0-2) => throttle_time_ms [topics]
 *     throttle_time_ms => INT32
 *     topics => name [partitions]
 *       name => STRING
 *       partitions => partition_index error_code
 *         partition_index => INT32
 *         error_code => INT16
 *   TxnOffsetCommit Response (Version: 3-4) => as v2, flexible
 *
 * v3 (KIP-447) carries the consumer's group membership, checked as Kafka's
 * group coordinator does before the offsets are taken: a static member
 * whose member ID another instance replaced is FENCED_INSTANCE_ID, a member
 * ID the group does not have UNKNOWN_MEMBER_ID, a generation other than the
 * group's ILLEGAL_GENERATION. v3 also lets the broker answer
 * PRODUCER_FENCED (KIP-588); v4 TRANSACTION_ABORTABLE (KIP-890), which this
 * one never does.
 * Source: clients/src/main/resources/common/message/TxnOffsetCommit{Request,Response}.json.
 *
 * Errors, on every partition: INVALID_PRODUCER_ID_MAPPING,
 * INVALID_PRODUCER_EPOCH (fenced), INVALID_TXN_STATE (the group was not
 * added to an open transaction), CONCURRENT_TRANSACTIONS; per partition
 * UNKNOWN_TOPIC_OR_PARTITION.
 *
 * @module
 */

import { AclOperation, groupAuthorized, transactionalIdAuthorized } from '../acl/index.js';
import { ConcordatError } from '../../errors.js';
import { KafkaError, transactionErrorCodeOf, transactionErrorCodeOfName } from '../codec/error-codes.js';
import type { RequestContext } from '../context.js';
import { answerEachPartition, splitByTopicAuthorization } from './answers.js';
import { defineApi } from './api.js';

/** A TxnOffsetCommit request body, decoded (grammar in the file header). */
export interface TxnOffsetCommitRequest {
  transactionalId: string;
  groupId: string;
  producerId: number;
  producerEpoch: number;
  /** v3+: the consumer's membership, -1 / "" / null when not given. */
  generationId: number;
  memberId: string;
  groupInstanceId: string | null;
  topics: { name: string; partitions: { partitionIndex: number; committedOffset: number; committedLeaderEpoch: number; committedMetadata: string | null }[] }[];
}

/** A TxnOffsetCommit response body, to encode (grammar in the file header). */
export interface TxnOffsetCommitResponse {
  topics: { name: string; partitions: { partitionIndex: number; errorCode: number }[] }[];
}

/** The TxnOffsetCommit API (key 28): its versions, request decoder, handler and response encoder; the grammar is in the file header. */
export const txnOffsetCommit = defineApi<TxnOffsetCommitRequest, TxnOffsetCommitResponse>({
  key: 28,
  name: 'TxnOffsetCommit',
  minVersion: 0,
  maxVersion: 4,
  flexibleVersion: 3,

  decode(reader, version) {
    const transactionalId = reader.flexString();
    const groupId = reader.flexString();
    const producerId = reader.int64();
    const producerEpoch = reader.int16();
    const generationId = version >= 3 ? reader.int32() : -1;
    const memberId = version >= 3 ? reader.flexString() : '';
    const groupInstanceId = version >= 3 ? reader.flexNullableString() : null;
    const topics = reader.flexArray((t) => {
      const name = t.flexString();
      const partitions = t.flexArray((p) => {
        const partition = {
          partitionIndex: p.int32(),
          committedOffset: p.int64(),
          committedLeaderEpoch: version >= 2 ? p.int32() : -1,
          committedMetadata: p.flexNullableString(),
        };
        p.flexTags();
        return partition;
      });
      t.flexTags();
      return { name, partitions };
    });
    reader.flexTags();
    return { transactionalId, groupId, producerId, producerEpoch, generationId, memberId, groupInstanceId, topics };
  },

  async handle(request, context) {
    const fenced = context.header.apiVersion >= 3;
    // ACLs: Write on the transactional ID, Read on the group (else the whole request fails with it);
    // Read on each topic, else TOPIC_AUTHORIZATION_FAILED for its partitions (the others are committed).
    if (!transactionalIdAuthorized(context, AclOperation.WRITE, request.transactionalId)) {
      return this.errorResponse(request, KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, context);
    }
    if (!groupAuthorized(context, AclOperation.READ, request.groupId)) return this.errorResponse(request, KafkaError.GROUP_AUTHORIZATION_FAILED, context);
    const membership = membershipError(request, context);
    if (membership !== null) return this.errorResponse(request, membership, context);
    const { allowed, refused } = splitByTopicAuthorization(context, AclOperation.READ, request.topics);
    try {
      const offsets = allowed.flatMap((t) =>
        t.partitions.map((p) => ({
          topic: t.name,
          partition: p.partitionIndex,
          offset: p.committedOffset,
          leaderEpoch: p.committedLeaderEpoch,
          metadata: p.committedMetadata ?? '',
        })),
      );
      const results = await context.broker.logManager.transactions.commitOffsets(
        request.transactionalId,
        request.producerId,
        request.producerEpoch,
        request.groupId,
        offsets,
      );
      let i = 0;
      return {
        topics: [
          ...answerEachPartition(allowed, (p) => ({
            partitionIndex: p.partitionIndex,
            errorCode: transactionErrorCodeOfName(results[i++]!.errorCode, fenced),
          })),
          ...refused,
        ],
      };
    } catch (error) {
      if (!(error instanceof ConcordatError)) throw error;
      return this.errorResponse(request, transactionErrorCodeOf(error, fenced), context);
    }
  },

  encode(writer, _version, response) {
    writer.int32(0);
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

/**
 * v3's membership check, in the order of Kafka's group coordinator
 * (GroupCoordinator.handleTxnCommitOffsets): a fenced static member, an
 * unknown member ID, then a generation other than the group's. An unknown
 * group has no members and generation -1. null when it passes (or v0-v2,
 * which carry no membership).
 */
function membershipError(request: TxnOffsetCommitRequest, context: RequestContext): number | null {
  if (request.generationId < 0 && request.memberId === '' && request.groupInstanceId === null) return null;
  const group = context.broker.logManager.groups.describeGroup(request.groupId);
  if (request.groupInstanceId !== null) {
    const holder = group.members.find((m) => m.groupInstanceId === request.groupInstanceId);
    if (holder !== undefined && holder.memberId !== request.memberId) return KafkaError.FENCED_INSTANCE_ID;
  }
  if (request.memberId !== '' && !group.members.some((m) => m.memberId === request.memberId)) return KafkaError.UNKNOWN_MEMBER_ID;
  if (request.generationId >= 0 && request.generationId !== group.generationId) return KafkaError.ILLEGAL_GENERATION;
  return null;
}
