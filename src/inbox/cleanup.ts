import type { DataSource } from 'typeorm';
import { describeError } from '../errors.js';
import { createLogger, type Logger } from '../observability/index.js';

/** Arbitrary constant: the advisory lock that lets one process at a time clean the inbox. */
const CLEANUP_LOCK_KEY = 0x496e6278; // "Inbx"

/**
 * Deletes inbox rows older than the dedup window, in batches of at most
 * `batchRowsMax` rows, each its own short transaction, so cleanup never holds
 * locks on more than one batch and writers are not stalled. Rows are found
 * through the `processed_at` index, so a run costs what it deletes, not the
 * size of the table.
 *
 * @param windowMs rows processed more than this long ago are deleted; must
 *   exceed the log's redelivery horizon (its retention) or a redelivered
 *   message could be processed twice. Infinity deletes nothing.
 * @returns rows deleted.
 */
export async function cleanupInbox(dataSource: DataSource, windowMs: number, batchRowsMax = 5_000, batchesMax = 1_000): Promise<number> {
  if (windowMs === Infinity) return 0;
  let total = 0;
  for (let batch = 0; batch < batchesMax; batch++) {
    // A data-modifying CTE so the driver returns a plain row with the count.
    const rows: Array<{ deleted: number }> = await dataSource.query(
      `WITH gone AS (
         DELETE FROM concordat.inbox
          WHERE ctid = ANY (ARRAY(
            SELECT ctid FROM concordat.inbox
             WHERE processed_at < clock_timestamp() - make_interval(secs => $1::double precision / 1000)
             LIMIT $2))
         RETURNING 1)
       SELECT count(*)::int AS deleted FROM gone`,
      [windowMs, batchRowsMax],
    );
    const deleted = rows[0]?.deleted ?? 0;
    total += deleted;
    if (deleted < batchRowsMax) break;
  }
  return total;
}

export interface InboxCleanerOptions {
  windowMs: number;
  intervalMs: number;
  batchRowsMax: number;
  batchesMax: number;
}

/**
 * Runs {@link cleanupInbox} every `intervalMs`. Several processes on one
 * database take turns: a run starts only if it gets a session advisory lock
 * with `pg_try_advisory_lock`, so two processes never delete the same rows.
 */
export class InboxCleaner {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private readonly log: Logger = createLogger('inbox-cleanup');
  /** Rows deleted since start. */
  deleted = 0;

  constructor(
    private readonly dataSource: DataSource,
    private readonly options: InboxCleanerOptions,
  ) {}

  start(): void {
    if (this.options.windowMs === Infinity) {
      this.log.info('inbox dedup window is unlimited: inbox rows are kept forever');
      return;
    }
    this.schedule();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  /** One run now (tests, tools). @returns rows deleted, or 0 when another process holds the turn. */
  async runOnce(): Promise<number> {
    const runner = this.dataSource.createQueryRunner();
    await runner.connect();
    try {
      const [lock]: Array<{ ok: boolean }> = await runner.query(`SELECT pg_try_advisory_lock($1) AS ok`, [CLEANUP_LOCK_KEY]);
      if (lock?.ok !== true) return 0;
      try {
        const deleted = await cleanupInbox(this.dataSource, this.options.windowMs, this.options.batchRowsMax, this.options.batchesMax);
        this.deleted += deleted;
        return deleted;
      } finally {
        await runner.query(`SELECT pg_advisory_unlock($1)`, [CLEANUP_LOCK_KEY]);
      }
    } finally {
      await runner.release();
    }
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.runOnce().then(
        (deleted) => {
          if (deleted > 0) this.log.debug({ deleted }, 'inbox rows past the dedup window deleted');
        },
        (error: unknown) => this.log.warn({ err: describeError(error) }, 'inbox cleanup failed; will retry'),
      );
      void this.running.finally(() => this.schedule());
    }, this.options.intervalMs);
    this.timer.unref();
  }
}
