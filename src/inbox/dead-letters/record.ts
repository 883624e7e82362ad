/**
 * Building a dead letter from a delivered record that failed for good: the
 * row for `concordat.dead_letter` ({@link deadLetterInput}) and the record
 * sent to `<topic>.dlq` ({@link deadLetterRecord}). No I/O here; `send.ts`
 * writes both in one transaction.
 *
 * A dead letter is storable whatever the record's bytes. The dead-letter
 * path is the last stop of a message: if recording it fails, the dispatcher
 * cannot move past the record and its partition stalls. So what comes from
 * the log is made storable first ({@link storableRecord}):
 *
 * - PostgreSQL refuses the NUL character in `text` and in `jsonb` (SQLSTATE
 *   22021 / 22P05), so a NUL in a header name or value, or in the key, is
 *   written as the six characters `\u0000`; the names of what was changed
 *   (`key` for the key) are listed in the `concordat_dlq_sanitized` header.
 * - A `ce_id` that the inbox would not take as a dedup key (absent, empty,
 *   longer than 256 characters or holding control characters:
 *   `isUsableMessageId`, the bounds `envelopeFromDelivery` enforces) is replaced by
 *   a new ID, in the row, in the `ce_id` header and on `<topic>.dlq`; the
 *   original, escaped and truncated, goes to `concordat_dlq_original_id`.
 *
 * The new ID is a name-based UUID (RFC 9562 §5.5, version 5) of the record's
 * place in the log and its original ID, not a random one: a record delivered
 * again (its offset commit was lost) gets the same ID, so the dead-letter
 * store's one-pending-row-per-(consumer, message ID) rule still keeps it
 * from being dead-lettered twice.
 *
 * @module
 */

import { v5 as uuidv5 } from 'uuid';
import { ConcordatError, describeError, ValidationError } from '../../errors.js';
import { isUsableMessageId } from '../../messaging/index.js';
import type { OutboxRecord } from '../../outbox/index.js';
import type { Delivery } from '../../transport/index.js';
import { DEAD_LETTER_SUFFIX, DeadLetterHeader, ISSUES_HEADER_MAX } from './format.js';
import type { DeadLetterInput } from './store.js';

/** Why and where a record is dead-lettered: what {@link deadLetterInput} needs. */
export interface DeadLetterCause {
  /** The record as delivered. */
  delivery: Delivery;
  /** The envelope's ID when the record decoded as a CloudEvent (it is usable then); undefined when it did not. */
  decodedId: string | undefined;
  /** The consumer group that gives up on it. */
  consumer: string;
  /** The handler's label, `Service.method`. */
  handler: string;
  /** The last failure. */
  error: unknown;
  /** Attempts made: 0 when the record could not be decoded or validated, so no attempt could succeed. */
  attempts: number;
}

/** Characters of the error text kept in a dead letter (its `error` column and header). */
const ERROR_CHARS_MAX = 4096;

/**
 * The dead letter of `cause`, storable whatever the record's bytes
 * ({@link storableRecord}): its headers are the record's, NUL-free, plus
 * {@link DeadLetterHeader.ORIGINAL_ID} when the ID was replaced,
 * {@link DeadLetterHeader.SANITIZED} when something was escaped, and
 * {@link DeadLetterHeader.ISSUES} for a payload its schema refused. The error
 * text is cut to 4096 characters; the error code is a ConcordatError's
 * code, else the error's name, else `unknown`.
 */
export function deadLetterInput(cause: DeadLetterCause): DeadLetterInput {
  const { delivery, error } = cause;
  const record = storableRecord(delivery, cause.decodedId);
  const headers = { ...record.headers };
  if (record.originalId !== undefined) headers[DeadLetterHeader.ORIGINAL_ID] = record.originalId;
  if (record.sanitized.length > 0) headers[DeadLetterHeader.SANITIZED] = record.sanitized.join(',');
  if (error instanceof ValidationError) headers[DeadLetterHeader.ISSUES] = issuesHeader(error);
  return {
    consumer: cause.consumer,
    messageId: record.messageId,
    handler: cause.handler,
    topic: delivery.topic,
    partition: delivery.partition,
    offset: delivery.offset,
    key: record.key,
    headers,
    payload: delivery.value,
    error: withoutNul(describeError(error).slice(0, ERROR_CHARS_MAX)),
    errorCode: withoutNul(error instanceof ConcordatError ? error.code : error instanceof Error ? error.name : 'unknown'),
    attempts: cause.attempts,
  };
}

/**
 * The record sent to `<topic>.dlq` for the dead letter `input` stored as row
 * `id`: the original key, headers and bytes, plus the dead-letter headers
 * ({@link DeadLetterHeader}; `FAILED_AT` is now, ISO 8601).
 */
