import { backoffMs } from '../../util/index.js';

/** Longest wait before a failed partition worker or group member restarts, in ms (below `retryBackoffMaxMs` when that is lower). */
const WORKER_RESTART_BACKOFF_MAX_MS = 30_000;

/**
 * Wait before the `failures`-th consecutive restart of a worker or member,
 * in ms: `retryBackoffMs` doubling, capped at the lower of
 * `retryBackoffMaxMs` and 30 s (Infinity: the cap at once).
 */
export function restartBackoffMs(consumer: { retryBackoffMs: number; retryBackoffMaxMs: number }, failures: number): number {
  return backoffMs({ firstMs: consumer.retryBackoffMs, maxMs: Math.min(consumer.retryBackoffMaxMs, WORKER_RESTART_BACKOFF_MAX_MS) }, failures);
}
