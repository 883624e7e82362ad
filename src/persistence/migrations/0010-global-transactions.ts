import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * What the coordinator needs beyond 0001 for 2PC, sagas and operations.
 *
 * - `global_transaction.decision`: CONFIRMING or CANCELLING once decided,
 *   kept when the transaction ends FAILED, so an operator's retry knows which
 *   way to drive it again; `decided_at` for "decided how long ago".
 * - `global_transaction.options`: mode-specific settings fixed at begin (a
 *   saga's compensation retry policy).
 * - `branch.attempts`: failures reported in the current phase (a saga step's
 *   retries, a compensation's failures); `branch.retry_policy`: a saga step's
 *   compiled retry policy.
 * - `global_tx_event`: the timeline `concordat tx show` prints, one row per
 *   transition, written in the same statement as the transition itself.
 *   No foreign key: the coordinator writes it on every step, and history
 *   cleanup deletes both together.
 * - `global_transaction_ended`: history cleanup finds ended transactions
 *   older than the retention without scanning the active ones.
 */
export class ConcordatGlobalTransactions1795200001000 implements MigrationInterface {
  name = 'ConcordatGlobalTransactions1795200001000';

  /** Applies the migration (what the class comment says), in a transaction of its own (`runMigrations({ transaction: 'each' })`, database.ts). */
  async up(runner: QueryRunner): Promise<void> {
    await runner.query(`
      ALTER TABLE concordat.global_transaction
        ADD COLUMN decision   text,
        ADD COLUMN decided_at timestamptz,
        ADD COLUMN options    jsonb`);
    await runner.query(`
      ALTER TABLE concordat.branch
        ADD COLUMN attempts     integer NOT NULL DEFAULT 0,
        ADD COLUMN retry_policy jsonb`);
    await runner.query(`CREATE INDEX global_transaction_ended ON concordat.global_transaction (ended_at) WHERE ended_at IS NOT NULL`);
    await runner.query(`
      CREATE TABLE concordat.global_tx_event (
        global_tx_id uuid        NOT NULL,
        seq          bigint      GENERATED ALWAYS AS IDENTITY,
        at           timestamptz NOT NULL DEFAULT clock_timestamp(),
        kind         text        NOT NULL,
        branch_id    integer,
        state        text,
        detail       text,
        PRIMARY KEY (global_tx_id, seq)
      )`);
  }

  /** Undoes {@link up}: what it created is dropped, with its data. */
  async down(runner: QueryRunner): Promise<void> {
    await runner.query(`DROP TABLE concordat.global_tx_event`);
    await runner.query(`DROP INDEX concordat.global_transaction_ended`);
    await runner.query(`ALTER TABLE concordat.branch DROP COLUMN attempts, DROP COLUMN retry_policy`);
    await runner.query(`ALTER TABLE concordat.global_transaction DROP COLUMN decision, DROP COLUMN decided_at, DROP COLUMN options`);
  }
}
