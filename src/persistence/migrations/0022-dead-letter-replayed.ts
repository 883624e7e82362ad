import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * An index on the replayed dead letters, `(consumer, replayed_at)`, for the
 * inbox cleaner, which deletes a group's dead letters replayed longer ago
 * than `inbox.deadLetterRetentionMs` (`inbox/cleanup.ts`). Partial: pending
 * dead letters (`replayed_at IS NULL`) are never deleted automatically.
 */
export class ConcordatDeadLetterReplayed1795200002200 implements MigrationInterface {
  name = 'ConcordatDeadLetterReplayed1795200002200';

  /** Applies the migration (what the class comment says), in a transaction of its own (`runMigrations({ transaction: 'each' })`, database.ts). */
  async up(runner: QueryRunner): Promise<void> {
    await runner.query(`CREATE INDEX IF NOT EXISTS dead_letter_replayed ON concordat.dead_letter (consumer, replayed_at) WHERE replayed_at IS NOT NULL`);
  }

  /** Undoes {@link up}: what it created is dropped, with its data. */
  async down(runner: QueryRunner): Promise<void> {
    await runner.query(`DROP INDEX IF EXISTS concordat.dead_letter_replayed`);
  }
}
