import { beginTcc, Cancel, Confirm, MessageContext, nonRetriable, OnMessage, Service, TccContext, TccParticipant, Try, type GlobalTxOutcome } from 'concordat';

/** A guest asks for a room. */
export interface BookingRequested {
  bookingId: string;
  room: string;
}

/** What the TCC branch needs to hold, confirm and release a room. */
export interface RoomHold {
  bookingId: string;
  room: string;
}

export const Topics = {
  REQUESTED: 'booking.requested',
  OUTCOMES: 'booking.outcomes',
  CONFIRMED: 'booking.confirmed',
} as const;

/**
 * The booking service. A request is stored and a TCC global transaction is
 * begun in the same database transaction; when that transaction ends, its
 * outcome arrives on `booking.outcomes`, settles the booking and, if it was
 * confirmed, publishes `booking.confirmed` (through the outbox: the message
 * exists if and only if the booking row was updated).
 */
@Service('booking')
export class BookingService {
  @OnMessage(Topics.REQUESTED)
  async request(context: MessageContext<BookingRequested>): Promise<void> {
    const { bookingId, room } = context.data;
    const globalTxId = await beginTcc(context, {
      name: 'book-room',
      branches: [{ participant: 'rooms.hold', payload: { bookingId, room } satisfies RoomHold }],
      outcomeTopic: Topics.OUTCOMES,
      payload: { bookingId },
      timeoutMs: 10_000,
    });
    await context.manager.query(`INSERT INTO room_booking.bookings (booking_id, room, status, global_tx_id) VALUES ($1, $2, 'PENDING', $3)`, [
      bookingId,
      room,
      globalTxId,
    ]);
  }

  @OnMessage(Topics.OUTCOMES)
  async settle(context: MessageContext<GlobalTxOutcome<{ bookingId: string }>>): Promise<void> {
    const { state, reason, payload } = context.data;
    const [rows]: [Array<{ room: string }>, number] = await context.manager.query(
      `UPDATE room_booking.bookings SET status = $2, reason = $3 WHERE booking_id = $1 RETURNING room`,
      [payload.bookingId, state, reason],
    );
    if (state === 'CONFIRMED') context.publish(Topics.CONFIRMED, { bookingId: payload.bookingId, room: rows[0]!.room });
  }
}

/** The notifier service: the end of the chain. */
@Service('notifier')
export class NotifierService {
  @OnMessage(Topics.CONFIRMED)
  async notify(context: MessageContext<{ bookingId: string; room: string }>): Promise<void> {
    await context.manager.query(`INSERT INTO room_booking.confirmations (booking_id, room) VALUES ($1, $2)`, [context.data.bookingId, context.data.room]);
  }
}

/**
 * The rooms service, a TCC participant: Try holds a night (free → held),
 * Confirm keeps it, Cancel gives it back. Concordat's fence runs each at most
 * once per branch and Cancel only after a Try that held something.
 */
@Service('rooms')
@TccParticipant('rooms.hold')
export class RoomsService {
  @Try()
  async hold(context: TccContext<RoomHold>): Promise<void> {
    const [, held]: [unknown[], number] = await context.manager.query(`UPDATE room_booking.rooms SET free = free - 1 WHERE room = $1 AND free > 0`, [
      context.payload.room,
    ]);
    // Votes no at once (not retried): the global transaction is cancelled.
    if (held === 0) throw nonRetriable(new Error(`room ${context.payload.room} is full`));
  }

  @Confirm()
  async keep(_context: TccContext<RoomHold>): Promise<void> {
    // The night was taken by Try; nothing more to do.
  }

  @Cancel()
  async release(context: TccContext<RoomHold>): Promise<void> {
    await context.manager.query(`UPDATE room_booking.rooms SET free = free + 1 WHERE room = $1`, [context.payload.room]);
  }
}
