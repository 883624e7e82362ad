import type { PoolClient, QueryResult } from 'pg';
import type { DataSource, EntityManager, QueryRunner } from 'typeorm';
import { ConcordatError, ErrorCode } from '../errors.js';

/**
 * Runs `work` in one database transaction (READ COMMITTED) on a TypeORM query
 * runner, like `dataSource.transaction(work)`, with one difference that
 * matters for correctness: the command tag of `COMMIT` is checked.
 *
 * If a statement inside `work` failed and `work` caught its error,
 * PostgreSQL has aborted the transaction; a `COMMIT` then ends it with a
 * rollback and no error (its tag reads `ROLLBACK`). TypeORM reports that as a
 * commit. Here it throws, so nobody takes a rolled-back transaction for a
 * committed one. Nested `manager.transaction()` calls inside `work` use
 * savepoints, as with TypeORM.
 *
 * @throws ConcordatError TRANSACTION_ROLLED_BACK (retriable) when PostgreSQL
 *   rolled back instead of committing; whatever `work` throws (after a
 *   rollback).
 */
export async function runTransaction<T>(dataSource: DataSource, work: (manager: EntityManager) => Promise<T>): Promise<T> {
  const runner = dataSource.createQueryRunner();
  const client = (await runner.connect()) as PoolClient;
  try {
    await runner.startTransaction();
    let result: T;
    try {
      result = await work(runner.manager);
      // A subscriber that throws before COMMIT is sent must not leave the
      // pooled connection inside the transaction for its next user.
      await runner.broadcaster.broadcast('BeforeTransactionCommit');
    } catch (error) {
      if (runner.isTransactionActive) await runner.rollbackTransaction().catch(() => undefined);
      throw error;
    }
    await commitChecked(runner, client);
    return result;
  } finally {
    await runner.release();
  }
}

/** Sends COMMIT (the transaction ends whatever the answer) and checks its tag. */
async function commitChecked(runner: QueryRunner, client: PoolClient): Promise<void> {
  let result: QueryResult;
  try {
    result = await client.query('COMMIT');
  } finally {
    setTransactionState(runner, false);
  }
  if (result.command !== 'COMMIT') {
    await runner.broadcaster.broadcast('AfterTransactionRollback');
    throw transactionRolledBack();
  }
  await runner.broadcaster.broadcast('AfterTransactionCommit');
}

/** The error for a `COMMIT` that PostgreSQL answered with `ROLLBACK`. */
export function transactionRolledBack(): ConcordatError {
  return new ConcordatError(
    'the transaction was rolled back, not committed: a statement inside it failed and the error was caught, ' +
      'which leaves a PostgreSQL transaction aborted (COMMIT then answers ROLLBACK). Let the error propagate, ' +
      'or run the statement that may fail in a savepoint (manager.transaction(...) inside the transaction) and catch its error there.',
    // Retriable (the code's default): what failed may have been transient (a lock timeout, a unique violation a retry does not meet).
    { code: ErrorCode.TRANSACTION_ROLLED_BACK },
  );
}

/**
 * Tells a TypeORM query runner whether its connection is in a transaction
 * that was begun or ended outside its own `startTransaction()` /
 * `commitTransaction()` (a raw `BEGIN`/`COMMIT` riding with other statements),
 * so nested `manager.transaction()` calls use savepoints. Relies on the
 * runner's `isTransactionActive` and `transactionDepth` fields (TypeORM 0.3
 * and 1.x).
 */
export function setTransactionState(runner: QueryRunner, active: boolean): void {
  const internals = runner as unknown as { isTransactionActive: boolean; transactionDepth: number };
  internals.isTransactionActive = active;
  internals.transactionDepth = active ? 1 : 0;
}
