/**
 * The one topic-name rule of Concordat, Kafka's
 * (`org.apache.kafka.common.internals.Topic.validate`): 1..249 characters of
 * `[a-zA-Z0-9._-]`, not `.` or `..`. The limit of 249 leaves room for
 * `-<partition>` and suffixes in a 255-byte file name.
 *
 * It lives in `log/`, the lowest layer, so that every layer above
 * (broker, transport, outbox, runtime, transactions) checks names with it
 * through `log/index.ts`: `@OnMessage`, `publish`, an outcome topic and the
 * log's own topic creation refuse the same names with the same words.
 *
 * @module
 */

import { ConcordatError, ErrorCode } from '../errors.js';

/** Longest topic name, in characters (Kafka's 249). */
export const TOPIC_NAME_LENGTH_MAX = 249;

/**
 * The characters a topic name may hold, as a regular-expression character
 * class (without brackets): ASCII alphanumerics, `.`, `_` and `-`. For names
 * that become part of a topic name (a participant's, in its command topics).
 */
export const TOPIC_NAME_CHARACTERS = 'a-zA-Z0-9._-';
const LEGAL = new RegExp(`^[${TOPIC_NAME_CHARACTERS}]+$`);

/**
 * What is wrong with `name` as a topic name, in Kafka's wording, or
 * undefined when it is valid. For callers that collect problems (the
 * handler explorer, option schemas); {@link validateTopicName} throws it.
 */
export function topicNameProblem(name: string): string | undefined {
  if (typeof name !== 'string') return `Topic name must be a string, got ${name === null ? 'null' : typeof name}`;
  if (name.length === 0) return "Topic name is illegal, it can't be empty";
  if (name === '.' || name === '..') return 'Topic name cannot be "." or ".."';
  if (name.length > TOPIC_NAME_LENGTH_MAX) {
    return `Topic name is illegal, it can't be longer than ${TOPIC_NAME_LENGTH_MAX} characters, topic name: ${name}`;
  }
  if (!LEGAL.test(name)) {
    return `Topic name "${name}" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'`;
  }
  return undefined;
}

/** @throws ConcordatError INVALID_TOPIC_EXCEPTION with Kafka's wording ({@link topicNameProblem}), the name in `context.topic` */
export function validateTopicName(name: string): void {
  const problem = topicNameProblem(name);
  if (problem !== undefined) throw new ConcordatError(problem, { code: ErrorCode.INVALID_TOPIC_EXCEPTION, context: { topic: name } });
}

/** Whether `name` passes Kafka's topic-name rule ({@link topicNameProblem} says why not). */
export function isValidTopicName(name: string): boolean {
  return topicNameProblem(name) === undefined;
}

/** Kafka refuses names that differ only by '.' versus '_' (they collide in metric names). */
export function topicNamesCollide(a: string, b: string): boolean {
  return a !== b && a.replaceAll('.', '_') === b.replaceAll('.', '_');
}
