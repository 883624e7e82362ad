import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The example's own tables, created by Concordat's migration run through
 * `database.migrations` (after Concordat's own tables, in the same database).
 * TypeORM records it in its `migrations` table, so it runs once.
 */
export class RoomBookingSchema1796000000001 implements MigrationInterface {
  name = 'RoomBookingSchema1796000000001';

  async up(runner: QueryRunner): Promise<void> {
    await runner.query(`CREATE SCHEMA room_booking`);
    // Rooms service: how many nights of each room are still free.
    await runner.query(`CREATE TABLE room_booking.rooms (room text PRIMARY KEY, free integer NOT NULL CHECK (free >= 0))`);
    // Booking service: one row per request, settled by the global transaction's outcome.
    await runner.query(`
      CREATE TABLE room_booking.bookings (
        booking_id   text PRIMARY KEY,
        room         text NOT NULL,
        status       text NOT NULL,
        global_tx_id uuid,
        reason       text
      )`);
    // Notifier service: one confirmation per confirmed booking.
    await runner.query(`CREATE TABLE room_booking.confirmations (booking_id text PRIMARY KEY, room text NOT NULL)`);
  }

  async down(runner: QueryRunner): Promise<void> {
    await runner.query(`DROP SCHEMA room_booking CASCADE`);
  }
}
