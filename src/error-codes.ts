/**
 * Concordat's error table: one row per code a {@link ConcordatError}
 * carries, with what it means, whether an error with it is retriable by
 * default, and the Kafka error it is on the wire where there is one. An
 * error may say otherwise for itself (`retriable` in its options); nothing
 * else decides a code's retriability. docs/errors.md is generated from this
 * table (`npx tsx scripts/error-table.ts`), and a test checks it is.
 *
 * Codes that name a condition of Kafka's protocol are Kafka's names, and
 * point at their own row of Kafka's table ({@link KAFKA_ERRORS}); a few
 * Concordat-only codes point at the Kafka error a client is shown instead.
 *
 * @module
 */

import type { KafkaErrorName } from './kafka-errors.js';

/** One row of {@link ERROR_CODES}. */
export interface ErrorCodeSpec {
  /** What the code means: when it is thrown, and what to do about it. */
  readonly meaning: string;
  /** Whether an error with this code may succeed when tried again, unless the error says otherwise. */
  readonly retriable: boolean;
  /** The Kafka error (a row of KAFKA_ERRORS) the broker answers for it; none: UNKNOWN_SERVER_ERROR. */
  readonly kafka?: KafkaErrorName;
  /** A record or batch refused with this code can never be written, whatever the retries: the outbox moves its rows to `outbox_failed`. */
  readonly poison?: true;
  /** Why `retriable` differs from Kafka's flag for {@link kafka}; required where it does. */
  readonly differsFromKafka?: string;
}

