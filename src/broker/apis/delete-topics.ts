/**
 * DeleteTopics (key 20), v0-v3.
 *
 *   DeleteTopics Request (Version: 0-3) => [topic_names] timeout_ms
 *     topic_names => STRING
 *     timeout_ms => INT32
 *
 *   DeleteTopics Response (Version: 0) => [responses]
 *     responses => name error_code
 *       name => STRING
 *       error_code => INT16
 *   DeleteTopics Response (Version: 1-3) => throttle_time_ms [responses]
 *     throttle_time_ms => INT32
 *
 * @module
 */

import { AclOperation, topicAuthorized } from '../acl/index.js';
import { ConcordatError } from '../../errors.js';
import { KafkaError, kafkaErrorCodeOf } from '../codec/error-codes.js';
import { defineApi } from './api.js';

/** A DeleteTopics request body, decoded (grammar in the file header). */
export interface DeleteTopicsRequest {
  topicNames: string[];
  timeoutMs: number;
}

/** A DeleteTopics response body, to encode (grammar in the file header). */
export interface DeleteTopicsResponse {
  responses: { name: string; errorCode: number }[];
}

/** The DeleteTopics API (key 20): its versions, request decoder, handler and response encoder; the grammar is in the file header. */
export const deleteTopics = defineApi<DeleteTopicsRequest, DeleteTopicsResponse>({
  key: 20,
  name: 'DeleteTopics',
  minVersion: 0,
  maxVersion: 3,
  flexibleVersion: null,

  decode(reader) {
    return { topicNames: reader.array((r) => r.string()), timeoutMs: reader.int32() };
  },

  async handle(request, context) {
    const responses: DeleteTopicsResponse['responses'] = [];
    for (const name of new Set(request.topicNames)) {
      if (!topicAuthorized(context, AclOperation.DELETE, name)) {
        responses.push({ name, errorCode: KafkaError.TOPIC_AUTHORIZATION_FAILED });
        continue;
      }
      try {
        await context.broker.log.deleteTopic(name);
        responses.push({ name, errorCode: KafkaError.NONE });
      } catch (error) {
        if (!(error instanceof ConcordatError)) throw error;
        responses.push({ name, errorCode: kafkaErrorCodeOf(error) });
      }
    }
    return { responses };
  },

  encode(writer, version, response) {
    if (version >= 1) writer.int32(0);
    writer.array(response.responses, (w, r) => w.string(r.name).int16(r.errorCode));
  },

  errorResponse(request, errorCode) {
    return { responses: request.topicNames.map((name) => ({ name, errorCode })) };
  },
});
