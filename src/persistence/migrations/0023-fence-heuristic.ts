import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * `concordat.fence.heuristic`: the branch may have committed work outside
 * its global transaction — a 2PC `@Prepare` that ended the branch
 * transaction itself (`PREPARE_WITHOUT_TRANSACTION`). The 2PC prepare
 * inserts its fence row with it set and clears it in the round trip of
 * `PREPARE TRANSACTION`, so a row committed by the `@Prepare`'s own COMMIT
 * keeps it; a prepare of that branch delivered again then votes no marked
 * heuristic instead of yes with nothing prepared. A plain column with a
 * constant default: adding it rewrites nothing (PostgreSQL 11+).
 */
export class ConcordatFenceHeuristic1795200002300 implements MigrationInterface {
  name = 'ConcordatFenceHeuristic1795200002300';

  /** Applies the migration (what the class comment says), in a transaction of its own (`runMigrations({ transaction: 'each' })`, database.ts). */
  async up(runner: QueryRunner): Promise<void> {
    await runner.query(`ALTER TABLE concordat.fence ADD COLUMN IF NOT EXISTS heuristic boolean NOT NULL DEFAULT false`);
  }

  /** Undoes {@link up}: what it created is dropped, with its data. */
  async down(runner: QueryRunner): Promise<void> {
    await runner.query(`ALTER TABLE concordat.fence DROP COLUMN IF EXISTS heuristic`);
  }
}
