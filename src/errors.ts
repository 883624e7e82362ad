/**
 * Every code a {@link ConcordatError} carries, grouped by the part of
 * Concordat that throws it. Codes that name a condition of Kafka's protocol
 * are Kafka's names (the broker answers them with Kafka's numbers).
 */
export const ErrorCode = {
  // configuration
  CONFIG_INVALID: 'CONFIG_INVALID',

  // log engine (names shared with Kafka where one exists)
  INVALID_TOPIC_EXCEPTION: 'INVALID_TOPIC_EXCEPTION',
  TOPIC_ALREADY_EXISTS: 'TOPIC_ALREADY_EXISTS',
  UNKNOWN_TOPIC_OR_PARTITION: 'UNKNOWN_TOPIC_OR_PARTITION',
  INVALID_PARTITIONS: 'INVALID_PARTITIONS',
  OFFSET_OUT_OF_RANGE: 'OFFSET_OUT_OF_RANGE',
  CORRUPT_MESSAGE: 'CORRUPT_MESSAGE',
  UNSUPPORTED_FOR_MESSAGE_FORMAT: 'UNSUPPORTED_FOR_MESSAGE_FORMAT',
  UNSUPPORTED_COMPRESSION_TYPE: 'UNSUPPORTED_COMPRESSION_TYPE',
  MESSAGE_TOO_LARGE: 'MESSAGE_TOO_LARGE',
  RECORD_LIST_TOO_LARGE: 'RECORD_LIST_TOO_LARGE',
  LIMIT_EXCEEDED: 'LIMIT_EXCEEDED',
  KAFKA_STORAGE_ERROR: 'KAFKA_STORAGE_ERROR',
  STORAGE_CORRUPT: 'STORAGE_CORRUPT',
  LOG_CLOSED: 'LOG_CLOSED',
  OUT_OF_ORDER_SEQUENCE_NUMBER: 'OUT_OF_ORDER_SEQUENCE_NUMBER',
  DUPLICATE_SEQUENCE_NUMBER: 'DUPLICATE_SEQUENCE_NUMBER',
  INVALID_PRODUCER_EPOCH: 'INVALID_PRODUCER_EPOCH',
  UNKNOWN_PRODUCER_ID: 'UNKNOWN_PRODUCER_ID',

  // Kafka transactions (KIP-98)
  INVALID_TXN_STATE: 'INVALID_TXN_STATE',
  INVALID_PRODUCER_ID_MAPPING: 'INVALID_PRODUCER_ID_MAPPING',
  INVALID_TRANSACTION_TIMEOUT: 'INVALID_TRANSACTION_TIMEOUT',
  CONCURRENT_TRANSACTIONS: 'CONCURRENT_TRANSACTIONS',
  PRODUCER_FENCED: 'PRODUCER_FENCED',
  OPERATION_NOT_ATTEMPTED: 'OPERATION_NOT_ATTEMPTED',

  // consumer groups
  ILLEGAL_GENERATION: 'ILLEGAL_GENERATION',
  UNKNOWN_MEMBER_ID: 'UNKNOWN_MEMBER_ID',
  MEMBER_ID_REQUIRED: 'MEMBER_ID_REQUIRED',
  REBALANCE_IN_PROGRESS: 'REBALANCE_IN_PROGRESS',
  INCONSISTENT_GROUP_PROTOCOL: 'INCONSISTENT_GROUP_PROTOCOL',
  INVALID_SESSION_TIMEOUT: 'INVALID_SESSION_TIMEOUT',
  INVALID_GROUP_ID: 'INVALID_GROUP_ID',
  GROUP_ID_NOT_FOUND: 'GROUP_ID_NOT_FOUND',
  NON_EMPTY_GROUP: 'NON_EMPTY_GROUP',
  GROUP_SUBSCRIBED_TO_TOPIC: 'GROUP_SUBSCRIBED_TO_TOPIC',
  COORDINATOR_NOT_AVAILABLE: 'COORDINATOR_NOT_AVAILABLE',

  // broker / wire protocol
  FRAME_INVALID: 'FRAME_INVALID',
  FRAME_TOO_LARGE: 'FRAME_TOO_LARGE',
  UNSUPPORTED_VERSION: 'UNSUPPORTED_VERSION',
  SASL_AUTHENTICATION_FAILED: 'SASL_AUTHENTICATION_FAILED',
  INSECURE_LISTENER: 'INSECURE_LISTENER',

  // messaging / transport
  SERIALIZATION_FAILED: 'SERIALIZATION_FAILED',
  ENVELOPE_INVALID: 'ENVELOPE_INVALID',
  TRANSPORT_CLOSED: 'TRANSPORT_CLOSED',
  PUBLISH_FAILED: 'PUBLISH_FAILED',
  /** A payload does not satisfy the schema of its topic or participant (`defineTopic`, `defineParticipant`). */
  VALIDATION_FAILED: 'VALIDATION_FAILED',
  /** `publish(..., { deliverAt, delayMs })` was given a bad time (both, an invalid Date, a negative or non-finite delay). */
  SCHEDULE_INVALID: 'SCHEDULE_INVALID',
  /** `cancelScheduled(id)` came too late: the message is due (or being delivered); it will be delivered. */
  SCHEDULED_MESSAGE_DUE: 'SCHEDULED_MESSAGE_DUE',
  /** `cancelScheduled(id)` found no pending scheduled message with that ID: never scheduled, already cancelled, or already delivered. */
  SCHEDULED_MESSAGE_NOT_FOUND: 'SCHEDULED_MESSAGE_NOT_FOUND',

  // persistence
  DATABASE_UNAVAILABLE: 'DATABASE_UNAVAILABLE',
  EMBEDDED_POSTGRES_FAILED: 'EMBEDDED_POSTGRES_FAILED',
  PREPARED_TRANSACTIONS_DISABLED: 'PREPARED_TRANSACTIONS_DISABLED',
  MIGRATION_FAILED: 'MIGRATION_FAILED',
  /** The database has no Concordat schema (never migrated): `concordat migrate` creates it. */
  SCHEMA_MISSING: 'SCHEMA_MISSING',
  /** `COMMIT` answered `ROLLBACK`: a statement inside the transaction failed and its error was caught. */
  TRANSACTION_ROLLED_BACK: 'TRANSACTION_ROLLED_BACK',

  // runtime
  HANDLER_DEFINITION_INVALID: 'HANDLER_DEFINITION_INVALID',
  HANDLER_FAILED: 'HANDLER_FAILED',
  RETRIES_EXHAUSTED: 'RETRIES_EXHAUSTED',
  DEDUP_WINDOW_TOO_SHORT: 'DEDUP_WINDOW_TOO_SHORT',
  /** A dead letter to replay failed longer ago than its consumer group's inbox dedup window (replay it with force). */
  DEAD_LETTER_TOO_OLD: 'DEAD_LETTER_TOO_OLD',
  APP_STATE_INVALID: 'APP_STATE_INVALID',
  /** `app.request()` / `pending.reply()`: no reply within `timeoutMs` of the request's commit (retriable: the responder may only be slow). */
  REQUEST_TIMEOUT: 'REQUEST_TIMEOUT',
  /** The responder's handler failed for good on a request (its message was dead-lettered): the error reply it sent. */
  REQUEST_FAILED: 'REQUEST_FAILED',
  /** `pending.reply()` on a request whose transaction rolled back: it was never sent. */
  REQUEST_NOT_SENT: 'REQUEST_NOT_SENT',
  /** Request-reply misused: requests not enabled, `ctx.request` in a message handler, a reply awaited before its transaction committed, a bad `timeoutMs`. */
  REQUEST_INVALID: 'REQUEST_INVALID',

  // global transactions
  GLOBAL_TX_NOT_FOUND: 'GLOBAL_TX_NOT_FOUND',
  GLOBAL_TX_STATE_INVALID: 'GLOBAL_TX_STATE_INVALID',
  GLOBAL_TX_TIMED_OUT: 'GLOBAL_TX_TIMED_OUT',
  BRANCH_REJECTED: 'BRANCH_REJECTED',
  TRY_AFTER_CANCEL: 'TRY_AFTER_CANCEL',
  PARTICIPANT_UNKNOWN: 'PARTICIPANT_UNKNOWN',

  // log engine and consumer groups, added with src/log/ (names shared with Kafka where one exists)
  LOG_DIR_LOCKED: 'LOG_DIR_LOCKED',
  /** The embedded log directory was written for another database than the app's (see EmbeddedTransport.pairWithDatabase). */
  LOG_DATABASE_MISMATCH: 'LOG_DATABASE_MISMATCH',
  INVALID_RECORD: 'INVALID_RECORD',
  INVALID_CONFIG: 'INVALID_CONFIG',
  OFFSET_METADATA_TOO_LARGE: 'OFFSET_METADATA_TOO_LARGE',
  GROUP_MAX_SIZE_REACHED: 'GROUP_MAX_SIZE_REACHED',
  FENCED_INSTANCE_ID: 'FENCED_INSTANCE_ID',

  // operations (src/admin/)
  /** A broker refused or failed an admin request with an error that has no code of its own here; the message quotes the broker's. */
  ADMIN_REQUEST_FAILED: 'ADMIN_REQUEST_FAILED',
} as const;

