/**
 * AlterConfigs (key 33), v0-v2 (v2 flexible, KIP-482): replaces the whole set of configs of topics.
 * kafkajs 2.2.4 (`admin.alterConfigs`) sends v0-v1, librdkafka
 * (`rd_kafka_AlterConfigs`) v0-v1, kafka-python 2.0.2 (`alter_configs`) v0-v1.
 *
 *   AlterConfigs Request (Version: 0-1) => [resources] validate_only
 *     resources => resource_type resource_name [configs]
 *       resource_type => INT8               2 topic, 4 broker, 8 broker logger
 *       resource_name => STRING
 *       configs => name value
 *         name => STRING
 *         value => NULLABLE_STRING
 *     validate_only => BOOLEAN
 *
 *   AlterConfigs Response (Version: 0-1) => throttle_time_ms [responses]
 *     throttle_time_ms => INT32
 *     responses => error_code error_message resource_type resource_name
 *       error_code => INT16
 *       error_message => NULLABLE_STRING
 *       resource_type => INT8
 *       resource_name => STRING
 *
 * Kafka's semantics: the configs given become the topic's configs; every
 * config not given goes back to its default. Refusals, each with a message
 * naming the config: INVALID_CONFIG (unknown name, invalid value, a value
 * the log has no behaviour for), UNKNOWN_TOPIC_OR_PARTITION,
 * INVALID_TOPIC_EXCEPTION, INVALID_REQUEST (broker resources: nothing is
 * dynamic). Each resource succeeds or fails alone; validate_only checks
 * without changing anything. See ../config-change.ts.
 *
 * v2 is v1, flexible (compact strings and arrays, a TAG_BUFFER after each struct);
 * librdkafka 2.12 sends it.
 * Source: clients/src/main/resources/common/message/AlterConfigs{Request,Response}.json.
 *
 * @module
 */

import { changeEachResource, replaceTopicConfigs, type ConfigChangeResult } from '../config-change.js';
import { defineApi } from './api.js';

/** One resource of a AlterConfigs request. */
export interface AlterConfigsResource {
  resourceType: number;
  resourceName: string;
  configs: { name: string; value: string | null }[];
}

/** A AlterConfigs request body, decoded (grammar in the file header). */
export interface AlterConfigsRequest {
  resources: AlterConfigsResource[];
  validateOnly: boolean;
}

/** One resource's or topic's result in a AlterConfigs response. */
export interface AlterConfigsResult extends ConfigChangeResult {
  resourceType: number;
  resourceName: string;
}

/** A AlterConfigs response body, to encode (grammar in the file header). */
export interface AlterConfigsResponse {
  responses: AlterConfigsResult[];
}

/** The AlterConfigs API (key 33): its versions, request decoder, handler and response encoder; the grammar is in the file header. */
export const alterConfigs = defineApi<AlterConfigsRequest, AlterConfigsResponse>({
  key: 33,
  name: 'AlterConfigs',
  minVersion: 0,
  maxVersion: 2,
  flexibleVersion: 2,

  decode(reader) {
    const resources = reader.flexArray((r) => {
      const resourceType = r.int8();
      const resourceName = r.flexString();
      const configs = r.flexArray((c) => {
        const config = { name: c.flexString(), value: c.flexNullableString() };
        c.flexTags();
        return config;
      });
      r.flexTags();
      return { resourceType, resourceName, configs };
    });
    const request = { resources, validateOnly: reader.boolean() };
    reader.flexTags();
    return request;
  },

  async handle(request, context) {
    const responses = await changeEachResource(request.resources, context, (topic, configs) =>
      replaceTopicConfigs(topic, configs, request.validateOnly, context),
    );
    return { responses };
  },

  encode(writer, _version, response) {
    writer.int32(0);
    writer.flexArray(response.responses, (w, r) =>
      w.int16(r.errorCode).flexNullableString(r.errorMessage).int8(r.resourceType).flexString(r.resourceName).flexTags(),
    );
    writer.flexTags();
  },

  errorResponse(request, errorCode) {
    return { responses: request.resources.map((r) => ({ errorCode, errorMessage: null, resourceType: r.resourceType, resourceName: r.resourceName })) };
  },
});
