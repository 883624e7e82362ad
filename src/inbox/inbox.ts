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

/** A row of {@link inboxInsertManySql}'s result. */
export interface InboxClaimRow {
  message_id: string;
  /**
   * Null: the message is new, its inbox row inserted. Otherwise the ID of
   * the pending dead letter this consumer has for it (bigint as text): it
   * failed for good before and waits for `concordat dlq replay`; no inbox
   * row was inserted, so that the replay runs.
   */
  dead_letter_id: string | null;
}

/**
 * The inbox claim of a batch of messages handled in one transaction (the
 * dispatcher's path, one message or many): one statement, values inlined as
 * escaped literals to travel with `BEGIN`, returning an {@link InboxClaimRow}
 * for each message that is new (inbox row inserted) and for each that this
 * consumer dead-lettered before and that is still pending (no inbox row):
 * a redelivery of it (the offset was not committed before a restart) is
 * recognised before any attempt instead of after all of them. A message
 * with no row was processed before. The dead-letter check is one probe of
 * the unique index `dead_letter_pending (consumer, message_id) WHERE
 * replayed_at IS NULL` per message, in the same statement.
 *
 * IDs are deduplicated and inserted in sorted order, so that two
 * transactions inserting overlapping sets (two members holding one
 * partition during a rebalance, a duplicate in another partition) wait for
 * each other in one order and cannot deadlock on inbox rows.
 */
export function inboxInsertManySql(consumer: string, messageIds: readonly string[], escapeLiteral: (value: string) => string): string {
  if (messageIds.length === 0) throw new Error('assertion failed: inboxInsertManySql needs at least one message ID');
  const quotedConsumer = escapeLiteral(consumer);
  const ids = [...new Set(messageIds)].sort().map((id) => escapeLiteral(id));
  return (
    `WITH dead AS (SELECT message_id, id FROM concordat.dead_letter ` +
    `WHERE consumer = ${quotedConsumer} AND message_id IN (${ids.join(', ')}) AND replayed_at IS NULL), ` +
    `claimed AS (INSERT INTO concordat.inbox (consumer, message_id) ` +
    `SELECT ${quotedConsumer}, m.id FROM (VALUES (${ids.join('), (')})) AS m(id) ` +
    `WHERE NOT EXISTS (SELECT 1 FROM dead WHERE dead.message_id = m.id) ORDER BY m.id ` +
    `ON CONFLICT DO NOTHING RETURNING message_id) ` +
    `SELECT message_id, NULL::text AS dead_letter_id FROM claimed UNION ALL SELECT message_id, id::text FROM dead`
  );
}
