/**
 * EndTxn (key 26), v0-v4 (v3+ flexible, KIP-482): commits (committed = true) or aborts the
 * producer's transaction. The coordinator (log/transactions/coordinator.ts)
 * records PrepareCommit/PrepareAbort durably, writes the COMMIT or ABORT
 * marker to every partition of the transaction, commits its consumer
 * offsets (on commit), records the completion, then answers. v1 is v0; v2
 * lets the broker answer PRODUCER_FENCED (KIP-588); v3 is v2, flexible (a
 * TAG_BUFFER ends each struct); v4 lets it answer TRANSACTION_ABORTABLE
 * (KIP-890), which this one never does. v5 (KIP-890 part 2, an epoch bump
 * at every EndTxn) is not served.
 *
 *   EndTxn Request (Version: 0-1) => transactional_id producer_id producer_epoch committed
 *     transactional_id => STRING
 *     producer_id => INT64
 *     producer_epoch => INT16
 *     committed => BOOLEAN
 *
 *   EndTxn Response (Version: 0-1) => throttle_time_ms error_code
 *     throttle_time_ms => INT32
 *     error_code => INT16
 *
 * Errors: INVALID_PRODUCER_ID_MAPPING, INVALID_PRODUCER_EPOCH (PRODUCER_FENCED from v2) (fenced, or
 * the transaction timed out and was aborted), INVALID_TXN_STATE (no
 * transaction open, or the retry of an EndTxn with the other outcome).
 * Source: clients/src/main/resources/common/message/EndTxn{Request,Response}.json.
 *
 * @module
 */

import { AclOperation, transactionalIdAuthorized } from '../acl/index.js';
import { KafkaError } from '../codec/error-codes.js';
import { transactionCallErrorCode } from './answers.js';
import { defineApi } from './api.js';

/** An EndTxn request body, decoded (grammar in the file header). */
export interface EndTxnRequest {
  transactionalId: string;
  producerId: number;
  producerEpoch: number;
  committed: boolean;
}

/** An EndTxn response body, to encode (grammar in the file header). */
export interface EndTxnResponse {
  errorCode: number;
}

/** The EndTxn API (key 26): its versions, request decoder, handler and response encoder; the grammar is in the file header. */
export const endTxn = defineApi<EndTxnRequest, EndTxnResponse>({
  key: 26,
  name: 'EndTxn',
  minVersion: 0,
  maxVersion: 4,
  flexibleVersion: 3,

  decode(reader) {
    const request = { transactionalId: reader.flexString(), producerId: reader.int64(), producerEpoch: reader.int16(), committed: reader.boolean() };
    reader.flexTags();
    return request;
  },

  async handle(request, context) {
    if (!transactionalIdAuthorized(context, AclOperation.WRITE, request.transactionalId))
      return { errorCode: KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED };
    const errorCode = await transactionCallErrorCode(
      () => context.broker.logManager.transactions.endTransaction(request.transactionalId, request.producerId, request.producerEpoch, request.committed),
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
