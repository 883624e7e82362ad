import type { Pool, PoolClient } from 'pg';
import type { DataSource, EntityManager } from 'typeorm';

/**
 * Runs a parameterized statement as a **named prepared statement** on the
 * connection it goes to: the first execution on a connection parses and
 * plans it, later ones only bind and execute (node-postgres remembers the
 * names each connection prepared). For the statements Concordat sends for
 * every message or batch — the relay's delete-and-read, the coordinator's
 * transitions, the fence — parsing and planning was most of their cost:
 * the relay's CTE took about 190 µs of PostgreSQL CPU as an unnamed
 * statement and 50 µs prepared (measured on the development machine; see
 * docs/benchmarks.md). TypeORM's `query` always sends unnamed statements,
 * so this talks to node-postgres directly: inside a transaction on the
 * EntityManager's own connection, otherwise through the DataSource's pool.
 *
 * `name` must be unique per `text` in the process (a prefix `concordat_`
 * and the statement's purpose). PostgreSQL replans a prepared statement by
 * itself after DDL on the tables it reads. A transaction-pooling proxy
 * (PgBouncer) needs its prepared-statement support
 * (`max_prepared_statements`, PgBouncer 1.21+).
 *
 * @returns the rows, and the row count (for UPDATE and DELETE).
 */
export async function preparedQuery<R = unknown>(
  target: EntityManager | DataSource,
  name: string,
  text: string,
  values: unknown[],
): Promise<{ rows: R[]; rowCount: number }> {
  const manager = isDataSource(target) ? target.manager : target;
  const runner = manager.queryRunner;
  const result =
    runner !== undefined && !runner.isReleased
      ? await ((await runner.connect()) as PoolClient).query({ name, text, values })
      : await poolOf(manager.dataSource).query({ name, text, values });
  return { rows: result.rows as R[], rowCount: result.rowCount ?? 0 };
}

function isDataSource(target: EntityManager | DataSource): target is DataSource {
  return 'driver' in target && 'createQueryRunner' in target;
}

/** The node-postgres pool under a TypeORM DataSource (its postgres driver's `master`). */
function poolOf(dataSource: DataSource): Pool {
  const pool = (dataSource.driver as unknown as { master?: Pool }).master;
  if (pool === undefined) throw new Error('assertion failed: preparedQuery needs an initialized postgres DataSource');
  return pool;
}
