import { ERROR_CODES, ErrorCode } from './error-codes.js';

export { ERROR_CODES, ErrorCode, errorCodeOfKafka, isErrorCode, type ErrorCodeSpec } from './error-codes.js';
export { KAFKA_ERRORS, KafkaError, isKafkaErrorName, kafkaErrorName, kafkaErrorOf, type KafkaErrorName, type KafkaErrorSpec } from './kafka-errors.js';

/** What a {@link ConcordatError} is made of besides its message. */
export interface ConcordatErrorOptions {
  /** Stable, machine-readable code. */
  code: ErrorCode;
  /** Whether trying the same operation again may succeed. @default the code's `retriable` in {@link ERROR_CODES} */
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
 * Each code's meaning, default `retriable` and Kafka error are one row of
 * {@link ERROR_CODES} (`error-codes.ts`); an error says `retriable` only where
 * it differs from its code's default. Where a condition has a name in Kafka's
 * protocol (OFFSET_OUT_OF_RANGE, ILLEGAL_GENERATION, ...), the code is that
 * name, and its number is in Kafka's table (`kafka-errors.ts`).
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
   * @param options the code, the retriable flag (default: the code's in {@link ERROR_CODES}), the cause and the context
   */
  constructor(message: string, options: ConcordatErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = options.code;
    this.retriable = options.retriable ?? ERROR_CODES[options.code].retriable;
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
    super(`${what} is invalid: ${listed}`, { code: ErrorCode.VALIDATION_FAILED, context: { ...context, issues } });
    this.issues = issues;
  }
}

const PROGRAMMER_ERRORS: ReadonlyArray<new (...args: never[]) => Error> = [TypeError, RangeError, ReferenceError, SyntaxError];

/**
 * Whether the innermost cause of `error` ({@link rootCause}) is a programmer
 * error (`TypeError`, `RangeError`, `ReferenceError`, `SyntaxError`, or a
 * subclass): what nothing retries, however a library wrapped it.
 */
export function isProgrammerError(error: unknown): boolean {
  const innermost = rootCause(error);
  return PROGRAMMER_ERRORS.some((kind) => innermost instanceof kind);
}

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
