/**
 * Which handler of a consumer group takes a delivered record (by topic and
 * filter), and the record's envelope decoded and validated for it.
 */
import { ConcordatError, ErrorCode } from '../../errors.js';
import { envelopeFromDelivery, type Envelope } from '../../messaging/index.js';
import type { Delivery } from '../../transport/index.js';
import type { ConsumerDescriptor, HandlerDescriptor } from '../explorer.js';
import { filterMatches } from '../filter.js';
import { validateLater } from '../topic.js';

/** The handler of `topic` in `consumer`. @throws ConcordatError HANDLER_DEFINITION_INVALID when it has none (a bug: subscriptions list only its topics) */
export function handlerFor(consumer: ConsumerDescriptor, topic: string): HandlerDescriptor {
  const handler = consumer.handlers.get(topic);
  if (handler === undefined) {
    // Subscriptions list only the topics of this table, so this is a bug.
    throw new ConcordatError(`consumer group '${consumer.group}' has no handler for topic '${topic}'`, {
      code: ErrorCode.HANDLER_DEFINITION_INVALID,
    });
  }
  return handler;
}

/** Whether a handler of `topic` filters (so each message must be routed). */
export function filters(consumer: ConsumerDescriptor, topic: string): boolean {
  const routes = consumer.routes.get(topic);
  return routes !== undefined && (routes.length > 1 || routes[0]!.filter !== undefined);
}

/**
 * The handler whose filter takes `message`, or undefined when none does.
 * At most one can (the explorer refuses handlers whose filters may overlap).
 * @throws what a predicate filter threw
 */
export function route(consumer: ConsumerDescriptor, topic: string, message: Envelope): HandlerDescriptor | undefined {
  const routes = consumer.routes.get(topic);
  if (routes === undefined) return handlerFor(consumer, topic);
  return routes.find((handler) => filterMatches(handler.filter, message));
}

/**
 * The envelopes of the records, validated for `handler`, or undefined if one
 * is not a CloudEvent or fails the schema (the one-at-a-time path
 * dead-letters it).
 */
export async function decodeAll(handler: HandlerDescriptor, deliveries: readonly Delivery[]): Promise<Envelope[] | undefined> {
  try {
    return await Promise.all(deliveries.map((delivery) => validated(handler, envelopeFromDelivery(delivery), delivery)));
  } catch {
    return undefined;
  }
}

/**
 * `envelope` with its data validated by the handler's schema (a typed
 * topic's) and replaced by the schema's output; as it is without a schema.
 * @throws ValidationError VALIDATION_FAILED (not retriable) with the schema's issues
 */
export async function validated(handler: HandlerDescriptor, envelope: Envelope, delivery: Delivery): Promise<Envelope> {
  if (handler.schema === undefined) return envelope;
  const what = `the payload of message ${envelope.id} on topic '${delivery.topic}'`;
  const data = await validateLater(handler.schema, envelope.data, what, { topic: delivery.topic, messageId: envelope.id });
  return { ...envelope, data };
}
