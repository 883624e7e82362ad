/**
 * The inbox claim: recording that a consumer processed a set of messages,
 * inside the transaction that processes them, so that a message delivered
 * again has no second effect. Every claim is built here and read here:
 * {@link inboxClaimSql} (the plain claim; the coordinator's replies),
 * {@link inboxClaimCheckingDeadLettersSql} (the dispatcher's, which also
 * finds the records this consumer dead-lettered before), both read with
 * {@link readInboxClaim}; {@link recordInInbox} runs the plain claim for
 * one message.
 *
 * The check and the record are one statement (`INSERT ... ON CONFLICT DO
 * NOTHING RETURNING message_id`) on the primary key (consumer, message_id).
 * A concurrent second delivery of the same message blocks on the first
 * one's uncommitted row and then sees the conflict, so two deliveries can
 * never both proceed. IDs are deduplicated and inserted in sorted order, so
 * that two transactions claiming overlapping sets (two members holding one
 * partition during a rebalance, a duplicate in another partition, two
 * coordinators' reply batches) wait for each other in one order and cannot
 * deadlock on inbox rows.
 *
 * The SQL has no parameters: values are inlined as escaped literals (the
 * caller's `escapeLiteral`) so that the claim travels with `BEGIN` in one
 * simple query (`runOutboxTransaction`'s prelude): claiming costs no round
 * trip of its own.
 *
 * @module
 */

import type { EntityManager } from 'typeorm';
import { quoteLiteral } from '../outbox/index.js';

/** A record the dispatcher claims: its message ID and where the log holds it. */
export interface InboxClaimRecord {
  messageId: string;
  topic: string;
  partition: number;
  offset: number;
}

/** A row a claim statement returns (decoded by {@link readInboxClaim}; nothing outside this file reads it). */
interface InboxClaimRow {
  message_id: string;
  /**
   * Absent or null: the message is new, its inbox row inserted. Otherwise
   * the ID of the pending dead letter this consumer has for this very
   * record (bigint as text): it failed for good before and waits for
   * `concordat dlq replay`; no inbox row was inserted, so that the replay
   * runs.
   */
  dead_letter_id?: string | null;
  /** With a dead letter: the record it was made from (`topic`, `partition`, `offset` as text); else null. */
  topic?: string | null;
  partition?: number | null;
  offset?: string | null;
}

/**
 * What a claim found, read from its rows by {@link readInboxClaim}: the
 * message IDs it claimed (new to this consumer) and the records this
 * consumer dead-lettered before.
 */
export class InboxClaim {
  private readonly fresh = new Set<string>();
  private readonly deadLetters = new Map<string, string>();

  /** @param rows the rows of an {@link inboxClaimSql} or {@link inboxClaimCheckingDeadLettersSql} statement */
  constructor(rows: readonly unknown[]) {
    for (const row of rows as readonly InboxClaimRow[]) {
      if (row.dead_letter_id === undefined || row.dead_letter_id === null) this.fresh.add(row.message_id);
      else this.deadLetters.set(placeKey(row.topic!, row.partition!, row.offset!), row.dead_letter_id);
    }
  }

  /**
   * Whether the claim inserted `messageId`'s inbox row (the message is new:
   * run its handler), consuming it: a second call for the same ID returns
   * false, since a second copy of a message inside one transaction is a
   * duplicate too.
   */
  take(messageId: string): boolean {
    return this.fresh.delete(messageId);
  }

  /** Whether the claim inserted `messageId`'s inbox row, without consuming it (see {@link take}). */
  claimed(messageId: string): boolean {
    return this.fresh.has(messageId);
  }

  /**
   * The ID of this consumer's pending dead letter made from the record at
   * `topic`/`partition`/`offset` (bigint as text), or undefined. Only
   * {@link inboxClaimCheckingDeadLettersSql} finds them.
   */
  deadLetterAt(topic: string, partition: number, offset: number): string | undefined {
    return this.deadLetters.get(placeKey(topic, partition, offset));
  }
}

/** Reads the rows of a claim statement. */
export function readInboxClaim(rows: readonly unknown[]): InboxClaim {
  return new InboxClaim(rows);
}

function placeKey(topic: string, partition: number | string, offset: number | string): string {
  return `${topic}\u0000${partition}\u0000${offset}`;
}

/**
 * The inbox claim of `messageIds` for `consumer`: one `INSERT` returning a
 * row (`message_id`) for each ID that was new. It can also stand in a CTE.
 * @throws Error when `messageIds` is empty (a programmer error)
 */
