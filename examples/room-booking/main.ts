import { randomUUID } from 'node:crypto';
import { ConcordatApp, TransactionCoordinator } from 'concordat';
import { RoomBookingSchema1796000000001 } from './schema.js';
import { BookingService, NotifierService, RoomsService, Topics } from './services.js';

/**
 * Two guests ask for the last free night of a room. One booking is
 * confirmed (and a confirmation sent), the other cancelled. Prints the
 * result as JSON and exits 0 when it is exactly that, 1 otherwise.
 *
 * Database: `DATABASE_URL`, or an embedded PostgreSQL under `./.concordat`.
 * Written without top-level await, so it compiles and runs as ESM and as
 * CommonJS alike.
 */
async function main(): Promise<boolean> {
  const app = ConcordatApp.create({
    name: 'room-booking',
    services: [BookingService, RoomsService, NotifierService, TransactionCoordinator],
    dataDir: process.env.CONCORDAT_DATA_DIR ?? './.concordat',
    database: { migrations: [RoomBookingSchema1796000000001] },
    partitions: 2,
  });
  await app.start();
  try {
    const room = `room-${randomUUID().slice(0, 8)}`;
    await app.dataSource.query(`INSERT INTO room_booking.rooms (room, free) VALUES ($1, 1)`, [room]);
    const bookingIds = [randomUUID(), randomUUID()];
    for (const bookingId of bookingIds) await app.publish(Topics.REQUESTED, { bookingId, room });

    const deadline = Date.now() + 60_000;
    let bookings: Array<{ booking_id: string; status: string; reason: string | null }> = [];
    let confirmations = 0;
    while (Date.now() < deadline) {
      bookings = await app.dataSource.query(`SELECT booking_id, status, reason FROM room_booking.bookings WHERE room = $1 ORDER BY status`, [room]);
      [{ count: confirmations }] = await app.dataSource.query(`SELECT count(*)::int AS count FROM room_booking.confirmations WHERE room = $1`, [room]);
      const settled = bookings.length === 2 && bookings.every((b) => b.status !== 'PENDING');
      if (settled && confirmations === bookings.filter((b) => b.status === 'CONFIRMED').length) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const [{ free }] = await app.dataSource.query(`SELECT free FROM room_booking.rooms WHERE room = $1`, [room]);
    const statuses = bookings.map((b) => b.status);
    console.log(JSON.stringify({ room, statuses, reasons: bookings.map((b) => b.reason), confirmations, free }));
    return statuses.join(',') === 'CANCELLED,CONFIRMED' && confirmations === 1 && free === 0;
  } finally {
    await app.stop();
  }
}

main().then(
  (ok) => {
    process.exitCode = ok ? 0 : 1;
  },
  (error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  },
);
