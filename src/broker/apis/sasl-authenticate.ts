/**
 * SaslAuthenticate (key 36), v0-v2 (v2 flexible, KIP-482): one SASL token each way (KIP-152).
 *
 *   SaslAuthenticate Request (Version: 0-1) => auth_bytes
 *     auth_bytes => BYTES
 *
 *   SaslAuthenticate Response (Version: 0) => error_code error_message auth_bytes
 *     error_code => INT16
 *     error_message => NULLABLE_STRING
 *     auth_bytes => BYTES
 *   SaslAuthenticate Response (Version: 1) => error_code error_message auth_bytes session_lifetime_ms
 *     session_lifetime_ms => INT64
 *
 * A failure is answered with SASL_AUTHENTICATION_FAILED and its reason, then
 * the connection is closed, as Kafka does. session_lifetime_ms (KIP-368) is
 * the broker's `connectionsMaxReauthMs` when this token completed an
 * authentication (0, the default: sessions never end); the client must
 * authenticate again on the connection within it (session.ts).
 *
 * v2 is v1, flexible (compact bytes and strings, a TAG_BUFFER ends each struct).
 * Source: clients/src/main/resources/common/message/SaslAuthenticate{Request,Response}.json.
 *
 * @module
 */

import { KafkaError } from '../codec/error-codes.js';
import { defineApi } from './api.js';

/** A SaslAuthenticate request body, decoded (grammar in the file header). */
export interface SaslAuthenticateRequest {
  authBytes: Buffer;
}

/** A SaslAuthenticate response body, to encode (grammar in the file header). */
export interface SaslAuthenticateResponse {
  errorCode: number;
  errorMessage: string | null;
  authBytes: Buffer;
  /** v1: ms the session lasts from now; 0: forever, or not completed yet. */
  sessionLifetimeMs: number;
}

/** The SaslAuthenticate API (key 36): its versions, request decoder, handler and response encoder; the grammar is in the file header. */
export const saslAuthenticate = defineApi<SaslAuthenticateRequest, SaslAuthenticateResponse>({
  key: 36,
  name: 'SaslAuthenticate',
  minVersion: 0,
  maxVersion: 2,
  flexibleVersion: 2,
  beforeAuthentication: true,

  decode(reader) {
    const request = { authBytes: reader.flexBytes() };
    reader.flexTags();
    return request;
  },

  handle(request, context) {
    const sasl = context.connection.sasl;
    if (sasl === null) {
      return { errorCode: KafkaError.ILLEGAL_SASL_STATE, errorMessage: 'SASL is not enabled', authBytes: Buffer.alloc(0), sessionLifetimeMs: 0 };
    }
    const outcome = sasl.authenticate(request.authBytes);
    if (outcome.errorCode !== KafkaError.NONE) {
      context.connection.closeAfterResponse(`SASL authentication failed: ${outcome.errorMessage ?? ''}`);
    } else if (sasl.state === 'complete') {
      context.broker.logger.debug(
        { connection: context.connection.id, principal: sasl.principal, authentications: sasl.authentications, sessionLifetimeMs: outcome.sessionLifetimeMs },
        sasl.authentications > 1 ? 'SASL re-authenticated' : 'SASL authenticated',
      );
    }
    return outcome;
  },

  encode(writer, version, response) {
    writer.int16(response.errorCode).flexNullableString(response.errorMessage).flexBytes(response.authBytes);
    if (version >= 1) writer.int64(response.sessionLifetimeMs);
    writer.flexTags();
  },

  errorResponse(_request, errorCode) {
    return { errorCode, errorMessage: null, authBytes: Buffer.alloc(0), sessionLifetimeMs: 0 };
  },
});
