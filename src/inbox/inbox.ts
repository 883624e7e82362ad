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

/** A record the dispatcher claims: its message ID and where the log holds it. */
export interface InboxClaimRecord {
  messageId: string;
  topic: string;
  partition: number;
  offset: number;
}

/** A row of {@link inboxInsertManySql}'s result. */
export interface InboxClaimRow {
  message_id: string;
  /**
   * Null: the message is new, its inbox row inserted. Otherwise the ID of
   * the pending dead letter this consumer has for this very record (bigint
   * as text): it failed for good before and waits for `concordat dlq
   * replay`; no inbox row was inserted, so that the replay runs.
   */
  dead_letter_id: string | null;
  /** With a dead letter: the record it was made from (`topic`, `partition`, `offset` as text); else null. */
  topic: string | null;
  partition: number | null;
  offset: string | null;
}

/**
 * The inbox claim of a batch of messages handled in one transaction (the
 * dispatcher's path, one message or many): one statement, values inlined as
 * escaped literals to travel with `BEGIN`, returning an {@link InboxClaimRow}
 * for each message that is new (inbox row inserted) and for each record
 * this consumer dead-lettered before, its dead letter still pending (no
 * inbox row): a redelivery of that record (its offset was not committed
 * before a restart) is recognised before any attempt instead of after all
 * of them. Only the same record counts (topic, partition and offset of the
 * dead letter): a message sent again as a new record with the same ID — a
 * coordinator resending a decision — is attempted again, so that it
 * succeeds once its handler is fixed (and, failing again, finds its dead
 * letter and is not dead-lettered twice). A message with no row was
 * processed before. The check is one probe of the unique index
 * `dead_letter_pending (consumer, message_id) WHERE replayed_at IS NULL`
 * per message, in the same statement.
 *
 * IDs are deduplicated and inserted in sorted order, so that two
 * transactions inserting overlapping sets (two members holding one
 * partition during a rebalance, a duplicate in another partition) wait for
 * each other in one order and cannot deadlock on inbox rows.
 */
export function inboxInsertManySql(consumer: string, records: readonly InboxClaimRecord[], escapeLiteral: (value: string) => string): string {
  if (records.length === 0) throw new Error('assertion failed: inboxInsertManySql needs at least one record');
  const quotedConsumer = escapeLiteral(consumer);
  const ids = [...new Set(records.map((record) => record.messageId))].sort().map((id) => escapeLiteral(id));
  const located = records.map(
    (record) => `(${escapeLiteral(record.messageId)}, ${escapeLiteral(record.topic)}, ${Math.trunc(record.partition)}, ${Math.trunc(record.offset)}::bigint)`,
  );
  return (
    `WITH dead AS (SELECT d.message_id, d.id, d.topic, d.partition, d."offset" FROM concordat.dead_letter d ` +
    `JOIN (VALUES ${located.join(', ')}) AS r(message_id, topic, partition, "offset") ` +
    `ON d.message_id = r.message_id AND d.topic = r.topic AND d.partition = r.partition AND d."offset" = r."offset" ` +
    `WHERE d.consumer = ${quotedConsumer} AND d.replayed_at IS NULL), ` +
    `claimed AS (INSERT INTO concordat.inbox (consumer, message_id) ` +
    `SELECT ${quotedConsumer}, m.id FROM (VALUES (${ids.join('), (')})) AS m(id) ` +
    `WHERE NOT EXISTS (SELECT 1 FROM dead WHERE dead.message_id = m.id) ORDER BY m.id ` +
    `ON CONFLICT DO NOTHING RETURNING message_id) ` +
    `SELECT message_id, NULL::text AS dead_letter_id, NULL::text AS topic, NULL::int AS partition, NULL::text AS "offset" FROM claimed ` +
    `UNION ALL SELECT message_id, id::text, topic, partition, "offset"::text FROM dead`
  );
}