/** One of the {@link ErrorCode} values. */
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** What a {@link ConcordatError} is made of besides its message. */
export interface ConcordatErrorOptions {
  /** Stable, machine-readable code. */
  code: ErrorCode;
  /** Whether trying the same operation again may succeed. @default false */
  retriable?: boolean;
  /** The error this one wraps. */
  cause?: unknown;
  /** Structured facts (topic, partition, offset, option name...) for logs and callers. */
  context?: Record<string, unknown>;
}

/**
 * Base class of every error Concordat throws on purpose: one class for all
 * of Concordat, with a stable code, a retriable flag and structured context.
 *
 * Retry logic anywhere in Concordat reads only {@link isRetriable}: it never
 * parses messages. Programmer errors (`TypeError`, `RangeError`,
 * `ReferenceError`, `SyntaxError`) are never retried; a handler can mark its
 * own error as final with {@link nonRetriable} or by throwing a
 * `ConcordatError` with `retriable: false`.
 *
 * Where a condition has a name in Kafka's protocol (OFFSET_OUT_OF_RANGE,
 * ILLEGAL_GENERATION, ...), the code is that name, so the broker maps codes to
 * Kafka's numeric error codes through one table (`broker/codec/error-codes.ts`).
 */
export class ConcordatError extends Error {
  /** Stable, machine-readable code; branch on it, never on the message. */
  readonly code: ErrorCode;
  /** Whether trying the same operation again may succeed (what {@link isRetriable} returns for it). */
  readonly retriable: boolean;
  /** Structured facts (topic, partition, offset, option name...), frozen. */
  readonly context: Readonly<Record<string, unknown>>;

