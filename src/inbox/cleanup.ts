import type { DataSource } from 'typeorm';
import { DEAD_LETTER_RETENTION_MS_DEFAULT } from '../config/inbox-options.js';
import { describeError } from '../errors.js';
import { createLogger, type Logger } from '../observability/index.js';

/**
 * Arbitrary constant: with `hashtext(consumer)`, the advisory lock (two-key
 * form) that lets one process at a time clean one consumer group's rows.
 */
const CLEANUP_LOCK_KEY = 0x496e6278; // "Inbx"

/**
 * One batch of {@link cleanupInbox}: at most `$3` rows of consumer `$1`
 * processed more than `$2` ms ago, found by a range scan of the
 * `(consumer, processed_at)` index (migration 0020) and deleted by their
 * `ctid`. A data-modifying CTE so the driver returns a plain row with the
 * count. Exported for the test that checks its plan.
 *
 * The cutoff uses `statement_timestamp()`, not `clock_timestamp()`: a
 * volatile function cannot bound an index scan, so with it `processed_at`
 * was only a filter over every row of the consumer (each statement is its
 * own transaction, so the two differ by microseconds).
 */
export const INBOX_CLEANUP_BATCH_SQL = `WITH gone AS (
     DELETE FROM concordat.inbox
      WHERE ctid = ANY (ARRAY(
        SELECT ctid FROM concordat.inbox
         WHERE consumer = $1
           AND processed_at < statement_timestamp() - make_interval(secs => $2::double precision / 1000)
         LIMIT $3))
     RETURNING 1)
   SELECT count(*)::int AS deleted FROM gone`;

/**
 * One batch of {@link cleanupDeadLetters}: at most `$3` dead letters of
 * consumer `$1` replayed more than `$2` ms ago, through the partial index
 * `dead_letter_replayed` (migration 0022). Pending dead letters
 * (`replayed_at IS NULL`) never match.
 */
export const DEAD_LETTER_CLEANUP_BATCH_SQL = `WITH gone AS (
     DELETE FROM concordat.dead_letter
      WHERE ctid = ANY (ARRAY(
        SELECT ctid FROM concordat.dead_letter
         WHERE consumer = $1
           AND replayed_at IS NOT NULL
           AND replayed_at < statement_timestamp() - make_interval(secs => $2::double precision / 1000)
         LIMIT $3))
     RETURNING 1)
   SELECT count(*)::int AS deleted FROM gone`;

/**
 * Deletes the inbox rows of `consumers` older than the dedup window, in
 * batches of at most `batchRowsMax` rows, each its own short transaction, so
 * cleanup never holds locks on more than one batch and writers are not
 * stalled. The batches go round the consumers in turn, so one group with a
 * large backlog does not hold up the others, and `batchesMax` bounds them
 * all together. Rows are found through the `(consumer, processed_at)` index,
 * so a run costs what it deletes, not the size of the table.
 *
 * Only `consumers`: the inbox table is shared by every app on the database,
 * and each app's window is checked against the retention of the topics *its*
 * groups consume, so it must not delete the rows of groups it knows nothing
 * about (another app's window may be longer).
 *
 * @param windowMs rows processed more than this long ago are deleted; must
 *   exceed the log's redelivery horizon (its retention) or a redelivered
 *   message could be processed twice. Infinity deletes nothing.
 * @param consumers the consumer groups (inbox `consumer` values) whose rows may be deleted.
 * @returns rows deleted.
 */
export async function cleanupInbox(
  dataSource: DataSource,
  windowMs: number,
  consumers: readonly string[],
  batchRowsMax = 5_000,
  batchesMax = 1_000,
): Promise<number> {
  if (windowMs === Infinity) return 0;
  return deleteInBatches(dataSource, INBOX_CLEANUP_BATCH_SQL, windowMs, consumers, batchRowsMax, batchesMax);
}

/**
 * Deletes the dead letters of `consumers` replayed more than `retentionMs`
 * ago, in batches as {@link cleanupInbox} does. Dead letters not replayed are
 * kept whatever their age: they are the operator's work list.
 *
 * @param retentionMs Infinity deletes nothing.
 * @returns dead letters deleted.
 */
export async function cleanupDeadLetters(
  dataSource: DataSource,
  retentionMs: number,
  consumers: readonly string[],
  batchRowsMax = 5_000,
  batchesMax = 1_000,
): Promise<number> {
  if (retentionMs === Infinity) return 0;
  return deleteInBatches(dataSource, DEAD_LETTER_CLEANUP_BATCH_SQL, retentionMs, consumers, batchRowsMax, batchesMax);
}

