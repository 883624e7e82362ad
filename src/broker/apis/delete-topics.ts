/**
 * DeleteTopics (key 20), v0-v5 (v4+ flexible, KIP-482).
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
 *   DeleteTopics (Version: 4) => as v3, flexible (compact strings and arrays, a TAG_BUFFER after each struct)
 *   DeleteTopics Response (Version: 5) => throttle_time_ms [responses] TAG_BUFFER
 *     responses => name error_code error_message TAG_BUFFER
 *       error_message => COMPACT_NULLABLE_STRING   why the topic was not deleted
 *
 * v6 names topics by topic ID (KIP-516), which the log does not have: not served.
 * Source: clients/src/main/resources/common/message/DeleteTopics{Request,Response}.json.
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
  /** errorMessage (v5+): why the topic was not deleted. */
  responses: { name: string; errorCode: number; errorMessage?: string | null }[];
}

/** The DeleteTopics API (key 20): its versions, request decoder, handler and response encoder; the grammar is in the file header. */
export const deleteTopics = defineApi<DeleteTopicsRequest, DeleteTopicsResponse>({
  key: 20,
  name: 'DeleteTopics',
  minVersion: 0,
  maxVersion: 5,
  flexibleVersion: 4,

  decode(reader) {
    const request = { topicNames: reader.flexArray((r) => r.flexString()), timeoutMs: reader.int32() };
    reader.flexTags();
    return request;
  },

  async handle(request, context) {
    const responses: DeleteTopicsResponse['responses'] = [];
    for (const name of new Set(request.topicNames)) {
      if (!topicAuthorized(context, AclOperation.DELETE, name)) {
        responses.push({ name, errorCode: KafkaError.TOPIC_AUTHORIZATION_FAILED });
        continue;
      }
      try {
        await context.broker.logManager.deleteTopic(name);
        responses.push({ name, errorCode: KafkaError.NONE });
      } catch (error) {
        if (!(error instanceof ConcordatError)) throw error;
        responses.push({ name, errorCode: kafkaErrorCodeOf(error), errorMessage: error.message });
      }
    }
    return { responses };
  },

  encode(writer, version, response) {
    if (version >= 1) writer.int32(0);
    writer.flexArray(response.responses, (w, r) => {
      w.flexString(r.name).int16(r.errorCode);
      if (version >= 5) w.flexNullableString(r.errorMessage ?? null);
      w.flexTags();
    });
    writer.flexTags();
  },

  errorResponse(request, errorCode) {
    return { responses: request.topicNames.map((name) => ({ name, errorCode })) };
  },
});
