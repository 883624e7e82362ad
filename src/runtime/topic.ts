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
export interface Topic<S extends StandardSchemaV1 = StandardSchemaV1> {
  /** The topic name in the log. */
  readonly name: string;
  /** The payload's schema. */
  readonly schema: S;
  readonly [TOPIC]: true;
}

/** What `publish(topic, data)` takes as `data`: the schema's input type. */
export type TopicInput<T> = T extends Topic<infer S> ? StandardSchemaV1.InferInput<S> : never;

/**
 * The payload type a handler receives: for a {@link Topic}, its schema's
 * output type (validated, defaults filled in); any other type stands for itself.
 */
export type TopicData<T> = T extends Topic<infer S> ? StandardSchemaV1.InferOutput<S> : T;

/**
 * Defines a typed topic: `defineTopic('orders.placed', z.object({ orderId: z.string() }))`.
 *
 * @param name the topic: 1..249 characters of a-z, A-Z, 0-9, '.', '_', '-' (Kafka's rule), not '.' or '..'.
 * @param schema a Standard Schema v1 (an object with a `~standard` property of version 1).
 * @throws ConcordatError INVALID_TOPIC_EXCEPTION for a bad name; CONFIG_INVALID when `schema` is not a Standard Schema.
 */
export function defineTopic<S extends StandardSchemaV1>(name: string, schema: S): Topic<S> {
  validateTopicName(name);
  assertStandardSchema(schema, `the schema of topic '${name}'`);
  return Object.freeze({ name, schema, [TOPIC]: true as const });
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
export function validateNow<S extends StandardSchemaV1>(schema: S, value: unknown, what: string, context: Record<string, unknown> = {}): StandardSchemaV1.InferOutput<S> {
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
export async function validateLater<S extends StandardSchemaV1>(schema: S, value: unknown, what: string, context: Record<string, unknown> = {}): Promise<StandardSchemaV1.InferOutput<S>> {
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
