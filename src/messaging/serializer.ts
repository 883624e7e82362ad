import { ConcordatError, ErrorCode } from '../errors.js';

/**
 * Turns a message's `data` into record value bytes and back. The content type
 * travels as the CloudEvents `datacontenttype` (header `content-type` in Kafka
 * binary mode).
 */
export interface Serializer {
  readonly contentType: string;
  serialize(data: unknown): Buffer | null;
  deserialize(bytes: Buffer | null): unknown;
}

/** `application/json`: UTF-8 JSON. `undefined` and `null` data travel as a null value. */
export const jsonSerializer: Serializer = {
  contentType: 'application/json',
  serialize(data: unknown): Buffer | null {
    if (data === undefined || data === null) return null;
    try {
      return Buffer.from(JSON.stringify(data), 'utf8');
    } catch (cause) {
      throw new ConcordatError(`message data is not JSON-serializable: ${(cause as Error).message}`, {
        code: ErrorCode.SERIALIZATION_FAILED,
        cause,
      });
    }
  },
  deserialize(bytes: Buffer | null): unknown {
    if (bytes === null || bytes.length === 0) return null;
    try {
      return JSON.parse(bytes.toString('utf8'));
    } catch (cause) {
      throw new ConcordatError(`record value is not valid JSON: ${(cause as Error).message}`, {
        code: ErrorCode.SERIALIZATION_FAILED,
        cause,
      });
    }
  },
};

/** `application/octet-stream`: the value is the bytes themselves. */
export const bytesSerializer: Serializer = {
  contentType: 'application/octet-stream',
  serialize(data: unknown): Buffer | null {
    if (data === undefined || data === null) return null;
    if (!Buffer.isBuffer(data)) {
      throw new ConcordatError('application/octet-stream data must be a Buffer', { code: ErrorCode.SERIALIZATION_FAILED });
    }
    return data;
  },
  deserialize(bytes: Buffer | null): unknown {
    return bytes;
  },
};

const byContentType = new Map<string, Serializer>([
  [jsonSerializer.contentType, jsonSerializer],
  [bytesSerializer.contentType, bytesSerializer],
]);

/** The serializer for a content type (parameters such as `; charset=utf-8` ignored); JSON when absent. */
export function serializerFor(contentType: string | undefined): Serializer {
  // The common case first, without splitting and lower-casing: every message asks.
  if (contentType === undefined || contentType === '' || contentType === 'application/json') return jsonSerializer;
  const bare = contentType.split(';')[0]!.trim().toLowerCase();
  if (bare.endsWith('+json')) return jsonSerializer;
  const found = byContentType.get(bare);
  if (found === undefined) {
    throw new ConcordatError(`no serializer for content type '${contentType}'; use application/json or application/octet-stream`, {
      code: ErrorCode.SERIALIZATION_FAILED,
    });
  }
  return found;
}
