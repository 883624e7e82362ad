/**
 * ApiVersions (key 18), v0-v3. The first request of every client: which
 * APIs and versions this broker serves.
 *
 *   ApiVersions Request (Version: 0-2) =>
 *   ApiVersions Request (Version: 3) => client_software_name client_software_version TAG_BUFFER
 *     client_software_name => COMPACT_STRING
 *     client_software_version => COMPACT_STRING
 *
 *   ApiVersions Response (Version: 0) => error_code [api_keys]
 *     error_code => INT16
 *     api_keys => api_key min_version max_version
 *       api_key => INT16
 *       min_version => INT16
 *       max_version => INT16
 *   ApiVersions Response (Version: 1-2) => error_code [api_keys] throttle_time_ms
 *     throttle_time_ms => INT32
 *   ApiVersions Response (Version: 3) => error_code [api_keys<COMPACT> TAG_BUFFER] throttle_time_ms TAG_BUFFER
 *
 * A request for a version above 3 is answered (by the connection) with a v0
 * body, UNSUPPORTED_VERSION and the full list, so the client retries with a
 * version both sides know (KIP-511). The response header is always v0.
 *
 * @module
 */

import { KafkaError } from '../codec/error-codes.js';
import { defineApi } from './api.js';

/** An ApiVersions request body, decoded (grammar in the file header). */
export interface ApiVersionsRequest {
  clientSoftwareName: string | null;
  clientSoftwareVersion: string | null;
}

/** An ApiVersions response body, to encode (grammar in the file header). */
export interface ApiVersionsResponse {
  errorCode: number;
  apiKeys: { apiKey: number; minVersion: number; maxVersion: number }[];
}

/** KIP-511: what a client_software_name or _version may look like. */
const SOFTWARE_PATTERN = /^[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?$/;

/** The ApiVersions API (key 18): its versions, request decoder, handler and response encoder; the grammar is in the file header. */
export const apiVersions = defineApi<ApiVersionsRequest | null, ApiVersionsResponse>({
  key: 18,
  name: 'ApiVersions',
  minVersion: 0,
  maxVersion: 3,
  flexibleVersion: 3,
  beforeAuthentication: true,

  decode(reader, version) {
    if (version < 3) return { clientSoftwareName: null, clientSoftwareVersion: null };
    const request = { clientSoftwareName: reader.compactString(), clientSoftwareVersion: reader.compactString() };
    reader.taggedFields();
    return request;
  },

  handle(request, context) {
    const valid =
      request === null ||
      request.clientSoftwareName === null ||
      (SOFTWARE_PATTERN.test(request.clientSoftwareName) && SOFTWARE_PATTERN.test(request.clientSoftwareVersion ?? ''));
    return this.errorResponse(request, valid ? KafkaError.NONE : KafkaError.INVALID_REQUEST, context);
  },

  encode(writer, version, response) {
    writer.int16(response.errorCode);
    if (version >= 3) {
      writer.compactArray(response.apiKeys, (w, api) => {
        w.int16(api.apiKey).int16(api.minVersion).int16(api.maxVersion).emptyTaggedFields();
      });
    } else {
      writer.array(response.apiKeys, (w, api) => w.int16(api.apiKey).int16(api.minVersion).int16(api.maxVersion));
    }
    if (version >= 1) writer.int32(0);
    if (version >= 3) writer.emptyTaggedFields();
  },

  errorResponse(_request, errorCode, context) {
    const apiKeys = [...context.broker.apis.values()]
      .map((api) => ({ apiKey: api.key, minVersion: api.minVersion, maxVersion: api.maxVersion }))
      .sort((a, b) => a.apiKey - b.apiKey);
    return { errorCode, apiKeys };
  },
});