const ROWS = {
  // configuration
  CONFIG_INVALID: { retriable: false, meaning: 'An option, argument or environment variable is not valid; the message names it and says what it takes.' },

  // log engine (names shared with Kafka where one exists)
  INVALID_TOPIC_EXCEPTION: {
    retriable: false,
    kafka: 'INVALID_TOPIC_EXCEPTION',
    poison: true,
    meaning: 'A topic name Kafka would refuse (empty, too long, `.` or `..`, a character outside `[a-zA-Z0-9._-]`), or an operation not allowed on the topic.',
  },
  TOPIC_ALREADY_EXISTS: { retriable: false, kafka: 'TOPIC_ALREADY_EXISTS', meaning: 'A topic with this name exists already.' },
  UNKNOWN_TOPIC_OR_PARTITION: {
    retriable: true,
    kafka: 'UNKNOWN_TOPIC_OR_PARTITION',
    meaning: 'The topic or partition does not exist (or was deleted); create it (`ensureTopics`, `concordat topics create`) and try again.',
  },
  INVALID_PARTITIONS: {
    retriable: false,
    kafka: 'INVALID_PARTITIONS',
    meaning: 'A partition count that is not valid (below 1, not larger than today, above the limit).',
  },
  OFFSET_OUT_OF_RANGE: {
    retriable: false,
    kafka: 'OFFSET_OUT_OF_RANGE',
    meaning: 'An offset before the log start offset or after the log end offset of the partition.',
  },
  CORRUPT_MESSAGE: {
    retriable: false,
    kafka: 'CORRUPT_MESSAGE',
    meaning: 'A record batch that fails its CRC or cannot be decoded (a bad length, a compressed payload that does not inflate).',
    differsFromKafka: 'Kafka retries in case the bytes were damaged in transit; the log refuses the bytes it was given, and the same bytes fail again.',
  },
  UNSUPPORTED_FOR_MESSAGE_FORMAT: {
    retriable: false,
    kafka: 'UNSUPPORTED_FOR_MESSAGE_FORMAT',
    meaning: 'A record batch in a format the log does not store (magic other than 2).',
  },
  UNSUPPORTED_COMPRESSION_TYPE: {
    retriable: false,
    kafka: 'UNSUPPORTED_COMPRESSION_TYPE',
    meaning: 'A batch compressed with a codec the log does not support.',
  },
  MESSAGE_TOO_LARGE: { retriable: false, kafka: 'MESSAGE_TOO_LARGE', poison: true, meaning: "A record or batch over the topic's `maxMessageBytes`." },
  RECORD_LIST_TOO_LARGE: { retriable: false, kafka: 'RECORD_LIST_TOO_LARGE', poison: true, meaning: 'A batch larger than a segment of the topic may hold.' },
  LIMIT_EXCEEDED: {
    retriable: false,
    kafka: 'POLICY_VIOLATION',
    meaning:
      'A bound of Concordat was reached (the message names the option, `context.limit` too). Final when the request itself breaks the bound; retriable, ' +
      'on the error, when a resource ran out for now (`openFilesMax`, `appendQueueBytesMax`, `readWaitersMax`, `groups.groupsMax`, `requests.pendingMax`); ' +
      'the broker answers those with a retriable Kafka error (see `broker/codec/error-codes.ts`).',
  },
  KAFKA_STORAGE_ERROR: {
    retriable: true,
    kafka: 'KAFKA_STORAGE_ERROR',
    meaning:
      'A file operation of the log failed (EIO, a full disk: `context.diskFull`); nothing of the operation was kept. Final, on the error, when the partition went offline (reopen the log).',
  },
  STORAGE_CORRUPT: {
    retriable: false,
    kafka: 'KAFKA_STORAGE_ERROR',
    meaning: 'Log files hold what the log did not write (a bad checkpoint, a missing segment); the message says which and what to restore.',
    differsFromKafka: 'Kafka has no code of its own for it and clients are shown a storage error; the files stay corrupt until repaired.',
  },
  LOG_CLOSED: {
    retriable: true,
    kafka: 'NOT_LEADER_OR_FOLLOWER',
    meaning:
      'The log (or the broker serving it) is closing or closed; the operation was not done. Clients see NOT_LEADER_OR_FOLLOWER and retry after reconnecting.',
  },
  OUT_OF_ORDER_SEQUENCE_NUMBER: {
    retriable: false,
    kafka: 'OUT_OF_ORDER_SEQUENCE_NUMBER',
    meaning: "An idempotent producer's batch skips ahead of the sequence number expected.",
  },
  DUPLICATE_SEQUENCE_NUMBER: {
    retriable: false,
    kafka: 'DUPLICATE_SEQUENCE_NUMBER',
    meaning: 'A batch repeats sequence numbers the partition has written, but not as the same batch.',
  },
  INVALID_PRODUCER_EPOCH: {
    retriable: false,
    kafka: 'INVALID_PRODUCER_EPOCH',
    meaning: 'A producer epoch older than the current one: a newer producer has fenced this one.',
  },
  UNKNOWN_PRODUCER_ID: { retriable: false, kafka: 'UNKNOWN_PRODUCER_ID', meaning: 'The log holds no state for the producer ID.' },

  // Kafka transactions (KIP-98)
  INVALID_TXN_STATE: {
    retriable: false,
    kafka: 'INVALID_TXN_STATE',
    meaning: 'A transactional request not valid in the transaction’s state (no open transaction, or one ending).',
  },
  INVALID_PRODUCER_ID_MAPPING: { retriable: false, kafka: 'INVALID_PRODUCER_ID_MAPPING', meaning: 'The producer ID is not the one of the transactional ID.' },
  INVALID_TRANSACTION_TIMEOUT: {
    retriable: false,
    kafka: 'INVALID_TRANSACTION_TIMEOUT',
    meaning: 'A transaction timeout outside what the transaction coordinator allows.',
  },
  CONCURRENT_TRANSACTIONS: {
    retriable: true,
    kafka: 'CONCURRENT_TRANSACTIONS',
    meaning: 'The transactional ID is still completing its previous transaction; retry.',
  },
  PRODUCER_FENCED: { retriable: false, kafka: 'PRODUCER_FENCED', meaning: 'A newer producer with the same transactional ID has fenced this one.' },
  OPERATION_NOT_ATTEMPTED: { retriable: false, kafka: 'OPERATION_NOT_ATTEMPTED', meaning: 'Not tried because another part of the same request failed.' },

  // consumer groups
  ILLEGAL_GENERATION: {
    retriable: false,
    kafka: 'ILLEGAL_GENERATION',
    meaning: 'A generation of the consumer group that is not the current one: the member must join again.',
  },
  UNKNOWN_MEMBER_ID: {
    retriable: false,
    kafka: 'UNKNOWN_MEMBER_ID',
    meaning: 'The coordinator does not know the member (its session expired, or it left): it must join again.',
  },
  MEMBER_ID_REQUIRED: {
    retriable: false,
    kafka: 'MEMBER_ID_REQUIRED',
    meaning: 'A new member must join again with the member ID the coordinator gave it (KIP-394).',
  },
  REBALANCE_IN_PROGRESS: {
    retriable: true,
    kafka: 'REBALANCE_IN_PROGRESS',
    meaning: 'The consumer group is rebalancing: the member joins again, and the call succeeds in the next generation.',
    differsFromKafka:
      'Kafka marks it final because the same request fails until the member rejoins; the embedded group member rejoins on it and then tries again.',
  },
  INCONSISTENT_GROUP_PROTOCOL: {
    retriable: false,
    kafka: 'INCONSISTENT_GROUP_PROTOCOL',
    meaning: 'The member offers no protocol the group agrees on (or none).',
  },
  INVALID_SESSION_TIMEOUT: { retriable: false, kafka: 'INVALID_SESSION_TIMEOUT', meaning: 'A session timeout outside the range the coordinator allows.' },
  INVALID_GROUP_ID: { retriable: false, kafka: 'INVALID_GROUP_ID', meaning: 'A consumer group ID that is not valid (empty).' },
  GROUP_ID_NOT_FOUND: { retriable: false, kafka: 'GROUP_ID_NOT_FOUND', meaning: 'No consumer group has this ID.' },
  NON_EMPTY_GROUP: { retriable: false, kafka: 'NON_EMPTY_GROUP', meaning: 'The consumer group still has members (stop them first).' },
  GROUP_SUBSCRIBED_TO_TOPIC: {
    retriable: false,
    kafka: 'GROUP_SUBSCRIBED_TO_TOPIC',
    meaning: 'A member of the group subscribes to the topic, so its committed offsets stay.',
  },
  COORDINATOR_NOT_AVAILABLE: {
    retriable: true,
    kafka: 'COORDINATOR_NOT_AVAILABLE',
    meaning: 'The group or transaction coordinator cannot serve the request now (closing, its state not stored, not reachable).',
  },

  // broker / wire protocol
  FRAME_INVALID: { retriable: false, meaning: 'A request frame that does not parse (a bad length, a truncated field); the broker closes the connection.' },
  FRAME_TOO_LARGE: { retriable: false, meaning: 'A request frame larger than the broker accepts.' },
  UNSUPPORTED_VERSION: {
    retriable: false,
    kafka: 'UNSUPPORTED_VERSION',
    meaning: 'An API, or a version of it, that the broker (or the brokers a transport talks to) does not serve.',
  },
  SASL_AUTHENTICATION_FAILED: { retriable: false, kafka: 'SASL_AUTHENTICATION_FAILED', meaning: 'SASL authentication failed.' },
  INSECURE_LISTENER: {
    retriable: false,
    meaning: 'A listener asked to serve beyond 127.0.0.1 without the token or TLS it needs; the message says what to set.',
  },

  // messaging / transport
  SERIALIZATION_FAILED: { retriable: false, meaning: 'A payload or other data cannot be serialized as JSON.' },
  ENVELOPE_INVALID: { retriable: false, meaning: 'A message whose envelope (CloudEvents headers, IDs) is missing or malformed.' },
  TRANSPORT_CLOSED: { retriable: false, meaning: 'An operation on a transport, subscription or connection that is closed.' },
  PUBLISH_FAILED: {
    retriable: true,
    meaning:
      'A publish failed; some records may have been written (the outbox publishes its rows again). Final, on the error, when the cause is a programmer error or a final error of the log.',
  },
  VALIDATION_FAILED: { retriable: false, meaning: 'A payload does not satisfy the schema of its topic or participant (`defineTopic`, `defineParticipant`).' },
  SCHEDULE_INVALID: {
    retriable: false,
    meaning: '`publish(..., { deliverAt, delayMs })` was given a bad time (both, an invalid Date, a negative or non-finite delay).',
  },
  SCHEDULED_MESSAGE_DUE: { retriable: false, meaning: '`cancelScheduled(id)` came too late: the message is due (or being delivered); it will be delivered.' },
  SCHEDULED_MESSAGE_NOT_FOUND: {
    retriable: false,
    meaning: '`cancelScheduled(id)` found no pending scheduled message with that ID: never scheduled, already cancelled, or already delivered.',
  },

  // persistence
  DATABASE_UNAVAILABLE: {
    retriable: true,
    meaning: 'PostgreSQL cannot be reached (or, for the CLI, the database named does not exist: final, on the error); the message says what was tried.',
  },
  EMBEDDED_POSTGRES_FAILED: { retriable: false, meaning: 'The embedded PostgreSQL did not start; the message quotes its last output.' },
  PREPARED_TRANSACTIONS_DISABLED: {
    retriable: false,
    meaning: 'PostgreSQL has `max_prepared_transactions = 0`, which 2PC needs above 0; the message says how to set it.',
  },
  MIGRATION_FAILED: { retriable: false, meaning: 'A migration of the Concordat schema failed.' },
  SCHEMA_MISSING: { retriable: false, meaning: 'The database has no Concordat schema (never migrated): `concordat migrate` creates it.' },
  TRANSACTION_OUTCOME_UNKNOWN: {
    retriable: true,
    meaning:
      'The connection to PostgreSQL failed while the `COMMIT` was on its way: the transaction (with the messages it published) may or may not have committed. Check for its effect before doing its work again; a message handler needs nothing: its delivery is retried and the inbox skips it if it had committed.',
  },
  TRANSACTION_ROLLED_BACK: {
    retriable: true,
    meaning:
      '`COMMIT` answered `ROLLBACK`: a statement inside the transaction failed and its error was caught. Retriable: what failed may have been transient.',
  },

  // runtime
  HANDLER_DEFINITION_INVALID: {
    retriable: false,
    meaning: 'Handlers or participants misdeclared (two handlers for one topic in a group, a `@Try` without `@Confirm`/`@Cancel`, ...).',
  },
  HANDLER_FAILED: { retriable: false, meaning: 'A handler failed (reserved: handlers’ own errors are passed on as they are).' },
  RETRIES_EXHAUSTED: { retriable: false, meaning: 'An operation failed on every attempt; `attempts` says how many, the cause is the last error.' },
  DEDUP_WINDOW_TOO_SHORT: {
    retriable: false,
    meaning: "`inbox.dedupWindowMs` is shorter than the log's retention of a consumed topic; the message says how to fix it.",
  },
  DEAD_LETTER_TOO_OLD: {
    retriable: false,
    meaning: "A dead letter to replay failed longer ago than its consumer group's inbox dedup window (replay it with force).",
  },
  APP_STATE_INVALID: {
    retriable: false,
    meaning:
      'An app operation not allowed in its state (starting it twice, a request while it is not running or after it stopped). Retriable, on the error, when a delivery met the app stopping.',
  },
  REQUEST_TIMEOUT: {
    retriable: true,
    meaning: "`app.request()` / `pending.reply()`: no reply within `timeoutMs` of the request's commit (retriable: the responder may only be slow).",
  },
  REQUEST_FAILED: {
    retriable: false,
    meaning: "The responder's handler failed for good on a request (its message was dead-lettered): the error reply it sent.",
  },
  REQUEST_NOT_SENT: { retriable: false, meaning: '`pending.reply()` on a request whose transaction rolled back: it was never sent.' },
  REQUEST_INVALID: {
    retriable: false,
    meaning:
      'Request-reply misused: requests not enabled, `ctx.request` in a message handler, a reply awaited before its transaction committed, a bad `timeoutMs`.',
  },

  // global transactions
  GLOBAL_TX_NOT_FOUND: { retriable: false, meaning: 'No global transaction has this ID.' },
  GLOBAL_TX_STATE_INVALID: {
    retriable: false,
    meaning: 'The global transaction is not in a state that allows the operation (aborting a decided one, retrying an ended one).',
  },
  GLOBAL_TX_TIMED_OUT: { retriable: false, meaning: 'A global transaction passed its timeout (reserved: the coordinator records it as the outcome).' },
  BRANCH_REJECTED: { retriable: false, meaning: 'A participant refused a branch (reserved: refusals travel in replies).' },
  TRY_AFTER_CANCEL: { retriable: false, meaning: 'A TCC Try that arrived after its Cancel (reserved: the fence answers it).' },
  PARTICIPANT_UNKNOWN: { retriable: false, meaning: 'A global transaction names a participant no service declares (reserved).' },

  // log engine and consumer groups, added with src/log/ (names shared with Kafka where one exists)
  LOG_DIR_LOCKED: { retriable: false, meaning: 'Another process (a running broker or app) holds the log directory.' },
  LOG_DATABASE_MISMATCH: {
    retriable: false,
    meaning: "The embedded log directory was written for another database than the app's (see `EmbeddedTransport.pairWithDatabase`).",
  },
  INVALID_RECORD: {
    retriable: false,
    kafka: 'INVALID_RECORD',
    poison: true,
    meaning: 'A record or batch the log refuses as malformed (bytes that run past its end, an idempotent batch without producer epoch and sequence, ...).',
  },
  INVALID_CONFIG: { retriable: false, kafka: 'INVALID_CONFIG', meaning: 'A topic config (name or value) that is not valid; the message names it.' },
  OFFSET_METADATA_TOO_LARGE: {
    retriable: false,
    kafka: 'OFFSET_METADATA_TOO_LARGE',
    meaning: 'The metadata of an offset commit is longer than the coordinator keeps.',
  },
  GROUP_MAX_SIZE_REACHED: { retriable: false, kafka: 'GROUP_MAX_SIZE_REACHED', meaning: 'The consumer group has as many members as it may have.' },
  FENCED_INSTANCE_ID: {
    retriable: false,
    kafka: 'FENCED_INSTANCE_ID',
    meaning: 'A static member whose `group.instance.id` another member has joined with (a restarted or duplicate instance).',
  },

  // operations (src/admin/)
  ADMIN_REQUEST_FAILED: {
    retriable: false,
    meaning: "A broker refused or failed an admin request with an error that has no code of its own here; the message quotes the broker's.",
  },
} as const satisfies Record<string, ErrorCodeSpec>;

