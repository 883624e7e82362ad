/**
 * IncrementalAlterConfigs (key 44), v0-v1 (v1 flexible, KIP-482): changes
 * some configs of topics and keeps the others (KIP-339). librdkafka 2.2+
 * (`rd_kafka_IncrementalAlterConfigs`) sends v0-v1.
 *
 *   IncrementalAlterConfigs Request (Version: 0) => [resources] validate_only
 *     resources => resource_type resource_name [configs]
 *       resource_type => INT8               2 topic, 4 broker, 8 broker logger
 *       resource_name => STRING
 *       configs => name config_operation value
 *         name => STRING
 *         config_operation => INT8          0 SET, 1 DELETE (back to the default), 2 APPEND, 3 SUBTRACT (list configs)
 *         value => NULLABLE_STRING
 *     validate_only => BOOLEAN
 *   IncrementalAlterConfigs Request (Version: 1) => the same, compact, with a TAG_BUFFER after each struct
 *
 *   IncrementalAlterConfigs Response (Version: 0) => throttle_time_ms [responses]
 *     throttle_time_ms => INT32
 *     responses => error_code error_message resource_type resource_name
 *       error_code => INT16
 *       error_message => NULLABLE_STRING
 *       resource_type => INT8
 *       resource_name => STRING
 *   IncrementalAlterConfigs Response (Version: 1) => the same, compact, with TAG_BUFFERs
 *
 * Errors as AlterConfigs (./alter-configs.ts), plus INVALID_REQUEST for a
 * config named twice or an unknown operation and INVALID_CONFIG for APPEND
 * or SUBTRACT on a config that is not a list. See ../config-change.ts.
 *
 * @module
 */

import type { Reader } from '../codec/reader.js';
import { changeEachResource, changeTopicConfigs, type ConfigChangeResult, type IncrementalConfig } from '../config-change.js';
import { defineApi } from './api.js';

/** One resource of a IncrementalAlterConfigs request. */
export interface IncrementalAlterConfigsResource {
  resourceType: number;
  resourceName: string;
  configs: IncrementalConfig[];
}

/** A IncrementalAlterConfigs request body, decoded (grammar in the file header). */
export interface IncrementalAlterConfigsRequest {
  resources: IncrementalAlterConfigsResource[];
  validateOnly: boolean;
}

/** One resource's or topic's result in a IncrementalAlterConfigs response. */
export interface IncrementalAlterConfigsResult extends ConfigChangeResult {
  resourceType: number;
  resourceName: string;
}

/** A IncrementalAlterConfigs response body, to encode (grammar in the file header). */
export interface IncrementalAlterConfigsResponse {
  responses: IncrementalAlterConfigsResult[];
}

/** The IncrementalAlterConfigs API (key 44): its versions, request decoder, handler and response encoder; the grammar is in the file header. */
export const incrementalAlterConfigs = defineApi<IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse>({
  key: 44,
  name: 'IncrementalAlterConfigs',
  minVersion: 0,
  maxVersion: 1,
  flexibleVersion: 1,

  decode(reader, version) {
    if (version >= 1) return decodeFlexible(reader);
    const resources = reader.array((r) => ({
      resourceType: r.int8(),
      resourceName: r.string(),
      configs: r.array((c) => ({ name: c.string(), operation: c.int8(), value: c.nullableString() })),
    }));
    return { resources, validateOnly: reader.boolean() };
  },

  async handle(request, context) {
    const responses = await changeEachResource(request.resources, context, (topic, configs) =>
      changeTopicConfigs(topic, configs, request.validateOnly, context),
    );
    return { responses };
  },

  encode(writer, version, response) {
    writer.int32(0);
    if (version >= 1) {
      writer.compactArray(response.responses, (w, r) => {
        w.int16(r.errorCode).compactNullableString(r.errorMessage).int8(r.resourceType).compactString(r.resourceName).emptyTaggedFields();
      });
      writer.emptyTaggedFields();
      return;
    }
    writer.array(response.responses, (w, r) => w.int16(r.errorCode).nullableString(r.errorMessage).int8(r.resourceType).string(r.resourceName));
  },

  errorResponse(request, errorCode) {
    return { responses: request.resources.map((r) => ({ errorCode, errorMessage: null, resourceType: r.resourceType, resourceName: r.resourceName })) };
  },
});

function decodeFlexible(reader: Reader): IncrementalAlterConfigsRequest {
  const resources = reader.compactArray((r) => {
    const resource = {
      resourceType: r.int8(),
      resourceName: r.compactString(),
      configs: r.compactArray((c) => {
        const config = { name: c.compactString(), operation: c.int8(), value: c.compactNullableString() };
        c.taggedFields();
        return config;
      }),
    };
    r.taggedFields();
    return resource;
  });
  const request = { resources, validateOnly: reader.boolean() };
  reader.taggedFields();
  return request;
}
