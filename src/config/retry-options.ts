import { z } from 'zod';
import { compileOptions } from './compile.js';

/** How the delay before a handler's next attempt grows. */
export const RetryStrategy = {
  /** Retry at once. */
  IMMEDIATE: 'immediate',
  /** Wait `initialDelayMs` before every retry. */
  FIXED: 'fixed',
  /** Wait `initialDelayMs × multiplier^(attempt−1)`, capped at `maxDelayMs`, with jitter. */
  EXPONENTIAL: 'exponential',
} as const;
/** One of the {@link RetryStrategy} values. */
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

/** A retry policy with every field present and checked (every delay in ms). */
export type CompiledRetryPolicy = z.output<typeof schema>;

/** Validates and fills in a retry policy. @throws ConcordatError CONFIG_INVALID */
export function compileRetryPolicy(options: RetryPolicyOptions = {}, scope = 'retry'): CompiledRetryPolicy {
  return compileOptions(schema, options, scope);
}
