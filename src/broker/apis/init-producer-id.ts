/**
 * InitProducerId (key 22), v0-v1: gives an idempotent producer its ID and
 * epoch. The log then checks each batch's producer epoch and sequence, and
 * answers a retried batch with its original offsets without writing it again.
 *
 * With a transactional ID (KIP-98) the transaction coordinator
 * (log/transactions/coordinator.ts) answers: the ID's producer ID with its
 * epoch bumped, fencing every older producer of that ID (a transaction it
 * left open is aborted first). transaction_timeout_ms must lie within the
 * broker's transactions.transactionMaxTimeoutMs, else
 * INVALID_TRANSACTION_TIMEOUT. A transaction being completed answers
 * CONCURRENT_TRANSACTIONS only if the coordinator closes meanwhile; otherwise
 * the request waits for it.
 *
 *   InitProducerId Request (Version: 0-1) => transactional_id transaction_timeout_ms
 *     transactional_id => NULLABLE_STRING
 *     transaction_timeout_ms => INT32
 *
 *   InitProducerId Response (Version: 0-1) => throttle_time_ms error_code producer_id producer_epoch
 *     throttle_time_ms => INT32
 *     error_code => INT16
 *     producer_id => INT64
 *     producer_epoch => INT16
 *
 * @module
 */

import { AclOperation, idempotentWriteAuthorized, transactionalIdAuthorized } from '../acl/index.js';
import { ConcordatError } from '../../errors.js';
import { KafkaError, kafkaErrorCodeOf } from '../codec/error-codes.js';
import { defineApi } from './api.js';

/** An InitProducerId request body, decoded (grammar in the file header). */
export interface InitProducerIdRequest {
  transactionalId: string | null;
  transactionTimeoutMs: number;
}

/** An InitProducerId response body, to encode (grammar in the file header). */
export interface InitProducerIdResponse {
  errorCode: number;
  producerId: number;
  producerEpoch: number;
}

/** The InitProducerId API (key 22): its versions, request decoder, handler and response encoder; the grammar is in the file header. */
export const initProducerId = defineApi<InitProducerIdRequest, InitProducerIdResponse>({
  key: 22,
  name: 'InitProducerId',
  minVersion: 0,
  maxVersion: 1,
  flexibleVersion: null,

  decode(reader) {
    return { transactionalId: reader.nullableString(), transactionTimeoutMs: reader.int32() };
  },

  async handle(request, context) {
    if (request.transactionalId !== null) {
      if (!transactionalIdAuthorized(context, AclOperation.WRITE, request.transactionalId)) {
        return this.errorResponse(request, KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, context);
      }
      try {
        const ids = await context.broker.log.transactions.initProducerId(request.transactionalId, request.transactionTimeoutMs);
        return { errorCode: KafkaError.NONE, ...ids };
      } catch (error) {
        if (!(error instanceof ConcordatError)) throw error;
        return this.errorResponse(request, kafkaErrorCodeOf(error), context);
      }
    }
    if (!idempotentWriteAuthorized(context)) return this.errorResponse(request, KafkaError.CLUSTER_AUTHORIZATION_FAILED, context);
    // The log hands out IDs from blocks it reserves on disk: never the same ID twice, across restarts too.
    return { errorCode: KafkaError.NONE, ...(await context.broker.log.initProducerId()) };
  },

  encode(writer, _version, response) {
    writer.int32(0).int16(response.errorCode).int64(response.producerId).int16(response.producerEpoch);
  },

  errorResponse(_request, errorCode) {
    return { errorCode, producerId: -1, producerEpoch: -1 };
  },
});
