import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * `dead_letter.replayed_by`: who replayed a dead letter (`alice@host` from
 * `concordat dlq replay`, `alice (console, 10.0.0.7)` from the console),
 * written with `replayed_at`; null for rows replayed before this column
 * existed or by code that names nobody. Adding a nullable column without a
 * default rewrites nothing.
 */
export class ConcordatDeadLetterReplayedBy1795200003100 implements MigrationInterface {
  name = 'ConcordatDeadLetterReplayedBy1795200003100';

  /** Applies the migration (what the class comment says), in a transaction of its own (`runMigrations({ transaction: 'each' })`, database.ts). */
  async up(runner: QueryRunner): Promise<void> {
    await runner.query(`ALTER TABLE concordat.dead_letter ADD COLUMN IF NOT EXISTS replayed_by text`);
  }

  /** Undoes {@link up}: what it created is dropped, with its data. */
  async down(runner: QueryRunner): Promise<void> {
    await runner.query(`ALTER TABLE concordat.dead_letter DROP COLUMN IF EXISTS replayed_by`);
  }
}
