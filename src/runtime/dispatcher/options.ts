/**
 * What the dispatcher needs from the app, and the lock timeout of its
 * concurrent transactions. Its options (batch size, transactions in flight),
 * their defaults and their validation are in `config/dispatcher-options.ts`.
 */
import type { Registry } from 'prom-client';
import type { DataSource } from 'typeorm';
import type { Logger } from '../../observability/index.js';

/** What the dispatcher needs from the app. */
export interface DispatcherDeps {
  dataSource: DataSource;
  /** The service instance for a class (from the inversify container). */
  resolve(serviceClass: Function): object;
  /** Aborted when the app stops: a pending backoff ends and the delivery is left uncommitted. */
  signal: AbortSignal;
  /** Where the dispatcher's Prometheus metrics go. @default prom-client's default registry */
  metricsRegistry?: Registry;
  /** Parent of the dispatcher's logger (the app's root). @default Concordat's own */
  logger?: Logger;
}

/**
 * `lock_timeout` of a handler transaction that runs beside others of its
 * group, in ms: long enough for the group's usual transaction (a few ms) to
 * finish and release what it holds, short enough that a conflict costs
 * little before the group goes back to one transaction at a time.
 */
export const GUARDED_LOCK_TIMEOUT_MS = 50;