/**
 * Every code a {@link ConcordatError} carries (`ErrorCode.OFFSET_OUT_OF_RANGE
 * === 'OFFSET_OUT_OF_RANGE'`), one per row of {@link ERROR_CODES}, grouped by
 * the part of Concordat that throws it.
 */
export const ErrorCode = Object.freeze(Object.fromEntries(Object.keys(ROWS).map((code) => [code, code])) as { readonly [C in keyof typeof ROWS]: C });

/** One of the {@link ErrorCode} values. */
export type ErrorCode = keyof typeof ROWS;

/** Concordat's error table, by code; see the module comment. */
export const ERROR_CODES: Readonly<Record<ErrorCode, ErrorCodeSpec>> = ROWS;

/** Whether `code` is one of Concordat's error codes. */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ROWS, code);
}

/**
 * The Concordat code that is the Kafka error `kafka` itself (same name; its
 * row points at it), or undefined: Kafka's errors that Concordat has no code
 * for, and those a Concordat-only code is only shown as (NOT_LEADER_OR_FOLLOWER
 * does not become LOG_CLOSED).
 */
export function errorCodeOfKafka(kafka: KafkaErrorName | undefined): ErrorCode | undefined {
  return kafka !== undefined && isErrorCode(kafka) && ERROR_CODES[kafka].kafka === kafka ? kafka : undefined;
}
