import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Concordat's tables, all in the `concordat` schema.
 *
 * - `outbox`: messages waiting for the relay. `seq` orders rows; `shard`
 *   (a hash of the partition key) lets several relays split the table while
 *   each key keeps one owner, hence one order. A statement-level trigger
 *   NOTIFYs `concordat_outbox` so the relay wakes at commit instead of polling.
 * - `inbox`: one row per (consumer, message ID) already processed; the
 *   primary key is the dedup check. `processed_at` drives cleanup.
 * - `global_transaction` / `branch`: the coordinator's state for TCC, 2PC and
 *   sagas, one model for all three.
 * - `fence`: participant-side record of what each branch did (Try, Confirm,
 *   Cancel), which makes Confirm/Cancel idempotent, a Cancel before its Try an
 *   empty rollback, and a Try after its Cancel refused.
 */
export class ConcordatInitial1795200000000 implements MigrationInterface {
  name = 'ConcordatInitial1795200000000';

  /** Applies the migration (what the class comment says), in a transaction of its own (`runMigrations({ transaction: 'each' })`, database.ts). */
  async up(runner: QueryRunner): Promise<void> {
    await runner.query(`CREATE SCHEMA IF NOT EXISTS concordat`);
    await runner.query(`
      CREATE TABLE concordat.outbox (
        seq           bigserial PRIMARY KEY,
        message_id    text        NOT NULL,
        topic         text        NOT NULL,
        partition_key text,
        shard         smallint    NOT NULL DEFAULT 0,
        headers       jsonb       NOT NULL,
        payload       bytea,
        created_at    timestamptz NOT NULL DEFAULT now()
      )`);
    await runner.query(`CREATE INDEX outbox_shard_seq ON concordat.outbox (shard, seq)`);
    await runner.query(`
      CREATE FUNCTION concordat.notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        PERFORM pg_notify('concordat_outbox', '');
        RETURN NULL;
      END $$`);
    await runner.query(`
      CREATE TRIGGER outbox_notify AFTER INSERT ON concordat.outbox
      FOR EACH STATEMENT EXECUTE FUNCTION concordat.notify_outbox()`);

    await runner.query(`
      CREATE TABLE concordat.inbox (
        consumer     text        NOT NULL,
        message_id   text        NOT NULL,
        processed_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (consumer, message_id)
      )`);
    await runner.query(`CREATE INDEX inbox_processed_at ON concordat.inbox (processed_at)`);

    await runner.query(`
      CREATE TABLE concordat.global_transaction (
        id            uuid        PRIMARY KEY,
        mode          text        NOT NULL,
        name          text        NOT NULL,
        state         text        NOT NULL,
        deadline      timestamptz NOT NULL,
        payload       jsonb,
        outcome_topic text,
        outcome_key   text,
        reason        text,
        created_at    timestamptz NOT NULL DEFAULT now(),
        updated_at    timestamptz NOT NULL DEFAULT now(),
        ended_at      timestamptz,
        resend_at     timestamptz,
        resend_count  integer     NOT NULL DEFAULT 0
      )`);
    await runner.query(`CREATE INDEX global_transaction_active ON concordat.global_transaction (deadline) WHERE ended_at IS NULL`);
    await runner.query(`CREATE INDEX global_transaction_resend ON concordat.global_transaction (resend_at) WHERE ended_at IS NULL`);
    await runner.query(`
      CREATE TABLE concordat.branch (
        global_tx_id uuid        NOT NULL REFERENCES concordat.global_transaction (id) ON DELETE CASCADE,
        branch_id    integer     NOT NULL,
        participant  text        NOT NULL,
        state        text        NOT NULL,
        payload      jsonb,
        result       jsonb,
        error        text,
        updated_at   timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (global_tx_id, branch_id)
      )`);
    await runner.query(`
      CREATE TABLE concordat.fence (
        participant  text        NOT NULL,
        global_tx_id uuid        NOT NULL,
        branch_id    integer     NOT NULL,
        state        text        NOT NULL,
        created_at   timestamptz NOT NULL DEFAULT now(),
        updated_at   timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (participant, global_tx_id, branch_id)
      )`);
    await runner.query(`CREATE INDEX fence_updated_at ON concordat.fence (updated_at)`);
  }

  /** Undoes {@link up}: what it created is dropped, with its data. */
  async down(runner: QueryRunner): Promise<void> {
    await runner.query(`DROP SCHEMA concordat CASCADE`);
  }
}
