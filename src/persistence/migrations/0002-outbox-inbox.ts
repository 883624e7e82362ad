import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Outbox and inbox at production grade (issue 5).
 *
 * - Drops the statement trigger that NOTIFYed `concordat_outbox` inside every
 *   inserting transaction. PostgreSQL takes one database-wide lock in
 *   `PreCommit_Notify` and holds it through the commit's WAL flush, so every
 *   transaction that NOTIFYs commits one after the other: with 32 writers
 *   the trigger cut throughput from ~3,000 to ~1,000 commits/s on the
 *   development machine. Writers now wake relays after their commit, outside
 *   the business transaction, at most once per `relay.notifyIntervalMs`
 *   (`outbox/notifier.ts`).
 * - `outbox_relay` and `outbox_shard`: relay membership and one lease per
 *   outbox shard (`outbox/shard-leases.ts` says why leases rather than
 *   advisory locks). The 256 shard rows are created here, unowned.
 * - `outbox_failed`: outbox rows the log can never accept (a record larger
 *   than the topic's limit, an invalid topic name), moved out of the way by
 *   the relay with the log's error, so that the rows behind them flow.
 * - `dead_letter`: every dead-lettered message with its error, attempts and
 *   handler, for `concordat dlq list|replay`. At most one pending (not
 *   replayed) dead letter per (consumer, message ID): a redelivery of a
 *   message that is already dead-lettered is not dead-lettered twice, while a
 *   replayed message that fails again is.
 * - Autovacuum on the outbox and the inbox as on a queue: both tables delete
 *   as fast as they insert, so they are vacuumed after a fixed number of dead
 *   rows rather than a fraction of the table, without cost-based sleeps.
 */
export class ConcordatOutboxInbox1795200000200 implements MigrationInterface {
  name = 'ConcordatOutboxInbox1795200000200';

  /** Applies the migration (what the class comment says), in a transaction of its own (`runMigrations({ transaction: 'each' })`, database.ts). */
  async up(runner: QueryRunner): Promise<void> {
    await runner.query(`DROP TRIGGER IF EXISTS outbox_notify ON concordat.outbox`);
    await runner.query(`DROP FUNCTION IF EXISTS concordat.notify_outbox()`);
    for (const table of ['concordat.outbox', 'concordat.inbox']) {
      await runner.query(`
        ALTER TABLE ${table} SET (
          autovacuum_vacuum_scale_factor = 0,
          autovacuum_vacuum_threshold = 10000,
          autovacuum_vacuum_insert_scale_factor = 0,
          autovacuum_vacuum_insert_threshold = 100000,
          autovacuum_vacuum_cost_delay = 0)`);
    }

    await runner.query(`
      CREATE TABLE concordat.outbox_relay (
        relay_id     text        PRIMARY KEY,
        started_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
        expires_at   timestamptz NOT NULL
      )`);
    await runner.query(`
      CREATE TABLE concordat.outbox_shard (
        shard        smallint    PRIMARY KEY,
        owner        text,
        expires_at   timestamptz NOT NULL DEFAULT '-infinity',
        epoch        bigint      NOT NULL DEFAULT 0
      )`);
    await runner.query(`INSERT INTO concordat.outbox_shard (shard) SELECT generate_series(0, 255)`);

    await runner.query(`
      CREATE TABLE concordat.outbox_failed (
        seq           bigint      PRIMARY KEY,
        message_id    text        NOT NULL,
        topic         text        NOT NULL,
        partition_key text,
        shard         smallint    NOT NULL,
        headers       jsonb       NOT NULL,
        payload       bytea,
        created_at    timestamptz NOT NULL,
        error         text        NOT NULL,
        failed_at     timestamptz NOT NULL DEFAULT clock_timestamp()
      )`);

    await runner.query(`
      CREATE TABLE concordat.dead_letter (
        id            bigserial   PRIMARY KEY,
        consumer      text        NOT NULL,
        message_id    text        NOT NULL,
        handler       text        NOT NULL,
        topic         text        NOT NULL,
        partition     integer     NOT NULL,
        "offset"      bigint      NOT NULL,
        partition_key text,
        headers       jsonb       NOT NULL,
        payload       bytea,
        error         text        NOT NULL,
        error_code    text        NOT NULL,
        attempts      integer     NOT NULL,
        failed_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
        replayed_at   timestamptz
      )`);
    await runner.query(`CREATE UNIQUE INDEX dead_letter_pending ON concordat.dead_letter (consumer, message_id) WHERE replayed_at IS NULL`);
    await runner.query(`CREATE INDEX dead_letter_failed_at ON concordat.dead_letter (failed_at)`);
  }

  /** Undoes {@link up}: what it created is dropped, with its data. */
  async down(runner: QueryRunner): Promise<void> {
    await runner.query(`DROP TABLE concordat.dead_letter`);
    await runner.query(`DROP TABLE concordat.outbox_failed`);
    await runner.query(`DROP TABLE concordat.outbox_shard`);
    await runner.query(`DROP TABLE concordat.outbox_relay`);
    for (const table of ['concordat.outbox', 'concordat.inbox']) {
      await runner.query(`
        ALTER TABLE ${table} RESET (autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold,
          autovacuum_vacuum_insert_scale_factor, autovacuum_vacuum_insert_threshold, autovacuum_vacuum_cost_delay)`);
    }
    await runner.query(`
      CREATE FUNCTION concordat.notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        PERFORM pg_notify('concordat_outbox', '');
        RETURN NULL;
      END $$`);
    await runner.query(`
      CREATE TRIGGER outbox_notify AFTER INSERT ON concordat.outbox
      FOR EACH STATEMENT EXECUTE FUNCTION concordat.notify_outbox()`);
  }
}
