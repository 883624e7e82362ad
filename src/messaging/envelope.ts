import { ConcordatError, ErrorCode } from '../errors.js';
import type { Delivery, OutgoingRecord } from '../transport/index.js';
import { newMessageId } from './message-id.js';
import { serializerFor } from './serializer.js';

/**
 * Every Concordat message is a CloudEvent 1.0
 * (https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/spec.md) and
 * travels in the Kafka protocol binding's *binary* content mode
 * (https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/bindings/kafka-protocol-binding.md §3.2):
 * the record value is `data`, each attribute is a header `ce_<name>` with a
 * UTF-8 string value, `datacontenttype` is the `content-type` header, and the
 * `partitionkey` extension is the record key, so messages with the same key
 * keep their order end to end.
 *
 * Concordat's own extension attributes (names follow §3.1.1: lower-case
 * letters and digits only):
 * - `correlationid`: the ID of the first message of a conversation;
 * - `causationid`: the ID of the message whose handler published this one;
 * - `globaltxid`: the global transaction this message belongs to;
 * - `traceparent` / `tracestate`: W3C trace context (distributed tracing extension).
 */
export interface Envelope<T = unknown> {
  specversion: '1.0';
  /** UUIDv7; the dedup key of the inbox and of the log's dedup window. */
  id: string;
  type: string;
  source: string;
  /** RFC 3339 timestamp of the event. */
  time: string;
  datacontenttype: string;
  subject?: string;
  data: T;
  partitionkey?: string;
  correlationid?: string;
  causationid?: string;
  globaltxid?: string;
  traceparent?: string;
  tracestate?: string;
  /** Further extension attributes, string-valued. */
  extensions?: Record<string, string>;
}

/**
 * What a caller gives to build an envelope: the attributes of an
 * {@link Envelope} but `specversion`; `id`, `time` and `datacontenttype`
 * may be left out, and are then filled in ({@link createEnvelope}).
 */
export type EnvelopeInit<T = unknown> = Omit<Envelope<T>, 'specversion' | FilledIn> & Partial<Pick<Envelope<T>, FilledIn>>;

/** The attributes {@link createEnvelope} fills in when the caller leaves them out. */
type FilledIn = 'id' | 'time' | 'datacontenttype';

const CORE_OPTIONAL = ['subject'] as const;
const KNOWN_EXTENSIONS = ['partitionkey', 'correlationid', 'causationid', 'globaltxid', 'traceparent', 'tracestate'] as const;
const REQUIRED = ['id', 'source', 'type'] as const;
const EXTENSION_NAME = /^[a-z0-9]{1,20}$/;
const RESERVED = new Set<string>([
  'specversion',
  'id',
  'type',
  'source',
  'time',
  'datacontenttype',
  'data',
  'dataschema',
  ...CORE_OPTIONAL,
  ...KNOWN_EXTENSIONS,
]);
/** The optional attributes copied one by one (one array for every envelope, not one per call). */
const OPTIONAL_ATTRIBUTES = [...CORE_OPTIONAL, ...KNOWN_EXTENSIONS] as const;

/** Prefix of the record headers that carry CloudEvents attributes in Kafka binary mode (`ce_id`, `ce_type`, ...). */
export const HEADER_PREFIX = 'ce_';
/** Longest `ce_id` accepted from the log: the inbox's dedup key, so it stays a short printable string. */
export const MESSAGE_ID_LENGTH_MAX = 256;
// eslint-disable-next-line no-control-regex
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f]/;
/** The record header that carries `datacontenttype` in Kafka binary mode. */
export const CONTENT_TYPE_HEADER = 'content-type';

/** Whether `id` can be a message ID from the log: 1..{@link MESSAGE_ID_LENGTH_MAX} characters, no control characters. */
export function isUsableMessageId(id: string): boolean {
  return id.length > 0 && id.length <= MESSAGE_ID_LENGTH_MAX && !CONTROL_CHARACTERS.test(id);
}

/** Builds a complete envelope: a new UUIDv7 `id`, `time` now, JSON content type unless given. */
export function createEnvelope<T>(init: EnvelopeInit<T>): Envelope<T> {
  const envelope: Envelope<T> = {
    specversion: '1.0',
    id: init.id ?? newMessageId(),
    type: init.type,
    source: init.source,
    time: init.time ?? new Date().toISOString(),
    datacontenttype: init.datacontenttype ?? 'application/json',
    data: init.data,
  };
  for (const name of OPTIONAL_ATTRIBUTES) {
    const value = init[name];
    if (value !== undefined) envelope[name] = value;
  }
  if (init.extensions !== undefined) {
    for (const name of Object.keys(init.extensions)) assertExtensionName(name);
    envelope.extensions = { ...init.extensions };
  }
  for (const name of REQUIRED) {
    if (typeof envelope[name] !== 'string' || envelope[name] === '') {
      throw new ConcordatError(`CloudEvent attribute '${name}' must be a non-empty string`, { code: ErrorCode.ENVELOPE_INVALID });
    }
  }
  return envelope;
}