export function inboxClaimSql(consumer: string, messageIds: readonly string[], escapeLiteral: (value: string) => string): string {
  return claimInsert(escapeLiteral(consumer), messageIds, escapeLiteral, false);
}

/**
 * The dispatcher's inbox claim of a batch of records handled in one
 * transaction (one message or many): one statement returning a row for
 * each message that is new (inbox row inserted) and for each record this
 * consumer dead-lettered before, its dead letter still pending (no inbox
 * row): a redelivery of that record (its offset was not committed before a
 * restart) is recognised before any attempt instead of after all of them.
 * Only the same record counts (topic, partition and offset of the dead
 * letter): a message sent again as a new record with the same ID — a
 * coordinator resending a decision — is attempted again, so that it
 * succeeds once its handler is fixed (and, failing again, finds its dead
 * letter and is not dead-lettered twice). A message with no row was
 * processed before. The check is one probe of the unique index
 * `dead_letter_pending (consumer, message_id) WHERE replayed_at IS NULL`
 * per message, in the same statement.
 * @throws Error when `records` is empty (a programmer error)
 */
export function inboxClaimCheckingDeadLettersSql(consumer: string, records: readonly InboxClaimRecord[], escapeLiteral: (value: string) => string): string {
  if (records.length === 0) throw new Error('assertion failed: an inbox claim needs at least one message');
  const quotedConsumer = escapeLiteral(consumer);
  const located = records.map(
    (record) => `(${escapeLiteral(record.messageId)}, ${escapeLiteral(record.topic)}, ${Math.trunc(record.partition)}, ${Math.trunc(record.offset)}::bigint)`,
  );
  return (
    `WITH dead AS (SELECT d.message_id, d.id, d.topic, d.partition, d."offset" FROM concordat.dead_letter d ` +
    `JOIN (VALUES ${located.join(', ')}) AS r(message_id, topic, partition, "offset") ` +
    `ON d.message_id = r.message_id AND d.topic = r.topic AND d.partition = r.partition AND d."offset" = r."offset" ` +
    `WHERE d.consumer = ${quotedConsumer} AND d.replayed_at IS NULL), ` +
    `claimed AS (${claimInsert(
      quotedConsumer,
      records.map((record) => record.messageId),
      escapeLiteral,
      true,
    )}) ` +
    `SELECT message_id, NULL::text AS dead_letter_id, NULL::text AS topic, NULL::int AS partition, NULL::text AS "offset" FROM claimed ` +
    `UNION ALL SELECT message_id, id::text, topic, partition, "offset"::text FROM dead`
  );
}

/**
 * The one inbox `INSERT`: IDs deduplicated and in sorted order (see the
 * file comment), those in the CTE `dead` left out when `exceptDead`.
 */
function claimInsert(quotedConsumer: string, messageIds: readonly string[], escapeLiteral: (value: string) => string, exceptDead: boolean): string {
  if (messageIds.length === 0) throw new Error('assertion failed: an inbox claim needs at least one message');
  const ids = [...new Set(messageIds)].sort().map((id) => escapeLiteral(id));
  return (
    `INSERT INTO concordat.inbox (consumer, message_id) ` +
    `SELECT ${quotedConsumer}, m.id FROM (VALUES (${ids.join('), (')})) AS m(id) ` +
    (exceptDead ? `WHERE NOT EXISTS (SELECT 1 FROM dead WHERE dead.message_id = m.id) ` : '') +
    `ORDER BY m.id ON CONFLICT DO NOTHING RETURNING message_id`
  );
}

/**
 * Records that `consumer` processed `messageId`, inside the caller's
 * transaction (the handler's): the claim of {@link inboxClaimSql} for one
 * message. Returns `false` when the row already existed: the message was
 * processed before, so the caller must skip it and acknowledge.
 */
export async function recordInInbox(manager: EntityManager, consumer: string, messageId: string): Promise<boolean> {
  const rows: unknown[] = await manager.query(inboxClaimSql(consumer, [messageId], quoteLiteral));
  return readInboxClaim(rows).take(messageId);
}

/** Whether `consumer` has processed `messageId` (outside any handler, for tools and tests). */
export async function isInInbox(manager: EntityManager, consumer: string, messageId: string): Promise<boolean> {
  const rows: unknown[] = await manager.query(`SELECT 1 FROM concordat.inbox WHERE consumer = $1 AND message_id = $2`, [consumer, messageId]);
  return rows.length === 1;
}
