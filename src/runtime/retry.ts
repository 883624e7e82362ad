import { z } from 'zod';
import { compileOptions } from '../config/index.js';

export const RetryStrategy = {
  /** Retry at once. */
  IMMEDIATE: 'immediate',
  /** Wait `initialDelayMs` before every retry. */
  FIXED: 'fixed',
  /** Wait `initialDelayMs × multiplier^(attempt−1)`, capped at `maxDelayMs`, with jitter. */
  EXPONENTIAL: 'exponential',
} as const;
export type RetryStrategy = (typeof RetryStrategy)[keyof typeof RetryStrategy];

/** How a failing handler is retried before its message is dead-lettered. */
export interface RetryPolicyOptions {
  /** Attempts in all, the first included; 1 means no retry. Range 1..100. @default 5 */
  maxAttempts?: number;
  /** @default 'exponential' */
  strategy?: RetryStrategy;
  /** Delay before the first retry, in ms. Range 0..3600000. @default 100 */
  initialDelayMs?: number;
  /** Upper bound of any delay, in ms. Range 0..3600000. @default 10000 */
  maxDelayMs?: number;
  /** Growth factor of the exponential strategy. Range 1..10. @default 2 */
  multiplier?: number;
  /**
   * Fraction of each exponential delay that is randomized ("equal jitter":
   * the delay is drawn uniformly from [d × (1 − jitter), d]), so retries of
   * many messages that failed together spread out. Range 0..1. @default 0.5
   */
  jitter?: number;
}

const schema = z
  .strictObject({
    maxAttempts: z.number().int().min(1).max(100).default(5),
    strategy: z.enum(['immediate', 'fixed', 'exponential']).default('exponential'),
    initialDelayMs: z.number().int().min(0).max(3_600_000).default(100),
    maxDelayMs: z.number().int().min(0).max(3_600_000).default(10_000),
    multiplier: z.number().min(1).max(10).default(2),
    jitter: z.number().min(0).max(1).default(0.5),
  })
  .refine((p) => p.initialDelayMs <= p.maxDelayMs, { message: 'initialDelayMs must not exceed maxDelayMs', path: ['initialDelayMs'] });

export type CompiledRetryPolicy = z.output<typeof schema>;

/** Validates and fills in a retry policy. @throws ConcordatError CONFIG_INVALID */
export function compileRetryPolicy(options: RetryPolicyOptions = {}, scope = 'retry'): CompiledRetryPolicy {
  return compileOptions(schema, options, scope);
}

/**
 * Delay before retry number `attempt` (1 = the first retry), in ms.
 * `random` is injectable for tests; it must return values in [0, 1).
 */
export function retryDelayMs(policy: CompiledRetryPolicy, attempt: number, random: () => number = Math.random): number {
  switch (policy.strategy) {
    case 'immediate':
      return 0;
    case 'fixed':
      return policy.initialDelayMs;
    case 'exponential': {
      const base = Math.min(policy.maxDelayMs, policy.initialDelayMs * policy.multiplier ** (attempt - 1));
      return Math.round(base * (1 - policy.jitter * random()));
    }
  }
}

/**
 * SQLSTATEs that mean the database itself is not there: class 08
 * (connection exception), 57P01..57P03 (admin shutdown, crash shutdown,
 * cannot connect now: a restart in progress), 53300 (too many connections).
 */
const UNAVAILABLE_SQLSTATE = /^(08...|57P0[123]|53300)$/;

/** Messages node-postgres uses when the connection itself failed (it sets no SQLSTATE then). */
const CONNECTION_LOST = [
  'Connection terminated',
  'Client has encountered a connection error and is not queryable',
  'Client was closed and is not queryable',
  'timeout exceeded when trying to connect',
  'Connection ended unexpectedly',
];

/**
 * Whether `error` says the database could not be reached (rather than that
 * the handler or its SQL failed). Such a failure does not count as one of a
 * handler's attempts: the message waits for the database instead of heading
 * for the dead-letter topic during an outage or a restart. Reads the
 * SQLSTATE of pg errors (also inside TypeORM's `QueryFailedError`), and
 * node-postgres's connection messages. A refused or reset socket carries no
 * such mark (it could be the handler's own HTTP call): the dispatcher asks
 * the database itself in that case.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  for (let current = error, depth = 0; current instanceof Error && depth < 4; depth++) {
    const withCode = current as Error & { code?: unknown; driverError?: unknown };
    if (typeof withCode.code === 'string' && UNAVAILABLE_SQLSTATE.test(withCode.code)) return true;
    if (CONNECTION_LOST.some((text) => current instanceof Error && current.message.includes(text))) return true;
    current = withCode.driverError ?? current.cause;
  }
  return false;
}