/** Runs a batch statement `(consumer, ageMs, limit) → deleted` round the consumers until each is done or `batchesMax` is reached. */
async function deleteInBatches(
  dataSource: DataSource,
  sql: string,
  ageMs: number,
  consumers: readonly string[],
  batchRowsMax: number,
  batchesMax: number,
): Promise<number> {
  let total = 0;
  let pending = [...new Set(consumers)];
  for (let batch = 0; batch < batchesMax && pending.length > 0;) {
    const stillPending: string[] = [];
    for (const consumer of pending) {
      if (batch >= batchesMax) break;
      const rows: Array<{ deleted: number }> = await dataSource.query(sql, [consumer, ageMs, batchRowsMax]);
      batch++;
      const deleted = rows[0]?.deleted ?? 0;
      total += deleted;
      if (deleted >= batchRowsMax) stillPending.push(consumer);
    }
    pending = stillPending;
  }
  return total;
}

/** Options of the inbox cleaner: whose rows it deletes, how old they must be (ms), and its pace (interval in ms, rows per batch, batches per run). */
export interface InboxCleanerOptions {
  /** The consumer groups whose rows this cleaner deletes: the app's own. */
  consumers: readonly string[];
  windowMs: number;
  /** Replayed dead letters older than this are deleted; Infinity keeps them. @default 30 days */
  deadLetterRetentionMs?: number;
  intervalMs: number;
  batchRowsMax: number;
  batchesMax: number;
  /** Parent of the cleaner's logger (the app's root). @default Concordat's own */
  logger?: Logger;
}

/**
 * Runs {@link cleanupInbox} for the app's consumer groups every
 * `intervalMs`. Several processes on one database take turns per group: a
 * run cleans a group only if it gets that group's session advisory lock
 * with `pg_try_advisory_lock`, so two instances of an app never delete the
 * same rows, and apps with different groups do not wait for each other.
 */
export class InboxCleaner {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private readonly logger: Logger;
  /** Inbox rows deleted since start. */
  deleted = 0;
  /** Replayed dead letters deleted since start. */
  deadLettersDeleted = 0;

  constructor(
    private readonly dataSource: DataSource,
    private readonly options: InboxCleanerOptions,
  ) {
    this.logger = createLogger('inbox-cleanup', {}, options.logger);
  }

  /** Starts deleting expired inbox rows and old replayed dead letters every `intervalMs`, in the background; does nothing when there is nothing to delete (no consumers, or both kept forever). Call once. */
  start(): void {
    if (this.options.windowMs === Infinity) this.logger.info('inbox dedup window is unlimited: inbox rows are kept forever');
    if (this.nothingToDo()) return;
    this.schedule();
  }

  private nothingToDo(): boolean {
    return this.options.consumers.length === 0 || (this.options.windowMs === Infinity && this.deadLetterRetentionMs === Infinity);
  }

  private get deadLetterRetentionMs(): number {
    return this.options.deadLetterRetentionMs ?? DEAD_LETTER_RETENTION_MS_DEFAULT;
  }

  /** Stops the timer and waits for the run in flight (its current batch commits). May be called more than once. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  /**
   * One run now (tests, tools): inbox rows past the window, then replayed
   * dead letters past their retention. @returns inbox rows deleted; a group
   * whose turn another process holds is left to it.
   */
  async runOnce(): Promise<number> {
    if (this.nothingToDo()) return 0;
    const runner = this.dataSource.createQueryRunner();
    await runner.connect();
    const locked: string[] = [];
    try {
      const rows = (await runner.query(`SELECT consumer, pg_try_advisory_lock($1, hashtext(consumer)) AS ok FROM unnest($2::text[]) AS consumer`, [
        CLEANUP_LOCK_KEY,
        [...new Set(this.options.consumers)],
      ])) as Array<{ consumer: string; ok: boolean }>;
      for (const row of rows) if (row.ok) locked.push(row.consumer);
      if (locked.length === 0) return 0;
      const deleted = await cleanupInbox(this.dataSource, this.options.windowMs, locked, this.options.batchRowsMax, this.options.batchesMax);
      this.deleted += deleted;
      const letters = await cleanupDeadLetters(this.dataSource, this.deadLetterRetentionMs, locked, this.options.batchRowsMax, this.options.batchesMax);
      this.deadLettersDeleted += letters;
      if (letters > 0) this.logger.info({ deleted: letters }, 'replayed dead letters past their retention deleted');
      return deleted;
    } finally {
      if (locked.length > 0) {
        await runner
          .query(`SELECT pg_advisory_unlock($1, hashtext(consumer)) FROM unnest($2::text[]) AS consumer`, [CLEANUP_LOCK_KEY, locked])
          .catch(() => undefined);
      }
      await runner.release();
    }
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.runOnce().then(
        (deleted) => {
          if (deleted > 0) this.logger.debug({ deleted }, 'inbox rows past the dedup window deleted');
        },
        (error: unknown) => this.logger.warn({ err: describeError(error) }, 'inbox cleanup failed; will retry'),
      );
      void this.running.finally(() => this.schedule());
    }, this.options.intervalMs);
    this.timer.unref();
  }
}
