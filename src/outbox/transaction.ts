import type { PoolClient, QueryResult } from 'pg';
import type { DataSource, EntityManager, QueryRunner } from 'typeorm';
import { sendCommit, setTransactionState, transactionRolledBack } from '../persistence/transaction.js';
import { outboxNotifierFor } from './notifier.js';
import { outboxInsertSql, quoteLiteral, notifyCommitted, writeOutboxRecords, type OutboxRecord } from './writer.js';

/** What the work of an outbox transaction sees. */
export interface OutboxTransactionScope {
  /** The transaction's EntityManager: every business write goes through it. */
  manager: EntityManager;
  /** Rows returned by the prelude statement (the first, when the prelude is several; empty without a prelude). */
  preludeRows: unknown[];
  /** Rows returned by each statement of the prelude, in order (empty without a prelude). */
  preludeResults: unknown[][];
}

/** How the work ends its transaction. */
export type OutboxTransactionEnd<T> =
  /**
   * Commit, writing these records to the outbox in the same round trip as
   * `COMMIT`; `statements` (no parameters, values as escaped literals) go
   * first in that round trip, so that what they write — and the locks the
   * transaction holds — cost no round trip of their own.
   */
  | { result: T; records: readonly OutboxRecord[]; statements?: readonly string[] }
  /** Roll back (nothing to keep), and return `result`. */
  | { result: T; rollback: true };

/** Options of an outbox transaction. */
export interface OutboxTransactionOptions {
  /**
   * One SQL statement sent with `BEGIN` in the same round trip, such as the
   * inbox insert. It has no parameters: escape values with `escapeLiteral`.
   */
  prelude?: (escapeLiteral: (value: string) => string) => string;
}

/**
 * Runs `work` in one database transaction whose outbox rows are written with
 * its `COMMIT`, in as few round trips as PostgreSQL allows:
 *
 *   1. `BEGIN; <prelude>`            one simple query (the inbox insert rides along)
 *   2. the work's own statements      through `scope.manager`
 *   3. `INSERT INTO outbox ...; COMMIT`  one simple query, values as escaped literals
 *
 * TypeORM's `dataSource.transaction` needs two more (`START TRANSACTION` and
 * `COMMIT` apart from the inserts). The TypeORM query runner is told it is in
 * a transaction (so nested `manager.transaction()` calls use savepoints) and
 * transaction events are broadcast to subscribers as TypeORM would.
 *
 * If a statement of the work failed and the work caught its error,
 * PostgreSQL has aborted the transaction, and a `COMMIT` then ends it with a
 * rollback and no error (its command tag reads `ROLLBACK`). That is not a
 * success: the tag is checked and a ConcordatError TRANSACTION_ROLLED_BACK
 * (retriable) is thrown, so a caller (the dispatcher) never takes a rolled
 * back transaction for a committed one.
 *
 * If the statement with `COMMIT` fails, PostgreSQL runs nothing after the
 * failing statement and the transaction is rolled back: the business rows and
 * the outbox rows are kept together or not at all. A lost connection during
 * `COMMIT` leaves the outcome unknown, as with any client: that is thrown as
 * a ConcordatError TRANSACTION_OUTCOME_UNKNOWN (retriable, the connection's
 * error as its cause), never as a rollback; callers that must know (the
 * dispatcher) make the retry harmless (the inbox).
 *
 * After the commit, relays are woken for the shards written.
 */
export async function runOutboxTransaction<T>(
  dataSource: DataSource,
  work: (scope: OutboxTransactionScope) => Promise<OutboxTransactionEnd<T>>,
  options: OutboxTransactionOptions = {},
): Promise<T> {
  const runner = dataSource.createQueryRunner();
  const client = (await runner.connect()) as PoolClient;
  const escape = quoteLiteral;
  let open = false;
  try {
    await runner.broadcaster.broadcast('BeforeTransactionStart');
    const prelude = options.prelude?.(escape);
    // Open from here on: a prelude that fails (a lock timeout, a cancel) leaves the connection in
    // an aborted transaction block, which must be rolled back before it goes back to the pool.
    open = true;
    const begun = await client.query(prelude === undefined ? 'BEGIN' : `BEGIN; ${prelude}`);
    setTransactionState(runner, true);
    await runner.broadcaster.broadcast('AfterTransactionStart');
    const preludeResults = Array.isArray(begun) ? begun.slice(1).map((result) => (result as { rows?: unknown[] }).rows ?? []) : [];
    const end = await work({ manager: runner.manager, preludeRows: preludeResults[0] ?? [], preludeResults });
    if ('rollback' in end) {
      await rollback(runner, client);
      open = false;
      return end.result;
    }
    const committed = await commit(runner, client, end.records, escape, end.statements ?? []);
    open = false;
    if (!committed) throw transactionRolledBack();
    return end.result;
  } catch (error) {
    if (open) await rollback(runner, client).catch(() => undefined);
    throw error;
  } finally {
    await runner.release();
  }
}

/**
 * Writes the records and commits. @returns false when PostgreSQL rolled the
 * transaction back instead (it was aborted by a failed statement whose error
 * the work caught): the transaction is over either way.
 */
async function commit(
  runner: QueryRunner,
  client: PoolClient,
  records: readonly OutboxRecord[],
  escape: (value: string) => string,
  statements: readonly string[],
): Promise<boolean> {
  await runner.broadcaster.broadcast('BeforeTransactionCommit');
  const insert = outboxInsertSql(records, escape);
  let results: QueryResult | QueryResult[];
  if (insert === undefined) {
    // Too big to inline: the statements, a parameterized insert, then COMMIT (the notifier hears of it at AfterTransactionCommit).
    if (statements.length > 0) await client.query(statements.join('; '));
    await writeOutboxRecords(runner.manager, records);
    results = await sendCommit(() => client.query('COMMIT'));
  } else {
    const sql = [...statements, insert, 'COMMIT'].filter((part) => part !== '').join('; ');
    results = await sendCommit(async () => (await client.query(sql)) as QueryResult | QueryResult[]);
  }
  setTransactionState(runner, false);
  // A multi-statement query answers one result per statement; COMMIT's is the last.
  const tag = (Array.isArray(results) ? results[results.length - 1] : results)?.command;
  if (tag !== 'COMMIT') {
    await runner.broadcaster.broadcast('AfterTransactionRollback');
    return false;
  }
  if (insert !== undefined) notifyCommitted(outboxNotifierFor(runner.manager.dataSource), records);
  await runner.broadcaster.broadcast('AfterTransactionCommit');
  return true;
}

async function rollback(runner: QueryRunner, client: PoolClient): Promise<void> {
  await runner.broadcaster.broadcast('BeforeTransactionRollback');
  try {
    await client.query('ROLLBACK');
  } finally {
    setTransactionState(runner, false);
  }
  await runner.broadcaster.broadcast('AfterTransactionRollback');
}
