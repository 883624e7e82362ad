export {
  CONTENT_TYPE_HEADER,
  HEADER_PREFIX,
  createEnvelope,
  envelopeFromDelivery,
  envelopeHeaders,
  envelopeToRecord,
  isUsableMessageId,
  type Envelope,
  type EnvelopeInit,
} from './envelope.js';
export { isMessageId, newMessageId } from './message-id.js';
export { type JsonPrimitive, type JsonSafe, type JsonValue } from './json.js';
export { bytesSerializer, jsonSerializer, serializerFor, type Serializer } from './serializer.js';
