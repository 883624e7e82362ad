import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * `concordat.outbox_scheduled`: messages published for later (issue 14),
 * written in the publisher's transaction like an outbox row, and moved into
 * `concordat.outbox` by the relay that owns their shard once
 * `deliver_at` has passed (`outbox/scheduled.ts` says why this design).
 *
 * - `message_id` is the primary key: `cancelScheduled(id)` finds its row by
 *   it, and a cron tick's deterministic ID makes a second insert of the same
 *   tick a no-op (`ON CONFLICT DO NOTHING`).
 * - `outbox_scheduled_due (deliver_at, seq)`: the relay reads only the due
 *   end of this index (and the first row after it, to know when to wake),
 *   so its cost does not grow with the number of messages pending.
 * - Autovacuum as on a queue, like the outbox (migration 0002).
 */
export class ConcordatOutboxScheduled1795200003000 implements MigrationInterface {
  name = 'ConcordatOutboxScheduled1795200003000';

  /** Applies the migration (what the class comment says), in a transaction of its own (`runMigrations({ transaction: 'each' })`, database.ts). */
  async up(runner: QueryRunner): Promise<void> {
    await runner.query(`
      CREATE TABLE concordat.outbox_scheduled (
        message_id    text        PRIMARY KEY,
        seq           bigint      GENERATED ALWAYS AS IDENTITY,
        topic         text        NOT NULL,
        partition_key text,
        shard         smallint    NOT NULL,
        headers       jsonb       NOT NULL,
        payload       bytea,
        deliver_at    timestamptz NOT NULL,
        created_at    timestamptz NOT NULL DEFAULT clock_timestamp()
      )`);
    await runner.query(`CREATE INDEX outbox_scheduled_due ON concordat.outbox_scheduled (deliver_at, seq)`);
    await runner.query(`
      ALTER TABLE concordat.outbox_scheduled SET (
        autovacuum_vacuum_scale_factor = 0,
        autovacuum_vacuum_threshold = 10000,
        autovacuum_vacuum_insert_scale_factor = 0,
        autovacuum_vacuum_insert_threshold = 100000,
        autovacuum_vacuum_cost_delay = 0)`);
  }

  /** Undoes {@link up}: what it created is dropped, with its data. */
  async down(runner: QueryRunner): Promise<void> {
    await runner.query(`DROP TABLE concordat.outbox_scheduled`);
  }
}
