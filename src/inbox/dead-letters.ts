import type { DataSource, EntityManager } from 'typeorm';

/**
 * The dead-letter store: `concordat.dead_letter` keeps every message a
 * consumer gave up on, with what is needed to understand it (error, error
 * code, attempts, handler, where it was in the log) and to replay it (topic,
 * key, original headers and bytes). The dispatcher writes a row in the same
 * transaction as the record it sends to `<topic>.dlq` through the outbox.
 *
 * At most one pending (not yet replayed) row per (consumer, message ID), so a
 * redelivered message that fails again is not dead-lettered twice; once
 * replayed, a new failure makes a new row.
 */

/** A dead letter to record. */
export interface DeadLetterInput {
  consumer: string;
  messageId: string;
  /** `Service.method`. */
  handler: string;
  topic: string;
  partition: number;
  offset: number;
  key: string | null;
  /** The record's headers as delivered (CloudEvents `ce_*` and any others). */
  headers: Record<string, string>;
  payload: Buffer | null;
  error: string;
  errorCode: string;
  attempts: number;
}

/** A stored dead letter. */
export interface DeadLetter extends DeadLetterInput {
  /** Row ID (a bigint, as a decimal string). */
  id: string;
  failedAt: Date;
  replayedAt: Date | null;
}

/** Which dead letters a list or replay concerns. */
export interface DeadLetterFilter {
  /** Only these IDs. */
  ids?: readonly string[];
  consumer?: string;
  /** The original topic (not `.dlq`). */
  topic?: string;
  /** Include dead letters already replayed. @default false */
  includeReplayed?: boolean;
  /** Most rows returned, oldest first. Range 1..100000. @default 1000 */
  limit?: number;
}

interface DeadLetterRow {
  id: string;
  consumer: string;
  message_id: string;
  handler: string;
  topic: string;
  partition: number;
  offset: string;
  partition_key: string | null;
  headers: Record<string, string>;
  payload: Buffer | null;
  error: string;
  error_code: string;
  attempts: number;
  failed_at: Date;
  replayed_at: Date | null;
}

/**
 * Records a dead letter in the caller's transaction.
 * @returns the new row's ID, or undefined when this consumer already has this message pending.
 */
export async function recordDeadLetter(manager: EntityManager, input: DeadLetterInput): Promise<string | undefined> {
  const rows: Array<{ id: string }> = await manager.query(
    `INSERT INTO concordat.dead_letter
       (consumer, message_id, handler, topic, partition, "offset", partition_key, headers, payload, error, error_code, attempts)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
     ON CONFLICT (consumer, message_id) WHERE replayed_at IS NULL DO NOTHING
     RETURNING id`,
    [
      input.consumer,
      input.messageId,
      input.handler,
      input.topic,
      input.partition,
      input.offset,
      input.key,
      JSON.stringify(input.headers),
      input.payload,
      input.error,
      input.errorCode,
      input.attempts,
    ],
  );
  return rows[0]?.id;
}

/** Dead letters matching `filter`, oldest first. */
export async function listDeadLetters(dataSource: DataSource, filter: DeadLetterFilter = {}): Promise<DeadLetter[]> {
  const { where, parameters } = whereOf(filter);
  const rows: DeadLetterRow[] = await dataSource.query(
    `SELECT * FROM concordat.dead_letter ${where} ORDER BY id LIMIT $${parameters.length + 1}`,
    [...parameters, filter.limit ?? 1000],
  );
  return rows.map(fromRow);
}

/**
 * Marks the pending dead letters matching `filter` as replayed, in the
 * caller's transaction, and returns them. Concurrent callers each get a
 * disjoint set: a row already marked is skipped (its lock is waited for,
 * then its `replayed_at` seen), so a dead letter is replayed once.
 */
export async function markDeadLettersReplayed(manager: EntityManager, filter: DeadLetterFilter): Promise<DeadLetter[]> {
  const { where, parameters } = whereOf({ ...filter, includeReplayed: false });
  const rows: DeadLetterRow[] = await manager.query(
    `WITH replayed AS (
       UPDATE concordat.dead_letter SET replayed_at = clock_timestamp()
        WHERE id IN (SELECT id FROM concordat.dead_letter ${where} ORDER BY id LIMIT $${parameters.length + 1})
          AND replayed_at IS NULL
        RETURNING *)
     SELECT * FROM replayed`,
    [...parameters, filter.limit ?? 1000],
  );
  return rows.map(fromRow).sort((a, b) => Number(BigInt(a.id) - BigInt(b.id)));
}

function whereOf(filter: DeadLetterFilter): { where: string; parameters: unknown[] } {
  const conditions: string[] = [];
  const parameters: unknown[] = [];
  if (filter.ids !== undefined) {
    parameters.push(filter.ids);
    conditions.push(`id = ANY($${parameters.length}::bigint[])`);
  }
  if (filter.consumer !== undefined) {
    parameters.push(filter.consumer);
    conditions.push(`consumer = $${parameters.length}`);
  }
  if (filter.topic !== undefined) {
    parameters.push(filter.topic);
    conditions.push(`topic = $${parameters.length}`);
  }
  if (filter.includeReplayed !== true) conditions.push('replayed_at IS NULL');
  return { where: conditions.length === 0 ? '' : `WHERE ${conditions.join(' AND ')}`, parameters };
}

function fromRow(row: DeadLetterRow): DeadLetter {
  return {
    id: String(row.id),
    consumer: row.consumer,
    messageId: row.message_id,
    handler: row.handler,
    topic: row.topic,
    partition: row.partition,
    offset: Number(row.offset),
    key: row.partition_key,
    headers: row.headers,
    payload: row.payload,
    error: row.error,
    errorCode: row.error_code,
    attempts: row.attempts,
    failedAt: row.failed_at,
    replayedAt: row.replayed_at,
  };
}
