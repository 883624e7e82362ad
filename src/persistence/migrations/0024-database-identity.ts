import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * `concordat.database_identity`: one row, a random UUID made when Concordat's
 * schema is created in a database. An embedded log directory records the
 * identity of the database it was first used with
 * (`EmbeddedTransport.pairWithDatabase`), so that a log kept while its
 * database was re-created is refused at start instead of delivering its
 * records into the new database. `gen_random_uuid()` is built in from
 * PostgreSQL 13.
 */
export class ConcordatDatabaseIdentity1795200002400 implements MigrationInterface {
  name = 'ConcordatDatabaseIdentity1795200002400';

  /** Applies the migration (what the class comment says), in a transaction of its own (`runMigrations({ transaction: 'each' })`, database.ts). */
  async up(runner: QueryRunner): Promise<void> {
    await runner.query(
      `CREATE TABLE IF NOT EXISTS concordat.database_identity (
        id         uuid        PRIMARY KEY,
        created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        single     boolean     NOT NULL DEFAULT true UNIQUE CHECK (single)
      )`,
    );
    await runner.query(`INSERT INTO concordat.database_identity (id) SELECT gen_random_uuid() WHERE NOT EXISTS (SELECT 1 FROM concordat.database_identity)`);
  }

  /** Undoes {@link up}: what it created is dropped, with its data. */
  async down(runner: QueryRunner): Promise<void> {
    await runner.query(`DROP TABLE IF EXISTS concordat.database_identity`);
  }
}
