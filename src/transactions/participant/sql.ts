import type { PoolClient, QueryResult } from 'pg';
import type { EntityManager } from 'typeorm';

/**
 * Several statements in one round trip. PostgreSQL's simple query protocol
 * runs a string of statements separated by semicolons and returns one result
 * each, stopping at the first that fails (the transaction is then aborted,
 * as it would be had the failing statement been sent alone). Values must be
 * escaped literals: `escape` is the connection's `escapeLiteral`.
 *
 * TypeORM keeps only the last result of such a string, so this goes to the
 * pg connection under the EntityManager's query runner, in the same
 * transaction.
 */
export interface Batch {
  escape: (value: string) => string;
  /** Runs `statements` in one round trip. @returns one result per statement. */
  run(statements: readonly string[]): Promise<QueryResult[]>;
}

/**
 * A {@link Batch} on the connection of `manager`'s transaction.
 * @throws Error when `manager` is not bound to a transaction's query runner (a bug in the caller)
 */
export async function batchOn(manager: EntityManager): Promise<Batch> {
  const runner = manager.queryRunner;
  if (runner === undefined) throw new Error('assertion failed: batchOn needs an EntityManager bound to a query runner (a transaction)');
  const client = (await runner.connect()) as PoolClient;
  return {
    escape: (value) => client.escapeLiteral(value),
    run: async (statements) => {
      const result = (await client.query(statements.join('; '))) as unknown as QueryResult | QueryResult[];
      return Array.isArray(result) ? result : [result];
    },
  };
}
