/**
 * AddOffsetsToTxn (key 25), v0-v4 (v3+ flexible, KIP-482): a transactional producer is about to
 * commit a consumer group's offsets in its transaction (TxnOffsetCommit),
 * the consume-transform-produce loop of KIP-98. Kafka adds the group's
 * `__consumer_offsets` partition to the transaction; here the coordinator
 * records the group. v1 is v0; v2 lets the broker answer PRODUCER_FENCED
 * (KIP-588); v3 is v2, flexible (a TAG_BUFFER ends each struct); v4 lets it
 * answer TRANSACTION_ABORTABLE (KIP-890), which this one never does.
 *
 *   AddOffsetsToTxn Request (Version: 0-1) => transactional_id producer_id producer_epoch group_id
 *     transactional_id => STRING
 *     producer_id => INT64
 *     producer_epoch => INT16
 *     group_id => STRING
 *
 *   AddOffsetsToTxn Response (Version: 0-1) => throttle_time_ms error_code
 *     throttle_time_ms => INT32
 *     error_code => INT16
 *
 * Errors: INVALID_PRODUCER_ID_MAPPING, INVALID_PRODUCER_EPOCH (fenced; PRODUCER_FENCED from v2), CONCURRENT_TRANSACTIONS.
 * Source: clients/src/main/resources/common/message/AddOffsetsToTxn{Request,Response}.json.
 *
 * @module
 */

import { AclOperation, groupAuthorized, transactionalIdAuthorized } from '../acl/index.js';
import { KafkaError } from '../codec/error-codes.js';
import { transactionCallErrorCode } from './answers.js';
import { defineApi } from './api.js';

/** An AddOffsetsToTxn request body, decoded (grammar in the file header). */
export interface AddOffsetsToTxnRequest {
  transactionalId: string;
  producerId: number;
  producerEpoch: number;
  groupId: string;
}

/** An AddOffsetsToTxn response body, to encode (grammar in the file header). */
export interface AddOffsetsToTxnResponse {
  errorCode: number;
}

/** The AddOffsetsToTxn API (key 25): its versions, request decoder, handler and response encoder; the grammar is in the file header. */
export const addOffsetsToTxn = defineApi<AddOffsetsToTxnRequest, AddOffsetsToTxnResponse>({
  key: 25,
  name: 'AddOffsetsToTxn',
  minVersion: 0,
  maxVersion: 4,
  flexibleVersion: 3,

  decode(reader) {
    const request = { transactionalId: reader.flexString(), producerId: reader.int64(), producerEpoch: reader.int16(), groupId: reader.flexString() };
    reader.flexTags();
    return request;
  },

  async handle(request, context) {
    if (!transactionalIdAuthorized(context, AclOperation.WRITE, request.transactionalId))
      return { errorCode: KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED };
    if (!groupAuthorized(context, AclOperation.READ, request.groupId)) return { errorCode: KafkaError.GROUP_AUTHORIZATION_FAILED };
    const errorCode = await transactionCallErrorCode(
      () => context.broker.logManager.transactions.addOffsets(request.transactionalId, request.producerId, request.producerEpoch, request.groupId),
      context.header.apiVersion >= 2,
    );
    return { errorCode };
  },

  encode(writer, _version, response) {
    writer.int32(0).int16(response.errorCode).flexTags();
  },

  errorResponse(_request, errorCode) {
    return { errorCode };
  },
});
