/** Largest exponent of {@link backoffMs}: past 2^20 every delay of interest is already at its cap. */
const DOUBLINGS_MAX = 20;

/** The delays of a capped exponential backoff, in ms. */
export interface Backoff {
  /** The first delay, in ms (≥ 0). */
  firstMs: number;
  /** The longest delay, in ms (≥ `firstMs`; Infinity: uncapped). */
  maxMs: number;
}

/**
 * Capped exponential backoff, the one Concordat uses wherever something is
 * tried again after a failure (a relay lane's batch, the scheduler's pass,
 * a consumer's restart, a coordinator's resend, a wait for the database):
 * the `n`-th wait (n ≥ 1) is `firstMs × 2^(n − 1)`, at most `maxMs`. No
 * jitter: these loops run once per process or component, not in a crowd
 * (a handler's retry policy, with jitter, is `retryDelayMs` in `runtime/`).
 *
 * The exponent stops at 20, so a large `n` (a loop failing for days)
 * cannot overflow to Infinity × 0 or NaN.
 * @returns the delay in ms
 */
export function backoffMs(backoff: Backoff, n: number): number {
  return Math.min(backoff.maxMs, backoff.firstMs * 2 ** Math.min(n - 1, DOUBLINGS_MAX));
}
