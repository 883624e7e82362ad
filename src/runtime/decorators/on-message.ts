import type { MessageContext } from '../context.js';
import { defineMessageHandler, type HandlerOptions } from '../metadata.js';
import { legacyMethodDecorator } from './legacy.js';

export type OnMessageOptions = HandlerOptions;

/**
 * Declares a handler for the messages of `topic`. The method receives a
 * {@link MessageContext}: the message, the data, the transaction's
 * EntityManager and `publish`. It runs once per message, with exactly-once
 * effect unless `transactional: false`.
 *
 * A handler that throws is retried with backoff (see `retry`); after the last
 * attempt, or at once for a non-retriable error, the message goes to
 * `<topic>.dlq` with the error in its headers.
 *
 * @throws ConcordatError CONFIG_INVALID when compiled as a TC39 standard
 *   decorator (the tsconfig lacks `experimentalDecorators`).
 */
export function OnMessage(topic: string, options: OnMessageOptions = {}): MethodDecorator {
  return legacyMethodDecorator('@OnMessage', (prototype, propertyKey) => {
    const methodName = String(propertyKey);
    defineMessageHandler(prototype.constructor, {
      topic,
      methodName,
      options,
      invoke: async (instance: object, context: MessageContext) => {
        const method = (instance as Record<string, unknown>)[methodName];
        await (method as (context: MessageContext) => unknown).call(instance, context);
      },
    });
  });
}
