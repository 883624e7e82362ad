import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * An index on `concordat.inbox (consumer, processed_at)`: inbox cleanup
 * deletes only the rows of the app's own consumer groups (the table is
 * shared by every app on the database), one group at a time, so each batch
 * is a range scan of this index — `consumer = $1 AND processed_at < $2` —
 * and costs what it deletes, whatever the other groups hold.
 *
 * A plain `CREATE INDEX`, in the migration's transaction: it blocks inserts
 * into the inbox (hence handlers) while it builds, which on a large inbox
 * can take a while. Not `CONCURRENTLY`: a concurrent build waits for every
 * transaction of the database with an older snapshot, including the
 * `pg_advisory_lock` of other processes waiting to migrate (`migrate` in
 * persistence/database.ts) behind the process building it, which holds that
 * lock until the build ends — they would wait for each other forever.
 * To avoid the stall on a large inbox, build the index by hand before
 * upgrading:
 *
 *     CREATE INDEX CONCURRENTLY inbox_consumer_processed_at ON concordat.inbox (consumer, processed_at);
 *
 * This migration then finds it valid and does nothing. If such a build
 * failed half-way, the invalid index it left behind is dropped and built
 * again here.
 *
 * `inbox_processed_at` (migration 0001) stays: processes of an earlier
 * version, still running during a rolling upgrade, clean by `processed_at`
 * alone.
 */
export class ConcordatInboxConsumerProcessedAt1795200002000 implements MigrationInterface {
  name = 'ConcordatInboxConsumerProcessedAt1795200002000';

  /** Applies the migration (what the class comment says), in a transaction of its own (`runMigrations({ transaction: 'each' })`, database.ts). */
  async up(runner: QueryRunner): Promise<void> {
    const [existing] = (await runner.query(
      `SELECT i.indisvalid AS valid
         FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'concordat' AND c.relname = 'inbox_consumer_processed_at'`,
    )) as Array<{ valid: boolean }>;
    if (existing?.valid === true) return;
    if (existing !== undefined) await runner.query(`DROP INDEX concordat.inbox_consumer_processed_at`);
    await runner.query(`CREATE INDEX inbox_consumer_processed_at ON concordat.inbox (consumer, processed_at)`);
  }

  /** Undoes {@link up}: what it created is dropped, with its data. */
  async down(runner: QueryRunner): Promise<void> {
    await runner.query(`DROP INDEX IF EXISTS concordat.inbox_consumer_processed_at`);
  }
}
