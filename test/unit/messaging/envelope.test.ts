import { CloudEvent, Kafka, type KafkaMessage } from 'cloudevents';
import { describe, expect, it } from 'vitest';
import { createEnvelope, envelopeFromDelivery, envelopeToRecord, isMessageId, type Envelope } from '../../../src/messaging/index.js';
import type { Delivery } from '../../../src/transport/index.js';

function deliver(record: ReturnType<typeof envelopeToRecord>): Delivery {
  const headers: Record<string, Buffer> = {};
  for (const [key, value] of Object.entries(record.headers)) headers[key] = Buffer.isBuffer(value) ? value : Buffer.from(value);
  return {
    topic: record.topic,
    partition: 0,
    offset: 42,
    key: record.key === null ? null : Buffer.from(record.key),
    value: record.value,
    headers,
    timestampMs: record.timestampMs ?? 0,
  };
}

describe('CloudEvents envelope in Kafka binary mode', () => {
  const envelope = createEnvelope({
    type: 'order.placed',
    source: 'order-service',
    data: { orderId: 'o-1', total: 1250 },
    partitionkey: 'o-1',
    correlationid: 'c-1',
    globaltxid: 'g-1',
    extensions: { tenant: 'acme' },
  });

  it('fills id with a UUIDv7, time with now and the JSON content type', () => {
    expect(isMessageId(envelope.id)).toBe(true);
    expect(Math.abs(Date.parse(envelope.time) - Date.now())).toBeLessThan(5_000);
    expect(envelope.datacontenttype).toBe('application/json');
  });

  it('maps attributes to ce_ headers, data to the value and partitionkey to the key', () => {
    const record = envelopeToRecord(envelope, 'orders');
    expect(record.key).toBe('o-1');
    expect(JSON.parse(record.value!.toString())).toEqual({ orderId: 'o-1', total: 1250 });
    expect(record.headers).toEqual({
      ce_specversion: '1.0',
      ce_id: envelope.id,
      ce_type: 'order.placed',
      ce_source: 'order-service',
      ce_time: envelope.time,
      'content-type': 'application/json',
      ce_partitionkey: 'o-1',
      ce_correlationid: 'c-1',
      ce_globaltxid: 'g-1',
      ce_tenant: 'acme',
    });
  });

  it('round-trips through a delivered record', () => {
    const back: Envelope = envelopeFromDelivery(deliver(envelopeToRecord(envelope, 'orders')));
    expect(back).toEqual(envelope);
  });

  it('is read back by the CloudEvents SDK as the same event', () => {
    const record = envelopeToRecord(envelope, 'orders');
    const message: KafkaMessage<string> = {
      headers: record.headers as Record<string, string>,
      key: record.key ?? '',
      value: record.value!.toString(),
      body: record.value!.toString(),
      timestamp: String(record.timestampMs),
    };
    const event = Kafka.toEvent(message) as CloudEvent<unknown>;
    expect(event.id).toBe(envelope.id);
    expect(event.type).toBe('order.placed');
    expect(event.source).toBe('order-service');
    expect(event.data).toEqual({ orderId: 'o-1', total: 1250 });
    expect(event['globaltxid']).toBe('g-1');
    expect(event.validate()).toBe(true);
  });

  it('rejects a record that is not a binary-mode CloudEvent', () => {
    const delivery = deliver(envelopeToRecord(envelope, 'orders'));
    delete delivery.headers.ce_specversion;
    expect(() => envelopeFromDelivery(delivery)).toThrow('record orders/0@42 is not a CloudEvent 1.0 in binary mode (ce_specversion=absent)');
    const noId = deliver(envelopeToRecord(envelope, 'orders'));
    delete noId.headers.ce_id;
    expect(() => envelopeFromDelivery(noId)).toThrow('record orders/0@42 lacks the ce_id header');
  });

  it('rejects extension names the spec forbids', () => {
    expect(() => createEnvelope({ type: 't', source: 's', data: 1, extensions: { Bad_Name: 'x' } })).toThrow(
      "'Bad_Name' is not a valid CloudEvents extension attribute name: use 1-20 lower-case letters or digits, not a reserved attribute",
    );
  });
});

describe('records the inbox could not deduplicate', () => {
  const envelope = createEnvelope({ type: 'order.placed', source: 'order-service', data: { ok: true } });
  const deliverWith = (change: (headers: Record<string, Buffer>) => void): Delivery => {
    const record = envelopeToRecord(envelope, 'orders');
    const headers: Record<string, Buffer> = {};
    for (const [key, value] of Object.entries(record.headers)) headers[key] = Buffer.from(value as string);
    change(headers);
    return { topic: 'orders', partition: 1, offset: 7, key: null, value: record.value, headers, timestampMs: 0 };
  };

  it('refuses a ce_id with control characters or over 256 characters', () => {
    const message = 'record orders/1@7 has an unusable ce_id: at most 256 characters, no control characters';
    expect(() => envelopeFromDelivery(deliverWith((h) => (h.ce_id = Buffer.from('id\nwith newline'))))).toThrow(message);
    expect(() => envelopeFromDelivery(deliverWith((h) => (h.ce_id = Buffer.from('x'.repeat(257)))))).toThrow(message);
    expect(envelopeFromDelivery(deliverWith((h) => (h.ce_id = Buffer.from('x'.repeat(256))))).id).toBe('x'.repeat(256));
  });

  it('refuses a NUL byte in any header', () => {
    expect(() => envelopeFromDelivery(deliverWith((h) => (h.ce_tenant = Buffer.from([0x61, 0x00, 0x62]))))).toThrow(
      "record orders/1@7 has a NUL byte in header 'ce_tenant'",
    );
    expect(() => envelopeFromDelivery(deliverWith((h) => (h.ce_id = Buffer.from([0x61, 0x00]))))).toThrow(/NUL byte in header 'ce_id'/);
  });
});
