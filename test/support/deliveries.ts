import { createEnvelope, envelopeToRecord, type EnvelopeInit } from '../../src/messaging/index.js';
import type { Delivery } from '../../src/transport/index.js';

let nextOffset = 0;

/** The record a consumer would receive for a CloudEvent published on `topic`. */
export function deliveryOf<T>(topic: string, init: EnvelopeInit<T>, partition = 0): Delivery {
  const record = envelopeToRecord(createEnvelope(init), topic);
  const headers: Record<string, Buffer> = {};
  for (const [key, value] of Object.entries(record.headers)) headers[key] = Buffer.isBuffer(value) ? value : Buffer.from(value);
  return {
    topic,
    partition,
    offset: nextOffset++,
    key: record.key === null ? null : Buffer.from(record.key),
    value: record.value,
    headers,
    timestampMs: record.timestampMs ?? Date.now(),
  };
}
