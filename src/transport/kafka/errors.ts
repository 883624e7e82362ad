/**
 * How kafkajs's errors become Concordat's: kafkajs names an error by its
 * Kafka error type (`type`, on the error or a cause), which is also the name
 * of the matching ErrorCode; whether it may be retried comes from kafkajs's
 * `retriable`, unless the innermost cause is a programmer error.
 *
 * @module
 */

import { ConcordatError, ErrorCode, causeChain, describeError, rootCause } from '../../errors.js';

/** The per-topic errors of a kafkajs CreateTopics failure (a KafkaJSAggregateError, possibly wrapped). */
export function topicErrors(error: unknown): Array<{ type?: string; message?: string }> {
  for (const e of causeChain(error)) {
    const errors = (e as { errors?: unknown }).errors;
    if (Array.isArray(errors)) return errors as Array<{ type?: string }>;
  }
  return [];
}

/** kafkajs error types that are Concordat codes too (the names are Kafka's). */
export function kafkaErrorCode(type: string | undefined): ErrorCode | undefined {
  if (type === undefined) return undefined;
  return (Object.values(ErrorCode) as string[]).includes(type) ? (type as ErrorCode) : undefined;
}

/** The Kafka error type (`type`) of the innermost error in `error`'s cause chain that has one. */
export function innermostType(error: unknown): string | undefined {
  let type: string | undefined;
  for (const e of causeChain(error)) type = (e as { type?: string }).type ?? type;
  return type;
}

/** kafkajs's `retriable` flag of `error`; true when the error has none. */
export function isRetriable(error: unknown): boolean {
  if (error !== null && typeof error === 'object' && 'retriable' in error) return error.retriable !== false;
  return true;
}

/** The innermost cause is one of the programmer errors nothing retries (see errors.ts). */
export function isProgrammerError(error: unknown): boolean {
  const innermost = rootCause(error);
  return innermost instanceof TypeError || innermost instanceof RangeError || innermost instanceof ReferenceError || innermost instanceof SyntaxError;
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
  const type = innermostType(cause);
  if (type === 'UNKNOWN_TOPIC_OR_PARTITION') {
    return new ConcordatError(`cannot read ${RETENTION_MS} of topic '${topic}': it does not exist`, {
      code: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
      cause,
      context: { topic },
    });
  }
  const hint = type === 'TOPIC_AUTHORIZATION_FAILED' ? '; the principal needs DescribeConfigs on the topic' : '';
  return new ConcordatError(`cannot read ${RETENTION_MS} of topic '${topic}': ${describeError(cause)}${hint}`, {
    code: kafkaErrorCode(type) ?? ErrorCode.CONFIG_INVALID,
    retriable: isRetriable(cause) && !isProgrammerError(cause),
    cause,
    context: { topic },
  });
}

/** The error of an operation on a closed kafka transport or subscription. */
export function transportClosed(): ConcordatError {
  return new ConcordatError('the kafka transport is closed', { code: ErrorCode.TRANSPORT_CLOSED });
}

/** The error of a failed publish: a ConcordatError as it is; UNKNOWN_TOPIC_OR_PARTITION as itself; anything else PUBLISH_FAILED, retriable unless the innermost cause is a programmer error. */
export function publishFailed(cause: unknown): ConcordatError {
  if (cause instanceof ConcordatError) return cause;
  const type = innermostType(cause);
  if (type === 'UNKNOWN_TOPIC_OR_PARTITION') {
    return new ConcordatError(`publish failed: ${describeError(cause)}; create the topic with ensureTopics first`, {
      code: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
      retriable: true,
      cause,
    });
  }
  // kafkajs marks an error non-retriable once its own retries ran out; for the
  // caller (the outbox relay) a publish is always worth retrying later, unless
  // the cause is a bug.
  return new ConcordatError(`publish failed: ${describeError(cause)}; some records may have been written, retry`, {
    code: ErrorCode.PUBLISH_FAILED,
    retriable: !isProgrammerError(cause),
    cause,
  });
}
