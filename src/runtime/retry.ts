import pg from 'pg';
import type { DataSource } from 'typeorm';
import { type CompiledRetryPolicy } from '../config/index.js';
import { someCause } from '../errors.js';

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
 * SQLSTATEs that mean the connection to the database was lost or could not
 * be made: class 08 (connection exception) except 08P01, 57P01..57P03 (admin
 * shutdown, crash shutdown, cannot connect now: a restart in progress),
 * 53300 (too many connections).
 *
 * Not 08P01 (protocol violation): PostgreSQL answers it to a malformed
 * message, such as a statement with more than 65535 parameters, on a
 * connection that stays usable. Counting it as an outage made the message
 * wait for a database that was there and try the same statement again,
 * forever, never using up an attempt.
 */
const UNAVAILABLE_SQLSTATE = /^(08(?!P01)...|57P0[123]|53300)$/;

/** Messages node-postgres uses when the connection itself failed (it sets no SQLSTATE then). */
const CONNECTION_LOST = [
  'Connection terminated',
  'Client has encountered a connection error and is not queryable',
  'Client was closed and is not queryable',
  'timeout exceeded when trying to connect',
  'Connection ended unexpectedly',
];

/**
 * Whether `error` says the connection to the database was lost or could not
 * be made (rather than that the handler or its SQL failed). Such a failure
 * does not count as one of a handler's attempts: the message waits for the
 * database instead of heading for the dead-letter topic during an outage or
 * a restart. Reads the SQLSTATE of pg errors (also inside TypeORM's
 * `QueryFailedError`), and node-postgres's connection messages. Any other
 * error — a statement's (08P01 included), a refused or reset socket (it
 * could be the handler's own HTTP call) — is not proof: the dispatcher then
 * asks the database itself ({@link databaseAnswersNewConnection}).
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  return someCause(
    error,
    (current) =>
      (typeof current.code === 'string' && UNAVAILABLE_SQLSTATE.test(current.code)) || CONNECTION_LOST.some((text) => current.message.includes(text)),
  );
}

/** Longest wait of {@link databaseAnswersNewConnection} for the connection, then for `SELECT 1`, in ms. */
const PROBE_TIMEOUT_MS = 5000;

/**
 * Whether the database answers `SELECT 1` on a new connection, made with
 * the DataSource's connection settings outside its pool, so that the answer
 * is about reaching the server now, not about a pooled connection that
 * happens to be open. Waits at most 5 s for each step.
 */
export async function databaseAnswersNewConnection(dataSource: DataSource): Promise<boolean> {
  const pool = (dataSource.driver as unknown as { master?: { options?: pg.ClientConfig } }).master;
  if (pool?.options === undefined) return false;
  const connectTimeoutMs = pool.options.connectionTimeoutMillis;
  const client = new pg.Client({
    ...pool.options,
    connectionTimeoutMillis: connectTimeoutMs === undefined || connectTimeoutMs <= 0 ? PROBE_TIMEOUT_MS : Math.min(connectTimeoutMs, PROBE_TIMEOUT_MS),
    query_timeout: PROBE_TIMEOUT_MS,
  });
  client.on('error', () => undefined); // a connection dropped after the answer is not this probe's concern
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * SQLSTATEs of a transaction that lost a conflict with another and may
 * succeed if simply run again: 40001 (serialization failure) and 40P01
 * (deadlock detected). PostgreSQL's documentation (13.4, "Serialization
 * Failure Handling") asks applications to retry these at once; nothing is
 * gained by waiting.
 */
const TRANSACTION_CONFLICT_SQLSTATES: ReadonlySet<string> = new Set(['40001', '40P01']);

/**
 * Whether `error` (or an error it wraps, through TypeORM's `driverError` or
 * `cause`, up to 4 levels) is a serialization failure or a deadlock: a
 * transient conflict, retried at once rather than after a backoff.
 */
export function isTransactionConflict(error: unknown): boolean {
  return hasSqlState(error, TRANSACTION_CONFLICT_SQLSTATES);
}

const LOCK_NOT_AVAILABLE: ReadonlySet<string> = new Set(['55P03']);

/**
 * Whether `error` (or one it wraps) is 55P03, lock_not_available: a wait for
 * a row lock ran past `lock_timeout` (or a `NOWAIT` found the row locked).
 * The dispatcher gives the transactions it runs side by side a short lock
 * timeout (`group-commit.ts`), and retries such a failure at once, alone.
 */
export function isLockTimeout(error: unknown): boolean {
  return hasSqlState(error, LOCK_NOT_AVAILABLE);
}

/**
 * Whether `error`, or an error it wraps (TypeORM's `driverError`, a `cause`;
 * up to 4 levels), carries a SQLSTATE `code` that `matches`.
 */
export function hasSqlStateMatching(error: unknown, matches: (code: string) => boolean): boolean {
  return someCause(error, (current) => typeof current.code === 'string' && matches(current.code));
}

function hasSqlState(error: unknown, codes: ReadonlySet<string>): boolean {
  return hasSqlStateMatching(error, (code) => codes.has(code));
}

/**
 * A transaction that lost to another — a deadlock, a serialization failure,
 * a lock wait past its timeout — and is run again at once, not after the
 * retry delay (the dispatcher; a saga step hands it to the dispatcher).
 */
export function isTransientConflict(error: unknown): boolean {
  return isTransactionConflict(error) || isLockTimeout(error);
}
