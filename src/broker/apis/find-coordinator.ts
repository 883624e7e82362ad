/**
 * FindCoordinator (key 10), v0-v5 (v3+ flexible, KIP-482): which broker
 * coordinates a consumer group (key_type 0) or a transactional ID (key_type
 * 1, KIP-98). With one broker the answer is always this one.
 *
 *   FindCoordinator Request (Version: 0) => key
 *     key => STRING
 *   FindCoordinator Request (Version: 1-2) => key key_type
 *     key_type => INT8                      0 group, 1 transaction
 *   FindCoordinator Request (Version: 3) => key key_type TAG_BUFFER        (compact strings)
 *   FindCoordinator Request (Version: 4-5) => key_type [coordinator_keys] TAG_BUFFER
 *     coordinator_keys => COMPACT_STRING    several keys of one type (KIP-699)
 *
 *   FindCoordinator Response (Version: 0) => error_code node_id host port
 *     error_code => INT16
 *     node_id => INT32
 *     host => STRING
 *     port => INT32
 *   FindCoordinator Response (Version: 1-2) => throttle_time_ms error_code error_message node_id host port
 *     throttle_time_ms => INT32
 *     error_message => NULLABLE_STRING
 *   FindCoordinator Response (Version: 3) => as v2, flexible
 *   FindCoordinator Response (Version: 4-5) => throttle_time_ms [coordinators] TAG_BUFFER
 *     coordinators => key node_id host port error_code error_message TAG_BUFFER
 *
 * v5 lets the broker answer TRANSACTION_ABORTABLE (KIP-890), which this one
 * never does; v6 (share groups, key_type 2, KIP-932) is not served.
 * Source: clients/src/main/resources/common/message/FindCoordinator{Request,Response}.json.
 *
 * @module
 */

import { AclOperation, groupAuthorized, transactionalIdAuthorized } from '../acl/index.js';
import { KafkaError } from '../codec/error-codes.js';
import type { RequestContext } from '../context.js';
import { defineApi } from './api.js';

/** A FindCoordinator request body, decoded (grammar in the file header): one key before v4, several from v4. */
export interface FindCoordinatorRequest {
  keys: string[];
  keyType: number;
}

/** One key's coordinator, or its error. */
export interface Coordinator {
  key: string;
  errorCode: number;
  errorMessage: string | null;
  nodeId: number;
  host: string;
  port: number;
}

/** A FindCoordinator response body, to encode (grammar in the file header): before v4 the one key's fields. */
export interface FindCoordinatorResponse {
  coordinators: Coordinator[];
}

const KEY_TYPE_GROUP = 0;
const KEY_TYPE_TRANSACTION = 1;

/** The FindCoordinator API (key 10): its versions, request decoder, handler and response encoder; the grammar is in the file header. */
export const findCoordinator = defineApi<FindCoordinatorRequest, FindCoordinatorResponse>({
  key: 10,
  name: 'FindCoordinator',
  minVersion: 0,
  maxVersion: 5,
  flexibleVersion: 3,

  decode(reader, version) {
    if (version >= 4) {
      const keyType = reader.int8();
      const keys = reader.flexArray((r) => r.flexString());
      reader.flexTags();
      return { keys, keyType };
    }
    const key = reader.flexString();
    const keyType = version >= 1 ? reader.int8() : KEY_TYPE_GROUP;
    reader.flexTags();
    return { keys: [key], keyType };
  },

  handle(request, context) {
    return { coordinators: request.keys.map((key) => coordinatorOf(key, request.keyType, context)) };
  },

  encode(writer, version, response) {
    if (version >= 1) writer.int32(0);
    if (version >= 4) {
      writer.flexArray(response.coordinators, (w, c) => {
        w.flexString(c.key).int32(c.nodeId).flexString(c.host).int32(c.port).int16(c.errorCode).flexNullableString(c.errorMessage).flexTags();
      });
      writer.flexTags();
      return;
    }
    const c = response.coordinators[0]!;
    writer.int16(c.errorCode);
    if (version >= 1) writer.flexNullableString(c.errorMessage);
    writer.int32(c.nodeId).flexString(c.host).int32(c.port).flexTags();
  },

  errorResponse(request, errorCode) {
    return { coordinators: request.keys.map((key) => failed(key, errorCode, null)) };
  },
});

function failed(key: string, errorCode: number, errorMessage: string | null): Coordinator {
  return { key, errorCode, errorMessage, nodeId: -1, host: '', port: -1 };
}

function coordinatorOf(key: string, keyType: number, context: RequestContext): Coordinator {
  if (keyType !== KEY_TYPE_GROUP && keyType !== KEY_TYPE_TRANSACTION) {
    return failed(key, KafkaError.INVALID_REQUEST, `unknown key_type ${keyType} (0 group, 1 transaction)`);
  }
  // ACLs: Describe on the group or the transactional ID.
  const allowed =
    keyType === KEY_TYPE_GROUP ? groupAuthorized(context, AclOperation.DESCRIBE, key) : transactionalIdAuthorized(context, AclOperation.DESCRIBE, key);
  if (!allowed) {
    return failed(key, keyType === KEY_TYPE_GROUP ? KafkaError.GROUP_AUTHORIZATION_FAILED : KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, null);
  }
  const broker = context.broker;
  return { key, errorCode: KafkaError.NONE, errorMessage: null, nodeId: broker.options.nodeId, host: broker.advertisedHost, port: broker.advertisedPort };
}