  /**
   * @param message what went wrong and, for an operating error, what to do about it
   * @param options the code, the retriable flag (default false), the cause and the context
   */
  constructor(message: string, options: ConcordatErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = options.code;
    this.retriable = options.retriable ?? false;
    this.context = Object.freeze({ ...(options.context ?? {}) });
  }
}

/** Thrown when a handler (or any retried operation) failed on every attempt. */
export class RetriesExhaustedError extends ConcordatError {
  /** Attempts made, the first included. */
  readonly attempts: number;

  /**
   * @param attempts attempts made, the first included
   * @param cause the last attempt's error (the message quotes it)
   * @param context facts for logs; `attempts` is added
   */
  constructor(attempts: number, cause: unknown, context: Record<string, unknown> = {}) {
    super(`gave up after ${attempts} attempt(s): ${describeError(cause)}`, {
      code: ErrorCode.RETRIES_EXHAUSTED,
      retriable: false,
      cause,
      context: { ...context, attempts },
    });
    this.attempts = attempts;
  }
}

/** One problem a schema found in a payload: where (`items.0.qty`, empty for the payload itself) and what. */
export interface ValidationIssue {
  /** Dotted path into the payload, e.g. `items.0.qty`; empty for the payload itself. */
  path: string;
  /** What is wrong there, in the schema library's words. */
  message: string;
}