export function deadLetterRecord(input: DeadLetterInput, id: string): OutboxRecord {
  return {
    messageId: input.messageId,
    topic: input.topic + DEAD_LETTER_SUFFIX,
    key: input.key,
    payload: input.payload,
    headers: {
      ...input.headers,
      [DeadLetterHeader.ERROR]: input.error,
      [DeadLetterHeader.ERROR_CODE]: input.errorCode,
      [DeadLetterHeader.ATTEMPTS]: String(input.attempts),
      [DeadLetterHeader.HANDLER]: input.handler,
      [DeadLetterHeader.CONSUMER]: input.consumer,
      [DeadLetterHeader.TOPIC]: input.topic,
      [DeadLetterHeader.PARTITION]: String(input.partition),
      [DeadLetterHeader.OFFSET]: String(input.offset),
      [DeadLetterHeader.FAILED_AT]: new Date().toISOString(),
      [DeadLetterHeader.ID]: id,
    },
  };
}

/** The {@link DeadLetterHeader.ISSUES} header: JSON, NUL-free, bounded (see {@link ISSUES_HEADER_MAX}). */
function issuesHeader(error: ValidationError): string {
  const issues = error.issues.slice(0, ISSUES_HEADER_MAX).map((issue) => ({ path: issue.path.slice(0, 300), message: issue.message.slice(0, 300) }));
  return withoutNul(JSON.stringify(issues));
}

/** What a dead letter stores of a delivered record: an ID the inbox takes, the key and headers without NULs, and what was changed (see the file header). */
export interface StorableRecord {
  messageId: string;
  key: string | null;
  headers: Record<string, string>;
  /** The original `ce_id`, escaped and truncated, when `messageId` replaced it. */
  originalId: string | undefined;
  /** Header names (as stored) whose name or value held a NUL, and `key` if the key did. */
  sanitized: string[];
}

/** Characters of the escaped original ID kept in `concordat_dlq_original_id`. */
const ORIGINAL_ID_CHARS_MAX = 256;
/** Namespace of the name-based IDs of dead letters (a random UUID, fixed once). */
const DEAD_LETTER_ID_NAMESPACE = '5f0c2b1e-8d7a-4c39-a1e6-b2d4c8f09a17';

/**
 * The storable form of `delivery` (see the file header).
 * @param decodedId the envelope's ID when the record decoded (it is usable then).
 */
export function storableRecord(delivery: Delivery, decodedId: string | undefined): StorableRecord {
  const headers: Record<string, string> = {};
  const sanitized: string[] = [];
  for (const [rawName, value] of Object.entries(delivery.headers)) {
    const text = value.toString('utf8');
    const name = withoutNul(rawName);
    headers[name] = withoutNul(text);
    if (name !== rawName || headers[name] !== text) sanitized.push(name);
  }
  const rawKey = delivery.key?.toString('utf8') ?? null;
  const key = rawKey === null ? null : withoutNul(rawKey);
  if (key !== rawKey) sanitized.unshift('key');

  const rawId = delivery.headers.ce_id?.toString('utf8');
  if (decodedId !== undefined || (rawId !== undefined && isUsableMessageId(rawId))) {
    return { messageId: decodedId ?? rawId!, key, headers, originalId: undefined, sanitized };
  }
  const messageId = derivedId(delivery);
  if (rawId === undefined) return { messageId, key, headers, originalId: undefined, sanitized };
  headers.ce_id = messageId;
  return { messageId, key, headers, originalId: escapedId(rawId), sanitized };
}

/** `value` with every NUL written as the six characters `\u0000`. */
export function withoutNul(value: string): string {
  return value.includes('\0') ? value.replace(/\0/g, '\\u0000') : value;
}

/** Control characters, quotes and backslashes escaped as in JSON; cut after {@link ORIGINAL_ID_CHARS_MAX} characters, saying how long it was. */
function escapedId(id: string): string {
  const escaped = JSON.stringify(id).slice(1, -1);
  if (escaped.length <= ORIGINAL_ID_CHARS_MAX) return escaped;
  return `${escaped.slice(0, ORIGINAL_ID_CHARS_MAX)}... (${id.length} characters)`;
}

/** A version-5 UUID of the record's topic, partition, offset and `ce_id` bytes (RFC 9562 §5.5). */
function derivedId(delivery: Delivery): string {
  const place = Buffer.from(`${delivery.topic}\n${delivery.partition}\n${delivery.offset}\n`);
  return uuidv5(Buffer.concat([place, delivery.headers.ce_id ?? Buffer.alloc(0)]), DEAD_LETTER_ID_NAMESPACE);
}
