/**
 * The dead-letter store: `concordat.dead_letter` keeps every message a
 * consumer gave up on, with what is needed to understand it (error, error
 * code, attempts, handler, where it was in the log) and to replay it (topic,
 * key, original headers and bytes). `sendDeadLetter` (`send.ts`) writes a
 * row in the same transaction as the record it sends to `<topic>.dlq`
 * through the outbox.
 *
 * At most one pending (not yet replayed) row per (consumer, message ID), so a
 * redelivered message that fails again is not dead-lettered twice; once
 * replayed, a new failure makes a new row.
 *
 * @module
 */

import type { DataSource, EntityManager } from 'typeorm';
import { DEDUP_WINDOW_MS_FALLBACK } from '../../config/index.js';
import { ConcordatError, ErrorCode } from '../../errors.js';
import { human } from '../window.js';

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
  /** Who replayed it (`ReplayOptions.by`), or null. */
  replayedBy: string | null;
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
  /** Cursor (keyset pagination): only dead letters with an ID above this one (a decimal string). */
  afterId?: string;
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
  replayed_by: string | null;
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
  const rows: DeadLetterRow[] = await dataSource.query(`SELECT * FROM concordat.dead_letter ${where} ORDER BY id LIMIT $${parameters.length + 1}`, [
    ...parameters,
    filter.limit ?? 1000,
  ]);
  return rows.map(fromRow);
}

/** How {@link markDeadLettersReplayed} treats old dead letters. */
export interface ReplayOptions {
  /**
   * Replay dead letters that failed longer ago than their consumer group's
   * inbox dedup window too (`concordat dlq replay --force`). @default false
   */
  force?: boolean;
  /** Who replays, recorded in `replayed_by` (`alice@host`). 1..200 characters. @default nobody (null) */
  by?: string;
}

/**
 * Marks the pending dead letters matching `filter` as replayed, in the
 * caller's transaction, and returns them. Concurrent callers each get a
 * disjoint set: a row already marked is skipped (its lock is waited for,
 * then its `replayed_at` seen), so a dead letter is replayed once.
 *
 * Refuses, unless `options.force`, when one of them failed longer ago than
 * the inbox dedup window of its consumer group (as the group's app recorded
 * it in `concordat.inbox_window` at its last start; 7 days when none did):
 * by then the inbox may have forgotten the message ID, so a message that
 * was processed after it was dead-lettered (redelivered by a rewind,
 * replayed before) would be processed a second time.
 *
 * @throws ConcordatError DEAD_LETTER_TOO_OLD listing those dead letters, their age and window;
 *   nothing is marked then.
 */
export async function markDeadLettersReplayed(manager: EntityManager, filter: DeadLetterFilter, options: ReplayOptions = {}): Promise<DeadLetter[]> {
  if (options.by !== undefined && (options.by.trim().length === 0 || options.by.length > 200)) {
    throw new ConcordatError('replaying dead letters needs a who (by) of 1..200 characters', { code: ErrorCode.CONFIG_INVALID, context: { by: options.by } });
  }
  const { where, parameters } = whereOf({ ...filter, includeReplayed: false });
  // Locked first: a concurrent replayer waits here, then finds them replayed (READ COMMITTED rechecks the WHERE).
  const candidates: CandidateRow[] = await manager.query(
    `SELECT d.id, d.consumer, d.message_id,
            (extract(epoch FROM clock_timestamp() - d.failed_at) * 1000)::double precision AS age_ms,
            w.window_ms
       FROM (SELECT id, consumer, message_id, failed_at FROM concordat.dead_letter ${where}
              ORDER BY id LIMIT $${parameters.length + 1} FOR UPDATE) AS d
       LEFT JOIN concordat.inbox_window w ON w.consumer = d.consumer
      ORDER BY d.id`,
    [...parameters, filter.limit ?? 1000],
  );
  const tooOld = candidates.filter((row) => row.age_ms > (row.window_ms ?? DEDUP_WINDOW_MS_FALLBACK));
  if (tooOld.length > 0 && options.force !== true) throw deadLettersTooOld(tooOld);
  if (candidates.length === 0) return [];
  // In a CTE: TypeORM returns [rows, count] for a bare UPDATE, plain rows for a SELECT.
  const rows: DeadLetterRow[] = await manager.query(
    `WITH replayed AS (
       UPDATE concordat.dead_letter SET replayed_at = clock_timestamp(), replayed_by = $2 WHERE id = ANY($1::bigint[]) RETURNING *)
     SELECT * FROM replayed`,
    [candidates.map((row) => row.id), options.by ?? null],
  );
  return rows.map(fromRow).sort((a, b) => Number(BigInt(a.id) - BigInt(b.id)));
}

interface CandidateRow {
  id: string;
  consumer: string;
  message_id: string;
  age_ms: number;
  /** Null when the group's app never recorded its window. */
  window_ms: number | null;
}

/** Dead letters named in the message at most; the count says how many more. */
const TOO_OLD_LISTED_MAX = 10;

function deadLettersTooOld(rows: readonly CandidateRow[]): ConcordatError {
  const listed = rows.slice(0, TOO_OLD_LISTED_MAX).map((row) => {
    const window = row.window_ms === null ? `window ${human(DEDUP_WINDOW_MS_FALLBACK)} assumed, none recorded` : `window ${human(row.window_ms)}`;
    return `${row.id} (consumer '${row.consumer}', message ${row.message_id}, failed ${human(row.age_ms)} ago, ${window})`;
  });
  const more = rows.length > TOO_OLD_LISTED_MAX ? ` and ${rows.length - TOO_OLD_LISTED_MAX} more` : '';
  return new ConcordatError(
    `not replayed: ${rows.length} dead letter(s) failed longer ago than the inbox dedup window of their consumer group: ${listed.join(', ')}${more}. ` +
      'The inbox may have forgotten their message IDs, so a message processed since (redelivered, or replayed before) would be processed twice. ' +
      'Check that it was not, then replay with --force.',
    { code: ErrorCode.DEAD_LETTER_TOO_OLD, context: { ids: rows.map((row) => row.id) } },
  );
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
  if (filter.afterId !== undefined) {
    parameters.push(filter.afterId);
    conditions.push(`id > $${parameters.length}::bigint`);
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
    replayedBy: row.replayed_by ?? null,
  };
}

/**
 * Which of the dead letters `ids` their consumer group has processed since:
 * the inbox holds `(consumer, message_id)` (a dead-lettered message never
 * reached it, so a row there means a replay or a redelivery went through).
 * One index lookup per ID (the inbox's primary key). Unknown IDs are left out.
 * @returns the IDs processed
 */
export async function processedDeadLetters(dataSource: DataSource, ids: readonly string[]): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  const rows: Array<{ id: string }> = await dataSource.query(
    `SELECT d.id::text AS id FROM concordat.dead_letter d
      WHERE d.id = ANY($1::bigint[])
        AND EXISTS (SELECT 1 FROM concordat.inbox i WHERE i.consumer = d.consumer AND i.message_id = d.message_id)`,
    [ids],
  );
  return new Set(rows.map((row) => row.id));
}
