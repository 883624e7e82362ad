import type { EntityManager } from 'typeorm';
import { ConcordatError, ErrorCode } from '../errors.js';

/**
 * Deletes the scheduled row if it is not due yet (by the database's clock).
 * A row the scheduler is moving right now is locked: the DELETE waits for
 * that move to commit, then finds the row gone. The second part, evaluated
 * on the statement's snapshot, tells "due" from "unknown" when nothing was
 * deleted.
 */
const CANCEL = `
  WITH gone AS (
         DELETE FROM concordat.outbox_scheduled
          WHERE message_id = $1 AND deliver_at > clock_timestamp()
          RETURNING message_id)
  SELECT (SELECT count(*) FROM gone)::int AS cancelled,
         (SELECT deliver_at FROM concordat.outbox_scheduled WHERE message_id = $1) AS deliver_at`;

/**
 * Cancels a message published with `deliverAt` / `delayMs`, in the caller's
 * transaction (through `manager`): the message is not delivered if and only
 * if that transaction commits.
 *
 * Against the relay that moves due messages to the outbox, exactly one of
 * the two wins for each message: the cancel holds the row's lock from this
 * call until its transaction ends, and the relay skips locked rows
 * (`FOR UPDATE SKIP LOCKED`, `scheduled.ts`); a relay that locked the row
 * first makes this call wait for its move, after which the row is gone and
 * this call throws SCHEDULED_MESSAGE_DUE.
 *
 * @throws ConcordatError SCHEDULED_MESSAGE_DUE when the message's time has come (it is, or
 *   will be, delivered; `context.deliverAt` says when it was due).
 * @throws ConcordatError SCHEDULED_MESSAGE_NOT_FOUND when no scheduled message with this ID
 *   is pending: never published for later, already cancelled, or already delivered.
 */
export async function cancelScheduledMessage(manager: EntityManager, messageId: string): Promise<void> {
  const [row]: Array<{ cancelled: number; deliver_at: Date | null }> = await manager.query(CANCEL, [messageId]);
  if (row !== undefined && row.cancelled > 0) return;
  const deliverAt = row?.deliver_at ?? null;
  if (deliverAt !== null) {
    throw new ConcordatError(
      `cannot cancel scheduled message ${messageId}: it was due at ${deliverAt.toISOString()} and is being delivered; ` +
        `cancel before its time, or let the consumer ignore it`,
      { code: ErrorCode.SCHEDULED_MESSAGE_DUE, context: { messageId, deliverAt: deliverAt.toISOString() } },
    );
  }
  throw new ConcordatError(
    `cannot cancel scheduled message ${messageId}: no such message is pending (it was never published with deliverAt/delayMs, ` +
      `was already cancelled, or was already delivered)`,
    { code: ErrorCode.SCHEDULED_MESSAGE_NOT_FOUND, context: { messageId } },
  );
}
