import type { StandardSchemaV1 } from '@standard-schema/spec';
import type { MessageContext } from '../context.js';
import { defineMessageHandler, type HandlerOptions } from '../metadata.js';
import { sendReply } from '../reply.js';
import { isTopic, type Topic, type TopicData, type TopicReplyInput } from '../topic.js';
import { legacyMethodDecorator } from './legacy.js';

/** Options of `@OnMessage(topic, options)`: consumer group, retry policy, filter, transactional, ... (see {@link HandlerOptions}). */
export type OnMessageOptions = HandlerOptions;

/**
 * The decorator `@OnMessage(topic)` returns for a typed topic: it compiles
 * only on a method whose parameter accepts the topic's context, so a handler
 * declared `(context: MessageContext<Other>)` is refused at compile time;
 * for a topic with a reply schema, only on a method that returns the
 * reply's input type (`Ret`).
 */
export type TypedHandlerDecorator<C, Ret = unknown> = <M extends (context: C) => Ret>(
  prototype: object,
  propertyKey: string | symbol,
  descriptor: TypedPropertyDescriptor<M>,
) => void;

/**
 * Declares a handler for the messages of `topic`. The method receives a
 * {@link MessageContext}: the message, the data, the transaction's
 * EntityManager and `publish`. It runs once per message, with exactly-once
 * effect unless `transactional: false`.
 *
 * With a typed topic (`defineTopic(name, schema)`), declare the parameter
 * `context: TopicContext<typeof topic>` (or `MessageContext<Payload>`):
 * `context.data` is then the schema's output type, and the method does not
 * compile with another payload type. Each incoming message is validated before the handler runs;
 * one that fails goes to `<topic>.dlq` at once (no attempt, not retriable),
 * with error code VALIDATION_FAILED and the issues as JSON in the
 * `concordat_dlq_issues` header.
 *
 * A handler that throws is retried with backoff (see `retry`); after the last
 * attempt, or at once for a non-retriable error, the message goes to
 * `<topic>.dlq` with the error in its headers.
 *
 * When the message is a request (`app.request`, `ctx.request`), what the
 * method returns is the reply, written to the outbox in the handler's
 * transaction (`undefined` sends none); for a topic defined with a reply
 * schema the method must return that schema's input, checked before it is
 * written. A request that is dead-lettered sends its requester a failed
 * reply. See docs/request-reply.md.
 *
 * @throws ConcordatError CONFIG_INVALID when compiled as a TC39 standard
 *   decorator (the tsconfig lacks `experimentalDecorators`).
 */
export function OnMessage<S extends StandardSchemaV1, R extends StandardSchemaV1 | undefined>(
  topic: Topic<S, R>,
  options?: OnMessageOptions,
): TypedHandlerDecorator<MessageContext<TopicData<Topic<S>>>, TopicReplyInput<Topic<S, R>>>;
export function OnMessage(topic: string, options?: OnMessageOptions): MethodDecorator;
export function OnMessage(topic: string | Topic, options: OnMessageOptions = {}): MethodDecorator {
  return legacyMethodDecorator('@OnMessage', (prototype, propertyKey) => {
    const methodName = String(propertyKey);
    defineMessageHandler(prototype.constructor, {
      // A topic that is neither (a JS caller's mistake) stays as given: the explorer names it at start-up.
      topic: isTopic(topic) ? topic.name : topic,
      ...(isTopic(topic) && { schema: topic.schema }),
      methodName,
      options,
      invoke: async (instance: object, context: MessageContext) => {
        const method = (instance as Record<string, unknown>)[methodName];
        const result = await (method as (context: MessageContext) => unknown).call(instance, context);
        sendReply(context, result, isTopic(topic) ? topic.reply : undefined);
      },
    });
  });
}
