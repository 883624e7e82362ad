import type { PoolClient, QueryResult } from 'pg';
import type { DataSource, EntityManager, QueryRunner } from 'typeorm';
import { causeChain, ConcordatError, ErrorCode } from '../errors.js';

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
 *   rolled back instead of committing; TRANSACTION_OUTCOME_UNKNOWN
 *   (retriable) when the connection failed with the `COMMIT` on its way;
 *   whatever `work` throws (after a rollback).
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

/**
 * SQLSTATEs with which PostgreSQL itself ends a connection (class 08, connection exception; 57P01..57P03, a shutdown
 * or restart): arriving in answer to a `COMMIT`, they do not say whether it took effect.
 */
const CONNECTION_ENDED_SQLSTATE = /^(08...|57P0[123])$/;

/**
 * Whether `error`, thrown by the round trip that carried `COMMIT`, leaves the commit's outcome unknown: anything
 * but an error PostgreSQL answered for a statement (a SQLSTATE outside {@link CONNECTION_ENDED_SQLSTATE}), after
 * which nothing of the transaction was kept. A socket reset, node-postgres's "Connection terminated", a query
 * timeout: the `COMMIT` may have been applied before the answer was lost.
 */
function commitOutcomeUnknown(error: unknown): boolean {
  for (const current of causeChain(error)) {
    const { code } = current as { code?: unknown };
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return CONNECTION_ENDED_SQLSTATE.test(code);
  }
  return true;
}

/**
 * Runs the round trip that carries `COMMIT` (alone, or after the statements sent with it).
 * @throws ConcordatError TRANSACTION_OUTCOME_UNKNOWN when its answer was lost ({@link commitOutcomeUnknown}) */
export async function sendCommit<R>(send: () => Promise<R>): Promise<R> {
  try {
    return await send();
  } catch (error) {
    if (!commitOutcomeUnknown(error)) throw error;
    throw new ConcordatError(
      `the connection to PostgreSQL failed while COMMIT was on its way (${error instanceof Error ? error.message : String(error)}): ` +
        'the transaction and the messages it published may or may not have committed. Check for its effect before doing its work again',
      { code: ErrorCode.TRANSACTION_OUTCOME_UNKNOWN, cause: error },
    );
  }
}

/** Sends COMMIT (the transaction ends whatever the answer) and checks its tag. */
async function commitChecked(runner: QueryRunner, client: PoolClient): Promise<void> {
  let result: QueryResult;
  try {
    result = await sendCommit(() => client.query('COMMIT'));
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
