/**
 * FindCoordinator (key 10), v0-v2: which broker coordinates a consumer
 * group (key_type 0) or a transactional ID (key_type 1, KIP-98). With one
 * broker the answer is always this one.
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
 *
 * @module
 */

import { AclOperation, groupAuthorized, transactionalIdAuthorized } from '../acl/index.js';
import { KafkaError } from '../codec/error-codes.js';
import { defineApi } from './api.js';

/** A FindCoordinator request body, decoded (grammar in the file header). */
export interface FindCoordinatorRequest {
  key: string;
  keyType: number;
}

/** A FindCoordinator response body, to encode (grammar in the file header). */
export interface FindCoordinatorResponse {
  errorCode: number;
  errorMessage: string | null;
  nodeId: number;
  host: string;
  port: number;
}

const KEY_TYPE_GROUP = 0;
const KEY_TYPE_TRANSACTION = 1;

/** The FindCoordinator API (key 10): its versions, request decoder, handler and response encoder; the grammar is in the file header. */
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
      return {
        errorCode: KafkaError.INVALID_REQUEST,
        errorMessage: `unknown key_type ${request.keyType} (0 group, 1 transaction)`,
        nodeId: -1,
        host: '',
        port: -1,
      };
    }
    // ACLs: Describe on the group or the transactional ID.
    const allowed =
      request.keyType === KEY_TYPE_GROUP
        ? groupAuthorized(context, AclOperation.DESCRIBE, request.key)
        : transactionalIdAuthorized(context, AclOperation.DESCRIBE, request.key);
    if (!allowed) {
      const errorCode = request.keyType === KEY_TYPE_GROUP ? KafkaError.GROUP_AUTHORIZATION_FAILED : KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
      return { errorCode, errorMessage: null, nodeId: -1, host: '', port: -1 };
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
