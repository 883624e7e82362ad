/**
 * SaslHandshake (key 17), v0-v1: the client names its SASL mechanism.
 *
 *   SaslHandshake Request (Version: 0-1) => mechanism
 *     mechanism => STRING
 *
 *   SaslHandshake Response (Version: 0-1) => error_code [mechanisms]
 *     error_code => INT16
 *     mechanisms => STRING
 *
 * After v0 the client sends bare SASL tokens; after v1 it sends
 * SaslAuthenticate requests (KIP-152). A broker without SASL answers
 * ILLEGAL_SASL_STATE, as Kafka does on a PLAINTEXT listener.
 *
 * @module
 */

import { KafkaError } from '../codec/error-codes.js';
import { defineApi } from './api.js';

/** A SaslHandshake request body, decoded (grammar in the file header). */
export interface SaslHandshakeRequest {
  mechanism: string;
}

/** A SaslHandshake response body, to encode (grammar in the file header). */
export interface SaslHandshakeResponse {
  errorCode: number;
  mechanisms: readonly string[];
}

/** The SaslHandshake API (key 17): its versions, request decoder, handler and response encoder; the grammar is in the file header. */
export const saslHandshake = defineApi<SaslHandshakeRequest, SaslHandshakeResponse>({
  key: 17,
  name: 'SaslHandshake',
  minVersion: 0,
  maxVersion: 1,
  flexibleVersion: null,
  beforeAuthentication: true,

  decode(reader) {
    return { mechanism: reader.string() };
  },

  handle(request, context) {
    const sasl = context.connection.sasl;
    if (sasl === null) return { errorCode: KafkaError.ILLEGAL_SASL_STATE, mechanisms: [] };
    const errorCode = sasl.handshake(request.mechanism, context.header.apiVersion);
    if (errorCode !== KafkaError.NONE) {
      context.connection.closeAfterResponse(`SASL handshake refused mechanism "${request.mechanism}"`);
    }
    return { errorCode, mechanisms: sasl.offered };
  },

  encode(writer, _version, response) {
    writer.int16(response.errorCode).array(response.mechanisms, (w, mechanism) => w.string(mechanism));
  },

  errorResponse(_request, errorCode, context) {
    return { errorCode, mechanisms: context.connection.sasl?.offered ?? [] };
  },
});
