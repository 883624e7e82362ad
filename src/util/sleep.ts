/**
 * Resolves after `ms`, or as soon as `signal` aborts (at once when it is
 * aborted already); never rejects. The timer and the abort listener are
 * removed either way, so a long-lived signal collects no listeners. A
 * caller that must stop on abort checks `signal.aborted` after it.
 */
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
