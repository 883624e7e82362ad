import type { StandardSchemaV1 } from '@standard-schema/spec';
import { ConcordatError, ErrorCode, ValidationError, type ValidationIssue } from '../errors.js';
import { validateTopicName } from '../log/index.js';

const TOPIC = Symbol.for('concordat.topic');

/**
 * A topic and the schema of its payload: the one object the publisher
 * (`publish(topic, data)`) and the handler (`@OnMessage(topic)`) both use,
 * so that their types come from one definition. Made by {@link defineTopic}.
 *
 * `S` is any Standard Schema (https://standardschema.dev, `@standard-schema/spec`
 * v1: zod 4, valibot, arktype...). What travels is the payload as the
 * publisher gave it (the schema's *input* type, JSON); the handler receives
 * what the schema's validation returned (its *output* type: defaults filled
 * in, transforms applied).
 */
export interface Topic<S extends StandardSchemaV1 = StandardSchemaV1, R extends StandardSchemaV1 | undefined = StandardSchemaV1 | undefined> {
  /** The topic name in the log. */
  readonly name: string;
  /** The payload's schema. */
  readonly schema: S;
  /**
   * For a request topic (see `app.request`, docs/request-reply.md): the
   * schema of the reply, which is what its handler returns. The handler's
   * return value is checked against it before the reply is written
   * (VALIDATION_FAILED otherwise: the request is dead-lettered and the
   * requester gets an error reply), and the requester receives the schema's
   * output. Undefined: the reply is untyped.
   */
  readonly reply: R;
  readonly [TOPIC]: true;
}

/** Options of {@link defineTopic}. */
export interface TopicOptions<R extends StandardSchemaV1 | undefined> {
  /** The schema of the reply of a request topic (see {@link Topic.reply}). @default none */
  reply?: R;
}

/** What `publish(topic, data)` takes as `data`: the schema's input type. */
export type TopicInput<T> = T extends Topic<infer S> ? StandardSchemaV1.InferInput<S> : never;

/**
 * The payload type a handler receives: for a {@link Topic}, its schema's
 * output type (validated, defaults filled in); any other type stands for itself.
 */
export type TopicData<T> = T extends Topic<infer S> ? StandardSchemaV1.InferOutput<S> : T;

/**
 * What a request to a topic resolves with: for a {@link Topic} defined with
 * a `reply` schema, that schema's output; otherwise `unknown` (a plain
 * string topic's request names its reply type itself).
 */
export type TopicReply<T> = T extends Topic<StandardSchemaV1, infer R> ? ReplyOutput<R> : unknown;

// Distributive on purpose: the default `StandardSchemaV1 | undefined` (a topic typed `Topic<S>`) gives `unknown`.
type ReplyOutput<R> = R extends StandardSchemaV1 ? StandardSchemaV1.InferOutput<R> : unknown;
type ReplyInput<R> = R extends StandardSchemaV1 ? StandardSchemaV1.InferInput<R> | Promise<StandardSchemaV1.InferInput<R>> : unknown;

/**
 * What the handler of a topic may return: for a {@link Topic} defined with a
 * `reply` schema, that schema's input (or a promise of it); otherwise
 * anything (a handler that returns `undefined` sends no reply).
 */
export type TopicReplyInput<T> = T extends Topic<StandardSchemaV1, infer R> ? ReplyInput<R> : unknown;

/**
 * Defines a typed topic: `defineTopic('orders.placed', z.object({ orderId: z.string() }))`.
 * A request topic can type its reply too:
 * `defineTopic('prices.quote', z.object({ sku: z.string() }), { reply: z.object({ cents: z.number() }) })`.
 *
 * @param name the topic: 1..249 characters of a-z, A-Z, 0-9, '.', '_', '-' (Kafka's rule), not '.' or '..'.
 * @param schema a Standard Schema v1 (an object with a `~standard` property of version 1).
 * @param options.reply the reply's schema, a Standard Schema v1 too.
 * @throws ConcordatError INVALID_TOPIC_EXCEPTION for a bad name; CONFIG_INVALID when `schema` or `reply` is not a Standard Schema.
 */
export function defineTopic<S extends StandardSchemaV1, R extends StandardSchemaV1 | undefined = undefined>(
  name: string,
  schema: S,
  options: TopicOptions<R> = {},
): Topic<S, R> {
  validateTopicName(name);
  assertStandardSchema(schema, `the schema of topic '${name}'`);
  if (options.reply !== undefined) assertStandardSchema(options.reply, `the reply schema of topic '${name}'`);
  return Object.freeze({ name, schema, reply: options.reply as R, [TOPIC]: true as const });
}

/** Whether `value` was made by {@link defineTopic}. */
export function isTopic(value: unknown): value is Topic {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[TOPIC] === true;
}

/** @throws ConcordatError CONFIG_INVALID when `schema` is not a Standard Schema v1 (naming `what`). */
export function assertStandardSchema(schema: unknown, what: string): asserts schema is StandardSchemaV1 {
  const standard = (schema as { '~standard'?: { version?: unknown; validate?: unknown } } | null | undefined)?.['~standard'];
  if (standard?.version === 1 && typeof standard.validate === 'function') return;
  throw new ConcordatError(
    `${what} is not a Standard Schema v1 (no '~standard' property of version 1 with a validate function): ` +
      'pass a schema of a library that implements https://standardschema.dev, such as zod 4 (z.object({...})), valibot or arktype',
    { code: ErrorCode.CONFIG_INVALID },
  );
}

/**
 * Validates `value` synchronously, for callers that cannot wait (`publish`
 * returns the message ID at once).
 * @returns the schema's output.
 * @throws ValidationError VALIDATION_FAILED (not retriable) with every issue, naming `what`.
 * @throws ConcordatError CONFIG_INVALID when the schema validates asynchronously (a zod async refinement).
 */
export function validateNow<S extends StandardSchemaV1>(
  schema: S,
  value: unknown,
  what: string,
  context: Record<string, unknown> = {},
): StandardSchemaV1.InferOutput<S> {
  const result = schema['~standard'].validate(value);
  if (result instanceof Promise) {
    // The promise's own rejection, if any, has nobody to hear it.
    result.catch(() => undefined);
    throw new ConcordatError(
      `${what}: its schema validates asynchronously (an async refinement or transform), but publishing validates before the outbox insert, ` +
        'synchronously: use a synchronous schema for a topic or participant, and do asynchronous checks in your own code',
      { code: ErrorCode.CONFIG_INVALID, context },
    );
  }
  return outputOf(result, what, context);
}

/**
 * Validates `value`, waiting for an asynchronous schema.
 * @returns the schema's output.
 * @throws ValidationError VALIDATION_FAILED (not retriable) with every issue, naming `what`.
 */
export async function validateLater<S extends StandardSchemaV1>(
  schema: S,
  value: unknown,
  what: string,
  context: Record<string, unknown> = {},
): Promise<StandardSchemaV1.InferOutput<S>> {
  return outputOf(await schema['~standard'].validate(value), what, context);
}

function outputOf<O>(result: StandardSchemaV1.Result<O>, what: string, context: Record<string, unknown>): O {
  if (result.issues === undefined) return result.value;
  throw new ValidationError(what, result.issues.map(toIssue), context);
}

/** A Standard Schema issue as Concordat reports it: its path joined with dots (`items.0.qty`). */
function toIssue(issue: StandardSchemaV1.Issue): ValidationIssue {
  const path = (issue.path ?? []).map((segment) => String(typeof segment === 'object' ? segment.key : segment)).join('.');
  return { path, message: issue.message };
}
