/**
 * Request and response headers (https://kafka.apache.org/protocol#protocol_messages).
 *
 *   Request Header v1 => request_api_key request_api_version correlation_id client_id
 *     request_api_key => INT16
 *     request_api_version => INT16
 *     correlation_id => INT32
 *     client_id => NULLABLE_STRING
 *   Request Header v2 => request_api_key request_api_version correlation_id client_id TAG_BUFFER
 *
 *   Response Header v0 => correlation_id
 *     correlation_id => INT32
 *   Response Header v1 => correlation_id TAG_BUFFER
 *
 * Version 2 of the request header (and 1 of the response header) goes with
 * an API's flexible versions (KIP-482). The client_id stays a classic
 * NULLABLE_STRING even in v2. The ApiVersions response header is always v0,
 * so a client that does not yet know the broker's versions can read it.
 *
 * @module
 */

import type { Reader } from './reader.js';
import type { Writer } from './writer.js';

/** The fields of a request header Concordat uses (v1 and v2 alike; v2's tagged fields are skipped). */
export interface RequestHeader {
  apiKey: number;
  apiVersion: number;
  correlationId: number;
  clientId: string | null;
}

/** Bytes before the client_id: api key, api version, correlation ID. */
export const REQUEST_HEADER_PREFIX_BYTES = 8;
/** The shortest request header: the prefix and a null client_id. */
export const REQUEST_HEADER_MIN_BYTES = REQUEST_HEADER_PREFIX_BYTES + 2;

/** Reads the fields every request header version shares, up to and including client_id. */
export function readRequestHeader(reader: Reader): RequestHeader {
  const apiKey = reader.int16();
  const apiVersion = reader.int16();
  const correlationId = reader.int32();
  const clientId = reader.nullableString();
  return { apiKey, apiVersion, correlationId, clientId };
}

/** Reads the rest of a v2 request header (its tagged fields), which Concordat ignores. */
export function readRequestHeaderTail(reader: Reader, headerVersion: 1 | 2): void {
  if (headerVersion === 2) reader.taggedFields();
}

/** Writes a response header: the request's correlation ID, then, for v1 (flexible versions), an empty tagged-field section. */
export function writeResponseHeader(writer: Writer, correlationId: number, headerVersion: 0 | 1): void {
  writer.int32(correlationId);
  if (headerVersion === 1) writer.emptyTaggedFields();
}

/** Peeks at a frame's api key and version without parsing further (for logging bad frames). */
export function peekApi(frame: Buffer): { apiKey: number; apiVersion: number } | null {
  if (frame.length < 4) return null;
  return { apiKey: frame.readInt16BE(0), apiVersion: frame.readInt16BE(2) };
}
