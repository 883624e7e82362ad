/** Longest wait before a failed partition worker or group member restarts, in ms (below `retryBackoffMaxMs` when that is lower). */
const WORKER_RESTART_BACKOFF_MAX_MS = 30_000;

/**
 * Wait before the `failures`-th consecutive restart of a worker or member,
 * in ms: `retryBackoffMs` doubling, capped at the lower of
 * `retryBackoffMaxMs` and 30 s (Infinity: the cap at once).
 */
export function restartBackoffMs(consumer: { retryBackoffMs: number; retryBackoffMaxMs: number }, failures: number): number {
  const cap = Math.min(consumer.retryBackoffMaxMs, WORKER_RESTART_BACKOFF_MAX_MS);
  return Math.min(cap, consumer.retryBackoffMs * 2 ** Math.min(failures - 1, 20));
}

/** Resolves after `ms`, or at once when `signal` aborts (never rejects). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    if (signal?.aborted === true) {
      resolve();
      return;
    }
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
