/**
 * How kafkajs's errors become Concordat's, through the error tables: the
 * Kafka error a kafkajs error carries (its number, else its `type`; see
 * kafkaErrorOf in src/kafka-errors.ts) is a row of Kafka's table, and the
 * Concordat code of the same name (errorCodeOfKafka) is the code; such an
 * error takes that code's default `retriable` from ERROR_CODES. Only an
 * error with no Concordat code keeps kafkajs's own `retriable`, and never
 * when the innermost cause is a programmer error.
 *
 * @module
 */

import { ConcordatError, ErrorCode, causeChain, describeError, errorCodeOfKafka, isProgrammerError, kafkaErrorOf, type KafkaErrorName } from '../../errors.js';

/** The per-topic errors of a kafkajs CreateTopics failure (a KafkaJSAggregateError, possibly wrapped). */
export function topicErrors(error: unknown): Array<{ type?: string; code?: unknown; message?: string }> {
  for (const e of causeChain(error)) {
    const errors = (e as { errors?: unknown }).errors;
    if (Array.isArray(errors)) return errors as Array<{ type?: string }>;
  }
  return [];
}

/** The Kafka error of the innermost error in `error`'s cause chain that carries one (see kafkaErrorOf). */
export function innermostKafkaError(error: unknown): KafkaErrorName | undefined {
  let kafka: KafkaErrorName | undefined;
  for (const e of causeChain(error)) kafka = kafkaErrorOf(e) ?? kafka;
  return kafka;
}

/** kafkajs's own `retriable` flag of `error` (true when it has none), for errors with no Concordat code. */
function kafkajsRetriable(error: unknown): boolean {
  if (error !== null && typeof error === 'object' && 'retriable' in error) return error.retriable !== false;
  return true;
}

/**
 * A ConcordatError for a kafkajs failure: `kafka`'s Concordat code with its
 * default retriability when there is one, else `fallback` with kafkajs's
 * flag of `cause` (false for a programmer error at the root).
 */
export function fromKafkajs(
  message: string,
  kafka: KafkaErrorName | undefined,
  fallback: ErrorCode,
  cause: unknown,
  context?: Record<string, unknown>,
): ConcordatError {
  const code = errorCodeOfKafka(kafka);
  return new ConcordatError(message, {
    code: code ?? fallback,
    ...(code === undefined && { retriable: kafkajsRetriable(cause) && !isProgrammerError(cause) }),
    cause,
    ...(context !== undefined && { context }),
  });
}

/** Kafka's topic config name for time retention. */
export const RETENTION_MS = 'retention.ms';

/** Why `retention.ms` of `topic` could not be read, as a ConcordatError. */
export function retentionUnknown(topic: string, cause: unknown): ConcordatError {
  if (cause instanceof ConcordatError) return cause;
  if ((cause as { name?: string } | null)?.name === 'KafkaJSServerDoesNotSupportApiKey') {
    return new ConcordatError(`cannot read ${RETENTION_MS} of topic '${topic}': the brokers do not serve DescribeConfigs (API key 32)`, {
      code: ErrorCode.UNSUPPORTED_VERSION,
      cause,
      context: { topic },
    });
  }
  const kafka = innermostKafkaError(cause);
  if (kafka === 'UNKNOWN_TOPIC_OR_PARTITION') {
    return new ConcordatError(`cannot read ${RETENTION_MS} of topic '${topic}': it does not exist`, {
      code: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
      cause,
      context: { topic },
    });
  }
  const hint = kafka === 'TOPIC_AUTHORIZATION_FAILED' ? '; the principal needs DescribeConfigs on the topic' : '';
  return fromKafkajs(`cannot read ${RETENTION_MS} of topic '${topic}': ${describeError(cause)}${hint}`, kafka, ErrorCode.CONFIG_INVALID, cause, { topic });
}

/** The error of an operation on a closed kafka transport or subscription. */
export function transportClosed(): ConcordatError {
  return new ConcordatError('the kafka transport is closed', { code: ErrorCode.TRANSPORT_CLOSED });
}

/**
 * The error of a failed publish: a ConcordatError as it is;
 * UNKNOWN_TOPIC_OR_PARTITION as itself; anything else PUBLISH_FAILED
 * (retriable by default), final only when the innermost cause is a
 * programmer error.
 */
export function publishFailed(cause: unknown): ConcordatError {
  if (cause instanceof ConcordatError) return cause;
  if (innermostKafkaError(cause) === 'UNKNOWN_TOPIC_OR_PARTITION') {
    return new ConcordatError(`publish failed: ${describeError(cause)}; create the topic with ensureTopics first`, {
      code: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
      cause,
    });
  }
  // kafkajs marks an error non-retriable once its own retries ran out; for the
  // caller (the outbox relay) a publish is always worth retrying later, unless
  // the cause is a bug: kafkajs's flag is not read here.
  return new ConcordatError(`publish failed: ${describeError(cause)}; some records may have been written, retry`, {
    code: ErrorCode.PUBLISH_FAILED,
    ...(isProgrammerError(cause) && { retriable: false }),
    cause,
  });
}