/**
 * Thrown (code VALIDATION_FAILED, never retriable) when a payload does not
 * satisfy its schema: on publishing to a typed topic, on beginning a global
 * transaction with a typed participant, and on the consumer side for an
 * incoming message (which is then dead-lettered at once). `issues` lists
 * every problem the schema reported, in its order.
 */
export class ValidationError extends ConcordatError {
  /** Every problem the schema reported, in its order. */
  readonly issues: readonly ValidationIssue[];

  /**
   * @param what what was validated, e.g. `the payload of topic 'orders'` (the message reads "<what> is invalid: ...")
   * @param issues what the schema reported
   * @param context facts for logs; `issues` is added
   */
  constructor(what: string, issues: readonly ValidationIssue[], context: Record<string, unknown> = {}) {
    const listed = issues.map((issue) => (issue.path === '' ? issue.message : `${issue.path}: ${issue.message}`)).join('; ');
    super(`${what} is invalid: ${listed}`, { code: ErrorCode.VALIDATION_FAILED, retriable: false, context: { ...context, issues } });
    this.issues = issues;
  }
}

const PROGRAMMER_ERRORS: ReadonlyArray<new (...args: never[]) => Error> = [TypeError, RangeError, ReferenceError, SyntaxError];

const NON_RETRIABLE = Symbol.for('concordat.nonRetriable');

/**
 * Marks any error as final: the dispatcher sends the message to the
 * dead-letter topic at once instead of retrying. Returns the same error.
 */
export function nonRetriable<E extends Error>(error: E): E {
  Object.defineProperty(error, NON_RETRIABLE, { value: true, enumerable: false });
  return error;
}

/**
 * Whether an operation that failed with `error` may be tried again.
 * ConcordatErrors carry their own flag; programmer errors and errors marked
 * with {@link nonRetriable} are final; any other error (a dropped connection,
 * a deadlock, a handler's own `Error`) is presumed transient.
 */
export function isRetriable(error: unknown): boolean {
  if (error instanceof ConcordatError) return error.retriable;
  if (error instanceof Error) {
    if ((error as unknown as Record<symbol, unknown>)[NON_RETRIABLE] === true) return false;
    return !PROGRAMMER_ERRORS.some((kind) => error.constructor === kind);
  }
  return true;
}

/** Most values {@link causeChain} yields by default. */
const CAUSE_CHAIN_DEPTH_MAX = 16;

/**
 * `error` and the values it wraps, outermost first: after each, its
 * TypeORM `driverError` when it has one, else its standard `cause`. The one
 * walk of a failure's causes, for everything that looks inside a failure
 * (a SQLSTATE, a lost connection, a Kafka error type, a record the log
 * refuses for good, a programmer error at the root).
 *
 * Yields objects only: it stops at a value that is not one (undefined, a
 * string given as a cause), at one it yielded before (a cause cycle, such as
 * an error that is its own cause), and after `depthMax` values.
 */
export function* causeChain(error: unknown, depthMax: number = CAUSE_CHAIN_DEPTH_MAX): Generator<object, void, undefined> {
  const seen = new Set<unknown>();
  for (let current = error; current !== null && typeof current === 'object' && seen.size < depthMax && !seen.has(current);) {
    seen.add(current);
    yield current;
    const { driverError, cause } = current as { driverError?: unknown; cause?: unknown };
    current = driverError ?? cause;
  }
}

/** The innermost value of {@link causeChain} (`error` itself when it wraps nothing), or `error` when it is not an object. */
export function rootCause(error: unknown): unknown {
  let root = error;
  for (const current of causeChain(error)) root = current;
  return root;
}

/**
 * Whether `error`, or an error it wraps (see {@link causeChain}; up to 4
 * levels, Errors only), satisfies `test`: for the predicates that classify
 * database errors (a SQLSTATE, a lost connection, a server not yet ready).
 */
export function someCause(error: unknown, test: (error: Error & { code?: unknown }) => boolean): boolean {
  for (const current of causeChain(error, 4)) {
    if (!(current instanceof Error)) return false;
    if (test(current)) return true;
  }
  return false;
}

/** `Name: message` for any thrown value, for logs and dead-letter headers. */
export function describeError(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return String(error);
}
