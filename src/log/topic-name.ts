import { ConcordatError, ErrorCode } from '../errors.js';

/**
 * Kafka's topic name rules (`org.apache.kafka.common.internals.Topic.validate`):
 * 1..249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`. The limit of 249
 * leaves room for `-<partition>` and suffixes in a 255-byte file name.
 */
export const TOPIC_NAME_LENGTH_MAX = 249;
const LEGAL = /^[a-zA-Z0-9._-]+$/;

/** @throws ConcordatError INVALID_TOPIC_EXCEPTION with Kafka's wording */
export function validateTopicName(name: string): void {
  if (name.length === 0) throw invalid("Topic name is illegal, it can't be empty", name);
  if (name === '.' || name === '..') throw invalid('Topic name cannot be "." or ".."', name);
  if (name.length > TOPIC_NAME_LENGTH_MAX) {
    throw invalid(`Topic name is illegal, it can't be longer than ${TOPIC_NAME_LENGTH_MAX} characters, topic name: ${name}`, name);
  }
  if (!LEGAL.test(name)) {
    throw invalid(`Topic name "${name}" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'`, name);
  }
}

export function isValidTopicName(name: string): boolean {
  return name.length > 0 && name.length <= TOPIC_NAME_LENGTH_MAX && name !== '.' && name !== '..' && LEGAL.test(name);
}

/** Kafka refuses names that differ only by '.' versus '_' (they collide in metric names). */
export function topicNamesCollide(a: string, b: string): boolean {
  return a !== b && a.replaceAll('.', '_') === b.replaceAll('.', '_');
}

function invalid(message: string, topic: string): ConcordatError {
  return new ConcordatError(message, { code: ErrorCode.INVALID_TOPIC_EXCEPTION, context: { topic } });
}
