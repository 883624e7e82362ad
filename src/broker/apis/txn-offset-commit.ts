/**
 * TxnOffsetCommit (key 28), v0-v2: consumer offsets committed inside a
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
 *   TxnOffsetCommit Response (Version: 0-2) => throttle_time_ms [topics]
 *     throttle_time_ms => INT32
 *     topics => name [partitions]
 *       name => STRING
 *       partitions => partition_index error_code
 *         partition_index => INT32
 *         error_code => INT16
 *
 * Errors, on every partition: INVALID_PRODUCER_ID_MAPPING,
 * INVALID_PRODUCER_EPOCH (fenced), INVALID_TXN_STATE (the group was not
 * added to an open transaction), CONCURRENT_TRANSACTIONS; per partition
 * UNKNOWN_TOPIC_OR_PARTITION.
 *
 * @module
 */

import { AclOperation, groupAuthorized, topicAuthorized, transactionalIdAuthorized } from '../acl/index.js';
import { ConcordatError } from '../../errors.js';
import { KafkaError, transactionErrorCodeOf, transactionErrorCodeOfName } from '../codec/error-codes.js';
import { defineApi } from './api.js';

/** A TxnOffsetCommit request body, decoded (grammar in the file header). */
export interface TxnOffsetCommitRequest {
  transactionalId: string;
  groupId: string;
  producerId: number;
  producerEpoch: number;
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
  maxVersion: 2,
  flexibleVersion: null,

  decode(reader, version) {
    return {
      transactionalId: reader.string(),
      groupId: reader.string(),
      producerId: reader.int64(),
      producerEpoch: reader.int16(),
      topics: reader.array((t) => ({
        name: t.string(),
        partitions: t.array((p) => ({
          partitionIndex: p.int32(),
          committedOffset: p.int64(),
          committedLeaderEpoch: version >= 2 ? p.int32() : -1,
          committedMetadata: p.nullableString(),
        })),
      })),
    };
  },

  async handle(request, context) {
    // ACLs: Write on the transactional ID, Read on the group (else the whole request fails with it);
    // Read on each topic, else TOPIC_AUTHORIZATION_FAILED for its partitions (the others are committed).
    if (!transactionalIdAuthorized(context, AclOperation.WRITE, request.transactionalId)) {
      return this.errorResponse(request, KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, context);
    }
    if (!groupAuthorized(context, AclOperation.READ, request.groupId)) return this.errorResponse(request, KafkaError.GROUP_AUTHORIZATION_FAILED, context);
    const allowed = request.topics.filter((t) => topicAuthorized(context, AclOperation.READ, t.name));
    const refused = request.topics
      .filter((t) => !allowed.includes(t))
      .map((t) => ({
        name: t.name,
        partitions: t.partitions.map((p) => ({ partitionIndex: p.partitionIndex, errorCode: KafkaError.TOPIC_AUTHORIZATION_FAILED })),
      }));
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
      const results = await context.broker.log.transactions.commitOffsets(
        request.transactionalId,
        request.producerId,
        request.producerEpoch,
        request.groupId,
        offsets,
      );
      let i = 0;
      return {
        topics: [
          ...allowed.map((t) => ({
            name: t.name,
            partitions: t.partitions.map((p) => ({ partitionIndex: p.partitionIndex, errorCode: transactionErrorCodeOfName(results[i++]!.errorCode) })),
          })),
          ...refused,
        ],
      };
    } catch (error) {
      if (!(error instanceof ConcordatError)) throw error;
      return this.errorResponse(request, transactionErrorCodeOf(error), context);
    }
  },

  encode(writer, _version, response) {
    writer.int32(0);
    writer.array(response.topics, (w, t) => {
      w.string(t.name).array(t.partitions, (pw, p) => pw.int32(p.partitionIndex).int16(p.errorCode));
    });
  },

  errorResponse(request, errorCode) {
    return {
      topics: request.topics.map((t) => ({ name: t.name, partitions: t.partitions.map((p) => ({ partitionIndex: p.partitionIndex, errorCode })) })),
    };
  },
});
