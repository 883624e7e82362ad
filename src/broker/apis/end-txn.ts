/**
 * EndTxn (key 26), v0-v1: commits (committed = true) or aborts the
 * producer's transaction. The coordinator (log/transactions/coordinator.ts)
 * records PrepareCommit/PrepareAbort durably, writes the COMMIT or ABORT
 * marker to every partition of the transaction, commits its consumer
 * offsets (on commit), records the completion, then answers. v1 is v0.
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
 * Errors: INVALID_PRODUCER_ID_MAPPING, INVALID_PRODUCER_EPOCH (fenced, or
 * the transaction timed out and was aborted), INVALID_TXN_STATE (no
 * transaction open, or the retry of an EndTxn with the other outcome).
 *
 * @module
 */

import { AclOperation, transactionalIdAuthorized } from '../acl/index.js';
import { ConcordatError } from '../../errors.js';
import { KafkaError, transactionErrorCodeOf } from '../codec/error-codes.js';
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
  maxVersion: 1,
  flexibleVersion: null,

  decode(reader) {
    return { transactionalId: reader.string(), producerId: reader.int64(), producerEpoch: reader.int16(), committed: reader.boolean() };
  },

  async handle(request, context) {
    if (!transactionalIdAuthorized(context, AclOperation.WRITE, request.transactionalId))
      return { errorCode: KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED };
    try {
      await context.broker.log.transactions.endTransaction(request.transactionalId, request.producerId, request.producerEpoch, request.committed);
      return { errorCode: KafkaError.NONE };
    } catch (error) {
      if (!(error instanceof ConcordatError)) throw error;
      return { errorCode: transactionErrorCodeOf(error) };
    }
  },

  encode(writer, _version, response) {
    writer.int32(0).int16(response.errorCode);
  },

  errorResponse(_request, errorCode) {
    return { errorCode };
  },
});
