import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * `concordat.inbox_window`: the inbox dedup window each consumer group's app
 * resolved at its last start (`inbox.dedupWindowMs`, or the log's retention),
 * in ms, `Infinity` for forever. Written by the app at start; read by
 * `concordat dlq replay`, which refuses to replay a dead letter that failed
 * longer ago than its group's window (the inbox may have forgotten the
 * message ID by then) unless forced. The CLI runs without the app's options,
 * so the database is where it learns the window.
 */
export class ConcordatInboxWindow1795200002100 implements MigrationInterface {
  name = 'ConcordatInboxWindow1795200002100';

  /** Applies the migration (what the class comment says), in a transaction of its own (`runMigrations({ transaction: 'each' })`, database.ts). */
  async up(runner: QueryRunner): Promise<void> {
    await runner.query(`
      CREATE TABLE concordat.inbox_window (
        consumer     text             PRIMARY KEY,
        window_ms    double precision NOT NULL CHECK (window_ms > 0),
        recorded_at  timestamptz      NOT NULL DEFAULT now()
      )`);
  }

  /** Undoes {@link up}: what it created is dropped, with its data. */
  async down(runner: QueryRunner): Promise<void> {
    await runner.query(`DROP TABLE concordat.inbox_window`);
  }
}
