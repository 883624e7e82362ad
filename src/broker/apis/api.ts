import type { Reader } from '../codec/reader.js';
import type { Writer } from '../codec/writer.js';
import type { RequestContext } from '../context.js';

/**
 * What one wire API provides to the connection: its key and the versions
 * Concordat serves, a decoder for its request body, the handler, and an
 * encoder for its response body. The connection does the header, the
 * framing and the ordering; an API file only knows its own grammar.
 *
 * `handle` returns `null` for "no response" (Produce with acks = 0).
 * `errorResponse` builds the response for a request whose handler threw,
 * with that error code on every part, as Kafka's `getErrorResponse` does.
 */
export interface Api<Request, Response> {
  /** Kafka's API key (Produce 0, Fetch 1, ...). */
  readonly key: number;
  /** Kafka's name of the API, for logs and the latency histogram's `api` label. */
  readonly name: string;
  /** Lowest version served; ApiVersions advertises minVersion..maxVersion. */
  readonly minVersion: number;
  /** Highest version served; a request outside the range closes the connection (but a newer ApiVersions gets a v0 UNSUPPORTED_VERSION answer, KIP-511). */
  readonly maxVersion: number;
  /** First flexible version (KIP-482), or null when every served version is classic. */
  readonly flexibleVersion: number | null;
  /** May be sent before SASL authentication completes (ApiVersions, the SASL APIs). */
  readonly beforeAuthentication?: boolean;
  /** Reads the request body of `version` (the reader's `flexible` is already set for it). @throws ConcordatError FRAME_INVALID when the body breaks the grammar or a reader limit */
  decode(reader: Reader, version: number): Request;
  /**
   * Serves the request. Called synchronously in frame order per connection:
   * what it does before its first await follows the order of the requests.
   * Errors meant for the client go in the response; what it throws is
   * answered with {@link errorResponse}.
   */
  handle(request: Request, context: RequestContext): Promise<Response | null> | Response | null;
  /** Writes the response body of `version` (the header is the connection's; the writer's `flexible` is already set for it). */
  encode(writer: Writer, version: number, response: Response): void;
  /**
   * The response to a request whose handler threw: `errorCode` (the thrown
   * error's Kafka code) on every part. `request` is null for ApiVersions
   * answered UNSUPPORTED_VERSION before its body was read.
   */
  errorResponse(request: Request, errorCode: number, context: RequestContext): Response;
}

/** An API with its request and response types erased, for the registration table. */
export type AnyApi = Api<any, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** Identity helper that keeps an API object's types checked where it is defined. */
export function defineApi<Request, Response>(api: Api<Request, Response>): Api<Request, Response> {
  return api;
}

/** Whether `version` of `api` is a flexible version (KIP-482: compact strings, arrays and bytes, tagged fields). */
export function isFlexible(api: AnyApi, version: number): boolean {
  return api.flexibleVersion !== null && version >= api.flexibleVersion;
}

/** The request header version for `version` of `api`. */
export function requestHeaderVersion(api: AnyApi, version: number): 1 | 2 {
  return isFlexible(api, version) ? 2 : 1;
}

/** The response header version: 1 for flexible versions, except ApiVersions which always answers with v0. */
export function responseHeaderVersion(api: AnyApi, version: number): 0 | 1 {
  if (api.key === 18) return 0;
  return isFlexible(api, version) ? 1 : 0;
}
