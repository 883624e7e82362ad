import type { EntityManager } from 'typeorm';

/**
 * Records that `consumer` processed `messageId`, inside the caller's
 * transaction (the handler's). Returns `false` when the row already existed:
 * the message was processed before, so the caller must skip it and
 * acknowledge.
 *
 * The check and the record are one statement (`INSERT ... ON CONFLICT DO
 * NOTHING`) on the primary key (consumer, message_id). A concurrent second
 * delivery of the same message blocks on the first one's uncommitted row and
 * then sees the conflict, so two deliveries can never both proceed.
 */
export async function recordInInbox(manager: EntityManager, consumer: string, messageId: string): Promise<boolean> {
  const inserted: unknown[] = await manager.query(
    `INSERT INTO concordat.inbox (consumer, message_id) VALUES ($1, $2)
     ON CONFLICT DO NOTHING
     RETURNING 1`,
    [consumer, messageId],
  );
  return inserted.length === 1;
}

/**
 * The statement of {@link recordInInbox} with its values inlined as escaped
 * literals, to travel with `BEGIN` in one simple query (the dispatcher's
 * fast path, `outbox/transaction.ts`). It returns one row when the message
 * is new, none when it was processed before.
 */
export function inboxInsertSql(consumer: string, messageId: string, escapeLiteral: (value: string) => string): string {
  return (
    `INSERT INTO concordat.inbox (consumer, message_id) VALUES (${escapeLiteral(consumer)}, ${escapeLiteral(messageId)}) ` +
    `ON CONFLICT DO NOTHING RETURNING 1`
  );
}

/** Whether `consumer` has processed `messageId` (outside any handler, for tools and tests). */
export async function isInInbox(manager: EntityManager, consumer: string, messageId: string): Promise<boolean> {
  const rows: unknown[] = await manager.query(
    `SELECT 1 FROM concordat.inbox WHERE consumer = $1 AND message_id = $2`,
    [consumer, messageId],
  );
  return rows.length === 1;
}

/**
 * The inbox insert of a batch of messages handled in one transaction (the
 * dispatcher's batch path): one statement, values inlined as escaped
 * literals to travel with `BEGIN`, returning the `message_id` of each row
 * it inserted — the messages not processed before. IDs are deduplicated
 * and inserted in sorted order, so that two transactions inserting
 * overlapping sets (two members holding one partition during a rebalance,
 * a duplicate in another partition) wait for each other in one order and
 * cannot deadlock on inbox rows.
 */
export function inboxInsertManySql(consumer: string, messageIds: readonly string[], escapeLiteral: (value: string) => string): string {
  if (messageIds.length === 0) throw new Error('assertion failed: inboxInsertManySql needs at least one message ID');
  const quotedConsumer = escapeLiteral(consumer);
  const rows = [...new Set(messageIds)].sort().map((id) => `(${quotedConsumer}, ${escapeLiteral(id)})`);
  return `INSERT INTO concordat.inbox (consumer, message_id) VALUES ${rows.join(', ')} ON CONFLICT DO NOTHING RETURNING message_id`;
}
