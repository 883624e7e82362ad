/**
 * The trace span of a message's processing and the delivery facts its
 * handler sees (`ctx.delivery`).
 */
import { extractTraceContext, MESSAGING_SYSTEM, SpanKind, startSpan, TraceAttribute, type Span } from '../../observability/index.js';
import type { Envelope } from '../../messaging/index.js';
import type { Delivery } from '../../transport/index.js';
import type { DeliveryInfo } from '../context.js';
import type { HandlerDescriptor } from '../explorer.js';

/**
 * The `process` span of one message's run by `handler`: a child of the
 * creation context the message carries (`traceparent`), so the trace goes
 * on across services.
 */
export function startProcessSpan(group: string, handler: HandlerDescriptor, envelope: Envelope, delivery: Delivery): Span {
  return startSpan(`process ${delivery.topic}`, SpanKind.CONSUMER, extractTraceContext(envelope), {
    ...spanAttributes(group, handler, delivery),
    [TraceAttribute.MESSAGE_ID]: envelope.id,
    ...(envelope.partitionkey !== undefined && { [TraceAttribute.KAFKA_KEY]: envelope.partitionkey }),
    ...(envelope.correlationid !== undefined && { [TraceAttribute.CONVERSATION_ID]: envelope.correlationid }),
    ...(envelope.globaltxid !== undefined && { [TraceAttribute.GLOBAL_TX_ID]: envelope.globaltxid }),
  });
}

function spanAttributes(group: string, handler: HandlerDescriptor, delivery: Delivery): Record<string, string | number> {
  return {
    [TraceAttribute.SYSTEM]: MESSAGING_SYSTEM,
    [TraceAttribute.OPERATION_NAME]: 'process',
    [TraceAttribute.OPERATION_TYPE]: 'process',
    [TraceAttribute.DESTINATION]: delivery.topic,
    [TraceAttribute.PARTITION]: String(delivery.partition),
    [TraceAttribute.KAFKA_OFFSET]: delivery.offset,
    [TraceAttribute.CONSUMER_GROUP]: group,
    [TraceAttribute.HANDLER]: handler.label,
  };
}

/** What `ctx.delivery` tells a handler about the record it runs on and the attempt. */
export function deliveryInfo(handler: HandlerDescriptor, delivery: Delivery, attempt: number): DeliveryInfo {
  return {
    topic: delivery.topic,
    partition: delivery.partition,
    offset: delivery.offset,
    attempt,
    maxAttempts: handler.retry.maxAttempts,
    consumer: handler.group,
  };
}
