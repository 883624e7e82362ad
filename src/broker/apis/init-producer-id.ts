import { KafkaError } from '../codec/error-codes.js';
import { defineApi } from './api.js';

/**
 * InitProducerId (key 22), v0-v1: gives an idempotent producer its ID and
 * epoch. The log then checks each batch's producer epoch and sequence, and
 * answers a retried batch with its original offsets without writing it again.
 * Transactional IDs are refused: transactions are not served.
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
 */
export interface InitProducerIdRequest {
  transactionalId: string | null;
  transactionTimeoutMs: number;
}

export interface InitProducerIdResponse {
  errorCode: number;
  producerId: number;
  producerEpoch: number;
}

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
    if (request.transactionalId !== null) return this.errorResponse(request, KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, context);
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
