/**
 * InitProducerId (key 22), v0-v5 (v2+ flexible, KIP-482): gives an idempotent producer its ID and
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
 *   InitProducerId (Version: 2) => as v1, flexible (compact strings, a TAG_BUFFER ends each struct)
 *   InitProducerId Request (Version: 3-5) => transactional_id transaction_timeout_ms producer_id producer_epoch TAG_BUFFER
 *     producer_id => INT64        -1: none
 *     producer_epoch => INT16     -1: none
 *
 * v3 (KIP-360): a transactional producer that names its current producer ID
 * and epoch is re-initialised as above (its open transaction aborted, its
 * epoch bumped) instead of failing after an abortable error; any other
 * producer ID or epoch is fenced (a zombie must not fence the live
 * producer). Kafka also accepts the epoch before the last bump (a retried
 * request whose answer was lost); this broker fences it, and the producer
 * starts over with a new InitProducerId. Without a transactional ID the
 * given producer ID is ignored and a new one handed out, as Kafka does.
 * v4 lets the broker answer PRODUCER_FENCED (KIP-588) instead of
 * INVALID_PRODUCER_EPOCH; v5 lets it answer TRANSACTION_ABORTABLE
 * (KIP-890), which this one never does.
 * Source: clients/src/main/resources/common/message/InitProducerId{Request,Response}.json.
 *
 * @module
 */

import { AclOperation, idempotentWriteAuthorized, transactionalIdAuthorized } from '../acl/index.js';
import { ConcordatError } from '../../errors.js';
import { KafkaError, transactionErrorCodeOf } from '../codec/error-codes.js';
import { defineApi } from './api.js';

/** An InitProducerId request body, decoded (grammar in the file header). */
export interface InitProducerIdRequest {
  transactionalId: string | null;
  transactionTimeoutMs: number;
  /** v3+: the producer's current ID and epoch, -1 for none. */
  producerId: number;
  producerEpoch: number;
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
  maxVersion: 5,
  flexibleVersion: 2,

  decode(reader, version) {
    const transactionalId = reader.flexNullableString();
    const transactionTimeoutMs = reader.int32();
    const producerId = version >= 3 ? reader.int64() : -1;
    const producerEpoch = version >= 3 ? reader.int16() : -1;
    reader.flexTags();
    return { transactionalId, transactionTimeoutMs, producerId, producerEpoch };
  },

  async handle(request, context) {
    if (request.transactionalId !== null) {
      if (!transactionalIdAuthorized(context, AclOperation.WRITE, request.transactionalId)) {
        return this.errorResponse(request, KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, context);
      }
      try {
        const current =
          request.producerId === -1 && request.producerEpoch === -1 ? null : { producerId: request.producerId, producerEpoch: request.producerEpoch };
        const ids = await context.broker.logManager.transactions.initProducerId(request.transactionalId, request.transactionTimeoutMs, current);
        return { errorCode: KafkaError.NONE, ...ids };
      } catch (error) {
        if (!(error instanceof ConcordatError)) throw error;
        return this.errorResponse(request, transactionErrorCodeOf(error, context.header.apiVersion >= 4), context);
      }
    }
    if (!idempotentWriteAuthorized(context)) return this.errorResponse(request, KafkaError.CLUSTER_AUTHORIZATION_FAILED, context);
    // The log hands out IDs from blocks it reserves on disk: never the same ID twice, across restarts too.
    return { errorCode: KafkaError.NONE, ...(await context.broker.logManager.initProducerId()) };
  },

  encode(writer, _version, response) {
    writer.int32(0).int16(response.errorCode).int64(response.producerId).int16(response.producerEpoch).flexTags();
  },

  errorResponse(_request, errorCode) {
    return { errorCode, producerId: -1, producerEpoch: -1 };
  },
});