/** Record headers (binary mode) for an envelope; `data` travels separately as the value. */
export function envelopeHeaders(envelope: Envelope): Record<string, string> {
  const headers: Record<string, string> = {
    ce_specversion: envelope.specversion,
    ce_id: envelope.id,
    ce_type: envelope.type,
    ce_source: envelope.source,
    ce_time: envelope.time,
    [CONTENT_TYPE_HEADER]: envelope.datacontenttype,
  };
  for (const name of OPTIONAL_ATTRIBUTES) {
    const value = envelope[name];
    if (value !== undefined) headers[HEADER_PREFIX + name] = value;
  }
  if (envelope.extensions !== undefined) for (const [name, value] of Object.entries(envelope.extensions)) headers[HEADER_PREFIX + name] = value;
  return headers;
}

/** The record that carries `envelope` on `topic`, in binary mode. */
export function envelopeToRecord(envelope: Envelope, topic: string): OutgoingRecord {
  return {
    topic,
    key: envelope.partitionkey ?? null,
    value: serializerFor(envelope.datacontenttype).serialize(envelope.data),
    headers: envelopeHeaders(envelope),
    timestampMs: Date.parse(envelope.time),
  };
}

/**
 * Reads the envelope back from a delivered record.
 *
 * @throws ConcordatError ENVELOPE_INVALID when `ce_specversion`, `ce_id`,
 *   `ce_type` or `ce_source` is missing (the record was not written in binary
 *   mode), when `ce_id` is longer than {@link MESSAGE_ID_LENGTH_MAX} or holds
 *   control characters, or when any header holds a NUL byte (PostgreSQL could
 *   store neither); SERIALIZATION_FAILED when the value does not parse.
 */
export function envelopeFromDelivery<T = unknown>(delivery: Delivery): Envelope<T> {
  // One pass over the headers (a record carries a dozen): each ce_ value decoded once, NUL bytes noted.
  const attributes: Record<string, string> = {};
  let extensions: Record<string, string> | undefined;
  let withNul: string | undefined;
  for (const header of Object.keys(delivery.headers)) {
    const value = delivery.headers[header]!;
    if (withNul === undefined && value.includes(0)) withNul = header;
    if (!header.startsWith(HEADER_PREFIX)) continue;
    const name = header.slice(HEADER_PREFIX.length);
    if (RESERVED.has(name)) attributes[name] = value.toString('utf8');
    else (extensions ??= {})[name] = value.toString('utf8');
  }
  const attribute = (name: string): string | undefined => attributes[name];
  const specversion = attribute('specversion');
  if (specversion !== '1.0') {
    throw new ConcordatError(
      `record ${delivery.topic}/${delivery.partition}@${delivery.offset} is not a CloudEvent 1.0 in binary mode (ce_specversion=${specversion ?? 'absent'})`,
      { code: ErrorCode.ENVELOPE_INVALID, context: { topic: delivery.topic, partition: delivery.partition, offset: delivery.offset } },
    );
  }
  const required = (name: (typeof REQUIRED)[number]): string => {
    const value = attribute(name);
    if (value === undefined || value === '') {
      throw new ConcordatError(`record ${delivery.topic}/${delivery.partition}@${delivery.offset} lacks the ce_${name} header`, {
        code: ErrorCode.ENVELOPE_INVALID,
        context: { topic: delivery.topic, partition: delivery.partition, offset: delivery.offset },
      });
    }
    return value;
  };
  // PostgreSQL refuses NUL in text and jsonb: such a header could be neither
  // deduplicated (inbox) nor stored (dead letter), so the record is refused here.
  if (withNul !== undefined) {
    throw new ConcordatError(`record ${delivery.topic}/${delivery.partition}@${delivery.offset} has a NUL byte in header '${withNul.replace(/\0/g, '\\0')}'`, {
      code: ErrorCode.ENVELOPE_INVALID,
      context: { topic: delivery.topic, partition: delivery.partition, offset: delivery.offset, header: withNul },
    });
  }
  const id = required('id');
  if (!isUsableMessageId(id)) {
    throw new ConcordatError(
      `record ${delivery.topic}/${delivery.partition}@${delivery.offset} has an unusable ce_id: at most ${MESSAGE_ID_LENGTH_MAX} characters, no control characters`,
      { code: ErrorCode.ENVELOPE_INVALID, context: { topic: delivery.topic, partition: delivery.partition, offset: delivery.offset } },
    );
  }
  const datacontenttype = delivery.headers[CONTENT_TYPE_HEADER]?.toString('utf8') ?? 'application/json';
  const envelope: Envelope<T> = {
    specversion: '1.0',
    id,
    type: required('type'),
    source: required('source'),
    time: attribute('time') ?? new Date(delivery.timestampMs).toISOString(),
    datacontenttype,
    data: serializerFor(datacontenttype).deserialize(delivery.value) as T,
  };
  for (const name of OPTIONAL_ATTRIBUTES) {
    const value = attribute(name);
    if (value !== undefined) envelope[name] = value;
  }
  if (envelope.partitionkey === undefined && delivery.key !== null) envelope.partitionkey = delivery.key.toString('utf8');
  if (extensions !== undefined) envelope.extensions = extensions;
  return envelope;
}

function assertExtensionName(name: string): void {
  if (!EXTENSION_NAME.test(name) || RESERVED.has(name)) {
    throw new ConcordatError(`'${name}' is not a valid CloudEvents extension attribute name: use 1-20 lower-case letters or digits, not a reserved attribute`, {
      code: ErrorCode.ENVELOPE_INVALID,
    });
  }
}
