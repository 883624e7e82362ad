/**
 * AddPartitionsToTxn (key 24), v0-v3 (v3 flexible, KIP-482): a transactional producer names the
 * partitions it is about to write in its transaction, before the first
 * batch to each (KIP-98). The transaction coordinator
 * (log/transactions/coordinator.ts) records them durably; EndTxn writes its
 * marker to each. v1 is v0 (it only lets the broker throttle); v2 lets the
 * broker answer PRODUCER_FENCED (KIP-588) instead of INVALID_PRODUCER_EPOCH;
 * v3 is v2, flexible (compact strings and arrays, a TAG_BUFFER after each
 * struct). v4+ (several transactions, verify_only) are for brokers only.
 *
 *   AddPartitionsToTxn Request (Version: 0-1) => transactional_id producer_id producer_epoch [topics]
 *     transactional_id => STRING
 *     producer_id => INT64
 *     producer_epoch => INT16
 *     topics => name [partitions]
 *       name => STRING
 *       partitions => INT32
 *
 *   AddPartitionsToTxn Response (Version: 0-1) => throttle_time_ms [results]
 *     throttle_time_ms => INT32
 *     results => name [results]
 *       name => STRING
 *       results => partition_index partition_error_code
 *         partition_index => INT32
 *         partition_error_code => INT16
 *
 * Errors, on every partition: INVALID_PRODUCER_ID_MAPPING (unknown
 * transactional ID or another producer ID), INVALID_PRODUCER_EPOCH (fenced; PRODUCER_FENCED from v2),
 * CONCURRENT_TRANSACTIONS (the previous transaction is still completing:
 * retry); per partition UNKNOWN_TOPIC_OR_PARTITION, and then
 * OPERATION_NOT_ATTEMPTED on the others (nothing is added).
 * Source: clients/src/main/resources/common/message/AddPartitionsToTxn{Request,Response}.json.
 *
 * @module
 */

import { AclOperation, topicAuthorized, transactionalIdAuthorized } from '../acl/index.js';
import { ConcordatError } from '../../errors.js';
import { KafkaError, transactionErrorCodeOf, transactionErrorCodeOfName } from '../codec/error-codes.js';
import { answerEachPartition } from './answers.js';
import { defineApi } from './api.js';

/** An AddPartitionsToTxn request body, decoded (grammar in the file header). */
export interface AddPartitionsToTxnRequest {
  transactionalId: string;
  producerId: number;
  producerEpoch: number;
  topics: { name: string; partitions: number[] }[];
}

/** An AddPartitionsToTxn response body, to encode (grammar in the file header). */
export interface AddPartitionsToTxnResponse {
  topics: { name: string; partitions: { partitionIndex: number; errorCode: number }[] }[];
}

/** The AddPartitionsToTxn API (key 24): its versions, request decoder, handler and response encoder; the grammar is in the file header. */
export const addPartitionsToTxn = defineApi<AddPartitionsToTxnRequest, AddPartitionsToTxnResponse>({
  key: 24,
  name: 'AddPartitionsToTxn',
  minVersion: 0,
  maxVersion: 3,
  flexibleVersion: 3,

  decode(reader) {
    const request = {
      transactionalId: reader.flexString(),
      producerId: reader.int64(),
      producerEpoch: reader.int16(),
      topics: reader.flexArray((t) => {
        const topic = { name: t.flexString(), partitions: t.flexArray((p) => p.int32()) };
        t.flexTags();
        return topic;
      }),
    };
    reader.flexTags();
    return request;
  },

  async handle(request, context) {
    // ACLs: Write on the transactional ID (else every partition fails with it); Write on each topic, else
    // TOPIC_AUTHORIZATION_FAILED for its partitions and OPERATION_NOT_ATTEMPTED for the others (nothing added).
    if (!transactionalIdAuthorized(context, AclOperation.WRITE, request.transactionalId)) {
      return this.errorResponse(request, KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, context);
    }
    const refused = new Set(request.topics.filter((t) => !topicAuthorized(context, AclOperation.WRITE, t.name)).map((t) => t.name));
    if (refused.size > 0) {
      return {
        topics: answerEachPartition(request.topics, (partitionIndex, topic) => ({
          partitionIndex,
          errorCode: refused.has(topic) ? KafkaError.TOPIC_AUTHORIZATION_FAILED : KafkaError.OPERATION_NOT_ATTEMPTED,
        })),
      };
    }
    try {
      const partitions = request.topics.flatMap((t) => t.partitions.map((partition) => ({ topic: t.name, partition })));
      const fenced = context.header.apiVersion >= 2;
      const results = await context.broker.logManager.transactions.addPartitions(
        request.transactionalId,
        request.producerId,
        request.producerEpoch,
        partitions,
      );
      let i = 0;
      return {
        topics: answerEachPartition(request.topics, (partitionIndex) => ({
          partitionIndex,
          errorCode: transactionErrorCodeOfName(results[i++]!.errorCode, fenced),
        })),
      };
    } catch (error) {
      if (!(error instanceof ConcordatError)) throw error;
      return this.errorResponse(request, transactionErrorCodeOf(error, context.header.apiVersion >= 2), context);
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
    return { topics: answerEachPartition(request.topics, (partitionIndex) => ({ partitionIndex, errorCode })) };
  },
});
