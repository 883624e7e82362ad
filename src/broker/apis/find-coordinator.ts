import { KafkaError } from '../codec/error-codes.js';
import { defineApi } from './api.js';

/**
 * FindCoordinator (key 10), v0-v2: which broker coordinates a group. With
 * one broker the answer is always this one, for groups. Transactions are not
 * served: a transaction coordinator lookup is answered with
 * {@link TRANSACTIONS_REFUSED}, the error message saying why.
 *
 *   FindCoordinator Request (Version: 0) => key
 *     key => STRING
 *   FindCoordinator Request (Version: 1-2) => key key_type
 *     key_type => INT8                      0 group, 1 transaction
 *
 *   FindCoordinator Response (Version: 0) => error_code node_id host port
 *     error_code => INT16
 *     node_id => INT32
 *     host => STRING
 *     port => INT32
 *   FindCoordinator Response (Version: 1-2) => throttle_time_ms error_code error_message node_id host port
 *     throttle_time_ms => INT32
 *     error_message => NULLABLE_STRING
 */
export interface FindCoordinatorRequest {
  key: string;
  keyType: number;
}

export interface FindCoordinatorResponse {
  errorCode: number;
  errorMessage: string | null;
  nodeId: number;
  host: string;
  port: number;
}

const KEY_TYPE_GROUP = 0;
const KEY_TYPE_TRANSACTION = 1;

/**
 * The answer to a transaction coordinator lookup while transactions are not
 * served: TRANSACTIONAL_ID_AUTHORIZATION_FAILED (53), as Kafka answers a
 * principal that may not use the transactional ID, and as InitProducerId
 * here answers a transactional ID. It is the code on which both clients fail
 * at once instead of retrying until their timeout:
 * - librdkafka 2.0.2 to 2.3 (rd_kafka_txn_handle_FindCoordinator) makes only
 *   53 and CLUSTER_AUTHORIZATION_FAILED (31) fatal; every other code,
 *   INVALID_REQUEST (what this broker answered before) and
 *   COORDINATOR_NOT_AVAILABLE (Kafka's answer while its transaction state
 *   topic is unavailable) included, is retried until init_transactions
 *   times out. The fatal error carries this response's error_message.
 * - kafkajs 2.2.4 retries only COORDINATOR_NOT_AVAILABLE (15); on any other
 *   code producer.transaction() fails at once with "Failed to find group
 *   coordinator" (its debug log names the code).
 * 31 would blame the whole cluster; 53 names the transactional ID.
 */
const TRANSACTIONS_REFUSED = KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
const TRANSACTIONS_REFUSED_MESSAGE =
  'concordat broker does not serve Kafka transactions (FindCoordinator key_type 1): ' +
  'produce without a transactional ID (an idempotent producer keeps retries exactly once per partition)';

export const findCoordinator = defineApi<FindCoordinatorRequest, FindCoordinatorResponse>({
  key: 10,
  name: 'FindCoordinator',
  minVersion: 0,
  maxVersion: 2,
  flexibleVersion: null,

  decode(reader, version) {
    const key = reader.string();
    return { key, keyType: version >= 1 ? reader.int8() : KEY_TYPE_GROUP };
  },

  handle(request, context) {
    if (request.keyType !== KEY_TYPE_GROUP && request.keyType !== KEY_TYPE_TRANSACTION) {
      return { errorCode: KafkaError.INVALID_REQUEST, errorMessage: `unknown key_type ${request.keyType} (0 group, 1 transaction)`, nodeId: -1, host: '', port: -1 };
    }
    if (request.keyType === KEY_TYPE_TRANSACTION) {
      context.broker.logger.warn(
        { transactionalId: request.key, keyType: request.keyType, remote: context.connection.remote, clientId: context.header.clientId },
        'transaction coordinator lookup refused: transactions are not served',
      );
      return { errorCode: TRANSACTIONS_REFUSED, errorMessage: TRANSACTIONS_REFUSED_MESSAGE, nodeId: -1, host: '', port: -1 };
    }
    const broker = context.broker;
    return { errorCode: KafkaError.NONE, errorMessage: null, nodeId: broker.options.nodeId, host: broker.advertisedHost, port: broker.advertisedPort };
  },

  encode(writer, version, response) {
    if (version >= 1) writer.int32(0);
    writer.int16(response.errorCode);
    if (version >= 1) writer.nullableString(response.errorMessage);
    writer.int32(response.nodeId).string(response.host).int32(response.port);
  },

  errorResponse(_request, errorCode) {
    return { errorCode, errorMessage: null, nodeId: -1, host: '', port: -1 };
  },
});
